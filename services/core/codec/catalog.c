#include "patron/catalog.h"

#include <stdio.h>
#include <string.h>

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PATRON_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return false;
    return true;
}

int patron_item_update_decode(ProtobufCAllocator *alloc, const void *buf, size_t len,
                              Patron__V1__ItemUpdate **out, char why[PATRON_WIRE_REASON_MAX])
{
    *out = NULL;
    if (len > PATRON_ITEM_UPDATE_MAX) {
        snprintf(why, PATRON_WIRE_REASON_MAX, "item update too large");
        return PATRON_ETOOBIG;
    }
    Patron__V1__ItemUpdate *u = patron_item_update_decode_wire(alloc, buf, len, why);
    if (!u)
        return PATRON_EINVAL;
    const char *reason = NULL;
    if (!id_ok(u->item_id))
        reason = "missing or invalid item_id";
    else if (u->category[0] && !id_ok(u->category))
        reason = "invalid category";
    else if (u->price_cents < 0)
        reason = "negative price";
    else if (strlen(u->title) > PATRON_TITLE_MAX)
        reason = "title too long";
    if (reason) {
        snprintf(why, PATRON_WIRE_REASON_MAX, "%s", reason);
        return PATRON_EINVAL;
    }
    *out = u;
    return 0;
}
