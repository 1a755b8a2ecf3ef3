"""BG/NBD and Gamma-Gamma, implemented from the papers, and the churn and
value metrics.

BG/NBD: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "'Counting Your
Customers' the Easy Way: An Alternative to the Pareto/NBD Model",
Marketing Science 24(2), 275-284. A customer buys at Poisson rate lambda
while alive, lambda ~ Gamma(r, alpha); after each repeat purchase the
customer drops out with probability p, p ~ Beta(a, b). Data per customer:
x = repeat purchases, t_x = time of the last purchase and T = age, both
since the first purchase.

Gamma-Gamma: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "RFM and
CLV: Using Iso-Value Curves for Customer Base Analysis", Journal of
Marketing Research 42(4), 415-430 (section "Adding monetary value"; the
same model in Fader & Hardie's note "The Gamma-Gamma Model of Monetary
Value", 2013). A customer's transaction values are Gamma(p, nu), nu ~
Gamma(q, gamma); data: x transactions of mean value m_x.

The model functions take arrays; fits maximise the log-likelihood with
scipy.optimize.minimize over the logarithms of the parameters.
"""
import math

import numpy as np
from scipy import optimize, special, stats


# ---- BG/NBD -------------------------------------------------------------

def bgnbd_log_likelihood(params, x, t_x, T):
    """Per-customer log-likelihood, FHL 2005 eq. (6):
    L = B(a, b+x)/B(a, b) * G(r+x) a^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) a^r / (G(r) (alpha+t_x)^(r+x)),
    summed in log space."""
    r, alpha, a, b = params
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    alive = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    xs = np.maximum(x, 1)  # the second term exists for x > 0 only
    dead = special.betaln(a + 1, b + xs - 1) - special.betaln(a, b) - (r + x) * np.log(alpha + t_x)
    return common + np.where(x > 0, np.logaddexp(alive, dead), alive)


def _fit(nll, starts):
    """The best of Nelder-Mead runs from each start (positive parameters,
    searched as logarithms), each polished by L-BFGS-B."""
    best = None
    for start in starts:
        res = optimize.minimize(nll, np.log(start), method="Nelder-Mead",
                                options={"maxiter": 20000, "maxfev": 20000, "xatol": 1e-7,
                                         "fatol": 1e-9})
        res = optimize.minimize(nll, res.x, method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    return tuple(float(v) for v in np.exp(best.x))


def bgnbd_fit(x, t_x, T):
    """Maximum-likelihood (r, alpha, a, b)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))

    def nll(log_params):
        ll = bgnbd_log_likelihood(np.exp(log_params), x, t_x, T)
        total = -ll.sum()
        return total if np.isfinite(total) else 1e300

    scale = max(float(T.mean()), 1.0)
    starts = [(1.0, scale, 1.0, 1.0), (0.3, scale / 4, 0.8, 2.5)]
    return _fit(nll, starts)


def bgnbd_p_alive(params, x, t_x, T):
    """P(alive at T | x, t_x, T), FHL 2005 eq. (13):
    1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    xs = np.maximum(x, 1)
    log_ratio = np.log(a) - np.log(b + xs - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(log_ratio)), 1.0)


def bgnbd_expected_purchases(params, t, x, t_x, T):
    """E[Y(t) | x, t_x, T]: purchases expected in (T, T+t], FHL 2005 eq. (10):
    (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)
        * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))] * P(alive)."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    term = 1.0 - np.power((alpha + T) / (alpha + T + t), r + x) * hyp
    return (a + b + x - 1) / (a - 1) * term * bgnbd_p_alive(params, x, t_x, T)


def bgnbd_expected_purchases_quadrature(params, t, x, t_x, T, nodes=128):
    """E[Y(t) | x, t_x, T] as P(alive) times an integral over p, robust
    where eq. (10) is not: at the fits this data gives (a -> 0, b -> inf:
    nobody drops out), hyp2f1 with b ~ 1e11 loses every digit and the
    factor (a+b+x-1)/(a-1) multiplies the error by b.

    Alive at T, with lambda and p given, the customer buys at rate lambda
    until dropping out after a purchase with probability p, so the
    expected purchases in t are sum_k P(N(t) >= k)(1-p)^(k-1)
    = (1 - exp(-lambda p t)) / p. Given the data and alive, lambda ~
    Gamma(r+x, alpha+T) and p ~ Beta(a, b+x) independently (their
    likelihood is lambda^x exp(-lambda T) (1-p)^x), so
    E = P(alive) * E_p[(1 - (1 + p t/(alpha+T))^-(r+x)) / p], the
    expectation over p taken as the integral over u in (0, 1) of the
    Beta quantile (betaincinv) by Gauss-Legendre. It equals eq. (10) where
    that is well conditioned (checked by the self-test)."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    u, w = np.polynomial.legendre.leggauss(nodes)
    u, w = (u + 1) / 2, w / 2
    p = special.betaincinv(a, b + x[:, None], u[None, :])
    rate = t / (alpha + T[:, None])
    shape = (r + x)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.expm1(-shape * np.log1p(p * rate)) / p
    h = np.where(p > 0, h, shape * rate)  # the limit p -> 0: no dropout, NBD
    return (h * w).sum(axis=1) * bgnbd_p_alive(params, x, t_x, T)


def bgnbd_p_no_purchase(params, t, x, t_x, T):
    """P(no purchase in (T, T+t] | x, t_x, T), derived from the model.

    A customer who dropped out buys nothing. One alive at T drops out only
    just after a purchase, so buys nothing in the window exactly when the
    Poisson process has no event in it: probability exp(-lambda t). Given
    the data and alive at T, the likelihood in lambda is lambda^x
    exp(-lambda T), so lambda | alive ~ Gamma(r+x, alpha+T), whose
    E[exp(-lambda t)] = ((alpha+T)/(alpha+T+t))^(r+x) (the NBD's zero).
    Hence P(0) = 1 - P(alive) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x)."""
    r, alpha, a, b = params
    x, T = np.asarray(x, dtype=np.float64), np.asarray(T, dtype=np.float64)
    alive = bgnbd_p_alive(params, x, t_x, T)
    zero_if_alive = np.power((alpha + T) / (alpha + T + t), r + x)
    return 1.0 - alive + alive * zero_if_alive


# ---- Gamma-Gamma ----------------------------------------------------------

def gg_log_likelihood(params, x, m):
    """Per-customer log density of the mean value m of x transactions
    (FHL 2005 "RFM and CLV", the Gamma-Gamma's marginal; Fader & Hardie
    2013 eq. 3): G(px+q) / (G(px) G(q)) * g^q m^(px-1) x^(px) / (g + m x)^(px+q)."""
    p, q, g = params
    px = p * x
    return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(g)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(g + m * x))


def gg_fit(x, m):
    """Maximum-likelihood (p, q, gamma) over customers with x > 0 and m > 0."""
    x, m = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)

    def nll(log_params):
        total = -gg_log_likelihood(np.exp(log_params), x, m).sum()
        return total if np.isfinite(total) else 1e300

    mean = float(m.mean())
    # starts on the population mean p gamma / (q - 1) = mean(m): the
    # likelihood has a long flat ridge towards p -> inf, gamma -> 0
    starts = [(p, q, mean * (q - 1) / p) for p in (1.0, 5.0) for q in (2.0, 5.0)]
    return _fit(nll, starts)


def gg_expected_value(params, x, m):
    """E[M | p, q, gamma, m_x, x] = p (gamma + x m_x) / (p x + q - 1), a
    weighted mean of the population mean p gamma / (q - 1) and m_x (FHL 2005
    "RFM and CLV" eq. 5; Fader & Hardie 2013 eq. 5). For x = 0 it is the
    population mean."""
    p, q, g = params
    x, m = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
    return p * (g + x * np.where(x > 0, m, 0.0)) / (p * x + q - 1)


# ---- metrics --------------------------------------------------------------

def auc(score, label):
    """ROC AUC of score for label == 1 (Mann-Whitney with average ranks for ties)."""
    score, label = np.asarray(score, dtype=np.float64), np.asarray(label, dtype=bool)
    n1, n0 = label.sum(), (~label).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def brier(prob, label):
    """Mean squared error of a probability against the 0/1 label."""
    prob, label = np.asarray(prob, dtype=np.float64), np.asarray(label, dtype=np.float64)
    return float(np.mean((prob - label) ** 2))


def spearman(pred, actual):
    """Spearman rank correlation."""
    return float(stats.spearmanr(pred, actual).correlation)


def mae(pred, actual):
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(actual))))


def top_decile_capture(pred, actual, ids):
    """Share of the total of `actual` held by the top 10% (rounded up) of
    customers by `pred` (ties broken by customer id)."""
    pred, actual = np.asarray(pred, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    order = sorted(range(len(pred)), key=lambda n: (-pred[n], ids[n]))
    top = order[:math.ceil(len(order) / 10)]
    total = actual.sum()
    return float(actual[top].sum() / total) if total else float("nan")


# ---- the self-test: simulate from known parameters, recover them ----------

def simulate_bgnbd(params, T, horizon, rng):
    """Customers of the BG/NBD with ages T; returns (x, t_x, purchases in
    (T, T+horizon]) by following each customer's process."""
    r, alpha, a, b = params
    n = len(T)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    x, t_x, future = np.zeros(n), np.zeros(n), np.zeros(n)
    for c in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1.0 / lam[c])
            if t > T[c] + horizon:
                break
            if t <= T[c]:
                x[c] += 1
                t_x[c] = t
            else:
                future[c] += 1
            alive = rng.random() >= p[c]
    return x, t_x, future


def self_test(seed=7):
    """Simulates BG/NBD and Gamma-Gamma customers from known parameters,
    fits them, and checks that the parameters and the predictions come back.
    Returns (ok, lines of report)."""
    rng = np.random.default_rng(seed)
    report, ok = [], True
    true = (0.25, 4.0, 0.8, 2.5)  # CDNOW-like (FHL 2005 Table 1 gives 0.243, 4.414, 0.793, 2.426 in weeks)
    n, horizon = 6000, 39.0
    T = rng.uniform(27.0, 39.0, n)  # weeks, like CDNOW's 12-week first-purchase cohort
    x, t_x, future = simulate_bgnbd(true, T, horizon, rng)
    fit = bgnbd_fit(x, t_x, T)
    errs = [abs(f / t - 1) for f, t in zip(fit, true)]
    good = errs[0] < 0.15 and errs[1] < 0.2 and errs[2] < 0.35 and errs[3] < 0.45
    ok &= good
    report.append(f"BG/NBD: true r, alpha, a, b = {true}; fit = ({', '.join(f'{v:.3f}' for v in fit)}) "
                  f"{'ok' if good else 'FAILED'}")
    expected = bgnbd_expected_purchases_quadrature(fit, horizon, x, t_x, T)
    closed = bgnbd_expected_purchases(fit, horizon, x, t_x, T)
    gap = float(np.max(np.abs(expected - closed) / np.maximum(closed, 1e-9)))
    good = gap < 1e-4
    ok &= good
    report.append(f"  E[Y(t)]: quadrature vs eq. (10), largest relative gap {gap:.1e} {'ok' if good else 'FAILED'}")
    p0 = bgnbd_p_no_purchase(fit, horizon, x, t_x, T)
    sum_ratio = expected.sum() / future.sum()
    zero_gap = p0.mean() - (future == 0).mean()
    good = abs(sum_ratio - 1) < 0.05 and abs(zero_gap) < 0.015 and auc(p0, future == 0) > 0.7
    ok &= good
    report.append(f"  holdout of {horizon:g}: expected purchases / simulated = {sum_ratio:.3f}; "
                  f"mean P(none) - share with none = {zero_gap:+.4f}; AUC {auc(p0, future == 0):.3f} "
                  f"{'ok' if good else 'FAILED'}")
    # P(none) by bins of prediction against the simulated frequency: calibration
    bins = np.digitize(p0, [0.5, 0.8, 0.95])
    cal = [f"{(future[bins == k] == 0).mean():.2f}~{p0[bins == k].mean():.2f}"
           for k in range(4) if (bins == k).any()]
    report.append("  P(none) calibration, simulated~predicted by bin: " + ", ".join(cal))

    gtrue = (6.0, 4.0, 16.0)  # FHL 2005 "RFM and CLV": p 6.25, q 3.74, gamma 15.44 (CDNOW)
    m_n = 5000
    nu = rng.gamma(gtrue[1], 1.0 / gtrue[2], m_n)
    gx = 1 + rng.poisson(2.0, m_n)
    gm = np.array([rng.gamma(gtrue[0], 1.0 / nu[c], int(gx[c])).mean() for c in range(m_n)])
    gfit = gg_fit(gx, gm)
    pop_true = gtrue[0] * gtrue[2] / (gtrue[1] - 1)
    pop_fit = gfit[0] * gfit[2] / (gfit[1] - 1)
    cond = gg_expected_value(gfit, gx, gm)
    true_mean = gtrue[0] / nu
    good = (abs(pop_fit / pop_true - 1) < 0.05 and abs(gfit[0] / gtrue[0] - 1) < 0.25
            and mae(cond, true_mean) < mae(gm, true_mean))
    ok &= good
    report.append(f"Gamma-Gamma: true p, q, gamma = {gtrue}; fit = ({', '.join(f'{v:.3f}' for v in gfit)}); "
                  f"population mean {pop_fit:.2f} vs {pop_true:.2f}; shrunk estimate closer to the true "
                  f"mean than m_x: MAE {mae(cond, true_mean):.3f} < {mae(gm, true_mean):.3f} "
                  f"{'ok' if good else 'FAILED'}")
    report.append(f"metrics: AUC of a perfect score {auc([0, 1], [0, 1]):.1f}, of ties {auc([1, 1], [0, 1]):.1f}")
    ok &= auc([0, 1], [0, 1]) == 1.0 and auc([1, 1], [0, 1]) == 0.5
    return ok, report
