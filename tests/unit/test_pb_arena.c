#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_events.h"
#include "patron/event_codec.h"
#include "patron/pb_arena.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(pb_arena);

/* Every size gets an aligned, usable block from the arena, 0 included (a
 * NULL would read as out of memory), each distinct; free does nothing. */
Test(pb_arena, alloc_and_free)
{
    static const size_t sizes[] = {0, 0, 1, 15, 16, 17, 1000, PATRON_ARENA_CHUNK + 1};
    struct patron_arena a;
    patron_arena_init(&a, NULL);
    ProtobufCAllocator pb = patron_pb_arena_allocator(&a);
    cr_assert_eq(pb.allocator_data, &a);
    void *prev = NULL;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(sizes); i++) {
        uint8_t *p = pb.alloc(pb.allocator_data, sizes[i]);
        cr_assert_not_null(p, "size %zu", sizes[i]);
        cr_expect_neq(p, prev, "size %zu: the block before", sizes[i]);
        cr_expect_eq((uintptr_t)p % _Alignof(max_align_t), 0);
        memset(p, 0x5A, sizes[i]);
        pb.free(pb.allocator_data, p); /* a no-op: the arena frees */
        prev = p;
    }
    cr_expect_not_null(a.head);
    patron_arena_free(&a);
}

/* The event decoder through it: the event lives in the arena, and freeing
 * the arena frees all of it (LeakSanitizer checks). */
Test(pb_arena, decodes_events_into_the_arena)
{
    static struct fx_event fx;
    static const struct fx_line lines[] = {{"i-1", "c", 1, 100}, {"i-2", "", 2, 50}};
    struct patron_arena_spares spares;
    patron_arena_spares_init(&spares, 2);
    for (int round = 0; round < 3; round++) {
        Patron__V1__Event *src = round == 0   ? fx_view(&fx, "e-1", FX_T0, "i-v", "cat")
                                 : round == 1 ? fx_purchase(&fx, "e-2", FX_T0, 2, lines)
                                              : fx_erasure(&fx, "e-3", FX_T0);
        size_t len = patron__v1__event__get_packed_size(src);
        uint8_t *buf = malloc(len + 1);
        cr_assert_eq(patron__v1__event__pack(src, buf), len);
        struct patron_arena a;
        patron_arena_init(&a, &spares);
        ProtobufCAllocator pb = patron_pb_arena_allocator(&a);
        Patron__V1__Event *ev = patron_event_unpack(&pb, buf, len);
        free(buf);
        cr_assert_not_null(ev, "round %d", round);
        cr_expect_eq(ev->kind_case, src->kind_case);
        cr_expect_str_eq(ev->event_id, src->event_id);
        cr_expect_str_eq(ev->customer_id, FX_CUSTOMER);
        if (round == 1) {
            cr_assert_eq(ev->purchase->n_items, 2);
            cr_expect_str_eq(ev->purchase->items[1]->item_id, "i-2");
        }
        patron_arena_free(&a);
    }
    patron_arena_spares_free(&spares);
}
