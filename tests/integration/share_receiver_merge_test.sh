#!/usr/bin/env bash
# One sensor, two paths: a G6 receiver on USB (diabridge-sim dexcom-receiver
# behind a pty) and Dexcom Share (diabridge-sim share-server), both
# simulating the same person wearing the same transmitter (same --seed and
# --patient-start).  With the configuration the docs give — nothing on the
# receiver, sensor=<transmitter id> on Share — both paths land in one
# consolidation group: every reading is stored twice (merged_into set on
# one copy) and published once, whichever path brings it first.
source "$(dirname "$0")/lib.bash"

SIM="$BUILD/diabridge-sim"
SEED=7
# Six hours of history; both simulators round this down to the same step.
PSTART=$(($(date +%s%3N) - 6 * 3600 * 1000))
echo "share-pass" >"$WORK/pw"

"$SIM" dexcom-receiver --generation g6 --seed $SEED --patient-start $PSTART \
  --link "$WORK/rx" --truth "$WORK/rx.truth" >"$WORK/rx.out" 2>"$WORK/rx.sim.log" &
PIDS+=($!)
"$SIM" share-server --seed $SEED --patient-start $PSTART --utc-offset 0 \
  >"$WORK/share.url" 2>"$WORK/share.sim.log" &
PIDS+=($!)
wait_for "[ -L '$WORK/rx' ] && [ -s '$WORK/share.url' ] && grep -q 'transmitter' '$WORK/rx.sim.log'" 10 \
  || fail "the simulators did not start: $(cat "$WORK"/*.sim.log)"
URL=$(head -1 "$WORK/share.url")
TX=$(sed -n 's/.*, transmitter \([0-9A-Z]*\)$/\1/p' "$WORK/rx.sim.log")
[[ "$TX" =~ ^8G[0-9A-Z]{4}$ ]] || fail "no G6 transmitter id from the receiver simulator: $(cat "$WORK/rx.sim.log")"

count() { # DB SOURCE: glucose records stored from that source
  sqlite3 "$1" "SELECT count(*) FROM records WHERE kind = 'glucose' AND source = '$2'" 2>/dev/null || echo 0
}
# What each simulator held at start; a reading that comes later (one every
# 5 minutes) may come by one path only before the daemon stops, which the
# checks below allow.
RX_HELD=$(grep -c '^G ' "$WORK/rx.truth" || true)
SHARE_HELD=$(curl -sf "$URL/_sim/readings?since_ms=0" | jq length)
[ "$RX_HELD" -ge 60 ] && [ "$SHARE_HELD" -ge 60 ] \
  || fail "6 hours should hold about 70 readings: receiver $RX_HELD, Share $SHARE_HELD"
usb_in() { [ "$(count "$1" dexcom-usb)" -ge "$RX_HELD" ]; }
share_in() { [ "$(count "$1" dexcom-share)" -ge "$SHARE_HELD" ]; }

# daemon DB LOG SOURCES…: starts `diabridge run` with a jsonl sink, sets DAEMON
daemon() {
  local db=$1 log=$2
  shift 2
  local args=()
  for s in "$@"; do args+=(--source "$s"); done
  "$DIABRIDGE" run --journal "$db" --log-level debug "${args[@]}" --sink "jsonl:${db%.db}.jsonl" \
    2>>"$log" &
  DAEMON=$!
  PIDS+=($DAEMON)
}
stop() {
  kill -TERM "$DAEMON"
  wait "$DAEMON" || fail "daemon exit status $?"
}

# The pairs: a receiver reading and a Share reading of one sensor reading
# (DESIGN §6: |Δt| ≤ 150 s, |Δ| ≤ 1 mg/dL).
PAIRS="FROM records u JOIN records s ON s.kind = 'glucose' AND s.source = 'dexcom-share'
  AND abs(s.t_utc_ms - u.t_utc_ms) <= 150000 AND abs(s.mgdl - u.mgdl) <= 1
  WHERE u.kind = 'glucose' AND u.source = 'dexcom-usb'"

check_merged() { # DB LABEL
  local db=$1 label=$2
  local groups pairs bad merged slots published twice sent
  groups=$(sqlite3 "$db" "SELECT group_concat(DISTINCT sensor) FROM records WHERE kind = 'glucose'")
  [ "$groups" = "dexcom:$TX" ] || fail "$label: glucose in groups \"$groups\", want only dexcom:$TX"
  pairs=$(sqlite3 "$db" "SELECT count(*) $PAIRS")
  # the simulators agree on every reading but the receiver's special values
  [ "$pairs" -ge 60 ] || fail "$label: only $pairs readings arrived both ways"
  # each pair: one copy published, the other merged into it
  bad=$(sqlite3 "$db" "SELECT count(*) $PAIRS AND NOT (
      (u.published = 1 AND u.merged_into IS NULL AND s.published = 0 AND s.merged_into IS u.seq)
   OR (s.published = 1 AND s.merged_into IS NULL AND u.published = 0 AND u.merged_into IS s.seq))")
  [ "$bad" -eq 0 ] || fail "$label: $bad of $pairs readings not stored once + merged once"
  merged=$(sqlite3 "$db" "SELECT count(*) FROM records WHERE kind = 'glucose' AND merged_into IS NOT NULL")
  [ "$merged" -eq "$pairs" ] || fail "$label: $merged merged copies for $pairs double readings"
  # published: one reading per 5-minute slot, every slot
  slots=$(sqlite3 "$db" "SELECT count(DISTINCT (t_utc_ms + 150000) / 300000) FROM records WHERE kind = 'glucose'")
  published=$(sqlite3 "$db" "SELECT count(*) FROM records WHERE kind = 'glucose' AND published = 1")
  twice=$(sqlite3 "$db" "SELECT count(*) FROM (SELECT 1 FROM records WHERE kind = 'glucose' AND published = 1
    GROUP BY (t_utc_ms + 150000) / 300000 HAVING count(*) > 1)")
  [ "$twice" -eq 0 ] && [ "$published" -eq "$slots" ] \
    || fail "$label: $published published readings for $slots slots, $twice slots twice"
  # and downstream: the sink got each published reading once
  sent=$(jq -s '[.[] | select(.kind == "glucose")] | length' "${db%.db}.jsonl")
  [ "$sent" -eq "$published" ] || fail "$label: the sink got $sent glucose records, $published published"
  [ "$(jq -r 'select(.kind == "glucose") | (.t_utc_ms + 150000) / 300000 | floor' "${db%.db}.jsonl" \
    | sort | uniq -d | wc -l)" -eq 0 ] || fail "$label: the sink got one reading twice"
  echo "$pairs readings both ways, $published published, $sent sent"
}

# ---- both paths at once, as documented --------------------------------------
daemon "$WORK/both.db" "$WORK/both.log" "dexcom-usb:$WORK/rx" \
  "dexcom-share,url=$URL,username=share-user,password-file=$WORK/pw,sensor=$TX"
wait_for "usb_in '$WORK/both.db' && share_in '$WORK/both.db'" 40 \
  || fail "both: $(count "$WORK/both.db" dexcom-usb) of $RX_HELD receiver and $(count "$WORK/both.db" dexcom-share) of $SHARE_HELD Share readings stored"
wait_for "sink_caught_up '$WORK/both.db' jsonl" 20 || fail "both: the sink did not catch up"
stop
grep -q "sensor group \"dexcom:$TX\"" "$WORK/both.log" || fail "both: Share does not announce group dexcom:$TX"
summary=$(check_merged "$WORK/both.db" both)
pass "receiver and Share together (sensor=$TX): $summary"

# ---- receiver first, then Share; other spellings of the same id --------------
# sensor= on the receiver in lower case, on Share with the prefix: both
# name the transmitter, so they still meet in dexcom:$TX.
lower=$(tr 'A-Z' 'a-z' <<<"$TX")
daemon "$WORK/order.db" "$WORK/order.log" "dexcom-usb:$WORK/rx,sensor=$lower"
wait_for "usb_in '$WORK/order.db'" 40 || fail "order: receiver readings not stored"
stop
[ "$(count "$WORK/order.db" dexcom-share)" -eq 0 ] || fail "order: Share readings before Share ran"
daemon "$WORK/order.db" "$WORK/order.log" "dexcom-usb:$WORK/rx,sensor=$lower" \
  "dexcom-share,url=$URL,username=share-user,password-file=$WORK/pw,sensor=dexcom:$lower"
wait_for "usb_in '$WORK/order.db' && share_in '$WORK/order.db'" 40 || fail "order: Share readings not stored"
wait_for "sink_caught_up '$WORK/order.db' jsonl" 20 || fail "order: the sink did not catch up"
stop
summary=$(check_merged "$WORK/order.db" order)
# the receiver's copies came first, so (but for a reading new since the
# restart) Share's copies are the merged ones
late=$(sqlite3 "$WORK/order.db" "SELECT count(*) FROM records WHERE merged_into IS NOT NULL AND source = 'dexcom-share'")
[ "$late" -ge 60 ] || fail "order: only $late Share readings merged into the receiver's"
pass "receiver first, then Share (sensor=$lower / sensor=dexcom:$lower): $summary"
echo "all passed"
