#!/usr/bin/python3
"""The demo's report: what Patron now knows of the replayed shop's customers.

    demo_report.py --api http://127.0.0.1:8080 --file data/online-retail-subset.csv.gz

Reads the customer ids from the CSV and everything else from patron-api:
profiles (segments, tiers, value) and, where the API serves them,
recommendations. Standard library only.
"""
import argparse
import collections
import csv
import gzip
import json
import urllib.error
import urllib.request


def get(api, path):
    try:
        with urllib.request.urlopen(api + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def customer_ids(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        return sorted({row["CustomerID"] for row in csv.DictReader(f) if row["CustomerID"]})


def money(cents):
    return f"£{cents / 100:,.2f}"


def bar(n, total, width=30):
    return "█" * max(1, round(width * n / total)) if n else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--file", required=True)
    args = ap.parse_args()

    profiles = []
    for cid in customer_ids(args.file):
        status, body = get(args.api, f"/v1/customers/{cid}/profile")
        if status == 200:
            profiles.append(body)
    total = len(profiles)
    print(f"\nCustomers with a profile: {total}")
    if not total:
        return

    for title, key in (("Segments (RFM, as of the last event)", "segment"), ("Loyalty tiers", "tier")):
        print(f"\n{title}")
        counts = collections.Counter(p[key] for p in profiles)
        for name, n in counts.most_common():
            print(f"  {name:<16} {n:>5}  {bar(n, total)}")

    print("\nTop customers by net spend")
    print(f"  {'customer':<10} {'orders':>6} {'net spend':>13} {'points':>7}  {'tier':<9} {'segment':<16} top category")
    top = sorted(profiles, key=lambda p: -p["net_spend_cents"])[:5]
    for p in top:
        cat = p["top_categories"][0]["category"] if p["top_categories"] else "-"
        print(f"  {p['customer_id']:<10} {p['orders']:>6} {money(p['net_spend_cents']):>13} {p['points']:>7}  "
              f"{p['tier']:<9} {p['segment']:<16} {cat}")

    status, _ = get(args.api, f"/v1/customers/{top[0]['customer_id']}/recommendations?limit=5")
    if status == 200:
        print("\nRecommendations (collaborative filtering over the live item graph)")
        for p in top[:3]:
            _, rec = get(args.api, f"/v1/customers/{p['customer_id']}/recommendations?limit=5")
            items = ", ".join(i["item_id"] for i in rec["items"])
            print(f"  {p['customer_id']:<10} [{rec['strategy']}] {items}")

    churn = sorted(profiles, key=lambda p: -p["churn_risk"] * p["net_spend_cents"])[:3]
    print("\nMost valuable customers drifting away (churn risk x net spend)")
    for p in churn:
        print(f"  {p['customer_id']:<10} churn risk {p['churn_risk']:.2f}, {money(p['net_spend_cents'])} spent, "
              f"last purchase {p['rfm']['recency_days']} days ago")


if __name__ == "__main__":
    main()
