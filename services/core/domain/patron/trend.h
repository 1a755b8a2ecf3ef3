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

#endif
