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

# --- a phone clock ahead, redirects, typos, refused sessions, cassettes -------
start_sim future --speed 600 --scenario future-reading --future-minutes 1200
start_sim refused --speed 1200 --scenario session-refused
start_sim redirect --speed 1 --scenario redirect
CAS="$DIA_TEST_DATA/dexcom-share/pydexcom-cassettes"
# Sign-in (account id, session), three reads, then three times the recorded
# expiry: SessionIdNotFound, a new login, the read again.
start_sim cassette --cassette "$CAS/us-authenticate-by-name-then-login-by-id-success.yaml" \
  --cassette "$CAS/latest-glucose-maxcount1-minutes1440.yaml" \
  --cassette "$CAS/session-expired-SessionIdNotFound-then-relogin.yaml"
# simulated time runs from ANCHOR on: what counts is the clock at the start
f_start=$(stat_of "$URL_future" sim_now_ms)
start_daemon future "$URL_future" 600
r_start=$(stat_of "$URL_refused" sim_now_ms)
start_daemon refused "$URL_refused" 1200
start_daemon redirect "$URL_redirect" 1
printf '%s\n' 'p@$$w0rd' >"$WORK/pw.cassette" # pydexcom's placeholders, as recorded
"$DIABRIDGE" run --journal "$WORK/cassette.db" --log-level debug \
  --source "dexcom-share,url=$URL_cassette,username=u\$ern@me,password-file=$WORK/pw.cassette,time-scale=600,time-anchor=$ANCHOR" \
  2>>"$WORK/cassette.log" &
PIDS+=($!)
DAEMON_cassette=$!
"$DIABRIDGE" run --journal "$WORK/dns.db" \
  --source "dexcom-share,url=https://share2.dexcom.invalid,username=share-user,password-file=$WORK/pw.ok" \
  2>>"$WORK/dns.log" &
PIDS+=($!)
DAEMON_dns=$!
worker_of() { "$DIABRIDGE" status --journal "$WORK/$1.db" --json | jq -c '[.workers[] | select(.name == "dexcom-share")][0]'; }

# A reading stamped 20 h ahead (a phone with a wrong clock) is rejected and
# counted, and polling goes on at the readings' pace: accepted, it was
# published and the next poll waited for its time + 5 min 20 s.
f_wt=$(stat_of "$URL_future" future_wt_ms)
# the newest real reading stored (the misdated one, if stored, must not count)
newest_real() { sqlite3 "$WORK/future.db" "SELECT coalesce(max(t_utc_ms),0) FROM records WHERE t_utc_ms < $f_wt" 2>/dev/null || echo 0; }
wait_for "[ \$(newest_real) -gt $((f_start + 3600000)) ]" 40 \
  || fail "future: polling stalled: $(tail -5 "$WORK/future.log")"
[ "$(stat_of "$URL_future" future_served)" -ge 2 ] || fail "future: the misdated reading was not served"
[ "$(sqlite3 "$WORK/future.db" "SELECT count(*) FROM records WHERE t_utc_ms >= $f_wt")" -eq 0 ] \
  || fail "future: the reading from the future was stored"
wait_for "[ \$(worker_of future | jq .counters.implausible) -ge 1 ]" 15 \
  || fail "future: not counted as implausible: $(worker_of future)"
grep -q "more than 5 minutes ahead of this machine's clock" "$WORK/future.log" \
  || fail "future: no warning that names the clock"
check_complete future "$URL_future" >/dev/null
kill -TERM "$DAEMON_future"
wait "$DAEMON_future" || fail "future: daemon exit status $?"
f_state=$(sqlite3 "$WORK/future.db" "SELECT value FROM source_state WHERE owner='dexcom-share' AND key='last_wt_ms'")
[ "$f_state" -gt 0 ] && [ "$f_state" -lt "$f_wt" ] || fail "future: last_wt_ms $f_state stored"
# An earlier version may have stored such a time: at start it is dropped.
sqlite3 "$WORK/future.db" "UPDATE source_state SET value='$f_wt' WHERE owner='dexcom-share' AND key='last_wt_ms'"
f_restart=$(stat_of "$URL_future" sim_now_ms)
start_daemon future "$URL_future" 600
wait_for "[ \$(newest_real) -gt $((f_restart + 1800000)) ]" 30 \
  || fail "future: a stored future time stalled polling after a restart: $(tail -5 "$WORK/future.log")"
grep -q "lies in the future of this machine's clock" "$WORK/future.log" || fail "future: no warning at start"
kill -TERM "$DAEMON_future"
wait "$DAEMON_future" || fail "future: daemon exit status $?"
f_state=$(sqlite3 "$WORK/future.db" "SELECT value FROM source_state WHERE owner='dexcom-share' AND key='last_wt_ms'")
[ "$f_state" -lt "$f_wt" ] || fail "future: the stored future time was kept"
check_complete future "$URL_future" >/dev/null
pass "future: a reading 20 h ahead rejected and counted, polling not stalled, a stored future time dropped at start"

# A server that refuses every session, even one it has just handed out:
# one login, then none for 30 min, 1 h, 2 h… (never one per poll), while
# the reads go on at the outage pace.
wait_for "[ \$(stat_of '$URL_refused' sim_now_ms) -gt $((r_start + 3 * 3600000)) ]" 30 || fail "refused: clock"
kill -TERM "$DAEMON_refused"
wait "$DAEMON_refused" || fail "refused: daemon exit status $?"
read -r r_logins r_reads r_auths r_now < <(curl -sf "$URL_refused/_sim/stats" \
  | jq -r '"\(.login_by_id) \(.reads) \(.authenticate) \(.sim_now_ms)"')
r_mins=$(((r_now - r_start) / 60000))
[ "$r_logins" -ge 2 ] || fail "refused: $r_logins logins in $r_mins min: never tried a new session"
[ "$r_logins" -le $((1 + r_mins / 30)) ] || fail "refused: $r_logins logins in $r_mins min"
[ "$r_reads" -ge 10 ] && [ "$r_reads" -le $((r_mins + 1)) ] || fail "refused: $r_reads reads in $r_mins min"
[ "$r_auths" -eq 1 ] || fail "refused: $r_auths authentications"
worker_of refused | jq -r .last_error | grep -Eq "(refused a session right after the login|still refuses the session).*no new login before" \
  || fail "refused: status $(worker_of refused)"
pass "refused sessions: $r_logins logins and $r_reads reads in $r_mins min"

# A redirect is a wrong address, said once, not a server error for ever.
wait_for "worker_of redirect | jq -r .last_error | grep -q 'HTTP 301'" 15 \
  || fail "redirect: $(worker_of redirect)"
worker_of redirect | jq -r .last_error | grep -q "^wrong server address? Check url=" \
  || fail "redirect: message $(worker_of redirect | jq -r .last_error)"
[ "$(worker_of redirect | jq -r .state)" = "backing off" ] || fail "redirect: not backing off"
grep -q "trying again in [0-9]* minutes" "$WORK/redirect.log" || fail "redirect: no long back-off"
kill -TERM "$DAEMON_redirect"
wait "$DAEMON_redirect" || fail "redirect: daemon exit status $?"
# A url= whose name does not resolve is most likely a typo.
wait_for "worker_of dns | jq -r .last_error | grep -q 'check url= for a typo'" 15 \
  || fail "dns: $(worker_of dns)"
kill -TERM "$DAEMON_dns"
wait "$DAEMON_dns" || fail "dns: daemon exit status $?"
pass "a redirect and an unknown host name point at url="

# The recorded cassettes, served in order: exactly the exchanges recorded
# (request bodies and session ids as recorded), and the readings published
# as MANIFEST.md and share-api-examples.json expect them.
wait_for "[ \$(stat_of '$URL_cassette' cassette_unmatched) -ge 1 ]" 30 \
  || fail "cassette: not replayed to the end: $(curl -sf "$URL_cassette/_sim/stats") $(tail -5 "$WORK/cassette.log")"
kill -TERM "$DAEMON_cassette"
wait "$DAEMON_cassette" || fail "cassette: daemon exit status $?"
read -r c_total c_served c_mismatch < <(curl -sf "$URL_cassette/_sim/stats" \
  | jq -r '"\(.cassette_total) \(.cassette_served) \(.cassette_mismatches)"')
# served: 1 authentication, 1 + 3 logins, 3 + 6 reads; left: the recording's
# second authentication and one login (pydexcom signed in twice)
[ "$c_total" -eq 16 ] && [ "$c_served" -eq 14 ] || fail "cassette: $c_served of $c_total exchanges served, want 14 of 16"
[ "$c_mismatch" -eq 0 ] || fail "cassette: $c_mismatch requests differ from the recording"
[ "$(grep -c "session expired (SessionIdNotFound); logging in again" "$WORK/cassette.log")" -eq 3 ] \
  || fail "cassette: the three recorded expiries were not each followed by one login"
{
  jq -r '.readings[] | select(.name | startswith("current_2025_pydexcom_cassette")) | .expected[0]
    | "\(.wt_epoch_ms) \(.value_mgdl) \(.trend_int) \(.dt_utc_offset | (if .[0:1] == "-" then -1 else 1 end)
       * ((.[1:3] | tonumber) * 60 + (.[3:5] | tonumber)))"' "$DIA_TEST_DATA/dexcom-share/share-api-examples.json"
  echo "1745081913085 216 4 -240" # MANIFEST.md: the second recording, 216 Flat, DT -0400
} | sort >"$WORK/cassette.want"
[ "$(wc -l <"$WORK/cassette.want")" -eq 3 ] || fail "cassette: expected parses missing from share-api-examples.json"
sqlite3 -separator ' ' "$WORK/cassette.db" "SELECT t_utc_ms, mgdl, json_extract(payload,'\$.trend'),
  json_extract(payload,'\$.utc_offset_min') FROM records WHERE kind='glucose' AND published=1 ORDER BY t_utc_ms" \
  >"$WORK/cassette.got"
diff "$WORK/cassette.want" "$WORK/cassette.got" >"$WORK/cassette.diff" \
  || fail "cassette: published records differ from the expected parses: $(cat "$WORK/cassette.diff")"
! grep -q '55555555\|99999999\|p@\$\$w0rd' "$WORK/cassette.log" || fail "cassette: an id or the password was logged"
pass "cassettes replayed: $c_served recorded exchanges, 3 expiries with one login each, 3 readings as expected"

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
# One voice: the line says when the same settings are tried again, the
# supervisor waits exactly that long (auth-retry=, 1 h), and adds no
# schedule of its own (it used to say "trying again in 28 minutes … restart
# diabridge to try at once", which a restart with the same password is not).
line=$(grep "reading failed: Dexcom Share rejected the login" "$WORK/auth.log" | head -1)
[ -n "$line" ] || fail "no log line for the rejected login: $(tail -3 "$WORK/auth.log")"
case "$line" in
*"trying again in"* | *"restart diabridge to try at once"*) fail "two voices: $line" ;;
*"to try at once, change the settings and restart diabridge") ;;
*) fail "rejected login line: $line" ;;
esac
next=$("$DIABRIDGE" status --journal "$J" --json | jq '[.workers[] | select(.name == "dexcom-share")][0].next_attempt_ms')
[ $((next - $(date +%s%3N))) -gt $((55 * 60000)) ] || fail "next attempt at $next, not after auth-retry (1 h)"
named=$(sed -n 's/.*Next try at \(.*\), as failed logins.*/\1/p' <<<"$line")
[ "$named" = "$(date -d "@$((next / 1000))" '+%Y-%m-%d %H:%M %Z')" ] \
  || [ "$named" = "$(date -d "@$((next / 1000 - 1))" '+%Y-%m-%d %H:%M %Z')" ] \
  || fail "the log names $named, status waits until $(date -d "@$((next / 1000))")"
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
wait_for "grep -q 'opening failed: Dexcom Share rejected these settings earlier' '$WORK/auth.log'" 15 \
  || fail "restart: no gate message in the log"
! grep "opening failed: Dexcom Share rejected these settings earlier" "$WORK/auth.log" | grep -q "trying again in" \
  || fail "restart: the gate message has a second schedule"
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
