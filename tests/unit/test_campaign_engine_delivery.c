/*
 * The campaign engine after the decision: attribution of conversions,
 * exactly once across duplicates and replays, erasure, removed campaigns,
 * the order timers fire in, bad arguments and the stat names, with the
 * example campaigns of fixture_campaigns.h.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/campaign_state_codec.h"
#include "fixture_campaigns.h"

PATRON_LEAK_CHECKED_SUITE(campaign_engine);

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
