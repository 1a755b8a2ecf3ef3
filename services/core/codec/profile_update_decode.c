/* A ProfileUpdate read with bounds (profile_update_decode.h): the wire is
 * scanned first, field by field, against the bounds; only then does
 * protobuf-c unpack it. */
#include <string.h>

#include "patron/clock.h"
#include "patron/pb_unpack.h"
#include "patron/profile_update_decode.h"
#include "patron/tz.h"
#include "patron/profile_update.h"

/* The string fields of ProfileUpdate and the most bytes each may hold. */
struct str_bound {
    uint32_t number;
    size_t max;
    const char *too_long;
};

static const struct str_bound STR_BOUNDS[] = {
    {1, PATRON_ID_MAX, "customer_id too long"}, {2, PATRON_ID_MAX, "event_id too long"},
    {6, PATRON_ID_MAX, "item_id too long"},     {8, 31, "tier too long"},
    {9, 31, "previous_tier too long"},          {10, 31, "segment too long"},
    {11, 31, "previous_segment too long"},      {19, PATRON_TZ_NAME_MAX, "time_zone too long"},
    {20, PATRON_ID_MAX, "locale too long"},     {21, 7, "birthday too long"},
};

/* The field numbers ProfileUpdate declares (1 .. 27). */
#define KNOWN_FIELD_MAX 27

static const struct str_bound *str_bound_of(uint32_t number)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(STR_BOUNDS); i++)
        if (STR_BOUNDS[i].number == number)
            return &STR_BOUNDS[i];
    return NULL;
}

/* The bounds, on the wire: nothing is allocated yet. */
static int scan(const uint8_t *p, const uint8_t *end, const char **why)
{
    size_t items = 0, unknown = 0;
    while (p < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&p, end, &f)) {
            *why = "not a ProfileUpdate";
            return PATRON_EINVAL;
        }
        if (f.number == 0 || f.number > KNOWN_FIELD_MAX) {
            if (++unknown > PATRON_PROFILE_UPDATE_UNKNOWN_MAX) {
                *why = "too many unknown fields";
                return PATRON_ETOOBIG;
            }
            continue;
        }
        const struct str_bound *b = str_bound_of(f.number);
        if (!b || f.wire != PATRON_PB_LEN)
            continue; /* a scalar, or a wire type protobuf-c refuses below */
        if (f.number == 6 && ++items > PATRON_UPDATE_ITEMS_MAX) {
            *why = "too many item_ids";
            return PATRON_ETOOBIG;
        }
        if (f.len > b->max) {
            *why = b->too_long;
            return PATRON_ETOOBIG;
        }
        if (memchr(f.data, 0, f.len)) {
            *why = "a string holds a NUL byte";
            return PATRON_EINVAL;
        }
    }
    return 0;
}

int patron_profile_update_decode(const void *data, size_t len, Patron__V1__ProfileUpdate **out,
                                 const char **why)
{
    *out = NULL;
    if (len > PATRON_PROFILE_UPDATE_MAX) {
        *why = "update too big";
        return PATRON_ETOOBIG;
    }
    const uint8_t *p = data;
    int rc = scan(p, p + len, why);
    if (rc)
        return rc;
    Patron__V1__ProfileUpdate *u = patron__v1__profile_update__unpack(NULL, len, p);
    if (!u) {
        *why = "not a ProfileUpdate";
        return PATRON_EINVAL;
    }
    if (!u->customer_id[0])
        *why = "customer_id empty";
    else if (!u->event_id[0])
        *why = "event_id empty";
    else if (u->occurred_at_ms < 0 || u->occurred_at_ms > PATRON_TIME_MAX_MS)
        *why = "occurred_at_ms outside 1970..9999";
    else {
        *out = u;
        return 0;
    }
    patron__v1__profile_update__free_unpacked(u, NULL);
    return PATRON_EINVAL;
}
