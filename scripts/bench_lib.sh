# What the benchmark scripts share (sourced by bench_ingest.sh, bench_api.sh and
# bench_scale.sh): a work directory cleaned up on exit, the processes started
# (PIDS, stopped in reverse order), and small helpers. Expects BIN and PY set.

# bench_setup NAME PROGRAM...: checks the programs in $BIN, makes $WORK and
# installs the cleanup (BENCH_OUT keeps the logs, *.txt and perf.data).
bench_setup() {
  BENCH_NAME=$1
  shift
  local b
  for b in "$@"; do
    [ -x "$BIN/$b" ] || { echo "bench $BENCH_NAME: $BIN/$b missing (run scripts/bench.sh)" >&2; exit 1; }
  done
  WORK="$(mktemp -d "/tmp/patron-bench-$BENCH_NAME.XXXXXX")"
  OUT="${BENCH_OUT:-}"
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$WORK"/*.log "$WORK"/*.txt "$OUT"/ 2>/dev/null || true
    [ -f "$WORK/perf.data" ] && cp "$WORK/perf.data" "$OUT"/
  fi
  rm -rf "$WORK"
}

say() { echo "bench $BENCH_NAME: $*" >&2; }

# bench_redis NAME [redis-server option...]: a redis-server on a free port,
# without persistence, its log $WORK/redis-NAME.log; sets REDIS_PORT and
# REDIS_PID (stopped on exit).
bench_redis() {
  local name=$1
  shift
  REDIS_PORT="$(free_port)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis-$name.log" "$@" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  say "redis-server did not start"
  exit 1
}

# bench_kafka PARTITIONS: patron-devkafka with patron.events and
# patron.profile-updates of PARTITIONS each, patron.catalog and patron.dlq;
# sets BROKERS and KAFKA_PID.
bench_kafka() {
  "$BIN/patron-devkafka" --bootstrap-file "$WORK/bootstrap" --topic "patron.events:$1" \
    --topic patron.catalog:1 --topic "patron.profile-updates:$1" --topic patron.dlq:1 \
    >"$WORK/devkafka.log" 2>&1 &
  KAFKA_PID=$!
  PIDS+=("$KAFKA_PID")
  for _ in $(seq 200); do [ -s "$WORK/bootstrap" ] && break; sleep 0.05; done
  BROKERS="$(cat "$WORK/bootstrap")"
  [ -n "$BROKERS" ] || { say "patron-devkafka did not start"; exit 1; }
}
free_port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
json_field() { $PY -c 'import json,sys;print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
