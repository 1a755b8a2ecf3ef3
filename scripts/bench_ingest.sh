#!/usr/bin/env bash
# Sustained events/s of one patron-ingest on the realistic mix, with its two
# references measured in the same run: redis-benchmark's pipelined throughput
# (the ceiling) and, when BENCH_PEER names it, a Python peer (what a team
# would write instead; kept outside this repository). Called by
# scripts/bench.sh, which builds first.
#
# What is measured, and how:
# - The load is generated to a file first, then produced to the embedded
#   Kafka, all BEFORE patron-ingest starts: the figure is consumption only.
# - Events/s: /metrics' patron_ingest_events_total is sampled every 25 ms.
#   The window opens at the first sample that counts any event (c0 events
#   at t0) and closes at the first that counts all N (t1); the rate is
#   (N - c0) / (t1 - t0). Start-up and the first batch are outside it; the
#   sampling error is under 50 ms (sampling faster costs ingest measurable
#   time rendering /metrics).
# - Over the same window: CPU seconds of patron-ingest, redis-server and
#   patron-devkafka (/proc/PID/stat), and Redis' total_commands_processed.
# - B/customer: Redis used_memory after the run minus that of the empty
#   server, divided by the distinct customers of the load (cross-checked with
#   a SCAN count of profile keys); the item graph and item statistics count,
#   and so do the visitors' profiles and aliases ({v:*}): a visitor is
#   charged to the customers, as the shop's budget is per customer. B/profile
#   divides the same by customers + visitors.
# - The mix has BENCH_ANONYMOUS (30) percent of visitors' events, a third of
#   the visitors identified by a customer (data/README.md, synthetic).
#
# Knobs (environment):
#   BENCH_EVENTS=1000000    events of the synthetic mix
#   BENCH_SEED=1            generator seed
#   BENCH_ANONYMOUS=30      percent of events from anonymous visitors
#   BENCH_PARTITIONS=       partitions of patron.events (default: max(16,
#                           patron-replay's --partitions-hint))
#   BENCH_INGEST_ENV=""     extra "NAME=value ..." for patron-ingest, e.g.
#                           "PATRON_GRAPH_HISTORY=4 PATRON_BATCH_MAX=5000"
#   BENCH_PEER=             the Python peer's script, run as
#                           PEER BROKERS REDIS_PORT TOPIC GROUP PROTO_PY_DIR
#                           on the same events into a fresh Redis; its last
#                           line says "...: N events/s". Unset: the peer's
#                           column is skipped
#   BENCH_CEILING=1         run redis-benchmark (0: skip)
#   BENCH_PERF=             ingest|redis|kafka: perf record -g that process
#                           during the run (perf.data and a report kept in
#                           BENCH_OUT); BENCH_PERF_OPTS (default
#                           "-F 999 -g") e.g. "-F 499 --call-graph dwarf"
#   BENCH_OUT=              keep logs, INFO, /metrics, perf output there
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$PATRON_ROOT
BIN=$PATRON_RELEASE_BUILD
PY=$PATRON_PY
PEER="${BENCH_PEER:-}"

EVENTS="${BENCH_EVENTS:-1000000}"
SEED="${BENCH_SEED:-1}"
CUSTOMERS=1000000
REGULARS=10000
ITEMS=100000

# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
bench_setup ingest patron-replay patron-devkafka patron-ingest

info_field() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | sed -n "s/^$3://p"; }

# ---- 1. the load --------------------------------------------------------------
say "generating $EVENTS events (seed $SEED)"
GEN=(synthetic --events "$EVENTS" --customers "$CUSTOMERS" --regulars "$REGULARS"
  --items "$ITEMS" --seed "$SEED" --anonymous-percent "${BENCH_ANONYMOUS:-30}")
HINT="$("$BIN/patron-replay" "${GEN[@]}" --partitions-hint | tail -n1)"
P="${BENCH_PARTITIONS:-$(json_field "$HINT" partitions)}"
[ -z "${BENCH_PARTITIONS:-}" ] && [ "$P" -lt 16 ] && P=16
SUMMARY="$("$BIN/patron-replay" "${GEN[@]}" --out "$WORK/events.bin" | tail -n1)"
N="$(json_field "$SUMMARY" events)"
NCUST="$(json_field "$SUMMARY" customers)"
NVIS="$(json_field "$SUMMARY" visitors 2>/dev/null || echo 0)"
NVIS="${NVIS:-0}"
NIDENT="$(json_field "$SUMMARY" identifies 2>/dev/null || echo 0)"
NIDENT="${NIDENT:-0}"
say "$N events, $NCUST distinct customers, $NVIS visitors ($NIDENT Identify events), $P partitions"

# ---- 2. Kafka and Redis, the load produced before any consumer ---------------
bench_redis ingest
REDIS_INGEST_PORT=$REDIS_PORT
REDIS_INGEST_PID=$REDIS_PID
bench_kafka "$P"

say "producing to $BROKERS"
t0=$(date +%s.%N)
"$BIN/patron-replay" file --in "$WORK/events.bin" --brokers "$BROKERS" --topic patron.events \
  >"$WORK/produce.log" 2>&1 || { say "produce failed"; cat "$WORK/produce.log" >&2; exit 1; }
say "produced in $($PY -c "import sys;print(round($(date +%s.%N)-$t0,1))") s"

# ---- 3. one patron-ingest ------------------------------------------------------
MEM0="$(info_field "$REDIS_INGEST_PORT" memory used_memory)"
read -r -a EXTRA <<<"${BENCH_INGEST_ENV:-}"
bench_service ingest PATRON_LOG_LEVEL=info ${EXTRA[@]+"${EXTRA[@]}"} # sets INGEST_PORT, INGEST_PID
HTTP_PORT=$INGEST_PORT
PERF_PID=""
if [ -n "${BENCH_PERF:-}" ]; then
  case "$BENCH_PERF" in
  ingest) PERF_TARGET=$INGEST_PID ;;
  redis) PERF_TARGET=$REDIS_INGEST_PID ;;
  kafka) PERF_TARGET=$KAFKA_PID ;;
  *) say "BENCH_PERF: ingest, redis or kafka"; exit 2 ;;
  esac
  # shellcheck disable=SC2086 # options are words
  perf record ${BENCH_PERF_OPTS:--F 999 -g} -o "$WORK/perf.data" -p "$PERF_TARGET" >"$WORK/perf-record.log" 2>&1 &
  PERF_PID=$!
  PIDS+=("$PERF_PID")
fi

# Samples the counter every 25 ms; prints one JSON line of the window's figures.
MEASURE="$($PY - "$HTTP_PORT" "$N" "$REDIS_INGEST_PORT" "$INGEST_PID" "$REDIS_INGEST_PID" \
  "$KAFKA_PID" <<'PY'
import json, os, sys, time, http.client
import redis
port, n, rport = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pids = {"ingest": int(sys.argv[4]), "redis": int(sys.argv[5]), "kafka": int(sys.argv[6])}
tck = os.sysconf("SC_CLK_TCK")
r = redis.Redis(port=rport)

def machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / tck  # busy: all but idle and iowait

def cpu():
    out = {"machine": machine()}
    for k, pid in pids.items():  # utime + stime of each process (all threads)
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[k] = (int(fields[11]) + int(fields[12])) / tck
    return out

def count(conn):
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    total = 0
    for line in body.splitlines():
        if line.startswith("patron_ingest_events_total{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total

conn, deadline, first, last, seen = None, time.time() + 60, None, None, 0
while True:
    now = time.time()
    try:
        conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c = count(conn)  # keep-alive: a new connection per sample costs ingest an allocation
    except (OSError, http.client.HTTPException):
        conn = None
        if now > deadline:
            sys.exit("patron-ingest /metrics did not answer")
        time.sleep(0.05)
        continue
    if c > seen:
        seen, deadline = c, now + 60  # a stall of a minute ends the run
    if c > 0 and first is None:
        first = (now, c, cpu(), r.info("stats")["total_commands_processed"])
    if c >= n:
        last = (now, c, cpu(), r.info("stats")["total_commands_processed"])
        break
    if now > deadline:
        sys.exit(f"patron-ingest stalled at {c} of {n} events")
    time.sleep(0.025)
secs = last[0] - first[0]
with open(f"/proc/{pids['ingest']}/status") as f:
    hwm = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]  # peak RSS, KiB
print(json.dumps({
    "ingest_peak_rss_mib": round(hwm / 1024),
    "seconds": round(secs, 3),
    "events": last[1] - first[1],
    "events_per_s": round((last[1] - first[1]) / secs),
    "first_count": first[1],
    "cpu_s": {k: round(last[2][k] - first[2][k], 2) for k in list(pids) + ["machine"]},
    "redis_commands_per_s": round((last[3] - first[3]) / secs),
}))
PY
)" || { say "measurement failed"; tail -n 20 "$WORK/ingest.log" >&2; exit 1; }
if [ -n "$PERF_PID" ]; then
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
fi
say "ingest: $MEASURE"

sleep 0.5 # the last batch's replies are in; let Redis settle its memory figure
MEM1="$(info_field "$REDIS_INGEST_PORT" memory used_memory)"
PROFILES="$(redis-cli -p "$REDIS_INGEST_PORT" --scan --pattern '{c:*}' | wc -l)"
VPROFILES="$(redis-cli -p "$REDIS_INGEST_PORT" --scan --pattern '{v:*}' | wc -l)"
DBSIZE="$(redis-cli -p "$REDIS_INGEST_PORT" DBSIZE)"
redis-cli -p "$REDIS_INGEST_PORT" INFO commandstats | tr -d '\r' >"$WORK/commandstats.txt"
redis-cli -p "$REDIS_INGEST_PORT" INFO memory | tr -d '\r' >"$WORK/redis-memory.txt"
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/metrics.txt" || true
bench_stop ingest
bench_stop redis-ingest
if [ -n "$PERF_PID" ] && [ -n "$OUT" ]; then
  perf report -i "$WORK/perf.data" --no-children --percent-limit 0.5 --stdio -g none \
    >"$WORK/perf-report.txt" 2>/dev/null || true
fi

# ---- 4. references -------------------------------------------------------------
SET_OPS=0 GET_OPS=0 EVAL_OPS=0
if [ "${BENCH_CEILING:-1}" = 1 ]; then
  bench_redis ceiling
  rb() { redis-benchmark -p "$REDIS_PORT" -q -P 64 -n 2000000 -r 1000000 "$@" 2>/dev/null | tr '\r' '\n' |
    sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -n1; }
  SET_OPS="$(rb -t set -d 160)"
  GET_OPS="$(rb -t get)"
  # what one profile write costs: the compare-and-set script's shape
  SHA="$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD \
    "local c = redis.call('GETRANGE', KEYS[1], 0, 7) redis.call('SET', KEYS[1], ARGV[1]) return 1")"
  VAL="$(printf 'v%.0s' $(seq 160))"
  EVAL_OPS="$(rb EVALSHA "$SHA" 1 "{c:__rand_int__}" "$VAL")"
  say "redis-benchmark -P 64: SET $SET_OPS/s, GET $GET_OPS/s, EVALSHA $EVAL_OPS/s"
  bench_stop redis-ceiling
fi

PEER_EPS=0 PEER_BPC=0 PEER_STATS='{}'
if [ -z "$PEER" ]; then
  say "no Python peer (BENCH_PEER=/path/to/python_ingest.py to compare with one): its column is skipped"
elif [ ! -f "$PEER" ]; then
  say "BENCH_PEER=$PEER: no such file"
  exit 2
else
  mkdir -p "$WORK/py"
  protoc --python_out="$WORK/py" -I "$ROOT/proto" "$ROOT"/proto/patron/v1/*.proto
  bench_redis peer
  PMEM0="$(info_field "$REDIS_PORT" memory used_memory)"
  say "python peer on the same events (fresh Redis, fresh group)"
  # the peer's own CPU, its Redis' and the rest of the machine's over its run
  PEER_STATS="$($PY - "$REDIS_PID" "$WORK/peer.log" "$PY" "$PEER" "$BROKERS" "$REDIS_PORT" \
    patron.events "peer-$$-$(date +%s)" "$WORK/py" <<'PY'
import json, os, resource, subprocess, sys, time
tck = os.sysconf("SC_CLK_TCK")
def ticks(path, busy=False):
    with open(path) as f:
        if busy:
            v = [int(x) for x in f.readline().split()[1:]]
            return (sum(v) - v[3] - v[4]) / tck
        fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tck
rpid, log, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
r0, m0, t0 = ticks(f"/proc/{rpid}/stat"), ticks("/proc/stat", True), time.time()
with open(log, "w") as out:
    rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode
r1, m1, t1 = ticks(f"/proc/{rpid}/stat"), ticks("/proc/stat", True), time.time()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
peer = ru.ru_utime + ru.ru_stime
print(json.dumps({"rc": rc, "peer_cpu_s": round(peer, 2), "redis_cpu_s": round(r1 - r0, 2),
                  "other_load_cores": round((m1 - m0 - peer - (r1 - r0)) / (t1 - t0), 2)}))
PY
)"
  [ "$(json_field "$PEER_STATS" rc)" = 0 ] || { say "peer failed"; tail -n 20 "$WORK/peer.log" >&2; exit 1; }
  PMEM1="$(info_field "$REDIS_PORT" memory used_memory)"
  PEER_EPS="$(sed -n 's/.*: \([0-9,]*\) events\/s.*/\1/p' "$WORK/peer.log" | tr -d ,)"
  PEER_BPC=$(((PMEM1 - PMEM0) / NCUST))
  say "peer: $(tail -n1 "$WORK/peer.log")"
  bench_stop redis-peer
fi

# ---- 5. the table --------------------------------------------------------------
$PY - "$MEASURE" "$N" "$NCUST" "$PROFILES" "$DBSIZE" "$MEM0" "$MEM1" "$SET_OPS" "$GET_OPS" \
  "$EVAL_OPS" "$PEER_EPS" "$PEER_BPC" "$P" "${BENCH_INGEST_ENV:-}" "$PEER_STATS" "$NVIS" \
  "$VPROFILES" "$NIDENT" "$WORK/metrics.txt" <<'PY'
import json, os, sys
m = json.loads(sys.argv[1])
n, ncust, profiles, dbsize, mem0, mem1 = map(int, sys.argv[2:8])
set_ops, get_ops, eval_ops = map(float, sys.argv[8:11])
peer, peer_bpc, parts, extra = float(sys.argv[11] or 0), int(sys.argv[12]), int(sys.argv[13]), sys.argv[14]
ps = json.loads(sys.argv[15])
nvis, vprofiles, nident = int(sys.argv[16] or 0), int(sys.argv[17] or 0), int(sys.argv[18] or 0)
counters = {}  # ingest's /metrics at the end: resets and identity outcomes
try:
    for line in open(sys.argv[19]):
        if line.startswith(("patron_ingest_resets_total", "patron_ingest_identify_total",
                            "patron_ingest_redirected_total", "patron_ingest_profile_conflicts_total")):
            name, value = line.rsplit(" ", 1)
            counters[name] = int(float(value))
except OSError:
    pass
eps = m["events_per_s"]
bpc = (mem1 - mem0) / ncust
bpp = (mem1 - mem0) / (ncust + nvis)
cmds = m["redis_commands_per_s"]
cpu = m["cpu_s"]
others = cpu["machine"] - cpu["ingest"] - cpu["redis"] - cpu["kafka"]
us = lambda k: cpu[k] / m["events"] * 1e6
# CPU per event of the consumer and its Redis: steadier than events/s when
# other processes share the machine, which they did in different amounts
# during the two runs (the "other load" figures)
own_us = us("ingest") + us("redis")
peer_us = (ps["peer_cpu_s"] + ps["redis_cpu_s"]) / n * 1e6 if peer else 0
rows = [
    ("patron-ingest", f"{eps:,.0f} events/s", "target >= 150,000", "ok" if eps >= 150000 else "MISSED"),
    ("python peer", f"{peer:,.0f} events/s" if peer else "skipped", "same events, same machine", ""),
    ("patron / peer", f"{eps / peer:.2f}x" if peer else "-", "", ""),
    ("other load, patron / peer run", f"{others / m['seconds']:.2f} / {ps['other_load_cores']:.2f}"
     if peer else f"{others / m['seconds']:.2f}", f"cores of {os.cpu_count()} used by others", ""),
    ("CPU per event, patron", f"{own_us:.1f} us", "ingest + its Redis", ""),
    ("CPU per event, python peer", f"{peer_us:.1f} us" if peer else "-", "peer + its Redis", ""),
    ("patron / peer, per CPU", f"{peer_us / own_us:.2f}x" if peer else "-", "", ""),
    ("redis-benchmark -P 64 SET", f"{set_ops:,.0f} ops/s", "the ceiling", ""),
    ("redis-benchmark -P 64 GET", f"{get_ops:,.0f} ops/s", "", ""),
    ("redis-benchmark -P 64 EVALSHA", f"{eval_ops:,.0f} ops/s", "CAS-shaped script", ""),
    # ingest reads and writes up to 256 keys per call: its calls/s are not
    # comparable with SETs; Redis' CPU per event (above) is the figure
    ("patron Redis calls", f"{cmds:,.0f} calls/s", "MGET and scripts of many keys", ""),
    ("Redis per customer", f"{bpc:,.0f} B", "visitors included; budget <= 512 B",
     "ok" if bpc <= 512 else "MISSED"),
    ("Redis per profile", f"{bpp:,.0f} B", f"{ncust:,} customers + {nvis:,} visitors", ""),
    ("python peer per customer", f"{peer_bpc:,} B" if peer else "-", "", ""),
]
print(f"\npatron-ingest benchmark: {n:,} events, {ncust:,} customers ({profiles:,} profiles, "
      f"{dbsize:,} keys), {nvis:,} visitors ({vprofiles:,} keys, {nident:,} Identify events), "
      f"{parts} partitions{', ' + extra if extra else ''}")
if counters:
    print("ingest counters: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counters.items())))
print(f"patron-ingest peak RSS {m['ingest_peak_rss_mib']} MiB")
print(f"window {m['seconds']} s; CPU s in it: ingest {cpu['ingest']} ({us('ingest'):.1f} us/event), "
      f"redis {cpu['redis']} ({us('redis'):.1f} us/event), kafka {cpu['kafka']}; other processes "
      f"{others:.1f} s ({others / m['seconds']:.2f} of {os.cpu_count()} cores: a busy machine "
      f"lowers every figure)")
w = max(len(r[0]) for r in rows)
for r in rows:
    print(f"  {r[0]:<{w}}  {r[1]:>18}  {r[2]:<28} {r[3]}")
print(json.dumps({
    "bench": "ingest", "events": n, "customers": ncust, "partitions": parts, "ingest_env": extra,
    "events_per_s": eps, "seconds": m["seconds"], "cpu_s": m["cpu_s"],
    "cpu_us_per_event": {k: round(us(k), 2) for k in ("ingest", "redis", "kafka")},
    "other_load_cores": round(others / m["seconds"], 2),
    "ingest_peak_rss_mib": m["ingest_peak_rss_mib"],
    "peer_events_per_s": peer, "ratio_vs_peer": round(eps / peer, 2) if peer else None,
    "peer_other_load_cores": ps.get("other_load_cores"),
    "cpu_us_per_event_with_redis": {"patron": round(own_us, 2), "peer": round(peer_us, 2) if peer else None},
    "redis_benchmark_ops_per_s": {"set": set_ops, "get": get_ops, "evalsha": eval_ops},
    "redis_calls_per_s": cmds,
    "bytes_per_customer": round(bpc), "peer_bytes_per_customer": peer_bpc if peer else None,
    "visitors": nvis, "visitor_keys": vprofiles, "identifies": nident,
    "bytes_per_profile": round(bpp), "ingest_counters": counters,
    "used_memory": mem1, "profiles": profiles, "keys": dbsize,
    "targets_met": eps >= 150000 and bpc <= 512,
}))
PY
