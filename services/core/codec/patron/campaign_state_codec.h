/*
 * A customer's campaign state as stored by patron-trigger
 * (patron.v1.TriggerState): the one place that format is read and written.
 * Pure.
 */
#ifndef PATRON_CAMPAIGN_STATE_CODEC_H
#define PATRON_CAMPAIGN_STATE_CODEC_H

#include "patron/campaign_engine.h"

/* The stored form (patron.v1.TriggerState). decode initialises *st (free it
 * even on failure); PATRON_EINVAL for bytes that do not decode,
 * PATRON_ETOOBIG over PATRON_ENGINE_STATE_MAX. Never trusted: lists longer
 * than the bounds above keep their most recent entries, entries with an
 * unknown kind or channel or a time outside 1970..9999 are dropped, and a
 * string longer than its field or holding a NUL makes it PATRON_EINVAL
 * (never cut: a cut id is another customer's or campaign's). encode
 * returns a malloc'ed buffer in *out. */
int patron_customer_state_decode(struct patron_customer_state *st, const void *data,
                                 size_t len) PATRON_MUST_USE;
size_t patron_customer_state_encode(const struct patron_customer_state *st, uint8_t **out);

#endif
