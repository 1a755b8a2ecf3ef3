/*
 * patron.profile-updates payloads (ProfileUpdate, what patron-trigger
 * consumes) through patron_profile_update_decode.
 *
 * Properties: a refused record has a reason and no result; an accepted one
 * keeps every bound the header states (ids 1..64 bytes without a NUL, at
 * most PATRON_UPDATE_ITEMS_MAX item ids, an event time within 1970..9999),
 * and packs again with protobuf-c; nothing leaks.
 */
#include "fuzz.h"
#include "patron/clock.h"
#include "patron/profile_update.h"
#include "patron/profile_update_decode.h"

static void id_ok(const char *s, const char *what)
{
    size_t n = strlen(s);
    FUZZ_CHECK(n >= 1 && n <= PATRON_ID_MAX, "%s of %zu bytes", what, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Patron__V1__ProfileUpdate *u = (Patron__V1__ProfileUpdate *)(uintptr_t)1;
    const char *why = NULL;
    int rc = patron_profile_update_decode(data, size, &u, &why);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && !u && why && why[0], "refused (%d) without a reason or with a result",
                   rc);
        return 0;
    }
    FUZZ_CHECK(u, "accepted without a result");
    id_ok(u->customer_id, "customer_id");
    id_ok(u->event_id, "event_id");
    FUZZ_CHECK(u->n_item_ids <= PATRON_UPDATE_ITEMS_MAX, "%zu item ids", u->n_item_ids);
    for (size_t i = 0; i < u->n_item_ids; i++)
        FUZZ_CHECK(strlen(u->item_ids[i]) <= PATRON_ID_MAX, "item id of %zu bytes",
                   strlen(u->item_ids[i]));
    FUZZ_CHECK(u->occurred_at_ms >= 0 && u->occurred_at_ms <= PATRON_TIME_MAX_MS, "time %lld",
               (long long)u->occurred_at_ms);
    size_t n = patron__v1__profile_update__get_packed_size(u);
    uint8_t *again = malloc(n ? n : 1);
    FUZZ_CHECK(again, "out of memory");
    FUZZ_CHECK(patron__v1__profile_update__pack(u, again) == n, "packs to another size");
    free(again);
    patron__v1__profile_update__free_unpacked(u, NULL);
    return 0;
}
