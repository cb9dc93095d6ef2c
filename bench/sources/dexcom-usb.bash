# Benchmark rows for the dexcom-usb source: a generated G6 receiver behind a
# pty.  Every bench/sources/NAME.bash defines (NAME with - as _):
#   NAME_start DIR SPEED   start the simulator; print the --source spec
#   NAME_stop DIR          stop it
dexcom_usb_start() {
  local dir=$1 speed=$2
  mkdir -p "$dir"
  "$BUILD/diabridge-sim" dexcom-receiver --generation g6 --speed "$speed" --history 3600 \
    --link "$dir/rx" >"$dir/sim.out" 2>"$dir/sim.err" &
  echo $! >"$dir/sim.pid"
  for _ in $(seq 1 100); do [ -e "$dir/rx" ] && break; sleep 0.1; done
  echo "dexcom-usb:$dir/rx,since=1h"
}
dexcom_usb_stop() { [ -f "$1/sim.pid" ] && kill "$(cat "$1/sim.pid")" 2>/dev/null || true; }
