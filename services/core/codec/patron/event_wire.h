/*
 * The encodings a site may publish on patron.events and patron.catalog,
 * told apart by the value's first byte (no header needed) and decoded into
 * the same structs, so that everything after this point cannot tell them
 * apart (docs/contracts/events.md, "Encodings"):
 *
 *   0x00  Confluent's Schema Registry framing: 0x00, a 4-byte big-endian
 *         schema id, the message-index list (varints: a count, then the
 *         indexes; a lone 0x00 means [0]), then the message. The index
 *         must be [0]: Event and ItemUpdate are the first message of their
 *         .proto files (the count of one is read zig-zag encoded, as the
 *         format defines it, or not, as older clients wrote it). The schema id is not looked up (no
 * registry is consulted): what follows must decode, that is all. A JSON body
 *         ('{' after the schema id, as Confluent's JSON Schema serializer
 *         writes it) is read as JSON.
 *   '{'   protobuf's canonical JSON mapping (pb_json.h).
 *   else  plain protobuf (valid protobuf never starts with 0x00, field 0,
 *         nor with '{', a group start of field 15).
 *
 * Decoding applies no contract check (event_check.h and catalog.h do), but
 * every bound of the decoders holds, and no string holds a NUL (a C string
 * would end there and read as another id): the Event decoder's limits
 * (event_codec.h) refuse one, the JSON reader too, and an ItemUpdate whose
 * string field holds one is refused ("<field> has invalid bytes"). Everything returned comes from
 * the caller's allocator and is never freed here: pass an arena. Pure.
 */
#ifndef PATRON_EVENT_WIRE_H
#define PATRON_EVENT_WIRE_H

#include "patron/common.h"
#include "patron/pb_json.h"
#include "patron/v1/catalog.pb-c.h"
#include "patron/v1/event.pb-c.h"

enum patron_wire { PATRON_WIRE_PROTOBUF, PATRON_WIRE_REGISTRY, PATRON_WIRE_JSON };

/* Room for a decoding failure's reason (the DLQ's `error` header). */
#define PATRON_WIRE_REASON_MAX PATRON_JSON_REASON_MAX

/* The encoding of a value, by its first byte; protobuf for an empty one. */
enum patron_wire patron_wire_of(const uint8_t *buf, size_t len);

/* Lines a Purchase or Refund may carry in JSON (the contract's limit). */
#define PATRON_WIRE_REPEATED_MAX 1000

/* A patron.v1.Event in any of the encodings, or NULL with the reason in
 * why ("decode: not a patron.v1.Event", "schema registry: ...", "json:
 * ..."). */
Patron__V1__Event *patron_event_decode_wire(ProtobufCAllocator *alloc, const uint8_t *buf,
                                            size_t len,
                                            char why[PATRON_WIRE_REASON_MAX]) PATRON_MUST_USE;

/* Decodes (protobuf-c's unpack, plain protobuf only) and checks
 * (event_check.h) a patron.events payload, for tools and tests that want a
 * malloc'd Event: ingest decodes through patron_event_decode_wire into its
 * arena. PATRON_ETOOBIG above PATRON_EVENT_MAX_BYTES, PATRON_EINVAL when it
 * does not decode, a string holds a NUL, or it fails patron_event_check; on
 * failure *out is NULL and *reason says why ("decode: ...", "missing
 * customer_id", ...). On success *reason is NULL and *out belongs to the
 * caller: patron__v1__event__free_unpacked(*out, NULL). */
int patron_event_decode(const void *buf, size_t len, Patron__V1__Event **out,
                        const char **reason) PATRON_MUST_USE;

/* The same for a patron.v1.ItemUpdate. */
Patron__V1__ItemUpdate *
patron_item_update_decode_wire(ProtobufCAllocator *alloc, const uint8_t *buf, size_t len,
                               char why[PATRON_WIRE_REASON_MAX]) PATRON_MUST_USE;

#endif
