# Helpers for the rows in bench/sinks/ and bench/sources/ (sourced by bench/run).
bench_free_port() { # a free loopback port below the ephemeral range
  local p
  for _ in $(seq 1 50); do
    p=$((10000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
bench_wait_port() { # port → 0 once something listens there (60 s)
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
