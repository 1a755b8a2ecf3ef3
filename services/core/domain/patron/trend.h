/*
 * Popularity with time decay, kept as a plain sorted set.
 *
 * A purchase at event time t adds patron_trend_weight(t) = 2^((t - epoch) /
 * half-life) to its item's score. Scores then never need rewriting as time
 * passes: an item's decayed popularity as of `now` is score / weight(now),
 * and the order of items by score is their order by decayed popularity.
 * The exponent is clamped to ±1000, i.e. weights stay finite doubles for
 * about ±38 years around the epoch (2020-01-01 UTC) at a 14-day half-life.
 */
#ifndef PATRON_TREND_H
#define PATRON_TREND_H

#include "patron/common.h"

#define PATRON_TREND_EPOCH_MS 1577836800000LL         /* 2020-01-01T00:00:00Z */
#define PATRON_TREND_HALF_LIFE_MS (14LL * 86400000LL) /* popularity halves in 14 days */

double patron_trend_weight(int64_t t_ms);

/* The decayed popularity as of now_ms of an item whose stored score is `score`. */
double patron_trend_decayed(double score, int64_t now_ms);

/*
 * Momentum: whether an item sells now more than it usually does, and how
 * far the shop's own sales say that can be believed.
 *
 * An item's recent sales r (its trend, decayed to the fit's time) against
 * what its all-time sales t predict if nothing moved, E = rate * t, with
 * rate = sum r / sum t over the catalogue. Each item's true momentum m is
 * taken to be Gamma(alpha, alpha) distributed (mean 1) and its recent
 * sales, given m, Poisson-like with mean m * E; the posterior mean
 *
 *     momentum = (r + alpha) / (E + alpha)
 *
 * shrinks an item with little evidence to 1. alpha is fitted to the shop
 * by the method of moments (Gamma-Poisson, as in empirical Bayes):
 * E[(r - E)^2] = c * E + E^2 / alpha, where c = 1/2 is the variance of an
 * exponentially decayed count of a steady Poisson stream per unit of its
 * mean; so
 *
 *     1 / alpha = sum((r - E)^2 - c * r) / sum(E^2).
 *
 * A shop whose items sell at a steady rate (no season, no fashion) leaves
 * nothing above the noise: 1 / alpha <= 0, no momentum, every factor 1.
 * A seasonal shop gets a small alpha and its seasonal items rise. Units:
 * r and t are purchase lines, r decayed (PATRON_TREND_HALF_LIFE_MS).
 */
struct patron_momentum {
    double alpha; /* prior strength, in recent purchase lines; 0: no momentum measured */
    double rate;  /* recent (decayed) purchase lines per all-time purchase line */
};

#define PATRON_MOMENTUM_DISPERSION 0.5 /* variance / mean of a decayed steady count */
#define PATRON_MOMENTUM_MIN_ITEMS 20   /* fewer items with sales: nothing is fitted */

/* Fits the shop's momentum from n items' recent (decayed) and all-time
 * purchase lines, recent[i] <= total[i] up to rounding; items that are not
 * products (not_a_product[i], NULL: none; postage and fees say nothing of
 * what sells), with a total <= 0 or a value that is not finite are left out. Writes {0, rate} (no
 * momentum) when fewer than PATRON_MOMENTUM_MIN_ITEMS remain or nothing
 * exceeds the noise. Pure. */
void patron_momentum_fit(const double *recent, const double *total, const bool *not_a_product,
                         size_t n, struct patron_momentum *out);

/* An item's momentum factor, (recent + alpha) / (rate * total + alpha), or
 * 1 when the model has none or nothing is known of the item (total <= 0). */
double patron_momentum_factor(const struct patron_momentum *m, double recent, double total);

#endif
