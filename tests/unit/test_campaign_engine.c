/*
 * The campaign engine through its public API, with docs/contracts/campaigns.md's
 * example campaigns file (fixture_campaigns.h) and sequences of profile
 * updates: every campaign through its fire path, and the exits. The
 * suppressions are in test_campaign_engine_suppression.c, attribution,
 * exactly-once and erasure in test_campaign_engine_delivery.c, the stored
 * state in test_campaign_state_codec.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_campaigns.h"

PATRON_LEAK_CHECKED_SUITE(campaign_engine);

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
