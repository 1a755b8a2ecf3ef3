/*
 * A hand-written decoder for patron.v1.Event, ingest's hot path: protobuf-c's
 * unpack walks descriptors per field, this reads the wire format directly
 * (pb_unpack.h) and builds the same structs.
 *
 * Ownership: everything the decoder returns (the Event, its strings,
 * sub-messages, LineItems and their arrays) comes from the caller's
 * allocator in a few blocks and is never freed by the decoder, so the
 * allocator must free everything at once (an arena); do NOT pass the result
 * to patron__v1__event__free_unpacked. Pure otherwise; safe from any thread
 * with its own allocator.
 */
#ifndef PATRON_EVENT_CODEC_H
#define PATRON_EVENT_CODEC_H

#include "patron/common.h"
#include "patron/event_check.h"
#include "patron/v1/event.pb-c.h"

/* Decodes a patron.v1.Event as patron__v1__event__unpack(alloc, len, buf)
 * does (libprotobuf-c 1.4.1, measured; tests/unit/test_event_codec.c holds
 * it as the oracle): the same accept/reject and the same field values,
 * kind_case, NUL-terminated string copies, and protobuf_c_empty_string in
 * absent strings. NULL when protobuf-c would return NULL, when alloc
 * returns NULL, when alloc is NULL (protobuf-c would use malloc; nothing
 * here could free it), or when buf is NULL with len > 0. One difference:
 * unknown fields are skipped, not kept (base.n_unknown_fields is always 0).
 *
 * Limits: it also refuses, where protobuf-c accepts, a decoded value that
 * breaks one of the contract's limits (docs/contracts/events.md), each
 * checked before the memory for it is spent, with event_check.c's reason:
 *   - a string over its length: ids (event, customer, anonymous, item,
 *     order) and categories PATRON_ID_MAX bytes, currency
 *     PATRON_EVENT_CURRENCY_MAX, locale, country and time zone their
 *     PATRON_PROFILE_*_MAX, birthday 5 ("invalid birthday");
 *   - a string holding a NUL ("customer_id has invalid bytes", ...): a C
 *     string would end there, and "victim\0x" would read as "victim";
 *   - more than PATRON_EVENT_LINES_MAX lines in a Purchase or Refund ("too
 *     many lines"), refused at the one after, before it is decoded.
 * Limits apply to the values that win: an occurrence of the kind oneof
 * that a later one replaces (protobuf-c keeps the last) is only validated,
 * allocating nothing, as a string that a later one replaces is never
 * copied. So the test's oracle is protobuf-c followed by these checks on
 * its result.
 *
 * Memory: what it takes from alloc is at most len + PATRON_EVENT_DECODED_EXTRA
 * bytes (plus the allocator's own rounding per block): the strings are
 * copies of disjoint parts of buf with a NUL each, and the rest is at most
 * PATRON_EVENT_LINES_MAX LineItems with their pointers, one member and the
 * Event. */
Patron__V1__Event *patron_event_unpack(ProtobufCAllocator *alloc, const uint8_t *buf,
                                       size_t len) PATRON_MUST_USE;

/* The same, with the reason of a refusal in *why (a static string; NULL on
 * success; why itself may be NULL): a limit's reason as above, else
 * "decode: not a patron.v1.Event". */
Patron__V1__Event *patron_event_unpack_why(ProtobufCAllocator *alloc, const uint8_t *buf,
                                           size_t len, const char **why) PATRON_MUST_USE;

/* The bound above: per line a LineItem (64 bytes), its pointer in the
 * final array and in the doubling ones before it (8 + 16), its two NULs;
 * the member and the Event with their NULs. */
#define PATRON_EVENT_DECODED_EXTRA (PATRON_EVENT_LINES_MAX * (64 + 24 + 2) + 512)

#endif
