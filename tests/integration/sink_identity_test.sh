#!/usr/bin/env bash
# A sink's delivery progress belongs to the place it delivers to, not only
# to its name.  Unnamed sinks of one driver are named by position (jsonl,
# jsonl#2), so deleting a line renames the ones below it; and a user may
# point a named sink at a new file or server, database or topic.  A place
# that already has records (its sink was renamed) continues where it was,
# so it gets nothing twice; a new place gets the whole journal, with a
# warning that names both places; a restart, a new password or an upgrade
# from cursors stored without destination options changes nothing.  No
# secret reaches the journal.
source "$(dirname "$0")/lib.bash"

J="$WORK/journal.db"

# Run the daemon on config $1 (log $2) until sinks $3… have every published
# record, then stop it cleanly.
run_until_delivered() {
  local conf=$1 log=$2 sink d
  shift 2
  "$DIABRIDGE" run -c "$conf" 2>"$log" &
  d=$!
  PIDS+=("$d")
  for sink in "$@"; do
    # the cursor counts only once the sink has started (tied to its target)
    wait_for "grep -qs '$sink: started' '$log'" 30 || fail "$sink did not start ($(basename "$log"))"
    wait_for "sink_caught_up '$J' '$sink'" 60 || fail "$sink did not catch up ($(basename "$log"))"
  done
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
grep -q "jsonl: the delivery progress of its target jsonl:$WORK/bdir/b.jsonl (up to seq 0) was stored under the name jsonl#2" \
  "$WORK/one.log" || fail "no word that b's progress (none) was taken from jsonl#2: $(grep jsonl: "$WORK/one.log")"
grep -q "Its progress for jsonl:$WORK/ra.jsonl (up to seq [0-9]*) is kept" "$WORK/one.log" \
  || fail "ra's progress was not said to be kept"
[ "$(wc -l <"$WORK/ra.jsonl")" -eq "$ra_lines" ] || fail "ra was written to after it was removed"
pass "after the first sink line is deleted, b receives every record, and ra's progress is kept"

# --- the reviewer's case: both sinks had received everything ---------------
# Putting the line back: each file continues where it was, though both names
# changed place at once.  Deleting it again: b, now jsonl, continues b's
# progress.  Nothing is sent twice, nothing is missing, nobody is warned.
run_until_delivered "$WORK/two.conf" "$WORK/two-again.log" jsonl jsonl#2
delivered_exactly "$WORK/ra.jsonl" jsonl
delivered_exactly "$WORK/bdir/b.jsonl" jsonl#2
b_lines=$(wc -l <"$WORK/bdir/b.jsonl")
run_until_delivered "$WORK/one.conf" "$WORK/one-again.log" jsonl
delivered_exactly "$WORK/bdir/b.jsonl" jsonl
[ "$(wc -l <"$WORK/bdir/b.jsonl")" -ge "$b_lines" ] || fail "b lost lines"
for log in two-again one-again; do
  ! grep -q "now delivers to" "$WORK/$log.log" || fail "$log: a file was sent the journal again"
done
pass "lines deleted and put back: each file has every record once ($b_lines in b)"

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
[ "$t" = "mqtt:mqtt://cgm:<redacted>@127.0.0.1:$PORT,topic=diabridge" ] || fail "stored target: $t"
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
grep -q "now delivers to mqtt:mqtt://cgm:<redacted>@localhost:$PORT,topic=diabridge" "$WORK/mq3.log" \
  || fail "no warning for the new host: $(cat "$WORK/mq3.log")"
for f in "$J" "$J-wal" "$WORK"/mq*.log; do
  [ -e "$f" ] || continue
  ! grep -aq "secret-pw" "$f" || fail "a password reached $(basename "$f")"
done
pass "a new password keeps the cursor, a new host resets it; no password is stored or logged"

# --- an option that chooses the destination: mqtt topic= -----------------
# A real mosquitto; a subscriber to everything shows what each prefix got.
for tool in mosquitto mosquitto_sub; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/bootstrap.sh installs it)"
done
M="$WORK/mosquitto"
mkdir -p "$M"
chmod 755 "$WORK" "$M" # started as root, mosquitto drops to a user that must read its folder
started=0
for attempt in 1 2 3; do # a port picked free may be taken before mosquitto binds it
  pick_port MPORT
  printf 'user %s\nlistener %s 127.0.0.1\nallow_anonymous true\nlog_dest file %s/broker.log\n' \
    "$(id -un)" "$MPORT" "$M" >"$M/mosquitto.conf"
  mosquitto -c "$M/mosquitto.conf" &
  PIDS+=($!)
  if wait_for "(exec 3<>/dev/tcp/127.0.0.1/$MPORT) 2>/dev/null" 10; then started=1; break; fi
done
[ $started = 1 ] || fail "mosquitto did not start: $(tail -3 "$M/broker.log" 2>/dev/null)"
SUB="$WORK/sub.txt"
mosquitto_sub -h 127.0.0.1 -p "$MPORT" -i checker -q 1 -v -t '#' >"$SUB" &
PIDS+=($!)
wait_for "grep -q 'New client connected.*checker' '$M/broker.log' 2>/dev/null" 10 || fail "subscriber did not connect"

J="$WORK/topic.db"
topic_conf() { # PREFIX
  printf 'journal %s\nsource sim,seed=7,history=3h\nsink mqtt://127.0.0.1:%s,name=broker,topic=%s,homeassistant=off\n' \
    "$J" "$MPORT" "$1" >"$WORK/topic.conf"
}
received_keys() { # PREFIX → record_keys seen on its per-kind topics
  grep -E "^$1/[^/ ]+/[a-z]+ " "$SUB" | cut -d' ' -f2- | jq -r .record_key | sort -u
}
journal_keys() { # record_keys up to the broker sink's cursor
  local c
  c=$(sqlite3 "$J" "SELECT last_seq FROM sink_cursor WHERE sink='broker'")
  sqlite3 "$J" "SELECT record_key FROM records WHERE published=1 AND payload IS NOT NULL AND seq <= $c" | sort -u
}
all_arrived() { # PREFIX
  [ "$(journal_keys | wc -l)" -gt 0 ] && [ -z "$(comm -23 <(journal_keys) <(received_keys "$1"))" ]
}
topic_conf first
run_until_delivered "$WORK/topic.conf" "$WORK/topic1.log" broker
wait_for "all_arrived first" 20 || fail "records missing on first/: $(comm -23 <(journal_keys) <(received_keys first) | head -3)"
first_count=$(received_keys first | wc -l)
topic_conf second
run_until_delivered "$WORK/topic.conf" "$WORK/topic2.log" broker
wait_for "all_arrived second" 20 || fail "second/ did not get the history: $(received_keys second | wc -l) of $(journal_keys | wc -l) records"
grep "now delivers to mqtt:mqtt://127.0.0.1:$MPORT,topic=second" "$WORK/topic2.log" \
  | grep -q "was for mqtt:mqtt://127.0.0.1:$MPORT,topic=first" || fail "no warning naming both prefixes"
pass "a new topic prefix receives the whole journal ($(received_keys second | wc -l) records; first/ had $first_count)"

# A cursor stored by a diabridge that did not count topic= (the target
# alone) goes on where it was: the upgrade replays nothing, and stores the
# target in today's form.
sqlite3 "$J" "UPDATE sink_cursor SET target = 'mqtt:mqtt://127.0.0.1:$MPORT' WHERE sink = 'broker'"
before=$(sqlite3 "$J" "SELECT last_seq FROM sink_cursor WHERE sink='broker'")
run_until_delivered "$WORK/topic.conf" "$WORK/topic3.log" broker
! grep -q "now delivers to" "$WORK/topic3.log" || fail "the upgrade was taken for a new target"
t=$(sqlite3 "$J" "SELECT target FROM sink_cursor WHERE sink='broker'")
[ "$t" = "mqtt:mqtt://127.0.0.1:$MPORT,topic=second" ] || fail "stored target after the upgrade: $t"
sent=$(sqlite3 "$J" "SELECT json_extract(json, '$.counters.records') FROM worker_status WHERE worker='sink:broker'")
new=$(sqlite3 "$J" "SELECT count(*) FROM records WHERE published=1 AND payload IS NOT NULL AND seq > $before
                    AND seq <= (SELECT last_seq FROM sink_cursor WHERE sink='broker')")
[ "$sent" -eq "$new" ] || fail "after the upgrade the sink sent $sent records; only $new were new"
pass "a cursor stored without topic= continues after the upgrade ($sent new records sent)"
