#!/usr/bin/env bash
# dexcom-usb, first start without since=: a receiver holding three days of
# readings, and a journal that has never seen it.  The source imports the
# last 24 hours (the documented default), nothing older, and every reading
# of those 24 hours once; a restart then imports nothing again.
source "$(dirname "$0")/lib.bash"

SIMBIN="$BUILD/diabridge-sim"

# A G6 receiver at real speed, so its clock and the 24-hour window hold still
# while the test looks.
"$SIMBIN" dexcom-receiver --generation g6 --speed 1 --history $((3 * 86400)) --seed 21 \
  --link "$WORK/rx" --truth "$WORK/truth.txt" >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=($!)
wait_for "[ -s '$WORK/sim.out' ] && [ -L '$WORK/rx' ]" 10 || fail "simulator printed no pty"

J="$WORK/j.db"
start_daemon() {
  "$DIABRIDGE" run --journal "$J" --source "dexcom-usb:$WORK/rx,poll-interval=1" \
    --sink "jsonl:$WORK/out.jsonl" 2>>"$WORK/daemon.log" &
  daemon=$!
  PIDS+=($daemon)
}
polls() {
  "$DIABRIDGE" status --journal "$J" --json 2>/dev/null \
    | jq '[.workers[] | select(.name == "dexcom-usb") | .counters.polls][0] // 0'
}
start_daemon
wait_for "[ \$(polls) -ge 3 ]" 60 || fail "the source did not poll: $(tail -5 "$WORK/daemon.log")"
kill -TERM $daemon
wait $daemon || fail "daemon exit status $?"

# Receiver system times: of everything the receiver holds, and of what arrived.
awk '$1 == "G" { print $2 }' "$WORK/truth.txt" | sort -n >"$WORK/held.txt"
jq -r 'select(.kind == "glucose") | .device_time | capture("^(M(?<m>[0-9]+) )?S(?<s>[0-9]+)")
       | (.m // .s)' "$WORK/out.jsonl" | sort -n >"$WORK/got.txt"
held=$(wc -l <"$WORK/held.txt")
got=$(wc -l <"$WORK/got.txt")
newest=$(tail -1 "$WORK/held.txt")
[ "$held" -gt 700 ] || fail "the simulator holds only $held readings; expected three days"

# The window is 24 h back from the receiver's clock at the first poll, a few
# seconds after its newest reading: allow one reading either side of it.
awk -v n="$newest" '$1 > n - 86400 + 300' "$WORK/held.txt" >"$WORK/must.txt"
awk -v n="$newest" '$1 >= n - 86400 - 300' "$WORK/held.txt" >"$WORK/may.txt"
[ -z "$(comm -23 "$WORK/must.txt" "$WORK/got.txt")" ] \
  || fail "readings of the last 24 h are missing: $(comm -23 "$WORK/must.txt" "$WORK/got.txt" | head -5)"
[ -z "$(comm -13 "$WORK/may.txt" "$WORK/got.txt")" ] \
  || fail "readings older than 24 h were imported: $(comm -13 "$WORK/may.txt" "$WORK/got.txt" | head -5)"
[ "$(uniq -d "$WORK/got.txt" | wc -l)" -eq 0 ] || fail "a reading arrived twice"
pass "first start: the last 24 h ($got of the $held readings held), nothing older, each once"

# A restart continues from the journal's cursor: nothing is read twice, and
# the 24-hour rule does not apply again.
start_daemon
# (the status of the first run is still in the journal: wait for this one's)
wait_for "daemon_up '$J' $daemon && [ \$(polls) -ge 3 ]" 60 || fail "the source did not poll after the restart"
kill -TERM $daemon
wait $daemon || fail "daemon exit status $?"
again=$(jq -r 'select(.kind == "glucose") | .record_key' "$WORK/out.jsonl" | sort | uniq -d | wc -l)
[ "$again" -eq 0 ] || fail "the restart imported $again readings again"
n2=$(jq -r 'select(.kind == "glucose") | .record_key' "$WORK/out.jsonl" | wc -l)
[ "$n2" -ge "$got" ] && [ "$n2" -le $((got + 2)) ] || fail "after the restart: $n2 readings, before $got"
pass "restart: nothing imported twice"

# A reconnect keeps in step with the readings: the newest one read before is
# remembered with the read positions, so the first poll after the restart
# (which finds nothing new, or one new reading) sets the next one shortly
# after the next reading is due (newest + 5 min + poll-after 15 s), or a
# short retry when that is already past; not a flat 5 minutes later.
"$DIABRIDGE" run --journal "$J" --log-level debug --source "dexcom-usb:$WORK/rx" \
  --sink "jsonl:$WORK/out.jsonl" 2>"$WORK/daemon3.log" &
daemon=$!
PIDS+=($daemon)
wait_for "grep -q 'next poll in' '$WORK/daemon3.log'" 60 \
  || fail "no poll after the reconnect: $(tail -3 "$WORK/daemon3.log")"
wait_for "sink_caught_up '$J' jsonl" 30 || fail "the sink did not catch up"
kill -TERM $daemon
wait $daemon || fail "daemon exit status $?"
line=$(grep -m1 'next poll in' "$WORK/daemon3.log")
stamp=$(date -d "${line:0:19}" +%s)
in_s=$(sed -n 's/.*next poll in \([0-9-]*\) s.*/\1/p' <<<"$line")
newest_ms=$(jq -s '[.[] | select((.kind == "glucose" and (.backfilled | not))
  or (.kind == "event" and .event_type == "sensor_condition")) | .t_utc_ms] | max' "$WORK/out.jsonl")
due=$((newest_ms / 1000 + 300 + 15))
off=$((stamp + in_s - due))
if [ "$due" -ge $((stamp + 3)) ]; then
  [ "${off#-}" -le 3 ] || fail "reconnect: next poll in $in_s s at $stamp; the next reading is due at $due"
elif [ "$due" -le $((stamp - 2)) ]; then
  [ "$in_s" -eq 30 ] || fail "reconnect: the reading due at $due is late, yet next poll in $in_s s (want a 30 s retry)"
else
  [ "$in_s" -eq 30 ] || [ "${off#-}" -le 3 ] || fail "reconnect: next poll in $in_s s, reading due at $due"
fi
pass "reconnect: next poll in $in_s s, in step with the reading due $((due - stamp)) s after the first poll"
echo "1 passed, 0 failed"
