# Benchmark rows for the nightscout sink: the fake Nightscout (diabridge-sim
# nightscout), which implements cgm-remote-monitor's auth and dedup rules.
# No latency row: Nightscout has no push channel, and the issue asks for
# latency to MQTT and InfluxDB only.
nightscout_start() {
  local dir=$1
  "$BUILD/diabridge-sim" nightscout --api-secret bench-secret-123 >"$dir/url" 2>"$dir/sim.err" &
  echo $! >"$dir/pid"
  for _ in $(seq 1 600); do [ -s "$dir/url" ] && break; sleep 0.1; done
  [ -s "$dir/url" ] || { echo "bench: the fake Nightscout did not start: $(cat "$dir/sim.err")" >&2; return 1; }
}
nightscout_stop() { [ -f "$1/pid" ] && kill "$(cat "$1/pid")" 2>/dev/null; rm -f "$1/pid"; true; }
nightscout_spec() { echo "nightscout+$(head -1 "$1/url"),api-secret=bench-secret-123"; }
