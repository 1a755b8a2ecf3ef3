/*
 * Churn and lifetime value from a customer's purchase history
 * (docs/contracts/profile.md, "Churn risk and predicted value").
 *
 * BG/NBD: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "'Counting Your
 * Customers' the Easy Way: An Alternative to the Pareto/NBD Model",
 * Marketing Science 24(2), 275-284 ("FHL 2005a" below). While alive, a
 * customer buys at Poisson rate lambda, lambda ~ Gamma(r, alpha) across
 * customers; after every purchase the customer drops out with probability
 * p, p ~ Beta(a, b).
 * Gamma-Gamma: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "RFM and
 * CLV: Using Iso-Value Curves for Customer Base Analysis", Journal of
 * Marketing Research 42(4), 415-430 ("FHL 2005b"). Order values are
 * Gamma(p, nu), nu ~ Gamma(q, gamma) across customers, independent of the
 * purchase process.
 *
 * Patron's model is a BG/NBD per band of mean order value (each band's
 * parameters fitted on its own customers by maximum likelihood: no labels),
 * and one Gamma-Gamma. docs/eval.md measures why: the bands rank churn
 * better than one BG/NBD on both of its cuts.
 *
 * Units: times in days, money in cents. A customer summary (FHL's x, t_x, T):
 *   x   repeat purchases = orders - 1
 *   t_x days from the first purchase to the last
 *   T   days from the first purchase to now (>= t_x)
 *   m   mean order value = net spend / orders, at least 0
 *
 * Everything is pure and safe from any thread. Only patron_clv_fit
 * allocates (documented there).
 */
#ifndef PATRON_CLV_H
#define PATRON_CLV_H

#include "patron/common.h"

struct patron_profile;

#define PATRON_CLV_BANDS_MAX 4
#define PATRON_CLV_BANDS_DEFAULT 3
/* A band is fitted on at least this many customers, this many of them
 * repeaters; fewer bands are used when the sample cannot fill them. */
#define PATRON_CLV_BAND_MIN_CUSTOMERS 500
#define PATRON_CLV_BAND_MIN_REPEATERS 50
#define PATRON_CLV_MODEL_VERSION 1 /* of the stored form (model_codec.h) */

struct patron_bgnbd {
    double r, alpha, a, b; /* alpha in days */
};

struct patron_gamma_gamma {
    double p, q, gamma; /* gamma in cents */
};

struct patron_clv_band {
    double below_cents; /* mean order value below which a customer is in this band;
                           +infinity for the last band */
    struct patron_bgnbd bgnbd;
    uint64_t customers; /* fitted on (0 for the defaults or an override) */
};

struct patron_clv_model {
    size_t n_bands; /* 1..PATRON_CLV_BANDS_MAX, bands by increasing below_cents */
    struct patron_clv_band bands[PATRON_CLV_BANDS_MAX];
    struct patron_gamma_gamma gg;
    /* Provenance; all 0 for the defaults or an override. */
    int64_t fitted_at_ms; /* wall clock of the fit */
    int64_t as_of_ms;     /* the "now" of the customers it was fitted on */
    uint64_t customers;   /* customers with a purchase at as_of_ms */
    uint64_t sample;      /* of them, in the sample fitted */
    uint64_t orders;      /* orders of the customers at as_of_ms */
    enum { PATRON_CLV_DEFAULT, PATRON_CLV_FITTED, PATRON_CLV_OVERRIDE } source;
};

struct patron_clv_customer {
    double x, t_x, T, m;
};

struct patron_clv_prediction {
    double p_alive;         /* P(alive now), FHL 2005a eq. (13) */
    double p_no_purchase;   /* P(no purchase within the churn horizon) */
    double expected_orders; /* expected purchases within the value horizon */
    double spend_per_order; /* Gamma-Gamma's expected order value, cents */
    double value_cents;     /* expected_orders * spend_per_order */
};

/* The defaults until a fit exists: FHL 2005a's CDNOW BG/NBD (r 0.243,
 * alpha 4.414 weeks = 30.898 days, a 0.793, b 2.426) and FHL 2005b's CDNOW
 * Gamma-Gamma (p 6.25, q 3.74, gamma 15.44 dollars = 1544 cents), one band. */
void patron_clv_model_default(struct patron_clv_model *m);

/* A model's parameters are usable: n_bands in range, bounds increasing
 * (the last +infinity), every parameter finite and > 0. */
bool patron_clv_model_valid(const struct patron_clv_model *m);

/* The summary of a profile at now_ms; false for a customer without a
 * purchase. Clock skew is clamped: T >= t_x >= 0. */
bool patron_clv_summary_of(const struct patron_profile *p, int64_t now_ms,
                           struct patron_clv_customer *out);

/* The same from the purchase history alone (orders, first and last
 * purchase, net spend: what a ProfileUpdate carries); first_purchase_ms 0
 * (unknown) is taken as the last purchase. false without a purchase. */
bool patron_clv_summary_at(int64_t orders, int64_t first_purchase_ms, int64_t last_purchase_ms,
                           int64_t net_spend_cents, int64_t now_ms,
                           struct patron_clv_customer *out);

/* The band of a mean order value. */
const struct patron_clv_band *patron_clv_band_of(const struct patron_clv_model *m, double m_cents);

/* ---- closed forms (any finite parameters > 0; x, t_x, T >= 0) ------------- */

/* log L(r, alpha, a, b | x, t_x, T), FHL 2005a eq. (6), in log space. */
double patron_bgnbd_log_likelihood(const struct patron_bgnbd *g,
                                   const struct patron_clv_customer *c);
/* P(alive at T), FHL 2005a eq. (13): 1 / (1 + [x > 0] a / (b + x - 1)
 * ((alpha + T) / (alpha + t_x))^(r + x)), computed as a logistic of its log. */
double patron_bgnbd_p_alive(const struct patron_bgnbd *g, const struct patron_clv_customer *c);
/* P(no purchase in (T, T + h]) = 1 - P(alive) + P(alive) ((alpha + T) /
 * (alpha + T + h))^(r + x): a customer alive at T drops out only right after
 * a purchase, so buys nothing exactly when the Poisson process has no event
 * in the window; given the data, lambda ~ Gamma(r + x, alpha + T). */
double patron_bgnbd_p_no_purchase(const struct patron_bgnbd *g, const struct patron_clv_customer *c,
                                  double h_days);
/* E[purchases in (T, T + h]], the quantity of FHL 2005a eq. (10), computed
 * without its hypergeometric function (which loses every digit when the
 * fitted b is large, as on Online Retail): P(alive) * E_p[(1 - (1 + p h /
 * (alpha + T))^-(r + x)) / p] with p ~ Beta(a, b + x), the expectation
 * integrated numerically over logit(p) (see clv.c). Relative error < 1e-7. */
double patron_bgnbd_expected_purchases(const struct patron_bgnbd *g,
                                       const struct patron_clv_customer *c, double h_days);

/* log density of the mean value m of n orders, FHL 2005b's Gamma-Gamma
 * marginal (Fader and Hardie's note "The Gamma-Gamma Model of Monetary
 * Value", 2013, eq. 3); m > 0, n >= 1. */
double patron_gg_log_likelihood(const struct patron_gamma_gamma *gg, double n, double m);
/* E[order value | n orders of mean m] = (p gamma + p n m) / (p n + q - 1),
 * FHL 2005b eq. (5): a weighted mean of the population's mean p gamma /
 * (q - 1) and m. n = 0 (or a model with p n + q <= 1) gives the population
 * mean, or m when that is not finite. */
double patron_gg_expected_spend(const struct patron_gamma_gamma *gg, double n, double m);

/* Everything the profile shows for one customer: the band's BG/NBD and
 * the Gamma-Gamma (n = x + 1 orders of mean m). Horizons in days, > 0. */
void patron_clv_predict(const struct patron_clv_model *m, const struct patron_clv_customer *c,
                        double churn_horizon_days, double value_horizon_days,
                        struct patron_clv_prediction *out);

/* What the profile shows (docs/contracts/profile.md): churn_risk =
 * P(no purchase within churn_horizon_days), p_alive, and over
 * PATRON_CLV_VALUE_HORIZON_DAYS the expected orders and the predicted value
 * (rounded to cents, saturating). A customer who never purchased is outside
 * the model: churn_risk 1, p_alive NAN (null in the JSON), 0 orders, 0
 * value. */
#define PATRON_CLV_VALUE_HORIZON_DAYS 365.0
struct patron_clv_view {
    bool purchased;
    double churn_risk, p_alive, expected_orders_12m;
    int64_t predicted_value_12m_cents;
};
void patron_clv_view_of(const struct patron_profile *p, int64_t now_ms,
                        const struct patron_clv_model *m, int64_t churn_horizon_days,
                        struct patron_clv_view *out);

/* ---- churn risk through time ----------------------------------------------- */

/* A customer's purchase history, as the trigger keeps it. */
struct patron_clv_history {
    int64_t orders, first_purchase_ms, last_purchase_ms, net_spend_cents;
};

/* churn_risk at now_ms exactly as the profile shows it (unrounded): P(no
 * purchase within horizon_days) of the customer's band; 1 for a customer
 * without a purchase (outside the model). horizon_days > 0. */
double patron_clv_churn_risk_at(const struct patron_clv_model *m,
                                const struct patron_clv_history *h, double horizon_days,
                                int64_t now_ms);

/* The first instant t > after_ms at which the churn risk of a customer who
 * buys nothing more is above `threshold` (0 < threshold < 1), i.e.
 * patron_clv_churn_risk_at(t) > threshold and not at t - 1 (when it is not
 * already above at after_ms + 1). Only T grows with time, and the risk
 * never falls as T grows (P(alive) falls, the Poisson quiet probability
 * rises), so the crossing is found by bisection on the millisecond: about
 * 45 evaluations, each a few logarithms. INT64_MAX when the risk stays at
 * or below the threshold up to PATRON_TIME_MAX_MS, or without a purchase. */
int64_t patron_clv_churn_crossing(const struct patron_clv_model *m,
                                  const struct patron_clv_history *h, double horizon_days,
                                  double threshold, int64_t after_ms);

/* ---- the fit ---------------------------------------------------------------- */

/* Maximum-likelihood fit over n summaries: up to `bands` bands of mean
 * order value (quantiles of m, each with at least
 * PATRON_CLV_BAND_MIN_CUSTOMERS customers and PATRON_CLV_BAND_MIN_REPEATERS
 * repeaters, else fewer bands), a BG/NBD per band (Nelder-Mead on the
 * logarithms of r, alpha, a, b from two starts, with restarts), and one
 * Gamma-Gamma over the repeaters with m > 0 (if fewer than 10, the default
 * Gamma-Gamma). Deterministic for the same input in the same order.
 * Writes out's parameters, n_bands and band sizes and sets source FITTED;
 * the caller fills the provenance. Allocates n summaries' worth of memory
 * with patron_malloc and frees it before returning. PATRON_EINVAL when n is
 * 0 or bands is not 1..PATRON_CLV_BANDS_MAX. Takes ~0.1 s per 1,000
 * customers. */
int patron_clv_fit(const struct patron_clv_customer *c, size_t n, size_t bands,
                   struct patron_clv_model *out) PATRON_MUST_USE;

/* The single-band fits patron_clv_fit is built of, over any n >= 1. */
struct patron_bgnbd patron_bgnbd_fit(const struct patron_clv_customer *c, size_t n);
struct patron_gamma_gamma patron_gg_fit(const struct patron_clv_customer *c, size_t n);

#endif
