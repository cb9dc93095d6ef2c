#!/usr/bin/env bash
# The jsonl sink on targets that are not regular files: a pipe on stdout,
# /dev/null, and FIFOs whose reader comes, goes or stops reading.  Each record
# arrives once, every line is whole, and SIGTERM always stops the daemon.
source "$(dirname "$0")/lib.bash"

# The seqs a sink has acknowledged, in order.
acked_seqs() { # JOURNAL SINK
  sqlite3 "$1" "SELECT seq FROM records WHERE published=1 AND seq <=
    (SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='$2') ORDER BY seq"
}
# The seqs of the lines in files, in order (jq fails on a cut or glued line).
line_seqs() { jq -r .seq "$@" | sort -n; }
published_between() { # JOURNAL FIRST LAST
  sqlite3 "$1" "SELECT seq FROM records WHERE published=1 AND seq BETWEEN $2 AND $3 ORDER BY seq"
}
gone() { ! kill -0 "$1" 2>/dev/null; }
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
failures() { # JOURNAL SINK
  "$DIABRIDGE" status --journal "$1" --json | jq -r ".workers[] | select(.name==\"$2\") | .counters.failures"
}

# --- a pipe on stdout, and /dev/null: fsync does not apply, nothing repeats ---
J="$WORK/pipe.db"
"$DIABRIDGE" run --journal "$J" --source "sim,seed=3,speed=600,history=6h" \
  --sink "jsonl:/dev/stdout,name=piped" --sink "jsonl:/dev/null,name=null" \
  2>"$WORK/pipe.log" > >(cat >"$WORK/piped.out") &
d=$!
PIDS+=($d)
wait_for "daemon_up '$J' $d && sink_caught_up '$J' piped && sink_caught_up '$J' null" 30 \
  || fail "the sinks did not catch up: $(grep -E 'fail|error' "$WORK/pipe.log" | tail -3)"
kill -TERM $d
wait $d || fail "SIGTERM: exit status $?"
n=$(acked_seqs "$J" piped | wc -l)
[ "$n" -gt 60 ] || fail "only $n records acknowledged"
wait_for "[ \$(lines '$WORK/piped.out') -ge $n ]" 10 || fail "the pipe got $(lines "$WORK/piped.out") of $n lines"
diff <(acked_seqs "$J" piped) <(line_seqs "$WORK/piped.out") >/dev/null \
  || fail "the pipe did not get each record exactly once ($(lines "$WORK/piped.out") lines for $n records)"
[ "$(acked_seqs "$J" null | wc -l)" -ge "$n" ] || fail "/dev/null acknowledged fewer records than the pipe"
[ "$(failures "$J" piped)" = 0 ] && [ "$(failures "$J" null)" = 0 ] \
  || fail "sends failed: $(grep -E 'failed' "$WORK/pipe.log" | head -3)"
! grep -Eq ' (warning|error) ' "$WORK/pipe.log" \
  || fail "the sinks complained: $(grep -E ' (warning|error) ' "$WORK/pipe.log" | head -1)"
pass "jsonl:/dev/stdout into a pipe and jsonl:/dev/null: $n records, each once, no failures"

# --- a FIFO whose reader goes away, and a new one that comes ---------------------
J="$WORK/fifo.db"
F="$WORK/live.fifo"
LOG="$WORK/fifo.log"
mkfifo "$F"
cat "$F" >"$WORK/a.out" &
reader_a=$!
PIDS+=($reader_a)
# speed=60: after the history, a new reading every 5 s
"$DIABRIDGE" run --journal "$J" --source "sim,seed=4,speed=60,history=3h" --sink "jsonl:$F,name=fifo" \
  2>"$LOG" &
d=$!
PIDS+=($d)
wait_for "daemon_up '$J' $d && sink_caught_up '$J' fifo && [ \$(lines '$WORK/a.out') -gt 30 ]" 30 || fail "the FIFO reader got no records"
kill -TERM $reader_a
wait $reader_a || true
# the next reading finds the reader gone
wait_for "grep -q 'went away' '$LOG'" 30 || fail "no message about the reader going away"
wait_for "'$DIABRIDGE' status --journal '$J' | grep -q 'backing off'" 15 \
  || fail "status does not show the waiting sink: $("$DIABRIDGE" status --journal "$J")"
gone $d && fail "the daemon died when its FIFO reader went away"
pass "a FIFO reader that goes away is a transient error that says so"

cat "$F" >"$WORK/b.out" &
reader_b=$!
PIDS+=($reader_b)
wait_for "[ \$(lines '$WORK/b.out') -ge 2 ]" 60 || fail "records did not flow again to a new reader"
kill -TERM $reader_b
wait $reader_b || true
wait_for "[ \$(grep -c 'went away' '$LOG') -ge 2 ]" 30 || fail "the second reader leaving went unnoticed"
kill -TERM $d
wait_for "gone $d" 10 || fail "SIGTERM did not stop the daemon while its FIFO had no reader"
wait $d || fail "SIGTERM with no FIFO reader: exit status $?"
a=$(line_seqs "$WORK/a.out")
b=$(line_seqs "$WORK/b.out")
[ -z "$(sort -n <(echo "$a") <(echo "$b") | uniq -d)" ] || fail "records written twice: $(sort -n <(echo "$a") <(echo "$b") | uniq -d | head -3)"
[ "$a" = "$(published_between "$J" 0 "$(echo "$a" | tail -1)")" ] || fail "the first reader missed records"
[ "$b" = "$(published_between "$J" "$(echo "$b" | head -1)" "$(echo "$b" | tail -1)")" ] \
  || fail "the second reader missed records"
# Lines the first reader had not read when it left went with it (the pipe
# took them); there are none unless a reading arrived in that instant.
lost=$(published_between "$J" "$(($(echo "$a" | tail -1) + 1))" "$(($(echo "$b" | head -1) - 1))" | wc -l)
[ "$lost" -le 1 ] || fail "$lost records between the two readers"
pass "a new FIFO reader gets the records that followed, none twice; SIGTERM without a reader exits 0"

# --- a FIFO whose reader stops reading: the pipe fills, SIGTERM still works -----
J="$WORK/full.db"
F="$WORK/full.fifo"
LOG="$WORK/full.log"
mkfifo "$F"
# The reader that does not read: this shell holds the FIFO's read end (fd
# 8) and reads it only after the daemon has stopped.  (A reader stopped with
# SIGSTOP raced with its own end-of-file on a busy machine.)  Opening a
# read-write end first lets the read-only open return at once.
exec 7<>"$F"
exec 8<"$F"
exec 7>&-
# two days of history is far more than the 64 KiB a pipe holds
"$DIABRIDGE" run --journal "$J" --source "sim,seed=6,speed=600,history=2d" \
  --sink "jsonl:$F,name=fifo,batch=20" 2>"$LOG" &
d=$!
PIDS+=($d)
wait_for "daemon_up '$J' $d && [ \$(acked_seqs '$J' fifo | wc -l) -gt 0 ]" 30 || fail "nothing was written to the FIFO"
kill -TERM $d
wait_for "gone $d" 10 || fail "SIGTERM did not stop the daemon while its FIFO was full"
wait $d || fail "SIGTERM with a full FIFO: exit status $?"
n=$(acked_seqs "$J" fifo | wc -l)
total=$(sqlite3 "$J" "SELECT count(*) FROM records WHERE published=1")
[ "$n" -lt "$total" ] || fail "all $total records fitted into the pipe; the test did not fill it"
cat <&8 >"$WORK/c.out" # no writer is left, so it ends at the pipe's end
exec 8<&-
diff <(acked_seqs "$J" fifo) <(line_seqs "$WORK/c.out") >/dev/null \
  || fail "the reader did not get exactly the $n acknowledged records ($(lines "$WORK/c.out") lines)"
pass "a full FIFO does not hold up SIGTERM; the reader gets the $n acknowledged of $total records, whole"

cat "$F" >"$WORK/d.out" &
reader_d=$!
PIDS+=($reader_d)
"$DIABRIDGE" run --journal "$J" --sink "jsonl:$F,name=fifo" 2>>"$LOG" &
d=$!
PIDS+=($d)
wait_for "daemon_up '$J' $d && sink_caught_up '$J' fifo" 30 || fail "the restarted daemon did not deliver the rest"
kill -TERM $d
wait $d || fail "SIGTERM: exit status $?"
wait $reader_d || fail "the new reader did not finish"
diff <(acked_seqs "$J" fifo) <(line_seqs "$WORK/c.out" "$WORK/d.out") >/dev/null \
  || fail "after the restart the readers did not get each record exactly once"
pass "after a restart a new reader gets the other $((total - n)) records, none twice"
