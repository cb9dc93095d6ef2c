#!/usr/bin/env bash
# The dexcom-share source against `diabridge-sim share-server` over real
# loopback HTTP: the daemon must keep a complete, duplicate-free record
# through normal running (with the 8-hour session renewal), session expiry,
# a 3-hour outage of 5xx answers and the pre-2021 numeric format, and must
# never hammer an account whose password is wrong or that is locked.
# Simulated time runs 1200-3000x faster (sim --speed/--anchor and the
# source's time-scale/time-anchor), so hours take seconds.
source "$(dirname "$0")/lib.bash"

SIM="$BUILD/diabridge-sim"
ANCHOR=$(date +%s%3N)

# start_sim NAME ARGS…: runs a share server, sets URL_<NAME>
start_sim() {
  local name=$1
  shift
  "$SIM" share-server --anchor "$ANCHOR" "$@" >"$WORK/$name.url" 2>"$WORK/$name.sim.log" &
  PIDS+=($!)
  disown $! # killed by cleanup; no job notice
  wait_for "[ -s '$WORK/$name.url' ]" 10 || fail "$name: share-server did not start"
  printf -v "URL_${name//-/_}" '%s' "$(head -1 "$WORK/$name.url")"
}

# start_daemon NAME URL SPEED [EXTRA OPTIONS]: a daemon with one dexcom-share source
start_daemon() {
  local name=$1 url=$2 speed=$3 extra=${4:-}
  "$DIABRIDGE" run --journal "$WORK/$name.db" --log-level debug \
    --source "dexcom-share,url=$url,username=share-user,password-file=$WORK/pw.ok,time-scale=$speed,time-anchor=$ANCHOR$extra" \
    2>>"$WORK/$name.log" &
  PIDS+=($!)
  eval "DAEMON_${name//-/_}=$!"
}

stat_of() { curl -sf "$1/_sim/stats" | jq -r ".$2"; }
newest_wt() { sqlite3 "$WORK/$1.db" "SELECT coalesce(max(t_utc_ms),0) FROM records WHERE kind='glucose'" 2>/dev/null || echo 0; }

# Every reading the server holds between the journal's first and last one
# is in the journal with the same value, exactly once.
check_complete() {
  local name=$1 url=$2 db="$WORK/$1.db" first last
  first=$(sqlite3 "$db" "SELECT min(t_utc_ms) FROM records WHERE kind='glucose'")
  last=$(sqlite3 "$db" "SELECT max(t_utc_ms) FROM records WHERE kind='glucose'")
  curl -sf "$url/_sim/readings?since_ms=$first&until_ms=$last" | jq -r '.[] | "\(.wt) \(.mgdl)"' >"$WORK/$name.truth"
  sqlite3 -separator ' ' "$db" "SELECT t_utc_ms, mgdl FROM records WHERE kind='glucose' AND t_utc_ms BETWEEN $first AND $last ORDER BY t_utc_ms" >"$WORK/$name.got"
  diff "$WORK/$name.truth" "$WORK/$name.got" >"$WORK/$name.diff" \
    || fail "$name: journal differs from the server's readings: $(head -5 "$WORK/$name.diff")"
  local dup
  dup=$(sqlite3 "$db" "SELECT count(*) - count(DISTINCT t_utc_ms) FROM records WHERE kind='glucose'")
  # the daemon may still be running: compare the range fixed above
  [ "$dup" -eq 0 ] || fail "$name: $dup duplicate readings"
  wc -l <"$WORK/$name.got"
}

echo "share-pass" >"$WORK/pw.ok"
echo "not-the-password" >"$WORK/pw.bad"

# --- four data scenarios at once --------------------------------------------
start_sim normal --speed 3000
start_sim expiry --speed 1200 --scenario session-expiry --expire-minutes 30
start_sim outage --speed 1200 --scenario outage --outage-start 60 --outage-hours 3
start_sim legacy --speed 1200 --scenario numeric-trend --utc-offset -420
start_daemon normal "$URL_normal" 3000 ",sensor=8GABCD"
start_daemon expiry "$URL_expiry" 1200
start_daemon outage "$URL_outage" 1200
start_daemon legacy "$URL_legacy" 1200

# numeric trends and "/Date(…-0700)/" (spec §4.2; dexpy died on the change, §3.3)
wait_for "[ \$(newest_wt legacy) -gt \$(( $(stat_of "$URL_legacy" anchor_ms) + 1800000 )) ]" 30 \
  || fail "legacy: no readings half an hour after start: $(tail -5 "$WORK/legacy.log")"
n=$(check_complete legacy "$URL_legacy")
[ "$n" -ge 290 ] || fail "legacy: only $n readings (want the 24 h backfill and more)"
sqlite3 "$WORK/legacy.db" "SELECT DISTINCT json_extract(payload,'\$.utc_offset_min') FROM records" | grep -qx -- -420 \
  || fail "legacy: DT offset -0700 not kept"
sqlite3 "$WORK/legacy.db" "SELECT json_extract(payload,'\$.device_time') FROM records LIMIT 1" | grep -q '^/Date(' \
  || fail "legacy: device_time is not the DT text"
# Every reading's numeric trend must be the server's, exactly (how many
# different arrows a day of the simulated patient shows depends on the day).
l_first=$(sqlite3 "$WORK/legacy.db" "SELECT min(t_utc_ms) FROM records WHERE kind='glucose'")
l_last=$(sqlite3 "$WORK/legacy.db" "SELECT max(t_utc_ms) FROM records WHERE kind='glucose'")
curl -sf "$URL_legacy/_sim/readings?since_ms=$l_first&until_ms=$l_last" \
  | jq -r '.[] | "\(.wt) \(.trend)"' >"$WORK/legacy.trend.truth"
sqlite3 -separator ' ' "$WORK/legacy.db" "SELECT t_utc_ms, json_extract(payload,'\$.trend') FROM records
  WHERE kind='glucose' AND t_utc_ms BETWEEN $l_first AND $l_last ORDER BY t_utc_ms" >"$WORK/legacy.trend.got"
[ "$(wc -l <"$WORK/legacy.trend.truth")" -ge 290 ] \
  && diff -q "$WORK/legacy.trend.truth" "$WORK/legacy.trend.got" >/dev/null \
  || fail "legacy: numeric trends not decoded as the server sent them"
pass "numeric-trend (pre-2021) format: $n readings, offsets and trends kept"

# normal: past eight simulated hours, one proactive session renewal (spec §4.4)
normal_start=$(stat_of "$URL_normal" anchor_ms)
wait_for "[ \$(stat_of '$URL_normal' login_by_id) -ge 2 ]" 40 \
  || fail "normal: no session renewal after 8 h: $(tail -5 "$WORK/normal.log")"
renewed=$(stat_of "$URL_normal" sim_now_ms)
wait_for "[ \$(newest_wt normal) -gt $((renewed + 900000)) ]" 20 \
  || fail "normal: no readings after the renewal: $(tail -5 "$WORK/normal.log")"
n=$(check_complete normal "$URL_normal")
[ "$n" -ge 360 ] || fail "normal: only $n readings"
[ "$(stat_of "$URL_normal" authenticate)" -eq 1 ] || fail "normal: authenticated more than once"
now=$(stat_of "$URL_normal" sim_now_ms)
logins=$(stat_of "$URL_normal" login_by_id)
[ "$logins" -le $((1 + (now - normal_start) / (8 * 3600000))) ] \
  || fail "normal: $logins logins in $(((now - normal_start) / 60000)) minutes, want one per 8 h"
[ "$(stat_of "$URL_normal" session_faults)" -eq 0 ] || fail "normal: session faults"
row=$(sqlite3 "$WORK/normal.db" "SELECT json_extract(payload,'\$.origin'), sensor, json_extract(payload,'\$.driver') FROM records LIMIT 1")
# sensor=8GABCD names the group a receiver of transmitter 8GABCD uses
[ "$row" = "cloud|dexcom:8GABCD|dexcom-share" ] || fail "normal: record fields: $row"
# polls never faster than once a (simulated) minute: reads <= minutes elapsed
reads=$(stat_of "$URL_normal" reads)
mins=$(( ($(stat_of "$URL_normal" sim_now_ms) - normal_start) / 60000 ))
[ "$reads" -le $((mins + 1)) ] || fail "normal: $reads reads in $mins simulated minutes"
pass "normal: $n readings complete, $logins logins (renewed every 8 h), $reads reads in $mins min"

# expiry: every dead session costs exactly one new login, and no reading is lost
expiry_start=$(stat_of "$URL_expiry" anchor_ms)
wait_for "[ \$(newest_wt expiry) -gt $((expiry_start + 3 * 3600000)) ]" 40 \
  || fail "expiry: did not get 3 h past start: $(tail -5 "$WORK/expiry.log")"
# Stop first: a poll finishes its fault → login → read before the daemon
# exits, so no login is in flight when the counters are read, and read
# them in one request so they belong to the same instant.
kill -TERM "$DAEMON_expiry"
wait "$DAEMON_expiry" || fail "expiry: daemon exit status $?"
read -r faults logins auths < <(curl -sf "$URL_expiry/_sim/stats" \
  | jq -r '"\(.session_faults) \(.login_by_id) \(.authenticate)"')
[ "$faults" -ge 4 ] || fail "expiry: only $faults session faults in 3 h of 30-minute sessions"
[ "$logins" -eq $((faults + 1)) ] || fail "expiry: $logins logins for $faults expiries, want $((faults + 1))"
[ "$auths" -eq 1 ] || fail "expiry: account id not kept ($auths authentications)"
n=$(check_complete expiry "$URL_expiry")
pass "session expiry: $faults expiries, $logins logins, $n readings, no gap"

# outage: 3 simulated hours of 5xx, then every reading of the gap, once
o_end=$(stat_of "$URL_outage" outage_end_ms)
o_start=$(stat_of "$URL_outage" outage_start_ms)
wait_for "[ \$(newest_wt outage) -gt $((o_end + 900000)) ]" 50 \
  || fail "outage: no recovery: $(tail -5 "$WORK/outage.log")"
read -r o_requests o_logins o_gap logins o_now < <(curl -sf "$URL_outage/_sim/stats" \
  | jq -r '"\(.outage_answers) \(.outage_logins) \(.outage_min_gap_ms) \(.login_by_id) \(.sim_now_ms)"')
o_mins=$(((o_end - o_start) / 60000))
[ "$o_requests" -ge 3 ] || fail "outage: the daemon did not notice the outage"
grep -q "HTTP 50[23]" "$WORK/outage.log" || fail "outage: no 5xx in the log"
# Pacing, in simulated time: never two requests within a minute while Share
# is down, and pauses growing to 5 minutes (1+2+4+5+5… ≈ 36 requests in 3 h).
[ "$o_gap" -ge 60000 ] || fail "outage: two requests $o_gap simulated ms apart"
[ "$o_requests" -le $((o_mins / 4 + 4)) ] \
  || fail "outage: $o_requests requests in $o_mins simulated minutes: no growing back-off"
# The session outlives the outage: no login during it, none because of it.
[ "$o_logins" -eq 0 ] || fail "outage: $o_logins logins while Share was down"
[ "$logins" -le $((1 + (o_now - $(stat_of "$URL_outage" anchor_ms)) / (8 * 3600000))) ] \
  || fail "outage: $logins logins, want one per 8 h"
# Handled in place: each failed request is a failure in status, the source
# is never restarted (a restart would log in again).
o_counters=$("$DIABRIDGE" status --journal "$WORK/outage.db" --json \
  | jq -c '[.workers[] | select(.name == "dexcom-share") | .counters][0]')
[ "$(jq .restarts <<<"$o_counters")" -eq 0 ] || fail "outage: the source was restarted: $o_counters"
[ "$(jq .failures <<<"$o_counters")" -eq "$o_requests" ] \
  || fail "outage: status counts $(jq .failures <<<"$o_counters") failures for $o_requests failed requests"
n=$(check_complete outage "$URL_outage")
in_gap=$(sqlite3 "$WORK/outage.db" "SELECT count(*) FROM records WHERE t_utc_ms >= $o_start AND t_utc_ms < $o_end")
truth_gap=$(curl -sf "$URL_outage/_sim/readings?since_ms=$o_start&until_ms=$((o_end - 1))" | jq length)
[ "$in_gap" -eq "$truth_gap" ] && [ "$in_gap" -ge 30 ] || fail "outage: $in_gap of $truth_gap gap readings"
pass "outage: $o_requests requests in $o_mins min (≥ $((o_gap / 1000)) s apart), no login; $in_gap gap readings recovered, $n in all, no duplicates"

for d in normal outage legacy; do
  pid_var="DAEMON_$d"
  kill -TERM "${!pid_var}"
  wait "${!pid_var}" || fail "$d: daemon exit status $?"
done
! grep -q "share-pass" "$WORK"/*.log || fail "the password appears in a log"

# --- slow answers still work ---------------------------------------------------
start_sim slow --speed 1200 --scenario slow --delay-ms 1500
start_daemon slow "$URL_slow" 1200
wait_for "[ \$(sqlite3 '$WORK/slow.db' 'SELECT count(*) FROM records' 2>/dev/null || echo 0) -ge 290 ]" 20 \
  || fail "slow: readings did not arrive: $(tail -5 "$WORK/slow.log")"
check_complete slow "$URL_slow" >/dev/null
kill -TERM "$DAEMON_slow"
wait "$DAEMON_slow"
pass "slow server: readings complete"

# --- wrong password: one login attempt per back-off period, visible in status -
start_sim auth --speed 1
J="$WORK/auth.db"
run_auth() { # $1 password file
  "$DIABRIDGE" run --journal "$J" --source "dexcom-share,url=$URL_auth,username=share-user,password-file=$1" \
    2>>"$WORK/auth.log" &
  PIDS+=($!)
  AUTH_PID=$!
}
status_has() { "$DIABRIDGE" status --journal "$J" 2>/dev/null | grep -q "$1"; }

run_auth "$WORK/pw.bad"
wait_for "status_has 'wrong password or wrong region'" 15 \
  || fail "wrong password not in status: $("$DIABRIDGE" status --journal "$J")"
grep -q "wrong password or wrong region" "$WORK/auth.log" || fail "wrong password not in the log"
grep -q "trying again in [0-9]* minutes" "$WORK/auth.log" || fail "no long back-off announced"
sleep 3 # a short window in which a retrying client would have tried again
[ "$(stat_of "$URL_auth" password_attempts)" -eq 1 ] \
  || fail "$(stat_of "$URL_auth" password_attempts) login attempts, want 1"
"$DIABRIDGE" status --journal "$J" | grep -q "backing off" || fail "status is not backing off"
kill -TERM $AUTH_PID
wait $AUTH_PID
pass "wrong password: one attempt, stopped, reported in status and log"

# a restart with the same settings does not try again within the back-off
run_auth "$WORK/pw.bad"
wait_for "status_has 'rejected these settings earlier'" 15 || fail "restart: no gate message"
sleep 1
[ "$(stat_of "$URL_auth" password_attempts)" -eq 1 ] || fail "restart retried the same password"
kill -TERM $AUTH_PID
wait $AUTH_PID
pass "restart with the same password: no new attempt"

# once the back-off has passed: exactly one more attempt
sqlite3 "$J" "UPDATE source_state SET value = CAST(value AS INTEGER) - 3700000 WHERE key = 'auth_failed_ms'"
run_auth "$WORK/pw.bad"
wait_for "[ \$(stat_of '$URL_auth' password_attempts) -ge 2 ]" 15 || fail "no attempt after the back-off"
sleep 2
[ "$(stat_of "$URL_auth" password_attempts)" -eq 2 ] || fail "more than one attempt after the back-off"
kill -TERM $AUTH_PID
wait $AUTH_PID
pass "after the back-off: exactly one more attempt"

# a corrected password is tried at once and works; the account id is kept
run_auth "$WORK/pw.ok"
wait_for "[ \$(sqlite3 '$J' 'SELECT count(*) FROM records' 2>/dev/null || echo 0) -ge 280 ]" 15 \
  || fail "corrected password: no readings: $(tail -5 "$WORK/auth.log")"
wait_for "'$DIABRIDGE' status --journal '$J' | grep -Eq 'source +dexcom-share +running'" 15 \
  || fail "status after the fix: $("$DIABRIDGE" status --journal "$J")"
kill -TERM $AUTH_PID
wait $AUTH_PID
auths=$(stat_of "$URL_auth" authenticate)
run_auth "$WORK/pw.ok"
wait_for "[ \$(stat_of '$URL_auth' login_by_id) -ge 2 ]" 15 || fail "no login after restart"
[ "$(stat_of "$URL_auth" authenticate)" -eq "$auths" ] || fail "account id was not kept in the journal"
kill -TERM $AUTH_PID
wait $AUTH_PID
! grep -q "not-the-password\|share-pass" "$WORK/auth.log" || fail "a password was logged"
! "$DIABRIDGE" status --journal "$J" --json | grep -q "not-the-password\|share-pass" || fail "password in status"
pass "corrected password works at once; account id kept; no secret in log or status"

# --- lock-out: no attempt at all for hours, whatever the password --------------
start_sim lock --speed 1 --scenario lockout
J="$WORK/lock.db"
"$DIABRIDGE" run --journal "$J" --source "dexcom-share,url=$URL_lock,username=share-user,password-file=$WORK/pw.ok" \
  2>>"$WORK/lock.log" &
PIDS+=($!)
d=$!
wait_for "status_has 'locked this account'" 15 || fail "lock-out not in status: $("$DIABRIDGE" status --journal "$J")"
kill -TERM $d
wait $d
"$DIABRIDGE" run --journal "$J" --source "dexcom-share,url=$URL_lock,username=share-user,password-file=$WORK/pw.bad" \
  2>>"$WORK/lock.log" &
PIDS+=($!)
d=$!
wait_for "status_has 'reported earlier'" 15 || fail "lock-out forgotten after restart"
kill -TERM $d
wait $d
[ "$(stat_of "$URL_lock" password_attempts)" -eq 1 ] || fail "tried a locked account again"
pass "lock-out: one attempt, then none even with another password"
echo "all passed"
