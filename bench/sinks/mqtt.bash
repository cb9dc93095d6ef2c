# Benchmark rows for the mqtt sink: a mosquitto on a free loopback port.
mqtt_start() {
  local dir=$1 port
  port=$(bench_free_port)
  echo "$port" >"$dir/port"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  echo $! >"$dir/pid"
  bench_wait_port "$port" || { echo "bench: mosquitto did not listen on port $port; see $dir/mosquitto.log" >&2; return 1; }
}
mqtt_stop() { [ -f "$1/pid" ] && kill "$(cat "$1/pid")" 2>/dev/null; rm -f "$1/pid"; true; }
mqtt_spec() { echo "mqtt://127.0.0.1:$(cat "$1/port"),homeassistant=off"; }
# every record the broker delivers to a subscriber, one JSON payload a line
mqtt_subscribe() { mosquitto_sub -h 127.0.0.1 -p "$(cat "$1/port")" -q 1 -t 'diabridge/+/+'; }
