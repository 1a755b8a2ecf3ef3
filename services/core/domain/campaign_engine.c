#include "patron/campaign_engine.h"

#include <stdlib.h>
#include <string.h>

#include "patron/rfm.h"
#include "patron/strmap.h"

void patron_customer_state_init(struct patron_customer_state *st, const char *customer_id)
{
    memset(st, 0, sizeof(*st));
    patron_copy_str(st->customer_id, sizeof(st->customer_id), customer_id);
    st->last_offset = -1;
}

void patron_customer_state_free(struct patron_customer_state *st)
{
    free(st->timers);
    free(st->last_sent);
    st->timers = NULL;
    st->last_sent = NULL;
    st->n_timers = st->cap_timers = st->n_last_sent = st->cap_last_sent = 0;
}

int64_t patron_customer_state_next_fire(const struct patron_customer_state *st)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < st->n_timers; i++)
        if (st->timers[i].fire_at_ms < next)
            next = st->timers[i].fire_at_ms;
    return next;
}

static const char *const STAT_NAMES[PATRON_STATS] = {
    "sent",
    "exited",
    "consent",
    "audience",
    "control_group",
    "cooldown",
    "frequency_cap",
    "conversions",
    "revenue_cents",
    "control_conversions",
    "control_revenue_cents",
};

const char *patron_stat_name(enum patron_stat s)
{
    return (unsigned)s < PATRON_STATS ? STAT_NAMES[s] : "unknown";
}

void patron_engine_out_reset(struct patron_engine_out *out)
{
    out->n_sends = out->n_counts = 0;
    out->duplicate = out->erased = false;
}

void patron_engine_out_free(struct patron_engine_out *out)
{
    free(out->sends);
    free(out->counts);
    memset(out, 0, sizeof(*out));
}

/* ---- small collections ------------------------------------------------------------- */

static void count(struct patron_engine_out *out, const struct patron_campaign *c,
                  const struct patron_campaign_variant *v, enum patron_stat s, int64_t delta,
                  int64_t at_ms)
{
    if (out->n_counts == out->cap_counts) {
        out->cap_counts = out->cap_counts ? 2 * out->cap_counts : 16;
        out->counts = patron_realloc(out->counts, out->cap_counts * sizeof(*out->counts));
    }
    struct patron_engine_count *k = &out->counts[out->n_counts++];
    patron_copy_str(k->campaign_id, sizeof(k->campaign_id), c->id);
    patron_copy_str(k->variant, sizeof(k->variant), v ? v->id : "");
    k->stat = s;
    k->delta = delta;
    k->at_ms = at_ms;
}

static bool ring_has(const uint64_t *ring, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        if (ring[i] == h)
            return true;
    return false;
}

/* Most recent first; the oldest falls off a full ring. */
static void ring_push(uint64_t *ring, size_t *n, size_t cap, uint64_t h)
{
    size_t keep = *n < cap ? *n : cap - 1;
    memmove(ring + 1, ring, keep * sizeof(*ring));
    ring[0] = h;
    *n = keep + 1;
}

static uint64_t hash_str(const char *s)
{
    return patron_hash64(s, strlen(s));
}

static struct patron_engine_timer *timer_find(struct patron_customer_state *st, const char *id)
{
    for (size_t i = 0; i < st->n_timers; i++)
        if (strcmp(st->timers[i].campaign_id, id) == 0)
            return &st->timers[i];
    return NULL;
}

/* A decision already taken in principle and waiting for quiet hours to end
 * (fire time moved past the trigger time), or a plain wait: what a consent
 * revocation ends. Recurring timers (birthday, inactivity, segment) are not
 * pending messages: consent is checked when they fire. */
static bool timer_pending_send(const struct patron_engine_timer *t)
{
    return t->kind == PATRON_TIMER_WAIT || t->kind == PATRON_TIMER_NONE ||
           t->fire_at_ms != t->trigger_at_ms;
}

static void timer_remove(struct patron_customer_state *st, size_t i)
{
    st->timers[i] = st->timers[--st->n_timers];
}

/* One timer per campaign: a new one replaces the pending one (a second cart
 * add restarts the wait; a purchase moves the win-back). */
static void timer_set(struct patron_customer_state *st, const struct patron_campaign *c,
                      enum patron_timer_kind kind, int64_t fire_at_ms, int64_t trigger_at_ms,
                      const char *event_id)
{
    struct patron_engine_timer *t = timer_find(st, c->id);
    if (t == NULL) {
        if (st->n_timers == st->cap_timers) {
            st->cap_timers = st->cap_timers ? 2 * st->cap_timers : 4;
            st->timers = patron_realloc(st->timers, st->cap_timers * sizeof(*st->timers));
        }
        t = &st->timers[st->n_timers++];
        memset(t, 0, sizeof(*t));
        patron_copy_str(t->campaign_id, sizeof(t->campaign_id), c->id);
    }
    t->kind = kind;
    t->fire_at_ms = fire_at_ms;
    t->trigger_at_ms = trigger_at_ms;
    patron_copy_str(t->trigger_event_id, sizeof(t->trigger_event_id), event_id);
}

static int64_t last_sent_of(const struct patron_customer_state *st, const char *id)
{
    for (size_t i = 0; i < st->n_last_sent; i++)
        if (strcmp(st->last_sent[i].campaign_id, id) == 0)
            return st->last_sent[i].at_ms;
    return 0;
}

static void last_sent_set(struct patron_customer_state *st, const char *id, int64_t at_ms)
{
    for (size_t i = 0; i < st->n_last_sent; i++)
        if (strcmp(st->last_sent[i].campaign_id, id) == 0) {
            st->last_sent[i].at_ms = at_ms;
            return;
        }
    if (st->n_last_sent == st->cap_last_sent) {
        st->cap_last_sent = st->cap_last_sent ? 2 * st->cap_last_sent : 4;
        st->last_sent = patron_realloc(st->last_sent, st->cap_last_sent * sizeof(*st->last_sent));
    }
    struct patron_engine_last_sent *l = &st->last_sent[st->n_last_sent++];
    patron_copy_str(l->campaign_id, sizeof(l->campaign_id), id);
    l->at_ms = at_ms;
}

static void send_push(struct patron_customer_state *st, int64_t at_ms,
                      enum patron_campaign_channel ch)
{
    if (st->n_sends == PATRON_SEND_HISTORY_MAX) {
        memmove(st->sends, st->sends + 1, (PATRON_SEND_HISTORY_MAX - 1) * sizeof(*st->sends));
        st->n_sends--;
    }
    st->sends[st->n_sends++] = (struct patron_send){.at_ms = at_ms, .channel = ch};
}

static void touch_push(struct patron_customer_state *st, const struct patron_campaign *c,
                       const struct patron_campaign_variant *v, int64_t at_ms, bool control)
{
    if (st->n_touches == PATRON_ENGINE_TOUCHES_MAX) {
        memmove(st->touches, st->touches + 1,
                (PATRON_ENGINE_TOUCHES_MAX - 1) * sizeof(*st->touches));
        st->n_touches--;
    }
    struct patron_engine_touch *t = &st->touches[st->n_touches++];
    memset(t, 0, sizeof(*t));
    patron_copy_str(t->campaign_id, sizeof(t->campaign_id), c->id);
    patron_copy_str(t->variant, sizeof(t->variant), v ? v->id : "");
    t->at_ms = at_ms;
    t->control = control;
}

/* ---- deciding ---------------------------------------------------------------------- */

/* The customer's segment at `now_ms`: recency moves on between updates (a
 * win-back fires 60 days after the last one), so it is recomputed from the
 * RFM inputs rather than taken from the last update. */
static enum patron_segment segment_at(const struct patron_engine *e,
                                      const struct patron_customer_state *st, int64_t now_ms)
{
    struct patron_profile *p = patron_calloc(1, sizeof(*p));
    p->orders = st->orders;
    p->net_spend_cents = st->net_spend_cents;
    p->last_purchase_ms = st->last_purchase_ms;
    struct patron_rfm rfm = patron_rfm_score(p, now_ms, e->profile);
    free(p);
    return patron_segment_of(&rfm, st->orders);
}

/* The customer's K-Means cluster at now_ms, for audience.clusters: like the
 * segment, recency moves it between updates. */
static void cluster_at(const struct patron_engine *e, const struct patron_customer_state *st,
                       int64_t now_ms, struct patron_customer_view *view)
{
    struct patron_cluster_features f;
    if (e->clusters == NULL || e->clusters->k < 1 ||
        !patron_cluster_features_at(st->orders, st->last_purchase_ms, st->net_spend_cents, now_ms,
                                    &f))
        return;
    view->cluster = patron_cluster_of(&f, e->clusters);
    if (view->cluster >= 0 && view->cluster < PATRON_CLUSTERS_MAX)
        view->cluster_label = e->clusters->c[view->cluster].label;
}

/* Decides campaign c for the customer at now_ms and records the outcome.
 * The timer that led here (if any) has been removed by the caller; a quiet-
 * hours delay sets it again, with the same trigger, hence the same id. */
static int decide(const struct patron_engine *e, struct patron_customer_state *st,
                  const struct patron_campaign *c, enum patron_timer_kind kind,
                  const char *event_id, int64_t trigger_at_ms, int64_t now_ms,
                  struct patron_engine_out *out)
{
    const char *segment = patron_segment_name(segment_at(e, st, now_ms));
    struct patron_customer_view view = {
        .customer_id = st->customer_id,
        .segment = segment,
        .tier = st->tier,
        .time_zone = st->time_zone,
        .cluster = -1,
    };
    if (c->clusters.n > 0)
        cluster_at(e, st, now_ms, &view);
    memcpy(view.consent, st->consent, sizeof(view.consent));
    struct patron_decision_input in = {
        .cs = e->campaigns,
        .campaign = c,
        .customer = &view,
        .now_ms = now_ms,
        .trigger_event_id = event_id,
        .trigger_at_ms = trigger_at_ms,
        .last_sent_ms = last_sent_of(st, c->id),
        .sends = st->sends,
        .n_sends = st->n_sends,
    };
    struct patron_decision d;
    int rc = patron_campaign_decide(&in, &d);
    if (rc)
        return rc;
    if (d.outcome == PATRON_OUTCOME_DELAYED) {
        timer_set(st, c, kind, d.send_at_ms, trigger_at_ms, event_id);
        return 0;
    }
    uint64_t h = hash_str(d.message_id);
    if (ring_has(st->ledger, st->n_ledger, h))
        goto rearm; /* decided before (a replay): nothing happens twice */
    ring_push(st->ledger, &st->n_ledger, PATRON_ENGINE_LEDGER_MAX, h);
    switch (d.outcome) {
    case PATRON_OUTCOME_SENT:
        count(out, c, d.variant, PATRON_STAT_SENT, 1, now_ms);
        send_push(st, now_ms, c->channel);
        last_sent_set(st, c->id, now_ms);
        touch_push(st, c, d.variant, now_ms, false);
        if (out->n_sends == out->cap_sends) {
            out->cap_sends = out->cap_sends ? 2 * out->cap_sends : 8;
            out->sends = patron_realloc(out->sends, out->cap_sends * sizeof(*out->sends));
        }
        struct patron_engine_send *s = &out->sends[out->n_sends++];
        s->campaign = c;
        s->decision = d;
        patron_copy_str(s->trigger_event_id, sizeof(s->trigger_event_id), event_id);
        s->at_ms = now_ms;
        break;
    case PATRON_OUTCOME_SUPPRESSED_CONTROL_GROUP:
        /* "would have been sent": in the history too, so that the holdout
         * meets the same caps and cooldowns as the treated group */
        count(out, c, d.variant, PATRON_STAT_CONTROL_GROUP, 1, now_ms);
        send_push(st, now_ms, c->channel);
        last_sent_set(st, c->id, now_ms);
        touch_push(st, c, d.variant, now_ms, true);
        break;
    case PATRON_OUTCOME_SUPPRESSED_CONSENT:
        count(out, c, d.variant, PATRON_STAT_CONSENT, 1, now_ms);
        break;
    case PATRON_OUTCOME_SUPPRESSED_AUDIENCE:
        count(out, c, d.variant, PATRON_STAT_AUDIENCE, 1, now_ms);
        break;
    case PATRON_OUTCOME_SUPPRESSED_COOLDOWN:
        count(out, c, d.variant, PATRON_STAT_COOLDOWN, 1, now_ms);
        break;
    case PATRON_OUTCOME_SUPPRESSED_FREQUENCY_CAP:
        count(out, c, d.variant, PATRON_STAT_FREQUENCY_CAP, 1, now_ms);
        break;
    default:
        return PATRON_EINVAL;
    }
rearm:
    /* A birthday comes back every year, whatever happened this one. */
    if (kind == PATRON_TIMER_BIRTHDAY) {
        int64_t next;
        if (patron_campaign_birthday_next(st->birthday, c->at_min, st->time_zone, trigger_at_ms,
                                          &next) == 0)
            timer_set(st, c, PATRON_TIMER_BIRTHDAY, next, next, "");
    }
    return 0;
}

#define DAY_MS 86400000LL

/* Recency alone moves a customer between segments when the days since the
 * last purchase pass one of the RFM thresholds; the first such instant
 * strictly after `after_ms`, or INT64_MAX. */
static int64_t next_segment_change(const struct patron_engine *e,
                                   const struct patron_customer_state *st, int64_t after_ms)
{
    if (st->last_purchase_ms <= 0)
        return INT64_MAX;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(e->profile->rfm_recency_days); i++) {
        int64_t at;
        if (__builtin_mul_overflow(e->profile->rfm_recency_days[i] + 1, DAY_MS, &at) ||
            __builtin_add_overflow(at, st->last_purchase_ms, &at))
            continue;
        if (at > after_ms && at < next)
            next = at;
    }
    return next;
}

/* Arms (or disarms) the segment timers of the segment_becomes campaigns. */
static void arm_segment_timers(const struct patron_engine *e, struct patron_customer_state *st,
                               int64_t after_ms)
{
    int64_t next = next_segment_change(e, st, after_ms);
    for (size_t i = 0; i < e->campaigns->count; i++) {
        const struct patron_campaign *c = &e->campaigns->campaigns[i];
        if (c->when != PATRON_CAMPAIGN_WHEN_SEGMENT_BECOMES)
            continue;
        const struct patron_engine_timer *cur = timer_find(st, c->id);
        if (cur != NULL && timer_pending_send(cur))
            continue; /* a delayed decision: re-armed once it is taken */
        if (next != INT64_MAX) {
            timer_set(st, c, PATRON_TIMER_SEGMENT, next, next, "");
            continue;
        }
        for (size_t k = 0; k < st->n_timers; k++)
            if (strcmp(st->timers[k].campaign_id, c->id) == 0) {
                timer_remove(st, k);
                break;
            }
    }
}

/* A segment timer: the campaign fires when the segment, a moment before and
 * at the crossing, enters the campaign's. Re-armed for the next crossing. */
static int fire_segment(const struct patron_engine *e, struct patron_customer_state *st,
                        const struct patron_campaign *c, int64_t at_ms,
                        struct patron_engine_out *out)
{
    int rc = 0;
    enum patron_segment before = segment_at(e, st, at_ms - 1), now = segment_at(e, st, at_ms);
    if (now == c->segment && before != c->segment)
        rc = decide(e, st, c, PATRON_TIMER_SEGMENT, "", at_ms, at_ms, out);
    int64_t next = next_segment_change(e, st, at_ms);
    if (next != INT64_MAX && timer_find(st, c->id) == NULL)
        timer_set(st, c, PATRON_TIMER_SEGMENT, next, next, "");
    return rc;
}

/* ---- churn_risk_above ----------------------------------------------------------- */

static bool churn_campaign(const struct patron_engine *e, const struct patron_campaign *c)
{
    return c->when == PATRON_CAMPAIGN_WHEN_CHURN_RISK && e->clv != NULL;
}

static double churn_horizon_days(const struct patron_engine *e)
{
    return e->profile->churn_horizon_days > 0 ? (double)e->profile->churn_horizon_days : 90.0;
}

static struct patron_clv_history history_of(const struct patron_customer_state *st)
{
    return (struct patron_clv_history){
        .orders = st->orders,
        .first_purchase_ms = st->first_purchase_ms,
        .last_purchase_ms = st->last_purchase_ms,
        .net_spend_cents = st->net_spend_cents,
    };
}

static bool churn_above(const struct patron_engine *e, const struct patron_customer_state *st,
                        const struct patron_campaign *c, int64_t at_ms)
{
    struct patron_clv_history h = history_of(st);
    return patron_clv_churn_risk_at(e->clv, &h, churn_horizon_days(e), at_ms) > c->churn_above;
}

static void timer_drop(struct patron_customer_state *st, const char *campaign_id)
{
    for (size_t k = 0; k < st->n_timers; k++)
        if (strcmp(st->timers[k].campaign_id, campaign_id) == 0) {
            timer_remove(st, k);
            return;
        }
}

/* The customer is at or below c's threshold at after_ms: a timer at the
 * crossing, if there is one. A decision waiting for quiet hours stays. */
static void arm_churn(const struct patron_engine *e, struct patron_customer_state *st,
                      const struct patron_campaign *c, int64_t after_ms)
{
    const struct patron_engine_timer *cur = timer_find(st, c->id);
    if (cur != NULL && timer_pending_send(cur))
        return;
    struct patron_clv_history h = history_of(st);
    int64_t at =
        patron_clv_churn_crossing(e->clv, &h, churn_horizon_days(e), c->churn_above, after_ms);
    if (at == INT64_MAX)
        timer_drop(st, c->id);
    else
        timer_set(st, c, PATRON_TIMER_CHURN, at, at, "");
}

/* Before an update changes the history, at its time t: for each campaign
 * (indexed as in the file), whether the customer was at or below its
 * threshold. An armed timer says so (it was armed below, under the model
 * of the time); without one, the risk says. A decision waiting for quiet
 * hours counts as above. The caller frees the array. */
static bool *churn_before(const struct patron_engine *e, struct patron_customer_state *st,
                          int64_t t)
{
    size_t n = e->campaigns->count;
    bool *below = patron_calloc(n ? n : 1, sizeof(*below));
    for (size_t i = 0; i < n; i++) {
        const struct patron_campaign *c = &e->campaigns->campaigns[i];
        if (!churn_campaign(e, c))
            continue;
        const struct patron_engine_timer *cur = timer_find(st, c->id);
        if (cur != NULL)
            below[i] = cur->kind == PATRON_TIMER_CHURN && !timer_pending_send(cur);
        else
            below[i] = !churn_above(e, st, c, t);
    }
    return below;
}

/* After the update: decides the campaigns it carried over their threshold,
 * then arms (or disarms) their timers from the new history. */
static int churn_after(const struct patron_engine *e, struct patron_customer_state *st,
                       const Patron__V1__ProfileUpdate *u, const bool *below,
                       struct patron_engine_out *out)
{
    int64_t t = u->occurred_at_ms;
    for (size_t i = 0; i < e->campaigns->count; i++) {
        const struct patron_campaign *c = &e->campaigns->campaigns[i];
        if (!churn_campaign(e, c))
            continue;
        bool above = churn_above(e, st, c, t);
        if (above && below[i]) {
            timer_drop(st, c->id); /* the armed crossing: this is it */
            int rc = decide(e, st, c, PATRON_TIMER_CHURN, u->event_id, t, t, out);
            if (rc)
                return rc;
        }
        if (!above) {
            arm_churn(e, st, c, t);
        } else {
            const struct patron_engine_timer *cur = timer_find(st, c->id);
            if (cur != NULL && !timer_pending_send(cur))
                timer_drop(st, c->id);
        }
    }
    return 0;
}

/* A churn timer at its crossing: decided if the risk is above the threshold
 * there (it is, unless the model changed since it was armed: then armed
 * again at the new crossing). Nothing is armed after a decision: the risk
 * is above until an update brings it down. */
static int fire_churn(const struct patron_engine *e, struct patron_customer_state *st,
                      const struct patron_campaign *c, int64_t at_ms, struct patron_engine_out *out)
{
    if (!churn_campaign(e, c))
        return 0; /* no model any more: dormant */
    if (churn_above(e, st, c, at_ms))
        return decide(e, st, c, PATRON_TIMER_CHURN, "", at_ms, at_ms, out);
    arm_churn(e, st, c, at_ms);
    return 0;
}

int patron_engine_fire_due(const struct patron_engine *e, struct patron_customer_state *st,
                           int64_t bound_ms, struct patron_engine_out *out)
{
    if (e == NULL || st == NULL || out == NULL)
        return PATRON_EINVAL;
    /* Each decision may add a timer (a delay, next year's birthday), always
     * later than the one that fired, so this ends; the guard is for safety. */
    for (size_t guard = 0; guard < 4 * PATRON_CAMPAIGNS_MAX + 4; guard++) {
        size_t best = st->n_timers;
        for (size_t i = 0; i < st->n_timers; i++) {
            const struct patron_engine_timer *t = &st->timers[i];
            if (t->fire_at_ms > bound_ms)
                continue;
            if (best == st->n_timers || t->fire_at_ms < st->timers[best].fire_at_ms ||
                (t->fire_at_ms == st->timers[best].fire_at_ms &&
                 strcmp(t->campaign_id, st->timers[best].campaign_id) < 0))
                best = i;
        }
        if (best == st->n_timers)
            return 0;
        struct patron_engine_timer t = st->timers[best];
        timer_remove(st, best);
        const struct patron_campaign *c = patron_campaigns_find(e->campaigns, t.campaign_id);
        if (c == NULL)
            continue; /* the campaign left the file: its timers go with it */
        bool armed = t.trigger_at_ms == t.fire_at_ms; /* not a decision delayed by quiet hours */
        int rc =
            t.kind == PATRON_TIMER_SEGMENT && armed ? fire_segment(e, st, c, t.fire_at_ms, out)
            : t.kind == PATRON_TIMER_CHURN && armed
                ? fire_churn(e, st, c, t.fire_at_ms, out)
                : decide(e, st, c, t.kind, t.trigger_event_id, t.trigger_at_ms, t.fire_at_ms, out);
        if (rc)
            return rc;
        if (c->when == PATRON_CAMPAIGN_WHEN_SEGMENT_BECOMES && timer_find(st, c->id) == NULL) {
            int64_t next = next_segment_change(e, st, t.fire_at_ms);
            if (next != INT64_MAX) /* after a quiet-hours delay */
                timer_set(st, c, PATRON_TIMER_SEGMENT, next, next, "");
        }
    }
    return 0;
}

/* ---- updates ----------------------------------------------------------------------- */

static void view_of_update(struct patron_customer_state *st, const Patron__V1__ProfileUpdate *u)
{
    patron_copy_str(st->segment, sizeof(st->segment), u->segment);
    patron_copy_str(st->tier, sizeof(st->tier), u->tier);
    st->consent[PATRON_CAMPAIGN_CHANNEL_SMS] = u->consent_sms;
    st->consent[PATRON_CAMPAIGN_CHANNEL_PUSH] = u->consent_push;
    st->consent[PATRON_CAMPAIGN_CHANNEL_EMAIL] = u->consent_email;
    patron_copy_str(st->time_zone, sizeof(st->time_zone), u->time_zone);
    patron_copy_str(st->locale, sizeof(st->locale), u->locale);
    patron_copy_str(st->birthday, sizeof(st->birthday), u->birthday);
    st->points = u->points;
    st->orders = u->orders;
    st->net_spend_cents = u->net_spend_cents;
    st->last_purchase_ms = u->last_purchase_ms;
    st->first_purchase_ms = u->first_purchase_ms;
}

/* Waiting campaigns that this update ends: consent revoked for their channel
 * (suppressed), or their `unless` happened before the wait was over (exited). */
static void end_waits(const struct patron_engine *e, struct patron_customer_state *st,
                      const Patron__V1__ProfileUpdate *u, struct patron_engine_out *out)
{
    for (size_t i = 0; i < st->n_timers;) {
        const struct patron_engine_timer *t = &st->timers[i];
        const struct patron_campaign *c = patron_campaigns_find(e->campaigns, t->campaign_id);
        if (c == NULL) {
            timer_remove(st, i);
            continue;
        }
        const struct patron_campaign_variant *v = patron_campaign_variant_of(c, st->customer_id);
        if (timer_pending_send(t) && patron_campaign_consent_revoked(c, u)) {
            count(out, c, v, PATRON_STAT_CONSENT, 1, u->occurred_at_ms);
        } else if (t->kind == PATRON_TIMER_WAIT &&
                   u->occurred_at_ms >= t->trigger_at_ms - c->wait_ms &&
                   patron_campaign_wait_cancelled(c, (int)u->kind, u->occurred_at_ms,
                                                  t->trigger_at_ms)) {
            /* "during the wait": from the trigger to the wait's end (not
             * the end of a quiet-hours delay that followed it) */
            count(out, c, v, PATRON_STAT_EXITED, 1, u->occurred_at_ms);
        } else {
            i++;
            continue;
        }
        timer_remove(st, i);
    }
}

static int attribute(const struct patron_engine *e, struct patron_customer_state *st,
                     const Patron__V1__ProfileUpdate *u, struct patron_engine_out *out)
{
    struct patron_attribution_send sends[PATRON_ENGINE_TOUCHES_MAX];
    size_t idx[PATRON_ENGINE_TOUCHES_MAX], n = 0;
    for (size_t i = 0; i < st->n_touches; i++)
        sends[i] = (struct patron_attribution_send){
            .at_ms = st->touches[i].at_ms,
            .campaign_id = st->touches[i].campaign_id,
            .variant = st->touches[i].variant,
            .control = st->touches[i].control,
            .converted = st->touches[i].converted,
        };
    int rc = patron_attribution_match(sends, st->n_touches, u->occurred_at_ms,
                                      e->campaigns->defaults.attribution_window_ms, idx,
                                      PATRON_ENGINE_TOUCHES_MAX, &n);
    if (rc)
        return rc;
    for (size_t k = 0; k < n; k++) {
        struct patron_engine_touch *t = &st->touches[idx[k]];
        t->converted = true;
        const struct patron_campaign *c = patron_campaigns_find(e->campaigns, t->campaign_id);
        if (c == NULL)
            continue; /* converted all the same, counted nowhere */
        struct patron_campaign_variant v = {.weight = 1};
        patron_copy_str(v.id, sizeof(v.id), t->variant);
        const struct patron_campaign_variant *vp = t->variant[0] ? &v : NULL;
        count(out, c, vp, t->control ? PATRON_STAT_CONTROL_CONVERSIONS : PATRON_STAT_CONVERSIONS, 1,
              u->occurred_at_ms);
        count(out, c, vp,
              t->control ? PATRON_STAT_CONTROL_REVENUE_CENTS : PATRON_STAT_REVENUE_CENTS,
              u->value_cents, u->occurred_at_ms);
    }
    return 0;
}

/* Forgets what can no longer matter: touches past the attribution window,
 * sends past the longest frequency cap, last sends past their cooldown. */
static void prune(const struct patron_engine *e, struct patron_customer_state *st, int64_t now_ms)
{
    const struct patron_campaign_defaults *d = &e->campaigns->defaults;
    size_t k = 0;
    for (size_t i = 0; i < st->n_touches; i++)
        if (now_ms - st->touches[i].at_ms <= d->attribution_window_ms)
            st->touches[k++] = st->touches[i];
    st->n_touches = k;

    int64_t longest = 0;
    for (size_t i = 0; i < d->n_caps; i++)
        if (d->caps[i].per_ms > longest)
            longest = d->caps[i].per_ms;
    k = 0;
    for (size_t i = 0; i < st->n_sends; i++)
        if (now_ms - st->sends[i].at_ms < longest)
            st->sends[k++] = st->sends[i];
    st->n_sends = k;

    k = 0;
    for (size_t i = 0; i < st->n_last_sent; i++) {
        const struct patron_campaign *c =
            patron_campaigns_find(e->campaigns, st->last_sent[i].campaign_id);
        if (c != NULL && now_ms - st->last_sent[i].at_ms < c->cooldown_ms)
            st->last_sent[k++] = st->last_sent[i];
    }
    st->n_last_sent = k;
}

int patron_engine_on_update(const struct patron_engine *e, struct patron_customer_state *st,
                            const Patron__V1__ProfileUpdate *u, int64_t offset,
                            struct patron_engine_out *out)
{
    if (e == NULL || st == NULL || u == NULL || out == NULL || u->customer_id == NULL ||
        u->event_id == NULL)
        return PATRON_EINVAL;
    if (st->customer_id[0] == 0)
        patron_copy_str(st->customer_id, sizeof(st->customer_id), u->customer_id);
    else if (strncmp(st->customer_id, u->customer_id, PATRON_ID_MAX) != 0)
        return PATRON_EINVAL;

    uint64_t h = hash_str(u->event_id);
    if ((offset >= 0 && offset <= st->last_offset) ||
        ring_has(st->recent_events, st->n_recent, h)) {
        out->duplicate = true;
        return 0;
    }
    int64_t t = u->occurred_at_ms;
    int rc = patron_engine_fire_due(e, st, t, out);
    if (rc)
        return rc;
    /* A visitor merged at login bringing cart lines: the customer's cart
     * add, at the login (a visitor could not be messaged before it). */
    Patron__V1__ProfileUpdate as_cart_add;
    if (u->kind == PATRON__V1__EVENT_KIND__IDENTIFY && u->n_item_ids > 0) {
        as_cart_add = *u;
        as_cart_add.kind = PATRON__V1__EVENT_KIND__CART_ADD;
        u = &as_cart_add;
    }

    if (u->kind == PATRON__V1__EVENT_KIND__ERASURE) {
        /* Timers, history and ledger go; the shell deletes the state. */
        char id[PATRON_ID_MAX + 1];
        patron_copy_str(id, sizeof(id), st->customer_id);
        patron_customer_state_free(st);
        patron_customer_state_init(st, id);
        out->erased = true;
        return 0;
    }

    bool *churn_below = churn_before(e, st, t);
    view_of_update(st, u);
    end_waits(e, st, u, out);
    if (u->kind == PATRON__V1__EVENT_KIND__PURCHASE && (rc = attribute(e, st, u, out))) {
        free(churn_below);
        return rc;
    }

    struct patron_trigger *trig = patron_malloc((e->campaigns->count + 1) * sizeof(*trig));
    size_t n = 0;
    rc = patron_campaign_triggers(e->campaigns, u, trig, e->campaigns->count, &n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct patron_trigger *g = &trig[i];
        if (g->kind == PATRON_TIMER_NONE)
            rc = decide(e, st, g->campaign, PATRON_TIMER_NONE, g->trigger_event_id, t, t, out);
        else {
            const struct patron_engine_timer *cur = timer_find(st, g->campaign->id);
            if (cur != NULL && cur->kind != PATRON_TIMER_WAIT && timer_pending_send(cur))
                continue; /* a delayed birthday or win-back goes out first */
            timer_set(st, g->campaign, g->kind, g->fire_at_ms, g->fire_at_ms, g->trigger_event_id);
        }
    }
    free(trig);
    if (rc == 0)
        rc = churn_after(e, st, u, churn_below, out);
    free(churn_below);
    if (rc)
        return rc;
    arm_segment_timers(e, st, t);

    prune(e, st, t);
    ring_push(st->recent_events, &st->n_recent, PATRON_ENGINE_RECENT_EVENTS, h);
    if (offset > st->last_offset)
        st->last_offset = offset;
    return 0;
}
