#!/usr/bin/env bash
# The daemon as a person meets it: systemd notifications, a sink that fails
# and recovers, status, clean shutdown, export formats, and the errors and
# exit statuses of the command line.  Secrets never appear in any output.
source "$(dirname "$0")/lib.bash"

J="$WORK/journal.db"
LOG="$WORK/daemon.log"
NOTIFY="$WORK/notify.sock"

# --- systemd: READY=1 and WATCHDOG=1 over NOTIFY_SOCKET ----------------------
socat -u "UNIX-RECV:$NOTIFY" "OPEN:$WORK/notify.txt,creat,append" &
PIDS+=($!)
wait_for "[ -S '$NOTIFY' ]" 5 || fail "socat did not create the notify socket"

# The sink's folder does not exist yet: its worker must fail, back off,
# report it, and recover by itself once the folder appears.
NOTIFY_SOCKET="$NOTIFY" WATCHDOG_USEC=400000 "$DIABRIDGE" run --journal "$J" \
  --source "sim,seed=5,speed=600,history=6h" \
  --sink "jsonl:$WORK/later/out.jsonl,name=file" 2>"$LOG" &
daemon=$!
PIDS+=($daemon)

wait_for "grep -q READY=1 '$WORK/notify.txt' 2>/dev/null" 10 || fail "no READY=1"
wait_for "[ \$(grep -o WATCHDOG=1 '$WORK/notify.txt' | wc -l) -ge 5 ]" 10 || fail "no WATCHDOG=1 pings"
pass "sd_notify READY=1 and WATCHDOG=1"

wait_for "'$DIABRIDGE' status --journal '$J' 2>/dev/null | grep -q 'backing off'" 15 \
  || fail "status does not show the failing sink: $("$DIABRIDGE" status --journal "$J")"
st=$("$DIABRIDGE" status --journal "$J")
echo "$st" | grep -q "$WORK/later/out.jsonl" || fail "status does not name the file: $st"
echo "$st" | grep -Eq "failures [1-9]" || fail "status shows no failures: $st"
grep -q "retrying in" "$LOG" || fail "no back-off in the log"
pass "failing sink is reported and retried with back-off"

mkdir "$WORK/later"
wait_for "sink_caught_up '$J' file" 40 || fail "sink did not recover after its folder appeared"
pass "sink recovered by itself"

# the supervisor rewrites the status table within a second of a change
wait_for "'$DIABRIDGE' status --journal '$J' | grep -Eq 'sink +file +running'" 5 \
  || fail "status after recovery: $("$DIABRIDGE" status --journal "$J")"
st=$("$DIABRIDGE" status --journal "$J")
echo "$st" | grep -q "backlog 0" || fail "backlog not 0: $st"
"$DIABRIDGE" status --journal "$J" --json | jq -e '.workers | length == 2' >/dev/null \
  || fail "status --json"
pass "status shows running and backlog 0"

kill -TERM "$daemon"
wait "$daemon" || fail "SIGTERM: exit status $?"
grep -q "SIGTERM received" "$LOG" || fail "no shutdown message"
grep -q STOPPING=1 "$WORK/notify.txt" || fail "no STOPPING=1"
pass "SIGTERM gives a clean shutdown (exit 0)"

# --- a torn last line (crash mid-write) is ended before appending -------------
printf '{"kind":"glucose","record_key":"torn' >"$WORK/torn.jsonl"
"$DIABRIDGE" run --journal "$J" --sink "jsonl:$WORK/torn.jsonl" 2>"$WORK/torn.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(wc -l <'$WORK/torn.jsonl') -gt 50 ]" 10 || fail "nothing appended after a torn line"
kill -TERM $d
wait $d
[ "$(head -1 "$WORK/torn.jsonl")" = '{"kind":"glucose","record_key":"torn' ] || fail "fragment not ended"
tail -n +2 "$WORK/torn.jsonl" | jq -e . >/dev/null || fail "lines after the fragment do not parse"
grep -q "cut short" "$WORK/torn.log" || fail "no warning about the torn line"
pass "a torn last line is ended, following records stay whole"

# --- export -----------------------------------------------------------------
n_jsonl=$("$DIABRIDGE" export --journal "$J" | wc -l)
n_csv=$("$DIABRIDGE" export --journal "$J" --format csv | tail -n +2 | wc -l)
[ "$n_jsonl" -gt 70 ] && [ "$n_jsonl" -eq "$n_csv" ] || fail "export: $n_jsonl jsonl vs $n_csv csv rows"
"$DIABRIDGE" export --journal "$J" --format csv >"$WORK/export.csv"
head -1 "$WORK/export.csv" | grep -q '^seq,record_key,kind' || fail "csv header"
ns=$("$DIABRIDGE" export --journal "$J" --format nightscout)
echo "$ns" | jq -e '.entries | map(select(.type=="sgv")) | length > 60' >/dev/null || fail "ns entries"
echo "$ns" | jq -e '.entries | all(.date != null and .dateString != null)' >/dev/null || fail "ns dates"
echo "$ns" | jq -e '.treatments | length > 0 and all(.eventType != null and .created_at != null)' \
  >/dev/null || fail "ns treatments"
since=$("$DIABRIDGE" export --journal "$J" --since 1h | wc -l)
[ "$since" -lt "$n_jsonl" ] || fail "--since did not filter ($since of $n_jsonl)"
pass "export jsonl/csv/nightscout and --since"

# --- demo --------------------------------------------------------------------
g=$("$DIABRIDGE" demo --speed 600 --duration 10 2>/dev/null | jq -r 'select(.kind=="glucose") | .mgdl' | wc -l)
[ "$g" -ge 150 ] || fail "demo printed $g glucose records, want >= 150"
pass "demo --speed 600 --duration 10 printed $g glucose records"

# --- default journal location --------------------------------------------------
HOME="$WORK/home" XDG_STATE_HOME= STATE_DIRECTORY= "$DIABRIDGE" run --source sim,history=1h \
  --sink "jsonl:$WORK/h.jsonl" 2>/dev/null &
d=$!
PIDS+=($d)
wait_for "[ -s '$WORK/home/.local/state/diabridge/journal.db' ]" 10 || fail "no journal under ~/.local/state"
kill -TERM $d
wait $d
pass "journal defaults to ~/.local/state/diabridge/journal.db"

# --- command-line errors ------------------------------------------------------
for verb in run demo export status decode dead-letters; do
  "$DIABRIDGE" "$verb" --version | grep -q '^diabridge [0-9]' || fail "$verb --version"
  "$DIABRIDGE" "$verb" --help >/dev/null || fail "$verb --help"
  set +e
  "$DIABRIDGE" "$verb" --no-such-option >/dev/null 2>"$WORK/err"
  rc=$?
  set -e
  [ $rc -eq 2 ] || fail "$verb with a bad option exited $rc, want 2"
  grep -q "no-such-option" "$WORK/err" || fail "$verb: message does not name the option"
  grep -q "^usage: diabridge $verb" "$WORK/err" || fail "$verb: no usage message: $(cat "$WORK/err")"
done
set +e
"$DIABRIDGE" frobnicate 2>/dev/null; [ $? -eq 2 ] || fail "unknown verb"
"$DIABRIDGE" 2>/dev/null; [ $? -eq 2 ] || fail "no verb"
"$DIABRIDGE" demo --speed fast 2>/dev/null; [ $? -eq 2 ] || fail "demo --speed fast"
"$DIABRIDGE" run --log-level loud 2>"$WORK/err"; rc=$?
[ $rc -eq 2 ] && grep -q "^usage: diabridge run" "$WORK/err" && grep -q 'log-level "loud"' "$WORK/err" \
  || fail "run --log-level loud: exit $rc, $(cat "$WORK/err")"
"$DIABRIDGE" decode dexcom-page "$WORK" 2>"$WORK/err"; rc=$?
[ $rc -eq 1 ] && grep -q "Is a directory" "$WORK/err" || fail "decode of a directory: exit $rc, $(cat "$WORK/err")"
set -e
pass "--help, --version, and a usage message with exit status 2 on every verb"

printf 'journal %s/c.db\nsource sim,speed=60\nsink jsonl,fsync=sometimes\n' "$WORK" >"$WORK/bad.conf"
set +e
"$DIABRIDGE" run -c "$WORK/bad.conf" 2>"$WORK/err"; rc=$?
set -e
[ $rc -eq 78 ] || fail "config error exit $rc, want 78"
grep -q "bad.conf:3: option fsync" "$WORK/err" || fail "config error message: $(cat "$WORK/err")"
pass "config errors name file, line and option (exit 78)"

# --- secrets ------------------------------------------------------------------
# dexpy's sample names every sink with secrets in it; --check prints each
# configured spec (or names a driver this build lacks).
set +e
"$DIABRIDGE" run -c "$DIA_TEST_DATA/config/dexpy.json" --journal "$WORK/d.db" --check \
  >"$WORK/out" 2>"$WORK/err"; rc=$?
set -e
if [ $rc -eq 0 ]; then
  grep -q "configuration is valid" "$WORK/out" || fail "dexpy.json --check: $(cat "$WORK/out")"
  grep -q "<redacted>" "$WORK/err" || fail "dexpy.json --check shows no redacted secret"
else
  [ $rc -eq 78 ] && grep -q "is not available in this build" "$WORK/err" \
    || fail "dexpy.json --check: exit $rc: $(cat "$WORK/err")"
fi
! grep -q "ns-yadayadayada" "$WORK/out" "$WORK/err" || fail "a token was printed"
echo "s3cr3t-pw-file" >"$WORK/pw"
set +e
"$DIABRIDGE" run --journal "$WORK/s.db" --source "sim,password=hunter2-inline" 2>"$WORK/err"
"$DIABRIDGE" run --journal "$WORK/s.db" --source "sim,token-file=$WORK/pw" 2>>"$WORK/err"
set -e
! grep -q "hunter2-inline\|s3cr3t-pw-file" "$WORK/err" || fail "a secret was printed: $(cat "$WORK/err")"
pass "no secret in any output"

# --- SIGTERM while a batch is on the wire: it is finished, not dropped --------
# The fake Nightscout stores each batch at once but answers only after 3 s, so
# the SIGTERM below lands while the sink waits for that answer.  A clean stop
# waits for it and records the delivery; dropping the batch would leave the
# cursor at 0 and send everything again on the next start.
"$BUILD/diabridge-sim" nightscout --api-secret "term-secret-123" --fault slow --slow-ms 3000 \
  >"$WORK/ns.url" 2>"$WORK/ns.err" &
PIDS+=($!)
wait_for "[ -s '$WORK/ns.url' ]" 10 || fail "fake Nightscout did not start"
ns=$(head -1 "$WORK/ns.url")
JT="$WORK/term.db"
"$DIABRIDGE" run --journal "$JT" --source "sim,seed=8,speed=600,history=2h" \
  --sink "nightscout+$ns,name=ns,api-secret=term-secret-123,batch=500" 2>"$WORK/term.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(curl -sf '$ns/_sim/stats' | jq .posts) -ge 1 ]" 30 || fail "no batch was posted"
kill -TERM $d
wait $d || fail "SIGTERM with a batch in flight: exit status $?"
stored=$(curl -sf "$ns/_sim/stats" | jq '.entries + .treatments')
cursor=$(sqlite3 "$JT" "SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='ns'")
[ "$stored" -gt 0 ] || fail "the server stored nothing"
[ "$cursor" -gt 0 ] || fail "the batch in flight was dropped at SIGTERM: cursor 0, server has $stored"
left=$(sqlite3 "$JT" "SELECT count(*) FROM records WHERE published=1 AND seq>$cursor")
grep -q "stopped" "$WORK/term.log" || fail "no clean stop: $(tail -3 "$WORK/term.log")"
pass "SIGTERM finishes the batch in flight (cursor $cursor, $left records left for the next start)"

# --- a damaged journal: clear message, exit 78 (no restart loop), no crash ----
head -c 20000 /dev/urandom >"$WORK/damaged.db"
set +e
"$DIABRIDGE" run --journal "$WORK/damaged.db" --source sim 2>"$WORK/err"; rc=$?
set -e
[ $rc -eq 78 ] || fail "damaged journal exit $rc"
grep -q "damaged.db" "$WORK/err" && grep -q "move the file aside" "$WORK/err" || fail "$(cat "$WORK/err")"
pass "damaged journal: named, explained, exit 78"
echo "1 passed, 0 failed"
