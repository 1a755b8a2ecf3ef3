/*
 * The campaign engine and identity: an IDENTIFY update (a visitor merged
 * into the customer at login) that brings cart lines is the customer's cart
 * add at the login, under the customer's consent; one that brings none
 * changes the profile only. docs/contracts/campaigns.md's example file.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_campaigns.h"

PATRON_LEAK_CHECKED_SUITE(campaign_engine_identity);

static Patron__V1__ProfileUpdate identify(const struct fx *f, const char *event_id, int64_t at,
                                          size_t n_items)
{
    static char *items[] = {"i-cart-1", "i-cart-2"};
    Patron__V1__ProfileUpdate u = upd(f, event_id, PATRON__V1__EVENT_KIND__IDENTIFY, at);
    u.anonymous_id = "cookie-1";
    u.n_item_ids = n_items;
    u.item_ids = items;
    return u;
}

Test(campaign_engine_identity, table)
{
    enum { NONE, PURCHASE_IN_WAIT, REPLAY, RESEND, NO_PUSH, TIER_UP };
    static const struct {
        const char *name;
        size_t items;
        int then;
        size_t cart_sent;
        int64_t exited, consent, tier_sent;
    } rows[] = {
        {"a merged cart: one cart-abandonment an hour after the login", 2, NONE, 1, 0, 0, 0},
        {"no cart brought: none", 0, NONE, 0, 0, 0, 0},
        {"a purchase during the wait: exited", 1, PURCHASE_IN_WAIT, 0, 1, 0, 0},
        {"the update replayed (same offset): once", 1, REPLAY, 1, 0, 0, 0},
        {"the update sent again (new offset): once", 1, RESEND, 1, 0, 0, 0},
        {"the customer has no push consent: suppressed", 1, NO_PUSH, 0, 0, 1, 0},
        {"the merge raises the tier: tier-upgrade", 0, TIER_UP, 0, 0, 0, 1},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct fx f;
        fx_open(&f, example, false);
        Patron__V1__ProfileUpdate u = identify(&f, "e-id", T, rows[i].items);
        if (rows[i].then == NO_PUSH)
            u.consent_push = false;
        if (rows[i].then == TIER_UP)
            u.tier = "gold";
        fx_apply_at(&f, &u, 10);
        if (rows[i].then == REPLAY)
            fx_apply_at(&f, &u, 10);
        if (rows[i].then == RESEND)
            fx_apply_at(&f, &u, 11);
        if (rows[i].then == PURCHASE_IN_WAIT) {
            Patron__V1__ProfileUpdate p =
                upd(&f, "e-buy", PATRON__V1__EVENT_KIND__PURCHASE, T + H / 2);
            fx_apply_at(&f, &p, 12);
        }
        fx_fire(&f, T + 2 * H);
        cr_expect_eq(fx_sends_of(&f, CART), rows[i].cart_sent, "%s", rows[i].name);
        cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_EXITED), rows[i].exited, "%s", rows[i].name);
        if (rows[i].consent)
            cr_expect_eq(fx_stat(&f, CART, PATRON_STAT_CONSENT), rows[i].consent, "%s",
                         rows[i].name);
        cr_expect_eq(fx_sends_of(&f, TIER), (size_t)rows[i].tier_sent, "%s", rows[i].name);
        for (size_t k = 0; k < f.n_sent; k++) {
            if (strcmp(f.sent[k].campaign, CART) != 0)
                continue;
            cr_expect_eq(f.sent[k].at, T + H, "%s: an hour after the login", rows[i].name);
            cr_expect_str_eq(f.sent[k].trigger_event_id, "e-id", "%s", rows[i].name);
            expect_message_id(&f, &f.sent[k], "e-id", T + H);
        }
        cr_expect_eq(fx_sends_of(&f, BROWSE), 0, "%s: a login is not a view", rows[i].name);
        fx_close(&f);
    }
}
