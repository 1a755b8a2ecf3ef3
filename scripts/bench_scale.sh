#!/usr/bin/env bash
# Scale-out of patron-ingest: events/s of one pod and of two pods in one
# consumer group, on one Redis and on a Redis Cluster of three masters, on
# the synthetic mix. Called by scripts/bench.sh scale, which builds first.
#
# What is measured, and how:
# - The load is generated to a file and produced to the embedded Kafka once,
#   before any consumer starts; each of the four runs then consumes all of it
#   from the beginning in a consumer group of its own, into a fresh Redis
#   (one redis-server, or three started with --cluster-enabled and joined by
#   redis-cli --cluster create, no replicas).
# - Events/s: the sum of patron_ingest_events_total over the run's pods,
#   sampled every 25 ms. The window opens when every pod has counted an
#   event (so that the group's first rebalance, when the second pod joins,
#   is behind it) and closes when the sum reaches the N events; the rate is
#   (N - sum at the start) / (t1 - t0). Events a pod replays after that
#   rebalance count twice, which favours two pods by a batch or two.
# - Over the window: CPU seconds of the pods, of the Redis processes and of
#   the machine (/proc).
# - Redis and Kafka start as everywhere else (tests/support/harness.py, through
#   bench_lib.sh); the pods start here, in shell, because each must join its
#   cgroup before it execs (below), and two of them share one name.
# - Each pod gets a CPU limit, as Kubernetes gives it one: a CFS quota on a
#   cgroup of its own (the mechanism behind resources.limits.cpu), by
#   default 0.5 core, the Deployment's request. Without a limit, on a
#   machine with fewer cores than processes, one pod takes whatever idle CPU
#   there is and a second can only share it: that measures the machine, not
#   whether the work spreads over pods. When no cgroup can be made (not
#   root, no cpu controller) the pods run unlimited and the table says so.
#
# Knobs (environment):
#   BENCH_EVENTS=500000     events of the synthetic mix
#   BENCH_SEED=1            generator seed
#   BENCH_ANONYMOUS=30      percent of events from anonymous visitors (as bench_ingest.sh);
#                           with two pods, a merged visitor's partition and its
#                           customer's may belong to both: their lost
#                           compare-and-sets (each a reset) are counted
#   BENCH_PARTITIONS=16     partitions of patron.events
#   BENCH_INGEST_ENV=""     extra "NAME=value ..." for every patron-ingest
#   BENCH_POD_CPU=0.5       each pod's CPU limit in cores; 0: none
#   BENCH_OUT=              keep the logs there
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$PATRON_ROOT
BIN=$PATRON_RELEASE_BUILD
PY=$PATRON_PY

EVENTS="${BENCH_EVENTS:-500000}"
POD_CPU="${BENCH_POD_CPU:-0.5}"
SEED="${BENCH_SEED:-1}"
P="${BENCH_PARTITIONS:-16}"

# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
bench_setup scale patron-replay patron-devkafka patron-ingest

# The cgroup (v1 cpu controller, or v2) under which each pod gets a CPU quota;
# empty when none can be made. Sets CG_ROOT and CG_KIND.
CG_ROOT="" CG_KIND="" CGROUPS=()
if [ "$POD_CPU" != 0 ]; then
  if [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    CG_ROOT=/sys/fs/cgroup/cpu CG_KIND=v1
  elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers &&
    [ -w /sys/fs/cgroup ]; then
    CG_ROOT=/sys/fs/cgroup CG_KIND=v2
  fi
fi
QUOTA_US="$($PY -c "print(int(float('$POD_CPU') * 100000))")"

# Prints the directory of a new cgroup limited to POD_CPU cores ("" if none).
pod_cgroup() {
  [ -n "$CG_ROOT" ] || return 0
  local d="$CG_ROOT/patron-bench-$$-$1"
  mkdir "$d" 2>/dev/null || return 0
  if [ "$CG_KIND" = v1 ]; then
    echo 100000 >"$d/cpu.cfs_period_us" && echo "$QUOTA_US" >"$d/cpu.cfs_quota_us" || { rmdir "$d"; return 0; }
  else
    echo "$QUOTA_US 100000" >"$d/cpu.max" || { rmdir "$d"; return 0; }
  fi
  echo "$d"
}

scale_cleanup() {
  bench_cleanup
  local d
  for d in ${CGROUPS[@]+"${CGROUPS[@]}"}; do rmdir "$d" 2>/dev/null || true; done
}
trap scale_cleanup EXIT

# Starts the store of a run, single (one redis-server) or cluster (three
# masters joined by redis-cli --cluster create, no replicas); sets REDIS_ENV
# (the variable the pods get) and REDIS_PIDS (every node). bench_stop redis
# stops it.
start_store() {
  if [ "$1" = single ]; then
    bench_redis single
    REDIS_ENV="PATRON_REDIS_URL=$PATRON_REDIS_URL"
  else
    bench_up --redis-cluster 3 --cluster-replicas 0 --redis-name redis-cluster
    REDIS_ENV="PATRON_REDIS_CLUSTER=$PATRON_REDIS_CLUSTER"
  fi
}

# ---- 1. the load, produced once --------------------------------------------------
say "this machine has $(nproc) cores: pods, Redis nodes and Kafka share them"
say "generating $EVENTS events (seed $SEED)"
SUMMARY="$("$BIN/patron-replay" synthetic --events "$EVENTS" --seed "$SEED" \
  --anonymous-percent "${BENCH_ANONYMOUS:-30}" --out "$WORK/events.bin" | tail -n1)"
N="$(json_field "$SUMMARY" events)"
bench_kafka "$P"
say "producing $N events to $P partitions"
"$BIN/patron-replay" file --in "$WORK/events.bin" --brokers "$BROKERS" --topic patron.events \
  >"$WORK/produce.log" 2>&1 || { say "produce failed"; cat "$WORK/produce.log" >&2; exit 1; }

# ---- 2. one run: $1 single|cluster, $2 pods; its JSON line in $WORK/run-$1-$2.json
run() {
  local store=$1 pods=$2 i ports=() pids=()
  start_store "$store"
  read -r -a EXTRA <<<"${BENCH_INGEST_ENV:-}"
  for ((i = 0; i < pods; i++)); do
    local port
    port="$(free_port)"
    local cg
    cg="$(pod_cgroup "$store-$pods-$i")"
    if [ -n "$cg" ]; then CGROUPS+=("$cg"); else LIMITED=0; fi
    # the pod joins its cgroup before exec, so that every thread it starts is in it
    CG="$cg" env PATRON_KAFKA_BROKERS="$BROKERS" "$REDIS_ENV" PATRON_HTTP_ADDR="127.0.0.1:$port" \
      PATRON_GROUP_ID="bench-scale-$store-$pods" PATRON_LOG_LEVEL=info ${EXTRA[@]+"${EXTRA[@]}"} \
      sh -c '[ -z "$CG" ] || echo $$ >"$CG/cgroup.procs"; exec "$0"' "$BIN/patron-ingest" \
      >>"$WORK/ingest-$store-$pods.log" 2>&1 &
    pids+=($!)
    PIDS+=($!)
    ports+=("$port")
  done
  local m
  m="$($PY - "$N" "${ports[*]}" "${pids[*]}" "$REDIS_PIDS" <<'PY'
import http.client, json, os, sys, time
n = int(sys.argv[1])
ports = [int(p) for p in sys.argv[2].split()]
pods = [int(p) for p in sys.argv[3].split()]
redis = [int(p) for p in sys.argv[4].split()]
tck = os.sysconf("SC_CLK_TCK")

def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tck

def cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return {"machine": (sum(v) - v[3] - v[4]) / tck, "ingest": sum(proc_cpu(p) for p in pods),
            "redis": sum(proc_cpu(p) for p in redis)}

conns = {}
def count(port, name="patron_ingest_events_total{"):
    try:
        c = conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conns[port] = c
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        conns.pop(port, None)
        return 0
    return sum(int(float(l.rsplit(" ", 1)[1])) for l in body.splitlines()
               if l.startswith(name))

first, seen, deadline = None, 0, time.time() + 60
while True:
    now = time.time()
    counts = [count(p) for p in ports]
    total = sum(counts)
    if total > seen:
        seen, deadline = total, now + 60
    if first is None and all(c > 0 for c in counts):
        first = (now, total, cpu())
    if first and total >= n:
        last = (now, total, cpu())
        break
    if now > deadline:
        sys.exit(f"stalled at {total} of {n} events ({counts})")
    time.sleep(0.025)
secs = last[0] - first[0]
print(json.dumps({"events_per_s": round((n - first[1]) / secs), "seconds": round(secs, 2),
                  "window_events": n - first[1],
                  "cpu_s": {k: round(last[2][k] - first[2][k], 2) for k in last[2]},
                  "conflicts": sum(count(p, "patron_ingest_profile_conflicts_total ") for p in ports),
                  "resets": sum(count(p, "patron_ingest_resets_total ") for p in ports)}))
PY
)" || { say "$store, $pods pod(s): measurement failed"; tail -n 20 "$WORK/ingest-$store-$pods.log" >&2; exit 1; }
  for i in "${pids[@]}"; do stop_pid "$i"; done
  bench_stop redis
  say "$store Redis, $pods pod(s): $m"
  echo "$m" >"$WORK/run-$store-$pods.json"
}

# Not in $(...): a subshell would not kill what it started when it fails.
LIMITED=1
[ -n "$CG_ROOT" ] || LIMITED=0
if [ "$LIMITED" = 1 ]; then
  say "each pod limited to $POD_CPU core (cgroup $CG_KIND CPU quota, as resources.limits.cpu)"
else
  say "pods run WITHOUT a CPU limit (BENCH_POD_CPU=$POD_CPU; no writable cgroup)"
  POD_CPU=0
fi
run single 1
run single 2
run cluster 1
run cluster 2
R_S1="$(cat "$WORK/run-single-1.json")"
R_S2="$(cat "$WORK/run-single-2.json")"
R_C1="$(cat "$WORK/run-cluster-1.json")"
R_C2="$(cat "$WORK/run-cluster-2.json")"

# ---- 3. the table ------------------------------------------------------------------
[ "$LIMITED" = 1 ] || POD_CPU=0
$PY - "$N" "$P" "$(nproc)" "$POD_CPU" "$R_S1" "$R_S2" "$R_C1" "$R_C2" <<'PY'
import json, sys
n, parts, cores, pod_cpu = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
runs = {k: json.loads(v) for k, v in zip(("s1", "s2", "c1", "c2"), sys.argv[5:9])}
eps = {k: r["events_per_s"] for k, r in runs.items()}
busy = {k: r["cpu_s"]["machine"] / r["seconds"] for k, r in runs.items()}
print(f"\npatron-ingest scale-out: {n:,} events of the synthetic mix, {parts} partitions, "
      f"one consumer group per run")
if pod_cpu:
    print(f"each pod limited to {pod_cpu:g} core (CFS quota, as a Kubernetes CPU limit); "
          f"{cores} cores shared with the Redis node(s) and Kafka")
else:
    print(f"pods NOT limited: {cores} cores shared by the pods, the Redis node(s) and Kafka, "
          f"so the ratios show that the work spreads correctly, not what more cores would give")
rows = [("one Redis, 1 pod", "s1"), ("one Redis, 2 pods", "s2"),
        ("3-master cluster, 1 pod", "c1"), ("3-master cluster, 2 pods", "c2")]
for name, k in rows:
    c = runs[k]["cpu_s"]
    print(f"  {name:<26} {eps[k]:>10,} events/s   machine busy {busy[k]:.2f} of {cores} cores "
          f"(ingest {c['ingest'] / runs[k]['seconds']:.2f}, redis {c['redis'] / runs[k]['seconds']:.2f}); "
          f"{runs[k].get('conflicts', 0)} profile conflicts, {runs[k].get('resets', 0)} resets")
ratios = {"two_vs_one_single": round(eps["s2"] / eps["s1"], 2),
          "two_vs_one_cluster": round(eps["c2"] / eps["c1"], 2),
          "cluster_vs_single_one_pod": round(eps["c1"] / eps["s1"], 2),
          "cluster_vs_single_two_pods": round(eps["c2"] / eps["s2"], 2)}
print(f"  2 pods / 1 pod: {ratios['two_vs_one_single']}x on one Redis, "
      f"{ratios['two_vs_one_cluster']}x on the cluster; cluster / one Redis: "
      f"{ratios['cluster_vs_single_one_pod']}x with 1 pod, {ratios['cluster_vs_single_two_pods']}x with 2")
print(json.dumps({"bench": "scale", "events": n, "partitions": parts, "cores": cores, "pod_cpu": pod_cpu,
                  "events_per_s": {"single_1": eps["s1"], "single_2": eps["s2"], "cluster_1": eps["c1"],
                                   "cluster_2": eps["c2"]},
                  "ratios": ratios, "runs": runs}))
PY
