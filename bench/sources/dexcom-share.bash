# Benchmark rows for the dexcom-share source: the Share API simulator on
# loopback (see bench/sources/dexcom-usb.bash for the contract).
dexcom_share_start() {
  local dir=$1 speed=$2 anchor
  mkdir -p "$dir"
  anchor=$(date +%s%3N)
  "$BUILD/diabridge-sim" share-server --anchor "$anchor" --speed "$speed" \
    >"$dir/url" 2>"$dir/sim.err" &
  echo $! >"$dir/sim.pid"
  for _ in $(seq 1 600); do [ -s "$dir/url" ] && break; sleep 0.1; done
  [ -s "$dir/url" ] || { echo "bench: the Share simulator did not start: $(cat "$dir/sim.err")" >&2; return 1; }
  echo "share-pass" >"$dir/pw"
  echo "dexcom-share,url=$(head -1 "$dir/url"),username=share-user,password-file=$dir/pw,time-scale=$speed,time-anchor=$anchor"
}
dexcom_share_stop() { [ -f "$1/sim.pid" ] && kill "$(cat "$1/sim.pid")" 2>/dev/null || true; }
