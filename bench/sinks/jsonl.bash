# Benchmark row for the jsonl sink.  Every bench/sinks/NAME.bash defines:
#   NAME_spec DIR          the --sink spec to deliver into DIR
#   NAME_start DIR         start whatever server the sink needs (may be empty)
#   NAME_stop DIR          stop it
#   NAME_subscribe DIR     print delivered records as JSON lines while running
#                          (for the ingest-to-publish latency; may be absent)
# Adding a sink's benchmark rows is adding one such file.
jsonl_spec() { echo "jsonl:$1/jsonl.out,fsync=batch"; }
# the file must exist before `tail -F` starts, or tail polls once a second
jsonl_start() { : >"$1/jsonl.out"; }
jsonl_stop() { :; }
jsonl_subscribe() { tail -n 0 -f "$1/jsonl.out" 2>/dev/null; }
