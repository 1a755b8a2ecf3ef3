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
#include "patron/v1/event.pb-c.h"

/* Decodes a patron.v1.Event exactly as patron__v1__event__unpack(alloc,
 * len, buf) does (libprotobuf-c 1.4.1, measured; tests/unit/test_event_codec.c
 * holds it as the oracle): the same accept/reject and the same field values,
 * kind_case, NUL-terminated string copies (all bytes, embedded NULs
 * included), and protobuf_c_empty_string in absent strings. NULL when
 * protobuf-c would return NULL, when alloc returns NULL, when alloc is NULL
 * (protobuf-c would use malloc; nothing here could free it), or when buf is
 * NULL with len > 0. One difference: unknown fields are skipped, not kept
 * (base.n_unknown_fields is always 0). */
Patron__V1__Event *patron_event_unpack(ProtobufCAllocator *alloc, const uint8_t *buf,
                                       size_t len) PATRON_MUST_USE;

#endif
