/*
 * patron.catalog payloads (ItemUpdate) through patron_item_update_decode
 * and patron_item_update_decode_wire (every encoding ingest reads).
 *
 * Properties: an accepted update has a reason-free result that keeps the
 * contract (a valid item id, a valid or empty category, a price >= 0, a
 * title within PATRON_TITLE_MAX); a refused one has a reason and no result;
 * the decoders allocate from the arena only (nothing leaks).
 */
#include "fuzz.h"
#include "patron/catalog.h"
#include "patron/common.h"
#include "patron/event_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_arena a = {0};
    ProtobufCAllocator alloc = {
        .alloc = fuzz_arena_alloc, .free = fuzz_arena_free_one, .allocator_data = &a};
    Patron__V1__ItemUpdate *u = (Patron__V1__ItemUpdate *)(uintptr_t)1;
    char why[PATRON_WIRE_REASON_MAX];
    memset(why, 'x', sizeof(why));
    int rc = patron_item_update_decode(&alloc, data, size, &u, why);
    FUZZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL, "why not NUL-terminated");
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && !u && why[0], "refused (%d) without a reason or with a result", rc);
    } else {
        FUZZ_CHECK(u, "accepted without a result");
        size_t id_len = strlen(u->item_id);
        FUZZ_CHECK(id_len >= 1 && id_len <= PATRON_ID_MAX, "item_id of %zu bytes", id_len);
        FUZZ_CHECK(strlen(u->category) <= PATRON_ID_MAX, "category of %zu bytes",
                   strlen(u->category));
        FUZZ_CHECK(u->price_cents >= 0, "price %lld", (long long)u->price_cents);
        FUZZ_CHECK(strlen(u->title) <= PATRON_TITLE_MAX, "title of %zu bytes", strlen(u->title));
    }
    /* every encoding ingest reads */
    Patron__V1__ItemUpdate *w = patron_item_update_decode_wire(&alloc, data, size, why);
    FUZZ_CHECK(w ? why[0] == '\0' : why[0] != '\0', "update %p with why \"%s\"", (void *)w, why);
    fuzz_arena_reset(&a);
    return 0;
}
