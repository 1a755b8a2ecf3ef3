# shellcheck shell=bash
# What the benchmark scripts share (sourced by bench_ingest.sh, bench_api.sh and
# bench_scale.sh, after scripts/lib.sh): a work directory cleaned up on exit;
# redis-server, patron-devkafka and the services started in it the one way
# the tests and the demo start them (tests/support/harness.py, patron_stack);
# the other processes a benchmark starts itself (PIDS: perf, nginx, pods in a
# cgroup), stopped in reverse order; and small helpers. Expects BIN and PY set.

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
  patron_stack down --dir "$WORK" || true
  if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$WORK"/*.log "$WORK"/*.txt "$OUT"/ 2>/dev/null || true
    [ -f "$WORK/perf.data" ] && cp "$WORK/perf.data" "$OUT"/
  fi
  rm -rf "$WORK"
}

say() { echo "bench $BENCH_NAME: $*" >&2; }

# bench_up ARG...: patron_stack up in $WORK, then its ports, pids and brokers
# in this shell (the variables of $WORK/stack.env).
bench_up() {
  patron_stack up --dir "$WORK" "$@" || { say "the stack did not start (patron_stack up $*)"; exit 1; }
  # shellcheck source=/dev/null
  . "$WORK/stack.env"
}

# bench_redis NAME [redis-server option...]: a redis-server on a free port,
# without persistence, named redis-NAME (its log $WORK/redis-NAME.log); sets
# REDIS_PORT and REDIS_PID (and REDIS_NAME_PORT, REDIS_NAME_PID), until
# bench_stop redis-NAME or the exit.
bench_redis() {
  local name=$1 a args=()
  shift
  for a in "$@"; do args+=("--redis-arg=$a"); done
  bench_up --redis --redis-name "redis-$name" ${args[@]+"${args[@]}"}
}

# bench_kafka PARTITIONS: patron-devkafka with patron.events and
# patron.profile-updates of PARTITIONS each, patron.catalog and patron.dlq;
# sets BROKERS and KAFKA_PID.
bench_kafka() {
  bench_up --kafka --topic "patron.events:$1" --topic patron.catalog:1 \
    --topic "patron.profile-updates:$1" --topic patron.dlq:1
}

# bench_service NAME [VAR=VALUE...]: patron-NAME (ingest, api, trigger) on a
# free port, on the Redis and the Kafka started last, with these variables
# too; waits for its /healthz; sets NAME_PORT and NAME_PID (INGEST_PORT...).
bench_service() {
  local name=$1 e args=()
  shift
  for e in "$@"; do args+=(--env "$e"); done
  bench_up --service "$name" ${args[@]+"${args[@]}"}
}

# bench_stop NAME...: SIGTERM to what bench_up started, by name (ingest,
# kafka, redis-NAME) or kind (redis, service), and waits for it to exit.
bench_stop() {
  patron_stack down --dir "$WORK" "$@"
}

free_port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
json_field() { $PY -c 'import json,sys;print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# stop_pid PID: for what the script started itself (PIDS)
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
