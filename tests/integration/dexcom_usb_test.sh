#!/usr/bin/env bash
# dexcom-usb end to end: diabridge-sim dexcom-receiver behind a pty → the
# daemon's real serial code and the dexcom-usb source → journal → jsonl.
#
# 1. G4: the real Dexcom Studio capture replayed, with NAK, CRC, garbage and
#    truncation faults.  Every EGV record of the capture arrives exactly once
#    with its value and raw times; all 228 readings of Studio's own export
#    are among them; every special value is an event, never glucose.
# 2. G6 with backfill: a generated receiver at 120× speed; new readings and
#    BACKFILLED_EGV records keep appearing; faults plus an unplug in the
#    middle of a page.  What the simulator stored (its --truth file) and what
#    the sink received must be the same set: no loss, no duplicate, no
#    reading that was not there.
source "$(dirname "$0")/lib.bash"

SIMBIN="$BUILD/diabridge-sim"
DATA="$DIA_TEST_DATA/dexcom-usb"
CAPTURE="$DATA/g4-studio-capture-alexandre-normand.csv"
EXPECTED="$DATA/g4-studio-capture-expected.json"

glucose_count() { jq -s '[.[] | select(.kind == "glucose")] | length' "$1" 2>/dev/null || echo 0; }
# How long the daemon waits for one answer.  A truncated reply (a fault
# below) costs one such wait before the command is sent again, so it is kept
# short, but far above what even a sanitizer build on a busy machine needs
# for an answer that does come: a spurious timeout would only mean a retry,
# yet many of them could stall the import past the waits below.
TIMEOUT_MS=1000

# ---- 1. G4 capture ---------------------------------------------------------
"$SIMBIN" dexcom-receiver --capture "$CAPTURE" --link "$WORK/rx-g4" --seed 3 \
  --faults nak=0.04,crc=0.04,garbage=0.05,truncate=0.03,nak@4,garbage@7,crc@11,truncate@15 >"$WORK/sim-g4.out" 2>"$WORK/sim-g4.err" &
sim=$!
PIDS+=($sim)
wait_for "[ -s '$WORK/sim-g4.out' ] && [ -L '$WORK/rx-g4' ]" 10 || fail "simulator printed no pty"
head -1 "$WORK/sim-g4.out" | grep -q '^/dev/' || fail "first line is not a pty path"

"$DIABRIDGE" run --journal "$WORK/g4.db" \
  --source "dexcom-usb:$WORK/rx-g4,since=all,poll-interval=1,timeout-ms=$TIMEOUT_MS" \
  --sink "jsonl:$WORK/g4.jsonl" 2>"$WORK/daemon-g4.log" &
daemon=$!
PIDS+=($daemon)

want=$(jq '[.records.egv[] | select((.display_only | not) and .glucose >= 20)] | length' "$EXPECTED")
[ "$want" -eq 251 ] || fail "expected file changed: $want EGV readings"
wait_for "[ \$(glucose_count '$WORK/g4.jsonl') -ge $want ]" 90 \
  || fail "G4: $(glucose_count "$WORK/g4.jsonl") of $want readings arrived; $(tail -5 "$WORK/daemon-g4.log")"
# a few more polls: re-reading the same pages must add nothing
polls() { "$DIABRIDGE" status --journal "$WORK/g4.db" --json | jq '[.workers[] | select(.name == "dexcom-usb") | .counters.polls][0] // 0'; }
p0=$(polls)
wait_for "[ \$(polls) -ge $((p0 + 3)) ]" 60 || fail "G4: the daemon stopped polling"
kill -TERM $daemon
wait $daemon || fail "G4: daemon exit status $?"

# The sink's glucose, as "system|display|mg/dL" from the raw receiver times.
jq -r 'select(.kind == "glucose") | (.device_time | capture("^S(?<s>[0-9]+) D(?<d>[0-9]+)$"))
       as $t | "\($t.s)|\($t.d)|\(.mgdl)"' "$WORK/g4.jsonl" | sort >"$WORK/g4-got.txt"
jq -r '.records.egv[] | select((.display_only | not) and .glucose >= 20)
       | "\(.system_time)|\(.display_time)|\(.glucose)"' "$EXPECTED" | sort >"$WORK/g4-want.txt"
diff "$WORK/g4-want.txt" "$WORK/g4-got.txt" >"$WORK/g4.diff" \
  || fail "G4 glucose differs from the capture's EGV records: $(head -20 "$WORK/g4.diff")"
[ "$(uniq -d "$WORK/g4-got.txt" | wc -l)" -eq 0 ] || fail "G4: duplicated readings"
pass "G4: all $want EGV readings of the capture, once each, with their values and raw times"

# Studio's export: InternalTime = system time, DisplayTime = display time.
jq -r '.studio_export.glucose[] | "\(.internal_time)|\(.display_time)|\(.value)"' "$EXPECTED" \
  | sort >"$WORK/studio.txt"
jq -r 'select(.kind == "glucose") | (.device_time | capture("^S(?<s>[0-9]+) D(?<d>[0-9]+)$")) as $t
       | "\(1230768000 + ($t.s | tonumber) | strftime("%Y-%m-%d %H:%M:%S"))|\(1230768000 + ($t.d | tonumber) | strftime("%Y-%m-%d %H:%M:%S"))|\(.mgdl)"' \
  "$WORK/g4.jsonl" | sort >"$WORK/g4-studio-form.txt"
[ "$(wc -l <"$WORK/studio.txt")" -eq 228 ] || fail "Studio export is not 228 readings"
missing=$(comm -23 "$WORK/studio.txt" "$WORK/g4-studio-form.txt" | wc -l)
[ "$missing" -eq 0 ] || fail "G4: $missing Studio readings missing: $(comm -23 "$WORK/studio.txt" "$WORK/g4-studio-form.txt" | head -5)"
pass "G4: 228 of 228 Studio readings with the same values and times"

# UTC = 2009-01-01 + system time + one clock offset measured by the daemon.
offsets=$(jq -r 'select(.kind == "glucose") | .t_utc_ms - (1230768000 + (.device_time
          | capture("^S(?<s>[0-9]+)").s | tonumber)) * 1000' "$WORK/g4.jsonl" | sort -u | wc -l)
[ "$offsets" -eq 1 ] || fail "G4: $offsets different clock offsets in one session"
jq -e -s '[.[] | select(.kind == "glucose") | .utc_offset_min] | unique == [-419]' "$WORK/g4.jsonl" \
  >/dev/null || fail "G4: display offset is not -419 min (display − system = −25162 s)"
pass "G4: one clock offset for the session; UTC offset from display − system time"

# Special values: events naming the condition, never glucose.
jq -r 'select(.kind == "event" and .event_type == "sensor_condition")
       | "\(.device_time | capture("^S(?<s>[0-9]+)").s)|\(.code)"' "$WORK/g4.jsonl" | sort >"$WORK/sp-got.txt"
jq -r '.records.egv[] | select((.display_only | not) and .glucose < 13) | "\(.system_time)|\(.glucose)"' \
  "$EXPECTED" | sort >"$WORK/sp-want.txt"
[ -s "$WORK/sp-want.txt" ] && diff "$WORK/sp-want.txt" "$WORK/sp-got.txt" >/dev/null \
  || fail "G4: special values differ: $(diff "$WORK/sp-want.txt" "$WORK/sp-got.txt" | head)"
jq -e -s 'all(.[] | select(.kind == "glucose"); .mgdl >= 20)' "$WORK/g4.jsonl" >/dev/null \
  || fail "G4: a special value was published as glucose"
jq -e -s 'all(.[] | select(.kind == "event" and .event_type == "sensor_condition"); .text | test("not calibrated"))' \
  "$WORK/g4.jsonl" >/dev/null || fail "G4: special value without its name"
pass "G4: $(wc -l <"$WORK/sp-got.txt") special values are sensor_condition events, none is glucose"

# Meter (time = meter_time), user events, insertions, calibrations, raw values.
jq -r 'select(.kind == "meter") | "\(.device_time | capture("^M(?<m>[0-9]+)").m)|\(.mgdl)"' \
  "$WORK/g4.jsonl" | sort >"$WORK/m-got.txt"
jq -r '.records.meter[] | "\(.meter_time)|\(.meter_glucose)"' "$EXPECTED" | sort >"$WORK/m-want.txt"
diff "$WORK/m-want.txt" "$WORK/m-got.txt" >/dev/null || fail "G4: meter readings differ"
counts=$(jq -s -c '{bolus: [.[] | select(.kind == "bolus")] | length,
  insulin: [.[] | select(.kind == "event" and .event_type == "note" and .code == 0
    and (.text | test("^insulin \\(type not recorded\\) [0-9]+\\.[0-9]{2} U")))] | length,
  carbs: [.[] | select(.kind == "carbs")] | length,
  ins: [.[] | select(.kind == "event" and (.event_type == "sensor_start" or .event_type == "sensor_stop"))] | length,
  cal: [.[] | select(.kind == "calibration")] | length,
  raw: [.[] | select(.kind == "glucose" and .filtered != null and .rssi < 0)] | length,
  status: [.[] | select(.kind == "status" and .transmitter == "60HMW" and .firmware == "2.0.1.104")] | length}' \
  "$WORK/g4.jsonl")
# A G4 logs insulin without saying fast- or long-acting (subtype 0): by
# default a note with its units, never a bolus (one that counts as IOB).
want_ins=$(jq '[.records.user_event[] | select(.event_type == 2)] | length' "$EXPECTED")
echo "$counts" | jq -e --argjson ins "$want_ins" '.bolus == 0 and .insulin == $ins
  and .insulin + .carbs == 35 and .ins == 36 and .cal == 20 and .raw > 200 and .status >= 1' \
  >/dev/null || fail "G4: other records (want $want_ins insulin notes): $counts"
jq -e -s 'any(.[]; .kind == "event" and .event_type == "note" and (.text | test(" 3\\.50 U,")))' \
  "$WORK/g4.jsonl" >/dev/null || fail "G4: insulin 350 is not a note of 3.50 U"
[ "$(jq -r .record_key "$WORK/g4.jsonl" | sort | uniq -d | wc -l)" -eq 0 ] || fail "G4: repeated record keys"
pass "G4: 32 meter, 35 user events ($want_ins untyped insulin as notes, no bolus), 36 insertions, 20 calibrations, raw sensor values paired, status"

kill -TERM $sim
wait $sim || fail "simulator exit status $?"
grep -q "forbidden 0" "$WORK/sim-g4.err" || fail "a forbidden command was sent: $(cat "$WORK/sim-g4.err")"
grep -Eq "nak [1-9].*crc [1-9].*garbage [1-9].*truncate [1-9]" "$WORK/sim-g4.err" \
  || fail "G4: not every fault fired: $(tail -1 "$WORK/sim-g4.err")"
pass "G4: faults fired ($(tail -1 "$WORK/sim-g4.err" | sed 's/.*faults: //')), no write command sent"

# ---- 2. G6 with backfill, faults and an unplug ------------------------------
# Two days of history; at 120× a new reading arrives every 2.5 s.
"$SIMBIN" dexcom-receiver --generation g6 --speed 120 --history $((2 * 86400)) --seed 11 \
  --link "$WORK/rx-g6" --truth "$WORK/truth.txt" --reconnect-ms 300 \
  --faults nak=0.03,crc=0.03,garbage=0.04,truncate=0.02,disconnect@40 \
  >"$WORK/sim-g6.out" 2>"$WORK/sim-g6.err" &
sim=$!
PIDS+=($sim)
wait_for "[ -s '$WORK/sim-g6.out' ] && [ -L '$WORK/rx-g6' ]" 10 || fail "G6 simulator printed no pty"

"$DIABRIDGE" run --journal "$WORK/g6.db" \
  --source "dexcom-usb:$WORK/rx-g6,since=all,poll-interval=1,timeout-ms=$TIMEOUT_MS,max-pages=40" \
  --sink "jsonl:$WORK/g6.jsonl" 2>"$WORK/daemon-g6.log" &
daemon=$!
PIDS+=($daemon)

# "measured system time|mg/dL|backfilled" for what the sink received ...
got_g6() {
  jq -r 'select(.kind == "glucose") | (.device_time | capture("^(M(?<m>[0-9]+) )?S(?<s>[0-9]+)")) as $t
         | "\($t.m // $t.s)|\(.mgdl)|\(if .backfilled then 1 else 0 end)"' "$WORK/g6.jsonl" 2>/dev/null | sort
}
# ... and for what the receiver stored (whole lines only: it is being written).
want_g6() { awk '$1 == "G" && NF == 4 { print $2 "|" $3 "|" $4 }' "$WORK/truth.txt" | sort; }
stored_g6() { awk '$1 == "G" && NF == 4' "$WORK/truth.txt" | wc -l; }
# The receiver stores a new reading every 2.5 s, so "every stored reading
# arrived" is checked against a snapshot of what was stored when the wait
# began: a reading stored a moment ago need not have been read yet.
snapshot_g6() { want_g6 >"$WORK/g6-want.txt"; }
has_snapshot() {
  got_g6 >"$WORK/g6-got.txt"
  [ -s "$WORK/g6-want.txt" ] && [ "$(comm -23 "$WORK/g6-want.txt" "$WORK/g6-got.txt" | wc -l)" -eq 0 ]
}
# wait_for with a pause of a second between the (heavier) checks
wait_slow() {
  local cmd=$1 limit=$2 i
  for ((i = 0; i < limit; i++)); do
    eval "$cmd" && return 0
    sleep 1
  done
  return 1
}
wait_for "grep -q 'simulated unplug' '$WORK/sim-g6.err'" 60 || fail "G6: the unplug did not happen"
snapshot_g6 # what the receiver held when it was unplugged (and a little after)
wait_slow has_snapshot 90 || fail "G6: $(comm -23 "$WORK/g6-want.txt" "$WORK/g6-got.txt" | wc -l) stored readings never arrived; $(tail -3 "$WORK/daemon-g6.log")"
grep -q "unplugged" "$WORK/daemon-g6.log" || fail "G6: the daemon did not log the unplug"
wait_for "[ \$(wc -l <'$WORK/sim-g6.out') -ge 2 ]" 30 || fail "G6: no new pty after the unplug"
# after the unplug, new readings keep arriving: two stored after the
# snapshot above (so after the unplug) must arrive as well
n1=$(wc -l <"$WORK/g6-want.txt")
wait_for "[ \$(stored_g6) -ge $((n1 + 2)) ]" 60 || fail "G6: the receiver stored no new readings"
snapshot_g6
wait_slow has_snapshot 60 || fail "G6: no new readings after reconnecting; $(tail -3 "$WORK/daemon-g6.log")"
pass "G6: recovered after the unplug; every stored reading arrived, including new ones"

# Times that cannot be: a reading in the receiver's future, or measured
# after it was written.  The simulator writes none (at 120× its time starts
# far enough back never to pass the receiver's clock), so none may be
# refused, and none may land in the host's future either.
counter() {
  "$DIABRIDGE" status --journal "$WORK/g6.db" --json \
    | jq "[.workers[] | select(.name == \"dexcom-usb\") | .counters.$1][0]"
}
[ "$(counter implausible)" = 0 ] || fail "G6: $(counter implausible) records refused as implausible"
jq -e -s 'all(.[] | select(.kind == "glucose"); .t_utc_ms <= .received_ms + 150000)' \
  "$WORK/g6.jsonl" >/dev/null || fail "G6: a reading dated after it was received: $(jq -c -s \
  '[.[] | select(.kind == "glucose" and .t_utc_ms > .received_ms + 150000)][0]' "$WORK/g6.jsonl")"
pass "G6: no reading from the future, none refused as implausible"

# Restart the daemon: it continues from the read positions committed with
# the records, so it asks only for the newest pages and stores no duplicate.
kill -TERM $daemon
wait $daemon || fail "G6: daemon exit status $?"
"$DIABRIDGE" run --journal "$WORK/g6.db" \
  --source "dexcom-usb:$WORK/rx-g6,since=all,poll-interval=1,timeout-ms=$TIMEOUT_MS,trace-file=$WORK/trace.csv" \
  --sink "jsonl:$WORK/g6.jsonl" 2>"$WORK/daemon-g6b.log" &
daemon=$!
PIDS+=($daemon)
n2=$(stored_g6)
wait_for "[ \$(stored_g6) -ge $((n2 + 2)) ]" 60 || fail "G6: the receiver stored no new readings"
snapshot_g6
wait_slow has_snapshot 60 || fail "G6: no new readings after the restart; $(tail -3 "$WORK/daemon-g6b.log")"
page_reads=$(grep -c '^out,01 0C 00 11' "$WORK/trace.csv" || true)
polls2=$(grep -c '^out,01 06 00 22' "$WORK/trace.csv" || true)
[ "$page_reads" -le $((polls2 * 12 + 8)) ] \
  || fail "G6: $page_reads page reads in $polls2 polls after the restart: not incremental"
dups=$("$DIABRIDGE" status --journal "$WORK/g6.db" --json \
  | jq '[.workers[] | select(.name == "dexcom-usb") | .counters.duplicates][0]')
[ "$dups" = 0 ] || fail "G6: $dups duplicates offered to the journal after the restart"
pass "G6: restart reads incrementally ($page_reads page requests in $polls2 polls, 0 duplicates)"

# Nothing extra: the sink holds no reading the receiver did not store.  The
# sink is read first: whatever it holds, the receiver had stored before.
got_g6 >"$WORK/g6-got.txt"
want_g6 >"$WORK/g6-want.txt"
extra=$(comm -13 "$WORK/g6-want.txt" "$WORK/g6-got.txt" | wc -l)
[ "$extra" -eq 0 ] || fail "G6: $extra readings the receiver never stored: $(comm -13 "$WORK/g6-want.txt" "$WORK/g6-got.txt" | head -3)"
[ "$(uniq -d "$WORK/g6-got.txt" | wc -l)" -eq 0 ] || fail "G6: duplicated readings"
[ "$(jq -r .record_key "$WORK/g6.jsonl" | sort | uniq -d | wc -l)" -eq 0 ] || fail "G6: repeated keys"
backfilled=$(grep -c '|1$' "$WORK/g6-got.txt" || true)
[ "$backfilled" -ge 40 ] || fail "G6: only $backfilled backfilled readings"
jq -e -s 'all(.[] | select(.kind == "glucose" and .backfilled);
          (.device_time | capture("^M(?<m>[0-9]+) S(?<s>[0-9]+)") | (.s | tonumber) > (.m | tonumber)))' \
  "$WORK/g6.jsonl" >/dev/null || fail "G6: a backfilled reading is not stamped with its measurement time"
pass "G6: no duplicates, nothing invented; $backfilled backfilled readings at their measurement times"

specials=$(awk '$1 == "S" { print $2 "|" $3 }' "$WORK/truth.txt" | sort)
got_specials=$(jq -r 'select(.kind == "event" and .event_type == "sensor_condition")
  | "\(.device_time | capture("S(?<s>[0-9]+)").s)|\(.code)"' "$WORK/g6.jsonl" | sort)
[ -n "$specials" ] || fail "G6: the simulator stored no special value"
[ "$(comm -23 <(echo "$specials") <(echo "$got_specials") | wc -l)" -eq 0 ] \
  || fail "G6: special values missing as events"
jq -e -s 'all(.[] | select(.kind == "glucose"); .mgdl >= 20 and .mgdl <= 600)' "$WORK/g6.jsonl" >/dev/null \
  || fail "G6: a special value was published as glucose"
jq -e -s 'any(.[]; .kind == "meter") and any(.[]; .kind == "bolus")
  and any(.[]; .kind == "status" and .battery_pct == 87 and .transmitter != null)' \
  "$WORK/g6.jsonl" >/dev/null || fail "G6: meter, insulin or status missing"
pass "G6: special values are events; meter, insulin and status recorded"

# Insulin as "measured system time subtype 1/100 U": fast-acting (1) is a
# bolus, long-acting (2) a note with its units (never a bolus, which would
# count as insulin on board).  Everything that arrived was logged so.
jq -r 'if .kind == "bolus" then
         "\(.device_time | capture("^M(?<m>[0-9]+)").m) 1 \(.delivered_mu / 10)"
       elif .kind == "event" and .event_type == "note" and .code == 2 then
         "\(.device_time | capture("^M(?<m>[0-9]+)").m) 2 \(.text
           | capture("^long-acting insulin (?<u>[0-9]+)\\.(?<c>[0-9]{2}) U") | .u + .c | tonumber)"
       else empty end' "$WORK/g6.jsonl" | sort >"$WORK/ins-got.txt"
awk '$1 == "I" && NF == 4 { print $2, $3, $4 }' "$WORK/truth.txt" | sort >"$WORK/ins-want.txt"
[ -z "$(comm -13 "$WORK/ins-want.txt" "$WORK/ins-got.txt")" ] \
  || fail "G6: insulin not as logged: $(comm -13 "$WORK/ins-want.txt" "$WORK/ins-got.txt" | head -3)"
grep -q ' 2 1250$' "$WORK/ins-got.txt" && grep -q ' 1 ' "$WORK/ins-got.txt" \
  || fail "G6: no long-acting note or no bolus: $(head -5 "$WORK/ins-got.txt")"
pass "G6: $(grep -c ' 1 ' "$WORK/ins-got.txt") fast-acting boluses, $(grep -c ' 2 ' "$WORK/ins-got.txt") long-acting notes, as logged"

kill -TERM $daemon
wait $daemon || fail "G6: daemon exit status $?"
kill -TERM $sim
wait $sim || fail "G6: simulator exit status $?"
grep -q "forbidden 0" "$WORK/sim-g6.err" || fail "G6: a forbidden command was sent"
[ ! -e "$WORK/rx-g6" ] || fail "simulator left its link behind"
pass "G6: clean shutdown of daemon and simulator; no write command sent"

echo "1 passed, 0 failed"
