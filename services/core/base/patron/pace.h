/*
 * The pace of a pipeline's work in flight against a store that can slow
 * down: additive increase, multiplicative decrease (TCP's congestion
 * window), counted in batches and records.
 *
 * Why: a pipeline that has N batches of B records in flight to a store
 * whose commands carry a timeout T needs the store to answer all of it
 * within T, since the last command sent waits behind every one sent
 * before it. A store slowed down (a starved CPU, a fork, a noisy
 * neighbour) misses the deadline; the pipeline resets and replays the same
 * N x B records, which miss it again: a stall that looks like work.
 *
 * The pace is the fraction of the configured N and B in use, so that what
 * is in flight scales with its square:
 * - a failure (the store timed out or went away) halves it, once per
 *   round as well;
 * - a batch that took the store more than half of T (as the caller
 *   measures it: ingest, from the batch's start to its last write
 *   acknowledged) halves it too, before the deadline is missed, but only
 *   once per round: a batch started before the last cut says nothing of
 *   the pace since;
 * - a batch done within a quarter of T adds PATRON_PACE_STEP; one in
 *   between leaves it.
 * It never goes below PATRON_PACE_MIN, and patron_pace_scale never gives
 * less than 1: a record at a time still makes way.
 *
 * Pure: the caller numbers its batches (increasing) and measures them.
 */
#ifndef PATRON_PACE_H
#define PATRON_PACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "patron/common.h"

#define PATRON_PACE_MIN (1.0 / 1024)
#define PATRON_PACE_STEP (1.0 / 32)

struct patron_pace {
    double level;        /* of the configured limits, [PATRON_PACE_MIN, 1] */
    uint64_t cut_before; /* batches numbered below it started before the last cut */
};

/* Full pace: the configured limits. */
void patron_pace_init(struct patron_pace *p);

/* The store failed; next_seq is the number the next batch will have.
 * Returns whether the pace went down: not at its minimum already, and not
 * when no batch has started since the last cut (two connections lost to
 * one outage are one failure). */
bool patron_pace_failed(struct patron_pace *p, uint64_t next_seq);

/* Batch `seq` ended well after elapsed_ms against the store's timeout_ms
 * (0: none; then only failures slow the pace, and every batch counts as
 * quick). Returns -1 if the pace went down, 1 if up, 0 if it stayed. */
int patron_pace_done(struct patron_pace *p, uint64_t seq, int64_t elapsed_ms, int64_t timeout_ms,
                     uint64_t next_seq);

/* The configured limit at the current pace: at least 1 (and configured
 * when that is 0). */
PATRON_MUST_USE size_t patron_pace_scale(const struct patron_pace *p, size_t configured);

#endif
