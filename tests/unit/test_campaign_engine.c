/*
 * The campaign engine through its public API, with docs/contracts/campaigns.md's example
 * campaigns file and sequences of profile updates; and the stored form of a
 * customer's campaign state.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/campaign_engine.h"
#include "patron/profile.h"
#include "patron/v1/trigger.pb-c.h"
#include "patron/campaign_yaml.h"
#include "patron/campaign_state_codec.h"

PATRON_LEAK_CHECKED_SUITE(campaign_engine);
PATRON_LEAK_CHECKED_SUITE(campaign_state_codec);

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

static int64_t utc(int y, int m, int d, int hh, int mm)
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

static struct patron_campaigns *parse(const char *yaml)
{
    struct patron_campaigns *cs = NULL;
    char err[256];
    int rc = patron_campaigns_parse(yaml, strlen(yaml), &cs, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return cs;
}

/* A customer id outside the 5 % holdout, or inside it. */
static void customer_id(bool control, char *out, size_t cap)
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

static void fx_open(struct fx *f, const char *yaml, bool control)
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

static void fx_close(struct fx *f)
{
    patron_engine_out_free(&f->out);
    patron_customer_state_free(&f->st);
    patron_campaigns_free(f->cs);
}

static void fx_forget(struct fx *f)
{
    f->n_sent = f->n_counts = 0;
}

static void fx_collect(struct fx *f)
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

static void fx_apply_at(struct fx *f, const Patron__V1__ProfileUpdate *u, int64_t offset)
{
    patron_engine_out_reset(&f->out);
    int rc = patron_engine_on_update(&f->e, &f->st, u, offset, &f->out);
    cr_assert_eq(rc, 0, "update %s: %s", u->event_id, patron_strerror(rc));
    fx_collect(f);
}

static void fx_apply(struct fx *f, const Patron__V1__ProfileUpdate *u)
{
    fx_apply_at(f, u, f->offset++);
}

static void fx_fire(struct fx *f, int64_t bound)
{
    patron_engine_out_reset(&f->out);
    int rc = patron_engine_fire_due(&f->e, &f->st, bound, &f->out);
    cr_assert_eq(rc, 0, "fire_due: %s", patron_strerror(rc));
    cr_expect_not(f->out.duplicate);
    cr_expect_not(f->out.erased);
    fx_collect(f);
}

/* The sum of stat `s` of `campaign` since the last fx_forget. */
static int64_t fx_stat(const struct fx *f, const char *campaign, enum patron_stat s)
{
    int64_t sum = 0;
    for (size_t i = 0; i < f->n_counts; i++)
        if (strcmp(f->counts[i].campaign_id, campaign) == 0 && f->counts[i].stat == s)
            sum += f->counts[i].delta;
    return sum;
}

/* How many decisions (one outcome each) `campaign` had since the last fx_forget. */
static int64_t fx_decisions(const struct fx *f, const char *campaign)
{
    int64_t n = 0;
    for (int s = PATRON_STAT_SENT; s <= PATRON_STAT_FREQUENCY_CAP; s++)
        n += fx_stat(f, campaign, (enum patron_stat)s);
    return n;
}

static size_t fx_sends_of(const struct fx *f, const char *campaign)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_sent; i++)
        n += strcmp(f->sent[i].campaign, campaign) == 0;
    return n;
}

static const struct patron_engine_timer *fx_timer(const struct fx *f, const char *campaign)
{
    for (size_t i = 0; i < f->st.n_timers; i++)
        if (strcmp(f->st.timers[i].campaign_id, campaign) == 0)
            return &f->st.timers[i];
    return NULL;
}

/* Pending timers other than the segment timers every customer with a
 * purchase carries (segment_becomes by recency alone). */
static size_t fx_n_timers(const struct fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->st.n_timers; i++)
        n += f->st.timers[i].kind != PATRON_TIMER_SEGMENT;
    return n;
}

/* An update of this customer: consent everywhere, one order a day before the
 * event (segment "new", inside the cart campaign's audience), tier silver. */
static Patron__V1__ProfileUpdate upd(const struct fx *f, const char *event_id,
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

static void fx_event(struct fx *f, const char *event_id, Patron__V1__EventKind kind, int64_t at)
{
    Patron__V1__ProfileUpdate u = upd(f, event_id, kind, at);
    fx_apply(f, &u);
}

static void expect_message_id(const struct fx *f, const struct sent_rec *r, const char *event_id,
                              int64_t trigger_at)
{
    char want[PATRON_MESSAGE_ID_LEN + 1];
    patron_campaign_message_id(r->campaign, f->customer, event_id, trigger_at, want);
    cr_expect_str_eq(r->message_id, want, "%s at %lld", r->campaign, (long long)r->at);
}

/* ---- every campaign of the example through its fire path ---------------------------- */

enum op { OP_END, OP_UPDATE, OP_FIRE };

struct step {
    enum op op;
    Patron__V1__EventKind kind;
    int64_t at; /* the event time, or fire_due's bound */
    const char *event_id;
    const char *segment, *previous_segment, *tier, *previous_tier, *birthday;
};

struct want_send {
    const char *campaign;
    int step; /* the step that sends it */
    int64_t at;
    const char *event_id; /* the trigger's; "" for birthdays */
};

struct path_case {
    const char *name;
    struct step steps[6];
    struct want_send want[6];
};

#define U(k, at_, id, ...)                                                                         \
    {                                                                                              \
        OP_UPDATE, PATRON__V1__EVENT_KIND__##k, at_, id, __VA_ARGS__                               \
    }
#define F(bound)                                                                                   \
    {                                                                                              \
        OP_FIRE, 0, bound, NULL, NULL, NULL, NULL, NULL, NULL                                      \
    }

Test(campaign_engine, every_campaign_fires_table)
{
    const int64_t bd26 = utc(2026, 7, 20, 9, 0), bd27 = utc(2027, 7, 20, 9, 0);
    const int64_t leap26 = utc(2026, 2, 28, 10, 0), leap27 = utc(2027, 2, 28, 10, 0);
    const int64_t leap28 = utc(2028, 2, 29, 10, 0);
    const struct path_case cases[] = {
        {"cart-abandonment after 1h",
         {U(CART_ADD, T, "e1", NULL), F(T + H - 1), F(T + H)},
         {{CART, 2, T + H, "e1"}}},
        {"browse-abandonment after 2h",
         {U(VIEW, T, "e1", NULL), F(T + 2 * H - 1), F(T + 2 * H)},
         {{BROWSE, 2, T + 2 * H, "e1"}}},
        {"cross-sell at once", {U(PURCHASE, T, "e1", NULL)}, {{CROSS, 0, T, "e1"}}},
        {"review-request after 3d",
         {U(PURCHASE, T, "e1", NULL), F(T + 3 * DAY - 1), F(T + 3 * DAY)},
         {{CROSS, 0, T, "e1"}, {REVIEW, 2, T + 3 * DAY, "e1"}}},
        {"winback 60d after the last purchase",
         {U(PURCHASE, T, "e1", NULL), F(T + 60 * DAY - 1), F(T + 60 * DAY)},
         {{CROSS, 0, T, "e1"}, {REVIEW, 1, T + 3 * DAY, "e1"}, {WINBACK, 2, T + 60 * DAY, "e1"}}},
        /* a purchase on day 10 moves the win-back to day 70: nothing on day 60 */
        {"winback moved by a later purchase",
         {U(PURCHASE, T, "e1", NULL), U(PURCHASE, T + 10 * DAY, "e2", NULL), F(T + 70 * DAY - 1),
          F(T + 70 * DAY)},
         {{CROSS, 0, T, "e1"},
          {REVIEW, 1, T + 3 * DAY, "e1"},
          {CROSS, 1, T + 10 * DAY, "e2"},
          {REVIEW, 2, T + 13 * DAY, "e2"},
          {WINBACK, 3, T + 70 * DAY, "e2"}}},
        {"at-risk when the segment becomes at_risk",
         {U(REFUND, T, "e1", "at_risk", "loyal")},
         {{ATRISK, 0, T, "e1"}}},
        {"at-risk not while it stays at_risk", {U(REFUND, T, "e1", "at_risk", "at_risk")}, {{0}}},
        {"tier-upgrade on a rise",
         {U(PURCHASE, T, "e1", NULL, NULL, "gold", "silver")},
         {{CROSS, 0, T, "e1"}, {TIER, 0, T, "e1"}}},
        {"birthday at 10:00 local, every year",
         {U(CUSTOMER, T, "e1", NULL, NULL, NULL, NULL, "07-20"), F(bd26 - 1), F(bd26), F(bd27 - 1),
          F(bd27)},
         {{BDAY, 2, bd26, ""}, {BDAY, 4, bd27, ""}}},
        {"29 February on the 28th in common years",
         {U(CUSTOMER, utc(2026, 1, 10, 12, 0), "e1", NULL, NULL, NULL, NULL, "02-29"), F(leap26),
          F(leap27), F(leap28 - 1), F(leap28)},
         {{BDAY, 1, leap26, ""}, {BDAY, 2, leap27, ""}, {BDAY, 4, leap28, ""}}},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct path_case *c = &cases[i];
        struct fx f;
        fx_open(&f, example, false);
        for (int k = 0; k < 6 && c->steps[k].op != OP_END; k++) {
            const struct step *s = &c->steps[k];
            if (s->op == OP_FIRE) {
                fx_fire(&f, s->at);
                continue;
            }
            Patron__V1__ProfileUpdate u = upd(&f, s->event_id, s->kind, s->at);
            if (s->segment)
                u.segment = (char *)s->segment;
            if (s->previous_segment)
                u.previous_segment = (char *)s->previous_segment;
            if (s->tier)
                u.tier = (char *)s->tier;
            if (s->previous_tier)
                u.previous_tier = (char *)s->previous_tier;
            if (s->birthday)
                u.birthday = (char *)s->birthday;
            fx_apply(&f, &u);
        }
        size_t want = 0;
        while (want < 6 && c->want[want].campaign)
            want++;
        cr_expect_eq(f.n_sent, want, "%s: %zu sends, want %zu", c->name, f.n_sent, want);
        for (size_t k = 0; k < f.n_sent && k < want; k++) {
            const struct sent_rec *r = &f.sent[k];
            const struct want_send *w = &c->want[k];
            cr_expect_str_eq(r->campaign, w->campaign, "%s: send %zu", c->name, k);
            cr_expect_eq(r->call, w->step, "%s: send %zu (%s) at step %d, want %d", c->name, k,
                         r->campaign, r->call, w->step);
            cr_expect_eq(r->at, w->at, "%s: send %zu at %lld, want %lld", c->name, k,
                         (long long)r->at, (long long)w->at);
            cr_expect_str_eq(r->trigger_event_id, w->event_id, "%s: send %zu", c->name, k);
            expect_message_id(&f, r, w->event_id, w->at);
        }
        /* every send is counted once, under its variant */
        int64_t sent = 0;
        for (size_t k = 0; k < f.n_counts; k++)
            if (f.counts[k].stat == PATRON_STAT_SENT)
                sent += f.counts[k].delta;
        cr_expect_eq(sent, (int64_t)want, "%s", c->name);
        fx_close(&f);
    }
}

Test(campaign_engine, birthday_is_rearmed_for_next_year)
{
    struct fx f;
    fx_open(&f, example, false);
    Patron__V1__ProfileUpdate u = upd(&f, "e1", PATRON__V1__EVENT_KIND__CUSTOMER, T);
    u.birthday = "07-20";
    u.orders = u.last_purchase_ms = 0; /* no segment timer: the birthday is all there is */
    fx_apply(&f, &u);
    const struct patron_engine_timer *t = fx_timer(&f, BDAY);
    cr_assert_not_null(t);
    cr_expect_eq(t->kind, PATRON_TIMER_BIRTHDAY);
    cr_expect_eq(t->fire_at_ms, utc(2026, 7, 20, 9, 0)); /* 10:00 BST */
    cr_expect_eq(patron_customer_state_next_fire(&f.st), utc(2026, 7, 20, 9, 0));
    fx_fire(&f, utc(2026, 7, 20, 9, 0));
    cr_expect_eq(fx_sends_of(&f, BDAY), 1);
    t = fx_timer(&f, BDAY);
    cr_assert_not_null(t);
    cr_expect_eq(t->fire_at_ms, utc(2027, 7, 20, 9, 0));
    cr_expect_eq(t->trigger_at_ms, utc(2027, 7, 20, 9, 0));
    cr_expect_str_eq(t->trigger_event_id, "");
    cr_expect_eq(f.st.n_timers, 1);

    /* a suppressed birthday (no sms consent) comes back next year all the same */
    fx_forget(&f);
    u = upd(&f, "e2", PATRON__V1__EVENT_KIND__REVIEW, utc(2027, 1, 1, 12, 0));
    u.birthday = "07-20";
    u.orders = u.last_purchase_ms = 0;
    u.consent_sms = false;
    fx_apply(&f, &u);
    fx_fire(&f, utc(2027, 7, 20, 9, 0));
    cr_expect_eq(fx_stat(&f, BDAY, PATRON_STAT_CONSENT), 1);
    cr_expect_eq(fx_sends_of(&f, BDAY), 0);
    t = fx_timer(&f, BDAY);
    cr_assert_not_null(t);
    cr_expect_eq(t->fire_at_ms, utc(2028, 7, 20, 9, 0));
    fx_close(&f);
}

/* at_risk is reached by time passing, with no event: 5 orders (F 3), the last
 * on day 0, is loyal until recency passes 90 days, at_risk from day 91. */
Test(campaign_engine, at_risk_by_recency_alone)
{
    struct fx f;
    fx_open(&f, example, false);
    Patron__V1__ProfileUpdate u = upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
    u.orders = 5;
    u.segment = u.previous_segment = "loyal";
    fx_apply(&f, &u);
    fx_forget(&f);
    fx_fire(&f, T + 91 * DAY - 1);
    cr_expect_eq(fx_decisions(&f, ATRISK), 0, "at_risk before day 91");
    fx_fire(&f, T + 91 * DAY);
    cr_assert_eq(fx_sends_of(&f, ATRISK), 1);
    const struct sent_rec *r = &f.sent[f.n_sent - 1];
    cr_expect_str_eq(r->campaign, ATRISK);
    cr_expect_eq(r->at, T + 91 * DAY);
    cr_expect_str_eq(r->trigger_event_id, "");
    expect_message_id(&f, r, "", T + 91 * DAY);
    /* still at_risk (then R 1) is no new crossing */
    fx_forget(&f);
    fx_fire(&f, T + 200 * DAY);
    cr_expect_eq(fx_decisions(&f, ATRISK), 0);
    /* a purchase makes them loyal again; the next lapse is a new crossing */
    u = upd(&f, "p2", PATRON__V1__EVENT_KIND__PURCHASE, T + 210 * DAY);
    u.orders = 6;
    u.segment = "loyal";
    u.previous_segment = "at_risk";
    fx_apply(&f, &u);
    fx_fire(&f, T + 301 * DAY);
    cr_expect_eq(fx_sends_of(&f, ATRISK), 1);
    cr_expect_eq(fx_decisions(&f, ATRISK), 1);
    fx_close(&f);
}

struct delayed_segment_case {
    const char *name;
    int64_t purchase_at;  /* 5 orders, the last then */
    int64_t event_at;     /* a REFUND announcing at_risk, or 0 */
    int64_t later_update; /* an update while the decision waits for the morning */
    int64_t want_at;
};

/* A segment_becomes decision delayed by quiet hours waits in the campaign's
 * one timer: re-arming the recency timer at the next update must not replace
 * it (the decision would be lost, counted nowhere). */
Test(campaign_engine, delayed_segment_decision_is_not_replaced_table)
{
    const int64_t night = utc(2026, 7, 1, 22, 0); /* 23:00 BST */
    const struct delayed_segment_case cases[] = {
        {"announced by an event at night", night - 20 * DAY, night, night + H,
         utc(2026, 7, 2, 8, 0)},
        {"reached by recency at night", night, 0, night + 91 * DAY + H, utc(2026, 10, 1, 8, 0)},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct delayed_segment_case *c = &cases[i];
        struct fx f;
        fx_open(&f, example, false);
        Patron__V1__ProfileUpdate u =
            upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, c->purchase_at);
        u.orders = 5;
        u.segment = u.previous_segment = "loyal";
        fx_apply(&f, &u);
        if (c->event_at) {
            u = upd(&f, "r1", PATRON__V1__EVENT_KIND__REFUND, c->event_at);
            u.orders = 5;
            u.last_purchase_ms = c->purchase_at;
            u.segment = "at_risk";
            u.previous_segment = "loyal";
            fx_apply(&f, &u);
        }
        fx_forget(&f);
        u = upd(&f, "v1", PATRON__V1__EVENT_KIND__REVIEW, c->later_update);
        u.orders = 5;
        u.last_purchase_ms = c->purchase_at;
        u.segment = u.previous_segment = "at_risk";
        fx_apply(&f, &u);
        cr_expect_eq(fx_decisions(&f, ATRISK), 0, "%s: still delayed", c->name);
        fx_fire(&f, c->want_at);
        cr_expect_eq(fx_sends_of(&f, ATRISK), 1, "%s: the delayed at-risk email is lost", c->name);
        for (size_t k = 0; k < f.n_sent; k++)
            if (strcmp(f.sent[k].campaign, ATRISK) == 0)
                cr_expect_eq(f.sent[k].at, c->want_at, "%s", c->name);
        fx_close(&f);
    }
}

Test(campaign_engine, cart_variant_and_message_id_are_deterministic)
{
    const struct patron_campaigns *cs = NULL;
    bool seen_a = false, seen_b = false;
    for (int i = 0; i < 40; i++) {
        struct fx f;
        fx_open(&f, example, false);
        cs = f.cs;
        snprintf(f.customer, sizeof(f.customer), "shopper-%d", i);
        if (patron_campaign_in_control(f.customer, 500)) {
            fx_close(&f);
            continue;
        }
        patron_customer_state_free(&f.st);
        patron_customer_state_init(&f.st, f.customer);
        fx_event(&f, "evt-42", PATRON__V1__EVENT_KIND__CART_ADD, T);
        fx_fire(&f, T + H);
        cr_assert_eq(f.n_sent, 1, "%s", f.customer);
        const struct patron_campaign_variant *v =
            patron_campaign_variant_of(patron_campaigns_find(cs, CART), f.customer);
        cr_assert_not_null(v);
        cr_expect_str_eq(f.sent[0].variant, v->id, "%s", f.customer);
        seen_a |= strcmp(v->id, "A") == 0;
        seen_b |= strcmp(v->id, "B") == 0;
        expect_message_id(&f, &f.sent[0], "evt-42", T + H);
        /* the count carries the variant */
        cr_expect_eq(f.n_counts, 1);
        cr_expect_str_eq(f.counts[0].variant, v->id);
        cr_expect_eq(f.counts[0].stat, PATRON_STAT_SENT);
        cr_expect_eq(f.counts[0].delta, 1);
        /* the message borrows the campaign of the engine's file */
        cr_expect_eq(f.out.sends[0].campaign, patron_campaigns_find(cs, CART));
        cr_expect_eq(f.out.sends[0].decision.variant, v);
        fx_close(&f);
    }
    cr_expect(seen_a && seen_b, "both variants are chosen");
}

/* ---- exits ---------------------------------------------------------------------------- */

struct exit_case {
    const char *campaign;
    Patron__V1__EventKind trigger;
    int64_t wait;
    Patron__V1__EventKind then;
    int64_t then_at; /* after the trigger at T */
    bool exited;
};

Test(campaign_engine, unless_exits_only_before_the_wait_ends_table)
{
    const struct exit_case cases[] = {
        {CART, PATRON__V1__EVENT_KIND__CART_ADD, H, PATRON__V1__EVENT_KIND__PURCHASE, 1, true},
        {CART, PATRON__V1__EVENT_KIND__CART_ADD, H, PATRON__V1__EVENT_KIND__PURCHASE, H - 1, true},
        {CART, PATRON__V1__EVENT_KIND__CART_ADD, H, PATRON__V1__EVENT_KIND__PURCHASE, H, false},
        {CART, PATRON__V1__EVENT_KIND__CART_ADD, H, PATRON__V1__EVENT_KIND__PURCHASE, H + 1, false},
        {CART, PATRON__V1__EVENT_KIND__CART_ADD, H, PATRON__V1__EVENT_KIND__VIEW, 30 * MIN, false},
        {CART, PATRON__V1__EVENT_KIND__CART_ADD, H, PATRON__V1__EVENT_KIND__REFUND, 30 * MIN,
         false},
        {BROWSE, PATRON__V1__EVENT_KIND__VIEW, 2 * H, PATRON__V1__EVENT_KIND__CART_ADD, 2 * H - 1,
         true},
        {BROWSE, PATRON__V1__EVENT_KIND__VIEW, 2 * H, PATRON__V1__EVENT_KIND__PURCHASE, H, true},
        {BROWSE, PATRON__V1__EVENT_KIND__VIEW, 2 * H, PATRON__V1__EVENT_KIND__CART_ADD, 2 * H,
         false},
        {BROWSE, PATRON__V1__EVENT_KIND__VIEW, 2 * H, PATRON__V1__EVENT_KIND__REVIEW, H, false},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct exit_case *c = &cases[i];
        struct fx f;
        fx_open(&f, example, false);
        fx_event(&f, "e1", c->trigger, T);
        cr_assert_not_null(fx_timer(&f, c->campaign), "row %zu", i);
        fx_event(&f, "e2", c->then, T + c->then_at);
        if (c->exited)
            cr_expect_null(fx_timer(&f, c->campaign), "row %zu: the exit ends the wait", i);
        fx_fire(&f, T + 2 * DAY);
        cr_expect_eq(fx_stat(&f, c->campaign, PATRON_STAT_EXITED), c->exited, "row %zu", i);
        cr_expect_eq(fx_stat(&f, c->campaign, PATRON_STAT_SENT), !c->exited, "row %zu", i);
        cr_expect_eq(fx_decisions(&f, c->campaign), 1, "row %zu: one outcome", i);
        cr_expect_eq(fx_sends_of(&f, c->campaign), !c->exited, "row %zu", i);
        for (size_t k = 0; k < f.n_sent; k++)
            if (strcmp(f.sent[k].campaign, c->campaign) == 0)
                cr_expect_eq(f.sent[k].at, T + c->wait, "row %zu", i);
        fx_close(&f);
    }
}

/* `unless` leaves the campaign when it happens *during* the wait (the
 * campaigns file: "leave the campaign if this happens during the wait"): a
 * purchase from before the cart add that arrives late is no reason to leave. */
Test(campaign_engine, unless_from_before_the_wait_does_not_exit)
{
    struct fx f;
    fx_open(&f, example, false);
    fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T);
    fx_event(&f, "p0", PATRON__V1__EVENT_KIND__PURCHASE, T - 10 * MIN);
    fx_fire(&f, T + H);
    cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_EXITED), 0, "exited by a purchase before the wait");
    cr_expect_eq(fx_sends_of(&f, CART), 1);
    fx_close(&f);
}

/* ---- suppression ---------------------------------------------------------------------- */

struct preset_send {
    int64_t ago; /* before the decision; 0 ends the list */
    enum patron_campaign_channel ch;
};

struct supp_case {
    const char *name;
    const char *campaign; /* CART (decided after its wait) or CROSS (at once) */
    bool control;
    bool consent;
    int64_t orders, last_purchase_ago; /* RFM inputs at the decision; ago 0: never bought */
    int64_t prior_send_ago;            /* an earlier send of the same campaign; 0: none */
    struct preset_send sends[5];
    enum patron_stat want;
};

#define SMS PATRON_CAMPAIGN_CHANNEL_SMS
#define PUSH PATRON_CAMPAIGN_CHANNEL_PUSH
#define EMAIL PATRON_CAMPAIGN_CHANNEL_EMAIL

Test(campaign_engine, suppression_reasons_table)
{
    const struct supp_case cases[] = {
        {"sent", CART, false, true, 1, DAY, 0, {{0}}, PATRON_STAT_SENT},
        {"consent", CART, false, false, 1, DAY, 0, {{0}}, PATRON_STAT_CONSENT},
        {"consent first",
         CART,
         true,
         false,
         0,
         0,
         0,
         {{H, PUSH}, {H, PUSH}, {H, PUSH}},
         PATRON_STAT_CONSENT},
        {"audience: never bought (lost)", CART, false, true, 0, 0, 0, {{0}}, PATRON_STAT_AUDIENCE},
        /* recency moves on: 100 days since the last of 3 orders is hibernating */
        {"audience: hibernating", CART, false, true, 3, 100 * DAY, 0, {{0}}, PATRON_STAT_AUDIENCE},
        {"audience before control", CART, true, true, 0, 0, 0, {{0}}, PATRON_STAT_AUDIENCE},
        {"control group", CART, true, true, 1, DAY, 0, {{0}}, PATRON_STAT_CONTROL_GROUP},
        /* the holdout meets the caps too: no biased control group */
        {"caps before control",
         CART,
         true,
         true,
         1,
         DAY,
         0,
         {{H, PUSH}, {H, PUSH}, {H, PUSH}},
         PATRON_STAT_FREQUENCY_CAP},
        {"cooldown", CART, false, true, 1, DAY, H, {{0}}, PATRON_STAT_COOLDOWN},
        {"cooldown over after 1d", CART, false, true, 1, DAY, DAY, {{0}}, PATRON_STAT_SENT},
        {"push cap 3/1d",
         CART,
         false,
         true,
         1,
         DAY,
         0,
         {{H, PUSH}, {2 * H, PUSH}, {3 * H, PUSH}},
         PATRON_STAT_FREQUENCY_CAP},
        {"push cap window (now-1d, now]",
         CART,
         false,
         true,
         1,
         DAY,
         0,
         {{DAY, PUSH}, {H, PUSH}, {H, PUSH}},
         PATRON_STAT_SENT},
        {"any cap 4/1d",
         CART,
         false,
         true,
         1,
         DAY,
         0,
         {{H, PUSH}, {2 * H, SMS}, {2 * H, EMAIL}, {3 * H, EMAIL}},
         PATRON_STAT_FREQUENCY_CAP},
        {"any below its cap",
         CART,
         false,
         true,
         1,
         DAY,
         0,
         {{H, PUSH}, {2 * H, SMS}, {2 * H, EMAIL}},
         PATRON_STAT_SENT},
        {"email cap 2/7d",
         CROSS,
         false,
         true,
         1,
         DAY,
         0,
         {{6 * DAY, EMAIL}, {DAY, EMAIL}},
         PATRON_STAT_FREQUENCY_CAP},
        {"email cap window",
         CROSS,
         false,
         true,
         1,
         DAY,
         0,
         {{7 * DAY, EMAIL}, {DAY, EMAIL}},
         PATRON_STAT_SENT},
        {"email cap ignores push",
         CROSS,
         false,
         true,
         1,
         DAY,
         0,
         {{DAY + H, PUSH}, {DAY, EMAIL}},
         PATRON_STAT_SENT},
        {"cross-sell consent", CROSS, false, false, 1, DAY, 0, {{0}}, PATRON_STAT_CONSENT},
        {"cross-sell control", CROSS, true, true, 1, DAY, 0, {{0}}, PATRON_STAT_CONTROL_GROUP},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct supp_case *c = &cases[i];
        const bool cart = strcmp(c->campaign, CART) == 0;
        const int64_t decide_at = cart ? T + H : T;
        struct fx f;
        fx_open(&f, example, c->control);
        for (size_t k = 0; k < 5 && c->sends[k].ago; k++)
            f.st.sends[f.st.n_sends++] = (struct patron_send){.at_ms = decide_at - c->sends[k].ago,
                                                              .channel = c->sends[k].ch};
        if (c->prior_send_ago) {
            /* the same campaign sent `ago` before this decision */
            fx_event(&f, "e0", PATRON__V1__EVENT_KIND__CART_ADD, decide_at - c->prior_send_ago - H);
            fx_fire(&f, decide_at - c->prior_send_ago);
            cr_assert_eq(fx_stat(&f, CART, PATRON_STAT_SENT), 1, "%s: the earlier send", c->name);
        }
        Patron__V1__ProfileUpdate u =
            upd(&f, "e1",
                cart ? PATRON__V1__EVENT_KIND__CART_ADD : PATRON__V1__EVENT_KIND__PURCHASE, T);
        u.consent_sms = u.consent_push = u.consent_email = c->consent;
        u.orders = c->orders;
        u.last_purchase_ms = c->last_purchase_ago ? decide_at - c->last_purchase_ago : 0;
        fx_forget(&f);
        fx_apply(&f, &u);
        if (cart) {
            cr_expect_eq(fx_decisions(&f, CART), 0, "%s: decided before the wait ended", c->name);
            fx_fire(&f, decide_at);
        }
        cr_expect_eq(fx_stat(&f, c->campaign, c->want), 1, "%s: want %s", c->name,
                     patron_stat_name(c->want));
        cr_expect_eq(fx_decisions(&f, c->campaign), 1, "%s: one outcome", c->name);
        cr_expect_eq(fx_sends_of(&f, c->campaign), c->want == PATRON_STAT_SENT, "%s", c->name);
        /* the control group's "would have sent" is a touch a purchase may convert */
        bool touched = false;
        for (size_t k = 0; k < f.st.n_touches; k++)
            if (strcmp(f.st.touches[k].campaign_id, c->campaign) == 0 &&
                f.st.touches[k].at_ms == decide_at) {
                touched = true;
                cr_expect_eq(f.st.touches[k].control, c->want == PATRON_STAT_CONTROL_GROUP, "%s",
                             c->name);
            }
        cr_expect_eq(touched, c->want == PATRON_STAT_SENT || c->want == PATRON_STAT_CONTROL_GROUP,
                     "%s", c->name);
        fx_close(&f);
    }
}

struct revoke_case {
    Patron__V1__Channel channel;
    bool granted;
    const char *ended[2];
};

Test(campaign_engine, revoking_consent_ends_that_channels_waits_table)
{
    const char *const waiting[] = {CART, BROWSE, REVIEW, WINBACK};
    const struct revoke_case cases[] = {
        {PATRON__V1__CHANNEL__PUSH, false, {CART, BROWSE}},
        {PATRON__V1__CHANNEL__EMAIL, false, {REVIEW}},
        /* the win-back is a recurring timer, not a pending message: it stays,
         * and consent is checked when it fires */
        {PATRON__V1__CHANNEL__SMS, false, {NULL}},
        {PATRON__V1__CHANNEL__PUSH, true, {NULL}},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct revoke_case *c = &cases[i];
        struct fx f;
        fx_open(&f, example, false);
        fx_event(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
        fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T + MIN);
        fx_event(&f, "v1", PATRON__V1__EVENT_KIND__VIEW, T + 2 * MIN);
        for (size_t k = 0; k < PATRON_ARRAY_LEN(waiting); k++)
            cr_assert_not_null(fx_timer(&f, waiting[k]), "row %zu: %s", i, waiting[k]);
        fx_forget(&f);
        Patron__V1__ProfileUpdate u = upd(&f, "k1", PATRON__V1__EVENT_KIND__CONSENT, T + 10 * MIN);
        u.consent_channel = c->channel;
        u.consent_granted = c->granted;
        u.consent_push = !(c->channel == PATRON__V1__CHANNEL__PUSH && !c->granted);
        u.consent_email = !(c->channel == PATRON__V1__CHANNEL__EMAIL && !c->granted);
        u.consent_sms = !(c->channel == PATRON__V1__CHANNEL__SMS && !c->granted);
        fx_apply(&f, &u);
        for (size_t k = 0; k < PATRON_ARRAY_LEN(waiting); k++) {
            bool ended = (c->ended[0] && strcmp(c->ended[0], waiting[k]) == 0) ||
                         (c->ended[1] && strcmp(c->ended[1], waiting[k]) == 0);
            cr_expect_eq(fx_stat(&f, waiting[k], PATRON_STAT_CONSENT), ended, "row %zu: %s", i,
                         waiting[k]);
            cr_expect_eq(fx_timer(&f, waiting[k]) == NULL, ended, "row %zu: %s", i, waiting[k]);
        }
        cr_expect_eq(f.n_sent, 0, "row %zu", i);
        fx_close(&f);
    }
}

/* The recency timer of a segment_becomes campaign is no decision waiting:
 * revoking its channel's consent must not count an at-risk outcome for a
 * customer who never became at risk. */
Test(campaign_engine, revoking_consent_counts_no_phantom_segment_decision)
{
    struct fx f;
    fx_open(&f, example, false);
    fx_event(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
    fx_forget(&f);
    Patron__V1__ProfileUpdate u = upd(&f, "k1", PATRON__V1__EVENT_KIND__CONSENT, T + 10 * MIN);
    u.consent_channel = PATRON__V1__CHANNEL__EMAIL;
    u.consent_granted = false;
    u.consent_email = false;
    fx_apply(&f, &u);
    cr_expect_eq(fx_stat(&f, REVIEW, PATRON_STAT_CONSENT), 1); /* a real wait, ended */
    cr_expect_eq(fx_decisions(&f, ATRISK), 0, "at-risk counted %lld times",
                 (long long)fx_decisions(&f, ATRISK));
    fx_close(&f);
}

Test(campaign_engine, control_touch_converts_as_control_conversion)
{
    struct fx f;
    fx_open(&f, example, true);
    fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T);
    fx_fire(&f, T + H);
    cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_CONTROL_GROUP), 1);
    cr_expect_eq(f.n_sent, 0);
    const struct patron_campaign_variant *v =
        patron_campaign_variant_of(patron_campaigns_find(f.cs, CART), f.customer);
    cr_assert_not_null(v);
    cr_assert_eq(f.n_counts, 1);
    cr_expect_str_eq(f.counts[0].variant, v->id);

    fx_forget(&f);
    Patron__V1__ProfileUpdate u = upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T + 2 * H);
    u.value_cents = 4321;
    fx_apply(&f, &u);
    cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_CONTROL_CONVERSIONS), 1);
    cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_CONTROL_REVENUE_CENTS), 4321);
    cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_CONVERSIONS), 0);
    cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_REVENUE_CENTS), 0);
    for (size_t k = 0; k < f.n_counts; k++)
        if (strcmp(f.counts[k].campaign_id, CART) == 0)
            cr_expect_str_eq(f.counts[k].variant, v->id);
    /* the holdout is global: the purchase's cross-sell is held out too */
    cr_expect_eq(fx_stat(&f, CROSS, PATRON_STAT_CONTROL_GROUP), 1);
    cr_expect_eq(f.n_sent, 0);
    fx_close(&f);
}

/* ---- tier-upgrade: transactional ------------------------------------------------------- */

struct tier_case {
    bool control;
    bool consent;
    enum patron_stat want;
};

Test(campaign_engine, tier_upgrade_ignores_caps_and_quiet_hours_table)
{
    const int64_t night = utc(2026, 7, 1, 22, 0); /* 23:00 in London */
    const struct tier_case cases[] = {
        {false, true, PATRON_STAT_SENT},
        {false, false, PATRON_STAT_CONSENT},
        {true, true, PATRON_STAT_CONTROL_GROUP},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct tier_case *c = &cases[i];
        struct fx f;
        fx_open(&f, example, c->control);
        /* push and `any` caps are full */
        for (int k = 0; k < 4; k++)
            f.st.sends[f.st.n_sends++] =
                (struct patron_send){.at_ms = night - (k + 1) * H, .channel = PUSH};
        Patron__V1__ProfileUpdate u = upd(&f, "r1", PATRON__V1__EVENT_KIND__REVIEW, night);
        u.tier = "gold";
        u.previous_tier = "silver";
        u.consent_push = c->consent;
        fx_apply(&f, &u);
        cr_expect_eq(fx_stat(&f, TIER, c->want), 1, "row %zu", i);
        cr_expect_eq(fx_decisions(&f, TIER), 1, "row %zu", i);
        cr_expect_null(fx_timer(&f, TIER), "row %zu: not delayed", i);
        cr_expect_eq(f.n_sent, c->want == PATRON_STAT_SENT, "row %zu", i);
        if (f.n_sent == 1)
            cr_expect_eq(f.sent[0].at, night, "row %zu", i);
        fx_close(&f);
    }
}

/* ---- quiet hours ---------------------------------------------------------------------- */

struct quiet_case {
    const char *zone;
    int64_t cart_add_at; /* the cart campaign decides 1h later */
    int64_t want_at;     /* when it is sent */
};

Test(campaign_engine, quiet_hours_delay_in_the_customers_zone_table)
{
    const struct quiet_case cases[] = {
        /* 21:30 BST -> 09:00 BST next morning */
        {"Europe/London", utc(2026, 7, 1, 19, 30), utc(2026, 7, 2, 8, 0)},
        /* spring forward, 2026-03-29: 21:30 GMT -> 09:00 BST = 08:00Z */
        {"Europe/London", utc(2026, 3, 28, 20, 30), utc(2026, 3, 29, 8, 0)},
        {"Europe/London", utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 8, 0)},
        /* fall back, 2026-10-25: 21:30 BST -> 09:00 GMT = 09:00Z */
        {"Europe/London", utc(2026, 10, 24, 19, 30), utc(2026, 10, 25, 9, 0)},
        {"Europe/London", utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 9, 0)},
        /* the window's end is not in it: 09:00 BST sends at once */
        {"Europe/London", utc(2026, 7, 1, 7, 0), utc(2026, 7, 1, 8, 0)},
        /* 20:59 BST is before the window */
        {"Europe/London", utc(2026, 7, 1, 18, 59), utc(2026, 7, 1, 19, 59)},
        /* the same instant is 16:30 in New York */
        {"America/New_York", utc(2026, 7, 1, 19, 30), utc(2026, 7, 1, 20, 30)},
        /* 21:30 IST -> 09:00 IST = 03:30Z */
        {"Asia/Kolkata", utc(2026, 7, 1, 15, 0), utc(2026, 7, 2, 3, 30)},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct quiet_case *c = &cases[i];
        const int64_t fire = c->cart_add_at + H;
        struct fx f;
        fx_open(&f, example, false);
        f.zone = c->zone;
        fx_event(&f, "e1", PATRON__V1__EVENT_KIND__CART_ADD, c->cart_add_at);
        fx_forget(&f);
        fx_fire(&f, fire);
        if (c->want_at != fire) {
            /* delayed is not an outcome: nothing counted, the same trigger waits */
            cr_expect_eq(f.n_counts, 0, "row %zu", i);
            const struct patron_engine_timer *t = fx_timer(&f, CART);
            cr_assert_not_null(t, "row %zu", i);
            cr_expect_eq(t->fire_at_ms, c->want_at, "row %zu: delayed to %lld", i,
                         (long long)t->fire_at_ms);
            cr_expect_eq(t->trigger_at_ms, fire, "row %zu", i);
            cr_expect_str_eq(t->trigger_event_id, "e1", "row %zu", i);
            cr_expect_eq(t->kind, PATRON_TIMER_WAIT, "row %zu", i);
            cr_expect_eq(patron_customer_state_next_fire(&f.st), c->want_at, "row %zu", i);
            fx_fire(&f, c->want_at - 1);
            cr_expect_eq(f.n_counts, 0, "row %zu", i);
            fx_fire(&f, c->want_at);
        }
        cr_assert_eq(f.n_sent, 1, "row %zu", i);
        cr_expect_eq(f.sent[0].at, c->want_at, "row %zu: sent at %lld", i, (long long)f.sent[0].at);
        expect_message_id(&f, &f.sent[0], "e1", fire);
        cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_SENT), 1, "row %zu", i);
        cr_expect_eq(fx_decisions(&f, CART), 1, "row %zu", i);
        cr_expect_null(fx_timer(&f, CART), "row %zu", i);
        fx_close(&f);
    }
}

/* A campaign without a trigger event: the delayed decision keeps the id of its
 * original time, and next year's timer counts from it. */
Test(campaign_engine, quiet_hours_keep_the_message_id_of_a_timed_trigger)
{
    static const char early_birthday[] = EX_DEFAULTS EX_CART EX_BIRTHDAY_AT("08:00");
    struct fx f;
    fx_open(&f, early_birthday, false);
    Patron__V1__ProfileUpdate u = upd(&f, "e1", PATRON__V1__EVENT_KIND__CUSTOMER, T);
    u.birthday = "07-20";
    fx_apply(&f, &u);
    const int64_t at8 = utc(2026, 7, 20, 7, 0), at9 = utc(2026, 7, 20, 8, 0); /* BST */
    fx_fire(&f, at8);
    cr_expect_eq(f.n_counts, 0);
    const struct patron_engine_timer *t = fx_timer(&f, BDAY);
    cr_assert_not_null(t);
    cr_expect_eq(t->fire_at_ms, at9);
    cr_expect_eq(t->trigger_at_ms, at8);
    fx_fire(&f, at9);
    cr_assert_eq(f.n_sent, 1);
    cr_expect_eq(f.sent[0].at, at9);
    expect_message_id(&f, &f.sent[0], "", at8);
    t = fx_timer(&f, BDAY);
    cr_assert_not_null(t);
    cr_expect_eq(t->fire_at_ms, utc(2027, 7, 20, 7, 0));
    fx_close(&f);
}

/* ---- attribution ---------------------------------------------------------------------- */

struct attr_case {
    int64_t purchase_after; /* the at-risk email's send */
    bool converts;
    bool next_converts; /* another purchase a minute later */
};

Test(campaign_engine, attribution_window_table)
{
    const struct attr_case cases[] = {
        {-H, false, false}, /* a late event from before the send */
        {0, false, true},   /* not strictly after */
        {1, true, false},   /* converted once only */
        {3 * DAY, true, false},
        {7 * DAY, true, false}, /* the window's edge */
        {7 * DAY + 1, false, false},
        {30 * DAY, false, false},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct attr_case *c = &cases[i];
        struct fx f;
        fx_open(&f, example, false);
        Patron__V1__ProfileUpdate u = upd(&f, "s1", PATRON__V1__EVENT_KIND__REFUND, T);
        u.segment = "at_risk";
        u.previous_segment = "loyal";
        fx_apply(&f, &u);
        cr_assert_eq(fx_sends_of(&f, ATRISK), 1, "row %zu", i);
        fx_forget(&f);
        u = upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T + c->purchase_after);
        u.value_cents = 1234;
        fx_apply(&f, &u);
        cr_expect_eq(fx_stat(&f, ATRISK, PATRON_STAT_CONVERSIONS), c->converts, "row %zu", i);
        cr_expect_eq(fx_stat(&f, ATRISK, PATRON_STAT_REVENUE_CENTS), c->converts ? 1234 : 0,
                     "row %zu", i);
        cr_expect_eq(fx_stat(&f, ATRISK, PATRON_STAT_CONTROL_CONVERSIONS), 0, "row %zu", i);

        fx_forget(&f);
        fx_event(&f, "p2", PATRON__V1__EVENT_KIND__PURCHASE, T + c->purchase_after + MIN);
        cr_expect_eq(fx_stat(&f, ATRISK, PATRON_STAT_CONVERSIONS), c->next_converts,
                     "row %zu: the next purchase", i);
        /* the same purchase again (a replay) converts nothing */
        u = upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T + c->purchase_after);
        u.value_cents = 1234;
        u.replayed = true;
        fx_apply(&f, &u);
        cr_expect(f.out.duplicate, "row %zu", i);
        cr_expect_eq(f.out.n_counts, 0, "row %zu", i);
        fx_close(&f);
    }
}

Test(campaign_engine, conversion_carries_the_variant)
{
    struct fx f;
    fx_open(&f, example, false);
    fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T);
    fx_fire(&f, T + H);
    cr_assert_eq(f.n_sent, 1);
    char variant[PATRON_CAMPAIGN_ID_MAX + 1];
    snprintf(variant, sizeof(variant), "%s", f.sent[0].variant);
    cr_assert(variant[0]);
    fx_forget(&f);
    Patron__V1__ProfileUpdate u = upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T + 5 * H);
    u.value_cents = 999;
    fx_apply(&f, &u);
    size_t seen = 0;
    for (size_t k = 0; k < f.n_counts; k++) {
        const struct patron_engine_count *n = &f.counts[k];
        if (strcmp(n->campaign_id, CART) != 0)
            continue;
        seen++;
        cr_expect_str_eq(n->variant, variant);
        cr_expect(n->stat == PATRON_STAT_CONVERSIONS || n->stat == PATRON_STAT_REVENUE_CENTS);
        cr_expect_eq(n->delta, n->stat == PATRON_STAT_CONVERSIONS ? 1 : 999);
    }
    cr_expect_eq(seen, 2);
    fx_close(&f);
}

/* ---- exactly once --------------------------------------------------------------------- */

struct dup_case {
    const char *event_id;
    int64_t offset;
    int64_t at;
    bool duplicate;
};

Test(campaign_engine, applied_updates_are_duplicates_table)
{
    /* the later rows would fire the cart timer, were they applied */
    const struct dup_case cases[] = {
        {"e1", 5, T, true},           /* the same update again */
        {"e1", 9, T, true},           /* the same event at another offset */
        {"e1", -1, T, true},          /* ... or not from Kafka */
        {"e2", 5, T + 2 * H, true},   /* an offset already applied */
        {"e2", 3, T + 2 * H, true},   /* ... or older */
        {"e2", 6, T + 2 * H, false},  /* new: it applies */
        {"e2", 7, T + 2 * H, true},   /* and is then remembered */
        {"e3", -1, T + 3 * H, false}, /* a new event outside Kafka */
    };
    struct fx f;
    fx_open(&f, example, false);
    Patron__V1__ProfileUpdate u = upd(&f, "e1", PATRON__V1__EVENT_KIND__CART_ADD, T);
    fx_apply_at(&f, &u, 5);
    cr_expect_eq(f.st.last_offset, 5);
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct dup_case *c = &cases[i];
        uint8_t *before = NULL;
        size_t before_len = patron_customer_state_encode(&f.st, &before);
        fx_forget(&f);
        u = upd(&f, c->event_id, PATRON__V1__EVENT_KIND__VIEW, c->at);
        fx_apply_at(&f, &u, c->offset);
        cr_expect_eq(f.out.duplicate, c->duplicate, "row %zu", i);
        uint8_t *after = NULL;
        size_t after_len = patron_customer_state_encode(&f.st, &after);
        bool same = before_len == after_len && memcmp(before, after, before_len) == 0;
        if (c->duplicate) {
            cr_expect(same, "row %zu: a duplicate changed the state", i);
            cr_expect_eq(f.out.n_sends, 0, "row %zu", i);
            cr_expect_eq(f.out.n_counts, 0, "row %zu", i);
        } else {
            cr_expect_not(same, "row %zu", i);
        }
        free(before);
        free(after);
    }
    cr_expect_eq(f.st.last_offset, 6);
    fx_close(&f);
}

/* An event id that fell out of the recent ids comes back (a replay after a
 * crash, with a new offset): the ledger, stored with the state, keeps its
 * decisions from happening again, though cooldown and caps would not. */
Test(campaign_engine, ledger_keeps_a_replayed_decision_from_counting_twice)
{
    struct fx f;
    fx_open(&f, example, false);
    fx_event(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
    fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T + MIN);
    fx_fire(&f, T + 2 * H);
    cr_assert_eq(fx_sends_of(&f, CROSS), 1);
    cr_assert_eq(fx_sends_of(&f, CART), 1);
    char id[32];
    for (int i = 0; i <= PATRON_ENGINE_RECENT_EVENTS; i++) {
        snprintf(id, sizeof(id), "v%d", i);
        fx_event(&f, id, PATRON__V1__EVENT_KIND__REVIEW, T + 2 * H + i * MIN);
    }
    /* what the shell stores and loads */
    uint8_t *buf = NULL;
    size_t len = patron_customer_state_encode(&f.st, &buf);
    patron_customer_state_free(&f.st);
    cr_assert_eq(patron_customer_state_decode(&f.st, buf, len), 0);
    free(buf);

    fx_forget(&f);
    Patron__V1__ProfileUpdate u = upd(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
    u.replayed = true;
    fx_apply(&f, &u);
    cr_assert_not(f.out.duplicate, "the event id should have left the recent ids");
    u = upd(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T + MIN);
    u.replayed = true;
    fx_apply(&f, &u);
    cr_assert_not(f.out.duplicate);
    fx_fire(&f, T + 3 * DAY);
    cr_expect_eq(fx_decisions(&f, CROSS), 0);
    cr_expect_eq(fx_decisions(&f, CART), 0);
    cr_expect_eq(fx_sends_of(&f, CROSS) + fx_sends_of(&f, CART), 0);
    /* what was still due goes on, once: the review request */
    cr_expect_eq(fx_sends_of(&f, REVIEW), 1);
    cr_expect_eq(fx_decisions(&f, REVIEW), 1);
    fx_close(&f);
}

/* ---- erasure, removed campaigns, timer order ---------------------------------------- */

Test(campaign_engine, erasure_empties_the_state)
{
    struct fx f;
    fx_open(&f, example, false);
    fx_event(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T);
    Patron__V1__ProfileUpdate u = upd(&f, "b1", PATRON__V1__EVENT_KIND__CUSTOMER, T + MIN);
    u.birthday = "07-20";
    fx_apply(&f, &u);
    u = upd(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T + 2 * MIN);
    u.birthday = "07-20";
    fx_apply(&f, &u);
    cr_assert_eq(fx_n_timers(&f), 4);
    cr_assert_gt(f.st.n_sends, 0);
    cr_assert_gt(f.st.n_touches, 0);
    fx_forget(&f);
    fx_event(&f, "x1", PATRON__V1__EVENT_KIND__ERASURE, T + 10 * MIN);
    cr_expect(f.out.erased);
    cr_expect_not(f.out.duplicate);
    cr_expect_eq(f.n_sent, 0);
    cr_expect_eq(f.n_counts, 0);
    struct patron_customer_state fresh;
    patron_customer_state_init(&fresh, f.customer);
    cr_expect_str_eq(f.st.customer_id, f.customer);
    cr_expect_eq(f.st.n_timers, 0);
    cr_expect_eq(f.st.n_sends, 0);
    cr_expect_eq(f.st.n_touches, 0);
    cr_expect_eq(f.st.n_last_sent, 0);
    cr_expect_eq(f.st.n_ledger, 0);
    cr_expect_eq(f.st.n_recent, 0);
    cr_expect_eq(f.st.last_offset, -1);
    cr_expect_str_eq(f.st.birthday, "");
    cr_expect_str_eq(f.st.time_zone, "");
    cr_expect_eq(f.st.orders, 0);
    cr_expect_eq(f.st.last_purchase_ms, 0);
    cr_expect_eq(patron_customer_state_next_fire(&f.st), INT64_MAX);
    uint8_t *a = NULL, *b = NULL;
    size_t la = patron_customer_state_encode(&f.st, &a);
    size_t lb = patron_customer_state_encode(&fresh, &b);
    cr_expect(la == lb && memcmp(a, b, la) == 0, "erased state is a fresh one");
    free(a);
    free(b);
    patron_customer_state_free(&fresh);
    fx_fire(&f, T + 400 * DAY);
    cr_expect_eq(f.n_counts, 0);
    fx_close(&f);
}

Test(campaign_engine, timers_of_a_removed_campaign_are_dropped)
{
    static const char without_cart[] =
        EX_DEFAULTS EX_BROWSE EX_CROSS EX_REVIEW EX_WINBACK EX_ATRISK EX_TIER EX_BIRTHDAY_AT(
            "10:00");
    struct fx f;
    fx_open(&f, example, false);
    fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T);
    fx_event(&f, "v1", PATRON__V1__EVENT_KIND__VIEW, T + MIN);
    cr_assert_not_null(fx_timer(&f, CART));
    cr_assert_not_null(fx_timer(&f, BROWSE));
    /* a reload swaps the campaigns */
    struct patron_campaigns *reloaded = parse(without_cart);
    f.e.campaigns = reloaded;
    fx_forget(&f);
    fx_fire(&f, T + DAY);
    cr_expect_eq(fx_sends_of(&f, BROWSE), 1);
    cr_expect_eq(fx_sends_of(&f, CART), 0);
    for (size_t k = 0; k < f.n_counts; k++)
        cr_expect_str_neq(f.counts[k].campaign_id, CART);
    cr_expect_null(fx_timer(&f, CART));
    cr_expect_eq(fx_n_timers(&f), 0);
    f.e.campaigns = f.cs;
    patron_campaigns_free(reloaded);
    fx_close(&f);
}

/* Timers fire in fire-time order, each decided at its own time: at T+10min
 * the three pushes of T-22h still fill the push cap, at T+2h5min they no
 * longer do. Decided at fire_due's bound, both reminders would go. */
Test(campaign_engine, fire_due_decides_in_order_at_each_timers_time)
{
    struct fx f;
    fx_open(&f, example, false);
    /* created in the reverse of their firing order */
    fx_event(&f, "p1", PATRON__V1__EVENT_KIND__PURCHASE, T - 3 * DAY + 5 * H); /* review T+5h */
    fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T - 50 * MIN);        /* cart T+10min */
    fx_event(&f, "v1", PATRON__V1__EVENT_KIND__VIEW, T + 5 * MIN);             /* browse T+2h5min */
    for (int k = 0; k < 3; k++)
        f.st.sends[f.st.n_sends++] = (struct patron_send){.at_ms = T - 22 * H + k, .channel = PUSH};
    cr_assert_not_null(fx_timer(&f, CART));
    cr_expect_eq(fx_timer(&f, CART)->fire_at_ms, T + 10 * MIN);
    fx_forget(&f);
    fx_fire(&f, T + DAY);
    cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_FREQUENCY_CAP), 1);
    cr_assert_eq(f.n_sent, 2);
    cr_expect_str_eq(f.sent[0].campaign, BROWSE);
    cr_expect_eq(f.sent[0].at, T + 2 * H + 5 * MIN);
    cr_expect_str_eq(f.sent[1].campaign, REVIEW);
    cr_expect_eq(f.sent[1].at, T + 5 * H);
    /* the counts come in the same order */
    cr_assert_eq(f.n_counts, 3);
    cr_expect_str_eq(f.counts[0].campaign_id, CART);
    cr_expect_str_eq(f.counts[1].campaign_id, BROWSE);
    cr_expect_str_eq(f.counts[2].campaign_id, REVIEW);
    cr_expect_eq(fx_n_timers(&f), 1);
    cr_expect_not_null(fx_timer(&f, WINBACK));
    fx_close(&f);
}

/* An update first fires what was due before its own event time. */
Test(campaign_engine, an_update_fires_due_timers_first)
{
    struct fx f;
    fx_open(&f, example, false);
    fx_event(&f, "c1", PATRON__V1__EVENT_KIND__CART_ADD, T);
    fx_forget(&f);
    fx_event(&f, "v1", PATRON__V1__EVENT_KIND__VIEW, T + 3 * H);
    cr_assert_eq(f.n_sent, 1);
    cr_expect_str_eq(f.sent[0].campaign, CART);
    cr_expect_eq(f.sent[0].at, T + H);
    cr_expect_not_null(fx_timer(&f, BROWSE));
    fx_close(&f);
}

Test(campaign_engine, bad_arguments)
{
    struct fx f;
    fx_open(&f, example, false);
    Patron__V1__ProfileUpdate u = upd(&f, "e1", PATRON__V1__EVENT_KIND__VIEW, T);
    cr_expect_eq(patron_engine_on_update(NULL, &f.st, &u, 1, &f.out), PATRON_EINVAL);
    cr_expect_eq(patron_engine_on_update(&f.e, NULL, &u, 1, &f.out), PATRON_EINVAL);
    cr_expect_eq(patron_engine_on_update(&f.e, &f.st, NULL, 1, &f.out), PATRON_EINVAL);
    cr_expect_eq(patron_engine_on_update(&f.e, &f.st, &u, 1, NULL), PATRON_EINVAL);
    Patron__V1__ProfileUpdate other = u;
    other.customer_id = "somebody-else";
    cr_expect_eq(patron_engine_on_update(&f.e, &f.st, &other, 1, &f.out), PATRON_EINVAL);
    other = u;
    other.event_id = NULL;
    cr_expect_eq(patron_engine_on_update(&f.e, &f.st, &other, 1, &f.out), PATRON_EINVAL);
    cr_expect_eq(f.st.n_timers, 0);
    cr_expect_eq(f.st.last_offset, -1);
    cr_expect_eq(patron_engine_fire_due(NULL, &f.st, T, &f.out), PATRON_EINVAL);
    cr_expect_eq(patron_engine_fire_due(&f.e, NULL, T, &f.out), PATRON_EINVAL);
    cr_expect_eq(patron_engine_fire_due(&f.e, &f.st, T, NULL), PATRON_EINVAL);
    /* a state without a customer takes the update's */
    struct patron_customer_state anon;
    patron_customer_state_init(&anon, "");
    cr_expect_eq(patron_engine_on_update(&f.e, &anon, &u, 1, &f.out), 0);
    cr_expect_str_eq(anon.customer_id, f.customer);
    patron_customer_state_free(&anon);
    /* ids are cut at PATRON_ID_MAX */
    char long_id[200];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = 0;
    patron_customer_state_init(&anon, long_id);
    cr_expect_eq(strlen(anon.customer_id), PATRON_ID_MAX);
    patron_customer_state_free(&anon);
    fx_close(&f);
}

Test(campaign_engine, stat_names_table)
{
    const char *const names[PATRON_STATS] = {
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
    for (int s = 0; s < PATRON_STATS; s++)
        cr_expect_str_eq(patron_stat_name((enum patron_stat)s), names[s], "stat %d", s);
    cr_expect_str_eq(patron_stat_name((enum patron_stat)PATRON_STATS), "unknown");
    cr_expect_str_eq(patron_stat_name((enum patron_stat) - 1), "unknown");
}

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
    memset(o->long_string, 'z', sizeof(o->long_string) - 1);
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
    /* cut, or refused: never taken whole */
    cr_assert(rc == 0 || rc == PATRON_EINVAL, "%d", rc);
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
        m.last_purchase_ms = c->other_at;
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
        {PATRON_TIMER_SEGMENT + 1, false},
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
