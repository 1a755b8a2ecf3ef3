/*
 * Item-to-item co-occurrence deltas for collaborative filtering: which pairs
 * of items a purchase adds to the item graph. Pure; nothing is allocated;
 * the returned strings are borrowed from the inputs and live as long as they
 * do. Safe from any thread.
 *
 * "New to the customer" means not in the profile's bought list BEFORE the
 * purchase was applied, so the caller keeps a copy of the profile from
 * before patron_profile_apply (the struct copies with `=`) and passes its
 * bought list:
 *
 *     struct patron_profile before = *p;
 *     rc = patron_profile_apply(p, ev, partition, offset, cfg, &outcome);
 *     if (rc == 0 && outcome.result == PATRON_APPLY_APPLIED && purchase)
 *         n = patron_graph_pairs(before.bought, before.n_bought, history,
 *                                ev->purchase, pairs, max);
 *
 * The bought list is capped (PATRON_PROFILE_BOUGHT_MAX, most recent first),
 * so an item bought long ago and forgotten counts as new again: the graph
 * then counts that customer twice for the pair, which a co-occurrence score
 * tolerates, and memory stays bounded.
 */
#ifndef PATRON_GRAPH_H
#define PATRON_GRAPH_H

#include "patron/common.h"
#include "patron/v1/event.pb-c.h"

/* Lines of one purchase considered; more are ignored (a checked event has at
 * most PATRON_EVENT_LINES_MAX). */
#define PATRON_GRAPH_LINES_MAX 1000

struct patron_graph_pair {
    const char *a, *b; /* borrowed from the inputs; a != b */
};

/* The distinct item ids of the purchase, in line order, that are not among
 * prior_bought[0 .. n_prior): the items this customer buys for the first
 * time (e.g. to count an item's distinct buyers). Lines with an empty
 * item_id are skipped. Writes at most max, returns how many. */
size_t patron_graph_new_items(const char (*prior_bought)[PATRON_ID_MAX + 1], size_t n_prior,
                              const Patron__V1__Purchase *purchase, const char **out, size_t max);

/* The pairs to increment: for every new item a (above), each b among the
 * other new items and the first `history` items of the prior bought list
 * (the most recent ones), in both directions (a, b) and (b, a); every
 * unordered pair appears exactly once per direction. Order: by new item in
 * line order, first the other new items, then the history. Writes at most max
 * pairs and returns how many (never more than max), k * (k - 1) + 2 * k * h
 * in full for k new items and h = min(history, n_prior). */
size_t patron_graph_pairs(const char (*prior_bought)[PATRON_ID_MAX + 1], size_t n_prior,
                          size_t history, const Patron__V1__Purchase *purchase,
                          struct patron_graph_pair *out, size_t max);

#endif
