# Benchmark rows for the influx sink: influxd 1.6 on free loopback ports.
influx_start() {
  local dir=$1 http rpc
  http=$(bench_free_port)
  rpc=$(bench_free_port)
  while [ "$rpc" = "$http" ]; do rpc=$(bench_free_port); done
  echo "$http" >"$dir/port"
  cat >"$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$http"
  log-enabled = false
[continuous_queries]
  enabled = false
CONF
  influxd run -config "$dir/influxdb.conf" >"$dir/influxd.log" 2>&1 &
  echo $! >"$dir/pid"
  # The port opens before the HTTP service is ready: wait until /ping
  # answers (204), then create the database and check that it worked.
  local answer=""
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$http/ping" && { answer=yes; break; }
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$answer" ]; then
    echo "bench: influxd did not answer on port $http; see $dir/influxd.log" >&2
    return 1
  fi
  answer=$(curl -sS -XPOST "http://127.0.0.1:$http/query" --data-urlencode "q=CREATE DATABASE bench" 2>&1) ||
    answer="no answer ($answer)"
  if ! jq -e '.results[0] | has("error") | not' <<<"$answer" >/dev/null 2>&1; then
    echo "bench: influxd did not create the database: $answer" >&2
    return 1
  fi
}
influx_stop() { [ -f "$1/pid" ] && kill "$(cat "$1/pid")" 2>/dev/null; rm -f "$1/pid"; true; }
influx_spec() { echo "influx+http://127.0.0.1:$(cat "$1/port"),db=bench"; }
# influxd cannot push: poll the newest point every 10 ms and, when a new one
# appears, report the received_ms of that reading from the daemon's journal
# ($BENCH_JOURNAL).  The latency is therefore resolved to about 10 ms.
influx_subscribe() {
  local url="http://127.0.0.1:$(cat "$1/port")/query" last="" t
  while :; do
    t=$(curl -s -G "$url" --data-urlencode db=bench \
      --data-urlencode "q=SELECT last(sgv) FROM glucose" --data-urlencode epoch=ms \
      | jq -r '.results[0].series[0].values[0][0] // empty' 2>/dev/null)
    if [ -n "$t" ] && [ "$t" != "$last" ]; then
      [ -n "$last" ] && sqlite3 "$BENCH_JOURNAL" \
        "SELECT json_object('received_ms', received_ms) FROM records WHERE kind='glucose' AND t_utc_ms=$t LIMIT 1" 2>/dev/null
      last=$t
    fi
    sleep 0.01
  done
}
