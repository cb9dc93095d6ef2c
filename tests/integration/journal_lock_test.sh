#!/usr/bin/env bash
# One daemon per journal: a second `run` on the same journal is refused
# (exit 78, naming the journal and the pid) and the first carries on;
# read-only verbs work beside a running daemon; `status` tells a killed
# daemon from a running one; and a journal this user may only read (a
# backed-up copy) can still be shown and exported.
source "$(dirname "$0")/lib.bash"

J="$WORK/journal.db"
OUT="$WORK/out.jsonl"

start_daemon() { # LOG: sets $daemon
  "$DIABRIDGE" run --journal "$J" --source "sim,seed=7,speed=600,history=6h" \
    --sink "jsonl:$OUT,name=file" 2>>"$1" &
  daemon=$!
  PIDS+=($daemon)
}
stored() { sqlite3 "$J" "SELECT count(*) FROM records" 2>/dev/null || echo 0; }

# --- a second daemon on the same journal is refused ---------------------------
start_daemon "$WORK/first.log"
first=$daemon
wait_for "daemon_up '$J' $first" 20 || fail "the first daemon did not start"
wait_for "sink_caught_up '$J' file" 30 || fail "the first daemon delivered nothing"

set +e
"$DIABRIDGE" run --journal "$J" --source "sim,seed=8,speed=600" \
  --sink "jsonl:$WORK/second.jsonl,name=file" 2>"$WORK/second.log" &
second=$!
PIDS+=($second)
wait_for "! kill -0 $second 2>/dev/null" 20 || fail "the second daemon kept running beside the first"
wait "$second"
rc=$?
set -e
[ "$rc" -eq 78 ] || fail "second daemon: exit status $rc, want 78: $(cat "$WORK/second.log")"
msg=$(grep "already in use" "$WORK/second.log") || fail "second daemon: no explanation: $(cat "$WORK/second.log")"
for want in "journal $J" "pid $first" "kill $first" "--journal PATH"; do
  [[ $msg == *"$want"* ]] || fail "second daemon's message lacks \"$want\": $msg"
done
[ ! -s "$WORK/second.jsonl" ] || fail "the refused daemon delivered records"
pass "second daemon on one journal: exit 78, names the journal and pid $first"

# --- ... also when the journal is named another way ------------------------------
# A symbolic link to the file, one to its folder, "..", and a relative path
# all name the same journal: each second daemon is refused (the review
# found two daemons running on `real/j.db` and `link/j.db`).
ln -s journal.db "$WORK/link.db"
ln -s "$WORK" "$WORK/folder"
mkdir "$WORK/sub"
n=0
for other in "$WORK/link.db" "$WORK/folder/journal.db" "$WORK/sub/../journal.db" journal.db; do
  n=$((n + 1))
  set +e
  (cd "$WORK" && exec "$DIABRIDGE" run --journal "$other" --source "sim,seed=8,speed=600" \
    --sink "jsonl:$WORK/alias$n.jsonl,name=file") 2>"$WORK/alias$n.log"
  rc=$?
  set -e
  [ "$rc" -eq 78 ] || fail "daemon on $other: exit status $rc, want 78: $(cat "$WORK/alias$n.log")"
  msg=$(grep "already in use" "$WORK/alias$n.log") || fail "daemon on $other: $(cat "$WORK/alias$n.log")"
  [[ $msg == *"journal $other"*"pid $first"* ]] || fail "daemon on $other: $msg"
  [ ! -s "$WORK/alias$n.jsonl" ] || fail "the daemon on $other delivered records"
done
[[ $msg == *"journal journal.db (the file $J)"* ]] || fail "the relative name is not resolved: $msg"
[ ! -e "$WORK/link.db.lock" ] || fail "a lock file beside the symbolic link"
pass "a second daemon is refused through a file link, a folder link, .. and a relative path"

# the first is unaffected: alive, still storing and delivering, no duplicate
kill -0 "$first" || fail "the first daemon died"
n=$(stored)
wait_for "[ \$(stored) -gt $n ]" 30 || fail "the first daemon stopped storing records"
wait_for "sink_caught_up '$J' file" 30 || fail "the first daemon stopped delivering"
dups=$(jq -r .record_key "$OUT" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || fail "$dups record keys delivered twice"
pass "the first daemon carries on: $(stored) records, none delivered twice"

# --- read-only verbs beside the running daemon ---------------------------------
st=$("$DIABRIDGE" status --journal "$J") || fail "status beside the daemon failed"
echo "$st" | grep -q "daemon: running, pid $first" || fail "status does not name the daemon: $st"
echo "$st" | grep -Eq "sink +file +running" || fail "status: $st"
"$DIABRIDGE" status --journal "$J" --json \
  | jq -e --argjson p "$first" '.daemon.running == true and .daemon.pid == $p' >/dev/null \
  || fail "status --json: $("$DIABRIDGE" status --journal "$J" --json | jq -c .daemon)"
[ "$("$DIABRIDGE" export --journal "$J" | wc -l)" -gt 0 ] || fail "export beside the daemon"
"$DIABRIDGE" dead-letters --journal "$J" >/dev/null || fail "dead-letters beside the daemon"
for other in "$WORK/link.db" "$WORK/folder/journal.db"; do
  st=$("$DIABRIDGE" status --journal "$other") || fail "status through $other failed"
  echo "$st" | grep -q "daemon: running, pid $first" || fail "status through $other: $st"
done
g=$("$DIABRIDGE" demo --speed 600 --duration 3 2>/dev/null | jq -r 'select(.kind=="glucose") | .mgdl' | wc -l)
[ "$g" -gt 0 ] || fail "demo beside a running daemon printed nothing"
pass "status, export, dead-letters and demo work beside the daemon"

# --- status after SIGKILL: stopped, not "running" -----------------------------
kill -KILL "$first"
wait "$first" 2>/dev/null || true
st=$("$DIABRIDGE" status --journal "$J")
echo "$st" | grep -q "stopped (no daemon is running with this journal; last seen" \
  || fail "status after SIGKILL: $st"
! echo "$st" | grep -Eq "^(sink|source) .*(running|starting|backing off)" \
  || fail "status after SIGKILL still shows a live worker: $st"
"$DIABRIDGE" status --journal "$J" --json | jq -e '.daemon.running == false
    and .daemon.last_seen_ms > 0 and all(.workers[]; .state == "stopped")
    and any(.workers[]; .last_state == "running")' >/dev/null \
  || fail "status --json after SIGKILL: $("$DIABRIDGE" status --journal "$J" --json)"
pass "status after SIGKILL says stopped, with when it was last seen"

# the kill released the lock: a new daemon starts on the same journal
start_daemon "$WORK/third.log"
third=$daemon
wait_for "daemon_up '$J' $third" 20 || fail "no daemon could start after the kill: $(cat "$WORK/third.log")"
"$DIABRIDGE" status --journal "$J" | grep -q "daemon: running, pid $third" \
  || fail "status with the new daemon: $("$DIABRIDGE" status --journal "$J")"
kill -TERM "$third"
wait "$third" || fail "third daemon: exit status $?"
"$DIABRIDGE" status --journal "$J" | grep -q "stopped (no daemon is running" \
  || fail "status after a clean stop: $("$DIABRIDGE" status --journal "$J")"
pass "after the kill, a new daemon takes the journal; after its clean stop, status says stopped"

# --- a journal with two names (a hard link) -------------------------------------
# SQLite keeps a -wal beside each name, and each name would get a lock file
# of its own: a daemon refuses such a journal, under either name.
ln "$J" "$WORK/hard.db"
for name in "$WORK/hard.db" "$J"; do
  set +e
  "$DIABRIDGE" run --journal "$name" --source sim --sink jsonl:- 2>"$WORK/hard.log" >/dev/null
  rc=$?
  set -e
  [ "$rc" -eq 78 ] || fail "run on a hard-linked journal: exit status $rc: $(cat "$WORK/hard.log")"
  grep -q "journal $name has 2 names (hard links" "$WORK/hard.log" \
    || fail "run on a hard-linked journal: $(cat "$WORK/hard.log")"
done
rm "$WORK/hard.db"
pass "a journal with two names is refused under either, exit 78"

# --- a journal this user may read but not write ---------------------------------
# As root every file is writable, so the reader runs as nobody; the binary
# is copied where nobody can run it, whatever the build folder's modes.
chmod 711 "$WORK"
mkdir "$WORK/bin"
cp "$DIABRIDGE" "$WORK/bin/diabridge"
chmod 755 "$WORK/bin" "$WORK/bin/diabridge"
as_reader() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=65534 --regid=65534 --clear-groups "$WORK/bin/diabridge" "$@"
  else
    "$WORK/bin/diabridge" "$@"
  fi
}
mkdir "$WORK/ro"
cp "$J" "$WORK/ro/journal.db"
chmod 444 "$WORK/ro/journal.db"
chmod 555 "$WORK/ro"
RO="$WORK/ro/journal.db"
total=$(sqlite3 "$J" "SELECT count(*) FROM records")
st=$(as_reader status --journal "$RO" 2>&1) || fail "status on a read-only copy: $st"
echo "$st" | grep -q "journal $RO: $total records" || fail "status on a read-only copy: $st"
echo "$st" | grep -q "no daemon is running with this journal" || fail "status on the copy: $st"
want=$("$DIABRIDGE" export --journal "$J" | sha256sum)
got=$(as_reader export --journal "$RO" | sha256sum)
[ "$got" = "$want" ] || fail "export of the read-only copy differs from the original"
as_reader export --journal "$RO" --format nightscout | jq -e '.entries | length > 0' >/dev/null \
  || fail "nightscout export of the read-only copy"
as_reader dead-letters --journal "$RO" >/dev/null || fail "dead-letters on the read-only copy"
[ -z "$(ls "$WORK/ro" | grep -v '^journal.db$')" ] || fail "the reader left files: $(ls "$WORK/ro")"
pass "status, export and dead-letters read a chmod 444 copy in a chmod 555 folder"

# `run` on a journal it cannot write: a plain sentence, exit 78
mkdir "$WORK/rw"
cp "$J" "$WORK/rw/journal.db"
chmod 444 "$WORK/rw/journal.db"
chmod 777 "$WORK/rw"
set +e
as_reader run --journal "$WORK/rw/journal.db" --source sim --sink jsonl:- 2>"$WORK/rw.log" >/dev/null
rc=$?
set -e
[ "$rc" -eq 78 ] || fail "run on an unwritable journal: exit status $rc, want 78"
grep -q "journal $WORK/rw/journal.db: no permission to write it" "$WORK/rw.log" \
  || fail "run on an unwritable journal: $(cat "$WORK/rw.log")"
! grep -q "not an error" "$WORK/rw.log" || fail "run says \"not an error\": $(cat "$WORK/rw.log")"
pass "run on an unwritable journal: exit 78 and a plain sentence"

# --- a journal on a read-only file system ---------------------------------------
# A read-only mount (systemd's ProtectSystem=strict makes one of every folder
# the unit does not name) refuses even the owner: the message must say so
# and name the folder to allow, not send the user to chown.
mkdir "$WORK/rofs"
cp "$J" "$WORK/rofs/journal.db"
if [ "$(id -u)" -eq 0 ]; then in_ns=(unshare -m); else in_ns=(unshare -rm); fi
read_only() { # run "$@" with $WORK/rofs mounted read-only, in a mount namespace of its own
  "${in_ns[@]}" sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"' \
    sh "$WORK/rofs" "$@"
}
if read_only true 2>/dev/null && ! read_only touch "$WORK/rofs/probe" 2>/dev/null; then
  for case in "journal.db:write it" "fresh.db:create it while opening" "new/journal.db:create its folder"; do
    name="$WORK/rofs/${case%%:*}"
    set +e
    read_only "$DIABRIDGE" run --journal "$name" --source sim --sink jsonl:- 2>"$WORK/rofs.log" >/dev/null
    rc=$?
    set -e
    msg=$(cat "$WORK/rofs.log")
    [ "$rc" -eq 78 ] || fail "run on a read-only file system ($name): exit status $rc: $msg"
    [[ $msg == *"journal $name: cannot ${case#*:}: the file system it is on is read-only"* ]] \
      || fail "run on a read-only file system: $msg"
    dir=$(dirname "$name")
    [[ $msg == *"ReadWritePaths=$dir"* ]] || fail "no ReadWritePaths=$dir: $msg"
    ! grep -Eq "chown|must own|no permission" <<<"$msg" || fail "points at owners: $msg"
  done
  [ "$(ls "$WORK/rofs")" = journal.db ] || fail "files appeared on the read-only mount"
  st=$(read_only "$DIABRIDGE" status --journal "$WORK/rofs/journal.db") \
    || fail "status on a read-only file system: $st"
  echo "$st" | grep -q "journal $WORK/rofs/journal.db: $(sqlite3 "$J" "SELECT count(*) FROM records") records" \
    || fail "status on a read-only file system: $st"
  pass "read-only file system: exit 78, says so and names ReadWritePaths=, never chown; status reads it"
else
  echo "skipped: this system cannot make a read-only mount here (unshare -m)"
fi

# --- another user's journal: dead-letters --retry ------------------------------
# Run as another user than the daemon's, the answer is to run it as the
# daemon's user; handing the journal to this user would lock the daemon out.
if [ "$(id -u)" -eq 0 ]; then
  mkdir "$WORK/svc"
  cp "$J" "$WORK/svc/journal.db"
  chown -R 65534:65534 "$WORK/svc"
  SVC="$WORK/svc/journal.db"
  other=$(getent passwd 1 | cut -d: -f1)
  nobody=$(getent passwd 65534 | cut -d: -f1)
  as_uid() { # UID COMMAND...
    local uid=$1
    shift
    setpriv --reuid="$uid" --regid="$uid" --clear-groups "$WORK/bin/diabridge" "$@"
  }
  set +e
  as_uid 1 dead-letters --retry --journal "$SVC" >/dev/null 2>"$WORK/other.log"
  rc=$?
  set -e
  msg=$(cat "$WORK/other.log")
  [ "$rc" -ne 0 ] || fail "dead-letters --retry wrote another user's journal"
  [[ $msg == *"journal $SVC: no permission to write it. It belongs to user $nobody, and this runs as user $other."* ]] \
    || fail "dead-letters --retry as another user: $msg"
  [[ $msg == *"run this as that user too (\`sudo -u $nobody diabridge …\`) and leave the owner as it is"* ]] \
    || fail "dead-letters --retry as another user: $msg"
  ! grep -q "must own" <<<"$msg" || fail "dead-letters --retry as another user: $msg"

  # setpriv itself in the background (not a shell function), so that $! is
  # the daemon and the cleanup can end it
  setpriv --reuid=65534 --regid=65534 --clear-groups "$WORK/bin/diabridge" run --journal "$SVC" \
    --source "sim,seed=7,speed=600" --sink "jsonl:$WORK/svc/out.jsonl,name=file" \
    >/dev/null 2>>"$WORK/svc.log" &
  svc=$!
  PIDS+=($svc)
  wait_for "daemon_up '$SVC' $svc" 20 || fail "the daemon as $nobody did not start"
  set +e
  as_uid 1 dead-letters --retry --journal "$SVC" >/dev/null 2>"$WORK/other.log"
  rc=$?
  set -e
  msg=$(cat "$WORK/other.log")
  [ "$rc" -ne 0 ] || fail "dead-letters --retry wrote another user's journal"
  [[ $msg == *"A diabridge daemon (pid $svc) writes it as user $nobody, and this runs as user $other: run this command as $nobody too (\`sudo -u $nobody diabridge …\`)"* ]] \
    || fail "dead-letters --retry beside another user's daemon: $msg"
  ! grep -Eq "chown|must own" <<<"$msg" || fail "dead-letters --retry beside the daemon: $msg"
  # and the advice works
  as_uid 65534 dead-letters --retry --journal "$SVC" >/dev/null \
    || fail "dead-letters --retry as the daemon's user failed"
  kill -TERM "$svc"
  wait "$svc" || fail "the daemon as $nobody: exit status $?"
  pass "dead-letters --retry as another user: told to run it as the daemon's user, not to chown"
else
  echo "skipped: another user's journal needs root to set up"
fi
