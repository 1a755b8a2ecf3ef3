/*
 * Resends at any distance (profile.h, "Exactly-once apply"): what counts is
 * counted once whether it comes back a second or a year later; what counts
 * nothing is applied once or not at all; a re-published month changes
 * nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_events.h"
#include "patron/profile.h"

PATRON_LEAK_CHECKED_SUITE(dedupe);

#define HOUR (FX_DAY / 24)

/* Profiles are 45 KiB: one per test, off the stack. */
static struct patron_profile *fresh(void)
{
    struct patron_profile *p = malloc(sizeof(*p));
    cr_assert_not_null(p);
    patron_profile_init(p, FX_CUSTOMER);
    return p;
}

static enum patron_apply_result apply(struct patron_profile *p, const Patron__V1__Event *ev)
{
    struct patron_profile_config c;
    patron_profile_config_default(&c);
    struct patron_apply_outcome out;
    cr_assert_eq(patron_profile_apply(p, ev, 0, -1, &c, &out), 0, "%s", ev->event_id);
    return out.result;
}

/* Event ids that outlive the call: id(i) is "e<i>". */
static const char *id(int i)
{
    static char ids[12000][12];
    cr_assert_lt(i, 12000);
    snprintf(ids[i], sizeof(ids[i]), "e%d", i);
    return ids[i];
}

static struct fx_event f;
static struct fx_line line = {"item", "home", 1, 1000};

Test(dedupe, a_purchase_resent_after_ten_thousand_events_counts_once)
{
    struct patron_profile *p = fresh();
    cr_assert_eq(apply(p, fx_purchase(&f, "order-1", FX_T0, 1, &line)), PATRON_APPLY_APPLIED);
    for (int i = 0; i < 10000; i++) {
        int64_t t = FX_T0 + (int64_t)i * 60000;
        const Patron__V1__Event *ev = i % 10 == 0 ? fx_purchase(&f, id(i), t, 1, &line)
                                                  : fx_view(&f, id(i), t, "item", "home");
        cr_assert_eq(apply(p, ev), PATRON_APPLY_APPLIED, "%d", i);
    }
    int64_t orders = p->orders, spend = p->net_spend_cents;
    /* a year later, and once more with its time changed by the producer */
    cr_expect_eq(apply(p, fx_purchase(&f, "order-1", FX_T0, 1, &line)), PATRON_APPLY_DUPLICATE);
    cr_expect_eq(apply(p, fx_purchase(&f, "order-1", FX_T0 + 400 * FX_DAY, 1, &line)),
                 PATRON_APPLY_DUPLICATE);
    cr_expect_eq(apply(p, fx_purchase(&f, id(0), FX_T0, 1, &line)), PATRON_APPLY_DUPLICATE);
    cr_expect_eq(p->orders, orders);
    cr_expect_eq(p->net_spend_cents, spend);
    free(p);
}

Test(dedupe, refunds_and_reviews_are_remembered_like_purchases)
{
    struct patron_profile *p = fresh();
    apply(p, fx_purchase(&f, "o", FX_T0, 1, &line));
    cr_assert_eq(apply(p, fx_refund(&f, "r", FX_T0 + 1, 500, 0, NULL)), PATRON_APPLY_APPLIED);
    cr_assert_eq(apply(p, fx_review(&f, "v", FX_T0 + 2, "item", 5)), PATRON_APPLY_APPLIED);
    for (int i = 0; i < 500; i++)
        apply(p, fx_view(&f, id(i), FX_T0 + 3 * FX_DAY + i, "x", "home"));
    cr_expect_eq(apply(p, fx_refund(&f, "r", FX_T0 + 1, 500, 0, NULL)), PATRON_APPLY_DUPLICATE);
    cr_expect_eq(apply(p, fx_review(&f, "v", FX_T0 + 2, "item", 5)), PATRON_APPLY_DUPLICATE);
    cr_expect_eq(p->net_spend_cents, 500);
    cr_expect_eq(p->points, 5 + 10);
    cr_expect_eq(p->reviews, 1);
    free(p);
}

/* A full ledger forgets its oldest month whole; what it cannot vouch for
 * is refused, never counted twice. */
Test(dedupe, a_full_ledger_forgets_a_month_and_refuses_what_it_forgot)
{
    struct patron_profile *p = fresh();
    /* 100 purchases a day from T0 (mid-January 2021): 4,096 fill the ledger
     * on day 41, in February */
    int n = PATRON_PROFILE_COUNTED_MAX + 10;
    for (int i = 0; i < n; i++) {
        int64_t t = FX_T0 + (int64_t)(i / 100) * FX_DAY + i % 100;
        cr_assert_eq(apply(p, fx_purchase(&f, id(i), t, 1, &line)), PATRON_APPLY_APPLIED, "%d", i);
    }
    cr_expect_eq(p->orders, n);
    cr_expect_lt(p->n_counted, PATRON_PROFILE_COUNTED_MAX);
    cr_expect_eq(p->counted_floor_month, 2021 * 12 + 0, "January forgotten");
    /* January's purchases: a resend, or a new one, cannot be told apart */
    cr_expect_eq(apply(p, fx_purchase(&f, id(0), FX_T0, 1, &line)), PATRON_APPLY_REFUSED);
    cr_expect_eq(apply(p, fx_purchase(&f, "new-in-january", FX_T0 + 2, 1, &line)),
                 PATRON_APPLY_REFUSED);
    /* February's are still known */
    int feb = 20 * 100; /* day 20 from 15 January: 4 February */
    int64_t t_feb = FX_T0 + 20 * FX_DAY;
    cr_expect_eq(apply(p, fx_purchase(&f, id(feb), t_feb, 1, &line)), PATRON_APPLY_DUPLICATE);
    cr_expect_eq(apply(p, fx_purchase(&f, "new-in-february", t_feb, 1, &line)),
                 PATRON_APPLY_APPLIED);
    cr_expect_eq(p->orders, n + 1);
    free(p);
}

Test(dedupe, views_resent_within_the_window_are_duplicates)
{
    struct patron_profile *p = fresh();
    for (int i = 0; i < 200; i++)
        cr_assert_eq(apply(p, fx_view(&f, id(i), FX_T0 + i * 1000, "item", "home")),
                     PATRON_APPLY_APPLIED);
    for (int i = 0; i < 200; i++)
        cr_expect_eq(apply(p, fx_view(&f, id(i), FX_T0 + i * 1000, "item", "home")),
                     PATRON_APPLY_DUPLICATE, "%d", i);
    /* same-millisecond bursts are told apart by id */
    for (int i = 200; i < 250; i++)
        cr_expect_eq(apply(p, fx_view(&f, id(i), FX_T0 + 199000, "item", "home")),
                     PATRON_APPLY_APPLIED, "%d", i);
    free(p);
}

Test(dedupe, cart_changes_older_than_the_window_are_stale)
{
    struct patron_profile *p = fresh();
    cr_assert_eq(apply(p, fx_cart_add(&f, "add", FX_T0, "i", "home", 2, 100)),
                 PATRON_APPLY_APPLIED);
    cr_assert_eq(apply(p, fx_view(&f, "later", FX_T0 + 25 * HOUR, "i", "home")),
                 PATRON_APPLY_APPLIED);
    cr_expect_eq(p->n_event_ids, 1, "the cart add left the window");
    /* its resend, a day later, changes nothing: no doubled quantity */
    cr_expect_eq(apply(p, fx_cart_add(&f, "add", FX_T0, "i", "home", 2, 100)), PATRON_APPLY_STALE);
    cr_expect_eq(apply(p, fx_cart_remove(&f, "rm", FX_T0 + HOUR - 1, "i")), PATRON_APPLY_STALE);
    cr_expect_eq(p->cart[0].quantity, 2);
    /* within the window, late is fine */
    cr_expect_eq(apply(p, fx_cart_add(&f, "add2", FX_T0 + 2 * HOUR, "j", "home", 1, 100)),
                 PATRON_APPLY_APPLIED);
    free(p);
}

Test(dedupe, a_crowded_window_forgets_early_and_refuses_what_it_forgot)
{
    struct patron_profile *p = fresh();
    int n = PATRON_PROFILE_EVENT_IDS_MAX + 20;
    for (int i = 0; i < n; i++)
        apply(p, fx_view(&f, id(i), FX_T0 + i * 1000, "item", "home"));
    cr_expect_eq(p->n_event_ids, PATRON_PROFILE_EVENT_IDS_MAX);
    cr_expect_eq(p->event_ids_floor_ms, FX_T0 + 19 * 1000, "the 20 earliest left early");
    cr_expect_eq(apply(p, fx_view(&f, id(0), FX_T0, "item", "home")), PATRON_APPLY_STALE);
    cr_expect_eq(apply(p, fx_view(&f, id(19), FX_T0 + 19000, "item", "home")), PATRON_APPLY_STALE);
    cr_expect_eq(apply(p, fx_view(&f, id(20), FX_T0 + 20000, "item", "home")),
                 PATRON_APPLY_DUPLICATE);
    cr_expect_eq(apply(p, fx_view(&f, "new", FX_T0 + 19001, "item", "home")), PATRON_APPLY_APPLIED);
    free(p);
}

/* Consent is last-writer-wins by event time per channel, so order and
 * resends never matter; at the same time a revocation wins. */
Test(dedupe, consent_is_last_writer_wins_by_event_time)
{
    static const struct {
        const char *id;
        int64_t t;
        Patron__V1__Channel ch;
        bool granted;
        enum patron_apply_result want;
        bool sms_after, email_after;
    } rows[] = {
        {"g1", FX_T0 + 10, PATRON__V1__CHANNEL__SMS, true, PATRON_APPLY_APPLIED, true, false},
        {"r1", FX_T0 + 20, PATRON__V1__CHANNEL__SMS, false, PATRON_APPLY_APPLIED, false, false},
        /* the grant resent after the revocation, months later: stale */
        {"g1", FX_T0 + 10, PATRON__V1__CHANNEL__SMS, true, PATRON_APPLY_STALE, false, false},
        {"g1-copy", FX_T0 + 10, PATRON__V1__CHANNEL__SMS, true, PATRON_APPLY_STALE, false, false},
        /* another channel has its own time */
        {"e1", FX_T0 + 5, PATRON__V1__CHANNEL__EMAIL, true, PATRON_APPLY_APPLIED, false, true},
        /* same time, same value: nothing changes */
        {"r1-copy", FX_T0 + 20, PATRON__V1__CHANNEL__SMS, false, PATRON_APPLY_STALE, false, true},
        /* same time, a grant against a revocation: the revocation stays */
        {"g2", FX_T0 + 20, PATRON__V1__CHANNEL__SMS, true, PATRON_APPLY_STALE, false, true},
        /* a newer grant wins, even far older than the window's latest event */
        {"g3", FX_T0 + 30, PATRON__V1__CHANNEL__SMS, true, PATRON_APPLY_APPLIED, true, true},
        /* same time, a revocation against a grant: the revocation wins */
        {"r3", FX_T0 + 30, PATRON__V1__CHANNEL__SMS, false, PATRON_APPLY_APPLIED, false, true},
    };
    struct patron_profile *p = fresh();
    apply(p, fx_view(&f, "much-later", FX_T0 + 90 * FX_DAY, "x", "home"));
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        enum patron_apply_result got =
            apply(p, fx_consent(&f, rows[i].id, rows[i].t, rows[i].ch, rows[i].granted));
        cr_expect_eq(got, rows[i].want, "row %zu: %d", i, got);
        cr_expect_eq(p->consent_sms, rows[i].sms_after, "row %zu", i);
        cr_expect_eq(p->consent_email, rows[i].email_after, "row %zu", i);
    }
    free(p);
}

Test(dedupe, customer_updates_are_last_writer_wins)
{
    struct patron_profile *p = fresh();
    cr_assert_eq(apply(p, fx_customer(&f, "u2", FX_T0 + 2, "05-14", "Europe/Paris", "fr-FR", "FR")),
                 PATRON_APPLY_APPLIED);
    cr_expect_eq(
        apply(p, fx_customer(&f, "u1", FX_T0 + 1, "01-01", "Europe/London", "en-GB", "UK")),
        PATRON_APPLY_STALE);
    cr_expect_str_eq(p->time_zone, "Europe/Paris");
    cr_expect_eq(apply(p, fx_customer(&f, "u3", FX_T0 + 2, "06-01", "", "", "")),
                 PATRON_APPLY_APPLIED, "the same time: applied in order");
    cr_expect_str_eq(p->birthday, "06-01");
    free(p);
}

Test(dedupe, nothing_from_before_an_erasure_comes_back)
{
    struct patron_profile *p = fresh();
    apply(p, fx_purchase(&f, "before", FX_T0, 1, &line));
    apply(p, fx_view(&f, "seen", FX_T0, "i", "home"));
    cr_assert_eq(apply(p, fx_erasure(&f, "erase", FX_T0 + HOUR)), PATRON_APPLY_APPLIED);
    cr_assert(p->erased);
    /* the customer comes back */
    cr_assert_eq(apply(p, fx_view(&f, "after", FX_T0 + 2 * HOUR, "j", "home")),
                 PATRON_APPLY_APPLIED);
    cr_assert(!p->erased);
    /* a late resend, a new event from before the erasure: neither returns */
    cr_expect_eq(apply(p, fx_purchase(&f, "before", FX_T0, 1, &line)), PATRON_APPLY_STALE);
    cr_expect_eq(apply(p, fx_purchase(&f, "unseen-before", FX_T0 + HOUR - 1, 1, &line)),
                 PATRON_APPLY_STALE);
    cr_expect_eq(apply(p, fx_consent(&f, "c", FX_T0, PATRON__V1__CHANNEL__SMS, true)),
                 PATRON_APPLY_STALE);
    cr_expect_eq(p->orders, 0);
    cr_expect_eq(p->consent_sms, false);
    free(p);
}

/* The site re-publishes a month after an outage: every event of it comes
 * again, in order, and the profile does not change by a byte. */
Test(dedupe, a_republished_month_changes_nothing)
{
    struct patron_profile *p = fresh();
    const int days = 90, per_day = 40;
    for (int pass = 0; pass < 2; pass++) {
        static struct patron_profile snapshot;
        for (int d = 0; d < days; d++) {
            /* the second pass re-publishes the second month only */
            if (pass == 1 && (d < 30 || d >= 60))
                continue;
            for (int k = 0; k < per_day; k++) {
                int i = d * per_day + k;
                int64_t t = FX_T0 + (int64_t)d * FX_DAY + (int64_t)k * 60000;
                char item[8];
                snprintf(item, sizeof(item), "i%d", i % 37);
                const Patron__V1__Event *ev;
                switch (k % 8) {
                case 0:
                    ev = fx_purchase(&f, id(i), t, 1, &line);
                    break;
                case 1:
                    ev = fx_cart_add(&f, id(i), t, item, "toys", 1, 300);
                    break;
                case 2:
                    ev = fx_cart_remove(&f, id(i), t, item);
                    break;
                case 3:
                    ev = fx_review(&f, id(i), t, item, 4);
                    break;
                case 4:
                    ev = fx_consent(&f, id(i), t, PATRON__V1__CHANNEL__EMAIL, d % 2 == 0);
                    break;
                case 5:
                    ev = fx_customer(&f, id(i), t, "05-14", "Europe/London", "en-GB", "UK");
                    break;
                case 6:
                    ev = fx_refund(&f, id(i), t, 100, 0, NULL);
                    break;
                default:
                    ev = fx_view(&f, id(i), t, item, "home");
                    break;
                }
                enum patron_apply_result r = apply(p, ev);
                if (pass == 0)
                    cr_assert_eq(r, PATRON_APPLY_APPLIED, "day %d event %d: %d", d, k, r);
                else
                    cr_assert(r == PATRON_APPLY_DUPLICATE || r == PATRON_APPLY_STALE,
                              "day %d event %d: %d", d, k, r);
            }
        }
        if (pass == 0)
            memcpy(&snapshot, p, sizeof(snapshot));
        else
            cr_expect_eq(memcmp(&snapshot, p, sizeof(snapshot)), 0, "the profile changed");
    }
    free(p);
}
