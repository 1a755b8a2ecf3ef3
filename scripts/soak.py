#!/usr/bin/env python3
"""An hour of the benchmark mix through the whole stack, memory sampled.

Not run in CI (scripts/soak.sh builds, then calls this). The stack:
redis-server, the embedded Kafka, patron-ingest, patron-trigger (the
example campaigns, wall clock) and patron-api, started by the test harness.
The load: patron-replay's synthetic mix (the ingest benchmark's: Zipf
items, half the events from regulars, views, carts, purchases, reviews,
consents) at a steady rate over a fixed population of customers, plus a
steady trickle of recommendation and profile requests. Event time runs
1,000 times faster than the clock (a second between events at 1,000
events/s: a day of the shop in under a minute at 2,000/s), so that within
the hour every bounded list fills and the day's dedupe window turns over,
as they do in a shop that runs for months.

Every 30 s: the resident memory (VmRSS) of each service and of Kafka, Redis'
used_memory, events applied, customers stored. At the end, a table and a
verdict:
- each service's RSS is flat: the mean of the last third of the samples is
  within 10% (and 16 MiB) of the middle third's (the embedded Kafka's is
  shown, not judged: it keeps up to 5 MiB a partition by design);
- Redis grows only by what is remembered by design. New keys (a customer
  or an item seen for the first time) cost what keys cost; the keys already
  there may grow only by the resend ledger (8 bytes per purchase, refund or
  review, kept for ever: docs/guarantees.md "Resends"). Over the last third,
  the growth not explained by new keys (at the mean size of a key) must
  stay under 12 bytes per event applied, far below what any per-event leak
  (a profile, a list entry) would cost.

    soak.py BIN_DIR [--minutes 60] [--rate 2000] [--customers 100000] [--out DIR]

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
    ap.add_argument("--customers", type=int, default=100000)
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
        trig = st.start_service("patron-trigger",
                                PATRON_CAMPAIGNS=os.path.join(ROOT, "examples", "campaigns.yaml"))
        api = st.start_service("patron-api")
        procs = {"ingest": ingest, "trigger": trig, "api": api, "kafka": st.kafka}
        # before the load starts: nothing after it may fail and leave it running
        if args.out:
            os.makedirs(args.out, exist_ok=True)
        out = open(os.path.join(args.out, "soak.jsonl"), "w") if args.out else None
        load = subprocess.Popen([os.path.join(harness.BIN, "patron-replay"), "synthetic", "--brokers", brokers,
                                 "--topic", "patron.events", "--events", str(events),
                                 "--customers", str(args.customers), "--regulars", str(args.customers // 10),
                                 "--rate", str(args.rate), "--step-ms", "1000", "--seed", "5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = threading.Event()
        reader = threading.Thread(target=requests, args=(api.http_port, args.customers, stop), daemon=True)
        reader.start()
        samples, t0 = [], time.time()
        print(f"soak: {args.minutes:g} min at {args.rate} events/s over {args.customers} customers", flush=True)
        print(f"{'min':>5} {'applied':>10} {'keys':>9} {'redis MiB':>9} "
              + " ".join(f"{n + ' MiB':>12}" for n in procs), flush=True)
        while time.time() - t0 < seconds:
            time.sleep(SAMPLE_S)
            for name, p in procs.items():
                if p.poll() is not None:
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
    print(f"soak: {'flat' if ok else 'NOT flat'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
