#!/usr/bin/python3
"""The demo's report: what Patron now knows of the replayed shop's customers,
and what each campaign did.

    demo_report.py --api http://127.0.0.1:8080 --file data/online-retail-subset.csv.gz

Reads the customer ids from the CSV and everything else from patron-api:
segments and tiers (/v1/dashboard/customers), the K-Means clusters
(/v1/segments/clusters), profiles (with the anonymous visitors merged into
them at login, and what those brought), recommendations, each campaign's
sent / suppressed / exited / converted / uplift (/v1/campaigns/stats) and its
messages per month of event time (/v1/campaigns/daily). It first waits until the campaign statistics hold
still (patron-trigger has caught up) and the dashboard's customer snapshot
was taken after that. Standard library only.
"""
import argparse
import csv
import gzip
import json
import sys
import time
import urllib.error
import urllib.request

REASONS = ("consent", "audience", "control_group", "cooldown", "frequency_cap")


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


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def settle(api, timeout=240):
    """Waits until the campaign statistics are unchanged over 3 s, then for a
    customer snapshot taken at that clock (the dashboard takes one every
    PATRON_DASHBOARD_REFRESH_MS: 2 s in the demo). Returns (stats, customers)."""
    start, last, same_since = time.time(), None, None
    while True:
        status, stats = get(api, "/v1/campaigns/stats")
        now = time.time()
        if status == 200:
            sent = sum(c["sent"] for c in stats["campaigns"])
            print(f"\r    campaigns: {sent} messages sent so far", end="", file=sys.stderr, flush=True)
            if stats == last:
                if now - same_since >= 3:
                    break
            else:
                last, same_since = stats, now
        if now - start > timeout:
            print("\n    the campaign statistics did not settle; reporting what there is", file=sys.stderr)
            break
        time.sleep(0.5)
    print(file=sys.stderr)
    while True:
        status, customers = get(api, "/v1/dashboard/customers")
        if status == 200 and last and customers["as_of_ms"] >= last["as_of_ms"]:
            return last, customers
        if time.time() - start > timeout + 60:
            return last or {"campaigns": []}, customers if status == 200 else None
        print("\r    waiting for the dashboard's customer snapshot", end="", file=sys.stderr, flush=True)
        time.sleep(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--file", required=True)
    args = ap.parse_args()

    stats, customers = settle(args.api)
    profiles = []
    for cid in customer_ids(args.file):
        status, body = get(args.api, f"/v1/customers/{cid}/profile")
        if status == 200:
            profiles.append(body)
    total = customers["customers"] if customers else len(profiles)
    print(f"\nCustomers with a profile: {total}")
    if not total or not profiles:
        return

    visitors(args.api, profiles)

    if customers:
        for title, key in (("Segments (RFM, as of the last event)", "segments"), ("Loyalty tiers", "tiers")):
            print(f"\n{title}")
            for name, n in sorted(customers[key].items(), key=lambda kv: -kv[1]):
                print(f"  {name:<16} {n:>5}  {bar(n, total)}")
    clusters(args.api)

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

    campaigns(stats)
    by_month(args.api)
    _, reco = get(args.api, "/v1/dashboard/recommended?limit=5")
    if reco and reco["items"]:
        print("\nMost recommended in campaign messages")
        for it in reco["items"]:
            print(f"  {it['item_id']:<10} {it['count']:>5}  {it['title'] or ''}")


def visitors(api, profiles):
    """The anonymous visitors merged into customers at login, and what they brought."""
    merged = [(p["customer_id"], v) for p in profiles for v in p.get("merged_visitors", [])]
    print(f"\nVisitors identified at login: {len(merged)} merged into "
          f"{len({c for c, _ in merged})} customers")
    if not merged:
        return
    print(f"  what they brought to the merge: {sum(v['viewed'] for _, v in merged)} recently viewed "
          f"items, {sum(v['cart_lines'] for _, v in merged)} cart lines, "
          f"{sum(v['orders'] for _, v in merged)} guest orders")
    print("  (a visitor's events applied after its merge, its partition being behind its "
          "customer's, went to the customer directly)")
    cid, v = max(merged, key=lambda cv: (cv[1]["orders"], cv[1]["viewed"]))
    status, body = get(api, f"/v1/visitors/{v['anonymous_id']}/profile")
    if status == 200:
        print(f"  e.g. {v['anonymous_id']} is now customer {body['customer_id']}: "
              f"{body['orders']} orders, {len(body['recent_items']['viewed'])} items viewed")


def clusters(api):
    status, cl = get(api, "/v1/segments/clusters")
    if status != 200:
        print("\nClusters: not fitted yet")
        return
    total = sum(c["size"] for c in cl["clusters"]) or 1
    sil = "-" if cl["silhouette"] is None else f"{cl['silhouette']:.2f}"
    print(f"\nClusters (K-Means over recency, orders and spend; k = {cl['k']}, silhouette {sil}; "
          f"centroid: days since the last purchase, orders, net spend)")
    for c in cl["clusters"]:
        cen = c["centroid"]
        print(f"  {c['id']}  {c['label']:<30} {c['size']:>5}  {bar(c['size'], total, 20):<20} "
              f"{cen['recency_days']:>6.1f} d {cen['orders']:>5.1f} {money(cen['net_spend_cents']):>11}")


def by_month(api):
    """Messages sent per calendar month of event time, from the daily counters."""
    status, daily = get(api, "/v1/campaigns/daily?days=400")
    if status != 200 or not daily["campaigns"]:
        return
    months = sorted({d["day"][:7] for c in daily["campaigns"] for d in c["days"] if d["sent"] or d["conversions"]})
    if not months:
        return
    print("\nMessages sent per month (event time; conversions' revenue on the last line)")
    names = [time.strftime("%b", time.strptime(m, "%Y-%m")) for m in months]
    print(f"  {'campaign':<18} " + " ".join(f"{n:>5}" for n in names))
    revenue = dict.fromkeys(months, 0)
    for c in daily["campaigns"]:
        sent = dict.fromkeys(months, 0)
        for d in c["days"]:
            if d["day"][:7] in sent:
                sent[d["day"][:7]] += d["sent"]
                revenue[d["day"][:7]] += d["revenue_cents"]
        print(f"  {c['campaign_id']:<18} " + " ".join(f"{sent[m]:>5}" for m in months))
    print(f"  {'revenue (£k)':<18} " + " ".join(f"{revenue[m] / 100000:>5.1f}" for m in months))


def campaigns(stats):
    rows = stats["campaigns"]
    print("\nCampaigns (backtested on the event clock; uplift = rate of those sent - rate of the control group)")
    if not rows:
        print("  no campaign decisions (is patron-trigger running?)")
        return
    print(f"  {'campaign':<18} {'var':<3} {'eligible':>8} {'sent':>6} {'suppr.':>6} {'exited':>6} {'conv.':>5} "
          f"{'revenue':>10} {'rate':>6} {'control':>7} {'uplift (95% interval)':<28} suppressed by")
    for c in rows:
        supp = sum(c["suppressed"][r] for r in REASONS)
        why = ", ".join(f"{r} {c['suppressed'][r]}" for r in REASONS if c["suppressed"][r])
        if c["uplift"] is None:
            uplift = "-"
        else:
            ci = c["uplift_ci95"]
            uplift = f"{100 * c['uplift']:+.1f} pp" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")
        print(f"  {c['campaign_id']:<18} {c['variant'] or '-':<3} {c['eligible']:>8} {c['sent']:>6} {supp:>6} "
              f"{c['exited']:>6} {c['conversions']:>5} {money(c['revenue_cents']):>10} {pct(c['conversion_rate']):>6} "
              f"{pct(c['control']['conversion_rate']):>7} {uplift:<28} {why}")


if __name__ == "__main__":
    main()
