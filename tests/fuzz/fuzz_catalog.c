/*
 * patron.catalog payloads (ItemUpdate) through patron_item_update_decode.
 *
 * Properties: an accepted update has a reason-free result that keeps the
 * contract (a valid item id, a valid or empty category, a price >= 0, a
 * title within PATRON_TITLE_MAX); a refused one has a reason and no result;
 * nothing leaks.
 */
#include "fuzz.h"
#include "patron/catalog.h"
#include "patron/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Patron__V1__ItemUpdate *u = (Patron__V1__ItemUpdate *)(uintptr_t)1;
    const char *reason = NULL;
    int rc = patron_item_update_decode(data, size, &u, &reason);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && !u && reason, "refused (%d) without a reason or with a result", rc);
        return 0;
    }
    FUZZ_CHECK(u, "accepted without a result");
    size_t id_len = strlen(u->item_id);
    FUZZ_CHECK(id_len >= 1 && id_len <= PATRON_ID_MAX, "item_id of %zu bytes", id_len);
    FUZZ_CHECK(strlen(u->category) <= PATRON_ID_MAX, "category of %zu bytes", strlen(u->category));
    FUZZ_CHECK(u->price_cents >= 0, "price %lld", (long long)u->price_cents);
    FUZZ_CHECK(strlen(u->title) <= PATRON_TITLE_MAX, "title of %zu bytes", strlen(u->title));
    patron__v1__item_update__free_unpacked(u, NULL);
    return 0;
}
