#!/usr/bin/env python3
"""An hour of the benchmark mix through the whole stack, memory sampled.

Not run in CI (scripts/soak.sh builds, then calls this). The stack:
redis-server, the embedded Kafka, patron-ingest, patron-trigger (the
example campaigns) and patron-api, started by the test harness. The load:
patron-replay's synthetic mix (the ingest benchmark's: Zipf items, half the
events from regulars, views, carts, purchases, reviews, consents) at a
steady rate, plus a steady trickle of recommendation and profile requests.
Event time runs 1,000 times faster than the clock (a second between events
at 1,000 events/s: a day of the shop in under a minute at 2,000/s), and the
services run on the event clock (PATRON_CLOCK=event), as a backtest does:
on the wall clock every timer of a shop dated years ago would fire at once.

The population is what makes an hour prove something. Every structure
Patron keeps grows with use up to a bound (docs/redis.md): a customer's
bought list and its earlier hashes, recent event ids, trigger sends and
message ids, an item's neighbour list. With the benchmark's 100,000
customers and 100,000 items an hour fills none of them (a one-hour run
grew 20 bytes per event, all of it lists filling toward their bounds, none
past one), and a leak would hide among them. So the soak runs the same mix
over fewer customers and items (20,000 and 2,000 regulars, 10,000 items by
default): the first third fills the bounds, and the last third must then
hold still.

Every 30 s: the resident memory (VmRSS) of each service and of Kafka, Redis'
used_memory, events applied, keys stored. At the start of the last third and
at the end, the memory of each class of keys (MEMORY USAGE of a sample). At
the end, a table and a verdict:
- each service's RSS is flat: the mean of the last third of the samples is
  within 10% (and 16 MiB) of the middle third's (the embedded Kafka's is
  shown, not judged: it keeps up to 5 MiB a partition by design);
- Redis grows only by what is remembered by design. New keys (a customer
  or an item seen for the first time) cost what keys cost; the keys already
  there may grow only by the resend ledger (8 bytes per purchase, refund or
  review, kept for ever: docs/guarantees.md "Resends"). Over the last third,
  the growth not explained by new keys (at the mean size of a key) must
  stay under 12 bytes per event applied, far below what any per-event leak
  (a profile, a list entry) would cost. The classes' growth says where any
  excess went.

    soak.py BIN_DIR [--minutes 60] [--rate 2000] [--customers 20000] [--items 10000] [--out DIR]

Exit status 0 when flat, 1 when not.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

SAMPLE_S = 30
TOPICS = {"patron.events": 16, "patron.catalog": 2, "patron.profile-updates": 16, "patron.dlq": 2,
          "patron.campaign.sms": 2, "patron.campaign.push": 2, "patron.campaign.email": 2}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def requests(port, customers, stop):
    """A few requests a second, as a site would send them."""
    from harness import http
    rng = random.Random(7)
    while not stop.is_set():
        c = str(rng.randrange(customers))
        try:
            http(port, "GET", f"/v1/customers/{c}/recommendations?limit=10", timeout=5)
            http(port, "GET", f"/v1/customers/{c}/profile", timeout=5)
        except OSError:
            pass
        stop.wait(0.05)


def key_class(key):
    """The class of a key (docs/redis.md), its variable parts elided."""
    k = key.decode(errors="replace")
    if k.startswith("{c:"):
        return "profile {c:*}"
    if k.startswith("{v:"):
        return "visitor {v:*}"
    if k.startswith("{i:"):
        return "item " + k[k.index("}") + 1:] if "}" in k else "item"
    if k.startswith("{tp:"):
        rest = k[k.index("}") + 1:] if "}" in k else ""
        return "trigger " + rest.split(":")[1] if rest.count(":") >= 1 else "trigger"
    if k.startswith("{"):
        return k[:k.index("}") + 1] + (":" + k[k.index("}") + 2:].split(":")[0] if "}:" in k else "")
    return k.split(":")[0]


def classes(r, sample=3000):
    """Keys and bytes of each class: every key counted, MEMORY USAGE of up to
    `sample` of them per class, scaled to the class."""
    keys = {}
    for k in r.scan_iter(count=2000):
        keys.setdefault(key_class(k), []).append(k)
    out = {}
    rng = random.Random(1)
    for c, ks in keys.items():
        picked = ks if len(ks) <= sample else rng.sample(ks, sample)
        used = sum(r.memory_usage(k, samples=0) or 0 for k in picked)
        out[c] = (len(ks), used * len(ks) / max(1, len(picked)))
    return out


def flat_rss(series):
    third = len(series) // 3
    mid = sum(series[third:2 * third]) / max(1, third)
    last = sum(series[2 * third:]) / max(1, len(series) - 2 * third)
    return last - mid <= max(0.10 * mid, 16 * 1024), mid, last


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin_dir")
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=int, default=2000, help="events per second")
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--out", help="keep the samples (JSON lines) and the logs there")
    args = ap.parse_args()
    os.environ["PATRON_BIN_DIR"] = os.path.abspath(args.bin_dir)
    import harness
    from harness import Stack, metric

    seconds = int(args.minutes * 60)
    events = args.rate * seconds
    with Stack("soak") as st:
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest")
        trig = st.start_service("patron-trigger", PATRON_CLOCK="event",
                                PATRON_CAMPAIGNS=os.path.join(ROOT, "examples", "campaigns.yaml"))
        api = st.start_service("patron-api", PATRON_CLOCK="event")
        procs = {"ingest": ingest, "trigger": trig, "api": api, "kafka": st.kafka}
        # before the load starts: nothing after it may fail and leave it running
        if args.out:
            os.makedirs(args.out, exist_ok=True)
        out = open(os.path.join(args.out, "soak.jsonl"), "w") if args.out else None
        load = subprocess.Popen([os.path.join(harness.BIN, "patron-replay"), "synthetic", "--brokers", brokers,
                                 "--topic", "patron.events", "--events", str(events),
                                 "--customers", str(args.customers), "--regulars", str(args.customers // 10),
                                 "--items", str(args.items),
                                 "--rate", str(args.rate), "--step-ms", "1000", "--seed", "5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = threading.Event()
        reader = threading.Thread(target=requests, args=(api.http_port, args.customers, stop), daemon=True)
        reader.start()
        samples, t0 = [], time.time()
        print(f"soak: {args.minutes:g} min at {args.rate} events/s over {args.customers} customers and "
              f"{args.items} items", flush=True)
        print(f"{'min':>5} {'applied':>10} {'keys':>9} {'redis MiB':>9} "
              + " ".join(f"{n + ' MiB':>12}" for n in procs), flush=True)
        by_class = []  # (when, classes) at the start of the last third and at the end
        while time.time() - t0 < seconds:
            time.sleep(SAMPLE_S)
            if not by_class and time.time() - t0 >= 2 * seconds / 3:
                by_class.append((metric(ingest.http_port, "patron_ingest_events_total"), classes(r)))
            for name, p in procs.items():
                if p.poll() is not None:
                    load.kill()  # the load is not the harness's: it would outlive the stack
                    sys.exit(f"soak: {name} exited with {p.returncode}")
            s = {"t": round(time.time() - t0), "applied": metric(ingest.http_port, "patron_ingest_events_total"),
                 "customers": r.dbsize(), "redis": int(r.info("memory")["used_memory"]),
                 **{name: rss_kib(p.pid) for name, p in procs.items()}}
            samples.append(s)
            if out:
                out.write(json.dumps(s) + "\n")
                out.flush()
            print(f"{s['t'] / 60:5.1f} {s['applied']:10.0f} {s['customers']:9d} {s['redis'] / 2**20:9.1f} "
                  + " ".join(f"{s[n] / 1024:12.1f}" for n in procs), flush=True)
        by_class.append((metric(ingest.http_port, "patron_ingest_events_total"), classes(r)))
        stop.set()
        load.terminate()
        load.wait()
        for p in (ingest, trig, api):
            assert st.stop(p) == 0, f"{p.patron_name} did not stop cleanly"

    ok = True
    if len(samples) < 6:
        sys.exit("soak: too short to judge (fewer than 6 samples)")
    for name in procs:
        flat, mid, last = flat_rss([s[name] for s in samples])
        judged = name != "kafka"
        print(f"soak: {name} RSS {mid / 1024:.1f} MiB (middle third) -> {last / 1024:.1f} MiB (last): "
              f"{('flat' if flat else 'GROWING') if judged else 'not judged (the embedded Kafka)'}")
        ok &= flat or not judged
    third = len(samples) // 3
    a, b = samples[2 * third - 1], samples[-1]
    per_key = b["redis"] / max(1, b["customers"])
    new_keys = b["customers"] - a["customers"]
    unexplained = (b["redis"] - a["redis"]) - new_keys * per_key
    per_event = unexplained / max(1.0, b["applied"] - a["applied"])
    redis_flat = per_event <= 12
    print(f"soak: Redis over the last third: {new_keys} new keys (~{per_key:.0f} B each), and "
          f"{per_event:.1f} bytes per event applied beyond them (the resend ledger keeps 8 per purchase, "
          f"refund or review): {'flat' if redis_flat else 'GROWING'}")
    ok &= redis_flat
    if len(by_class) == 2:
        (e0, c0), (e1, c1) = by_class
        events = max(1.0, e1 - e0)
        print(f"soak: Redis by class over the last third ({events:.0f} events): keys, MiB, bytes per event")
        for c in sorted(set(c0) | set(c1), key=lambda c: -(c1.get(c, (0, 0))[1] - c0.get(c, (0, 0))[1])):
            (n0, b0), (n1, b1) = c0.get(c, (0, 0)), c1.get(c, (0, 0))
            print(f"  {c:28} {n0:>8} -> {n1:<8} {b0 / 2**20:8.1f} -> {b1 / 2**20:<8.1f} {(b1 - b0) / events:+7.2f}")
    print(f"soak: {'flat' if ok else 'NOT flat'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
