/*
 * The patron.v1.ProfileUpdate that ingest publishes for each event it
 * applied or replayed (docs: the profile-updates contract): the event's
 * identity, kind and items, and the profile as it stands right after it.
 *
 * Pure; the inputs are read, never kept. Safe from any thread.
 */
#ifndef PATRON_PROFILE_UPDATE_H
#define PATRON_PROFILE_UPDATE_H

#include "patron/common.h"
#include "patron/profile.h"
#include "patron/v1/event.pb-c.h"
#include "patron/v1/profile.pb-c.h"

/* Items one update lists at most: a purchase or refund of more lines
 * lists its first PATRON_UPDATE_ITEMS_MAX. */
#define PATRON_UPDATE_ITEMS_MAX 1000

/* The EventKind of an event's oneof; UNSPECIFIED when none is set. */
Patron__V1__EventKind patron_event_kind(const Patron__V1__Event *ev);

/* The event's item ids into out[0 .. max), in the event's order, and their
 * count: one for a view, cart add or remove and review, one per line for a
 * purchase or refund (max at most), none otherwise. The pointers are the
 * event's (borrowed). */
size_t patron_event_items(const Patron__V1__Event *ev, char **out, size_t max);

/* Packs the ProfileUpdate of event ev, read at Kafka (partition, offset),
 * given the profile p right after applying it and the outcome of that
 * apply (replayed when out->result is PATRON_APPLY_REPLAYED), into
 * buf[0 .. cap), its length into *len. PATRON_ETOOBIG when it does not fit
 * (a purchase of many lines): *len is then the room it needs, and a call
 * with that much room succeeds. The bytes are protobuf-c's for the same
 * message (patron/pb_pack.h). The update's customer is p's: the event of a
 * merged visitor (customer_id "") is its customer's, with anonymous_id
 * saying whose it was. An Identify's update (kind IDENTIFY) carries the
 * anonymous id merged and, when the visitor brought cart lines
 * (out->cart_lines > 0), the merged cart's items: patron-trigger takes that
 * as the customer's cart add. */
int patron_profile_update_pack(const Patron__V1__Event *ev, const struct patron_profile *p,
                               const struct patron_apply_outcome *out, int32_t partition,
                               int64_t offset, uint8_t *buf, size_t cap,
                               size_t *len) PATRON_MUST_USE;

/* Bytes the fan-out flag adds to an update: the field fanout (26, varint)
 * set to true. */
#define PATRON_UPDATE_FANOUT_EXTRA 3

/* The fan-out copy of an erasure's packed update, for the other partitions
 * of patron.profile-updates (profile.proto, fanout): update[0 .. len) with
 * fanout = true, into out (room for len + PATRON_UPDATE_FANOUT_EXTRA);
 * returns its length. The flag goes in before the first field numbered
 * past it, so these are protobuf-c's bytes for the same update with the
 * flag set (update must be patron_profile_update_pack's, fields in order). */
size_t patron_profile_update_fanout(const uint8_t *update, size_t len, uint8_t *out);

#endif
