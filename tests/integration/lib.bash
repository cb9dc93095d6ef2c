# Shared helpers for the integration tests (sourced, not run).
set -euo pipefail

BUILD=${DIA_BUILD:-build}
DIABRIDGE="$BUILD/diabridge"
WORK=$(mktemp -d /tmp/diabridge-it-XXXXXX)
PIDS=()

cleanup() {
  local status=$?
  # On failure, show what the daemons said: CI keeps only this output.
  if [ "$status" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -s "$log" ] || continue
      echo "--- last lines of $(basename "$log") ---" >&2
      tail -n 25 "$log" >&2
    done
  fi
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# Wait (up to $2 seconds) until command $1 succeeds.
wait_for() {
  local cmd=$1 limit=${2:-30} waited=0
  until eval "$cmd"; do
    sleep 0.1
    waited=$((waited + 1))
    [ $waited -ge $((limit * 10)) ] && return 1
  done
  return 0
}

# True when sink $2 has acknowledged every published record of journal $1.
sink_caught_up() {
  local journal=$1 sink=$2 last cursor
  last=$(sqlite3 "$journal" "SELECT coalesce(max(seq),0) FROM records WHERE published=1")
  cursor=$(sqlite3 "$journal" "SELECT coalesce(max(last_seq),0) FROM sink_cursor WHERE sink='$sink'")
  [ "$last" -gt 0 ] && [ "$cursor" -ge "$last" ]
}

# True once the daemon with pid $2 has written its status into journal $1,
# i.e. it is past start-up and handles SIGTERM as a clean shutdown.
daemon_up() {
  [ -s "$1" ] || return 1
  [ "$(sqlite3 "$1" "SELECT count(*) FROM worker_status WHERE json_extract(json,'$.pid') = $2" 2>/dev/null)" -gt 0 ]
}

# A port nobody listens on, below Linux's ephemeral range (32768+) so that
# no outgoing connection holds it, and never one this test already picked.
PICKED=" "
pick_port() { # VAR
  local p
  while :; do
    p=$((10000 + RANDOM % 20000))
    case "$PICKED" in *" $p "*) continue ;; esac
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    PICKED="$PICKED$p "
    printf -v "$1" %s "$p"
    return
  done
}
