#!/usr/bin/env python3
"""Offline evaluation of patron-api's recommendations on UCI Online Retail.

The protocol of shared/data/online-retail/README.md: purchases before
2011-10-01 train; for each customer seen in training, the test set is the
items they bought on or after 2011-10-01 that they had not bought before and
that exist in training (1,753 customers); top 10, already-bought items
excluded; P@10 = hits/10, R@10 = hits/|test|, nDCG@10 with binary relevance,
averaged over the test customers.

Training goes through the real path: patron-replay produces the training
period (--until 2011-10-01) to the embedded Kafka, patron-ingest applies it
to Redis with the event clock, and every test customer is asked of the real
patron-api over HTTP (keep-alive). Called by scripts/eval.sh, which builds.

    eval.py BIN_DIR DATA.csv.gz [--json OUT]

Standard library plus Debian's python3-redis and python3-confluent-kafka
(through tests/integration/harness.py).
"""
import argparse
import collections
import csv
import gzip
import http.client
import json
import math
import os
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

CUTOFF = "2011-10-01"  # InvoiceDate is "YYYY-MM-DD HH:MM:SS", London time: compares as text
K = 10
SAR = {"P@10": 0.0776, "R@10": 0.0477, "nDCG@10": 0.0932}
REFERENCES = [  # the data README's figures, same protocol
    ("most popular", {"P@10": 0.0410, "R@10": 0.0188, "nDCG@10": 0.0441}),
    ("item-kNN, cosine on bought/not-bought", {"P@10": 0.0727, "R@10": 0.0454, "nDCG@10": 0.0872}),
    ("SAR (Jaccard, 30-day half-life time decay)", SAR),
]
TOPICS = {"patron.events": 8, "patron.catalog": 1, "patron.profile-updates": 8, "patron.dlq": 1}


def ground_truth(path):
    """(customers' test sets, kept training rows). Rows with no customer,
    cancellations, Quantity <= 0 or UnitPrice <= 0 are left out of both sides."""
    bought = collections.defaultdict(set)
    items = set()
    later = []
    with gzip.open(path, "rt", newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        if header[:7] != ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
                          "UnitPrice", "CustomerID"]:
            raise SystemExit(f"eval: {path}: unexpected header {header}")
        for invoice, stock, _desc, qty, date, price, customer, *_ in rows:
            if not customer or invoice.startswith("C"):
                continue
            try:
                if int(qty) <= 0 or float(price) <= 0:
                    continue
            except ValueError:
                continue
            if date < CUTOFF:
                bought[customer].add(stock)
                items.add(stock)
            else:
                later.append((customer, stock))
    test = collections.defaultdict(set)
    for customer, stock in later:
        if customer in bought and stock not in bought[customer] and stock in items:
            test[customer].add(stock)
    return dict(test)


def metrics(test, answers):
    p = r = n = 0.0
    for customer, truth in test.items():
        recs = answers.get(customer, [])[:K]
        hits = [1 if x in truth else 0 for x in recs]
        h = sum(hits)
        p += h / K
        r += h / len(truth)
        dcg = sum(v / math.log2(i + 2) for i, v in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(K, len(truth))))
        n += dcg / idcg
    m = len(test)
    return {"P@10": p / m, "R@10": r / m, "nDCG@10": n / m}


def ask_all(port, customers):
    """Every customer's top 10 over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers, strategies, latencies = {}, collections.Counter(), []
    for c in customers:
        path = f"/v1/customers/{urllib.parse.quote(c, safe='')}/recommendations?limit={K}"
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        latencies.append(time.perf_counter() - t0)
        if resp.status != 200:
            raise SystemExit(f"eval: {path}: HTTP {resp.status} {body[:200]!r}")
        doc = json.loads(body)
        answers[c] = [it["item_id"] for it in doc["items"]]
        strategies[doc["strategy"]] += 1
    conn.close()
    latencies.sort()
    return answers, strategies, latencies


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin_dir")
    ap.add_argument("data")
    ap.add_argument("--json", help="also write the figures there")
    args = ap.parse_args()
    os.environ["PATRON_BIN_DIR"] = os.path.abspath(args.bin_dir)
    import harness  # reads PATRON_BIN_DIR when imported
    from harness import Stack, metric, run_tool, wait_for

    t_start = time.time()
    test = ground_truth(args.data)
    print(f"eval: {len(test)} test customers", file=sys.stderr)

    with Stack("eval") as st:
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        api = st.start_service("patron-api", PATRON_CLOCK="event")
        out = run_tool([os.path.join(harness.BIN, "patron-replay"), "online-retail", "--file", args.data,
                        "--until", CUTOFF, "--brokers", brokers, "--topic", "patron.events"], timeout=900)
        events = json.loads(out.strip().splitlines()[-1])["events"]
        t_produced = time.time()
        # every event applied, and no batch still writing (applied counts
        # before Redis acknowledged the batch)
        wait_for("ingest to apply the training period",
                 lambda: metric(ingest.http_port, "patron_ingest_events_total") >= events
                 and metric(ingest.http_port, "patron_ingest_inflight_batches") == 0, timeout=900,
                 interval=0.5)
        t_applied = time.time()
        time.sleep(1.5)  # the API's event clock follows ingest's within 250 ms; idle marks within 1 s
        answers, strategies, lat = ask_all(api.http_port, sorted(test))
        t_asked = time.time()
        assert st.stop(ingest) == 0 and st.stop(api) == 0

    got = metrics(test, answers)
    print()
    print(f"Online Retail, {len(test)} test customers, top {K} (protocol: shared/data/online-retail/README.md)")
    print()
    print("| recommender | P@10 | R@10 | nDCG@10 |")
    print("|---|---|---|---|")
    for name, m in REFERENCES:
        print(f"| {name} | {m['P@10']:.4f} | {m['R@10']:.4f} | {m['nDCG@10']:.4f} |")
    print(f"| **patron-api** (streaming item-to-item CF) | **{got['P@10']:.4f}** | **{got['R@10']:.4f}** "
          f"| **{got['nDCG@10']:.4f}** |")
    print()
    vs = {k: got[k] / SAR[k] - 1 for k in SAR}
    print("vs SAR: " + ", ".join(f"{k} {v:+.1%}" for k, v in vs.items()))
    print(f"strategies: {dict(strategies)}; latency over HTTP p50 {lat[len(lat) // 2] * 1e3:.2f} ms, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms (one connection, sequential)")
    print(f"replay {events} events: produced in {t_produced - t_start:.0f} s, applied "
          f"{t_applied - t_produced:.1f} s later; {len(test)} answers in {t_asked - t_applied - 1.5:.1f} s")
    summary = {"customers": len(test), **{k: round(v, 4) for k, v in got.items()},
               "sar": SAR, "beats_sar": all(got[k] > SAR[k] for k in SAR), "strategies": dict(strategies)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return 0 if summary["beats_sar"] else 1


if __name__ == "__main__":
    sys.exit(main())
