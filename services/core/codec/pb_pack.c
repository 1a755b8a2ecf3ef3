/*
 * Protobuf's wire format, written by hand for ProfileState and ProfileUpdate
 * (see pb_pack.h). proto3 rules, as protobuf-c applies them: fields in
 * number order; a scalar or string equal to its zero value is left out;
 * repeated scalars are packed; a nested message is written when present,
 * even empty; a negative int32 or enum is a ten-byte varint.
 */
#include "patron/pb_pack.h"

#include <string.h>

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

/* Room for a nested message of ours (a MergedAlias with all its marks is
 * the largest, about 300 bytes). */
#define NESTED_MAX 512

struct writer {
    uint8_t *p, *end;
    bool full; /* something did not fit */
};

static bool room(struct writer *w, size_t n)
{
    if (w->full || (size_t)(w->end - w->p) < n) {
        w->full = true;
        return false;
    }
    return true;
}

static void varint(struct writer *w, uint64_t v)
{
    size_t n = 1;
    for (uint64_t x = v; x >= 0x80; x >>= 7)
        n++;
    if (!room(w, n))
        return;
    while (v >= 0x80) {
        *w->p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w->p++ = (uint8_t)v;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void tag(struct writer *w, unsigned field, unsigned wire)
{
    varint(w, (uint64_t)field << 3 | wire);
}

static void bytes(struct writer *w, const void *b, size_t n)
{
    if (n && room(w, n)) {
        memcpy(w->p, b, n);
        w->p += n;
    }
}

static void fixed64(struct writer *w, uint64_t v)
{
    if (!room(w, 8))
        return;
    for (int i = 0; i < 8; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

static void fixed32(struct writer *w, uint32_t v)
{
    if (!room(w, 4))
        return;
    for (int i = 0; i < 4; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

/* int64, and int32/enum sign-extended, as varints; zero left out */
static void f_int(struct writer *w, unsigned field, int64_t v)
{
    if (v == 0)
        return;
    tag(w, field, WIRE_VARINT);
    varint(w, (uint64_t)v);
}

static void f_bool(struct writer *w, unsigned field, protobuf_c_boolean v)
{
    if (!v)
        return;
    tag(w, field, WIRE_VARINT);
    varint(w, 1);
}

/* A string; NULL or "" left out (protobuf-c treats both as empty). */
static void f_string(struct writer *w, unsigned field, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return;
    tag(w, field, WIRE_LEN);
    varint(w, n);
    bytes(w, s, n);
}

/* A repeated string: every element written, "" included. */
static void r_string(struct writer *w, unsigned field, char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = v[i] ? strlen(v[i]) : 0;
        tag(w, field, WIRE_LEN);
        varint(w, len);
        bytes(w, v[i], len);
    }
}

static void f_double(struct writer *w, unsigned field, double v)
{
    if (v == 0.0)
        return;
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    tag(w, field, WIRE_I64);
    fixed64(w, bits);
}

/* A nested message, written into its own buffer first for its length. */
static void f_nested(struct writer *w, unsigned field, const struct writer *inner,
                     const uint8_t *start)
{
    if (inner->full) {
        w->full = true;
        return;
    }
    size_t n = (size_t)(inner->p - start);
    tag(w, field, WIRE_LEN);
    varint(w, n);
    bytes(w, start, n);
}

static int finish(const struct writer *w, const uint8_t *out, size_t *len)
{
    if (w->full)
        return PATRON_ETOOBIG;
    *len = (size_t)(w->p - out);
    return 0;
}

int patron_pb_pack_profile_state(const Patron__V1__ProfileState *m, uint8_t *out, size_t cap,
                                 size_t *len)
{
    struct writer w = {out, out + cap, false};
    uint8_t buf[NESTED_MAX];
    struct writer in;

    f_string(&w, 1, m->customer_id);
    f_int(&w, 2, m->orders);
    f_int(&w, 3, m->net_spend_cents);
    f_int(&w, 4, m->points);
    f_int(&w, 5, m->first_seen_ms);
    f_int(&w, 6, m->last_seen_ms);
    f_int(&w, 7, m->last_purchase_ms);
    f_int(&w, 8, m->first_purchase_ms);
    for (size_t i = 0; i < m->n_months; i++) {
        in = (struct writer){buf, buf + sizeof(buf), false};
        f_int(&in, 1, m->months[i]->month);
        f_int(&in, 2, m->months[i]->cents);
        f_nested(&w, 9, &in, buf);
    }
    for (size_t i = 0; i < m->n_categories; i++) {
        in = (struct writer){buf, buf + sizeof(buf), false};
        f_string(&in, 1, m->categories[i]->category);
        f_double(&in, 2, m->categories[i]->score);
        f_int(&in, 3, m->categories[i]->updated_ms);
        f_nested(&w, 10, &in, buf);
    }
    r_string(&w, 11, m->viewed, m->n_viewed);
    r_string(&w, 12, m->bought, m->n_bought);
    for (size_t i = 0; i < m->n_cart; i++) {
        in = (struct writer){buf, buf + sizeof(buf), false};
        f_string(&in, 1, m->cart[i]->item_id);
        f_int(&in, 2, m->cart[i]->quantity);
        f_nested(&w, 13, &in, buf);
    }
    f_bool(&w, 14, m->consent_sms);
    f_bool(&w, 15, m->consent_push);
    f_bool(&w, 16, m->consent_email);
    f_string(&w, 17, m->time_zone);
    f_string(&w, 18, m->locale);
    f_string(&w, 19, m->birthday);
    f_string(&w, 20, m->country);
    if (m->n_recent_event_ids) {
        tag(&w, 21, WIRE_LEN);
        varint(&w, 8 * m->n_recent_event_ids);
        for (size_t i = 0; i < m->n_recent_event_ids; i++)
            fixed64(&w, m->recent_event_ids[i]);
    }
    if (m->source) {
        in = (struct writer){buf, buf + sizeof(buf), false};
        f_int(&in, 1, m->source->partition);
        f_int(&in, 2, m->source->offset);
        f_nested(&w, 22, &in, buf);
    }
    f_int(&w, 23, m->reviews);
    f_int(&w, 24, m->last_event_ms);
    f_int(&w, 25, m->refunds);
    f_int(&w, 26, m->cart_updated_ms);
    f_bool(&w, 27, m->erased);
    if (m->n_bought_earlier) {
        tag(&w, 28, WIRE_LEN);
        varint(&w, 4 * m->n_bought_earlier);
        for (size_t i = 0; i < m->n_bought_earlier; i++)
            fixed32(&w, m->bought_earlier[i]);
    }
    if (m->n_recent_event_ms) {
        size_t n = 0;
        for (size_t i = 0; i < m->n_recent_event_ms; i++)
            n += varint_size((uint64_t)m->recent_event_ms[i]);
        tag(&w, 29, WIRE_LEN);
        varint(&w, n);
        for (size_t i = 0; i < m->n_recent_event_ms; i++)
            varint(&w, (uint64_t)m->recent_event_ms[i]);
    }
    f_int(&w, 30, m->recent_floor_ms);
    if (m->n_counted_events) {
        tag(&w, 31, WIRE_LEN);
        varint(&w, 8 * m->n_counted_events);
        for (size_t i = 0; i < m->n_counted_events; i++)
            fixed64(&w, m->counted_events[i]);
    }
    f_int(&w, 32, m->counted_floor_month);
    f_int(&w, 33, m->consent_sms_ms);
    f_int(&w, 34, m->consent_push_ms);
    f_int(&w, 35, m->consent_email_ms);
    f_int(&w, 36, m->customer_updated_ms);
    f_int(&w, 37, m->erased_at_ms);
    f_string(&w, 38, m->anonymous_id);
    f_string(&w, 39, m->merged_into);
    f_int(&w, 40, m->merged_partition);
    for (size_t i = 0; i < m->n_aliases; i++) {
        const Patron__V1__MergedAlias *a = m->aliases[i];
        in = (struct writer){buf, buf + sizeof(buf), false};
        f_string(&in, 1, a->anonymous_id);
        f_int(&in, 2, a->merged_at_ms);
        f_int(&in, 3, a->floor_ms);
        for (size_t k = 0; k < a->n_marks; k++) {
            uint8_t mbuf[32];
            struct writer mw = {mbuf, mbuf + sizeof(mbuf), false};
            f_int(&mw, 1, a->marks[k]->partition);
            f_int(&mw, 2, a->marks[k]->offset);
            f_nested(&in, 4, &mw, mbuf);
        }
        f_int(&in, 5, a->viewed);
        f_int(&in, 6, a->cart_lines);
        f_int(&in, 7, a->orders);
        f_nested(&w, 41, &in, buf);
    }
    for (size_t i = 0; i < m->n_more_sources; i++) {
        in = (struct writer){buf, buf + sizeof(buf), false};
        f_int(&in, 1, m->more_sources[i]->partition);
        f_int(&in, 2, m->more_sources[i]->offset);
        f_nested(&w, 42, &in, buf);
    }
    return finish(&w, out, len);
}

int patron_pb_pack_profile_update(const Patron__V1__ProfileUpdate *m, uint8_t *out, size_t cap,
                                  size_t *len)
{
    struct writer w = {out, out + cap, false};
    f_string(&w, 1, m->customer_id);
    f_string(&w, 2, m->event_id);
    f_int(&w, 3, (int32_t)m->kind);
    f_int(&w, 4, m->occurred_at_ms);
    f_bool(&w, 5, m->replayed);
    r_string(&w, 6, m->item_ids, m->n_item_ids);
    f_int(&w, 7, m->value_cents);
    f_string(&w, 8, m->tier);
    f_string(&w, 9, m->previous_tier);
    f_string(&w, 10, m->segment);
    f_string(&w, 11, m->previous_segment);
    f_int(&w, 12, m->orders);
    f_int(&w, 13, m->net_spend_cents);
    f_int(&w, 14, m->points);
    f_int(&w, 15, m->last_purchase_ms);
    f_bool(&w, 16, m->consent_sms);
    f_bool(&w, 17, m->consent_push);
    f_bool(&w, 18, m->consent_email);
    f_string(&w, 19, m->time_zone);
    f_string(&w, 20, m->locale);
    f_string(&w, 21, m->birthday);
    f_int(&w, 22, (int32_t)m->consent_channel);
    f_bool(&w, 23, m->consent_granted);
    f_int(&w, 24, m->partition);
    f_int(&w, 25, m->offset);
    f_bool(&w, 26, m->fanout);
    f_int(&w, 27, m->first_purchase_ms);
    f_string(&w, 30, m->anonymous_id);
    return finish(&w, out, len);
}
