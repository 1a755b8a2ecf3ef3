/*
 * Protobuf's canonical JSON mapping, read into protobuf-c's message structs:
 * the one JSON reader of Patron's wire contracts (events and catalog
 * updates, event_wire.h). Driven by the generated descriptors, so a field
 * added to a .proto is read without a change here.
 *
 * What it accepts is what protobuf's own JSON parsers accept:
 * - field names in lowerCamelCase (the JSON name) or as in the .proto;
 * - 64-bit integers as a number or a decimal string, 32-bit ones too;
 *   a number with a fraction is refused; floats and doubles as numbers, or
 *   "NaN", "Infinity" and "-Infinity";
 * - enums by name or by number;
 * - null for any field: its default;
 * - unknown fields ignored;
 * - at most one member of a oneof.
 * Stricter than some: duplicate keys, strings holding a NUL, bytes fields,
 * and maps are refused (none are in the contracts), and so is anything but
 * one JSON object.
 *
 * Bounds, checked before the memory is spent: at most PATRON_JSON_BYTES_MAX
 * bytes and PATRON_JSON_VALUES_MAX values per document (counted before
 * parsing, so that the parser's tree stays under ~100 bytes a value), and
 * repeated fields of at most `max_repeated` elements. The message and its
 * strings come from the caller's allocator, never freed by this module (an
 * arena); jansson's tree lives only during the call.
 *
 * Pure: no I/O, no global state. Safe from any thread.
 */
#ifndef PATRON_PB_JSON_H
#define PATRON_PB_JSON_H

#include <protobuf-c/protobuf-c.h>

#include "patron/common.h"

#define PATRON_JSON_BYTES_MAX (1024 * 1024)
#define PATRON_JSON_VALUES_MAX 65536
/* Room for a reason: "json: line L column C: <jansson's text>". */
#define PATRON_JSON_REASON_MAX 192

/* Reads the JSON document buf[0 .. len) as a message of descriptor d.
 * Returns the message (from alloc), or NULL with the reason in `why`
 * (NUL-terminated, prefixed "json: "). */
ProtobufCMessage *patron_pb_from_json(const ProtobufCMessageDescriptor *d,
                                      ProtobufCAllocator *alloc, const char *buf, size_t len,
                                      size_t max_repeated,
                                      char why[PATRON_JSON_REASON_MAX]) PATRON_MUST_USE;

#endif
