/* protobuf-c's allocator over an arena (see patron/pb_arena.h). */
#include "patron/pb_arena.h"

static void *pb_arena_alloc(void *ud, size_t n)
{
    return patron_arena_alloc(ud, n ? n : 1);
}

static void pb_arena_free(void *ud, void *p)
{
    (void)ud;
    (void)p; /* freed with the arena */
}

ProtobufCAllocator patron_pb_arena_allocator(struct patron_arena *a)
{
    return (ProtobufCAllocator){
        .alloc = pb_arena_alloc, .free = pb_arena_free, .allocator_data = a};
}
