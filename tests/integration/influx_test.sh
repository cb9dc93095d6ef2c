#!/usr/bin/env bash
# Sink influx against a real influxd 1.6 (Debian `influxdb`), started here on
# free loopback ports with a temporary config and data folders
# (specs/smartpix-and-sinks.md §4.1).  Checks: points arrive with the
# documented schema and field types (asked with /query); influxd stopped and
# restarted mid-run → every delivered record is present exactly once; a
# field type conflict dead-letters only the refused points, with the
# server's message; a limit of the server (max-values-per-tag) stops the sink
# with advice and sets nothing aside; auth on: a write-only user works, a
# wrong password is a clear error, and https:// to a plain-HTTP port says what
# to check.
source "$(dirname "$0")/lib.bash"

for tool in influxd curl sqlite3 jq; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/bootstrap.sh installs it)"
done


T="$WORK/influx"
mkdir -p "$T"
HTTP= RPC= URL=
write_config() { # auth-enabled true|false [a line for [data]]
  cat >"$T/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$RPC"
[meta]
  dir = "$T/meta"
[data]
  dir = "$T/data"
  wal-dir = "$T/wal"
  query-log-enabled = false
  ${2:-}
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$HTTP"
  auth-enabled = $1
  log-enabled = false
  pprof-enabled = false
[continuous_queries]
  enabled = false
CONF
}
INFLUXD=
start_influxd() { # → 0 when /ping answers 204
  influxd run -config "$T/influxdb.conf" >>"$T/influxd.log" 2>&1 &
  INFLUXD=$!
  PIDS+=($INFLUXD)
  wait_for "[ \"\$(curl -s -o /dev/null -w '%{http_code}' \$URL/ping)\" = 204 ]" 15 && return 0
  kill "$INFLUXD" 2>/dev/null || true
  return 1
}
stop_influxd() { kill -TERM "$INFLUXD"; wait "$INFLUXD" 2>/dev/null || true; }
q() { # db, query [, user:pass] → JSON
  curl -sf -G "$URL/query" ${3:+-u "$3"} --data-urlencode "db=$1" --data-urlencode "q=$2"
}
admin() { curl -sf -XPOST "$URL/query" ${2:+-u "$2"} --data-urlencode "q=$1" >/dev/null || fail "influx: $1"; }
count_of() { # db, measurement, where [, user:pass]
  q "$1" "SELECT count(record_key) FROM \"$2\" $3" "${4:-}" | jq '.results[0].series[0].values[0][1] // 0'
}
cursor_of() { sqlite3 "$1" "SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='$2'" 2>/dev/null || echo 0; }
last_seq() { sqlite3 "$1" "SELECT coalesce(max(seq),0) FROM records WHERE published=1" 2>/dev/null || echo 0; }
journal_count() { # journal, sink, kind
  sqlite3 "$1" "SELECT count(*) FROM records WHERE published=1 AND kind='$3' AND seq<=$(cursor_of "$1" "$2")"
}

# A port picked free may be taken by someone else before influxd binds it:
# then pick new ones (later restarts reuse the ports that worked).
started=0
for attempt in 1 2 3; do
  pick_port HTTP; pick_port RPC
  URL="http://127.0.0.1:$HTTP"
  write_config false
  if start_influxd; then started=1; break; fi
done
[ $started = 1 ] || fail "influxd did not start: $(tail -3 "$T/influxd.log")"
admin "CREATE DATABASE diab"

# --- schema, types, and influxd restarted in the middle of the run ------------
J="$WORK/j.db"
"$DIABRIDGE" run --journal "$J" --sync normal --source "sim,seed=7,speed=600,history=6h" \
  --sink "influx+http://127.0.0.1:$HTTP,db=diab,name=ix" \
  --sink "influx+http://127.0.0.1:$HTTP,db=diab,name=dx,schema=dexpy,measurement=bg" \
  2>"$WORK/run.log" &
daemon=$!
PIDS+=($daemon)
wait_for "[ \$(cursor_of '$J' ix) -ge 70 ] && [ \$(cursor_of '$J' dx) -ge 70 ]" 20 \
  || fail "nothing delivered: $(tail -5 "$WORK/run.log")"

fields=$(q diab "SHOW FIELD KEYS" | jq -c '[.results[0].series[] | .name as $m | .values[] | "\($m).\(.[0])=\(.[1])"]')
for want in glucose.sgv=integer glucose.mmol=float glucose.trend=integer glucose.direction=string \
  glucose.record_key=string bg.cbg=float bg.direction=integer carbs.carbs=float \
  bolus.delivered=float meter.mbg=integer; do
  echo "$fields" | jq -e --arg w "$want" 'index($w) != null' >/dev/null || fail "field $want missing: $fields"
done
tags=$(q diab 'SHOW TAG KEYS FROM glucose' | jq -c '[.results[0].series[0].values[][0]]')
[ "$tags" = '["device","source","type"]' ] || fail "glucose tags: $tags"
[ "$(q diab 'SHOW TAG VALUES FROM bg WITH KEY = device' | jq -r '.results[0].series[0].values[0][1]')" = dexcomg6 ] \
  || fail "dexpy device tag"
pass "points have the documented measurements, tags and field types"

stop_influxd
before=$(last_seq "$J")
wait_for "[ \$(last_seq '$J') -gt $((before + 4)) ]" 10 || fail "the source stopped"
wait_for "grep -q 'cannot write to InfluxDB' '$WORK/run.log'" 10 || fail "the outage was not reported"
start_influxd || fail "influxd did not start again: $(tail -3 "$T/influxd.log")"
target=$(($(last_seq "$J") + 4))
wait_for "[ \$(cursor_of '$J' ix) -ge $target ] && [ \$(cursor_of '$J' dx) -ge $target ]" 30 \
  || fail "did not recover after influxd restarted: $(tail -3 "$WORK/run.log")"
kill -TERM "$daemon"; wait "$daemon" || fail "daemon exit status $?"
for kind in glucose meter calibration bolus basal carbs event status; do
  want=$(journal_count "$J" ix "$kind")
  got=$(count_of diab "$kind" "")
  distinct=$(q diab "SELECT count(distinct(record_key)) FROM \"$kind\"" | jq '.results[0].series[0].values[0][1] // 0')
  [ "$got" = "$want" ] && [ "$distinct" = "$want" ] || fail "$kind: $got points ($distinct distinct) for $want records"
done
want=$(journal_count "$J" dx glucose)
got=$(q diab 'SELECT count(cbg) FROM bg' | jq '.results[0].series[0].values[0][1]')
[ "$got" = "$want" ] || fail "dexpy schema: $got points for $want readings"
# the value itself: the newest reading, as stored in the journal
row=$(sqlite3 -separator ' ' "$J" "SELECT t_utc_ms, mgdl FROM records WHERE kind='glucose' AND published=1 ORDER BY t_utc_ms DESC LIMIT 1")
set -- $row
got=$(q diab "SELECT sgv FROM glucose WHERE time = ${1}ms" | jq '.results[0].series[0].values[0][1]')
[ "$got" = "$2" ] || fail "newest sgv $got, journal $2"
pass "influxd stopped and restarted mid-run: every record present exactly once"

# --- a field type conflict: only the refused points are dead-lettered ---------
admin "CREATE DATABASE conflict"
now=$(date +%s%3N)
curl -sf -XPOST "$URL/write?db=conflict&precision=ms" \
  --data-binary "glucose,device=other sgv=1.5 $now" || fail "seeding the conflict"
J2="$WORK/conflict.db"
"$DIABRIDGE" run --journal "$J2" --sync normal --source "sim,seed=8,speed=60,history=1h" \
  --sink "influx+http://127.0.0.1:$HTTP,db=conflict,name=ix" 2>"$WORK/conflict.log" &
d=$!
PIDS+=($d)
dead_count() { sqlite3 "$J2" "SELECT count(*) FROM dead_letter" 2>/dev/null || echo 0; }
wait_for "[ \$(dead_count) -ge 12 ] && [ \$(cursor_of '$J2' ix) -ge \$(last_seq '$J2') ]" 30 \
  || fail "conflicting points not dead-lettered: $(tail -3 "$WORK/conflict.log")"
kill -TERM $d; wait $d
sqlite3 "$J2" "SELECT reason FROM dead_letter" | grep -q "field type conflict" \
  || fail "dead letter reason: $(sqlite3 "$J2" 'SELECT reason FROM dead_letter LIMIT 1')"
dead_kinds=$(sqlite3 "$J2" "SELECT DISTINCT r.kind FROM dead_letter d JOIN records r USING(seq)")
[ "$dead_kinds" = glucose ] || fail "dead-lettered kinds: $dead_kinds"
[ "$(sqlite3 "$J2" "SELECT count(*) FROM dead_letter")" = "$(journal_count "$J2" ix glucose)" ] \
  || fail "dead letters vs glucose records"
[ "$(count_of conflict status "")" = "$(journal_count "$J2" ix status)" ] || fail "status points lost beside the conflict"
pass "type conflict: the refused points dead-lettered with the server's message, the rest written"

# --- the cause fixed, the dead letters sent again -------------------------------
listing=$("$DIABRIDGE" dead-letters --journal "$J2") || fail "dead-letters listing failed"
grep -q "^sink ix" <<<"$listing" || fail "listing names no sink: $listing"
[ "$(grep -c "refused .*field type conflict" <<<"$listing")" = "$(dead_count)" ] \
  || fail "listing does not show every dead letter with its reason: $listing"
grep -q "dead-letters --retry" <<<"$listing" || fail "listing does not say how to retry"
"$DIABRIDGE" status --journal "$J2" | grep -q "dead letters" || fail "status does not mention the dead letters"
# a retry while the cause is still there: refused again, kept, not lost
"$DIABRIDGE" run --journal "$J2" --sync normal --source "sim,seed=8,speed=60,history=1h" \
  --sink "influx+http://127.0.0.1:$HTTP,db=conflict,name=ix" 2>"$WORK/retry.log" &
d=$!
PIDS+=($d)
before=$(dead_count)
marked=$("$DIABRIDGE" dead-letters --journal "$J2" --retry | sed -n 's/^\([0-9]*\) dead letters\{0,1\} marked.*/\1/p')
# new readings keep arriving (and being refused) meanwhile
[ -n "$marked" ] && [ "$marked" -ge "$before" ] || fail "--retry marked '$marked', want >= $before"
pending() { sqlite3 "$J2" "SELECT count(*) FROM dead_letter WHERE retry = 1" 2>/dev/null || echo 1; }
wait_for "[ \$(pending) = 0 ]" 150 || fail "the daemon did not try the dead letters again"
[ "$(dead_count)" -ge "$before" ] || fail "dead letters lost on a refused retry: $(dead_count) < $before"
grep -q "refused again" "$WORK/retry.log" || fail "a refused retry is not logged"
# the cause fixed: every dead letter is delivered and removed
curl -sf -XPOST "$URL/query" --data-urlencode "db=conflict" --data-urlencode "q=DROP MEASUREMENT glucose" \
  >/dev/null || fail "dropping the conflicting measurement"
"$DIABRIDGE" dead-letters --journal "$J2" --retry >/dev/null || fail "--retry failed"
wait_for "[ \$(dead_count) = 0 ] && [ \$(cursor_of '$J2' ix) -ge \$(last_seq '$J2') ]" 150 \
  || fail "dead letters not delivered after the fix: $(dead_count) left; $(tail -3 "$WORK/retry.log")"
kill -TERM $d; wait $d
[ "$(count_of conflict glucose "")" = "$(journal_count "$J2" ix glucose)" ] \
  || fail "after the retry InfluxDB has $(count_of conflict glucose "") glucose points, the journal $(journal_count "$J2" ix glucose)"
"$DIABRIDGE" dead-letters --journal "$J2" | grep -q "^no dead letters" || fail "listing after delivery"
pass "dead letters: listed with the reason, kept when refused again, delivered once the cause is fixed"

# --- a limit of the server: a setting to change, not records to set aside ----
# max-values-per-tag = 1 and a glucose point of another device already
# stored: every glucose point of ours is refused with "partial write:
# max-values-per-tag limit exceeded".  The records are fine; the sink stops
# with advice instead of dead-lettering every reading.
stop_influxd
write_config false "max-values-per-tag = 1"
start_influxd || fail "influxd did not start with max-values-per-tag: $(tail -3 "$T/influxd.log")"
admin "CREATE DATABASE limited"
curl -sf -XPOST "$URL/write?db=limited&precision=ms" --data-binary "glucose,device=other sgv=100i $now" \
  || fail "seeding the limit"
J4="$WORK/limit.db"
"$DIABRIDGE" run --journal "$J4" --sync normal --source "sim,seed=10,speed=600,history=1h" \
  --sink "influx+http://127.0.0.1:$HTTP,db=limited,name=ix" 2>"$WORK/limit.log" &
d=$!
PIDS+=($d)
wait_for "'$DIABRIDGE' status --journal '$J4' 2>/dev/null | grep -q 'has reached one of its limits'" 20 \
  || fail "the server's limit is not reported: $("$DIABRIDGE" status --journal "$J4")"
kill -TERM $d; wait $d
grep -q "max-values-per-tag limit exceeded" "$WORK/limit.log" || fail "influxd's own words are missing: $(grep -m1 ix: "$WORK/limit.log")"
[ "$(sqlite3 "$J4" "SELECT count(*) FROM dead_letter")" = 0 ] \
  || fail "a server limit dead-lettered records: $(sqlite3 "$J4" 'SELECT reason FROM dead_letter LIMIT 1')"
[ "$(cursor_of "$J4" ix)" -lt "$(last_seq "$J4")" ] || fail "the cursor passed records the server refused"
pass "a limit of influxd (max-values-per-tag) stops the sink with advice; nothing set aside"

# --- auth on: a write-only user ------------------------------------------------
stop_influxd
write_config true
start_influxd || fail "influxd did not start with auth: $(tail -3 "$T/influxd.log")"
admin "CREATE USER admin WITH PASSWORD 'adm1n-pw' WITH ALL PRIVILEGES"
admin "CREATE USER writer WITH PASSWORD 'wr1ter-pw'" admin:adm1n-pw
admin "GRANT WRITE ON diab TO writer" admin:adm1n-pw
J3="$WORK/auth.db"
export DIA_TEST_PW=wr1ter-pw
"$DIABRIDGE" run --journal "$J3" --sync normal --source "sim,seed=9,speed=600,history=1h" \
  --sink "influx+http://127.0.0.1:$HTTP,db=diab,name=bad,username=writer,password=not-it" \
  --sink "influx+http://127.0.0.1:$HTTP,db=diab,name=good,username=writer,password-env=DIA_TEST_PW" \
  --sink "influx+https://127.0.0.1:$HTTP,db=diab,name=tls,username=writer,password-env=DIA_TEST_PW" \
  2>"$WORK/auth.log" &
d=$!
PIDS+=($d)
wait_for "[ \$(cursor_of '$J3' good) -ge 12 ]" 20 || fail "write-only user: $(tail -3 "$WORK/auth.log")"
wait_for "'$DIABRIDGE' status --journal '$J3' | grep -q 'refused the credentials'" 10 \
  || fail "wrong password not explained: $("$DIABRIDGE" status --journal "$J3")"
! grep -q "not-it\|wr1ter-pw" "$WORK/auth.log" || fail "a password was printed"
# https:// to a server that speaks plain HTTP: the URL once, and what to check
wait_for "grep -q 'tls: .*cannot write to InfluxDB' '$WORK/auth.log'" 15 || fail "https to plain HTTP not reported"
tls_msg=$(grep -m1 'tls: .*cannot write to InfluxDB' "$WORK/auth.log")
[ "$(echo "$tls_msg" | grep -o "127.0.0.1:$HTTP/write" | wc -l)" = 1 ] || fail "the URL is not shown once: $tls_msg"
echo "$tls_msg" | grep -q "speaks HTTPS on this port" || fail "no advice for https to plain HTTP: $tls_msg"
kill -TERM $d; wait $d
[ "$(cursor_of "$J3" bad)" -eq 0 ] || fail "cursor moved with a wrong password"
got=$(count_of diab glucose "WHERE device='SIM9'" admin:adm1n-pw)
[ "$got" = "$(journal_count "$J3" good glucose)" ] || fail "write-only user: $got points"
pass "auth on: the write-only user writes, a wrong password is a clear error; https:// to plain HTTP is explained"
echo "1 passed, 0 failed"
