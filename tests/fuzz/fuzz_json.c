/*
 * Protobuf's canonical JSON (pb_json.h) read as an Event and as an
 * ItemUpdate, whatever the first byte: the JSON reader on its own, beyond
 * what the event target reaches through the '{' of decode_wire.
 *
 * Properties: a refused document has a reason starting "json: " and no
 * result; an accepted Event packs with protobuf-c and decodes back with
 * patron_event_unpack to the same bytes (JSON and protobuf agree); the
 * repeated fields keep their bound; nothing but the arena is allocated
 * (jansson's tree is freed by the reader).
 */
#include "fuzz.h"
#include "patron/event_codec.h"
#include "patron/pb_json.h"
#include "patron/v1/catalog.pb-c.h"
#include "patron/v1/event.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_arena a = {0};
    ProtobufCAllocator alloc = {
        .alloc = fuzz_arena_alloc, .free = fuzz_arena_free_one, .allocator_data = &a};
    char why[PATRON_JSON_REASON_MAX];
    ProtobufCMessage *m = patron_pb_from_json(&patron__v1__event__descriptor, &alloc,
                                              (const char *)data, size, 1000, why);
    if (!m) {
        FUZZ_CHECK(strncmp(why, "json: ", 6) == 0, "refused with \"%s\"", why);
    } else {
        Patron__V1__Event *ev = (Patron__V1__Event *)m;
        if (ev->kind_case == PATRON__V1__EVENT__KIND_PURCHASE)
            FUZZ_CHECK(ev->purchase->n_items <= 1000, "%zu lines", ev->purchase->n_items);
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *bytes = malloc(n ? n : 1), *again = malloc(n ? n : 1);
        FUZZ_CHECK(bytes && again, "out of memory");
        FUZZ_CHECK(protobuf_c_message_pack(m, bytes) == n, "packs to another size");
        /* what protobuf-c packs, the hand-written decoder reads the same way
         * (it may refuse over its limits: a string over 64 KiB, ...) */
        Patron__V1__Event *back = patron_event_unpack(&alloc, bytes, n);
        if (back) {
            FUZZ_CHECK(protobuf_c_message_get_packed_size(&back->base) == n, "round trip size");
            FUZZ_CHECK(protobuf_c_message_pack(&back->base, again) == n &&
                           memcmp(bytes, again, n) == 0,
                       "JSON and protobuf disagree");
        }
        free(bytes);
        free(again);
    }
    m = patron_pb_from_json(&patron__v1__item_update__descriptor, &alloc, (const char *)data, size,
                            1000, why);
    FUZZ_CHECK(m || strncmp(why, "json: ", 6) == 0, "item refused with \"%s\"", why);
    fuzz_arena_reset(&a);
    return 0;
}
