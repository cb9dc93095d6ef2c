# Benchmark rows for the dexcom-usb source: a generated G6 receiver behind a
# pty.  Every bench/sources/NAME.bash defines (NAME with - as _):
#   NAME_start DIR SPEED   start the simulator; print the --source spec (the
#                          source must keep up with SPEED× simulated time)
#   NAME_stop DIR          stop it
dexcom_usb_start() {
  local dir=$1 speed=$2 poll=""
  mkdir -p "$dir"
  "$BUILD/diabridge-sim" dexcom-receiver --generation g6 --speed "$speed" --history 3600 \
    --link "$dir/rx" >"$dir/sim.out" 2>"$dir/sim.err" &
  echo $! >"$dir/sim.pid"
  for _ in $(seq 1 600); do [ -e "$dir/rx" ] && break; sleep 0.1; done
  [ -e "$dir/rx" ] || { echo "bench: the receiver simulator did not start: $(cat "$dir/sim.err")" >&2; return 1; }
  # The source schedules its polls by the receiver's clock, which keeps real
  # time (see sim/dexcom_receiver.c), so sped up it would ask every 5 real
  # minutes and import a few readings of the simulated day.  Polling every
  # second keeps up with any speed (a reading every 0.035 s at 8,640×: ~30
  # per poll); at real speed the source keeps its own schedule, which is
  # what the idle row measures.
  [ "$speed" -gt 1 ] && poll=",poll-interval=1"
  echo "dexcom-usb:$dir/rx,since=1h$poll"
}
dexcom_usb_stop() { [ -f "$1/sim.pid" ] && kill "$(cat "$1/sim.pid")" 2>/dev/null || true; }
