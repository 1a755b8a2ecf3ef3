/* The stored form of a profile: protobuf patron.v1.ProfileState. proto3
 * leaves zero scalars and empty strings out, which keeps a typical customer
 * at a few hundred bytes. */
#include "patron/profile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/event_check.h"
#include "patron/pb_pack.h"
#include "patron/v1/profile.pb-c.h"

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
    Patron__V1__SourcePosition source;
};

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
        p->n_bought_earlier > PATRON_PROFILE_BOUGHT_EARLIER_MAX)
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
    if (p->has_source) {
        patron__v1__source_position__init(&s.source);
        s.source.partition = p->source_partition;
        s.source.offset = p->source_offset;
        m.source = &s.source;
    }
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

/* A string field: NULL reads as "". At most max bytes of valid text; an id
 * is also required. */
static bool text_ok(const char *src, size_t max, bool required)
{
    size_t len = src ? strlen(src) : 0;
    if (len == 0)
        return !required;
    return len <= max && patron_event_text_valid(src, len);
}

static bool id_ok(const char *src)
{
    return text_ok(src, PATRON_ID_MAX, true);
}

/* Everything decode rejects, checked before the profile is touched: the
 * profile is then written in place, without a scratch copy (a profile is
 * 12.5 KiB, mostly lists' room, and ingest decodes one per customer and
 * batch). */
static int check(const Patron__V1__ProfileState *m)
{
    if (!id_ok(m->customer_id))
        return PATRON_EINVAL;
    if (m->n_months > PATRON_PROFILE_MONTHS || m->n_categories > PATRON_PROFILE_CATEGORIES_MAX ||
        m->n_viewed > PATRON_PROFILE_VIEWED_MAX || m->n_bought > PATRON_PROFILE_BOUGHT_MAX ||
        m->n_cart > PATRON_PROFILE_CART_MAX ||
        m->n_recent_event_ids > PATRON_PROFILE_EVENT_IDS_MAX ||
        m->n_bought_earlier > PATRON_PROFILE_BOUGHT_EARLIER_MAX)
        return PATRON_EINVAL;
    /* months sorted: the apply code inserts by order */
    for (size_t i = 1; i < m->n_months; i++)
        if (m->months[i]->month <= m->months[i - 1]->month)
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_categories; i++)
        if (!id_ok(m->categories[i]->category) || !isfinite(m->categories[i]->score))
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_viewed; i++)
        if (!id_ok(m->viewed[i]))
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_bought; i++)
        if (!id_ok(m->bought[i]))
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_cart; i++)
        if (!id_ok(m->cart[i]->item_id) || m->cart[i]->quantity <= 0)
            return PATRON_EINVAL;
    if (!text_ok(m->time_zone, PATRON_PROFILE_TIME_ZONE_MAX, false) ||
        !text_ok(m->locale, PATRON_PROFILE_LOCALE_MAX, false) ||
        !text_ok(m->birthday, PATRON_PROFILE_BIRTHDAY_LEN, false) ||
        !text_ok(m->country, PATRON_PROFILE_COUNTRY_MAX, false))
        return PATRON_EINVAL;
    /* strictly ascending, or the binary search would miss */
    for (size_t i = 1; i < m->n_bought_earlier; i++)
        if (m->bought_earlier[i] <= m->bought_earlier[i - 1])
            return PATRON_EINVAL;
    return 0;
}

/* A checked string into dst (room for it and its NUL). */
static void take(char *dst, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Writes every field of p from a checked message (the lists' room beyond
 * their count is left as it was: nothing reads it). */
static void fill(struct patron_profile *p, const Patron__V1__ProfileState *m)
{
    take(p->customer_id, m->customer_id);
    p->orders = m->orders;
    p->net_spend_cents = m->net_spend_cents;
    p->points = m->points;
    p->reviews = m->reviews;
    p->refunds = m->refunds;
    p->first_seen_ms = m->first_seen_ms;
    p->last_seen_ms = m->last_seen_ms;
    p->first_purchase_ms = m->first_purchase_ms;
    p->last_purchase_ms = m->last_purchase_ms;
    p->last_event_ms = m->last_event_ms;
    p->cart_updated_ms = m->cart_updated_ms;

    for (size_t i = 0; i < m->n_months; i++) {
        p->months[i].month = m->months[i]->month;
        p->months[i].cents = m->months[i]->cents;
    }
    p->n_months = m->n_months;
    for (size_t i = 0; i < m->n_categories; i++) {
        take(p->categories[i].category, m->categories[i]->category);
        p->categories[i].score = m->categories[i]->score;
        p->categories[i].updated_ms = m->categories[i]->updated_ms;
    }
    p->n_categories = m->n_categories;
    for (size_t i = 0; i < m->n_viewed; i++)
        take(p->viewed[i], m->viewed[i]);
    p->n_viewed = m->n_viewed;
    for (size_t i = 0; i < m->n_bought; i++)
        take(p->bought[i], m->bought[i]);
    p->n_bought = m->n_bought;
    for (size_t i = 0; i < m->n_cart; i++) {
        take(p->cart[i].item_id, m->cart[i]->item_id);
        p->cart[i].quantity = m->cart[i]->quantity;
    }
    p->n_cart = m->n_cart;

    p->consent_sms = m->consent_sms != 0;
    p->consent_push = m->consent_push != 0;
    p->consent_email = m->consent_email != 0;
    take(p->time_zone, m->time_zone);
    take(p->locale, m->locale);
    take(p->birthday, m->birthday);
    take(p->country, m->country);

    if (m->n_recent_event_ids)
        memcpy(p->event_ids, m->recent_event_ids, m->n_recent_event_ids * sizeof(p->event_ids[0]));
    p->n_event_ids = m->n_recent_event_ids;
    p->has_source = m->source != NULL;
    p->source_partition = m->source ? m->source->partition : 0;
    p->source_offset = m->source ? m->source->offset : 0;
    p->erased = m->erased != 0;
    if (m->n_bought_earlier)
        memcpy(p->bought_earlier, m->bought_earlier,
               m->n_bought_earlier * sizeof(p->bought_earlier[0]));
    p->n_bought_earlier = m->n_bought_earlier;
}

/* The unpacked message lives only inside patron_profile_decode: its many
 * small allocations come from a stack buffer (malloc beyond it), which takes
 * malloc off a hot path of ingest. */
#define DECODE_STACK_BYTES 16384

struct decode_arena {
    max_align_t buf[DECODE_STACK_BYTES / sizeof(max_align_t)];
    size_t used;
};

static void *decode_alloc(void *ud, size_t n)
{
    struct decode_arena *a = ud;
    size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (need < n || sizeof(a->buf) - a->used < need)
        return malloc(n);
    void *p = (char *)a->buf + a->used;
    a->used += need;
    return p;
}

static void decode_free(void *ud, void *p)
{
    struct decode_arena *a = ud;
    uintptr_t at = (uintptr_t)p, start = (uintptr_t)a->buf;
    if (at < start || at >= start + sizeof(a->buf))
        free(p);
}

int patron_profile_decode(struct patron_profile *p, const uint8_t *buf, size_t len)
{
    if (len > PATRON_PROFILE_ENCODED_MAX)
        return PATRON_ETOOBIG;
    static const uint8_t empty[1];
    struct decode_arena arena;
    arena.used = 0;
    ProtobufCAllocator alloc = {decode_alloc, decode_free, &arena};
    Patron__V1__ProfileState *m = patron__v1__profile_state__unpack(&alloc, len, buf ? buf : empty);
    if (!m)
        return PATRON_EINVAL;
    int rc = check(m);
    if (rc == 0)
        fill(p, m);
    patron__v1__profile_state__free_unpacked(m, &alloc);
    return rc;
}
