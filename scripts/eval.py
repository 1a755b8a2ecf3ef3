#!/usr/bin/env python3
"""Offline evaluation of Patron: recommendations, then churn and value.

    eval.py BIN_DIR [all|reco|churn] [--online-retail PATH] [--complete-journey PATH]
            [--synthetic] [--json OUT] [--seed N] [--no-patron] [--include-non-products]
    eval.py BIN_DIR --self-test

Called by scripts/eval.sh, which builds BIN_DIR first. Prints one table per
section; docs/eval.md says what each measures.

Section 1, recommendations: data sets x protocols x recommenders.
  Data sets: Online Retail (the repository's subset unless --online-retail
  names another file, e.g. the full one) and the 84.51 Complete Journey
  sample (--complete-journey: its directory or transactions_sample.csv.gz,
  with products.csv.gz beside it; skipped without); with --synthetic, a
  generated shop of another shape (patron_eval/data.py, synthetic_shop:
  latent genres, one item per order, ~100 orders per customer, 2020,
  generated from --seed).
  Protocols (NEW items only: items the customer had not bought in training
  and that exist in training; top 10, training items excluded):
    temporal: Online Retail before 2011-10-01 (London), Complete Journey
      before 2017-10-01 (UTC), the synthetic shop before 2020-10-01 (UTC)
      trains; the data READMEs' protocol;
    random 75/25: per customer with at least 4 distinct products,
      round(n/4) of them held out at random (fixed seed), no time split
      (patron_eval/data.py, random_holdout, says exactly how).
  Recommenders: most popular, item-kNN (cosine, binary), SAR (Jaccard,
  30-day half-life), all computed here (patron_eval/recommenders.py), and
  Patron: the training orders produced to the embedded Kafka, applied by
  patron-ingest to a real redis-server on the event clock, every test
  customer asked of patron-api (patron_eval/pipeline.py). Non-products
  (data/non_products.txt) are left out of the baselines' training and of
  the test sets; Patron gets every line, as a shop would send it, and the
  catalogue marks them not_a_product.
  Exit status 0 when Patron beats the best baseline on P@10 and on
  nDCG@10 on every row, 1 otherwise (also with --no-patron), 2 on a usage
  error.

Section 2, churn and value on Online Retail (patron_eval/churn.py): two
  cuts, calibration before 2011-09-01 / holdout to the end of the data,
  and before 2011-06-01 / holdout to 2011-09-01. Predictors: Patron's
  profile scores after patron-replay's own mapping of the calibration
  period went through Kafka and ingest (event clock), BG/NBD with
  Gamma-Gamma (patron_eval/clv.py), recency, calibration spend.

--self-test simulates BG/NBD and Gamma-Gamma customers from known
parameters and checks the fits recover them, then exits.
"""
import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from patron_eval import churn, clv, data, pipeline  # noqa: E402
from patron_eval import recommenders as reco  # noqa: E402

SUBSET = os.path.join(ROOT, "data", "online-retail-subset.csv.gz")
NON_PRODUCTS = os.path.join(ROOT, "data", "non_products.txt")
TEMPORAL_CUT = {"online-retail": "2011-10-01", "complete-journey": "2017-10-01", "synthetic": "2020-10-01"}
CHURN_CUTS = (("2011-09-01", None), ("2011-06-01", "2011-09-01"))  # None: the day after the data ends
METRICS = ("P@10", "R@10", "nDCG@10")
BASELINES = [name for name, _ in reco.SCORERS]


def log(msg):
    """Progress on stderr (the tables go to stdout)."""
    print(f"eval: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    """The command line; a missing data path stops with a clear message."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin_dir", help="the build tree with patron-ingest, patron-api, patron-replay, patron-devkafka")
    ap.add_argument("section", nargs="?", default="all", choices=("all", "reco", "churn"))
    ap.add_argument("--online-retail", metavar="PATH", help="Online Retail CSV (.gz); default the repository's subset")
    ap.add_argument("--complete-journey", metavar="PATH",
                    help="the Complete Journey directory, or its transactions_sample.csv.gz")
    ap.add_argument("--synthetic", action="store_true",
                    help="add the generated shop (latent tastes, one item per order) to section 1")
    ap.add_argument("--json", metavar="OUT", help="also write every figure there")
    ap.add_argument("--seed", type=int, default=1,
                    help="the random holdout's seed, and the synthetic shop's (default 1)")
    ap.add_argument("--no-patron", action="store_true", help="baselines only (no stack)")
    ap.add_argument("--include-non-products", action="store_true",
                    help="keep non-products in the baselines and test sets (the data READMEs' exact protocol)")
    ap.add_argument("--self-test", action="store_true", help="check BG/NBD and Gamma-Gamma on simulated data")
    args = ap.parse_args(argv)
    if args.online_retail and not os.path.isfile(args.online_retail):
        ap.error(f"--online-retail {args.online_retail}: no such file")
    if args.complete_journey and not os.path.exists(args.complete_journey):
        ap.error(f"--complete-journey {args.complete_journey}: no such file or directory")
    if args.complete_journey:
        try:
            data.complete_journey_paths(args.complete_journey)  # both files there
        except SystemExit as e:
            ap.error(str(e).removeprefix("eval: "))
    return args


def fmt(v, digits=4):
    """A figure for a table cell."""
    return "—" if v is None or v != v else f"{v:.{digits}f}"


# ---- section 1 -------------------------------------------------------------

def patron_answers(ctx, split, customers):
    """Patron's top 10 for each customer, after the split's training orders
    went through Kafka -> ingest -> Redis; and what the run says about itself."""
    shop = split.shop
    orders = data.orders_of(split.patron_train, shop)
    with pipeline.Patron(f"eval-{shop.kind}", ctx["bin_dir"]) as p:
        events = p.feed_orders(orders, shop, ctx["event_pb2"], ctx["catalog_pb2"], ctx["tmp"])
        answers, strategies = p.recommendations(customers)
        now = p.now_ms()
        info = {"events": events, "catalog": len(shop.items), "dlq": p.dlq, "strategies": dict(strategies),
                "api_now_ms": now, "latency_ms": {k: round(v, 2) for k, v in p.latency_ms.items()},
                "timings_s": {k: round(v, 1) for k, v in p.timings.items()}}
    recommended = [x for recs in answers.values() for x in recs]
    info["answers_short"] = sum(1 for recs in answers.values() if len(recs) < reco.K)
    info["non_products_recommended"] = sum(1 for x in recommended if not shop.is_product(x))
    info["already_bought_recommended"] = sum(
        1 for c, recs in answers.items() for x in recs if x in split.bought.get(c, ()))
    return answers, info


def evaluate_split(ctx, split):
    """One row of section 1: every recommender on one data set x protocol."""
    t0 = time.time()
    customers = sorted(split.test)
    tr = reco.Training(split.train)
    row = {"dataset": split.shop.name, "protocol": split.protocol, "description": split.description,
           "test_customers": len(customers), "training_lines": len(split.train),
           "test_items": sum(len(v) for v in split.test.values()), "results": {}, "coverage": {}}
    for name, make in reco.SCORERS:
        answers = reco.recommend(tr, make(tr), customers)
        row["results"][name] = reco.metrics(split.test, answers)
        row["coverage"][name] = reco.coverage(answers)
    row["timings_s"] = {"baselines": round(time.time() - t0, 1)}
    log(f"{split.shop.name}, {split.protocol}: {len(customers)} test customers, baselines in "
        f"{time.time() - t0:.0f} s")
    if not ctx["no_patron"]:
        t1 = time.time()
        answers, info = patron_answers(ctx, split, customers)
        row["results"]["Patron"] = reco.metrics(split.test, answers)
        row["coverage"]["Patron"] = reco.coverage(answers)
        row["patron"] = info
        row["timings_s"]["patron"] = round(time.time() - t1, 1)
        log(f"  Patron in {time.time() - t1:.0f} s: {info['events']} events, {info['strategies']}")
    best = max(BASELINES, key=lambda n: (row["results"][n]["P@10"], row["results"][n]["nDCG@10"]))
    row["best_baseline"] = best
    if "Patron" in row["results"]:
        pat = row["results"]["Patron"]
        top = {m: max(row["results"][n][m] for n in BASELINES) for m in METRICS}
        row["patron_vs_best"] = {m: pat[m] / top[m] - 1 if top[m] else None for m in METRICS}
        row["patron_beats"] = pat["P@10"] > top["P@10"] and pat["nDCG@10"] > top["nDCG@10"]
    return row


def print_reco_table(rows):
    """Section 1's table and its notes."""
    print("## Recommendations: P@10 / R@10 / nDCG@10, new items only (* best baseline)")
    print()
    names = BASELINES + (["Patron"] if any("Patron" in r["results"] for r in rows) else [])
    print("| data set | protocol | test customers | " + " | ".join(names)
          + " | Patron vs best baseline (P@10, nDCG@10) |")
    print("|---|---|---|" + "---|" * len(names) + "---|")
    for r in rows:
        cells = []
        for n in names:
            m = r["results"].get(n)
            cell = " / ".join(fmt(m[k]) for k in METRICS) if m else "—"
            cells.append(cell + (" *" if n == r["best_baseline"] else ""))
        if "patron_vs_best" in r:
            vs = r["patron_vs_best"]
            verdict = ("beats" if r["patron_beats"] else "does not beat") + \
                f" ({vs['P@10']:+.1%}, {vs['nDCG@10']:+.1%})"
        else:
            verdict = "not measured"
        print(f"| {r['dataset']} | {r['protocol']} | {r['test_customers']} | " + " | ".join(cells) + f" | {verdict} |")
    print()
    for r in rows:
        cov = ", ".join(f"{n} {c}" for n, c in r["coverage"].items())
        print(f"- {r['dataset']}, {r['protocol']}: {r['description']}; {r['test_items']} test items; "
              f"distinct items recommended: {cov}.")
        p = r.get("patron")
        if p:
            print(f"  Patron: {p['events']} purchase events + {p['catalog']} catalogue updates, DLQ {p['dlq']}; "
                  f"strategies {p['strategies']}; {p['answers_short']} answers under {reco.K} items; "
                  f"{p['non_products_recommended']} non-product and {p['already_bought_recommended']} "
                  f"already-bought items recommended; HTTP p50 {p['latency_ms'].get('p50', 0):.2f} ms, "
                  f"p99 {p['latency_ms'].get('p99', 0):.2f} ms; times (s) {p['timings_s']}.")
    print()


# ---- section 2 -------------------------------------------------------------

def last_day_after(shop):
    """The day after the data's last purchase or refund (local), as text."""
    last = max([l.t_ms for l in shop.purchases[-1:]] + [r.t_ms for r in shop.refunds[-1:]])
    return datetime.date.fromordinal(churn.local_day(last, shop.tz) + 1).isoformat()


def evaluate_cut(ctx, shop, cut, end):
    """One cut of section 2: every predictor's churn and value figures."""
    t0 = time.time()
    s = churn.summarize(shop, cut, end)
    rows, fits = churn.baselines(s)
    out = {"cut": cut, "holdout_end": end, "holdout_days": s["holdout_days"],
           "calibration_days": s["calibration_days"], "customers": len(s["customers"]),
           "churned_share": float(s["churned"].mean()), "holdout_net_spend": float(s["holdout_net"].sum()),
           "fits": fits, "rows": [], "timings_s": {"baselines": round(time.time() - t0, 1)}}
    if not ctx["no_patron"]:
        t1 = time.time()
        # churn_risk for exactly the holdout; snapshots (and fits) every 2 s
        api_env = {"PATRON_CHURN_HORIZON_DAYS": str(s["holdout_days"]), "PATRON_DASHBOARD_REFRESH_MS": "2000"}
        with pipeline.Patron("eval-churn", ctx["bin_dir"], api_env) as p:
            events = p.replay_online_retail(ctx["online_retail"], cut)
            model = p.wait_models()
            profiles = p.profiles(s["customers"])
            now = p.now_ms()
            timings = p.timings
        risk, value, read = churn.patron_predictions(profiles, s["customers"], s["holdout_days"])
        rows.insert(0, ("Patron (churn_risk, predicted value)", churn.churn_metrics(risk, s["churned"], True),
                        churn.value_metrics(value, s["holdout_net"], s["customers"])))
        out["patron"] = {"events": events, "api_now_ms": now, "read": read, "model": model,
                         "mean_churn_risk": float(risk.mean()), "predicted_value_total": float(value.sum()),
                         "timings_s": {k: round(v, 1) for k, v in timings.items()}}
        out["timings_s"]["patron"] = round(time.time() - t1, 1)
    for name, c, v in rows:
        out["rows"].append({"predictor": name, "churn": c, "value": v})
    log(f"churn cut {cut}: {len(s['customers'])} customers in {time.time() - t0:.0f} s")
    return out


def print_churn_table(cuts, shop_name):
    """Section 2's table and its notes."""
    print(f"## Churn and value, {shop_name}: churn = no purchase in the holdout; value = holdout net spend (£)")
    print()
    print("| calibration / holdout | customers (churned) | predictor | churn AUC | Brier | value Spearman "
          "| MAE £ | top-decile capture |")
    print("|---|---|---|---|---|---|---|---|")
    for c in cuts:
        last = datetime.date.fromisoformat(c["holdout_end"]) - datetime.timedelta(days=1)
        label = f"before {c['cut']} / {c['cut']} to {last} ({c['holdout_days']} d)"
        who = f"{c['customers']} ({c['churned_share']:.1%})"
        for r in c["rows"]:
            ch, va = r["churn"] or {}, r["value"] or {}
            print(f"| {label} | {who} | {r['predictor']} | {fmt(ch.get('AUC'), 3)} | {fmt(ch.get('Brier'), 3)} "
                  f"| {fmt(va.get('Spearman'), 3)} | {fmt(va.get('MAE'), 0)} | {fmt(va.get('top-decile'), 3)} |")
    print()
    for c in cuts:
        bg, gg = c["fits"]["bgnbd"], c["fits"]["gamma_gamma"]
        print(f"- cut {c['cut']}: BG/NBD r {bg['r']:.3f}, alpha {bg['alpha']:.2f} d, a {bg['a']:.3g}, "
              f"b {bg['b']:.3g} (mean dropout a/(a+b) {bg['a'] / (bg['a'] + bg['b']):.2g}); Gamma-Gamma p "
              f"{gg['p']:.3f}, q {gg['q']:.3f}, gamma {gg['gamma']:.1f}; mean P(no purchase) "
              f"{c['fits']['mean_p_no_purchase']:.3f} vs churned {c['churned_share']:.3f}; expected purchase "
              f"days {c['fits']['expected_purchases']:.0f}; holdout net spend £{c['holdout_net_spend']:,.0f}.")
        p = c.get("patron")
        if p:
            now = time.strftime("%Y-%m-%d %H:%M", time.gmtime(p["api_now_ms"] / 1000)) if p["api_now_ms"] else "?"
            print(f"  Patron: {p['events']} events (patron-replay online-retail --until {c['cut']}); API clock "
                  f"{now} UTC; fields read {p['read']['fields']}; {p['read']['notes'] or 'every profile found'}; "
                  f"mean churn_risk {p['mean_churn_risk']:.3f}; predicted value over the holdout "
                  f"£{p['predicted_value_total']:,.0f}; times (s) {p['timings_s']}.")
            clv = p["model"]["clv"]
            bands = "; ".join(f"below {b['below_cents'] / 100:,.2f}: r {b['r']:.3f}, alpha {b['alpha']:.2f} d, "
                              f"a {b['a']:.3g}, b {b['b']:.3g} ({b['customers']})" if b["below_cents"] else
                              f"rest: r {b['r']:.3f}, alpha {b['alpha']:.2f} d, a {b['a']:.3g}, b {b['b']:.3g} "
                              f"({b['customers']})" for b in clv["bands"])
            gg = clv["gamma_gamma"]
            print(f"  Patron's model ({clv['source']}, {clv['sample']} of {clv['customers']} customers): {bands}; "
                  f"Gamma-Gamma p {gg['p']:.3f}, q {gg['q']:.3f}, gamma {gg['gamma'] / 100:,.2f}; "
                  f"PATRON_CLV_MODEL={clv['override']}")
    print()


# ---- main -------------------------------------------------------------------

def main(argv):
    """Runs the sections asked for; returns the exit status."""
    args = parse_args(argv[1:])
    if args.self_test:
        ok, report = clv.self_test()
        print("\n".join(report))
        print("self-test " + ("passed" if ok else "FAILED"))
        return 0 if ok else 1
    os.environ["PATRON_BIN_DIR"] = os.path.abspath(args.bin_dir)
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="patron-eval-")
    try:
        event_pb2, catalog_pb2 = pipeline.compile_protos(ROOT, tmp)
        ctx = {"bin_dir": os.path.abspath(args.bin_dir), "tmp": tmp, "no_patron": args.no_patron,
               "event_pb2": event_pb2, "catalog_pb2": catalog_pb2,
               "online_retail": os.path.abspath(args.online_retail or SUBSET)}
        patterns = data.load_non_products(NON_PRODUCTS)
        or_name = "Online Retail (subset)" if not args.online_retail else \
            f"Online Retail ({os.path.basename(args.online_retail)})"
        retail = data.load_online_retail(ctx["online_retail"], patterns, or_name)
        log(f"{or_name}: {len(retail.purchases)} purchase lines, {len(retail.items)} items "
            f"({sum(i.not_a_product for i in retail.items.values())} not products)")
        summary = {"command": ["scripts/eval.sh", *argv[2:]], "seed": args.seed, "synthetic": args.synthetic,
                   "include_non_products": args.include_non_products, "notes": []}
        status = 0
        if args.section in ("all", "reco"):
            shops = [retail]
            if args.complete_journey:
                shops.append(data.load_complete_journey(args.complete_journey))
            else:
                summary["notes"].append("Complete Journey skipped: no --complete-journey PATH")
            if args.synthetic:
                t0 = time.time()
                syn = data.synthetic_shop(args.seed)
                shops.append(syn)
                log(f"{syn.name}: {len(syn.purchases)} purchase lines, {len(syn.items)} items, "
                    f"{len({l.customer for l in syn.purchases})} customers, generated in {time.time() - t0:.0f} s")
            rows = []
            for shop in shops:
                inc = args.include_non_products
                for split in (data.temporal_split(shop, TEMPORAL_CUT[shop.kind], inc),
                              data.random_holdout(shop, args.seed, include_non_products=inc)):
                    rows.append(evaluate_split(ctx, split))
            summary["recommendations"] = rows
            print_reco_table(rows)
            beats = all(r.get("patron_beats", False) for r in rows)
            summary["patron_beats_best_baseline"] = beats if not args.no_patron else None
            status = 0 if beats else 1
        if args.section in ("all", "churn"):
            cuts = [evaluate_cut(ctx, retail, cut, end or last_day_after(retail)) for cut, end in CHURN_CUTS]
            summary["churn"] = {"dataset": or_name, "cuts": cuts}
            print_churn_table(cuts, or_name)
        summary["seconds"] = round(time.time() - t_start, 1)
        for note in summary["notes"]:
            print(f"Note: {note}.")
        print(f"Ran in {summary['seconds']:.0f} s "
              f"(per row and cut: see the notes above; `--json` has every timing).")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summary, f, indent=1, default=float)
        return status
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
