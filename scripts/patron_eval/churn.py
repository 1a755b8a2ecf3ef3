"""Section 2: churn and lifetime value on Online Retail.

A cut splits time into calibration (everything before the cut day) and a
holdout [cut, end). The customers are those with at least one purchase in
calibration.

- Churn label: no purchase in the holdout. Metrics: AUC of the predictor
  for that label, and the Brier score of the predictors that are
  probabilities.
- Value: holdout NET spend, purchases minus refunds whose event time falls
  in the holdout (Patron's net_spend_cents semantics: data/README.md's
  mapping, every kept line, postage included), in pounds. Metrics: Spearman
  correlation, MAE (pounds), and top-decile capture = the share of the
  total holdout net spend held by the predictor's top 10% of customers.

Transactions for BG/NBD are purchase days (London dates with at least one
purchase; a day's orders are one transaction, as is usual with daily data):
x = purchase days - 1, t_x = days from the first purchase day to the last,
T = days from the first purchase day to the cut, holdout length t in days.
Gamma-Gamma's m_x = the mean gross purchase value of the repeat purchase
days (the first is left out, as in FHL 2005's CDNOW application).
"""
import collections
import datetime
import math
import re

import numpy as np

from . import clv
from .data import local_midnight_ms

DAY_MS = 86_400_000


def local_day(t_ms, tz):
    """The local date of an epoch-ms time, as a date ordinal."""
    import zoneinfo
    d = datetime.datetime.fromtimestamp(t_ms / 1000, zoneinfo.ZoneInfo(tz))
    return d.date().toordinal()


def summarize(shop, cut_day, end_day):
    """Per customer with a purchase before cut_day: the calibration summary
    and the holdout's truth. Returns a dict of arrays (customer order: sorted ids)."""
    cut, end = local_midnight_ms(cut_day, shop.tz), local_midnight_ms(end_day, shop.tz)
    cut_ord = datetime.date.fromisoformat(cut_day).toordinal()
    day_cache = {}

    def day(t_ms):
        d = day_cache.get(t_ms)
        if d is None:
            d = day_cache[t_ms] = local_day(t_ms, shop.tz)
        return d

    days = collections.defaultdict(lambda: collections.defaultdict(int))  # customer -> day -> cents
    cal_net = collections.defaultdict(int)
    hold_net = collections.defaultdict(int)
    bought_in_holdout = set()
    for l in shop.purchases:
        value = l.quantity * l.price_cents
        if l.t_ms < cut:
            days[l.customer][day(l.t_ms)] += value
            cal_net[l.customer] += value
        elif l.t_ms < end:
            hold_net[l.customer] += value
            bought_in_holdout.add(l.customer)
    for r in shop.refunds:
        if r.t_ms < cut:
            cal_net[r.customer] -= r.amount_cents
        elif r.t_ms < end:
            hold_net[r.customer] -= r.amount_cents
    customers = sorted(days)
    x, t_x, T, m, recency = [], [], [], [], []
    for c in customers:
        ds = sorted(days[c])
        x.append(len(ds) - 1)
        t_x.append(ds[-1] - ds[0])
        T.append(cut_ord - ds[0])
        recency.append(cut_ord - ds[-1])
        repeat = [days[c][d] for d in ds[1:]]
        m.append(np.mean(repeat) / 100 if repeat else 0.0)
    holdout_days = datetime.date.fromisoformat(end_day).toordinal() - cut_ord
    calibration_days = cut_ord - min(min(d) for d in days.values())
    return {
        "customers": customers,
        "x": np.array(x, dtype=np.float64), "t_x": np.array(t_x, dtype=np.float64),
        "T": np.array(T, dtype=np.float64), "m": np.array(m), "recency": np.array(recency, dtype=np.float64),
        "cal_net": np.array([cal_net[c] / 100 for c in customers]),
        "churned": np.array([c not in bought_in_holdout for c in customers]),
        "holdout_net": np.array([hold_net[c] / 100 for c in customers]),
        "holdout_days": holdout_days, "calibration_days": calibration_days,
    }


HORIZON_UNITS = {"d": 1, "w": 7, "m": 365 / 12, "y": 365}


def value_field(profile, holdout_days):
    """(name, horizon in days) of the profile's predicted value: any field
    named predicted_value*, its horizon from a `<field>_horizon_days` or
    `value_horizon_days` field, else from its name (_12m_, _90d_, ...),
    else a year; the one closest to the holdout when there are several."""
    found = []
    for name, v in profile.items():
        if not name.startswith("predicted_value") or name.endswith("horizon_days"):
            continue
        if not isinstance(v, (int, float)):
            continue
        horizon = profile.get(f"{name}_horizon_days") or profile.get("value_horizon_days")
        if not horizon:
            m = re.search(r"_(\d+)([dwmy])(?:_|$)", name)
            horizon = int(m.group(1)) * HORIZON_UNITS[m.group(2)] if m else 365
        found.append((abs(math.log(horizon / holdout_days)), name, float(horizon)))
    if not found:
        return None, None
    _, name, horizon = min(found)
    return name, horizon


def patron_predictions(profiles, customers, holdout_days):
    """(churn probability, predicted holdout value in pounds, notes) from
    the profiles. churn_risk is taken for the holdout unless the profile
    states a horizon (churn_horizon_days), then converted at a constant
    hazard: 1 - (1 - risk)^(holdout / horizon). The predicted value is
    scaled by holdout / its horizon. A missing profile counts as certain
    churn and no value."""
    churn, value = [], []
    notes, fields = collections.Counter(), collections.Counter()
    for c in customers:
        p = profiles.get(c)
        if p is None:
            notes["no profile"] += 1
            churn.append(1.0)
            value.append(0.0)
            continue
        risk = p.get("churn_risk")
        horizon = p.get("churn_horizon_days")
        if risk is None:
            notes["no churn_risk"] += 1
            risk = 1.0
        elif horizon:
            fields[f"churn_horizon_days={horizon}"] += 1
            risk = 1 - (1 - risk) ** (holdout_days / horizon)
        churn.append(float(risk))
        name, vh = value_field(p, holdout_days)
        if name is None:
            notes["no predicted_value"] += 1
            value.append(0.0)
        else:
            fields[f"{name} (horizon {vh:g} d)"] += 1
            value.append(p[name] / 100 * holdout_days / vh)
    return np.array(churn), np.array(value), {"notes": dict(notes), "fields": dict(fields)}


def churn_metrics(score, label, probability):
    """AUC, and the Brier score when the score is a probability."""
    return {"AUC": clv.auc(score, label), "Brier": clv.brier(score, label) if probability else None}


def value_metrics(pred, actual, ids):
    """Spearman, MAE (pounds), top-decile capture."""
    return {"Spearman": clv.spearman(pred, actual), "MAE": clv.mae(pred, actual),
            "top-decile": clv.top_decile_capture(pred, actual, ids)}


def baselines(s):
    """The non-Patron predictors' rows: [(name, churn metrics, value metrics)] and the fits."""
    t = s["holdout_days"]
    bg = clv.bgnbd_fit(s["x"], s["t_x"], s["T"])
    p0 = clv.bgnbd_p_no_purchase(bg, t, s["x"], s["t_x"], s["T"])
    expected = clv.bgnbd_expected_purchases_quadrature(bg, t, s["x"], s["t_x"], s["T"])
    rep = (s["x"] > 0) & (s["m"] > 0)
    gg = clv.gg_fit(s["x"][rep], s["m"][rep])
    spend = clv.gg_expected_value(gg, s["x"], s["m"])
    ids, label, actual = s["customers"], s["churned"], s["holdout_net"]
    scaled_cal = s["cal_net"] * t / s["calibration_days"]
    rows = [
        ("BG/NBD (+ Gamma-Gamma for value)", churn_metrics(p0, label, True),
         value_metrics(expected * spend, actual, ids)),
        ("recency (days since last purchase)", churn_metrics(s["recency"], label, False), None),
        ("calibration net spend, scaled", None, value_metrics(scaled_cal, actual, ids)),
    ]
    fits = {"bgnbd": dict(zip(("r", "alpha", "a", "b"), bg)), "gamma_gamma": dict(zip(("p", "q", "gamma"), gg)),
            "mean_p_no_purchase": float(p0.mean()), "expected_purchases": float(expected.sum())}
    return rows, fits
