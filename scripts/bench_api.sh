#!/usr/bin/env bash
# Requests/s and latency of GET /v1/customers/{id}/recommendations under wrk
# with keep-alive, next to nginx serving a static JSON file of the same size
# on the same machine in the same run (the ceiling: no work per request).
# Called by scripts/bench.sh (which builds); the last line printed is JSON.
#
# What is measured, and how:
# - The load: patron-replay's synthetic mix (BENCH_API_EVENTS events over
#   100,000 customers, 10,000 of them regulars, 100,000 Zipf items) goes
#   through the embedded Kafka and one patron-ingest into Redis; ingest then
#   stops, so that only redis-server, patron-api and wrk share the CPU.
# - wrk (BENCH_API_THREADS threads, BENCH_API_CONNECTIONS keep-alive
#   connections, BENCH_API_DURATION) asks for a customer drawn uniformly from
#   the 100,000 (u0..u99999, seeded) at each request, after a warm-up of the
#   same length (the item cache fills: a steady state, not a cold start).
# - nginx (Debian's, a temporary config, access log off, keep-alive without
#   a request limit) serves a file whose bytes are one real answer of the
#   API, with the same wrk command: once with one worker per core (the
#   machine's ceiling) and once with one worker (per core, as patron-api is
#   one single-threaded process: it scales by processes/pods).
# - Reported: req/s, p50 and p99 latency (wrk --latency) of each, and the
#   ratio of the API's req/s to nginx's (both ways).
#
# Knobs (environment):
#   BENCH_API_EVENTS=1000000   synthetic events loaded
#   BENCH_API_SEED=1
#   BENCH_API_THREADS=2        wrk threads
#   BENCH_API_CONNECTIONS=16   wrk connections
#   BENCH_API_DURATION=10s     each measured run (and its warm-up)
#   BENCH_API_WORKERS=1        patron-api processes (PATRON_HTTP_WORKERS; 1
#                              is its default). nginx keeps one worker per
#                              core, the machine's ceiling. On 2 cores that
#                              Redis and wrk's 2 threads share, a second API
#                              process adds a runnable thread, not a core:
#                              alternating runs gave the same req/s and a
#                              worse p99 (docs/benchmarks.md)
#   BENCH_OUT=                 keep logs and wrk output there
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$PATRON_ROOT
BIN=$PATRON_RELEASE_BUILD
PY=$PATRON_PY

EVENTS="${BENCH_API_EVENTS:-1000000}"
SEED="${BENCH_API_SEED:-1}"
THREADS="${BENCH_API_THREADS:-2}"
CONNS="${BENCH_API_CONNECTIONS:-16}"
DURATION="${BENCH_API_DURATION:-10s}"
CUSTOMERS=100000
REGULARS=10000
ITEMS=100000

for t in wrk nginx redis-server redis-cli; do
  command -v "$t" >/dev/null || { echo "bench api: $t is not installed (scripts/deps.sh)" >&2; exit 1; }
done

# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
bench_setup api patron-replay patron-devkafka patron-ingest patron-api

# Waits until `curl URL` answers 200 (the service is up), at most 20 s.
wait_http() {
  for _ in $(seq 400); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.05
  done
  say "$1 did not answer"
  exit 1
}

# ---- 1. Redis loaded through the real path -------------------------------------
GEN=(synthetic --events "$EVENTS" --customers "$CUSTOMERS" --regulars "$REGULARS" --items "$ITEMS"
  --seed "$SEED")
P="$(json_field "$("$BIN/patron-replay" "${GEN[@]}" --partitions-hint | tail -n1)" partitions)"
[ "$P" -lt 8 ] && P=8

bench_redis api
bench_kafka "$P"
bench_service ingest PATRON_LOG_LEVEL=warn # sets INGEST_PORT
INGEST_HTTP=$INGEST_PORT
say "loading $EVENTS events over $CUSTOMERS customers ($P partitions)"
SUMMARY="$("$BIN/patron-replay" "${GEN[@]}" --brokers "$BROKERS" --topic patron.events | tail -n1)"
N="$(json_field "$SUMMARY" events)"
NCUST="$(json_field "$SUMMARY" customers)"
applied() {
  curl -s "http://127.0.0.1:$INGEST_HTTP/metrics" |
    awk '/^patron_ingest_events_total\{/ {s += $2} END {printf "%d", s}'
}
for _ in $(seq 3000); do
  [ "$(applied)" -ge "$N" ] && break
  sleep 0.2
done
[ "$(applied)" -ge "$N" ] || { say "ingest did not apply the load"; exit 1; }
sleep 1.5 # ingest marks idle partitions once a second: the event clock settles
bench_stop ingest
bench_stop kafka # the API does not consume; its producer (erasures) idles
PROFILES="$(redis-cli -p "$REDIS_PORT" --scan --pattern '{c:*}' | grep -c -v '}:' || true)"
say "$N events applied: $NCUST customers ($PROFILES profiles), $(redis-cli -p "$REDIS_PORT" dbsize) keys"

# ---- 2. patron-api and nginx ---------------------------------------------------------
WORKERS="${BENCH_API_WORKERS:-1}"
# sets API_PORT; the Kafka it was given has stopped (bench_service waits for /healthz)
bench_service api PATRON_KAFKA_BROKERS="$BROKERS" PATRON_LOG_LEVEL=warn PATRON_CLOCK=event \
  PATRON_HTTP_WORKERS="$WORKERS"
# a regular's answer: the file nginx serves has its bytes
curl -s "http://127.0.0.1:$API_PORT/v1/customers/u1/recommendations?limit=10" >"$WORK/answer.json"
BYTES="$(wc -c <"$WORK/answer.json")"
grep -q '"items"' "$WORK/answer.json" || { say "the API did not answer: $(cat "$WORK/answer.json")"; exit 1; }

NGINX_PORT="$(free_port)"
mkdir -p "$WORK/www" "$WORK/nginx"
chmod 755 "$WORK" "$WORK/www" # nginx's workers drop root: they must reach the file
cp "$WORK/answer.json" "$WORK/www/answer.json"
# Starts nginx with $1 workers; sets NGINX_PID.
start_nginx() {
  cat >"$WORK/nginx.conf" <<EOF
worker_processes $1;
error_log $WORK/nginx-error.log warn;
pid $WORK/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { root $WORK/www; default_type application/json; try_files /answer.json =404; }
  }
}
EOF
  nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' >>"$WORK/nginx.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_http "http://127.0.0.1:$NGINX_PORT/v1/customers/u1/recommendations"
}

cat >"$WORK/customers.lua" <<EOF
-- a customer drawn uniformly from the load's, at each request
local n = $CUSTOMERS
local seeded = false
request = function()
  if not seeded then math.randomseed($SEED) seeded = true end
  return wrk.format("GET", "/v1/customers/u" .. math.random(0, n - 1) .. "/recommendations?limit=10")
end
EOF

# Prints "rps p50_ms p99_ms" of one wrk run against port $1; $2 names the log.
run_wrk() {
  wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" --latency -s "$WORK/customers.lua" \
    "http://127.0.0.1:$1" >"$WORK/wrk-$2.txt" 2>&1
  $PY - "$WORK/wrk-$2.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors or "Socket errors" in text:
    sys.exit(f"wrk saw errors: {text}")
print(f"{rps:.0f} {lat['50']:.3f} {lat['99']:.3f}")
PY
}

say "warm-up ($DURATION), then $DURATION each: wrk -t$THREADS -c$CONNS, answers of $BYTES bytes"
run_wrk "$API_PORT" warmup >/dev/null
# The answers of the measured run, by the Redis round trips they waited for
# (1: the profile only; 2 or 3: item lists or facts missing from the cache).
rounds() {
  curl -s "http://127.0.0.1:$API_PORT/metrics" |
    awk -F'[" ]' '/^patron_reco_answers_total\{/ {printf "%s ", $NF}'
}
ROUNDS_BEFORE="$(rounds)"
read -r API_RPS API_P50 API_P99 <<<"$(run_wrk "$API_PORT" api)"
ROUNDS_AFTER="$(rounds)"
say "answers by Redis round trips (1 2 3) during the run: $($PY -c '
import sys
b, a = [list(map(float, x.split())) for x in sys.argv[1:3]]
d = [y - x for x, y in zip(b, a)]
print(" ".join(f"{100 * v / sum(d):.1f}%" for v in d))' "$ROUNDS_BEFORE" "$ROUNDS_AFTER")"
start_nginx "$(nproc)"
run_wrk "$NGINX_PORT" nginx-warmup >/dev/null
read -r NG_RPS NG_P50 NG_P99 <<<"$(run_wrk "$NGINX_PORT" nginx)"
stop_pid "$NGINX_PID"
start_nginx 1
read -r N1_RPS N1_P50 N1_P99 <<<"$(run_wrk "$NGINX_PORT" nginx-1)"
curl -s "http://127.0.0.1:$API_PORT/metrics" | grep -E '^patron_reco' >"$WORK/api-metrics.txt" || true
say "cache: $(tr '\n' ' ' <"$WORK/api-metrics.txt")"

$PY - "$API_RPS" "$API_P50" "$API_P99" "$NG_RPS" "$NG_P50" "$NG_P99" "$N1_RPS" "$N1_P50" "$N1_P99" \
  "$BYTES" "$PROFILES" "$(nproc)" "$WORKERS" <<'PY'
import json, sys
a_rps, a50, a99, n_rps, n50, n99, o_rps, o50, o99 = map(float, sys.argv[1:10])
size, profiles, cores, workers = int(sys.argv[10]), int(sys.argv[11]), int(sys.argv[12]), int(sys.argv[13])
print()
print(f"GET /recommendations?limit=10 ({profiles} customers in Redis, {size}-byte answers)")
print("| server | req/s | p50 ms | p99 ms |")
print("|---|---|---|---|")
print(f"| patron-api ({workers} processes) | {a_rps:,.0f} | {a50:.2f} | {a99:.2f} |")
print(f"| nginx, static file, {cores} workers | {n_rps:,.0f} | {n50:.2f} | {n99:.2f} |")
print(f"| nginx, static file, 1 worker | {o_rps:,.0f} | {o50:.2f} | {o99:.2f} |")
print(f"patron-api / nginx: {a_rps / n_rps:.2f} of the req/s ({a_rps / o_rps:.2f} against one nginx "
      f"worker; target >= 0.5); p99 {a99:.2f} ms (target < 2)")
print(json.dumps({"api": {"rps": round(a_rps), "p50_ms": a50, "p99_ms": a99, "workers": workers},
                  "nginx": {"rps": round(n_rps), "p50_ms": n50, "p99_ms": n99, "workers": cores},
                  "nginx_1_worker": {"rps": round(o_rps), "p50_ms": o50, "p99_ms": o99},
                  "ratio": round(a_rps / n_rps, 3), "ratio_1_worker": round(a_rps / o_rps, 3),
                  "answer_bytes": size, "customers": profiles}))
PY
