/*
 * The campaign engine's suppressions (consent, control group, audience,
 * cooldown, frequency caps), the transactional tier-upgrade that ignores
 * them, and quiet hours in the customer's zone, with the example campaigns
 * of fixture_campaigns.h.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_campaigns.h"

PATRON_LEAK_CHECKED_SUITE(campaign_engine);

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
