#include "patron/catalog.h"

#include <stdio.h>
#include <string.h>

#include "patron/event_check.h"

/* As event_check's: strict UTF-8 without control bytes, 1..64 bytes. The
 * decoder refused a NUL, so strlen sees the whole value. */
static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= PATRON_ID_MAX && patron_event_text_valid(s, n);
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
    else if (!patron_event_text_valid(u->title, strlen(u->title)))
        reason = "invalid title"; /* it leaves Patron in messages and answers */
    if (reason) {
        snprintf(why, PATRON_WIRE_REASON_MAX, "%s", reason);
        return PATRON_EINVAL;
    }
    *out = u;
    return 0;
}
