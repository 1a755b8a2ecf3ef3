/*
 * The stored form of a customer's campaign state: round trips of states the
 * engine filled itself (fixture_campaigns.h), and what decoding refuses or
 * cuts: garbage, truncation, sizes and lists over their bounds, extreme
 * times, unknown kinds.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/campaign_state_codec.h"
#include "fixture_campaigns.h"

PATRON_LEAK_CHECKED_SUITE(campaign_state_codec);

/* ---- the stored state ----------------------------------------------------------------- */

/* A state with every list filled by the engine itself. */
static void busy_customer(struct fx *f)
{
    Patron__V1__ProfileUpdate u = upd(f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
    u.birthday = "07-20";
    u.tier = "gold";
    u.points = -7;
    fx_apply(f, &u);
    u = upd(f, "b1", PATRON__V1__EVENT_KIND__CUSTOMER, T + MIN);
    u.birthday = "07-20";
    u.tier = "gold";
    fx_apply(f, &u);
    u = upd(f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T + 2 * MIN);
    u.birthday = "07-20";
    fx_apply(f, &u);
    u = upd(f, "v1", PATRON__V1__EVENT_KIND__VIEW, T + 3 * H);
    u.birthday = "07-20";
    fx_apply(f, &u);
    cr_assert_eq(fx_n_timers(f), 4);
    cr_assert_geq(f->st.n_sends, 2);
    cr_assert_geq(f->st.n_touches, 2);
    cr_assert_geq(f->st.n_last_sent, 1);
    cr_assert_geq(f->st.n_ledger, 2);
    cr_assert_eq(f->st.n_recent, 4);
}

static void expect_same_state(const struct patron_customer_state *a,
                              const struct patron_customer_state *b)
{
    cr_expect_str_eq(a->customer_id, b->customer_id);
    cr_expect_eq(a->last_offset, b->last_offset);
    cr_assert_eq(a->n_recent, b->n_recent);
    for (size_t i = 0; i < a->n_recent; i++)
        cr_expect_eq(a->recent_events[i], b->recent_events[i]);
    cr_assert_eq(a->n_ledger, b->n_ledger);
    for (size_t i = 0; i < a->n_ledger; i++)
        cr_expect_eq(a->ledger[i], b->ledger[i]);
    cr_expect_str_eq(a->segment, b->segment);
    cr_expect_str_eq(a->tier, b->tier);
    for (int c = 1; c < PATRON_CAMPAIGN_CHANNELS; c++)
        cr_expect_eq(a->consent[c], b->consent[c]);
    cr_expect_str_eq(a->time_zone, b->time_zone);
    cr_expect_str_eq(a->locale, b->locale);
    cr_expect_str_eq(a->birthday, b->birthday);
    cr_expect_eq(a->points, b->points);
    cr_expect_eq(a->orders, b->orders);
    cr_expect_eq(a->net_spend_cents, b->net_spend_cents);
    cr_expect_eq(a->last_purchase_ms, b->last_purchase_ms);
    cr_expect_eq(a->first_purchase_ms, b->first_purchase_ms);
    cr_assert_eq(a->n_timers, b->n_timers);
    for (size_t i = 0; i < a->n_timers; i++) {
        cr_expect_str_eq(a->timers[i].campaign_id, b->timers[i].campaign_id);
        cr_expect_eq(a->timers[i].kind, b->timers[i].kind);
        cr_expect_eq(a->timers[i].fire_at_ms, b->timers[i].fire_at_ms);
        cr_expect_eq(a->timers[i].trigger_at_ms, b->timers[i].trigger_at_ms);
        cr_expect_str_eq(a->timers[i].trigger_event_id, b->timers[i].trigger_event_id);
    }
    cr_assert_eq(a->n_sends, b->n_sends);
    for (size_t i = 0; i < a->n_sends; i++) {
        cr_expect_eq(a->sends[i].at_ms, b->sends[i].at_ms);
        cr_expect_eq(a->sends[i].channel, b->sends[i].channel);
    }
    cr_assert_eq(a->n_last_sent, b->n_last_sent);
    for (size_t i = 0; i < a->n_last_sent; i++) {
        cr_expect_str_eq(a->last_sent[i].campaign_id, b->last_sent[i].campaign_id);
        cr_expect_eq(a->last_sent[i].at_ms, b->last_sent[i].at_ms);
    }
    cr_assert_eq(a->n_touches, b->n_touches);
    for (size_t i = 0; i < a->n_touches; i++) {
        cr_expect_str_eq(a->touches[i].campaign_id, b->touches[i].campaign_id);
        cr_expect_str_eq(a->touches[i].variant, b->touches[i].variant);
        cr_expect_eq(a->touches[i].at_ms, b->touches[i].at_ms);
        cr_expect_eq(a->touches[i].control, b->touches[i].control);
        cr_expect_eq(a->touches[i].converted, b->touches[i].converted);
    }
}

Test(campaign_state_codec, round_trip)
{
    struct fx f;
    fx_open(&f, example, false);
    busy_customer(&f);
    f.st.first_purchase_ms = T - 30 * DAY;
    f.st.touches[0].converted = true;
    f.st.consent[PATRON_CAMPAIGN_CHANNEL_SMS] = false;
    uint8_t *buf = NULL;
    size_t len = patron_customer_state_encode(&f.st, &buf);
    cr_assert_gt(len, 0);
    cr_assert_leq(len, PATRON_ENGINE_STATE_MAX);
    struct patron_customer_state back;
    cr_assert_eq(patron_customer_state_decode(&back, buf, len), 0);
    expect_same_state(&f.st, &back);
    uint8_t *again = NULL;
    size_t len2 = patron_customer_state_encode(&back, &again);
    cr_expect(len2 == len && memcmp(buf, again, len) == 0, "re-encoding gives the same bytes");
    free(again);
    free(buf);
    patron_customer_state_free(&back);

    /* a fresh state too, with its "no offset yet" */
    struct patron_customer_state fresh;
    patron_customer_state_init(&fresh, "c1");
    len = patron_customer_state_encode(&fresh, &buf);
    cr_assert_eq(patron_customer_state_decode(&back, buf, len), 0);
    expect_same_state(&fresh, &back);
    cr_expect_eq(back.last_offset, -1);
    free(buf);
    patron_customer_state_free(&back);
    patron_customer_state_free(&fresh);
    fx_close(&f);
}

/* The shell stores the state after every update; what was decided before
 * storing must go on after loading. */
Test(campaign_state_codec, stored_state_goes_on_the_same)
{
    struct fx f, g;
    fx_open(&f, example, false);
    fx_open(&g, example, false);
    busy_customer(&f);
    busy_customer(&g);
    uint8_t *buf = NULL;
    size_t len = patron_customer_state_encode(&g.st, &buf);
    patron_customer_state_free(&g.st);
    cr_assert_eq(patron_customer_state_decode(&g.st, buf, len), 0);
    free(buf);
    fx_forget(&f);
    fx_forget(&g);
    fx_fire(&f, T + 400 * DAY);
    fx_fire(&g, T + 400 * DAY);
    cr_assert_gt(f.n_sent, 2);
    cr_assert_eq(g.n_sent, f.n_sent);
    for (size_t i = 0; i < f.n_sent; i++) {
        cr_expect_str_eq(g.sent[i].campaign, f.sent[i].campaign);
        cr_expect_eq(g.sent[i].at, f.sent[i].at);
        cr_expect_str_eq(g.sent[i].message_id, f.sent[i].message_id);
    }
    cr_expect_eq(g.n_counts, f.n_counts);
    fx_close(&g);
    fx_close(&f);
}

struct night_case {
    const char *campaign;
    Patron__V1__EventKind kind;
    const char *segment, *previous_segment;
};

/* A decision taken at once but delayed by quiet hours waits in a timer: it
 * must survive storing and loading like any other. */
Test(campaign_state_codec, delayed_immediate_decision_survives_storage_table)
{
    const int64_t night = utc(2026, 7, 1, 22, 0), morning = utc(2026, 7, 2, 8, 0);
    const struct night_case cases[] = {
        {CROSS, PATRON__V1__EVENT_KIND__PURCHASE, "new", "new"},
        {ATRISK, PATRON__V1__EVENT_KIND__REFUND, "at_risk", "loyal"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct night_case *c = &cases[i];
        struct fx f;
        fx_open(&f, example, false);
        Patron__V1__ProfileUpdate u = upd(&f, "e1", c->kind, night);
        u.segment = (char *)c->segment;
        u.previous_segment = (char *)c->previous_segment;
        fx_apply(&f, &u);
        cr_expect_eq(fx_decisions(&f, c->campaign), 0, "row %zu: delayed", i);
        const struct patron_engine_timer *t = fx_timer(&f, c->campaign);
        cr_assert_not_null(t, "row %zu", i);
        cr_expect_eq(t->fire_at_ms, morning, "row %zu", i);
        uint8_t *buf = NULL;
        size_t len = patron_customer_state_encode(&f.st, &buf);
        patron_customer_state_free(&f.st);
        cr_assert_eq(patron_customer_state_decode(&f.st, buf, len), 0);
        free(buf);
        cr_expect_not_null(fx_timer(&f, c->campaign),
                           "row %zu: %s's delayed decision lost in storage", i, c->campaign);
        fx_fire(&f, morning);
        cr_expect_eq(fx_sends_of(&f, c->campaign), 1, "row %zu: %s not sent after loading", i,
                     c->campaign);
        fx_close(&f);
    }
}

struct garbage_case {
    const char *bytes;
    size_t len;
};

#define G(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

Test(campaign_state_codec, garbage_is_rejected_table)
{
    const struct garbage_case cases[] = {
        G("\xff"),     /* a tag cut short */
        G("\x0f"),     /* wire type 7 */
        G("\x0e\x01"), /* wire type 6 */
        G("\x0a\x10"
          "abc"),                                              /* a string longer than the rest */
        G("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), /* an 11-byte varint */
        G("\x8a\x01\x05\x0a"),                                 /* a timer cut short */
        G("\x8a\x01\x02\x10\xff"),                             /* a varint cut inside a timer */
        G("\x92\x01\x03\x08\x01\x0f"),                         /* a bad tag inside a send */
        G("\x00\x00"),                                         /* field number 0 */
        G("\x19\x01\x02\x03"),                                 /* a fixed64 cut short */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        struct patron_customer_state st;
        cr_expect_eq(patron_customer_state_decode(&st, cases[i].bytes, cases[i].len), PATRON_EINVAL,
                     "row %zu", i);
        cr_expect_eq(st.n_timers, 0, "row %zu", i);
        patron_customer_state_free(&st);
    }
}

Test(campaign_state_codec, truncated_bytes)
{
    struct fx f;
    fx_open(&f, example, false);
    busy_customer(&f);
    uint8_t *buf = NULL;
    size_t len = patron_customer_state_encode(&f.st, &buf);
    struct patron_customer_state st;
    /* the last field is a touch: any cut inside it fails */
    cr_expect_eq(patron_customer_state_decode(&st, buf, len - 1), PATRON_EINVAL);
    patron_customer_state_free(&st);
    /* any prefix either fails or decodes to a bounded state, never worse */
    size_t failed = 0;
    for (size_t n = 0; n < len; n++) {
        int rc = patron_customer_state_decode(&st, buf, n);
        cr_expect(rc == 0 || rc == PATRON_EINVAL, "prefix %zu: %d", n, rc);
        failed += rc != 0;
        cr_expect_leq(st.n_timers, f.st.n_timers);
        cr_expect_leq(st.n_touches, f.st.n_touches);
        patron_customer_state_free(&st);
    }
    cr_expect_gt(failed, len / 2, "%zu of %zu prefixes failed", failed, len);
    free(buf);
    fx_close(&f);
}

Test(campaign_state_codec, over_the_maximum_is_too_big)
{
    uint8_t *big = patron_calloc(PATRON_ENGINE_STATE_MAX + 1, 1);
    struct patron_customer_state st;
    cr_expect_eq(patron_customer_state_decode(&st, big, PATRON_ENGINE_STATE_MAX + 1),
                 PATRON_ETOOBIG);
    patron_customer_state_free(&st);
    /* at the maximum it is only garbage (field number 0) */
    cr_expect_eq(patron_customer_state_decode(&st, big, PATRON_ENGINE_STATE_MAX), PATRON_EINVAL);
    patron_customer_state_free(&st);
    /* a valid message padded over the maximum is refused before parsing */
    memset(big, 0, PATRON_ENGINE_STATE_MAX + 1);
    size_t n = 0;
    big[n++] = 0x0a; /* customer_id, a string of 2^18 - 4 bytes: 3-byte length */
    size_t slen = PATRON_ENGINE_STATE_MAX + 1 - 4;
    big[n++] = (uint8_t)(0x80 | (slen & 0x7f));
    big[n++] = (uint8_t)(0x80 | ((slen >> 7) & 0x7f));
    big[n++] = (uint8_t)(slen >> 14);
    memset(big + n, 'a', slen);
    cr_expect_eq(patron_customer_state_decode(&st, big, PATRON_ENGINE_STATE_MAX + 1),
                 PATRON_ETOOBIG);
    patron_customer_state_free(&st);
    free(big);
}

/* A TriggerState with every list over its bound, built with protobuf-c. */
struct oversize {
    Patron__V1__TriggerState m;
    uint64_t recent[3 * PATRON_ENGINE_RECENT_EVENTS];
    uint64_t ledger[3 * PATRON_ENGINE_LEDGER_MAX];
    Patron__V1__TriggerTimer timers[PATRON_CAMPAIGNS_MAX + 200];
    Patron__V1__TriggerTimer *timer_ptrs[PATRON_CAMPAIGNS_MAX + 200];
    char timer_ids[PATRON_CAMPAIGNS_MAX + 200][16];
    Patron__V1__TriggerSend sends[PATRON_SEND_HISTORY_MAX + 44];
    Patron__V1__TriggerSend *send_ptrs[PATRON_SEND_HISTORY_MAX + 44];
    Patron__V1__TriggerLastSent last[PATRON_CAMPAIGNS_MAX + 200];
    Patron__V1__TriggerLastSent *last_ptrs[PATRON_CAMPAIGNS_MAX + 200];
    Patron__V1__TriggerTouch touches[PATRON_ENGINE_TOUCHES_MAX + 36];
    Patron__V1__TriggerTouch *touch_ptrs[PATRON_ENGINE_TOUCHES_MAX + 36];
    char long_string[300];
};

/* Times grow with the index: the lists' last entries are the most recent. */
static uint8_t *oversize_pack(size_t *len)
{
    struct oversize *o = patron_calloc(1, sizeof(*o));
    /* strings at their fields' limits (one more byte refuses the state:
     * strings_that_do_not_fit_are_refused_table) */
    memset(o->long_string, 'z', 7);
    patron__v1__trigger_state__init(&o->m);
    o->m.customer_id = o->long_string;
    o->m.last_offset = 77;
    o->m.time_zone = o->long_string;
    o->m.segment = o->long_string;
    o->m.birthday = o->long_string;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(o->recent); i++)
        o->recent[i] = 1000 + i;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(o->ledger); i++)
        o->ledger[i] = 5000 + i;
    o->m.n_recent_event_ids = PATRON_ARRAY_LEN(o->recent);
    o->m.recent_event_ids = o->recent;
    o->m.n_ledger = PATRON_ARRAY_LEN(o->ledger);
    o->m.ledger = o->ledger;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(o->timers); i++) {
        patron__v1__trigger_timer__init(&o->timers[i]);
        snprintf(o->timer_ids[i], sizeof(o->timer_ids[i]), "camp-%zu", i);
        o->timers[i].campaign_id = i == 0 ? o->long_string : o->timer_ids[i];
        o->timers[i].kind = PATRON_TIMER_WAIT;
        o->timers[i].fire_at_ms = T + (int64_t)i;
        o->timers[i].trigger_at_ms = T + (int64_t)i;
        o->timers[i].trigger_event_id = i == 0 ? o->long_string : o->timer_ids[i];
        o->timer_ptrs[i] = &o->timers[i];
    }
    o->m.n_timers = PATRON_ARRAY_LEN(o->timers);
    o->m.timers = o->timer_ptrs;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(o->sends); i++) {
        patron__v1__trigger_send__init(&o->sends[i]);
        o->sends[i].at_ms = T + (int64_t)i;
        o->sends[i].channel = PUSH;
        o->send_ptrs[i] = &o->sends[i];
    }
    o->m.n_sends = PATRON_ARRAY_LEN(o->sends);
    o->m.sends = o->send_ptrs;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(o->last); i++) {
        patron__v1__trigger_last_sent__init(&o->last[i]);
        o->last[i].campaign_id = o->timer_ids[i];
        o->last[i].at_ms = T + (int64_t)i;
        o->last_ptrs[i] = &o->last[i];
    }
    o->m.n_last_sent = PATRON_ARRAY_LEN(o->last);
    o->m.last_sent = o->last_ptrs;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(o->touches); i++) {
        patron__v1__trigger_touch__init(&o->touches[i]);
        o->touches[i].campaign_id = i == 0 ? o->long_string : o->timer_ids[i];
        o->touches[i].variant = i == 0 ? o->long_string : "A";
        o->touches[i].at_ms = T + (int64_t)i;
        o->touch_ptrs[i] = &o->touches[i];
    }
    o->m.n_touches = PATRON_ARRAY_LEN(o->touches);
    o->m.touches = o->touch_ptrs;
    *len = patron__v1__trigger_state__get_packed_size(&o->m);
    uint8_t *buf = patron_malloc(*len);
    cr_assert_eq(patron__v1__trigger_state__pack(&o->m, buf), *len);
    free(o);
    cr_assert_leq(*len, PATRON_ENGINE_STATE_MAX);
    return buf;
}

Test(campaign_state_codec, lists_over_their_bounds_are_cut)
{
    size_t len = 0;
    uint8_t *buf = oversize_pack(&len);
    struct patron_customer_state st;
    int rc = patron_customer_state_decode(&st, buf, len);
    free(buf);
    /* lists are cut to their bounds */
    cr_assert_eq(rc, 0, "%d", rc);
    cr_expect_leq(st.n_recent, PATRON_ENGINE_RECENT_EVENTS);
    cr_expect_leq(st.n_ledger, PATRON_ENGINE_LEDGER_MAX);
    cr_expect_leq(st.n_timers, PATRON_CAMPAIGNS_MAX);
    cr_expect_leq(st.n_last_sent, PATRON_CAMPAIGNS_MAX);
    cr_expect_leq(st.n_sends, PATRON_SEND_HISTORY_MAX);
    cr_expect_leq(st.n_touches, PATRON_ENGINE_TOUCHES_MAX);
    cr_expect_leq(st.n_timers, st.cap_timers);
    cr_expect_leq(st.n_last_sent, st.cap_last_sent);
    cr_expect_leq(strlen(st.customer_id), PATRON_ID_MAX);
    cr_expect_lt(strlen(st.time_zone), sizeof(st.time_zone));
    cr_expect_lt(strlen(st.segment), sizeof(st.segment));
    cr_expect_lt(strlen(st.birthday), sizeof(st.birthday));
    if (rc == 0) {
        /* the rings are most recent first: their heads are kept */
        cr_expect_eq(st.n_recent, PATRON_ENGINE_RECENT_EVENTS);
        cr_expect_eq(st.recent_events[0], 1000);
        cr_expect_eq(st.n_ledger, PATRON_ENGINE_LEDGER_MAX);
        cr_expect_eq(st.ledger[0], 5000);
        cr_expect_eq(st.last_offset, 77);
        for (size_t i = 0; i < st.n_timers; i++) {
            cr_expect_leq(strlen(st.timers[i].campaign_id), PATRON_CAMPAIGN_ID_MAX);
            cr_expect_leq(strlen(st.timers[i].trigger_event_id), PATRON_ID_MAX);
        }
        for (size_t i = 0; i < st.n_touches; i++) {
            cr_expect_leq(strlen(st.touches[i].campaign_id), PATRON_CAMPAIGN_ID_MAX);
            cr_expect_leq(strlen(st.touches[i].variant), PATRON_CAMPAIGN_ID_MAX);
        }
        /* what is left is usable: it encodes within the bound */
        uint8_t *again = NULL;
        size_t n = patron_customer_state_encode(&st, &again);
        cr_expect_leq(n, PATRON_ENGINE_STATE_MAX);
        free(again);
    }
    patron_customer_state_free(&st);
}

/* A stored string longer than its field, or holding a NUL, refuses the
 * state: cut, an id would be another customer's or campaign's. */
static Patron__V1__TriggerState *
one_of_each(Patron__V1__TriggerState *m, Patron__V1__TriggerTimer *t, Patron__V1__TriggerTimer **tp,
            Patron__V1__TriggerLastSent *l, Patron__V1__TriggerLastSent **lp,
            Patron__V1__TriggerTouch *h, Patron__V1__TriggerTouch **hp)
{
    patron__v1__trigger_state__init(m);
    patron__v1__trigger_timer__init(t);
    patron__v1__trigger_last_sent__init(l);
    patron__v1__trigger_touch__init(h);
    m->customer_id = "c";
    t->campaign_id = "camp";
    t->kind = PATRON_TIMER_WAIT;
    t->fire_at_ms = t->trigger_at_ms = T;
    t->trigger_event_id = "e";
    l->campaign_id = "camp";
    l->at_ms = T;
    h->campaign_id = "camp";
    h->variant = "A";
    h->at_ms = T;
    *tp = t;
    *lp = l;
    *hp = h;
    m->n_timers = m->n_last_sent = m->n_touches = 1;
    m->timers = tp;
    m->last_sent = lp;
    m->touches = hp;
    return m;
}

Test(campaign_state_codec, strings_that_do_not_fit_are_refused_table)
{
    struct patron_customer_state probe;
    enum {
        F_CUSTOMER,
        F_SEGMENT,
        F_TIER,
        F_TIME_ZONE,
        F_LOCALE,
        F_BIRTHDAY,
        F_TIMER_CAMPAIGN,
        F_TIMER_EVENT,
        F_LAST_CAMPAIGN,
        F_TOUCH_CAMPAIGN,
        F_TOUCH_VARIANT
    };
    static const struct {
        int field;
        size_t cap; /* the buffer, its NUL included */
    } rows[] = {
        {F_CUSTOMER, sizeof(probe.customer_id)},
        {F_SEGMENT, sizeof(probe.segment)},
        {F_TIER, sizeof(probe.tier)},
        {F_TIME_ZONE, sizeof(probe.time_zone)},
        {F_LOCALE, sizeof(probe.locale)},
        {F_BIRTHDAY, sizeof(probe.birthday)},
        {F_TIMER_CAMPAIGN, PATRON_CAMPAIGN_ID_MAX + 1},
        {F_TIMER_EVENT, PATRON_ID_MAX + 1},
        {F_LAST_CAMPAIGN, PATRON_CAMPAIGN_ID_MAX + 1},
        {F_TOUCH_CAMPAIGN, PATRON_CAMPAIGN_ID_MAX + 1},
        {F_TOUCH_VARIANT, PATRON_CAMPAIGN_ID_MAX + 1},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        /* at the limit, one past it, and the limit's length with a NUL inside */
        for (int k = 0; k < 3; k++) {
            char v[512];
            size_t n = rows[i].cap - 1 + (k == 1);
            memset(v, 'v', n);
            v[n] = '\0';
            Patron__V1__TriggerState m;
            Patron__V1__TriggerTimer t, *tp;
            Patron__V1__TriggerLastSent l, *lp;
            Patron__V1__TriggerTouch h, *hp;
            one_of_each(&m, &t, &tp, &l, &lp, &h, &hp);
            char **at[] = {&m.customer_id, &m.segment,     &m.tier,        &m.time_zone,
                           &m.locale,      &m.birthday,    &t.campaign_id, &t.trigger_event_id,
                           &l.campaign_id, &h.campaign_id, &h.variant};
            *at[rows[i].field] = v;
            size_t len = patron__v1__trigger_state__get_packed_size(&m);
            uint8_t *buf = patron_malloc(len);
            cr_assert_eq(patron__v1__trigger_state__pack(&m, buf), len);
            if (k == 2) { /* a NUL where protobuf-c's strlen would have stopped */
                uint8_t *hit = memmem(buf, len, v, n);
                cr_assert_not_null(hit);
                hit[n / 2] = 0;
            }
            struct patron_customer_state st;
            int rc = patron_customer_state_decode(&st, buf, len);
            cr_expect_eq(rc, k == 0 ? 0 : PATRON_EINVAL, "row %zu case %d: %d", i, k, rc);
            patron_customer_state_free(&st);
            free(buf);
        }
    }
}

/* The send history and the touches are oldest first, and the engine drops
 * the oldest when they are full: a cut must keep the most recent, the ones
 * that frequency caps and attribution look at. */
Test(campaign_state_codec, cut_history_keeps_the_most_recent)
{
    size_t len = 0;
    uint8_t *buf = oversize_pack(&len);
    struct patron_customer_state st;
    int rc = patron_customer_state_decode(&st, buf, len);
    free(buf);
    cr_assert_eq(rc, 0);
    const int64_t last_send = T + PATRON_SEND_HISTORY_MAX + 44 - 1;
    const int64_t last_touch = T + PATRON_ENGINE_TOUCHES_MAX + 36 - 1;
    cr_assert_eq(st.n_sends, PATRON_SEND_HISTORY_MAX);
    cr_expect_eq(st.sends[st.n_sends - 1].at_ms, last_send, "newest send kept: %lld",
                 (long long)st.sends[st.n_sends - 1].at_ms);
    cr_expect_eq(st.sends[0].at_ms, last_send - (PATRON_SEND_HISTORY_MAX - 1));
    cr_assert_eq(st.n_touches, PATRON_ENGINE_TOUCHES_MAX);
    cr_expect_eq(st.touches[st.n_touches - 1].at_ms, last_touch, "newest touch kept: %lld",
                 (long long)st.touches[st.n_touches - 1].at_ms);
    patron_customer_state_free(&st);
}

struct extreme_case {
    int64_t timer_at; /* a birthday timer's fire and trigger time */
    int64_t other_at; /* a send's, a last send's, a touch's, the last purchase's */
};

/* Times in a stored state are as untrusted as the rest: extreme ones must
 * neither overflow (UBSan aborts the process) nor make every later update of
 * the customer fail. Refusing such a state at decode is fine too. */
Test(campaign_state_codec, extreme_times_in_a_stored_state_table)
{
    const int64_t ok = T + 400 * DAY;
    const struct extreme_case cases[] = {
        {INT64_MIN, ok}, {-1, ok}, {INT64_MAX, ok}, {ok, INT64_MAX}, {ok, INT64_MIN},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct extreme_case *c = &cases[i];
        Patron__V1__TriggerState m = PATRON__V1__TRIGGER_STATE__INIT;
        Patron__V1__TriggerTimer timer = PATRON__V1__TRIGGER_TIMER__INIT, *tp = &timer;
        Patron__V1__TriggerSend send = PATRON__V1__TRIGGER_SEND__INIT, *sp = &send;
        Patron__V1__TriggerLastSent last = PATRON__V1__TRIGGER_LAST_SENT__INIT, *lp = &last;
        Patron__V1__TriggerTouch touch = PATRON__V1__TRIGGER_TOUCH__INIT, *cp = &touch;
        struct fx f;
        fx_open(&f, example, false);
        m.customer_id = f.customer;
        m.last_offset = -1;
        m.last_purchase_ms = m.first_purchase_ms = c->other_at;
        m.orders = 5;
        m.birthday = "07-20";
        timer.campaign_id = BDAY;
        timer.kind = PATRON_TIMER_BIRTHDAY;
        timer.fire_at_ms = timer.trigger_at_ms = c->timer_at;
        m.n_timers = 1;
        m.timers = &tp;
        send.at_ms = c->other_at;
        send.channel = PUSH;
        m.n_sends = 1;
        m.sends = &sp;
        last.campaign_id = CART;
        last.at_ms = c->other_at;
        m.n_last_sent = 1;
        m.last_sent = &lp;
        touch.campaign_id = CART;
        touch.at_ms = c->other_at;
        m.n_touches = 1;
        m.touches = &cp;
        size_t len = patron__v1__trigger_state__get_packed_size(&m);
        uint8_t *buf = patron_malloc(len);
        cr_assert_eq(patron__v1__trigger_state__pack(&m, buf), len);
        patron_customer_state_free(&f.st);
        int rc = patron_customer_state_decode(&f.st, buf, len);
        free(buf);
        cr_expect(rc == 0 || rc == PATRON_EINVAL, "row %zu", i);
        if (rc == 0) {
            Patron__V1__ProfileUpdate u = upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
            rc = patron_engine_on_update(&f.e, &f.st, &u, 1, &f.out);
            cr_expect_eq(rc, 0, "row %zu: the customer's updates fail: %s", i, patron_strerror(rc));
            if (rc == 0) {
                fx_collect(&f);
                cr_expect_eq(fx_sends_of(&f, CROSS), 1, "row %zu", i);
            }
        }
        fx_close(&f);
    }
}

struct kind_case {
    int32_t kind;
    bool kept;
};

struct channel_case {
    int32_t channel;
    bool kept;
};

Test(campaign_state_codec, unknown_timer_kinds_and_channels_are_dropped_table)
{
    const struct kind_case kinds[] = {
        {PATRON_TIMER_WAIT, true},
        {PATRON_TIMER_INACTIVITY, true},
        {PATRON_TIMER_BIRTHDAY, true},
        {PATRON_TIMER_SEGMENT, true},
        {PATRON_TIMER_CHURN, true},
        {PATRON_TIMER_CHURN + 1, false},
        {99, false},
        {-1, false},
        {INT32_MIN, false},
    };
    const struct channel_case channels[] = {
        {SMS, true}, {PUSH, true}, {EMAIL, true}, {0, false}, {4, false}, {-2, false},
    };
    Patron__V1__TriggerState m = PATRON__V1__TRIGGER_STATE__INIT;
    Patron__V1__TriggerTimer timers[PATRON_ARRAY_LEN(kinds)], *tp[PATRON_ARRAY_LEN(kinds)];
    char ids[PATRON_ARRAY_LEN(kinds)][16];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(kinds); i++) {
        patron__v1__trigger_timer__init(&timers[i]);
        snprintf(ids[i], sizeof(ids[i]), "k%zu", i);
        timers[i].campaign_id = ids[i];
        timers[i].kind = kinds[i].kind;
        timers[i].fire_at_ms = T + (int64_t)i;
        tp[i] = &timers[i];
    }
    m.customer_id = "c1";
    m.n_timers = PATRON_ARRAY_LEN(kinds);
    m.timers = tp;
    Patron__V1__TriggerSend sends[PATRON_ARRAY_LEN(channels)], *sp[PATRON_ARRAY_LEN(channels)];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(channels); i++) {
        patron__v1__trigger_send__init(&sends[i]);
        sends[i].channel = channels[i].channel;
        sends[i].at_ms = T + (int64_t)i;
        sp[i] = &sends[i];
    }
    m.n_sends = PATRON_ARRAY_LEN(channels);
    m.sends = sp;
    size_t len = patron__v1__trigger_state__get_packed_size(&m);
    uint8_t *buf = patron_malloc(len);
    cr_assert_eq(patron__v1__trigger_state__pack(&m, buf), len);
    struct patron_customer_state st;
    cr_assert_eq(patron_customer_state_decode(&st, buf, len), 0);
    free(buf);

    for (size_t i = 0; i < PATRON_ARRAY_LEN(kinds); i++) {
        const struct patron_engine_timer *found = NULL;
        for (size_t k = 0; k < st.n_timers; k++)
            if (strcmp(st.timers[k].campaign_id, ids[i]) == 0)
                found = &st.timers[k];
        cr_expect_eq(found != NULL, kinds[i].kept, "kind %d", kinds[i].kind);
        if (found) {
            cr_expect_eq((int32_t)found->kind, kinds[i].kind);
            cr_expect_eq(found->fire_at_ms, T + (int64_t)i);
        }
    }
    for (size_t i = 0; i < PATRON_ARRAY_LEN(channels); i++) {
        bool found = false;
        for (size_t k = 0; k < st.n_sends; k++)
            if (st.sends[k].at_ms == T + (int64_t)i) {
                found = true;
                cr_expect_eq((int32_t)st.sends[k].channel, channels[i].channel);
            }
        cr_expect_eq(found, channels[i].kept, "channel %d", channels[i].channel);
    }
    patron_customer_state_free(&st);
}
