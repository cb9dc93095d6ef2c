#!/usr/bin/env bash
# A sink's delivery progress belongs to the place it delivers to, not only
# to its name.  Unnamed sinks of one driver are named by position (jsonl,
# jsonl#2), so deleting a line renames the ones below it; and a user may
# point a named sink at a new file or server.  Either way the new place must
# get the whole journal, with a warning that names both places, while a
# restart or a new password changes nothing.  No secret reaches the journal.
source "$(dirname "$0")/lib.bash"

J="$WORK/journal.db"

# Run the daemon on config $1 (log $2) until sink $3 has every published
# record, then stop it cleanly.
run_until_delivered() {
  local conf=$1 log=$2 sink=$3 d
  "$DIABRIDGE" run -c "$conf" 2>"$log" &
  d=$!
  PIDS+=("$d")
  # the cursor counts only once the sink has started (tied it to its target)
  wait_for "grep -qs '$sink: started' '$log'" 30 || fail "$sink did not start ($(basename "$log"))"
  wait_for "sink_caught_up '$J' '$sink'" 60 || fail "$sink did not catch up ($(basename "$log"))"
  wait_for "daemon_up '$J' $d" 20 || fail "daemon $d never wrote its status"
  kill -TERM $d
  wait $d || fail "daemon exited $? ($(basename "$log"))"
}

# File $1 holds exactly the published records up to sink $2's cursor: each
# once, none missing, nothing else.
delivered_exactly() {
  local file=$1 sink=$2 cursor want got
  cursor=$(sqlite3 "$J" "SELECT last_seq FROM sink_cursor WHERE sink='$sink'")
  want=$(sqlite3 "$J" "SELECT record_key FROM records WHERE published=1 AND payload IS NOT NULL
                        AND seq <= $cursor ORDER BY record_key")
  got=$(jq -r .record_key "$file" | sort)
  [ -n "$want" ] || fail "no published records up to seq $cursor"
  [ "$got" = "$want" ] || fail "$file: $(wc -l <"$file") lines; want the $(echo "$want" | wc -l) published records up to seq $cursor"
  [ "$(echo "$got" | uniq -d | wc -l)" -eq 0 ] || fail "$file has duplicate records"
}

# --- the reviewer's case: deleting the first of two unnamed jsonl sinks -----
# b's folder does not exist yet, so jsonl#2 delivers nothing while ra (jsonl)
# receives everything.
cat >"$WORK/two.conf" <<EOF
journal $J
source sim,seed=7,history=3h
sink jsonl:$WORK/ra.jsonl
sink jsonl:$WORK/bdir/b.jsonl
EOF
run_until_delivered "$WORK/two.conf" "$WORK/two.log" jsonl
delivered_exactly "$WORK/ra.jsonl" jsonl
ra_lines=$(wc -l <"$WORK/ra.jsonl")
[ "$ra_lines" -ge 30 ] || fail "ra got only $ra_lines records"
[ ! -e "$WORK/bdir/b.jsonl" ] || fail "b was written although its folder was missing"
pass "ra (jsonl) received $ra_lines records, b (jsonl#2) none"

mkdir "$WORK/bdir"
grep -v "ra.jsonl" "$WORK/two.conf" >"$WORK/one.conf"
run_until_delivered "$WORK/one.conf" "$WORK/one.log" jsonl
[ -s "$WORK/bdir/b.jsonl" ] || fail "b (now named jsonl) received nothing: it took over ra's cursor"
delivered_exactly "$WORK/bdir/b.jsonl" jsonl
[ "$(wc -l <"$WORK/bdir/b.jsonl")" -ge "$ra_lines" ] || fail "b has fewer records than ra had"
grep "now delivers to jsonl:$WORK/bdir/b.jsonl" "$WORK/one.log" | grep -q "was for jsonl:$WORK/ra.jsonl" \
  || fail "no warning naming both files: $(grep -i warn "$WORK/one.log")"
[ "$(wc -l <"$WORK/ra.jsonl")" -eq "$ra_lines" ] || fail "ra was written to after it was removed"
pass "after the first sink line is deleted, b receives every record, with a warning naming both files"

# --- a named sink pointed at a new file gets the history --------------------
printf 'journal %s\nsource sim,seed=7,history=3h\nsink jsonl:%s/c1.jsonl,name=archive\n' \
  "$J" "$WORK" >"$WORK/c1.conf"
run_until_delivered "$WORK/c1.conf" "$WORK/c1.log" archive
delivered_exactly "$WORK/c1.jsonl" archive
c1_lines=$(wc -l <"$WORK/c1.jsonl")
sed "s|c1.jsonl|c2.jsonl|" "$WORK/c1.conf" >"$WORK/c2.conf"
run_until_delivered "$WORK/c2.conf" "$WORK/c2.log" archive
delivered_exactly "$WORK/c2.jsonl" archive
grep "now delivers to jsonl:$WORK/c2.jsonl" "$WORK/c2.log" | grep -q "was for jsonl:$WORK/c1.jsonl" \
  || fail "no warning naming c1 and c2"
[ "$(wc -l <"$WORK/c1.jsonl")" -eq "$c1_lines" ] || fail "c1 was written to after the change"
pass "changing a file target delivers the whole history to the new file"

# --- the same target again: it continues, nothing is sent twice -------------
run_until_delivered "$WORK/c2.conf" "$WORK/c2-again.log" archive
delivered_exactly "$WORK/c2.jsonl" archive
! grep -q "now delivers to" "$WORK/c2-again.log" || fail "a restart was taken for a new target"
pass "a restart with the same target continues where it was"

# --- a new password is the same place; the journal never holds a secret -----
pick_port PORT
mq_conf() { # PASSWORD HOST
  printf 'journal %s\nsink mqtt://cgm:%s@%s:%s,name=broker\n' "$J" "$1" "$2" "$PORT" >"$WORK/mq.conf"
}
# Start the daemon on mq.conf (nobody listens there, so the sink backs off
# after tying its cursor), wait until it is up, stop it.
run_mq() {
  local d
  "$DIABRIDGE" run -c "$WORK/mq.conf" 2>"$1" &
  d=$!
  PIDS+=("$d")
  wait_for "'$DIABRIDGE' status --journal '$J' 2>/dev/null | grep -Eq 'sink +broker +backing off'" 30 \
    || fail "the mqtt sink never tried to connect: $("$DIABRIDGE" status --journal "$J")"
  kill -TERM $d
  wait $d || fail "daemon exited $?"
}
mq_conf first-secret-pw 127.0.0.1
run_mq "$WORK/mq1.log"
t=$(sqlite3 "$J" "SELECT target FROM sink_cursor WHERE sink='broker'")
[ "$t" = "mqtt:mqtt://cgm:<redacted>@127.0.0.1:$PORT" ] || fail "stored target: $t"
# as if it had delivered up to seq 5
sqlite3 "$J" "UPDATE sink_cursor SET last_seq = 5 WHERE sink='broker'"
mq_conf second-secret-pw 127.0.0.1
run_mq "$WORK/mq2.log"
[ "$(sqlite3 "$J" "SELECT last_seq FROM sink_cursor WHERE sink='broker'")" -eq 5 ] \
  || fail "a new password reset the cursor"
! grep -q "now delivers to" "$WORK/mq2.log" || fail "a new password was taken for a new target"
mq_conf second-secret-pw localhost
run_mq "$WORK/mq3.log"
[ "$(sqlite3 "$J" "SELECT last_seq FROM sink_cursor WHERE sink='broker'")" -eq 0 ] \
  || fail "a new host kept the old cursor"
grep -q "now delivers to mqtt:mqtt://cgm:<redacted>@localhost:$PORT" "$WORK/mq3.log" \
  || fail "no warning for the new host: $(cat "$WORK/mq3.log")"
for f in "$J" "$J-wal" "$WORK"/mq*.log; do
  [ -e "$f" ] || continue
  ! grep -aq "secret-pw" "$f" || fail "a password reached $(basename "$f")"
done
pass "a new password keeps the cursor, a new host resets it; no password is stored or logged"
