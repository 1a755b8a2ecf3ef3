/*
 * protobuf-c's allocator interface over an arena (patron/arena.h), for
 * decoders whose results die with the arena (patron_event_unpack in a
 * batch): unpacking costs a pointer bump per block instead of a malloc.
 *
 * Ownership: the allocator borrows the arena, which must outlive every use
 * of it and of what was unpacked through it. Its free is a no-op: the
 * memory goes back when the arena is freed, so never pass what it
 * allocated to a protobuf-c free_unpacked with another allocator. A
 * request of 0 bytes gets a valid, distinct pointer (protobuf-c takes NULL
 * as out of memory).
 */
#ifndef PATRON_PB_ARENA_H
#define PATRON_PB_ARENA_H

#include <protobuf-c/protobuf-c.h>

#include "patron/arena.h"

/* An allocator whose memory comes from *a. */
ProtobufCAllocator patron_pb_arena_allocator(struct patron_arena *a);

#endif
