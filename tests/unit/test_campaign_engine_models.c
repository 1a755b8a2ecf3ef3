/*
 * The campaign engine with the fitted models (campaign_engine.h): the
 * churn_risk_above trigger (armed at the crossing, once per crossing,
 * re-armed below, moved by a new model, dormant without one) and cluster
 * audiences (by id and by label, at the decision's time). The crossing
 * instants themselves are clv.c's, tested in test_clv.c; here they are the
 * oracle the engine's timers must follow.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_campaigns.h"
#include "patron/model_codec.h"

PATRON_LEAK_CHECKED_SUITE(campaign_engine_models);

#define CHURN "churn-save"
#define VIP "vip"
#define LAPSED "lapsed"

static const char models_yaml[] = EX_DEFAULTS "  - id: churn-save\n"
                                              "    when: { churn_risk_above: 0.7 }\n"
                                              "    channel: email\n"
                                              "    template: stay_with_us\n"
                                              "  - id: vip\n"
                                              "    when: { event: purchase }\n"
                                              "    audience: { clusters: [0] }\n"
                                              "    channel: push\n"
                                              "    template: vip\n"
                                              "  - id: lapsed\n"
                                              "    when: { event: purchase }\n"
                                              "    wait: 100d\n"
                                              "    audience: { clusters: [\"lapsed, rare, low "
                                              "spend\"] }\n"
                                              "    channel: sms\n"
                                              "    template: come_back\n";

/* The subset's fit (docs/contracts/api.md's example): one order of 50.00
 * is in the first band (r 0.39, alpha 29 days) and crosses 0.7 about 31
 * days after it. */
static struct patron_clv_model fitted(void)
{
    struct patron_clv_model m;
    char why[128];
    cr_assert_eq(
        patron_clv_model_parse("0.39,29,0.22,1.24,2.08,4.42,59008.6;19691.5:0.72,44.9,0.012,2.65",
                               &m, why, sizeof(why)),
        0, "%s", why);
    return m;
}

/* The same with a lower purchase rate and dropouts twice as likely: risk
 * is higher at every instant, so crossings come sooner. */
static struct patron_clv_model gloomier(void)
{
    struct patron_clv_model m = fitted();
    for (size_t i = 0; i < m.n_bands; i++) {
        m.bands[i].bgnbd.r /= 2;
        m.bands[i].bgnbd.a *= 2;
    }
    return m;
}

static struct patron_clv_history history(int64_t orders, int64_t first, int64_t last, int64_t spend)
{
    return (struct patron_clv_history){orders, first, last, spend};
}

static int64_t crossing(const struct patron_clv_model *m, struct patron_clv_history h,
                        int64_t after)
{
    int64_t c = patron_clv_churn_crossing(m, &h, 90, 0.7, after);
    cr_assert_lt(c, INT64_MAX);
    return c;
}

/* A purchase of this customer: `orders` orders since `first`, `spend` in all. */
static void purchase(struct fx *f, const char *id, int64_t at, int64_t orders, int64_t first,
                     int64_t spend)
{
    Patron__V1__ProfileUpdate u = upd(f, id, PATRON__V1__EVENT_KIND__PURCHASE, at);
    u.orders = orders;
    u.first_purchase_ms = first;
    u.net_spend_cents = spend;
    fx_apply(f, &u);
}

/* Any other event, the history unchanged. */
static void event(struct fx *f, const char *id, Patron__V1__EventKind kind, int64_t at,
                  int64_t orders, int64_t first, int64_t last, int64_t spend)
{
    Patron__V1__ProfileUpdate u = upd(f, id, kind, at);
    u.orders = orders;
    u.first_purchase_ms = first;
    u.last_purchase_ms = last;
    u.net_spend_cents = spend;
    fx_apply(f, &u);
}

/* ---- churn_risk_above ---------------------------------------------------------------- */

enum churn_op {
    C_END,
    C_BUY,   /* a purchase at `at`: orders + 1, spend + 5000 */
    C_VIEW,  /* a view at `at` */
    C_FIRE,  /* fire_due to `at` */
    C_MODEL, /* the engine's model becomes `model` (0 fitted, 1 gloomier, 2 none) */
};

struct churn_step {
    enum churn_op op;
    int64_t at; /* relative to T, or to the oracle's crossing when `from_crossing` */
    bool from_crossing;
    int model;
    size_t sends_after; /* churn-save's sends so far */
};

struct churn_case {
    const char *name;
    struct churn_step steps[8];
    bool armed_at_end; /* a churn timer pending at the end */
};

#define BUY(at)                                                                                    \
    {                                                                                              \
        C_BUY, (at), false, 0, 0                                                                   \
    }
#define VIEW(at, n)                                                                                \
    {                                                                                              \
        C_VIEW, (at), false, 0, (n)                                                                \
    }
#define FIRE(at, n)                                                                                \
    {                                                                                              \
        C_FIRE, (at), false, 0, (n)                                                                \
    }
#define FIRE_X(delta, n)                                                                           \
    {                                                                                              \
        C_FIRE, (delta), true, 0, (n)                                                              \
    }
#define MODEL(k)                                                                                   \
    {                                                                                              \
        C_MODEL, 0, false, (k), 0                                                                  \
    }

Test(campaign_engine_models, churn_risk_above_table)
{
    const struct churn_case cases[] = {
        {"fires at the crossing, by time alone", {BUY(0), FIRE_X(-1, 0), FIRE_X(0, 1)}, false},
        {"once per crossing: later timers and events change nothing",
         {BUY(0), FIRE_X(0, 1), VIEW(60 * DAY, 1), FIRE(400 * DAY, 1)},
         false},
        {"a purchase takes it below and re-arms it",
         {BUY(0), FIRE_X(0, 1), BUY(50 * DAY), FIRE(49 * DAY + 50 * DAY, 1), FIRE(800 * DAY, 2)},
         false},
        /* one order crosses after ~31 days; two, the second on day 20, not by day 32 */
        {"a purchase before the crossing moves it",
         {BUY(0), BUY(20 * DAY), FIRE(32 * DAY, 0)},
         true},
        {"a gloomier model carries it over at the next update",
         {BUY(0), MODEL(1), VIEW(5 * DAY, 1)},
         false},
        {"no model: dormant", {MODEL(2), BUY(0), FIRE(400 * DAY, 0)}, false},
    };
    const struct patron_clv_model models[2] = {fitted(), gloomier()};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct churn_case *c = &cases[i];
        struct fx f;
        fx_open(&f, models_yaml, false);
        f.e.clv = &models[0];
        int64_t orders = 0, spend = 0, last = 0;
        char id[16];
        for (int k = 0; k < 8 && c->steps[k].op != C_END; k++) {
            const struct churn_step *s = &c->steps[k];
            snprintf(id, sizeof(id), "e%d", k);
            int64_t at = T + s->at;
            if (s->from_crossing)
                at = crossing(f.e.clv, history(orders, T, last, spend), last) + s->at;
            switch (s->op) {
            case C_BUY:
                orders++;
                spend += 5000;
                last = at;
                purchase(&f, id, at, orders, T, spend);
                break;
            case C_VIEW:
                event(&f, id, PATRON__V1__EVENT_KIND__VIEW, at, orders, T, last, spend);
                break;
            case C_FIRE:
                fx_fire(&f, at);
                break;
            case C_MODEL:
                f.e.clv = s->model < 2 ? &models[s->model] : NULL;
                continue;
            case C_END:
                break;
            }
            if (s->op != C_BUY)
                cr_expect_eq(fx_sends_of(&f, CHURN), s->sends_after, "%s: step %d: %zu sends",
                             c->name, k, fx_sends_of(&f, CHURN));
        }
        const struct patron_engine_timer *t = fx_timer(&f, CHURN);
        cr_expect_eq(t != NULL, c->armed_at_end, "%s: armed at the end", c->name);
        if (t != NULL && f.e.clv != NULL) {
            cr_expect_eq(t->kind, PATRON_TIMER_CHURN, "%s", c->name);
            cr_expect_eq(t->fire_at_ms, crossing(f.e.clv, history(orders, T, last, spend), last),
                         "%s: armed at the crossing of the latest history", c->name);
        }
        /* every decision of churn-save is a send here, counted at its own time */
        for (size_t k = 0; k < f.n_counts; k++)
            if (strcmp(f.counts[k].campaign_id, CHURN) == 0)
                cr_expect_eq(f.counts[k].stat, PATRON_STAT_SENT, "%s", c->name);
        fx_close(&f);
    }
}

Test(campaign_engine_models, churn_send_is_by_time_or_by_event)
{
    struct patron_clv_model m = fitted(), g = gloomier();
    struct fx f;
    fx_open(&f, models_yaml, false);
    f.e.clv = &m;
    purchase(&f, "p1", T, 1, T, 5000);
    int64_t c = crossing(&m, history(1, T, T, 5000), T);
    const struct patron_engine_timer *t = fx_timer(&f, CHURN);
    cr_assert_not_null(t);
    cr_expect_eq(t->fire_at_ms, c);
    cr_expect_eq(patron_customer_state_next_fire(&f.st), c);
    fx_fire(&f, c);
    cr_assert_eq(fx_sends_of(&f, CHURN), 1);
    const struct sent_rec *r = &f.sent[f.n_sent - 1];
    cr_expect_eq(r->at, c);
    cr_expect_str_eq(r->trigger_event_id, "");
    expect_message_id(&f, r, "", c);
    cr_expect_null(fx_timer(&f, CHURN), "above: nothing armed");
    fx_close(&f);

    /* carried over by an update: decided at once, its message id by the event */
    fx_open(&f, models_yaml, false);
    f.e.clv = &m;
    purchase(&f, "p1", T, 1, T, 5000);
    f.e.clv = &g;
    event(&f, "v1", PATRON__V1__EVENT_KIND__VIEW, T + 2 * DAY, 1, T, T, 5000);
    cr_assert_eq(fx_sends_of(&f, CHURN), 1);
    r = &f.sent[f.n_sent - 1];
    cr_expect_eq(r->at, T + 2 * DAY);
    cr_expect_str_eq(r->trigger_event_id, "v1");
    expect_message_id(&f, r, "v1", T + 2 * DAY);
    fx_close(&f);
}

Test(campaign_engine_models, churn_timer_follows_a_model_that_moved)
{
    struct patron_clv_model m = fitted(), g = gloomier();
    struct fx f;
    fx_open(&f, models_yaml, false);
    /* armed under the gloomier model, which then gives way to the fitted one */
    f.e.clv = &g;
    purchase(&f, "p1", T, 2, T - 10 * DAY, 10000);
    int64_t soon = crossing(&g, history(2, T - 10 * DAY, T, 10000), T);
    int64_t later = crossing(&m, history(2, T - 10 * DAY, T, 10000), T);
    cr_assert_lt(soon, later);
    cr_assert_eq(fx_timer(&f, CHURN)->fire_at_ms, soon);
    f.e.clv = &m;
    fx_fire(&f, soon);
    cr_expect_eq(fx_sends_of(&f, CHURN), 0, "below under the model of now");
    const struct patron_engine_timer *t = fx_timer(&f, CHURN);
    cr_assert_not_null(t);
    cr_expect_eq(t->fire_at_ms, later, "armed again at the new crossing");
    fx_fire(&f, later + DAY); /* at `later`, or at the end of quiet hours if it falls in them */
    cr_expect_eq(fx_sends_of(&f, CHURN), 1);
    cr_expect_eq(fx_timer(&f, CHURN), NULL);
    fx_close(&f);
}

Test(campaign_engine_models, churn_crossing_at_night_waits_for_the_morning)
{
    struct patron_clv_model m = fitted();
    const int64_t d = crossing(&m, history(1, T, T, 5000), T) - T; /* the same for any T */
    const int64_t night = utc(2026, 8, 10, 22, 0);                 /* 23:00 in London */
    const int64_t bought = night - d, morning = utc(2026, 8, 11, 8, 0);
    struct fx f;
    fx_open(&f, models_yaml, false);
    f.e.clv = &m;
    purchase(&f, "p1", bought, 1, bought, 5000);
    fx_fire(&f, night);
    cr_expect_eq(fx_sends_of(&f, CHURN), 0, "quiet hours");
    const struct patron_engine_timer *t = fx_timer(&f, CHURN);
    cr_assert_not_null(t);
    cr_expect_eq(t->fire_at_ms, morning);
    cr_expect_eq(t->trigger_at_ms, night);
    /* an event during the wait neither decides again nor drops the decision */
    event(&f, "v1", PATRON__V1__EVENT_KIND__VIEW, night + H, 1, bought, bought, 5000);
    cr_expect_eq(fx_sends_of(&f, CHURN), 0);
    cr_expect_eq(fx_timer(&f, CHURN)->fire_at_ms, morning);
    fx_fire(&f, morning);
    cr_assert_eq(fx_sends_of(&f, CHURN), 1);
    cr_expect_eq(f.sent[f.n_sent - 1].at, morning);
    expect_message_id(&f, &f.sent[f.n_sent - 1], "", night);
    cr_expect_null(fx_timer(&f, CHURN));
    fx_close(&f);
}

Test(campaign_engine_models, churn_needs_a_purchase)
{
    struct patron_clv_model m = fitted();
    struct fx f;
    fx_open(&f, models_yaml, false);
    f.e.clv = &m;
    event(&f, "v1", PATRON__V1__EVENT_KIND__VIEW, T, 0, 0, 0, 0);
    event(&f, "v2", PATRON__V1__EVENT_KIND__VIEW, T + 100 * DAY, 0, 0, 0, 0);
    fx_fire(&f, T + 1000 * DAY);
    cr_expect_eq(fx_decisions(&f, CHURN), 0, "outside the model: risk 1, never a crossing");
    cr_expect_null(fx_timer(&f, CHURN));
    fx_close(&f);
}

/* ---- cluster audiences ---------------------------------------------------------------- */

/* Two clusters over the standardised log features: 0 recent, frequent, high
 * spend; 1 lapsed, rare, low spend. Means and deviations chosen so that the
 * middle of the features (10 days, 4 orders, 150.00) is z = 0. */
static struct patron_clusters two_clusters(void)
{
    struct patron_clusters c = {.k = 2};
    struct patron_cluster_features mid = {10, 4, 15000};
    patron_cluster_transform(&mid, c.mean);
    for (int j = 0; j < PATRON_CLUSTER_DIM; j++)
        c.sd[j] = 1;
    snprintf(c.c[0].label, sizeof(c.c[0].label), "recent, frequent, high spend");
    snprintf(c.c[1].label, sizeof(c.c[1].label), "lapsed, rare, low spend");
    const double z0[PATRON_CLUSTER_DIM] = {-1, 1, 1}, z1[PATRON_CLUSTER_DIM] = {1, -1, -1};
    memcpy(c.c[0].z, z0, sizeof(z0));
    memcpy(c.c[1].z, z1, sizeof(z1));
    return c;
}

struct cluster_case {
    const char *name;
    int64_t orders, spend;
    bool have_clusters;
    enum patron_stat vip;    /* at the purchase */
    enum patron_stat lapsed; /* 100 days later */
};

Test(campaign_engine_models, cluster_audience_table)
{
    const struct patron_clusters clusters = two_clusters();
    const struct cluster_case cases[] = {
        /* a big regular: cluster 0 at the purchase, still 0 100 days on */
        {"big regular", 30, 3000000, true, PATRON_STAT_SENT, PATRON_STAT_AUDIENCE},
        /* one small order: cluster 1 at once (rare, low spend) */
        {"one small order", 1, 500, true, PATRON_STAT_AUDIENCE, PATRON_STAT_SENT},
        /* a middling customer: 0 while recent, 1 once 100 days have passed */
        {"recency moves it", 4, 15000, true, PATRON_STAT_SENT, PATRON_STAT_SENT},
        {"no clusters fitted", 30, 3000000, false, PATRON_STAT_AUDIENCE, PATRON_STAT_AUDIENCE},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct cluster_case *c = &cases[i];
        struct fx f;
        fx_open(&f, models_yaml, false);
        f.e.clusters = c->have_clusters ? &clusters : NULL;
        purchase(&f, "p1", T, c->orders, T - 300 * DAY, c->spend);
        cr_expect_eq(fx_stat(&f, VIP, c->vip), 1, "%s: vip", c->name);
        cr_expect_eq(fx_decisions(&f, VIP), 1, "%s", c->name);
        fx_fire(&f, T + 100 * DAY);
        cr_expect_eq(fx_stat(&f, LAPSED, c->lapsed), 1, "%s: lapsed", c->name);
        cr_expect_eq(fx_decisions(&f, LAPSED), 1, "%s", c->name);
        fx_close(&f);
    }
}

Test(campaign_engine_models, a_customer_without_a_purchase_is_in_no_cluster)
{
    const struct patron_clusters clusters = two_clusters();
    struct fx f;
    fx_open(&f,
            EX_DEFAULTS "  - id: review-vip\n"
                        "    when: { event: review }\n"
                        "    audience: { clusters: [0, 1] }\n"
                        "    channel: email\n"
                        "    template: t\n",
            false);
    f.e.clusters = &clusters;
    event(&f, "r1", PATRON__V1__EVENT_KIND__REVIEW, T, 0, 0, 0, 0);
    cr_expect_eq(fx_stat(&f, "review-vip", PATRON_STAT_AUDIENCE), 1);
    event(&f, "r2", PATRON__V1__EVENT_KIND__REVIEW, T + DAY, 3, T - DAY, T - DAY, 9000);
    cr_expect_eq(fx_stat(&f, "review-vip", PATRON_STAT_SENT), 1, "any cluster will do");
    fx_close(&f);
}

/* ---- the time of a counter ----------------------------------------------------------- */

Test(campaign_engine_models, counters_carry_their_event_time)
{
    const struct patron_clusters clusters = two_clusters();
    struct fx f;
    fx_open(&f, models_yaml, false);
    f.e.clusters = &clusters;
    purchase(&f, "p1", T, 30, T - 300 * DAY, 3000000);           /* vip sent at T */
    purchase(&f, "p2", T + 2 * DAY, 31, T - 300 * DAY, 3001000); /* converts it */
    bool sent = false, converted = false, revenue = false;
    for (size_t k = 0; k < f.n_counts; k++) {
        const struct patron_engine_count *n = &f.counts[k];
        if (strcmp(n->campaign_id, VIP) != 0)
            continue;
        if (n->stat == PATRON_STAT_SENT && n->at_ms == T)
            sent = true;
        if (n->stat == PATRON_STAT_CONVERSIONS && n->at_ms == T + 2 * DAY)
            converted = true;
        if (n->stat == PATRON_STAT_REVENUE_CENTS && n->at_ms == T + 2 * DAY && n->delta == 1000)
            revenue = true;
    }
    cr_expect(sent, "the send at its decision's time");
    cr_expect(converted && revenue, "the conversion at the purchase's time");
    fx_close(&f);
}
