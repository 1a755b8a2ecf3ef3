/*
 * Test fixture of the campaign engine's unit tests (test_campaign_engine*.c,
 * test_campaign_state_codec.c): docs/contracts/campaigns.md's example
 * campaigns file in pieces, and `struct fx`, one customer under test: the
 * engine, its state, and what came out of each call. Everything a struct
 * fx holds is its own: fx_open makes it, fx_close frees it.
 */
#ifndef PATRON_TEST_FIXTURE_CAMPAIGNS_H
#define PATRON_TEST_FIXTURE_CAMPAIGNS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "patron/campaign_engine.h"
#include "patron/campaign_yaml.h"
#include "patron/profile.h"
#include "patron/v1/trigger.pb-c.h"

/* examples/campaigns.yaml, in pieces so that variations can leave one out. */
#define EX_DEFAULTS                                                                                \
    "defaults:\n"                                                                                  \
    "  quiet_hours: { start: \"21:00\", end: \"09:00\" }\n"                                        \
    "  frequency_caps:\n"                                                                          \
    "    - { channel: sms,   max: 1, per: 1d }\n"                                                  \
    "    - { channel: push,  max: 3, per: 1d }\n"                                                  \
    "    - { channel: email, max: 2, per: 7d }\n"                                                  \
    "    - { channel: any,   max: 4, per: 1d }\n"                                                  \
    "  control_group_percent: 5\n"                                                                 \
    "  attribution_window: 7d\n"                                                                   \
    "campaigns:\n"
#define EX_CART                                                                                    \
    "  - id: cart-abandonment\n"                                                                   \
    "    when: { event: cart_add }\n"                                                              \
    "    wait: 1h\n"                                                                               \
    "    unless: { event: purchase }\n"                                                            \
    "    audience: { segments: [champion, loyal, promising, new], tiers: [any] }\n"                \
    "    channel: push\n"                                                                          \
    "    template: cart_reminder\n"                                                                \
    "    recommendations: 3\n"                                                                     \
    "    cooldown: 1d\n"                                                                           \
    "    variants:\n"                                                                              \
    "      - { id: A, weight: 50, template: cart_reminder_a }\n"                                   \
    "      - { id: B, weight: 50, template: cart_reminder_b }\n"
#define EX_BROWSE                                                                                  \
    "  - id: browse-abandonment\n"                                                                 \
    "    when: { event: view }\n"                                                                  \
    "    wait: 2h\n"                                                                               \
    "    unless: { event: [cart_add, purchase] }\n"                                                \
    "    channel: push\n"                                                                          \
    "    template: still_looking\n"
#define EX_CROSS                                                                                   \
    "  - id: cross-sell\n"                                                                         \
    "    when: { event: purchase }\n"                                                              \
    "    channel: email\n"                                                                         \
    "    template: you_may_also_like\n"                                                            \
    "    recommendations: 4\n"
#define EX_REVIEW                                                                                  \
    "  - id: review-request\n"                                                                     \
    "    when: { event: purchase }\n"                                                              \
    "    wait: 3d\n"                                                                               \
    "    channel: email\n"                                                                         \
    "    template: review_request\n"
#define EX_WINBACK                                                                                 \
    "  - id: winback-60d\n"                                                                        \
    "    when: { inactive_for: 60d }\n"                                                            \
    "    channel: sms\n"                                                                           \
    "    template: winback_coupon\n"                                                               \
    "    params: { coupon: COMEBACK10 }\n"
#define EX_ATRISK                                                                                  \
    "  - id: at-risk\n"                                                                            \
    "    when: { segment_becomes: at_risk }\n"                                                     \
    "    channel: email\n"                                                                         \
    "    template: we_miss_you\n"
#define EX_TIER                                                                                    \
    "  - id: tier-upgrade\n"                                                                       \
    "    when: { tier_up: true }\n"                                                                \
    "    channel: push\n"                                                                          \
    "    template: tier_upgrade\n"                                                                 \
    "    ignore_caps: true\n"
#define EX_BIRTHDAY_AT(hhmm)                                                                       \
    "  - id: birthday\n"                                                                           \
    "    when: { birthday: true }\n"                                                               \
    "    at: \"" hhmm "\"\n"                                                                       \
    "    channel: sms\n"                                                                           \
    "    template: birthday_gift\n"

static const char example[] =
    EX_DEFAULTS EX_CART EX_BROWSE EX_CROSS EX_REVIEW EX_WINBACK EX_ATRISK EX_TIER EX_BIRTHDAY_AT(
        "10:00");

static inline int64_t utc(int y, int m, int d, int hh, int mm)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return ((days * 24 + hh) * 60 + mm) * 60000;
}

#define MIN 60000LL
#define H (60 * MIN)
#define DAY (24 * H)
/* 2026-07-01 10:00 in London (BST): far from quiet hours */
#define T utc(2026, 7, 1, 9, 0)

#define CART "cart-abandonment"
#define BROWSE "browse-abandonment"
#define CROSS "cross-sell"
#define REVIEW "review-request"
#define WINBACK "winback-60d"
#define ATRISK "at-risk"
#define TIER "tier-upgrade"
#define BDAY "birthday"

static inline struct patron_campaigns *parse(const char *yaml)
{
    struct patron_campaigns *cs = NULL;
    char err[256];
    int rc = patron_campaigns_parse(yaml, strlen(yaml), &cs, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return cs;
}

/* A customer id outside the 5 % holdout, or inside it. */
static inline void customer_id(bool control, char *out, size_t cap)
{
    for (int i = 0; i < 100000; i++) {
        snprintf(out, cap, "cust-%d", i);
        if (patron_campaign_in_control(out, 500) == control)
            return;
    }
    cr_assert_fail("no customer id %s the holdout", control ? "in" : "outside");
}

/* ---- a customer under test: the engine, its state, what came out ---------------------- */

struct sent_rec {
    char campaign[PATRON_CAMPAIGN_ID_MAX + 1];
    char variant[PATRON_CAMPAIGN_ID_MAX + 1];
    char message_id[PATRON_MESSAGE_ID_LEN + 1];
    char trigger_event_id[PATRON_ID_MAX + 1];
    int64_t at;
    int call; /* which engine call produced it */
};

#define FX_SENT_MAX 64
#define FX_COUNTS_MAX 512

struct fx {
    struct patron_campaigns *cs;
    struct patron_profile_config cfg;
    struct patron_engine e;
    struct patron_customer_state st;
    struct patron_engine_out out; /* the last call's */
    char customer[PATRON_ID_MAX + 1];
    const char *zone;
    int64_t offset; /* the next update's */
    int calls;
    struct sent_rec sent[FX_SENT_MAX]; /* since the last fx_forget */
    size_t n_sent;
    struct patron_engine_count counts[FX_COUNTS_MAX];
    size_t n_counts;
};

static inline void fx_open(struct fx *f, const char *yaml, bool control)
{
    memset(f, 0, sizeof(*f));
    f->cs = parse(yaml);
    patron_profile_config_default(&f->cfg);
    f->e = (struct patron_engine){.campaigns = f->cs, .profile = &f->cfg};
    customer_id(control, f->customer, sizeof(f->customer));
    patron_customer_state_init(&f->st, f->customer);
    f->zone = "Europe/London";
    f->offset = 1;
}

static inline void fx_close(struct fx *f)
{
    patron_engine_out_free(&f->out);
    patron_customer_state_free(&f->st);
    patron_campaigns_free(f->cs);
}

static inline void fx_forget(struct fx *f)
{
    f->n_sent = f->n_counts = 0;
}

static inline void fx_collect(struct fx *f)
{
    for (size_t i = 0; i < f->out.n_sends; i++) {
        const struct patron_engine_send *s = &f->out.sends[i];
        cr_assert_lt(f->n_sent, FX_SENT_MAX);
        struct sent_rec *r = &f->sent[f->n_sent++];
        memset(r, 0, sizeof(*r));
        cr_assert_not_null(s->campaign);
        snprintf(r->campaign, sizeof(r->campaign), "%s", s->campaign->id);
        snprintf(r->variant, sizeof(r->variant), "%s",
                 s->decision.variant ? s->decision.variant->id : "");
        snprintf(r->message_id, sizeof(r->message_id), "%s", s->decision.message_id);
        snprintf(r->trigger_event_id, sizeof(r->trigger_event_id), "%s", s->trigger_event_id);
        r->at = s->at_ms;
        r->call = f->calls;
        cr_expect_eq(s->decision.outcome, PATRON_OUTCOME_SENT);
        cr_expect_eq(s->decision.send_at_ms, s->at_ms);
    }
    for (size_t i = 0; i < f->out.n_counts; i++) {
        cr_assert_lt(f->n_counts, FX_COUNTS_MAX);
        f->counts[f->n_counts++] = f->out.counts[i];
    }
    f->calls++;
}

static inline void fx_apply_at(struct fx *f, const Patron__V1__ProfileUpdate *u, int64_t offset)
{
    patron_engine_out_reset(&f->out);
    int rc = patron_engine_on_update(&f->e, &f->st, u, offset, &f->out);
    cr_assert_eq(rc, 0, "update %s: %s", u->event_id, patron_strerror(rc));
    fx_collect(f);
}

static inline void fx_apply(struct fx *f, const Patron__V1__ProfileUpdate *u)
{
    fx_apply_at(f, u, f->offset++);
}

static inline void fx_fire(struct fx *f, int64_t bound)
{
    patron_engine_out_reset(&f->out);
    int rc = patron_engine_fire_due(&f->e, &f->st, bound, &f->out);
    cr_assert_eq(rc, 0, "fire_due: %s", patron_strerror(rc));
    cr_expect_not(f->out.duplicate);
    cr_expect_not(f->out.erased);
    fx_collect(f);
}

/* The sum of stat `s` of `campaign` since the last fx_forget. */
static inline int64_t fx_stat(const struct fx *f, const char *campaign, enum patron_stat s)
{
    int64_t sum = 0;
    for (size_t i = 0; i < f->n_counts; i++)
        if (strcmp(f->counts[i].campaign_id, campaign) == 0 && f->counts[i].stat == s)
            sum += f->counts[i].delta;
    return sum;
}

/* How many decisions (one outcome each) `campaign` had since the last fx_forget. */
static inline int64_t fx_decisions(const struct fx *f, const char *campaign)
{
    int64_t n = 0;
    for (int s = PATRON_STAT_SENT; s <= PATRON_STAT_FREQUENCY_CAP; s++)
        n += fx_stat(f, campaign, (enum patron_stat)s);
    return n;
}

static inline size_t fx_sends_of(const struct fx *f, const char *campaign)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_sent; i++)
        n += strcmp(f->sent[i].campaign, campaign) == 0;
    return n;
}

static inline const struct patron_engine_timer *fx_timer(const struct fx *f, const char *campaign)
{
    for (size_t i = 0; i < f->st.n_timers; i++)
        if (strcmp(f->st.timers[i].campaign_id, campaign) == 0)
            return &f->st.timers[i];
    return NULL;
}

/* Pending timers other than the segment timers every customer with a
 * purchase carries (segment_becomes by recency alone). */
static inline size_t fx_n_timers(const struct fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->st.n_timers; i++)
        n += f->st.timers[i].kind != PATRON_TIMER_SEGMENT;
    return n;
}

/* An update of this customer: consent everywhere, one order a day before the
 * event (segment "new", inside the cart campaign's audience), tier silver. */
static inline Patron__V1__ProfileUpdate upd(const struct fx *f, const char *event_id,
                                            Patron__V1__EventKind kind, int64_t at)
{
    Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
    u.customer_id = (char *)f->customer;
    u.event_id = (char *)event_id;
    u.kind = kind;
    u.occurred_at_ms = at;
    u.orders = 1;
    u.net_spend_cents = 5000;
    u.last_purchase_ms = at - DAY;
    if (kind == PATRON__V1__EVENT_KIND__PURCHASE) {
        u.last_purchase_ms = at;
        u.value_cents = 1000;
    }
    u.consent_sms = u.consent_push = u.consent_email = true;
    u.time_zone = (char *)f->zone;
    u.locale = "en-GB";
    u.tier = u.previous_tier = "silver";
    u.segment = u.previous_segment = "new";
    return u;
}

static inline void fx_event(struct fx *f, const char *event_id, Patron__V1__EventKind kind,
                            int64_t at)
{
    Patron__V1__ProfileUpdate u = upd(f, event_id, kind, at);
    fx_apply(f, &u);
}

static inline void expect_message_id(const struct fx *f, const struct sent_rec *r,
                                     const char *event_id, int64_t trigger_at)
{
    char want[PATRON_MESSAGE_ID_LEN + 1];
    patron_campaign_message_id(r->campaign, f->customer, event_id, trigger_at, want);
    cr_expect_str_eq(r->message_id, want, "%s at %lld", r->campaign, (long long)r->at);
}

/* the channels, short */
#define SMS PATRON_CAMPAIGN_CHANNEL_SMS
#define PUSH PATRON_CAMPAIGN_CHANNEL_PUSH
#define EMAIL PATRON_CAMPAIGN_CHANNEL_EMAIL

#endif
