/* The stored form of a profile: protobuf patron.v1.ProfileState. proto3
 * leaves zero scalars and empty strings out, which keeps a typical customer
 * at a few hundred bytes. */
#include "patron/profile.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "patron/event_check.h"
#include "patron/keys.h"
#include "patron/pb_pack.h"
#include "patron/pb_unpack.h"
#include "patron/v1/profile.pb-c.h"
#include "patron/profile_codec.h"

/* Encoding builds the message on the stack, pointing into the profile: no
 * copies, and the sizes below are the capacities. */
struct encode_scratch {
    Patron__V1__MonthSpend months[PATRON_PROFILE_MONTHS];
    Patron__V1__MonthSpend *month_ptrs[PATRON_PROFILE_MONTHS];
    Patron__V1__CategoryScore categories[PATRON_PROFILE_CATEGORIES_MAX];
    Patron__V1__CategoryScore *category_ptrs[PATRON_PROFILE_CATEGORIES_MAX];
    char *viewed[PATRON_PROFILE_VIEWED_MAX];
    char *bought[PATRON_PROFILE_BOUGHT_MAX];
    Patron__V1__CartLine cart[PATRON_PROFILE_CART_MAX];
    Patron__V1__CartLine *cart_ptrs[PATRON_PROFILE_CART_MAX];
    uint64_t event_ids[PATRON_PROFILE_EVENT_IDS_MAX];
    int64_t event_ms[PATRON_PROFILE_EVENT_IDS_MAX];
    Patron__V1__SourcePosition marks[PATRON_PROFILE_MARKS_MAX];
    Patron__V1__SourcePosition *mark_ptrs[PATRON_PROFILE_MARKS_MAX];
    Patron__V1__MergedAlias aliases[PATRON_PROFILE_ALIASES_MAX];
    Patron__V1__MergedAlias *alias_ptrs[PATRON_PROFILE_ALIASES_MAX];
    Patron__V1__SourcePosition alias_marks[PATRON_PROFILE_ALIASES_MAX][PATRON_PROFILE_MARKS_MAX];
    Patron__V1__SourcePosition
        *alias_mark_ptrs[PATRON_PROFILE_ALIASES_MAX][PATRON_PROFILE_MARKS_MAX];
};

static void mark_to_pb(Patron__V1__SourcePosition *out, const struct patron_profile_mark *m)
{
    patron__v1__source_position__init(out);
    out->partition = m->partition;
    out->offset = m->offset;
}

/* protobuf-c's message structs take char *, never writing through it. */
static char *text(const char *s)
{
    return (char *)s;
}

int patron_profile_encode_into(const struct patron_profile *p, uint8_t *out, size_t cap,
                               size_t *len)
{
    if (p->n_months > PATRON_PROFILE_MONTHS || p->n_categories > PATRON_PROFILE_CATEGORIES_MAX ||
        p->n_viewed > PATRON_PROFILE_VIEWED_MAX || p->n_bought > PATRON_PROFILE_BOUGHT_MAX ||
        p->n_cart > PATRON_PROFILE_CART_MAX || p->n_event_ids > PATRON_PROFILE_EVENT_IDS_MAX ||
        p->n_bought_earlier > PATRON_PROFILE_BOUGHT_EARLIER_MAX ||
        p->n_counted > PATRON_PROFILE_COUNTED_MAX || p->n_marks > PATRON_PROFILE_MARKS_MAX ||
        p->n_aliases > PATRON_PROFILE_ALIASES_MAX)
        return PATRON_EINVAL;
    for (size_t i = 0; i < p->n_aliases; i++)
        if (p->aliases[i].n_marks > PATRON_PROFILE_MARKS_MAX)
            return PATRON_EINVAL;

    struct encode_scratch s;
    Patron__V1__ProfileState m = PATRON__V1__PROFILE_STATE__INIT;
    m.customer_id = text(p->customer_id);
    m.orders = p->orders;
    m.net_spend_cents = p->net_spend_cents;
    m.points = p->points;
    m.reviews = p->reviews;
    m.refunds = p->refunds;
    m.first_seen_ms = p->first_seen_ms;
    m.last_seen_ms = p->last_seen_ms;
    m.first_purchase_ms = p->first_purchase_ms;
    m.last_purchase_ms = p->last_purchase_ms;
    m.last_event_ms = p->last_event_ms;
    m.cart_updated_ms = p->cart_updated_ms;

    for (size_t i = 0; i < p->n_months; i++) {
        patron__v1__month_spend__init(&s.months[i]);
        s.months[i].month = p->months[i].month;
        s.months[i].cents = p->months[i].cents;
        s.month_ptrs[i] = &s.months[i];
    }
    m.n_months = p->n_months;
    m.months = s.month_ptrs;

    for (size_t i = 0; i < p->n_categories; i++) {
        patron__v1__category_score__init(&s.categories[i]);
        s.categories[i].category = text(p->categories[i].category);
        s.categories[i].score = p->categories[i].score;
        s.categories[i].updated_ms = p->categories[i].updated_ms;
        s.category_ptrs[i] = &s.categories[i];
    }
    m.n_categories = p->n_categories;
    m.categories = s.category_ptrs;

    for (size_t i = 0; i < p->n_viewed; i++)
        s.viewed[i] = text(p->viewed[i]);
    m.n_viewed = p->n_viewed;
    m.viewed = s.viewed;
    for (size_t i = 0; i < p->n_bought; i++)
        s.bought[i] = text(p->bought[i]);
    m.n_bought = p->n_bought;
    m.bought = s.bought;

    for (size_t i = 0; i < p->n_cart; i++) {
        patron__v1__cart_line__init(&s.cart[i]);
        s.cart[i].item_id = text(p->cart[i].item_id);
        s.cart[i].quantity = p->cart[i].quantity;
        s.cart_ptrs[i] = &s.cart[i];
    }
    m.n_cart = p->n_cart;
    m.cart = s.cart_ptrs;

    m.consent_sms = p->consent_sms;
    m.consent_push = p->consent_push;
    m.consent_email = p->consent_email;
    m.time_zone = text(p->time_zone);
    m.locale = text(p->locale);
    m.birthday = text(p->birthday);
    m.country = text(p->country);

    memcpy(s.event_ids, p->event_ids, p->n_event_ids * sizeof(s.event_ids[0]));
    m.n_recent_event_ids = p->n_event_ids;
    m.recent_event_ids = s.event_ids;
    memcpy(s.event_ms, p->event_ms, p->n_event_ids * sizeof(s.event_ms[0]));
    m.n_recent_event_ms = p->n_event_ids;
    m.recent_event_ms = s.event_ms;
    m.recent_floor_ms = p->event_ids_floor_ms;
    m.n_counted_events = p->n_counted;
    m.counted_events = (uint64_t *)p->counted; /* never written through */
    m.counted_floor_month = p->counted_floor_month;
    m.consent_sms_ms = p->consent_ms[0];
    m.consent_push_ms = p->consent_ms[1];
    m.consent_email_ms = p->consent_ms[2];
    m.customer_updated_ms = p->customer_ms;
    m.erased_at_ms = p->erased_at_ms;
    /* the first mark where profiles have always kept their one position */
    for (size_t i = 0; i < p->n_marks; i++) {
        mark_to_pb(&s.marks[i], &p->marks[i]);
        s.mark_ptrs[i] = &s.marks[i];
    }
    if (p->n_marks) {
        m.source = s.mark_ptrs[0];
        m.n_more_sources = p->n_marks - 1;
        m.more_sources = s.mark_ptrs + 1;
    }
    m.anonymous_id = text(p->anonymous_id);
    m.merged_into = text(p->merged_into);
    m.merged_partition = p->merged_partition;
    for (size_t i = 0; i < p->n_aliases; i++) {
        const struct patron_profile_alias *a = &p->aliases[i];
        Patron__V1__MergedAlias *ma = &s.aliases[i];
        patron__v1__merged_alias__init(ma);
        ma->anonymous_id = text(a->anonymous_id);
        ma->merged_at_ms = a->merged_at_ms;
        ma->floor_ms = a->floor_ms;
        for (size_t k = 0; k < a->n_marks; k++) {
            mark_to_pb(&s.alias_marks[i][k], &a->marks[k]);
            s.alias_mark_ptrs[i][k] = &s.alias_marks[i][k];
        }
        ma->n_marks = a->n_marks;
        ma->marks = s.alias_mark_ptrs[i];
        ma->viewed = a->viewed;
        ma->cart_lines = a->cart_lines;
        ma->orders = a->orders;
        s.alias_ptrs[i] = ma;
    }
    m.n_aliases = p->n_aliases;
    m.aliases = s.alias_ptrs;
    m.erased = p->erased;
    m.n_bought_earlier = p->n_bought_earlier;
    m.bought_earlier = (uint32_t *)p->bought_earlier; /* never written through */

    return patron_pb_pack_profile_state(&m, out, cap, len);
}

int patron_profile_encode(const struct patron_profile *p, uint8_t **buf, size_t *len)
{
    uint8_t *out = patron_malloc(PATRON_PROFILE_ENCODED_MAX);
    int rc = patron_profile_encode_into(p, out, PATRON_PROFILE_ENCODED_MAX, len);
    if (rc) {
        free(out);
        return rc;
    }
    *buf = patron_realloc(out, *len ? *len : 1);
    return 0;
}

/* Decoding reads the wire format itself (pb_unpack.h) instead of going
 * through protobuf-c, which walked descriptors and allocated every string
 * and sub-message only for us to copy them again. It accepts and rejects
 * exactly what protobuf-c's unpack followed by the checks below did, quirks
 * included (tests/unit/test_profile_codec.c holds that decoder as the
 * oracle). Strings are read as protobuf-c's NUL-terminated copies were,
 * through strlen: up to the first NUL byte. */

/* A string of the message, in the buffer: all its bytes until checked, then
 * those before its first NUL. */
struct text {
    const uint8_t *s;
    size_t len;
};

/* The message, checked as it is read, before anything of the profile is
 * written (decode leaves *p unchanged on failure). About 40 KiB of stack
 * for a full profile: strings stay in the buffer, only the hash lists are
 * copied (the ledger of counted events is 32 KiB of it). */
struct decoded {
    /* scalars and singular strings: zeroed before reading */
    struct text customer_id, time_zone, locale, birthday, country, anonymous_id, merged_into;
    int32_t merged_partition;
    int64_t orders, net_spend_cents, points, reviews, refunds;
    int64_t first_seen_ms, last_seen_ms, first_purchase_ms, last_purchase_ms;
    int64_t last_event_ms, cart_updated_ms;
    bool consent_sms, consent_push, consent_email, erased, has_source;
    struct patron_profile_mark source; /* field 22: the first mark */
    int64_t recent_floor_ms, consent_ms[3], customer_updated_ms, erased_at_ms;
    int32_t counted_floor_month;
    size_t n_months, n_categories, n_viewed, n_bought, n_cart, n_event_ids, n_bought_earlier;
    size_t n_event_ms, n_counted, n_more_marks, n_aliases;
    /* lists: written up to their count */
    struct patron_profile_month months[PATRON_PROFILE_MONTHS];
    struct {
        struct text category;
        double score;
        int64_t updated_ms;
    } categories[PATRON_PROFILE_CATEGORIES_MAX];
    struct text viewed[PATRON_PROFILE_VIEWED_MAX];
    struct text bought[PATRON_PROFILE_BOUGHT_MAX];
    struct {
        struct text item_id;
        int32_t quantity;
    } cart[PATRON_PROFILE_CART_MAX];
    uint64_t event_ids[PATRON_PROFILE_EVENT_IDS_MAX];
    int64_t event_ms[PATRON_PROFILE_EVENT_IDS_MAX];
    uint32_t bought_earlier[PATRON_PROFILE_BOUGHT_EARLIER_MAX];
    uint64_t counted[PATRON_PROFILE_COUNTED_MAX];
    struct patron_profile_mark more_marks[PATRON_PROFILE_MARKS_MAX];
    struct {
        struct text anonymous_id;
        struct patron_profile_alias a; /* but its anonymous_id */
    } aliases[PATRON_PROFILE_ALIASES_MAX];
};

static struct text text_of(const struct patron_pb_field *f)
{
    return (struct text){f->data, f->len};
}

/* At most max bytes of valid text; an id is also required. A value holding
 * a NUL is refused, never cut there (protobuf-c's copy read through strlen
 * did cut it: a stored id "victim\0x" read as "victim", another customer's
 * id); valid text has no NUL, so text that passes needs no search for one. */
static bool text_ok(const struct text *t, size_t max, bool required)
{
    if (t->len == 0)
        return !required;
    return t->len <= max && patron_event_text_valid((const char *)t->s, t->len);
}

static bool id_ok(const struct text *t)
{
    return text_ok(t, PATRON_ID_MAX, true);
}

/* protobuf-c stores a varint into an int32 field as its low 32 bits. */
static int32_t int32_of(uint64_t v)
{
    return (int32_t)(uint32_t)v;
}

/* The sub-messages. protobuf-c unpacks each occurrence on its own: fields
 * absent from it are zero, a field present twice keeps its last value, and
 * a field of the wrong wire type fails the whole message. */

static int month_read(const struct patron_pb_field *outer, struct patron_profile_month *m)
{
    const uint8_t *at = outer->data, *end = at + outer->len;
    m->month = 0;
    m->cents = 0;
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f))
            return PATRON_EINVAL;
        if (f.number == 1 || f.number == 2) {
            if (f.wire != PATRON_PB_VARINT)
                return PATRON_EINVAL;
            if (f.number == 1)
                m->month = int32_of(f.value);
            else
                m->cents = (int64_t)f.value;
        }
    }
    return 0;
}

static int category_read(const struct patron_pb_field *outer, struct text *category, double *score,
                         int64_t *updated_ms)
{
    const uint8_t *at = outer->data, *end = at + outer->len;
    *category = (struct text){NULL, 0};
    *score = 0;
    *updated_ms = 0;
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f))
            return PATRON_EINVAL;
        switch (f.number) {
        case 1:
            if (f.wire != PATRON_PB_LEN)
                return PATRON_EINVAL;
            *category = text_of(&f);
            break;
        case 2:
            if (f.wire != PATRON_PB_I64)
                return PATRON_EINVAL;
            memcpy(score, &f.value, sizeof(*score));
            break;
        case 3:
            if (f.wire != PATRON_PB_VARINT)
                return PATRON_EINVAL;
            *updated_ms = (int64_t)f.value;
            break;
        default:
            break;
        }
    }
    return 0;
}

static int cart_read(const struct patron_pb_field *outer, struct text *item_id, int32_t *quantity)
{
    const uint8_t *at = outer->data, *end = at + outer->len;
    *item_id = (struct text){NULL, 0};
    *quantity = 0;
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f))
            return PATRON_EINVAL;
        if (f.number == 1) {
            if (f.wire != PATRON_PB_LEN)
                return PATRON_EINVAL;
            *item_id = text_of(&f);
        } else if (f.number == 2) {
            if (f.wire != PATRON_PB_VARINT)
                return PATRON_EINVAL;
            *quantity = int32_of(f.value);
        }
    }
    return 0;
}

/* A SourcePosition. A second `source` replaces the first whole:
 * protobuf-c's merge of sub-messages keeps none of the earlier proto3
 * scalars (they have no presence to merge by), so absent fields of the
 * later one read as zero. */
static int position_read(const struct patron_pb_field *outer, struct patron_profile_mark *m)
{
    const uint8_t *at = outer->data, *end = at + outer->len;
    m->partition = 0;
    m->offset = 0;
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f))
            return PATRON_EINVAL;
        if (f.number == 1 || f.number == 2) {
            if (f.wire != PATRON_PB_VARINT)
                return PATRON_EINVAL;
            if (f.number == 1)
                m->partition = int32_of(f.value);
            else
                m->offset = (int64_t)f.value;
        }
    }
    return 0;
}

static int source_read(const struct patron_pb_field *outer, struct decoded *d)
{
    d->has_source = true;
    return position_read(outer, &d->source);
}

/* A MergedAlias: its id checked, at most PATRON_PROFILE_MARKS_MAX marks. */
static int alias_read(const struct patron_pb_field *outer, struct text *id,
                      struct patron_profile_alias *a)
{
    const uint8_t *at = outer->data, *end = at + outer->len;
    *id = (struct text){NULL, 0};
    memset(a, 0, sizeof(*a));
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f))
            return PATRON_EINVAL;
        int64_t *scalar = NULL;
        switch (f.number) {
        case 1:
            if (f.wire != PATRON_PB_LEN)
                return PATRON_EINVAL;
            *id = text_of(&f);
            continue;
        case 2:
            scalar = &a->merged_at_ms;
            break;
        case 3:
            scalar = &a->floor_ms;
            break;
        case 4:
            if (f.wire != PATRON_PB_LEN || a->n_marks == PATRON_PROFILE_MARKS_MAX ||
                position_read(&f, &a->marks[a->n_marks]))
                return PATRON_EINVAL;
            a->n_marks++;
            continue;
        case 5:
            scalar = &a->viewed;
            break;
        case 6:
            scalar = &a->cart_lines;
            break;
        case 7:
            scalar = &a->orders;
            break;
        default:
            continue;
        }
        if (f.wire != PATRON_PB_VARINT)
            return PATRON_EINVAL;
        *scalar = (int64_t)f.value;
    }
    return 0;
}

/* The values of one occurrence of a repeated fixed32 (width 4) or fixed64
 * (width 8) field: packed (one LEN of whole values) or one value;
 * occurrences concatenate. PATRON_EINVAL for another wire type or a packed
 * length that is not whole values. */
static int fixed_values(const struct patron_pb_field *f, size_t width, const uint8_t **v, size_t *n)
{
    if (f->wire == PATRON_PB_LEN) {
        if (f->len % width)
            return PATRON_EINVAL;
        *n = f->len / width;
        *v = f->data;
        return 0;
    }
    if (f->wire != (width == 8 ? PATRON_PB_I64 : PATRON_PB_I32))
        return PATRON_EINVAL;
    *n = 1;
    *v = f->raw;
    return 0;
}

/* Repeated fixed64 and fixed32 come packed (one LEN of whole values) or one
 * value per field; occurrences concatenate. */
static int event_ids_read(const struct patron_pb_field *f, struct decoded *d)
{
    size_t n;
    const uint8_t *v;
    if (fixed_values(f, 8, &v, &n) || n > PATRON_PROFILE_EVENT_IDS_MAX - d->n_event_ids)
        return PATRON_EINVAL;
    for (size_t i = 0; i < n; i++)
        d->event_ids[d->n_event_ids++] = patron_pb_unpack_le64(v + 8 * i);
    return 0;
}

/* Repeated int64 come packed (one LEN of varints) or one varint per field. */
static int event_ms_read(const struct patron_pb_field *f, struct decoded *d)
{
    if (f->wire == PATRON_PB_VARINT) {
        if (d->n_event_ms == PATRON_PROFILE_EVENT_IDS_MAX)
            return PATRON_EINVAL;
        d->event_ms[d->n_event_ms++] = (int64_t)f->value;
        return 0;
    }
    if (f->wire != PATRON_PB_LEN)
        return PATRON_EINVAL;
    const uint8_t *at = f->data, *end = f->data + f->len;
    while (at < end) {
        uint64_t v;
        if (d->n_event_ms == PATRON_PROFILE_EVENT_IDS_MAX ||
            patron_pb_unpack_varint(&at, end, 10, &v))
            return PATRON_EINVAL;
        d->event_ms[d->n_event_ms++] = (int64_t)v;
    }
    return 0;
}

/* The ledger of counted events: strictly ascending, as counted_add keeps it. */
static int counted_read(const struct patron_pb_field *f, struct decoded *d)
{
    size_t n;
    const uint8_t *v;
    if (fixed_values(f, 8, &v, &n) || n > PATRON_PROFILE_COUNTED_MAX - d->n_counted)
        return PATRON_EINVAL;
    for (size_t i = 0; i < n; i++) {
        uint64_t e = patron_pb_unpack_le64(v + 8 * i);
        size_t k = d->n_counted;
        if (k && e <= d->counted[k - 1])
            return PATRON_EINVAL;
        d->counted[k] = e;
        d->n_counted = k + 1;
    }
    return 0;
}

/* Strictly ascending, or the binary search would miss. */
static int bought_earlier_read(const struct patron_pb_field *f, struct decoded *d)
{
    size_t n;
    const uint8_t *v;
    if (fixed_values(f, 4, &v, &n) || n > PATRON_PROFILE_BOUGHT_EARLIER_MAX - d->n_bought_earlier)
        return PATRON_EINVAL;
    for (size_t i = 0; i < n; i++) {
        uint32_t h = patron_pb_unpack_le32(v + 4 * i);
        size_t k = d->n_bought_earlier;
        if (k && h <= d->bought_earlier[k - 1])
            return PATRON_EINVAL;
        d->bought_earlier[k] = h;
        d->n_bought_earlier = k + 1;
    }
    return 0;
}

/* One field of the ProfileState: last value wins for scalars (their checks
 * wait for the end), lists append and are checked element by element. */
static int field_read(const struct patron_pb_field *f, struct decoded *d)
{
    int64_t *scalar = NULL;
    struct text *str = NULL;
    bool *flag = NULL;
    switch (f->number) {
    case 1:
        str = &d->customer_id;
        break;
    case 2:
        scalar = &d->orders;
        break;
    case 3:
        scalar = &d->net_spend_cents;
        break;
    case 4:
        scalar = &d->points;
        break;
    case 5:
        scalar = &d->first_seen_ms;
        break;
    case 6:
        scalar = &d->last_seen_ms;
        break;
    case 7:
        scalar = &d->last_purchase_ms;
        break;
    case 8:
        scalar = &d->first_purchase_ms;
        break;
    case 9: {
        if (f->wire != PATRON_PB_LEN || d->n_months == PATRON_PROFILE_MONTHS)
            return PATRON_EINVAL;
        struct patron_profile_month *m = &d->months[d->n_months];
        if (month_read(f, m))
            return PATRON_EINVAL;
        /* ascending: the apply code inserts by order */
        if (d->n_months && m->month <= d->months[d->n_months - 1].month)
            return PATRON_EINVAL;
        d->n_months++;
        return 0;
    }
    case 10: {
        if (f->wire != PATRON_PB_LEN || d->n_categories == PATRON_PROFILE_CATEGORIES_MAX)
            return PATRON_EINVAL;
        size_t i = d->n_categories;
        if (category_read(f, &d->categories[i].category, &d->categories[i].score,
                          &d->categories[i].updated_ms) ||
            !id_ok(&d->categories[i].category) || !isfinite(d->categories[i].score))
            return PATRON_EINVAL;
        d->n_categories++;
        return 0;
    }
    case 11:
    case 12: {
        bool viewed = f->number == 11;
        size_t *n = viewed ? &d->n_viewed : &d->n_bought;
        if (f->wire != PATRON_PB_LEN ||
            *n == (viewed ? PATRON_PROFILE_VIEWED_MAX : PATRON_PROFILE_BOUGHT_MAX))
            return PATRON_EINVAL;
        struct text *t = &(viewed ? d->viewed : d->bought)[*n];
        *t = text_of(f);
        if (!id_ok(t))
            return PATRON_EINVAL;
        (*n)++;
        return 0;
    }
    case 13: {
        if (f->wire != PATRON_PB_LEN || d->n_cart == PATRON_PROFILE_CART_MAX)
            return PATRON_EINVAL;
        size_t i = d->n_cart;
        if (cart_read(f, &d->cart[i].item_id, &d->cart[i].quantity) ||
            !id_ok(&d->cart[i].item_id) || d->cart[i].quantity <= 0)
            return PATRON_EINVAL;
        d->n_cart++;
        return 0;
    }
    case 14:
        flag = &d->consent_sms;
        break;
    case 15:
        flag = &d->consent_push;
        break;
    case 16:
        flag = &d->consent_email;
        break;
    case 17:
        str = &d->time_zone;
        break;
    case 18:
        str = &d->locale;
        break;
    case 19:
        str = &d->birthday;
        break;
    case 20:
        str = &d->country;
        break;
    case 21:
        return event_ids_read(f, d);
    case 22:
        if (f->wire != PATRON_PB_LEN)
            return PATRON_EINVAL;
        return source_read(f, d);
    case 23:
        scalar = &d->reviews;
        break;
    case 24:
        scalar = &d->last_event_ms;
        break;
    case 25:
        scalar = &d->refunds;
        break;
    case 26:
        scalar = &d->cart_updated_ms;
        break;
    case 27:
        flag = &d->erased;
        break;
    case 28:
        return bought_earlier_read(f, d);
    case 29:
        return event_ms_read(f, d);
    case 30:
        scalar = &d->recent_floor_ms;
        break;
    case 31:
        return counted_read(f, d);
    case 32:
        if (f->wire != PATRON_PB_VARINT)
            return PATRON_EINVAL;
        d->counted_floor_month = int32_of(f->value);
        return 0;
    case 33:
    case 34:
    case 35:
        scalar = &d->consent_ms[f->number - 33];
        break;
    case 36:
        scalar = &d->customer_updated_ms;
        break;
    case 37:
        scalar = &d->erased_at_ms;
        break;
    case 38:
        str = &d->anonymous_id;
        break;
    case 39:
        str = &d->merged_into;
        break;
    case 40:
        if (f->wire != PATRON_PB_VARINT)
            return PATRON_EINVAL;
        d->merged_partition = int32_of(f->value);
        return 0;
    case 41: {
        if (f->wire != PATRON_PB_LEN || d->n_aliases == PATRON_PROFILE_ALIASES_MAX)
            return PATRON_EINVAL;
        size_t i = d->n_aliases;
        if (alias_read(f, &d->aliases[i].anonymous_id, &d->aliases[i].a) ||
            !id_ok(&d->aliases[i].anonymous_id))
            return PATRON_EINVAL;
        d->n_aliases++;
        return 0;
    }
    case 42:
        /* with `source`, at most PATRON_PROFILE_MARKS_MAX (checked at the end) */
        if (f->wire != PATRON_PB_LEN || d->n_more_marks == PATRON_PROFILE_MARKS_MAX ||
            position_read(f, &d->more_marks[d->n_more_marks]))
            return PATRON_EINVAL;
        d->n_more_marks++;
        return 0;
    default:
        return 0; /* unknown: skipped */
    }
    if (scalar) {
        if (f->wire != PATRON_PB_VARINT)
            return PATRON_EINVAL;
        *scalar = (int64_t)f->value;
    } else if (str) {
        if (f->wire != PATRON_PB_LEN)
            return PATRON_EINVAL;
        *str = text_of(f);
    } else {
        *flag = patron_pb_unpack_bool(f);
    }
    return 0;
}

/* A checked string into dst (room for it and its NUL). */
static void take(char *dst, struct text t)
{
    if (t.len)
        memcpy(dst, t.s, t.len);
    dst[t.len] = '\0';
}

/* Writes every field of p from a checked message (the lists' room beyond
 * their count is left as it was: nothing reads it). */
static void fill(struct patron_profile *p, const struct decoded *d)
{
    take(p->customer_id, d->customer_id);
    p->orders = d->orders;
    p->net_spend_cents = d->net_spend_cents;
    p->points = d->points;
    p->reviews = d->reviews;
    p->refunds = d->refunds;
    p->first_seen_ms = d->first_seen_ms;
    p->last_seen_ms = d->last_seen_ms;
    p->first_purchase_ms = d->first_purchase_ms;
    p->last_purchase_ms = d->last_purchase_ms;
    p->last_event_ms = d->last_event_ms;
    p->cart_updated_ms = d->cart_updated_ms;

    memcpy(p->months, d->months, d->n_months * sizeof(p->months[0]));
    p->n_months = d->n_months;
    for (size_t i = 0; i < d->n_categories; i++) {
        take(p->categories[i].category, d->categories[i].category);
        p->categories[i].score = d->categories[i].score;
        p->categories[i].updated_ms = d->categories[i].updated_ms;
    }
    p->n_categories = d->n_categories;
    for (size_t i = 0; i < d->n_viewed; i++)
        take(p->viewed[i], d->viewed[i]);
    p->n_viewed = d->n_viewed;
    for (size_t i = 0; i < d->n_bought; i++)
        take(p->bought[i], d->bought[i]);
    p->n_bought = d->n_bought;
    for (size_t i = 0; i < d->n_cart; i++) {
        take(p->cart[i].item_id, d->cart[i].item_id);
        p->cart[i].quantity = d->cart[i].quantity;
    }
    p->n_cart = d->n_cart;

    p->consent_sms = d->consent_sms;
    p->consent_push = d->consent_push;
    p->consent_email = d->consent_email;
    take(p->time_zone, d->time_zone);
    take(p->locale, d->locale);
    take(p->birthday, d->birthday);
    take(p->country, d->country);

    memcpy(p->event_ids, d->event_ids, d->n_event_ids * sizeof(p->event_ids[0]));
    /* a profile from before the times were kept: its ids as of no time */
    if (d->n_event_ms)
        memcpy(p->event_ms, d->event_ms, d->n_event_ms * sizeof(p->event_ms[0]));
    else
        memset(p->event_ms, 0, d->n_event_ids * sizeof(p->event_ms[0]));
    p->n_event_ids = d->n_event_ids;
    p->event_ids_floor_ms = d->recent_floor_ms;
    memcpy(p->counted, d->counted, d->n_counted * sizeof(p->counted[0]));
    p->n_counted = d->n_counted;
    p->counted_floor_month = d->counted_floor_month;
    memcpy(p->consent_ms, d->consent_ms, sizeof(p->consent_ms));
    p->customer_ms = d->customer_updated_ms;
    p->erased_at_ms = d->erased_at_ms;
    p->n_marks = 0;
    if (d->has_source)
        p->marks[p->n_marks++] = d->source;
    memcpy(&p->marks[p->n_marks], d->more_marks, d->n_more_marks * sizeof(d->more_marks[0]));
    p->n_marks += d->n_more_marks;
    take(p->anonymous_id, d->anonymous_id);
    take(p->merged_into, d->merged_into);
    p->merged_partition = d->merged_partition;
    for (size_t i = 0; i < d->n_aliases; i++) {
        p->aliases[i] = d->aliases[i].a;
        take(p->aliases[i].anonymous_id, d->aliases[i].anonymous_id);
    }
    p->n_aliases = d->n_aliases;
    p->erased = d->erased;
    memcpy(p->bought_earlier, d->bought_earlier,
           d->n_bought_earlier * sizeof(p->bought_earlier[0]));
    p->n_bought_earlier = d->n_bought_earlier;
}

int patron_profile_decode(struct patron_profile *p, const uint8_t *buf, size_t len)
{
    if (len > PATRON_PROFILE_ENCODED_MAX)
        return PATRON_ETOOBIG;
    static const uint8_t empty[1];
    if (!buf) {
        if (len)
            return PATRON_EINVAL;
        buf = empty;
    }
    struct decoded d;
    /* only the scalars: the lists are written before they are read */
    memset(&d, 0, offsetof(struct decoded, months));
    const uint8_t *at = buf, *end = buf + len;
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f) || field_read(&f, &d))
            return PATRON_EINVAL;
    }
    /* the times go with the ids, one each (or none: an older profile) */
    if (d.n_event_ms != 0 && d.n_event_ms != d.n_event_ids)
        return PATRON_EINVAL;
    if (d.counted_floor_month < 0)
        return PATRON_EINVAL;
    /* a customer's profile, or a visitor's: exactly one of the two ids;
     * only a visitor is merged into someone, only a customer has aliases */
    if (d.has_source + d.n_more_marks > PATRON_PROFILE_MARKS_MAX ||
        (d.n_more_marks && !d.has_source))
        return PATRON_EINVAL;
    bool visitor = d.customer_id.len == 0;
    if (visitor ? (!id_ok(&d.anonymous_id) || d.n_aliases)
                : (!id_ok(&d.customer_id) || d.anonymous_id.len || d.merged_into.len))
        return PATRON_EINVAL;
    if (!text_ok(&d.merged_into, PATRON_ID_MAX, false) ||
        !text_ok(&d.time_zone, PATRON_PROFILE_TIME_ZONE_MAX, false) ||
        !text_ok(&d.locale, PATRON_PROFILE_LOCALE_MAX, false) ||
        !text_ok(&d.birthday, PATRON_PROFILE_BIRTHDAY_LEN, false) ||
        !text_ok(&d.country, PATRON_PROFILE_COUNTRY_MAX, false))
        return PATRON_EINVAL;
    fill(p, &d);
    return 0;
}

int patron_profile_stored_decode(struct patron_profile *p, const void *value, size_t len,
                                 uint64_t *version)
{
    if (!value || len < PATRON_PROFILE_VERSION_LEN)
        return PATRON_EINVAL;
    int rc = patron_profile_decode(p, (const uint8_t *)value + PATRON_PROFILE_VERSION_LEN,
                                   len - PATRON_PROFILE_VERSION_LEN);
    if (rc == 0 && version)
        *version = patron_profile_version_get(value, len);
    return rc;
}

/* ---- identity at a glance ------------------------------------------------- */

static void peek_id(char dst[PATRON_ID_MAX + 1], const struct patron_pb_field *f)
{
    size_t n = f->len < PATRON_ID_MAX ? f->len : PATRON_ID_MAX;
    memcpy(dst, f->data, n);
    dst[n] = '\0';
}

int patron_profile_stored_peek(const void *value, size_t len, struct patron_profile_peek *out)
{
    memset(out, 0, sizeof(*out));
    if (!value || len < PATRON_PROFILE_VERSION_LEN || len > PATRON_PROFILE_ENCODED_MAX + 8)
        return PATRON_EINVAL;
    const uint8_t *at = (const uint8_t *)value + PATRON_PROFILE_VERSION_LEN,
                  *end = (const uint8_t *)value + len;
    bool customer = false;
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f))
            return PATRON_EINVAL;
        switch (f.number) {
        case 1:
            customer = f.wire == PATRON_PB_LEN && f.len > 0;
            break;
        case 38:
            break;
        case 39:
            if (f.wire != PATRON_PB_LEN)
                return PATRON_EINVAL;
            peek_id(out->merged_into, &f);
            break;
        case 40:
            if (f.wire != PATRON_PB_VARINT)
                return PATRON_EINVAL;
            out->merged_partition = int32_of(f.value);
            break;
        case 41: {
            out->contents = true;
            if (f.wire != PATRON_PB_LEN || out->n_aliases == PATRON_PROFILE_ALIASES_MAX)
                return PATRON_EINVAL;
            const uint8_t *in = f.data, *in_end = f.data + f.len;
            while (in < in_end) {
                struct patron_pb_field g;
                if (patron_pb_unpack_field(&in, in_end, &g))
                    return PATRON_EINVAL;
                if (g.number == 1 && g.wire == PATRON_PB_LEN)
                    peek_id(out->aliases[out->n_aliases], &g);
            }
            out->n_aliases++;
            break;
        }
        default:
            out->contents = true;
            break;
        }
    }
    out->visitor = !customer;
    return 0;
}
