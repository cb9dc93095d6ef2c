#!/usr/bin/env bash
# Nightscout sink (issue #5) against the fake Nightscout (`diabridge-sim
# nightscout`, which dedups exactly as cgm-remote-monitor 15.0.7 does):
#   - every record kind arrives with the documented fields (API v1 and v3),
#     and re-sending everything creates no duplicate;
#   - outage: server not there at start, then dropping connections and
#     answering 500 mid-run → every record present once;
#   - crash: SIGKILL mid-batch, restart → none missing, none duplicated;
#   - wrong secret → nothing lost, reported in status; fixed → all arrives;
#   - a refused record is isolated and dead-lettered, a too-large batch split;
#   - a 90-day backlog is delivered;
#   - against a stand-in for what sits in front of Nightscout: a redirect to
#     https leaks no token, a proxy's 400 to everything dead-letters nothing,
#     a v3 login page counts as nothing stored, a firewall's refusal of one
#     record dead-letters that record only;
#   - events sharing an eventType at one instant stay separate treatments;
#   - refused and timed-out connections say what to check.
# With NS_TEST_URL and NS_TEST_API_SECRET set, a smoke test also runs against
# that real Nightscout (skipped otherwise).
source "$(dirname "$0")/lib.bash"

SIM="$BUILD/diabridge-sim"
SECRET='correct horse battery staple'
TOKEN='diabridgeup-0123456789abcdef'
export TZ=Europe/Berlin # a non-zero UTC offset, to see utcOffset travel

# start_ns NAME [options…]: a fake Nightscout; sets NS_URL and NS_PID.
start_ns() {
  local name=$1
  shift
  "$SIM" nightscout --api-secret "$SECRET" --token "$TOKEN" --auth-fail-delay-ms 200 "$@" \
    >"$WORK/$name.url" 2>"$WORK/$name.err" &
  NS_PID=$!
  PIDS+=("$NS_PID")
  wait_for "[ -s '$WORK/$name.url' ]" 10 || fail "fake Nightscout $name did not start"
  NS_URL=$(head -1 "$WORK/$name.url")
}

stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The identifiers export says the journal should produce, per collection.
expected_ids() { # journal collection
  "$DIABRIDGE" export --journal "$1" --format nightscout | jq -r ".$2[].identifier" | sort
}
server_ids() { # url collection
  curl -sf "$1/_sim/dump/$2" | jq -r '.[].identifier' | sort
}
n_stored() { curl -sf "$1/_sim/stats" | jq -r ".$2"; }

# Every record the journal holds is in Nightscout exactly once (by identifier,
# which is unique per record and collection).
check_once() { # journal url label
  local j=$1 url=$2 label=$3 c
  for c in entries treatments devicestatus; do
    expected_ids "$j" $c >"$WORK/exp.$c"
    server_ids "$url" $c >"$WORK/got.$c"
    local want got dups
    want=$(wc -l <"$WORK/exp.$c")
    got=$(wc -l <"$WORK/got.$c")
    dups=$(uniq -d "$WORK/got.$c" | wc -l)
    [ "$dups" -eq 0 ] || fail "$label: $dups $c stored more than once"
    [ "$got" -eq "$want" ] || fail "$label: $got $c stored, journal has $want"
    cmp -s "$WORK/exp.$c" "$WORK/got.$c" || fail "$label: $c differ from the journal"
  done
}

# All of it there?  (quiet version of check_once for wait_for; the journal
# must not change meanwhile)
all_there() { # journal url
  local c
  [ -s "$WORK/want.$(basename "$1")" ] ||
    for c in entries treatments devicestatus; do expected_ids "$1" $c | wc -l; done \
      >"$WORK/want.$(basename "$1")"
  [ "$(for c in entries treatments devicestatus; do n_stored "$2" $c; done)" = \
    "$(cat "$WORK/want.$(basename "$1")")" ]
}

caught_up() { # journal sink-name
  local last cursor
  last=$(sqlite3 "$1" "SELECT coalesce(max(seq),0) FROM records WHERE published=1" 2>/dev/null) || return 1
  cursor=$(sqlite3 "$1" "SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='$2'" 2>/dev/null) || return 1
  [ "$last" -gt 0 ] && [ "$cursor" -ge "$last" ]
}

# deliver JOURNAL SINKSPEC: run the daemon with the sink alone until it has
# delivered everything in the journal, then stop it.
deliver() {
  "$DIABRIDGE" run --journal "$1" --log-level warning --sink "$2" 2>>"$WORK/deliver.log" &
  local pid=$!
  PIDS+=("$pid")
  wait_for "caught_up '$1' nightscout" 60 || fail "sink did not catch up: $(tail -3 "$WORK/deliver.log")"
  stop_pid "$pid"
}

# --- 1. every record kind, with the documented fields (API v1) ----------------
start_ns kinds
KINDS_URL=$NS_URL
J1="$WORK/kinds.db"
"$DIABRIDGE" run --journal "$J1" --log-level warning --source "sim,seed=4,history=12d" \
  --sink "nightscout+$KINDS_URL,api-secret=$SECRET" 2>"$WORK/kinds.log" &
d=$!
PIDS+=("$d")
wait_for "caught_up '$J1' nightscout" 60 || fail "kinds: not delivered: $(tail -3 "$WORK/kinds.log")"
stop_pid $d
check_once "$J1" "$KINDS_URL" "v1"
"$DIABRIDGE" export --journal "$J1" | jq -r .kind | sort -u | tr '\n' ' ' >"$WORK/kinds.txt"
for k in glucose meter bolus carbs basal event status calibration; do
  grep -qw $k "$WORK/kinds.txt" || fail "the sim produced no $k records in 12 days"
done
E=$(curl -sf "$KINDS_URL/_sim/dump/entries")
T=$(curl -sf "$KINDS_URL/_sim/dump/treatments")
DS=$(curl -sf "$KINDS_URL/_sim/dump/devicestatus")
echo "$E" | jq -e '[.[] | select(.type=="sgv")] | length > 3000 and all(
    (.sgv|type)=="number" and (.date|type)=="number" and (.dateString|type)=="string" and
    (.sysTime|type)=="string" and (.trend|type)=="number" and (.direction|type)=="string" and
    (.noise|type)=="number" and (.filtered|type)=="number" and (.unfiltered|type)=="number" and
    (.rssi|type)=="number" and (.device=="sim:SIM4") and (.utcOffset==60 or .utcOffset==120))' \
  >/dev/null || fail "sgv entries lack documented fields"
# date and dateString name the same instant (the server rewrote dateString to UTC)
echo "$E" | jq -e 'all(((.dateString | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) * 1000) == .date)' \
  >/dev/null || fail "date and dateString disagree"
echo "$E" | jq -e '[.[] | .direction // empty] | all(IN("NONE","DoubleUp","SingleUp",
    "FortyFiveUp","Flat","FortyFiveDown","SingleDown","DoubleDown","NOT COMPUTABLE",
    "RATE OUT OF RANGE"))' >/dev/null || fail "direction names are not Nightscout's"
echo "$E" | jq -e '[.[] | select(.type=="mbg")] | length > 0 and all((.mbg|type)=="number")' \
  >/dev/null || fail "mbg entries"
echo "$E" | jq -e '[.[] | select(.type=="cal")] | length > 0 and
    all((.slope|type)=="number" and (.intercept|type)=="number" and (.scale|type)=="number")' \
  >/dev/null || fail "cal entries"
echo "$T" | jq -e 'all((.eventType|type)=="string" and (.created_at|test("Z$")))' >/dev/null ||
  fail "treatments without eventType/created_at"
n_meter=$("$DIABRIDGE" export --journal "$J1" | jq -s '[.[] | select(.kind=="meter")] | length')
echo "$T" | jq -e --argjson n "$n_meter" '[.[] | select(.eventType=="BG Check" and .glucose>0
    and .glucoseType=="Finger")] | length == $n' >/dev/null || fail "BG Check per meter reading"
echo "$T" | jq -e '[.[] | select(.eventType=="Meal Bolus")] | length > 0 and
    all(.insulin>0 and .carbs>0)' >/dev/null || fail "Meal Bolus"
echo "$T" | jq -e '[.[] | select(.eventType=="Carb Correction")] | length > 0 and all(.carbs>0)' \
  >/dev/null || fail "Carb Correction"
echo "$T" | jq -e '[.[] | select(.eventType=="Temp Basal")] | length > 0 and
    all((.absolute|type)=="number" and .duration>0)' >/dev/null || fail "Temp Basal"
for et in "Sensor Start" "Sensor Stop" "Exercise"; do
  echo "$T" | jq -e --arg et "$et" 'any(.eventType==$et)' >/dev/null || fail "no $et treatment"
done
echo "$DS" | jq -e 'length > 0 and all(.device=="sim:SIM4" and (.created_at|type)=="string" and
    (.pump.battery.percent|type)=="number")' >/dev/null || fail "devicestatus"
pass "v1: every record kind arrived once with its documented fields ($(echo "$E" | jq length) entries, $(echo "$T" | jq length) treatments, $(echo "$DS" | jq length) devicestatus)"

# Re-sending everything (cursor reset, as after a lost acknowledgement)
# changes nothing: the server's dedup and our devicestatus check absorb it.
posts_before=$(n_stored "$KINDS_URL" posts)
sqlite3 "$J1" "UPDATE sink_cursor SET last_seq=0 WHERE sink='nightscout'"
deliver "$J1" "nightscout+$KINDS_URL,api-secret=$SECRET,batch=300"
[ "$(n_stored "$KINDS_URL" posts)" -gt "$posts_before" ] || fail "nothing was re-sent"
check_once "$J1" "$KINDS_URL" "v1 re-send"
pass "v1: re-sending everything created no duplicate"

# --- 2. API v3 with an access token ------------------------------------------
start_ns v3 --jwt-lifetime 3600
V3_URL=$NS_URL
# same journal, same sink name: start its cursor from the beginning again
sqlite3 "$J1" "UPDATE sink_cursor SET last_seq=0 WHERE sink='nightscout'"
"$DIABRIDGE" run --journal "$J1" --log-level warning \
  --sink "nightscout+$V3_URL,token=$TOKEN,api=v3" 2>"$WORK/v3.log" &
d=$!
PIDS+=("$d")
wait_for "all_there '$J1' '$V3_URL'" 60 || fail "v3: not delivered: $(tail -3 "$WORK/v3.log")"
stop_pid $d
check_once "$J1" "$V3_URL" "v3"
curl -sf "$V3_URL/_sim/dump/treatments" | jq -e 'all(.app=="diabridge" and (.date|type)=="number"
    and (.utcOffset|type)=="number" and (.srvCreated|type)=="number")' >/dev/null ||
  fail "v3 documents lack date/app/utcOffset"
# identifiers are Nightscout's own computation for treatments: device_date_eventType
curl -sf "$V3_URL/_sim/dump/treatments" | jq -r '.[0] | "\(.device) \(.date) \(.eventType) \(.identifier)"' \
  >"$WORK/v3.one"
read -r dev date _ <"$WORK/v3.one"
et=$(cut -d' ' -f3- "$WORK/v3.one" | sed 's/ [^ ]*$//')
want=$(python3 -c "import uuid,sys; print(uuid.uuid5(uuid.UUID(bytes=b'NightscoutRocks!'), sys.argv[1]))" \
  "${dev}_${date}_${et}")
[ "$want" = "$(awk '{print $NF}' "$WORK/v3.one")" ] || fail "v3 identifier is not UUIDv5(NightscoutRocks!)"
sqlite3 "$J1" "UPDATE sink_cursor SET last_seq=0 WHERE sink='nightscout'"
deliver "$J1" "nightscout+$V3_URL,token=$TOKEN,api=v3"
check_once "$J1" "$V3_URL" "v3 re-send"
pass "v3: every record once, identifiers as Nightscout computes them, re-send deduplicated"

# --- 3. outage: down at start, connections dropped and 500s mid-run ---------
start_ns probe
OUT_URL=$NS_URL
port=${OUT_URL##*:}
stop_pid "$NS_PID" # nothing listens there now: connection refused
J3="$WORK/outage.db"
"$DIABRIDGE" run --journal "$J3" --log-level info --source "sim,seed=6,history=2d,speed=300" \
  --sink "nightscout+$OUT_URL,api-secret=$SECRET,batch=100" 2>"$WORK/outage.log" &
d=$!
PIDS+=("$d")
wait_for "grep -q 'sending failed' '$WORK/outage.log'" 30 || fail "outage: no failure while down"
start_ns outage --port "$port"
[ "$NS_URL" = "$OUT_URL" ] || fail "could not restart the fake Nightscout on port $port"
wait_for "[ \$(n_stored '$OUT_URL' entries) -gt 500 ]" 60 || fail "outage: nothing after the server came up"
curl -sf "$OUT_URL/_sim/fault?mode=down&count=2" >/dev/null
wait_for "[ \$(curl -sf '$OUT_URL/_sim/fault' | jq -r .mode) = none ]" 60 || fail "outage: sink never retried while down"
curl -sf "$OUT_URL/_sim/fault?mode=500&count=2" >/dev/null
wait_for "[ \$(curl -sf '$OUT_URL/_sim/fault' | jq -r .mode) = none ]" 60 || fail "outage: 500s not retried"
stop_pid $d
deliver "$J3" "nightscout+$OUT_URL,api-secret=$SECRET"
check_once "$J3" "$OUT_URL" "outage"
grep -q "Server returned nothing\|Connection refused\|Couldn't connect\|HTTP 500" "$WORK/outage.log" ||
  fail "outage: the failures were not logged"
pass "outage: refused, dropped and 500 → every record present once"

# --- 4. crash: SIGKILL mid-batch, restart ------------------------------------
start_ns crash
CRASH_URL=$NS_URL
J4="$WORK/crash.db"
for i in $(seq 1 10); do
  posts_before=$(n_stored "$CRASH_URL" posts)
  "$DIABRIDGE" run --journal "$J4" --log-level warning \
    --source "sim,seed=7,speed=3000,history=48h,max-batch=64" \
    --sink "nightscout+$CRASH_URL,api-secret=$SECRET,batch=25" 2>>"$WORK/crash.log" &
  pid=$!
  PIDS+=("$pid")
  # Mid-delivery: once this run's sink has begun posting (however long a
  # loaded machine takes to get there), then at a random point of the
  # batches that follow.  The sim adds a reading every 0.1 s, so there is
  # always more to post.
  wait_for "[ \$(n_stored '$CRASH_URL' posts) -gt $posts_before ] || ! kill -0 $pid 2>/dev/null" 120 ||
    fail "crash: run $i posted nothing: $(tail -3 "$WORK/crash.log")"
  sleep "0.$(printf '%03d' $((RANDOM % 300)))"
  kill -9 "$pid" 2>/dev/null || fail "daemon exited before kill $i: $(tail -3 "$WORK/crash.log")"
  wait "$pid" 2>/dev/null || true
done
[ "$(n_stored "$CRASH_URL" posts)" -gt 0 ] || fail "crash: nothing was posted before the kills"
deliver "$J4" "nightscout+$CRASH_URL,api-secret=$SECRET,batch=25"
check_once "$J4" "$CRASH_URL" "crash"
pass "crash: 10 SIGKILLs, nothing missing, nothing duplicated ($(n_stored "$CRASH_URL" posts) posts)"

# --- 5. wrong secret: nothing lost, reported; fixed → everything arrives -----
start_ns secret
SEC_URL=$NS_URL
J5="$WORK/secret.db"
"$DIABRIDGE" run --journal "$J5" --log-level info --source "sim,seed=8,history=6h" \
  --sink "nightscout+$SEC_URL,api-secret=not the right secret" 2>"$WORK/secret.log" &
d=$!
PIDS+=("$d")
wait_for "'$DIABRIDGE' status --journal '$J5' 2>/dev/null | grep -q 'Nightscout rejected the secret/token'" 30 ||
  fail "wrong secret not reported in status: $("$DIABRIDGE" status --journal "$J5")"
grep -q "Nightscout rejected the secret/token" "$WORK/secret.log" || fail "wrong secret not logged"
grep -q "not the right secret" "$WORK/secret.log" && fail "the secret appears in the log"
"$DIABRIDGE" status --journal "$J5" | grep -q "not the right secret" && fail "the secret appears in status"
[ "$(n_stored "$SEC_URL" entries)" -eq 0 ] || fail "entries stored with a wrong secret"
stop_pid $d
# the raw secret's SHA-1 given directly also works
HASH=$(printf '%s' "$SECRET" | sha1sum | cut -d' ' -f1)
deliver "$J5" "nightscout+$SEC_URL,api-secret=$HASH"
check_once "$J5" "$SEC_URL" "secret fixed"
pass "wrong secret: reported, nothing stored or lost; after the fix everything arrived"

# --- 6. a refused record is dead-lettered; a too-large batch is split --------
start_ns poison --max-body 60000
POI_URL=$NS_URL
J6="$WORK/poison.db"
"$DIABRIDGE" run --journal "$J6" --log-level warning --source "sim,seed=9,history=1d" 2>/dev/null &
d=$!
PIDS+=("$d")
wait_for "[ \$(sqlite3 '$J6' 'SELECT count(*) FROM records' 2>/dev/null || echo 0) -gt 200 ]" 30 ||
  fail "poison: no records"
stop_pid $d
# A reading no other record shares its time with: the fake refuses every
# document of that time, and a status record can fall on a reading's time.
bad=$("$DIABRIDGE" export --journal "$J6" | jq -s -r '
  (group_by(.t_utc_ms) | map(select(length == 1) | .[0].t_utc_ms)) as $alone
  | [.[] | select(.kind == "glucose" and (.t_utc_ms as $t | $alone | index($t)))][100].t_utc_ms')
bad_key=$("$DIABRIDGE" export --journal "$J6" | jq -s -r --argjson t "$bad" \
  '.[] | select(.kind=="glucose" and .t_utc_ms==$t) | .record_key')
curl -sf "$POI_URL/_sim/reject?date=$bad" >/dev/null
deliver "$J6" "nightscout+$POI_URL,api-secret=$SECRET,batch=500"
[ "$(sqlite3 "$J6" "SELECT count(*) FROM dead_letter WHERE sink='nightscout'")" -eq 1 ] ||
  fail "poison: expected one dead letter"
sqlite3 "$J6" "SELECT reason FROM dead_letter" | grep -q "refused" || fail "poison: no reason"
expected_ids "$J6" entries | wc -l >"$WORK/poison.want"
[ "$(n_stored "$POI_URL" entries)" -eq $(($(cat "$WORK/poison.want") - 1)) ] ||
  fail "poison: all entries but the refused one should be stored"
curl -sf "$POI_URL/_sim/dump/entries" | jq -e --arg k "$bad_key" 'all(.diabridge_key != $k)' \
  >/dev/null || fail "poison: the refused record was stored"
grep -q "giving up on record" "$WORK/deliver.log" || fail "poison: dead letter not logged"
[ "$(n_stored "$POI_URL" too_large)" -gt 0 ] || fail "poison: no batch was too large for --max-body"
pass "a refused record was dead-lettered with its reason; 413 batches were split; the rest arrived"

# --- 7. a 90-day backlog -------------------------------------------------------
start_ns backlog
BL_URL=$NS_URL
J7="$WORK/backlog.db"
"$DIABRIDGE" run --journal "$J7" --log-level warning --source "sim,seed=10,history=90d" \
  --sink "nightscout+$BL_URL,api-secret=$SECRET" 2>"$WORK/backlog.log" &
d=$!
PIDS+=("$d")
wait_for "caught_up '$J7' nightscout && [ \$(sqlite3 '$J7' 'SELECT count(*) FROM records') -gt 25000 ]" 300 ||
  fail "backlog not delivered: $(tail -3 "$WORK/backlog.log")"
stop_pid $d
check_once "$J7" "$BL_URL" "backlog"
pass "90-day backlog: $(n_stored "$BL_URL" entries) entries, $(n_stored "$BL_URL" treatments) treatments in $(n_stored "$BL_URL" posts) posts"

# --- 8. a real Nightscout, when one is given ----------------------------------
if [ -n "${NS_TEST_URL:-}" ] && [ -n "${NS_TEST_API_SECRET:-}" ]; then
  J8="$WORK/real.db"
  seed=$((RANDOM + 1000))
  "$DIABRIDGE" run --journal "$J8" --log-level warning --source "sim,seed=$seed,history=3h" \
    --sink "nightscout+$NS_TEST_URL,api-secret=$NS_TEST_API_SECRET" 2>"$WORK/real.log" &
  d=$!
  PIDS+=("$d")
  wait_for "caught_up '$J8' nightscout" 120 || fail "real Nightscout: not delivered: $(tail -3 "$WORK/real.log")"
  stop_pid $d
  since=$(($(date +%s) * 1000 - 4 * 3600 * 1000))
  HASH=$(printf '%s' "$NS_TEST_API_SECRET" | sha1sum | cut -d' ' -f1)
  got=$(curl -sfg -H "api-secret: $HASH" \
    "$NS_TEST_URL/api/v1/entries.json?find[device]=sim:SIM$seed&find[date][\$gte]=$since&count=10000" |
    jq 'map(.identifier) | unique | length')
  want=$(expected_ids "$J8" entries | wc -l)
  [ "$got" -eq "$want" ] || fail "real Nightscout holds $got of $want entries"
  pass "real Nightscout at $NS_TEST_URL: $got entries"
else
  echo "skip: NS_TEST_URL / NS_TEST_API_SECRET not set, no real Nightscout smoke test"
fi

# --- 9. what sits in front of Nightscout in the field ------------------------
# A small stand-in site (Python standard library), for what the fake
# Nightscout does not do: redirect every request to https (a site that
# moved), answer 400 with nginx's page to everything (an http:// address
# sent to an https port), answer 200 with a login page (a captive portal),
# or refuse some documents with an HTML page (a web application firewall).
cat >"$WORK/odd_site.py" <<'PY'
import http.server, json, sys, threading, time

mode = sys.argv[1]
blocked = [k for k in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if k]
NGINX_400 = (b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title>"
             b"</head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The "
             b"plain HTTP request was sent to HTTPS port</center>\r\n<hr><center>nginx</center>"
             b"\r\n</body>\r\n</html>\r\n")
LOGIN = b"<html><body><h1>Welcome</h1><p>Please sign in to continue.</p></body></html>"
BLOCKED = b"<html><body><h1>Request blocked</h1></body></html>"
lock = threading.Lock()
stored = {}  # identifier -> document (waf)

class Site(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_ids":
            with lock:
                return self.answer(200, json.dumps(sorted(stored)).encode())
        if mode == "redirect":
            where = "https://%s%s" % (self.headers.get("Host"), self.path)
            return self.answer(301, b"<html>Moved</html>", "text/html", [("Location", where)])
        if mode == "html400":
            return self.answer(400, NGINX_400, "text/html")
        if self.path.startswith("/api/v2/authorization/request/"):
            jwt = {"token": "odd.jwt", "exp": int(time.time()) + 3600}
            return self.answer(200, json.dumps(jwt).encode())
        if mode == "portal":
            return self.answer(200, LOGIN, "text/html")
        if mode == "waf":
            if self.command != "POST":
                return self.answer(200, b"[]")
            if any(k.encode() in body for k in blocked):
                return self.answer(400, BLOCKED, "text/html")
            docs = json.loads(body)
            with lock:
                for doc in docs:
                    stored[doc["identifier"]] = doc
            return self.answer(200, json.dumps(docs).encode())
        return self.answer(404, b"{}")

    do_GET = do_POST = any

site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
print("http://127.0.0.1:%d" % site.server_address[1], flush=True)
site.serve_forever()
PY

start_odd() { # NAME MODE [BLOCKED-KEYS]: sets ODD_URL
  python3 "$WORK/odd_site.py" "$2" "${3:-}" >"$WORK/$1.url" 2>"$WORK/$1.err" &
  PIDS+=("$!")
  wait_for "[ -s '$WORK/$1.url' ]" 10 || fail "stand-in site $1 did not start"
  ODD_URL=$(head -1 "$WORK/$1.url")
}
# odd_start NAME SINK: the daemon alone with SINK, on a fresh copy of $J9
odd_start() {
  sqlite3 "$J9" ".backup '$WORK/$1.db'"
  "$DIABRIDGE" run --journal "$WORK/$1.db" --log-level info --sink "$2" 2>"$WORK/$1.log" &
  ODD_PID=$!
  PIDS+=("$ODD_PID")
}
status_of() { "$DIABRIDGE" status --journal "$WORK/$1.db" 2>&1; }
dead_letters() { sqlite3 "$WORK/$1.db" "SELECT count(*) FROM dead_letter"; }
cursor_of() { sqlite3 "$WORK/$1.db" "SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='nightscout'"; }

J9="$WORK/odd.db"
"$DIABRIDGE" run --journal "$J9" --log-level warning --source "sim,seed=11,history=6h" 2>/dev/null &
d=$!
PIDS+=("$d")
wait_for "[ \$(sqlite3 '$J9' \"SELECT count(*) FROM records WHERE kind='glucose'\" 2>/dev/null || echo 0) -gt 60 ]" 60 ||
  fail "odd: no records"
stop_pid $d

# 9a. A site that redirects http → https: the v3 token exchange carries the
# access token in its path, and the redirect echoes it back.
TOKEN_SECRET_PART=${TOKEN##*-}
start_odd redirect redirect
for api in v3 v1; do
  n=redirect-$api
  odd_start $n "nightscout+$ODD_URL,token=$TOKEN,api=$api"
  wait_for "grep -qs 'sending failed' '$WORK/$n.log'" 60 || fail "$n: no failure logged: $(tail -3 "$WORK/$n.log")"
  wait_for "status_of $n | grep -q 'redirect'" 60 || fail "$n: the redirect is not in status: $(status_of $n)"
  status_of $n >"$WORK/$n.status"
  stop_pid "$ODD_PID"
  grep -qF "$TOKEN_SECRET_PART" "$WORK/$n.log" && fail "$n: the access token is in the log"
  grep -qF "$TOKEN_SECRET_PART" "$WORK/$n.status" && fail "$n: the access token is in status"
  grep -qF "nightscout+https://127.0.0.1:${ODD_URL##*:} in the configuration" "$WORK/$n.log" ||
    fail "$n: the log does not say which address to configure: $(grep failed "$WORK/$n.log" | tail -1)"
done
pass "redirect to https: reported with the address to configure; the token is in neither log nor status"

# 9b. Every request answered 400 with nginx's page: a wrong address, not bad
# records.  Nothing may be dead-lettered, and the message says what to check.
start_odd html400 html400
for api in v1 v3; do
  n=html400-$api
  if [ $api = v1 ]; then sink="nightscout+$ODD_URL,api-secret=$SECRET"; else sink="nightscout+$ODD_URL,token=$TOKEN,api=v3"; fi
  odd_start $n "$sink"
  wait_for "grep -qs 'sending failed\|giving up on record' '$WORK/$n.log'" 60 ||
    fail "$n: no failure reported: $(tail -3 "$WORK/$n.log")"
  stop_pid "$ODD_PID"
  [ "$(dead_letters $n)" -eq 0 ] || fail "$n: $(dead_letters $n) records dead-lettered for a 400 to everything"
  [ "$(cursor_of $n)" -eq 0 ] || fail "$n: the cursor moved"
  grep 'sending failed' "$WORK/$n.log" | grep -q 'http:// or https://.*proxy' ||
    fail "$n: the message does not say what to check: $(grep failed "$WORK/$n.log" | tail -1)"
  grep 'sending failed' "$WORK/$n.log" | grep -q 'plain HTTP request was sent to HTTPS port' ||
    fail "$n: the message does not quote the site's answer"
done
pass "400 with a proxy's page to everything: nothing dead-lettered, the message says to check address and proxy"

# 9c. API v3 behind a captive portal that answers 200 with a login page:
# nothing is stored, so the cursor must not move.
start_odd portal portal
n=portal-v3
odd_start $n "nightscout+$ODD_URL,token=$TOKEN,api=v3"
wait_for "grep -qs 'sending failed' '$WORK/$n.log' || caught_up '$WORK/$n.db' nightscout" 60 ||
  fail "$n: neither failed nor delivered: $(tail -3 "$WORK/$n.log")"
stop_pid "$ODD_PID"
[ "$(cursor_of $n)" -eq 0 ] || fail "$n: the cursor moved past records a login page 'accepted'"
grep -q "not Nightscout's" "$WORK/$n.log" || fail "$n: the log does not say the answer was not Nightscout's"
pass "v3: a 200 login page does not count as stored"

# 9d. A firewall that refuses two records with an HTML page while it lets the
# rest through: those two are dead-lettered (the site evidently accepts
# documents), even the journal's first reading, which is sent before
# anything else was accepted.  (The first record of all depends on the time
# of day the simulated history starts: a meal may come first.)
first=$(sqlite3 "$J9" "SELECT record_key FROM records WHERE published=1 AND kind='glucose' ORDER BY seq LIMIT 1")
mid=$(sqlite3 "$J9" "SELECT record_key FROM records WHERE published=1 AND kind='glucose' ORDER BY seq LIMIT 1 OFFSET 30")
start_odd waf waf "$first,$mid"
n=waf-v1
odd_start $n "nightscout+$ODD_URL,api-secret=$SECRET"
wait_for "caught_up '$WORK/$n.db' nightscout" 60 || fail "$n: not delivered: $(tail -3 "$WORK/$n.log")"
# Asked to send them again while the firewall still blocks them: a batch of
# nothing but refused records gives no evidence about them, so the new try
# is given up with that reason (not repeated before every live batch), and
# the sink keeps running.  The CLI wakes the daemon with SIGHUP.
"$DIABRIDGE" dead-letters --journal "$WORK/$n.db" --retry | grep -q "^2 dead letters marked.*sends them now" ||
  fail "$n: --retry did not mark the two and wake the daemon"
pending_retry() { sqlite3 "$WORK/$n.db" "SELECT count(*) FROM dead_letter WHERE retry = 1"; }
wait_for "[ \$(pending_retry) = 0 ]" 20 || fail "$n: the daemon did not make the new try: $(tail -3 "$WORK/$n.log")"
[ "$(sqlite3 "$WORK/$n.db" "SELECT count(*) FROM dead_letter WHERE reason LIKE 'another try failed:%'")" = 2 ] ||
  fail "$n: dead letters after the failed try: $(sqlite3 "$WORK/$n.db" "SELECT reason FROM dead_letter")"
kill -0 "$ODD_PID" || fail "$n: the daemon stopped"
status_of $n | grep -A3 "^sink" | grep -q "running" || fail "$n: the sink is not running: $(status_of $n)"
stop_pid "$ODD_PID"
printf '%s\n' "$first" "$mid" >"$WORK/$n.want"
sqlite3 "$WORK/$n.db" "SELECT r.record_key FROM dead_letter d JOIN records r ON r.seq = d.seq ORDER BY r.seq" \
  >"$WORK/$n.got"
cmp -s "$WORK/$n.want" "$WORK/$n.got" || fail "$n: dead letters $(tr '\n' ' ' <"$WORK/$n.got"), expected the two blocked records"
"$DIABRIDGE" export --journal "$WORK/$n.db" --format nightscout |
  jq -r --arg a "$first" --arg b "$mid" '[.entries[], .treatments[], .devicestatus[]] |
    map(select(.diabridge_key != $a and .diabridge_key != $b)) | .[].identifier' | sort >"$WORK/$n.exp"
curl -sf "$ODD_URL/_ids" | jq -r '.[]' | sort >"$WORK/$n.ids"
cmp -s "$WORK/$n.exp" "$WORK/$n.ids" || fail "$n: the site does not hold every other document"
grep 'giving up on record' "$WORK/$n.log" | grep -q 'not a Nightscout answer' ||
  fail "$n: the dead-letter reason does not say the refusal was not Nightscout's"
pass "a firewall's HTML refusal of two records: those two dead-lettered, everything else delivered; a new try while still blocked is given up, not repeated"

# 9e. Events that share an eventType (Note, Announcement), at the same
# millisecond from one device, stay separate treatments (API v1 and v3).
n=same-ms
sqlite3 "$J9" ".backup '$WORK/$n.db'"
tmpl=$(sqlite3 "$WORK/$n.db" "SELECT payload FROM records WHERE kind='glucose' ORDER BY seq DESC LIMIT 1")
src=$(sqlite3 "$WORK/$n.db" "SELECT source FROM records WHERE kind='glucose' ORDER BY seq DESC LIMIT 1")
for ev in prime:0 time_change:0 alarm:17 alarm:18; do
  key=$(printf '%s' "same-ms-$ev" | md5sum | cut -c1-32)
  payload=$(echo "$tmpl" | jq -c --arg k "$key" --arg et "${ev%:*}" --argjson code "${ev#*:}" \
    '{kind: "event", record_key: $k, t_utc_ms, time, device_time, utc_offset_min, received_ms,
      driver, device_id, origin, sensor, event_type: $et, code: $code, text: ""}')
  t=$(echo "$payload" | jq .t_utc_ms)
  sqlite3 "$WORK/$n.db" "INSERT INTO records(record_key, kind, t_utc_ms, source, published, received_ms, payload)
    VALUES('$key', 'event', $t, '$src', 1, $t, '$payload')"
done
for api in v1 v3; do
  start_ns "$n-$api"
  sqlite3 "$WORK/$n.db" "DELETE FROM sink_cursor"
  if [ $api = v1 ]; then sink="nightscout+$NS_URL,api-secret=$SECRET"; else sink="nightscout+$NS_URL,token=$TOKEN,api=v3"; fi
  deliver "$WORK/$n.db" "$sink"
  got=$(curl -sf "$NS_URL/_sim/dump/treatments" | jq --arg t "$(date -u -d @$((t / 1000)) +%Y-%m-%dT%H:%M:%S.000Z)" \
    '[.[] | select(.created_at == $t and (.eventType == "Note" or .eventType == "Announcement"))] | length')
  [ "$got" -eq 4 ] || fail "$n-$api: $got of 4 same-instant events stored"
  check_once "$WORK/$n.db" "$NS_URL" "$n-$api"
done
pass "a prime, a time change and two alarms at one instant: four treatments (v1 and v3)"

# 9f. Nothing answers, or not in time: the message says what to check.
DEAD_PORT=0
pick_port DEAD_PORT
n=refused
odd_start $n "nightscout+http://127.0.0.1:$DEAD_PORT,api-secret=$SECRET"
wait_for "grep -qs 'sending failed' '$WORK/$n.log'" 60 || fail "$n: no failure logged: $(tail -3 "$WORK/$n.log")"
stop_pid "$ODD_PID"
grep 'sending failed' "$WORK/$n.log" | grep -q "check that the address is right.*the site is up" ||
  fail "$n: the message does not say what to check: $(grep failed "$WORK/$n.log" | tail -1)"
start_ns slow --fault slow --slow-ms 4000
n=timeout
odd_start $n "nightscout+$NS_URL,api-secret=$SECRET,timeout=1"
wait_for "grep -qs 'sending failed' '$WORK/$n.log'" 60 || fail "$n: no failure logged: $(tail -3 "$WORK/$n.log")"
stop_pid "$ODD_PID"
grep 'sending failed' "$WORK/$n.log" | grep -q "no answer within 1 s.*is the site up" ||
  fail "$n: the message does not say what to check: $(grep failed "$WORK/$n.log" | tail -1)"
pass "connection refused and timeout: the message says to check the address and whether the site is up"

grep -l "AddressSanitizer\|runtime error\|Segmentation" "$WORK"/*.log "$WORK"/*.err 2>/dev/null &&
  fail "a process crashed"
echo "1 passed, 0 failed"
