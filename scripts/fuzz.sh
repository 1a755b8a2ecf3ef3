#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz): builds them with clang in their own tree
# and runs them. docs/testing.md tells what each target checks.
#
#   scripts/fuzz.sh                      every target, 600 s each
#   scripts/fuzz.sh TARGET [SECONDS]     one target (event, http, ...), 600 s by default
#   scripts/fuzz.sh all SECONDS          every target, SECONDS each
#   scripts/fuzz.sh --quick              every target briefly: the committed seeds plus
#                                        a few thousand inputs each (scripts/test.sh)
#   scripts/fuzz.sh --merge [TARGET]     adds what the runs found that reaches new edges
#                                        to tests/fuzz/corpus (commit it by hand)
#   scripts/fuzz.sh --seeds              rewrites the generated seeds in tests/fuzz/corpus
#   scripts/fuzz.sh --list               the targets
#
# Environment: PATRON_FUZZ_BUILD (build-fuzz), PATRON_FUZZ_WORK (scratch:
# $PATRON_FUZZ_BUILD/scratch; new inputs go to scratch/corpus/TARGET, never to the
# committed corpus), PATRON_FUZZ_JOBS (2: a long run of one target uses that
# many processes, of several targets runs that many targets at a time),
# PATRON_FUZZ_RSS_MB (memory limit per process, 2048).
# A crash, a leak, a timeout or a broken property stops with status 1 and
# prints the reproducer's path; run the target on that file to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(pwd)
BUILD=$(realpath -m "${PATRON_FUZZ_BUILD:-build-fuzz}")
WORK=$(realpath -m "${PATRON_FUZZ_WORK:-$BUILD/scratch}")
JOBS=${PATRON_FUZZ_JOBS:-2}
RSS_MB=${PATRON_FUZZ_RSS_MB:-2048}
SEEDS=$ROOT/tests/fuzz/corpus
QUICK_SECONDS=${PATRON_FUZZ_QUICK_SECONDS:-8}
QUICK_RUNS=20000

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

targets() {
  for f in tests/fuzz/fuzz_*.c; do
    f=${f##*/fuzz_}
    echo "${f%.c}"
  done
}

build() {
  scripts/deps.sh
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DPATRON_FUZZ=ON -DPATRON_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
  nice ninja -j2 -C "$BUILD" patron_fuzzers
}

bin() { echo "$BUILD/tests/fuzz/fuzz_$1"; }

# The options every run shares.
opts() {
  local t=$1 o=(-rss_limit_mb="$RSS_MB" -timeout=25 -print_final_stats=1
    -artifact_prefix="$WORK/crashes/$t-")
  [ -f "$ROOT/tests/fuzz/$t.dict" ] && o+=(-dict="$ROOT/tests/fuzz/$t.dict")
  echo "${o[@]}"
}

# Prints the reproducers a run left, and fails if there are any.
check_crashes() {
  local t=$1 found
  found=$(find "$WORK/crashes" -maxdepth 1 -name "$t-*" -newer "$WORK/.start-$t" -type f 2>/dev/null)
  [ -z "$found" ] && return 0
  for f in $found; do
    echo "fuzz_$t FAILED: reproducer $f (replay: $(bin "$t") $f)" >&2
  done
  return 1
}

# One line of figures from a run's log (libFuzzer's final stats).
summary() {
  local t=$1 log=$2 seconds=$3 runs
  runs=$(grep -ah 'stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
  printf '%-14s %11s runs in %4s s: %7s/s  corpus %4s seeds + %5s found\n' "$t" "$runs" \
    "$seconds" "$((runs / (seconds > 0 ? seconds : 1)))" \
    "$(find "$SEEDS/$t" -type f | wc -l)" "$(find "$WORK/corpus/$t" -type f 2>/dev/null | wc -l)"
}

run_one() {
  local t=$1 seconds=$2 mode=$3 b log rc=0
  b=$(bin "$t")
  mkdir -p "$WORK/corpus/$t" "$WORK/crashes" "$WORK/logs"
  touch "$WORK/.start-$t"
  log="$WORK/logs/$t.log"
  local start=$SECONDS
  # shellcheck disable=SC2046
  if [ "$mode" = quick ]; then
    # a fresh scratch dir: the seeds are read, nothing is written next to them
    local scratch
    scratch=$(mktemp -d "$WORK/quick-$t.XXXXXX")
    "$b" $(opts "$t") -max_total_time="$seconds" -runs="$QUICK_RUNS" "$scratch" "$SEEDS/$t" \
      >"$log" 2>&1 || rc=$?
    rm -rf "$scratch"
  elif [ "$JOBS" -gt 1 ]; then
    # -jobs: each process writes fuzz-N.log in the current directory
    (cd "$WORK/logs" && rm -f fuzz-*.log &&
      nice -n 19 "$b" $(opts "$t") -max_total_time="$seconds" -jobs="$JOBS" -workers="$JOBS" \
        "$WORK/corpus/$t" "$SEEDS/$t" >"$t.jobs.log" 2>&1) || rc=$?
    cat "$WORK"/logs/fuzz-*.log >"$log" 2>/dev/null || true
  else
    nice -n 19 "$b" $(opts "$t") -max_total_time="$seconds" "$WORK/corpus/$t" "$SEEDS/$t" \
      >"$log" 2>&1 || rc=$?
  fi
  summary "$t" "$log" $((SECONDS - start))
  if ! check_crashes "$t" || [ "$rc" -ne 0 ]; then
    echo "fuzz_$t: exit $rc; its log: $log" >&2
    grep -aE 'ERROR|FUZZ_CHECK|SUMMARY|runtime error' "$log" | head -5 >&2 || true
    return 1
  fi
}

seeds() {
  mkdir -p "$SEEDS"
  "$BUILD/tests/fuzz/make_seeds" "$SEEDS"
  local d
  # HTTP: byte 0 the chunk size, byte 1 the limits (see fuzz_http.c)
  d=$SEEDS/http
  mkdir -p "$d"
  printf '\0\017GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >"$d/get"
  printf '\003\017GET /v1/customers/c%%201/recommendations?n=5&category=851 HTTP/1.1\r\nAuthorization: Bearer t0ken\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\n' >"$d/pipelined_chunks"
  printf '\0\017POST /v1/events HTTP/1.1\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{"a":"bcd"}' >"$d/post"
  printf '\0\017POST /d HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\nGET /t HTTP/1.1\r\n\r\n' >"$d/chunked_deferred"
  printf '\0\017GET /e HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n' >"$d/close"
  printf '\0\000GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n' >"$d/head_too_large"
  printf '\001\004POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n' >"$d/body_too_large"
  printf '\0\017GET / HTTP/2.0\r\n\r\n' >"$d/version"
  # the query reader: byte 0 the room, the name, NUL, the query
  d=$SEEDS/http_query
  mkdir -p "$d"
  printf '\077id\0id=c%%201&n=5' >"$d/id"
  printf '\004n\0category=851&n=12345+6' >"$d/too_big"
  printf '\077flag\0a=1&flag&b=%%zz' >"$d/flag"
  # the environment: NUL-separated NAME=value
  d=$SEEDS/config
  mkdir -p "$d"
  printf 'PATRON_REDIS_URL=redis://user:s3cret-pass@10.0.0.1:6380/2\0PATRON_KAFKA_BROKERS=k1:9092,k2:9092\0PATRON_HTTP_ADDR=[::1]:8081\0PATRON_LOG_LEVEL=debug' >"$d/redis_url"
  printf 'PATRON_REDIS_CLUSTER=r1:7000,r2:7001\0PATRON_BATCH_MAX=500\0PATRON_RFM_RECENCY_DAYS=30,60,120,240\0PATRON_TIER_CENTS=50000,200000\0PATRON_RDKAFKA_SSL_CA__LOCATION=/etc/ca.pem' >"$d/cluster"
  printf 'PATRON_CLOCK=event\0PATRON_API_TOKEN=abcdefgh12345678\0PATRON_GRAPH_TOPK=50\0PATRON_TYPO=1\0PATRON_HTTP_WORKERS=4' >"$d/misc"
  # the campaigns file
  d=$SEEDS/campaigns
  mkdir -p "$d"
  cp examples/campaigns.yaml "$d/example.yaml"
  printf 'campaigns: []\n' >"$d/empty.yaml"
  # CSV records of the Online Retail subset, the header first
  d=$SEEDS/replay_csv
  mkdir -p "$d"
  local i=0
  while IFS= read -r line; do
    printf '%s' "${line%$'\r'}" >"$d/line$i"
    i=$((i + 1))
  done < <(gzip -dc data/online-retail-subset.csv.gz | awk 'NR == 1 || NR % 997 == 2' | head -12)
  printf '536365,85123A,"WHITE ""HANGING"" HEART, T-LIGHT",6,2010-12-01 08:26:00,2.55,17850,United Kingdom' >"$d/quoted"
  find "$SEEDS" -type f | wc -l | xargs echo "seed files:"
}

merge() {
  local t
  for t in "$@"; do
    [ -d "$WORK/corpus/$t" ] || continue
    # -use_counters=0: an input must reach a new edge, not just run one more
    # often, to be kept; the committed corpora stay a few hundred files
    "$(bin "$t")" -merge=1 -use_counters=0 -rss_limit_mb="$RSS_MB" "$SEEDS/$t" "$WORK/corpus/$t" 2>&1 |
      grep -E 'MERGE-OUTER: [0-9]+ new files' || true
  done
}

case "${1:-}" in
--list)
  targets
  ;;
--seeds)
  build >/dev/null
  seeds
  ;;
--quick)
  # two at a time: the machine has two cores, and this runs after ctest
  build >/dev/null
  WORK=$WORK/quick # its own: a long run's reproducers stay where they are
  rm -rf "$WORK/crashes"
  export -f run_one opts bin check_crashes summary
  export ROOT BUILD WORK JOBS RSS_MB SEEDS QUICK_RUNS
  start=$(date +%s)
  if targets | xargs -P 2 -I{} bash -c "run_one {} $QUICK_SECONDS quick"; then
    echo "scripts/fuzz.sh --quick: every target green in $(($(date +%s) - start)) s"
  else
    echo "scripts/fuzz.sh --quick: FAILED (reproducers above, logs in $WORK/logs)" >&2
    exit 1
  fi
  ;;
--merge)
  shift
  if [ $# -gt 0 ]; then merge "$@"; else mapfile -t all < <(targets) && merge "${all[@]}"; fi
  ;;
-h | --help)
  sed -n '2,22p' "$0"
  ;;
*)
  what=${1:-all}
  seconds=${2:-600}
  if [ "$what" = all ]; then mapfile -t list < <(targets); else list=("$what"); fi
  for t in "${list[@]}"; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "no target $t (scripts/fuzz.sh --list)" >&2; exit 2; }
  done
  build >/dev/null
  if [ ${#list[@]} -eq 1 ]; then
    run_one "${list[0]}" "$seconds" long
  else
    # several targets: JOBS of them at a time, one process each
    export -f run_one opts bin check_crashes summary
    export ROOT BUILD WORK RSS_MB SEEDS
    printf '%s\n' "${list[@]}" | JOBS=1 xargs -P "$JOBS" -I{} bash -c "run_one {} $seconds long"
  fi
  ;;
esac
