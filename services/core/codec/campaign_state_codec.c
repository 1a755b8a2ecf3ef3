/* The stored form of a customer's campaign state (patron.v1.TriggerState).
 * Decoding never trusts the bytes: every list is cut to its bound, unknown
 * channels or timer kinds are dropped, and a string that does not fit its
 * buffer, or holds a NUL, refuses the state: cut, an id would become
 * another id ("victim\0x" or a 65-byte id read as "victim"). */
#include <stdlib.h>
#include <string.h>

#include "patron/campaign_state_codec.h"
#include "patron/clock.h"
#include "patron/v1/trigger.pb-c.h"

/* Event times a state may hold: 1970 to the year 9999. Anything else is
 * dropped, so that no arithmetic on a stored time can overflow. */
#define TIME_MAX_MS PATRON_TIME_MAX_MS
static bool time_ok(int64_t ms)
{
    return ms >= 0 && ms <= TIME_MAX_MS;
}

/* protobuf-c's allocations with their size in front, so that a string's
 * whole copy is known past a NUL inside it. */
#define SIZED_HDR 16

static void *sized_alloc(void *ud, size_t n)
{
    (void)ud;
    uint8_t *p = patron_malloc(SIZED_HDR + n);
    memcpy(p, &n, sizeof(n));
    return p + SIZED_HDR;
}

static void sized_free(void *ud, void *p)
{
    (void)ud;
    if (p)
        free((uint8_t *)p - SIZED_HDR);
}

static ProtobufCAllocator sized = {.alloc = sized_alloc, .free = sized_free};

/* Copies a decoded string into dst[cap], or false when it does not fit or
 * holds a NUL: refused, never cut. */
static bool take(char *dst, size_t cap, const char *src)
{
    size_t len = 0;
    if (src && src != protobuf_c_empty_string) {
        size_t copied;
        memcpy(&copied, (const uint8_t *)src - SIZED_HDR, sizeof(copied));
        len = copied - 1;
        if (len >= cap || memchr(src, 0, len))
            return false;
    }
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

#define TAKE(dst, src)                                                                             \
    do {                                                                                           \
        if (!take(dst, sizeof(dst), src))                                                          \
            goto out_refused;                                                                      \
    } while (0)

int patron_customer_state_decode(struct patron_customer_state *st, const void *data, size_t len)
{
    patron_customer_state_init(st, "");
    if (len > PATRON_ENGINE_STATE_MAX)
        return PATRON_ETOOBIG;
    Patron__V1__TriggerState *m = patron__v1__trigger_state__unpack(&sized, len, data);
    if (m == NULL)
        return PATRON_EINVAL;
    TAKE(st->customer_id, m->customer_id);
    st->last_offset = m->last_offset;
    for (size_t i = 0; i < m->n_recent_event_ids && i < PATRON_ENGINE_RECENT_EVENTS; i++)
        st->recent_events[st->n_recent++] = m->recent_event_ids[i];
    for (size_t i = 0; i < m->n_ledger && i < PATRON_ENGINE_LEDGER_MAX; i++)
        st->ledger[st->n_ledger++] = m->ledger[i];
    TAKE(st->segment, m->segment);
    TAKE(st->tier, m->tier);
    st->consent[PATRON_CAMPAIGN_CHANNEL_SMS] = m->consent_sms;
    st->consent[PATRON_CAMPAIGN_CHANNEL_PUSH] = m->consent_push;
    st->consent[PATRON_CAMPAIGN_CHANNEL_EMAIL] = m->consent_email;
    TAKE(st->time_zone, m->time_zone);
    TAKE(st->locale, m->locale);
    TAKE(st->birthday, m->birthday);
    st->points = m->points;
    st->orders = m->orders;
    st->net_spend_cents = m->net_spend_cents;
    st->last_purchase_ms = time_ok(m->last_purchase_ms) ? m->last_purchase_ms : 0;
    st->first_purchase_ms = time_ok(m->first_purchase_ms) ? m->first_purchase_ms : 0;

    size_t nt = m->n_timers < PATRON_CAMPAIGNS_MAX ? m->n_timers : PATRON_CAMPAIGNS_MAX;
    if (nt > 0) {
        st->timers = patron_calloc(nt, sizeof(*st->timers));
        st->cap_timers = nt;
    }
    for (size_t i = 0; i < nt; i++) {
        const Patron__V1__TriggerTimer *t = m->timers[i];
        if (t->kind < PATRON_TIMER_NONE || t->kind > PATRON_TIMER_KIND_LAST ||
            !time_ok(t->fire_at_ms) || !time_ok(t->trigger_at_ms))
            continue;
        struct patron_engine_timer *d = &st->timers[st->n_timers++];
        TAKE(d->campaign_id, t->campaign_id);
        d->kind = (enum patron_timer_kind)t->kind;
        d->fire_at_ms = t->fire_at_ms;
        d->trigger_at_ms = t->trigger_at_ms;
        TAKE(d->trigger_event_id, t->trigger_event_id);
    }
    /* Lists are stored oldest first: a cut keeps the most recent. */
    size_t first = m->n_sends > PATRON_SEND_HISTORY_MAX ? m->n_sends - PATRON_SEND_HISTORY_MAX : 0;
    for (size_t i = first; i < m->n_sends; i++) {
        int32_t ch = m->sends[i]->channel;
        if (ch < PATRON_CAMPAIGN_CHANNEL_SMS || ch > PATRON_CAMPAIGN_CHANNEL_EMAIL ||
            !time_ok(m->sends[i]->at_ms))
            continue;
        st->sends[st->n_sends++] = (struct patron_send){
            .at_ms = m->sends[i]->at_ms, .channel = (enum patron_campaign_channel)ch};
    }
    size_t nl = m->n_last_sent < PATRON_CAMPAIGNS_MAX ? m->n_last_sent : PATRON_CAMPAIGNS_MAX;
    if (nl > 0) {
        st->last_sent = patron_calloc(nl, sizeof(*st->last_sent));
        st->cap_last_sent = nl;
    }
    for (size_t i = 0; i < nl; i++) {
        if (!time_ok(m->last_sent[i]->at_ms))
            continue;
        struct patron_engine_last_sent *l = &st->last_sent[st->n_last_sent++];
        TAKE(l->campaign_id, m->last_sent[i]->campaign_id);
        l->at_ms = m->last_sent[i]->at_ms;
    }
    first = m->n_touches > PATRON_ENGINE_TOUCHES_MAX ? m->n_touches - PATRON_ENGINE_TOUCHES_MAX : 0;
    for (size_t i = first; i < m->n_touches; i++) {
        const Patron__V1__TriggerTouch *t = m->touches[i];
        if (!time_ok(t->at_ms))
            continue;
        struct patron_engine_touch *d = &st->touches[st->n_touches++];
        TAKE(d->campaign_id, t->campaign_id);
        TAKE(d->variant, t->variant);
        d->at_ms = t->at_ms;
        d->control = t->control;
        d->converted = t->converted;
    }
    patron__v1__trigger_state__free_unpacked(m, &sized);
    return 0;

out_refused:
    patron__v1__trigger_state__free_unpacked(m, &sized);
    return PATRON_EINVAL;
}

size_t patron_customer_state_encode(const struct patron_customer_state *st, uint8_t **out)
{
    Patron__V1__TriggerState m = PATRON__V1__TRIGGER_STATE__INIT;
    m.customer_id = (char *)st->customer_id;
    m.last_offset = st->last_offset;
    m.n_recent_event_ids = st->n_recent;
    m.recent_event_ids = (uint64_t *)st->recent_events;
    m.n_ledger = st->n_ledger;
    m.ledger = (uint64_t *)st->ledger;
    m.segment = (char *)st->segment;
    m.tier = (char *)st->tier;
    m.consent_sms = st->consent[PATRON_CAMPAIGN_CHANNEL_SMS];
    m.consent_push = st->consent[PATRON_CAMPAIGN_CHANNEL_PUSH];
    m.consent_email = st->consent[PATRON_CAMPAIGN_CHANNEL_EMAIL];
    m.time_zone = (char *)st->time_zone;
    m.locale = (char *)st->locale;
    m.birthday = (char *)st->birthday;
    m.points = st->points;
    m.orders = st->orders;
    m.net_spend_cents = st->net_spend_cents;
    m.last_purchase_ms = st->last_purchase_ms;
    m.first_purchase_ms = st->first_purchase_ms;

    Patron__V1__TriggerTimer *timers = patron_calloc(st->n_timers + 1, sizeof(*timers));
    Patron__V1__TriggerTimer **tp = patron_calloc(st->n_timers + 1, sizeof(*tp));
    for (size_t i = 0; i < st->n_timers; i++) {
        patron__v1__trigger_timer__init(&timers[i]);
        timers[i].campaign_id = (char *)st->timers[i].campaign_id;
        timers[i].kind = (int32_t)st->timers[i].kind;
        timers[i].fire_at_ms = st->timers[i].fire_at_ms;
        timers[i].trigger_at_ms = st->timers[i].trigger_at_ms;
        timers[i].trigger_event_id = (char *)st->timers[i].trigger_event_id;
        tp[i] = &timers[i];
    }
    m.n_timers = st->n_timers;
    m.timers = tp;

    Patron__V1__TriggerSend *sends = patron_calloc(st->n_sends + 1, sizeof(*sends));
    Patron__V1__TriggerSend **sp = patron_calloc(st->n_sends + 1, sizeof(*sp));
    for (size_t i = 0; i < st->n_sends; i++) {
        patron__v1__trigger_send__init(&sends[i]);
        sends[i].at_ms = st->sends[i].at_ms;
        sends[i].channel = (int32_t)st->sends[i].channel;
        sp[i] = &sends[i];
    }
    m.n_sends = st->n_sends;
    m.sends = sp;

    Patron__V1__TriggerLastSent *ls = patron_calloc(st->n_last_sent + 1, sizeof(*ls));
    Patron__V1__TriggerLastSent **lp = patron_calloc(st->n_last_sent + 1, sizeof(*lp));
    for (size_t i = 0; i < st->n_last_sent; i++) {
        patron__v1__trigger_last_sent__init(&ls[i]);
        ls[i].campaign_id = (char *)st->last_sent[i].campaign_id;
        ls[i].at_ms = st->last_sent[i].at_ms;
        lp[i] = &ls[i];
    }
    m.n_last_sent = st->n_last_sent;
    m.last_sent = lp;

    Patron__V1__TriggerTouch *tc = patron_calloc(st->n_touches + 1, sizeof(*tc));
    Patron__V1__TriggerTouch **tcp = patron_calloc(st->n_touches + 1, sizeof(*tcp));
    for (size_t i = 0; i < st->n_touches; i++) {
        patron__v1__trigger_touch__init(&tc[i]);
        tc[i].campaign_id = (char *)st->touches[i].campaign_id;
        tc[i].variant = (char *)st->touches[i].variant;
        tc[i].at_ms = st->touches[i].at_ms;
        tc[i].control = st->touches[i].control;
        tc[i].converted = st->touches[i].converted;
        tcp[i] = &tc[i];
    }
    m.n_touches = st->n_touches;
    m.touches = tcp;

    size_t len = patron__v1__trigger_state__get_packed_size(&m);
    *out = patron_malloc(len ? len : 1);
    patron__v1__trigger_state__pack(&m, *out);

    free(tcp);
    free(tc);
    free(lp);
    free(ls);
    free(sp);
    free(sends);
    free(tp);
    free(timers);
    return len;
}
