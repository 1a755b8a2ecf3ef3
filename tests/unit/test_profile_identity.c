/*
 * Identity (patron/profile.h, profile_identity.c): a visitor merged into a
 * customer is the customer as if every event had been its own (table of
 * scenarios against one profile that saw them all), field by field; the
 * Identify's verdicts (conflict, limit, replay, resend, erasure); the
 * visitor's later events (replays of its own, resends, the merge still
 * pending); caps; the alias; the marks' bound; the stored form.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_events.h"
#include "patron/profile.h"
#include "patron/keys.h"
#include "patron/profile_codec.h"

PATRON_LEAK_CHECKED_SUITE(profile_identity);

#define ANON "a1"

static struct patron_profile_config defcfg(void)
{
    struct patron_profile_config c;
    patron_profile_config_default(&c);
    return c;
}

/* Profiles are 60 KiB: off the stack. */
struct trio {
    struct patron_profile one; /* saw every event as the customer's */
    struct patron_profile c, v;
};

static struct trio *trio_new(void)
{
    struct trio *t = malloc(sizeof(*t));
    cr_assert_not_null(t);
    patron_profile_init(&t->one, FX_CUSTOMER);
    patron_profile_init(&t->c, FX_CUSTOMER);
    patron_profile_init_visitor(&t->v, ANON);
    return t;
}

static struct patron_apply_outcome must_apply(struct patron_profile *p, Patron__V1__Event *ev,
                                              int32_t partition, int64_t offset)
{
    struct patron_profile_config c = defcfg();
    struct patron_apply_outcome out;
    int rc = patron_profile_apply(p, ev, partition, offset, &c, &out);
    cr_assert_eq(rc, 0, "apply %s: %d", ev->event_id, rc);
    return out;
}

static struct patron_identify_outcome identify(struct patron_profile *c, struct patron_profile *v,
                                               const char *id, int64_t t, int32_t partition,
                                               int64_t offset)
{
    struct patron_profile_config cfg = defcfg();
    struct fx_event f;
    struct patron_identify_outcome out;
    cr_assert_eq(patron_profile_identify(c, v, fx_identify(&f, id, t, v->anonymous_id), partition,
                                         offset, &cfg, &out),
                 0);
    return out;
}

static struct patron_apply_outcome redirected(struct patron_profile *c,
                                              const struct patron_profile *pending,
                                              Patron__V1__Event *ev, int32_t partition,
                                              int64_t offset)
{
    struct patron_profile_config cfg = defcfg();
    struct patron_apply_outcome out;
    cr_assert_eq(patron_profile_apply_redirected(c, pending, fx_anon(ev, ANON), partition, offset,
                                                 &cfg, &out),
                 0);
    return out;
}

/* ---- the merge is the customer as if one profile had seen everything -------- */

enum who { C, V };

struct step {
    enum who who;
    char kind; /* v view, a cart add, r cart remove, p purchase, f refund, w review, s consent, u
                  customer */
    int64_t at_day;
    const char *item; /* item, or for 's' the channel "sms"/"push"/"email" */
    int64_t cents;    /* price; for 's' 1 granted / 0 revoked */
};

#define STEPS_MAX 16
struct scenario {
    const char *name;
    struct step steps[STEPS_MAX];
};

/* Step i at its day, plus i ms so that no two steps share a time. */
static Patron__V1__Event *build(struct fx_event *f, const struct step *s, size_t i, const char *id)
{
    int64_t t = FX_T0 + s->at_day * FX_DAY + (int64_t)i;
    struct fx_line line = {s->item, "cat", 1, s->cents};
    switch (s->kind) {
    case 'v':
        return fx_view(f, id, t, s->item, "cat");
    case 'a':
        return fx_cart_add(f, id, t, s->item, "cat", 1, s->cents);
    case 'r':
        return fx_cart_remove(f, id, t, s->item);
    case 'p':
        return fx_purchase(f, id, t, 1, &line);
    case 'f':
        return fx_refund(f, id, t, s->cents, 1, &line);
    case 'w':
        return fx_review(f, id, t, s->item, 4);
    case 's': {
        Patron__V1__Channel ch = strcmp(s->item, "sms") == 0    ? PATRON__V1__CHANNEL__SMS
                                 : strcmp(s->item, "push") == 0 ? PATRON__V1__CHANNEL__PUSH
                                                                : PATRON__V1__CHANNEL__EMAIL;
        return fx_consent(f, id, t, ch, s->cents != 0);
    }
    default:
        return fx_customer(f, id, t, "05-14", s->item, "en-GB", "UK");
    }
}

static const struct scenario SCENARIOS[] = {
    {"an empty visitor", {{C, 'p', 0, "x", 500}, {C, 'v', 1, "y", 0}}},
    {"an empty customer", {{V, 'v', 0, "x", 0}, {V, 'a', 0, "x", 300}, {V, 'p', 1, "x", 300}}},
    {"a guest purchase becomes an order",
     {{C, 'p', 0, "a", 12000}, {V, 'v', 3, "b", 0}, {V, 'p', 4, "b", 7000}, {C, 'w', 5, "a", 0}}},
    {"orders, refunds and reviews on both sides",
     {{V, 'p', 0, "a", 100000},
      {C, 'p', 1, "b", 450000},
      {V, 'f', 2, "a", 20000},
      {C, 'w', 3, "b", 0},
      {V, 'w', 4, "a", 0},
      {C, 'f', 5, "b", 1}}},
    {"months across a year: the tier window of the later side",
     {{V, 'p', 0, "a", 600000}, {C, 'p', 200, "b", 100}, {V, 'p', 390, "c", 300000}}},
    {"the visitor's cart survives when nothing was bought after it",
     {{C, 'p', 0, "a", 100}, {V, 'a', 1, "b", 200}, {V, 'a', 1, "c", 300}, {C, 'a', 2, "d", 400}}},
    {"a later purchase clears the visitor's cart",
     {{V, 'a', 0, "b", 200}, {C, 'p', 1, "a", 100}, {C, 'a', 2, "d", 400}}},
    {"a guest purchase clears the customer's cart",
     {{C, 'a', 0, "b", 200}, {V, 'p', 1, "a", 100}, {V, 'a', 2, "d", 400}}},
    {"the same item in both carts adds up",
     {{C, 'a', 0, "b", 200}, {V, 'a', 1, "b", 200}, {V, 'r', 1, "zz", 0}}},
    {"consent: the later change wins per channel",
     {{C, 's', 0, "sms", 1},
      {V, 's', 1, "sms", 0},
      {V, 's', 0, "email", 1},
      {C, 's', 2, "email", 0},
      {V, 's', 3, "push", 1}}},
    {"customer data: the later update wins",
     {{C, 'u', 0, "Europe/London", 0}, {V, 'u', 5, "Europe/Paris", 0}}},
    {"views and their categories",
     {{C, 'v', 0, "a", 0}, {V, 'v', 1, "b", 0}, {C, 'v', 2, "c", 0}, {V, 'v', 3, "a", 0}}},
};

static void expect_merge_equals_one(const struct scenario *sc)
{
    struct trio *t = trio_new();
    struct fx_event f;
    char ids[STEPS_MAX][16];
    int64_t last = FX_T0;
    size_t n = 0;
    while (n < STEPS_MAX && sc->steps[n].kind)
        n++;
    for (size_t i = 0; i < n; i++) {
        const struct step *s = &sc->steps[i];
        snprintf(ids[i], sizeof(ids[i]), "e%zu", i);
        Patron__V1__Event *ev = build(&f, s, i, ids[i]);
        if (ev->occurred_at_ms > last)
            last = ev->occurred_at_ms;
        cr_assert_eq(must_apply(&t->one, ev, 0, (int64_t)i).result, PATRON_APPLY_APPLIED, "%s: %zu",
                     sc->name, i);
        ev = build(&f, s, i, ids[i]);
        if (s->who == V)
            must_apply(&t->v, fx_anon(ev, ANON), 1, (int64_t)i);
        else
            must_apply(&t->c, ev, 0, (int64_t)i);
    }
    /* the Identify at the latest time, so that it moves no time of its own */
    struct patron_identify_outcome out = identify(&t->c, &t->v, "id", last, 0, 100);
    cr_assert_eq(out.apply.result, PATRON_APPLY_APPLIED, "%s", sc->name);
    cr_expect(out.freeze, "%s", sc->name);
    cr_expect_str_eq(t->v.merged_into, FX_CUSTOMER, "%s", sc->name);

    const struct patron_profile *a = &t->one, *b = &t->c;
#define SAME(f) cr_expect_eq(a->f, b->f, "%s: %s", sc->name, #f)
    SAME(orders);
    SAME(net_spend_cents);
    SAME(points);
    SAME(reviews);
    SAME(refunds);
    SAME(first_seen_ms);
    SAME(last_seen_ms);
    SAME(first_purchase_ms);
    SAME(last_purchase_ms);
    SAME(last_event_ms);
    SAME(cart_updated_ms);
    SAME(n_months);
    SAME(consent_sms);
    SAME(consent_push);
    SAME(consent_email);
    SAME(consent_ms[0]);
    SAME(consent_ms[1]);
    SAME(consent_ms[2]);
    SAME(customer_ms);
    SAME(n_counted);
    SAME(n_cart);
    SAME(n_viewed);
    SAME(n_bought);
    SAME(n_categories);
#undef SAME
    for (size_t i = 0; i < a->n_months; i++) {
        cr_expect_eq(a->months[i].month, b->months[i].month, "%s", sc->name);
        cr_expect_eq(a->months[i].cents, b->months[i].cents, "%s", sc->name);
    }
    for (size_t i = 0; i < a->n_counted; i++)
        cr_expect_eq(a->counted[i], b->counted[i], "%s: ledger", sc->name);
    cr_expect_str_eq(a->time_zone, b->time_zone, "%s", sc->name);
    /* sets: the order of lists follows the sides, not single events; the
     * ring as far as it decides anything (within the dedupe window: older
     * entries leave at the next add, and an older event is stale anyway) */
    struct patron_profile_config wcfg = defcfg();
    int64_t from = last - wcfg.dedupe_window_ms;
    size_t in_a = 0, in_b = 0;
    for (size_t k = 0; k < b->n_event_ids; k++)
        in_b += b->event_ms[k] >= from;
    for (size_t i = 0; i < a->n_event_ids; i++) {
        if (a->event_ms[i] < from)
            continue;
        in_a++;
        bool found = false;
        for (size_t k = 0; k < b->n_event_ids; k++)
            found |= a->event_ids[i] == b->event_ids[k] && a->event_ms[i] == b->event_ms[k];
        cr_expect(found, "%s: ring entry %zu", sc->name, i);
    }
    cr_expect_eq(in_a, in_b, "%s: ring entries in the window", sc->name);
    for (size_t i = 0; i < a->n_cart; i++) {
        bool found = false;
        for (size_t k = 0; k < b->n_cart; k++)
            found |= strcmp(a->cart[i].item_id, b->cart[k].item_id) == 0 &&
                     a->cart[i].quantity == b->cart[k].quantity;
        cr_expect(found, "%s: cart line %s", sc->name, a->cart[i].item_id);
    }
    for (size_t i = 0; i < a->n_viewed; i++) {
        bool found = false;
        for (size_t k = 0; k < b->n_viewed; k++)
            found |= strcmp(a->viewed[i], b->viewed[k]) == 0;
        cr_expect(found, "%s: viewed %s", sc->name, a->viewed[i]);
    }
    for (size_t i = 0; i < a->n_bought; i++)
        cr_expect(patron_profile_has_bought(b, a->bought[i]), "%s: bought %s", sc->name,
                  a->bought[i]);
    struct patron_profile_config cfg = defcfg();
    for (size_t i = 0; i < a->n_categories; i++) {
        size_t k = 0;
        while (k < b->n_categories && strcmp(a->categories[i].category, b->categories[k].category))
            k++;
        cr_assert_lt(k, b->n_categories, "%s: category", sc->name);
        double x = patron_profile_category_score(a, i, last, &cfg);
        double y = patron_profile_category_score(b, k, last, &cfg);
        cr_expect(fabs(x - y) < 1e-9 * (1 + fabs(x)), "%s: category %s %g vs %g", sc->name,
                  a->categories[i].category, x, y);
    }
    /* what the visitor brought, recorded with its alias */
    cr_assert_eq(b->n_aliases, 1, "%s", sc->name);
    cr_expect_str_eq(b->aliases[0].anonymous_id, ANON);
    cr_expect_eq(b->aliases[0].orders, t->v.orders, "%s", sc->name);
    cr_expect_eq(b->aliases[0].merged_at_ms, last, "%s", sc->name);
    free(t);
}

Test(profile_identity, merge_equals_one_profile_that_saw_everything)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(SCENARIOS); i++)
        expect_merge_equals_one(&SCENARIOS[i]);
}

/* The cart rule is per side: a side whose cart changed after the other's
 * purchase keeps all its lines, even one added before that purchase (the
 * profile does not know when each line came). Stated here so that a change
 * of the rule is a decision. */
Test(profile_identity, a_cart_changed_after_the_other_sides_purchase_keeps_every_line)
{
    struct trio *t = trio_new();
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 100};
    must_apply(&t->v, fx_anon(fx_cart_add(&f, "c1", FX_T0, "old", "cat", 1, 5), ANON), 1, 1);
    must_apply(&t->c, fx_purchase(&f, "p", FX_T0 + 10, 1, &line), 0, 1);
    must_apply(&t->v, fx_anon(fx_cart_add(&f, "c2", FX_T0 + 20, "new", "cat", 1, 5), ANON), 1, 2);
    cr_assert_eq(identify(&t->c, &t->v, "id", FX_T0 + 30, 0, 2).apply.result, PATRON_APPLY_APPLIED);
    cr_expect_eq(t->c.n_cart, 2);
    cr_expect_eq(t->c.aliases[0].cart_lines, 2);
    free(t);
}

/* ---- caps ------------------------------------------------------------------- */

Test(profile_identity, merged_lists_keep_their_caps)
{
    struct trio *t = trio_new();
    struct fx_event f;
    char items[100][16], ids[200][16];
    size_t k = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(items[i], sizeof(items[i]), "i%d", i);
        struct fx_line line = {items[i], "cat", 1, 100};
        snprintf(ids[k], sizeof(ids[k]), "p%d", i);
        struct patron_profile *p = i % 2 ? &t->c : &t->v;
        Patron__V1__Event *ev = fx_purchase(&f, ids[k++], FX_T0 + i, 1, &line);
        if (p == &t->v)
            fx_anon(ev, ANON);
        cr_assert_eq(must_apply(p, ev, p == &t->v, 2 * i).result, PATRON_APPLY_APPLIED, "%d", i);
        snprintf(ids[k], sizeof(ids[k]), "v%d", i);
        ev = fx_view(&f, ids[k++], FX_T0 + i, items[i], "cat");
        if (p == &t->v)
            fx_anon(ev, ANON);
        must_apply(p, ev, p == &t->v, 2 * i + 1);
    }
    /* 40 distinct items each side: 80 bought, 64 kept by name, the rest by hash */
    for (int i = 40; i < 80; i++) {
        snprintf(items[i], sizeof(items[i]), "j%d", i);
        struct fx_line line = {items[i], "cat", 1, 100};
        snprintf(ids[k], sizeof(ids[k]), "q%d", i);
        must_apply(&t->c, fx_purchase(&f, ids[k++], FX_T0 + i, 1, &line), 0, 200 + i);
    }
    cr_assert_eq(identify(&t->c, &t->v, "id", FX_T0 + 100, 0, 1000).apply.result,
                 PATRON_APPLY_APPLIED);
    cr_expect_eq(t->c.n_viewed, PATRON_PROFILE_VIEWED_MAX);
    cr_expect_eq(t->c.n_bought, PATRON_PROFILE_BOUGHT_MAX);
    for (int i = 0; i < 80; i++)
        cr_expect(patron_profile_has_bought(&t->c, items[i]), "%s", items[i]);
    cr_expect_eq(t->c.orders, 80);
    cr_expect_eq(t->c.n_counted, 80);
    free(t);
}

Test(profile_identity, merged_ledgers_past_capacity_forget_their_oldest_months)
{
    struct trio *t = trio_new();
    /* each side 3,000 counted events: the union (6,000) loses whole months */
    for (size_t i = 0; i < 3000; i++) {
        t->c.counted[i] = patron_counted_entry("c", 1, FX_T0 + (int64_t)i * FX_DAY / 4) + 2 * i;
        t->v.counted[i] = patron_counted_entry("v", 1, FX_T0 + (int64_t)i * FX_DAY / 4) + 2 * i + 1;
    }
    t->c.n_counted = t->v.n_counted = 3000;
    struct patron_merge_stats st;
    struct patron_profile_config cfg = defcfg();
    patron_profile_merge(&t->c, &t->v, &cfg, &st);
    cr_expect_leq(t->c.n_counted, PATRON_PROFILE_COUNTED_MAX);
    cr_expect_gt(t->c.n_counted, PATRON_PROFILE_COUNTED_MAX - 400, "a month at most goes too many");
    cr_expect_gt(t->c.counted_floor_month, 0);
    for (size_t i = 1; i < t->c.n_counted; i++)
        cr_expect_gt(t->c.counted[i], t->c.counted[i - 1], "ascending, no duplicate");
    for (size_t i = 0; i < t->c.n_counted; i++)
        cr_expect_gt((int64_t)(t->c.counted[i] >> PATRON_COUNTED_HASH_BITS) + 1970 * 12,
                     t->c.counted_floor_month, "nothing of a forgotten month stays");
    free(t);
}

Test(profile_identity, an_event_counted_under_both_identities_is_reported)
{
    struct trio *t = trio_new();
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 1000};
    must_apply(&t->c, fx_purchase(&f, "same", FX_T0, 1, &line), 0, 1);
    must_apply(&t->v, fx_anon(fx_purchase(&f, "same", FX_T0, 1, &line), ANON), 1, 1);
    struct patron_identify_outcome out = identify(&t->c, &t->v, "id", FX_T0 + 1, 0, 2);
    cr_expect_eq(out.shared_counted, 1);
    cr_expect_eq(t->c.n_counted, 1, "the ledger holds it once");
    cr_expect_eq(t->c.orders, 2, "counted twice before the merge: that cannot be undone");
    free(t);
}

Test(profile_identity, a_merged_ring_past_capacity_raises_its_floor)
{
    struct trio *t = trio_new();
    struct fx_event f;
    static char ids[400][16];
    for (int i = 0; i < 400; i++) {
        snprintf(ids[i], sizeof(ids[i]), "v%d", i);
        Patron__V1__Event *ev = fx_view(&f, ids[i], FX_T0 + i, "x", "cat");
        if (i % 2)
            must_apply(&t->c, ev, 0, i);
        else
            must_apply(&t->v, fx_anon(ev, ANON), 1, i);
    }
    cr_assert_eq(identify(&t->c, &t->v, "id", FX_T0 + 500, 0, 1000).apply.result,
                 PATRON_APPLY_APPLIED);
    cr_expect_eq(t->c.n_event_ids, PATRON_PROFILE_EVENT_IDS_MAX);
    cr_expect_eq(t->c.event_ids_floor_ms, FX_T0 + 400 - PATRON_PROFILE_EVENT_IDS_MAX - 1);
    for (size_t i = 1; i < t->c.n_event_ids; i++)
        cr_expect_geq(t->c.event_ms[i - 1], t->c.event_ms[i], "most recent first");
    free(t);
}

/* ---- the Identify's verdicts ------------------------------------------------------ */

Test(profile_identity, a_second_merge_changes_nothing)
{
    struct trio *t = trio_new();
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 1000};
    must_apply(&t->v, fx_anon(fx_purchase(&f, "g", FX_T0, 1, &line), ANON), 1, 5);
    cr_assert_eq(identify(&t->c, &t->v, "id", FX_T0 + 1, 0, 7).apply.result, PATRON_APPLY_APPLIED);
    struct patron_profile *c = malloc(sizeof(*c)), *v = malloc(sizeof(*v));
    *c = t->c;
    *v = t->v;
    static const struct {
        const char *why, *id;
        int64_t offset;
        enum patron_apply_result expect;
    } rows[] = {
        {"the same message again (a replay)", "id", 7, PATRON_APPLY_REPLAYED},
        {"a resend at a new offset", "id", 9, PATRON_APPLY_DUPLICATE},
        {"another Identify of the same pair", "id2", 10, PATRON_APPLY_DUPLICATE},
        {"without a position", "id3", -1, PATRON_APPLY_DUPLICATE},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_identify_outcome out =
            identify(&t->c, &t->v, rows[i].id, FX_T0 + 2, 0, rows[i].offset);
        cr_expect_eq(out.apply.result, rows[i].expect, "%s", rows[i].why);
        cr_expect_not(out.freeze, "%s", rows[i].why);
        cr_expect_eq(memcmp(c, &t->c, sizeof(*c)), 0, "%s: customer unchanged", rows[i].why);
        cr_expect_eq(memcmp(v, &t->v, sizeof(*v)), 0, "%s: visitor unchanged", rows[i].why);
    }
    cr_expect_eq(t->c.orders, 1);
    free(v);
    free(c);
    free(t);
}

Test(profile_identity, a_crash_between_the_two_writes_is_completed_by_the_replay)
{
    struct trio *t = trio_new();
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 1000};
    must_apply(&t->v, fx_anon(fx_purchase(&f, "g", FX_T0, 1, &line), ANON), 1, 5);
    struct patron_profile *c0 = malloc(sizeof(*c0));
    *c0 = t->c; /* the customer as stored: the second write never happened */
    cr_assert(identify(&t->c, &t->v, "id", FX_T0 + 1, 0, 7).freeze);
    /* only the frozen visitor was written; the replay reads it and c0 */
    t->c = *c0;
    struct patron_identify_outcome out = identify(&t->c, &t->v, "id", FX_T0 + 1, 0, 7);
    cr_expect_eq(out.apply.result, PATRON_APPLY_APPLIED);
    cr_expect_not(out.freeze, "frozen already");
    cr_expect_eq(t->c.orders, 1);
    cr_expect_eq(t->c.n_aliases, 1);
    free(c0);
    free(t);
}

Test(profile_identity, verdicts)
{
    struct patron_profile_config cfg = defcfg();
    struct fx_event f;
    enum { FRESH, OTHER, LIMIT, ERASED_AFTER, NOT_IDENTIFY, WRONG_VISITOR };
    static const struct {
        int setup;
        enum patron_apply_result result;
        const char *reason;
        int rc;
    } rows[] = {
        {FRESH, PATRON_APPLY_APPLIED, NULL, 0},
        {OTHER, PATRON_APPLY_REFUSED, PATRON_IDENTIFY_CONFLICT_REASON, 0},
        {LIMIT, PATRON_APPLY_REFUSED, PATRON_IDENTIFY_LIMIT_REASON, 0},
        {ERASED_AFTER, PATRON_APPLY_STALE, NULL, 0},
        {NOT_IDENTIFY, 0, NULL, PATRON_EINVAL},
        {WRONG_VISITOR, 0, NULL, PATRON_EINVAL},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct trio *t = trio_new();
        Patron__V1__Event *ev = fx_identify(&f, "id", FX_T0, ANON);
        switch (rows[i].setup) {
        case OTHER:
            snprintf(t->v.merged_into, sizeof(t->v.merged_into), "someone-else");
            break;
        case LIMIT:
            for (size_t k = 0; k < PATRON_PROFILE_ALIASES_MAX; k++)
                snprintf(t->c.aliases[k].anonymous_id, sizeof(t->c.aliases[k].anonymous_id), "x%zu",
                         k);
            t->c.n_aliases = PATRON_PROFILE_ALIASES_MAX;
            break;
        case ERASED_AFTER:
            t->c.erased = true;
            t->c.erased_at_ms = FX_T0 + 1;
            break;
        case NOT_IDENTIFY:
            ev = fx_view(&f, "id", FX_T0, "x", "cat");
            break;
        case WRONG_VISITOR:
            patron_profile_init_visitor(&t->v, "a2");
            break;
        }
        struct patron_profile *before = malloc(sizeof(*before));
        *before = t->c;
        struct patron_identify_outcome out;
        int rc = patron_profile_identify(&t->c, &t->v, ev, 0, 1, &cfg, &out);
        cr_expect_eq(rc, rows[i].rc, "row %zu", i);
        if (rc == 0) {
            cr_expect_eq(out.apply.result, rows[i].result, "row %zu", i);
            if (rows[i].reason)
                cr_expect_str_eq(out.reason, rows[i].reason, "row %zu", i);
            cr_expect_eq(out.freeze, rows[i].result == PATRON_APPLY_APPLIED, "row %zu", i);
        }
        if (rc || rows[i].result != PATRON_APPLY_APPLIED)
            cr_expect_eq(memcmp(before, &t->c, sizeof(*before)), 0, "row %zu: unchanged", i);
        free(before);
        free(t);
    }
}

Test(profile_identity, an_identify_brings_a_tombstone_back_to_life)
{
    struct trio *t = trio_new();
    struct fx_event f;
    must_apply(&t->c, fx_erasure(&f, "del", FX_T0), 0, 1);
    must_apply(&t->v, fx_anon(fx_view(&f, "v", FX_T0 + 5, "x", "cat"), ANON), 1, 1);
    cr_assert_eq(identify(&t->c, &t->v, "id", FX_T0 + 10, 0, 2).apply.result, PATRON_APPLY_APPLIED);
    cr_expect_not(t->c.erased);
    cr_expect_eq(t->c.n_viewed, 1);
    free(t);
}

Test(profile_identity, an_erased_visitor_brings_nothing_and_keeps_its_past_erased)
{
    struct trio *t = trio_new();
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 1000};
    must_apply(&t->v, fx_anon(fx_purchase(&f, "g", FX_T0, 1, &line), ANON), 1, 1);
    must_apply(&t->v, fx_anon(fx_erasure(&f, "del", FX_T0 + 5), ANON), 1, 2);
    cr_assert_eq(identify(&t->c, &t->v, "id", FX_T0 + 10, 0, 1).apply.result, PATRON_APPLY_APPLIED);
    cr_expect_eq(t->c.orders, 0);
    cr_expect_eq(t->c.aliases[0].floor_ms, FX_T0 + 5);
    /* a late resend of the erased purchase, now the customer's: stale */
    cr_expect_eq(redirected(&t->c, NULL, fx_purchase(&f, "g", FX_T0, 1, &line), 1, 50).result,
                 PATRON_APPLY_STALE);
    cr_expect_eq(t->c.orders, 0);
    free(t);
}

/* ---- the visitor's events once merged ------------------------------------------------ */

Test(profile_identity, redirected_events)
{
    struct trio *t = trio_new();
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 1000};
    must_apply(&t->v, fx_anon(fx_purchase(&f, "g", FX_T0, 1, &line), ANON), 3, 10);
    must_apply(&t->v, fx_anon(fx_view(&f, "w", FX_T0, "b", "cat"), ANON), 3, 11);
    cr_assert_eq(identify(&t->c, &t->v, "id", FX_T0 + 1, 0, 7).apply.result, PATRON_APPLY_APPLIED);
    static const struct {
        const char *why;
        char kind;
        const char *id;
        int32_t partition;
        int64_t offset;
        enum patron_apply_result expect;
        bool visitor;
        int64_t orders_after;
    } rows[] = {
        {"a replay of the visitor's purchase", 'p', "g", 3, 10, PATRON_APPLY_REPLAYED, true, 1},
        {"a replay below the visitor's mark", 'v', "zz", 3, 2, PATRON_APPLY_REPLAYED, true, 1},
        {"a resend of the guest purchase", 'p', "g", 3, 12, PATRON_APPLY_DUPLICATE, false, 1},
        {"a resend of the visitor's view", 'v', "w", 3, 13, PATRON_APPLY_DUPLICATE, false, 1},
        {"a new purchase", 'p', "h", 3, 14, PATRON_APPLY_APPLIED, false, 2},
        {"its replay: the customer's now", 'p', "h", 3, 14, PATRON_APPLY_REPLAYED, false, 2},
        {"from another partition", 'p', "k", 4, 1, PATRON_APPLY_APPLIED, false, 3},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        Patron__V1__Event *ev = rows[i].kind == 'p'
                                    ? fx_purchase(&f, rows[i].id, FX_T0 + 2, 1, &line)
                                    : fx_view(&f, rows[i].id, FX_T0 + 2, "b", "cat");
        struct patron_apply_outcome out =
            redirected(&t->c, NULL, ev, rows[i].partition, rows[i].offset);
        cr_expect_eq(out.result, rows[i].expect, "%s", rows[i].why);
        cr_expect_eq(out.visitor, rows[i].visitor, "%s", rows[i].why);
        cr_expect_eq(t->c.orders, rows[i].orders_after, "%s", rows[i].why);
    }
    /* a customer's own event is not a redirected one; nor is a stranger's */
    struct patron_profile_config cfg = defcfg();
    struct patron_apply_outcome out;
    cr_expect_eq(patron_profile_apply_redirected(&t->c, NULL, fx_view(&f, "q", FX_T0, "b", "c"), 0,
                                                 1, &cfg, &out),
                 PATRON_EINVAL);
    cr_expect_eq(patron_profile_apply_redirected(&t->c, NULL,
                                                 fx_anon(fx_view(&f, "q", FX_T0, "b", "c"), "a9"),
                                                 0, 1, &cfg, &out),
                 PATRON_EINVAL);
    /* and a frozen visitor takes none of its own */
    cr_expect_eq(patron_profile_apply(&t->v, fx_anon(fx_view(&f, "q", FX_T0, "b", "c"), ANON), 3,
                                      99, &cfg, &out),
                 PATRON_EINVAL);
    free(t);
}

/* Frozen, not merged yet: the customer is deduplicated against the visitor
 * too, so that what the merge will bring is not applied twice. */
Test(profile_identity, while_the_merge_is_pending_the_visitor_counts)
{
    struct trio *t = trio_new();
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 1000};
    must_apply(&t->v, fx_anon(fx_purchase(&f, "g", FX_T0, 1, &line), ANON), 3, 10);
    struct patron_profile *c0 = malloc(sizeof(*c0));
    *c0 = t->c;
    cr_assert(identify(&t->c, &t->v, "id", FX_T0 + 1, 0, 7).freeze);
    t->c = *c0; /* the visitor is frozen; the customer not written yet */
    cr_expect_eq(redirected(&t->c, &t->v, fx_purchase(&f, "g", FX_T0, 1, &line), 3, 10).result,
                 PATRON_APPLY_REPLAYED);
    cr_expect_eq(redirected(&t->c, &t->v, fx_purchase(&f, "g", FX_T0, 1, &line), 3, 11).result,
                 PATRON_APPLY_DUPLICATE);
    cr_expect_eq(redirected(&t->c, &t->v, fx_purchase(&f, "n", FX_T0, 1, &line), 3, 12).result,
                 PATRON_APPLY_APPLIED);
    cr_expect_eq(t->c.orders, 1);
    /* then the merge's replay: the visitor's purchase and the new one */
    cr_expect_eq(identify(&t->c, &t->v, "id", FX_T0 + 1, 0, 7).apply.result, PATRON_APPLY_APPLIED);
    cr_expect_eq(t->c.orders, 2);
    free(c0);
    free(t);
}

/* ---- the visitor's key, marks, stored form ------------------------------------------------ */

Test(profile_identity, alias_only_and_erasure_of_the_visitor)
{
    struct trio *t = trio_new();
    struct fx_event f;
    must_apply(&t->v, fx_anon(fx_view(&f, "w", FX_T0, "b", "cat"), ANON), 3, 11);
    cr_assert(identify(&t->c, &t->v, "id", FX_T0 + 1, 6, 7).freeze);
    cr_expect_eq(t->v.merged_partition, 6);
    struct patron_profile *alias = malloc(sizeof(*alias));
    *alias = t->v;
    patron_profile_alias_only(alias);
    cr_expect_str_eq(alias->anonymous_id, ANON);
    cr_expect_str_eq(alias->merged_into, FX_CUSTOMER);
    cr_expect_eq(alias->merged_partition, 6);
    cr_expect_eq(alias->n_viewed, 0);
    cr_expect_eq(alias->n_event_ids, 0);
    cr_expect_eq(alias->n_marks, 0);

    cr_expect_not(patron_profile_erase_visitor(alias, "someone-else", FX_T0 + 5));
    cr_expect_str_eq(alias->merged_into, FX_CUSTOMER);
    cr_expect(patron_profile_erase_visitor(alias, FX_CUSTOMER, FX_T0 + 5));
    cr_expect(alias->erased);
    cr_expect_str_eq(alias->merged_into, "");
    cr_expect_eq(alias->erased_at_ms, FX_T0 + 5);
    /* no longer anyone's: its events are its own again, those from before stale */
    struct patron_profile_config cfg = defcfg();
    struct patron_apply_outcome out;
    cr_assert_eq(patron_profile_apply(alias, fx_anon(fx_view(&f, "o", FX_T0 + 4, "b", "c"), ANON),
                                      3, 20, &cfg, &out),
                 0);
    cr_expect_eq(out.result, PATRON_APPLY_STALE);
    cr_assert_eq(patron_profile_apply(alias, fx_anon(fx_view(&f, "n", FX_T0 + 6, "b", "c"), ANON),
                                      3, 21, &cfg, &out),
                 0);
    cr_expect_eq(out.result, PATRON_APPLY_APPLIED);
    cr_expect(out.visitor);
    free(alias);
    free(t);
}

Test(profile_identity, marks_are_per_partition_and_bounded)
{
    struct patron_profile *p = malloc(sizeof(*p));
    patron_profile_init(p, FX_CUSTOMER);
    struct fx_event f;
    static char ids[PATRON_PROFILE_MARKS_MAX + 2][8];
    for (int i = 0; i <= PATRON_PROFILE_MARKS_MAX; i++) {
        snprintf(ids[i], sizeof(ids[i]), "v%d", i);
        must_apply(p, fx_view(&f, ids[i], FX_T0 + i, "x", "c"), i, 100 + i);
    }
    cr_expect_eq(p->n_marks, PATRON_PROFILE_MARKS_MAX);
    cr_expect_eq(p->marks[0].partition, PATRON_PROFILE_MARKS_MAX, "most recent first");
    for (size_t i = 0; i < p->n_marks; i++)
        cr_expect_neq(p->marks[i].partition, 0, "the least recently written went");
    /* a replay from the forgotten partition is still caught by its id */
    cr_expect_eq(must_apply(p, fx_view(&f, ids[0], FX_T0, "x", "c"), 0, 100).result,
                 PATRON_APPLY_DUPLICATE);
    free(p);
}

Test(profile_identity, visitors_and_aliases_round_trip)
{
    struct trio *t = trio_new();
    struct fx_event f;
    must_apply(&t->v, fx_anon(fx_view(&f, "w", FX_T0, "b", "cat"), ANON), 3, 11);
    must_apply(&t->v, fx_anon(fx_cart_add(&f, "a", FX_T0, "b", "cat", 2, 50), ANON), 3, 12);
    cr_assert(identify(&t->c, &t->v, "id", FX_T0 + 1, 6, 7).freeze);
    for (int side = 0; side < 2; side++) {
        const struct patron_profile *p = side ? &t->v : &t->c;
        uint8_t *buf;
        size_t len;
        cr_assert_eq(patron_profile_encode(p, &buf, &len), 0);
        struct patron_profile *q = malloc(sizeof(*q));
        memset(q, 0x5a, sizeof(*q));
        cr_assert_eq(patron_profile_decode(q, buf, len), 0);
        cr_expect_str_eq(q->customer_id, p->customer_id);
        cr_expect_str_eq(q->anonymous_id, p->anonymous_id);
        cr_expect_str_eq(q->merged_into, p->merged_into);
        cr_expect_eq(q->merged_partition, p->merged_partition);
        cr_expect_eq(q->n_aliases, p->n_aliases);
        cr_expect_eq(q->n_marks, p->n_marks);
        if (p->n_aliases) {
            cr_expect_str_eq(q->aliases[0].anonymous_id, ANON);
            cr_expect_eq(q->aliases[0].cart_lines, 1);
            cr_expect_eq(q->aliases[0].viewed, 1);
            cr_expect_eq(q->aliases[0].n_marks, 1);
            cr_expect_eq(q->aliases[0].marks[0].offset, 12);
        }
        cr_log_info("%s encodes to %zu bytes", side ? "the frozen visitor" : "the customer", len);
        free(q);
        free(buf);
    }
    struct patron_profile *alias = malloc(sizeof(*alias));
    *alias = t->v;
    patron_profile_alias_only(alias);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(patron_profile_encode(alias, &buf, &len), 0);
    cr_expect_leq(len, 16, "an alias is its two ids and a partition: %zu bytes", len);
    free(buf);
    free(alias);
    free(t);
}

/* What the decoder refuses about identity: both ids, neither, an alias on
 * a visitor, a merge target on a customer, more marks than the bound. */
Test(profile_identity, the_stored_form_refuses_mixed_identities)
{
    struct {
        const char *why;
        const uint8_t *buf;
        size_t len;
    } rows[] = {
        {"neither id", (const uint8_t *)"\x10\x01", 2},
        {"both ids",
         (const uint8_t *)"\x0a\x01"
                          "c"
                          "\xb2\x02\x01"
                          "a",
         6},
        {"a customer merged into someone",
         (const uint8_t *)"\x0a\x01"
                          "c"
                          "\xba\x02\x01"
                          "d",
         6},
        {"a visitor with an alias",
         (const uint8_t *)"\xb2\x02\x01"
                          "a"
                          "\xca\x02\x03\x0a\x01"
                          "b",
         9},
        {"more sources without the first",
         (const uint8_t *)"\x0a\x01"
                          "c"
                          "\xd2\x02\x00",
         6},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_profile *p = malloc(sizeof(*p));
        cr_expect_eq(patron_profile_decode(p, rows[i].buf, rows[i].len), PATRON_EINVAL, "%s",
                     rows[i].why);
        free(p);
    }
    /* and what it accepts: a visitor alone, an alias alone */
    struct patron_profile *p = malloc(sizeof(*p));
    cr_expect_eq(patron_profile_decode(p,
                                       (const uint8_t *)"\xb2\x02\x01"
                                                        "a",
                                       4),
                 0);
    cr_expect(patron_profile_is_visitor(p));
    cr_expect_eq(patron_profile_decode(p,
                                       (const uint8_t *)"\xb2\x02\x01"
                                                        "a"
                                                        "\xba\x02\x01"
                                                        "c",
                                       8),
                 0);
    cr_expect_str_eq(p->merged_into, "c");
    free(p);
}

/* A merged visitor's events come from another partition at their own pace:
 * a cart add that arrives after a later purchase (in event time) does not
 * bring back a line that purchase cleared. */
Test(profile_identity, a_late_cart_add_stays_cleared_by_a_later_purchase)
{
    struct patron_profile *p = malloc(sizeof(*p));
    patron_profile_init(p, FX_CUSTOMER);
    struct fx_event f;
    struct fx_line line = {"a", "cat", 1, 100};
    must_apply(p, fx_purchase(&f, "p", FX_T0 + 10, 1, &line), 0, 1);
    must_apply(p, fx_cart_add(&f, "late", FX_T0 + 5, "b", "cat", 1, 5), 1, 1);
    cr_expect_eq(p->n_cart, 0);
    cr_expect_eq(p->n_categories, 1, "its taste counts all the same");
    must_apply(p, fx_cart_add(&f, "after", FX_T0 + 20, "c", "cat", 1, 5), 1, 2);
    cr_expect_eq(p->n_cart, 1);
    free(p);
}

/* What ingest reads of a stored profile to know which others to read: a
 * visitor's customer, a customer's anonymous ids, whether a visitor still
 * holds contents. */
Test(profile_identity, the_stored_form_at_a_glance)
{
    struct trio *t = trio_new();
    struct fx_event f;
    must_apply(&t->v, fx_anon(fx_view(&f, "w", FX_T0, "b", "cat"), ANON), 3, 11);
    cr_assert(identify(&t->c, &t->v, "id", FX_T0 + 1, 6, 7).freeze);
    struct patron_profile *alias = malloc(sizeof(*alias));
    *alias = t->v;
    patron_profile_alias_only(alias);
    static const struct {
        int which; /* 0 customer, 1 frozen visitor, 2 alias */
        bool visitor, contents;
        const char *merged_into;
        size_t n_aliases;
    } rows[] = {
        {0, false, true, "", 1},
        {1, true, true, FX_CUSTOMER, 0},
        {2, true, false, FX_CUSTOMER, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        const struct patron_profile *p = rows[i].which == 0   ? &t->c
                                         : rows[i].which == 1 ? &t->v
                                                              : alias;
        uint8_t *buf;
        size_t len;
        cr_assert_eq(patron_profile_encode(p, &buf, &len), 0);
        uint8_t *stored = malloc(len + PATRON_PROFILE_VERSION_LEN);
        patron_profile_version_put(stored, 42);
        memcpy(stored + PATRON_PROFILE_VERSION_LEN, buf, len);
        struct patron_profile_peek *pk = malloc(sizeof(*pk));
        cr_assert_eq(patron_profile_stored_peek(stored, len + PATRON_PROFILE_VERSION_LEN, pk), 0);
        cr_expect_eq(pk->visitor, rows[i].visitor, "row %zu", i);
        cr_expect_eq(pk->contents, rows[i].contents, "row %zu", i);
        cr_expect_str_eq(pk->merged_into, rows[i].merged_into, "row %zu", i);
        cr_expect_eq(pk->n_aliases, rows[i].n_aliases, "row %zu", i);
        if (pk->n_aliases)
            cr_expect_str_eq(pk->aliases[0], ANON);
        if (rows[i].visitor)
            cr_expect_eq(pk->merged_partition, 6, "row %zu", i);
        /* a cut value is refused, never read past its end */
        cr_expect_eq(patron_profile_stored_peek(stored, len + PATRON_PROFILE_VERSION_LEN - 1, pk),
                     len > 1 ? PATRON_EINVAL : 0, "row %zu", i);
        cr_expect_eq(patron_profile_stored_peek(stored, 3, pk), PATRON_EINVAL);
        free(pk);
        free(stored);
        free(buf);
    }
    free(alias);
    free(t);
}
