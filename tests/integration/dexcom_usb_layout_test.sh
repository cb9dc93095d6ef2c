#!/usr/bin/env bash
# dexcom-usb and a receiver newer than diabridge: its EGV partition claims a
# revision (6) the codec does not know.  Its readings must not be skipped for
# good: no glucose is published from it, the read position of that partition
# does not move, the log says so once (not every poll) and asks for a trace,
# and the other partitions (backfill, meter, events) keep arriving.  When
# the same receiver later speaks a known layout (here: the simulator started
# again without --egv-revision, standing in for a diabridge that learned
# it), every reading it held arrives.
source "$(dirname "$0")/lib.bash"

SIMBIN="$BUILD/diabridge-sim"
SEED=31
# A day and two hours of history (every kind of record the simulator writes
# occurs in it), at real speed: the receiver holds the same readings in both
# runs below.
PSTART=$(($(date +%s%3N) - 26 * 3600 * 1000))
J="$WORK/j.db"

start_sim() { # TRUTH [extra options]
  local truth=$1
  shift
  rm -f "$WORK/rx.out"
  "$SIMBIN" dexcom-receiver --generation g6 --speed 1 --seed $SEED --patient-start $PSTART \
    --link "$WORK/rx" --truth "$truth" "$@" >"$WORK/rx.out" 2>>"$WORK/sim.log" &
  sim=$!
  PIDS+=($sim)
  wait_for "[ -s '$WORK/rx.out' ] && [ -L '$WORK/rx' ]" 10 || fail "simulator printed no pty"
}
start_daemon() { # LOG
  "$DIABRIDGE" run --journal "$J" --source "dexcom-usb:$WORK/rx,since=all,poll-interval=1" \
    --sink "jsonl:$WORK/out.jsonl" 2>>"$1" &
  daemon=$!
  PIDS+=($daemon)
}
stop() { # PID
  kill -TERM "$1"
  wait "$1" || fail "exit status $? of $1"
}
status_of() { # FIELD (jq path below the dexcom-usb worker); 0 before the first status
  local v
  v=$("$DIABRIDGE" status --journal "$J" --json 2>/dev/null \
    | jq "[.workers[] | select(.name == \"dexcom-usb\") | $1][0] // 0" 2>/dev/null) || true
  echo "${v:-0}"
}
live_got() { # measured system times of the live (not backfilled) readings received
  jq -r 'select(.kind == "glucose" and (.backfilled | not)) | .device_time
         | capture("^(M(?<m>[0-9]+) )?S(?<s>[0-9]+)") | (.m // .s)' "$WORK/out.jsonl" 2>/dev/null \
    | sort -n
}

# ---- 1. EGV revision 6 --------------------------------------------------------
start_sim "$WORK/truth1.txt" --egv-revision 6
start_daemon "$WORK/daemon1.log"
wait_for "[ \$(status_of .counters.polls) -ge 5 ]" 60 \
  || fail "the source did not poll: $(tail -5 "$WORK/daemon1.log")"
polls=$(status_of .counters.polls)
# status keeps saying it while the other partitions poll successfully
"$DIABRIDGE" status --journal "$J" | grep -q "warning: this receiver uses a layout diabridge does not know (EGV_DATA revision 6)" \
  || fail "revision 6: status does not warn: $("$DIABRIDGE" status --journal "$J")"
[ "$(status_of .state)" = '"running"' ] || fail "revision 6: state $(status_of .state)"
stop $daemon

[ -z "$(live_got)" ] || fail "revision 6: $(live_got | wc -l) readings published from a layout we do not know"
jq -e -s 'any(.[]; .kind == "glucose" and .backfilled) and any(.[]; .kind == "meter")
  and any(.[]; .kind == "carbs") and any(.[]; .kind == "bolus")' "$WORK/out.jsonl" >/dev/null \
  || fail "revision 6: the other partitions stopped as well"
pass "revision 6: no glucose from it; backfill, meter and events still arrive"

warned=$(grep -c "EGV_DATA revision 6, 25-byte records is a layout diabridge does not know" "$WORK/daemon1.log" || true)
[ "$warned" -eq 1 ] || fail "revision 6: said $warned times in $polls polls (want once): $(grep -i layout "$WORK/daemon1.log" | head -3)"
grep -q "trace-file=" <(grep "does not know" "$WORK/daemon1.log") || fail "revision 6: the message does not ask for a trace"
! grep -q "skipped EGV_DATA record" "$WORK/daemon1.log" || fail "revision 6: records were skipped"
[ "$(status_of .counters.decode_errors)" -eq 1 ] || fail "revision 6: counted $(status_of .counters.decode_errors) times, want once"
cursor=$(sqlite3 "$J" "SELECT value FROM source_state WHERE key LIKE '%.p4'")
[ -z "$cursor" ] || fail "revision 6: the EGV read position moved to \"$cursor\""
pass "revision 6: said once in $polls polls, asking for a trace; the read position did not move"

stop $sim

# ---- 2. the same receiver in a known layout -------------------------------------
start_sim "$WORK/truth2.txt"
awk '$1 == "G" && $4 == 0 { print $2 }' "$WORK/truth2.txt" | sort -n >"$WORK/held.txt"
[ "$(wc -l <"$WORK/held.txt")" -ge 250 ] || fail "26 hours should hold about 280 live readings"
# What the first run held and could not read, by the same receiver's clock.
awk '$1 == "G" && $4 == 0 { print $2 }' "$WORK/truth1.txt" | sort -n >"$WORK/held1.txt"
start_daemon "$WORK/daemon2.log"
wait_for "[ -z \"\$(comm -23 '$WORK/held.txt' <(live_got))\" ]" 60 \
  || fail "$(comm -23 "$WORK/held.txt" <(live_got) | wc -l) held readings never arrived; $(tail -3 "$WORK/daemon2.log")"
[ -z "$(comm -23 "$WORK/held1.txt" <(live_got))" ] || fail "readings of the first run were lost"
[ "$(live_got | uniq -d | wc -l)" -eq 0 ] || fail "a reading arrived twice"
! grep -q "does not know" "$WORK/daemon2.log" || fail "a known layout was reported as unknown"
wait_for "! \"$DIABRIDGE\" status --journal '$J' | grep -q 'warning:'" 10 \
  || fail "status still warns after the layout was read: $("$DIABRIDGE" status --journal "$J" | grep warning)"
stop $daemon
stop $sim
pass "known layout: all $(wc -l <"$WORK/held.txt") readings held arrive, the first run's $(wc -l <"$WORK/held1.txt") included"
echo "1 passed, 0 failed"
