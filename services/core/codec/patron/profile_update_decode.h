/*
 * Reading a patron.v1.ProfileUpdate from patron.profile-updates (what
 * patron-trigger consumes) with bounds: ingest writes that topic, but a
 * broken or hostile producer can write it too, so nothing in the bytes is
 * trusted. The bounds are checked on the wire, BEFORE protobuf-c allocates
 * anything, so that a record costs at most a small multiple of
 * PATRON_PROFILE_UPDATE_MAX in memory:
 *   - the record: at most PATRON_PROFILE_UPDATE_MAX bytes (the largest
 *     update ingest can write, PATRON_UPDATE_ITEMS_MAX items of
 *     PATRON_ID_MAX bytes, is about 68 KiB);
 *   - item_ids: at most PATRON_UPDATE_ITEMS_MAX, each at most PATRON_ID_MAX
 *     bytes;
 *   - customer_id, event_id: 1 .. PATRON_ID_MAX bytes; tier, segment and
 *     their previous values: 31; time_zone: PATRON_TZ_NAME_MAX; locale:
 *     PATRON_ID_MAX; birthday: 7 (never cut: a cut id is another
 *     customer's);
 *   - no string holds a NUL byte (protobuf-c's copy would end there: an id
 *     "a\0b" would be read as customer "a");
 *   - at most PATRON_PROFILE_UPDATE_UNKNOWN_MAX fields this Patron does not
 *     know (protobuf-c keeps each one);
 *   - occurred_at_ms within 1970 .. 9999.
 *
 * Pure; safe from any thread.
 */
#ifndef PATRON_PROFILE_UPDATE_DECODE_H
#define PATRON_PROFILE_UPDATE_DECODE_H

#include "patron/common.h"
#include "patron/v1/profile.pb-c.h"

#define PATRON_PROFILE_UPDATE_MAX (128 * 1024) /* bytes of one record */
#define PATRON_PROFILE_UPDATE_UNKNOWN_MAX 64   /* unknown fields kept */

/* Decodes data[0 .. len) into *out (free with
 * patron__v1__profile_update__free_unpacked). On failure *out is NULL,
 * *why says what is wrong (a static string: the DLQ's `error` header) and
 * the result is PATRON_ETOOBIG (over a bound above) or PATRON_EINVAL. */
int patron_profile_update_decode(const void *data, size_t len, Patron__V1__ProfileUpdate **out,
                                 const char **why) PATRON_MUST_USE;

/* The bytes that, appended to a packed ProfileUpdate, set `fanout` (field
 * 26, a varint 1): the last occurrence of a scalar wins, so a copy for
 * the fan-out of an erasure is the update's bytes then these, nothing
 * re-packed. */
#define PATRON_PROFILE_UPDATE_FANOUT_SUFFIX "\xd0\x01\x01"
#define PATRON_PROFILE_UPDATE_FANOUT_SUFFIX_LEN 3

#endif
