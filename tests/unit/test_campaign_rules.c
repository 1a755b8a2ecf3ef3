#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/campaign_rules.h"
#include "patron/template.h"
#include "patron/campaign_yaml.h"

PATRON_LEAK_CHECKED_SUITE(campaign_rules);
PATRON_LEAK_CHECKED_SUITE(campaign_template);

static const char file[] =
    "defaults:\n"
    "  quiet_hours: { start: \"21:00\", end: \"09:00\" }\n"
    "  frequency_caps:\n"
    "    - { channel: sms,   max: 1, per: 1d }\n"
    "    - { channel: push,  max: 3, per: 1d }\n"
    "    - { channel: any,   max: 4, per: 1d }\n"
    "  control_group_percent: 5\n"
    "campaigns:\n"
    "  - id: cart-abandonment\n"
    "    when: { event: cart_add }\n"
    "    wait: 1h\n"
    "    unless: { event: [purchase, cart_remove] }\n"
    "    audience: { segments: [champion, loyal], tiers: [gold, platinum] }\n"
    "    channel: push\n"
    "    template: cart_reminder\n"
    "    cooldown: 1d\n"
    "    params: { coupon: X1 }\n"
    "    variants:\n"
    "      - { id: A, weight: 1, template: cart_a }\n"
    "      - { id: B, weight: 3 }\n"
    "  - id: browse\n"
    "    when: { event: view }\n"
    "    wait: 2h\n"
    "    channel: push\n"
    "    template: t\n"
    "  - id: cross-sell\n"
    "    when: { event: purchase }\n"
    "    channel: email\n"
    "    template: t\n"
    "  - id: review\n"
    "    when: { event: purchase }\n"
    "    wait: 3d\n"
    "    channel: email\n"
    "    template: t\n"
    "  - id: winback\n"
    "    when: { inactive_for: 60d }\n"
    "    channel: sms\n"
    "    template: t\n"
    "  - id: at-risk\n"
    "    when: { segment_becomes: at_risk }\n"
    "    channel: email\n"
    "    template: t\n"
    "  - id: tier-upgrade\n"
    "    when: { tier_up: true }\n"
    "    channel: push\n"
    "    template: t\n"
    "    ignore_caps: true\n"
    "  - id: birthday\n"
    "    when: { birthday: true }\n"
    "    at: \"10:00\"\n"
    "    channel: sms\n"
    "    template: t\n"
    "  - id: daytime\n"
    "    when: { event: review }\n"
    "    channel: sms\n"
    "    template: t\n"
    "    quiet_hours: { start: \"12:00\", end: \"14:00\" }\n";

static struct patron_campaigns *load(void)
{
    struct patron_campaigns *cs = NULL;
    char err[256];
    int rc = patron_campaigns_parse(file, strlen(file), &cs, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return cs;
}

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

#define H 3600000LL
#define DAY (24 * H)
#define T0 1767225600000LL /* 2026-01-01T00:00Z */

struct expect_trigger {
    const char *campaign;
    enum patron_timer_kind kind;
    int64_t fire_at;
};

struct trigger_case {
    Patron__V1__EventKind kind;
    const char *segment, *previous_segment, *tier, *previous_tier, *birthday, *zone;
    int64_t last_purchase;
    struct expect_trigger want[4];
};

Test(campaign_rules, triggers_table)
{
    struct patron_campaigns *cs = load();
    static const struct trigger_case cases[] = {
        {PATRON__V1__EVENT_KIND__CART_ADD,
         .want = {{"cart-abandonment", PATRON_TIMER_WAIT, T0 + H}}},
        {PATRON__V1__EVENT_KIND__VIEW, .want = {{"browse", PATRON_TIMER_WAIT, T0 + 2 * H}}},
        {PATRON__V1__EVENT_KIND__PURCHASE, .last_purchase = T0,
         .want = {{"cross-sell", PATRON_TIMER_NONE, T0},
                  {"review", PATRON_TIMER_WAIT, T0 + 3 * DAY},
                  {"winback", PATRON_TIMER_INACTIVITY, T0 + 60 * DAY}}},
        /* an older purchase arriving late: the win-back counts from the latest */
        {PATRON__V1__EVENT_KIND__PURCHASE, .last_purchase = T0 + DAY,
         .want = {{"cross-sell", PATRON_TIMER_NONE, T0},
                  {"review", PATRON_TIMER_WAIT, T0 + 3 * DAY},
                  {"winback", PATRON_TIMER_INACTIVITY, T0 + 61 * DAY}}},
        {PATRON__V1__EVENT_KIND__REFUND, .segment = "at_risk", .previous_segment = "loyal",
         .want = {{"at-risk", PATRON_TIMER_NONE, T0}}},
        {PATRON__V1__EVENT_KIND__REFUND, .segment = "at_risk", .previous_segment = "",
         .want = {{"at-risk", PATRON_TIMER_NONE, T0}}},
        {PATRON__V1__EVENT_KIND__REFUND, .segment = "at_risk", .previous_segment = "at_risk"},
        {PATRON__V1__EVENT_KIND__REFUND, .segment = "loyal", .previous_segment = "at_risk"},
        {PATRON__V1__EVENT_KIND__CART_REMOVE, .tier = "gold", .previous_tier = "silver",
         .want = {{"tier-upgrade", PATRON_TIMER_NONE, T0}}},
        {PATRON__V1__EVENT_KIND__CART_REMOVE, .tier = "platinum", .previous_tier = "silver",
         .want = {{"tier-upgrade", PATRON_TIMER_NONE, T0}}},
        {PATRON__V1__EVENT_KIND__CART_REMOVE, .tier = "gold", .previous_tier = "platinum"},
        {PATRON__V1__EVENT_KIND__CART_REMOVE, .tier = "gold", .previous_tier = "gold"},
        {PATRON__V1__EVENT_KIND__CART_REMOVE, .tier = "silver", .previous_tier = ""},
        {PATRON__V1__EVENT_KIND__CART_REMOVE, .tier = "diamond", .previous_tier = "silver"},
        {PATRON__V1__EVENT_KIND__CUSTOMER, .birthday = "05-14", .zone = "Europe/London",
         .want = {{"birthday", PATRON_TIMER_BIRTHDAY, 1778749200000LL /* 2026-05-14T09:00Z */}}},
        {PATRON__V1__EVENT_KIND__CUSTOMER, .birthday = "13-40", .zone = "Europe/London"},
        {PATRON__V1__EVENT_KIND__CUSTOMER, .birthday = ""},
        {PATRON__V1__EVENT_KIND__REVIEW, .want = {{"daytime", PATRON_TIMER_NONE, T0}}},
        {PATRON__V1__EVENT_KIND__ERASURE, .segment = "at_risk", .previous_segment = "loyal"},
        {PATRON__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED},
        {(Patron__V1__EventKind)77},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct trigger_case *c = &cases[i];
        Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
        u.customer_id = "c1";
        u.event_id = "e1";
        u.kind = c->kind;
        u.occurred_at_ms = T0;
        u.last_purchase_ms = c->last_purchase;
        u.segment = (char *)(c->segment ? c->segment : "");
        u.previous_segment = (char *)(c->previous_segment ? c->previous_segment : "");
        u.tier = (char *)(c->tier ? c->tier : "");
        u.previous_tier = (char *)(c->previous_tier ? c->previous_tier : "");
        u.birthday = (char *)(c->birthday ? c->birthday : "");
        u.time_zone = (char *)(c->zone ? c->zone : "");
        struct patron_trigger out[16];
        size_t n = 99;
        cr_assert_eq(patron_campaign_triggers(cs, &u, out, PATRON_ARRAY_LEN(out), &n), 0);
        size_t want = 0;
        while (want < 4 && c->want[want].campaign)
            want++;
        cr_expect_eq(n, want, "row %zu: %zu triggers, want %zu", i, n, want);
        for (size_t k = 0; k < n && k < want; k++) {
            cr_expect_str_eq(out[k].campaign->id, c->want[k].campaign, "row %zu", i);
            cr_expect_eq(out[k].kind, c->want[k].kind, "row %zu.%zu", i, k);
            cr_expect_eq(out[k].fire_at_ms, c->want[k].fire_at, "row %zu.%zu: %lld", i, k,
                         (long long)out[k].fire_at_ms);
            cr_expect_str_eq(out[k].trigger_event_id,
                             c->want[k].kind == PATRON_TIMER_BIRTHDAY ? "" : "e1", "row %zu", i);
        }
    }
    /* bounded output and bad arguments */
    Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
    u.kind = PATRON__V1__EVENT_KIND__PURCHASE;
    u.last_purchase_ms = T0;
    struct patron_trigger one[1];
    size_t n = 0;
    cr_expect_eq(patron_campaign_triggers(cs, &u, one, 1, &n), 0);
    cr_expect_eq(n, 1);
    cr_expect_eq(patron_campaign_triggers(cs, NULL, one, 1, &n), PATRON_EINVAL);
    cr_expect_eq(patron_campaign_triggers(cs, &u, NULL, 1, &n), PATRON_EINVAL);
    /* a wait overflowing int64 is dropped, not wrapped */
    u.kind = PATRON__V1__EVENT_KIND__VIEW;
    u.occurred_at_ms = INT64_MAX - 1;
    struct patron_trigger out[16];
    cr_expect_eq(patron_campaign_triggers(cs, &u, out, 16, &n), 0);
    cr_expect_eq(n, 0);
    patron_campaigns_free(cs);
}

struct birthday_case {
    const char *birthday, *zone;
    int at_min;
    int64_t after, want; /* want < 0: EINVAL */
};

Test(campaign_rules, birthday_next_table)
{
    const struct birthday_case cases[] = {
        /* 29 February: 28 February in common years, the 29th in leap years */
        {"02-29", "Europe/London", 600, utc(2026, 1, 1, 0, 0), utc(2026, 2, 28, 10, 0)},
        {"02-29", "Europe/London", 600, utc(2026, 3, 1, 0, 0), utc(2027, 2, 28, 10, 0)},
        {"02-29", "Europe/London", 600, utc(2027, 3, 1, 0, 0), utc(2028, 2, 29, 10, 0)},
        {"02-29", "Europe/London", 600, utc(2028, 2, 28, 12, 0), utc(2028, 2, 29, 10, 0)},
        {"02-29", "America/New_York", 600, utc(2100, 1, 1, 0, 0), utc(2100, 2, 28, 15, 0)},
        /* summer time: 10:00 BST is 09:00 UTC */
        {"05-14", "Europe/London", 600, utc(2026, 5, 14, 8, 59), utc(2026, 5, 14, 9, 0)},
        {"05-14", "Europe/London", 600, utc(2026, 5, 14, 9, 0), utc(2027, 5, 14, 9, 0)},
        {"05-14", "Asia/Kolkata", 600, utc(2026, 1, 1, 0, 0), utc(2026, 5, 14, 4, 30)},
        /* New Year in Kolkata before New Year in UTC */
        {"01-01", "Asia/Kolkata", 0, utc(2025, 12, 31, 18, 0), utc(2025, 12, 31, 18, 30)},
        {"01-01", "Asia/Kolkata", 600, utc(2025, 12, 31, 18, 0), utc(2026, 1, 1, 4, 30)},
        {"12-31", "Pacific/Kiritimati", 600, utc(2026, 1, 1, 0, 0), utc(2026, 12, 30, 20, 0)},
        {"05-14", "Nowhere/Land", 600, utc(2026, 1, 1, 0, 0), utc(2026, 5, 14, 10, 0)},
        {"5-14", "UTC", 600, 0, -1},
        {"00-10", "UTC", 600, 0, -1},
        {"02-30", "UTC", 600, 0, -1},
        {"04-31", "UTC", 600, 0, -1},
        {"05/14", "UTC", 600, 0, -1},
        {"", "UTC", 600, 0, -1},
        {NULL, "UTC", 600, 0, -1},
        {"05-14", "UTC", 1440, 0, -1},
        {"05-14", "UTC", 600, INT64_MAX, -1},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct birthday_case *c = &cases[i];
        int64_t got = 0;
        int rc = patron_campaign_birthday_next(c->birthday, c->at_min, c->zone, c->after, &got);
        if (c->want < 0) {
            cr_expect_eq(rc, PATRON_EINVAL, "row %zu", i);
            continue;
        }
        cr_expect_eq(rc, 0, "row %zu", i);
        cr_expect_eq(got, c->want, "row %zu: got %lld want %lld", i, (long long)got,
                     (long long)c->want);
    }
}

Test(campaign_rules, unless_and_consent_revocation)
{
    struct patron_campaigns *cs = load();
    const struct patron_campaign *cart = patron_campaigns_find(cs, "cart-abandonment");
    const struct patron_campaign *browse = patron_campaigns_find(cs, "browse");
    const int64_t fire = T0 + H;
    const struct {
        const struct patron_campaign *c;
        int kind;
        int64_t at;
        bool cancelled;
    } rows[] = {
        {cart, PATRON__V1__EVENT_KIND__PURCHASE, fire - 1, true},
        {cart, PATRON__V1__EVENT_KIND__CART_REMOVE, T0, true},
        /* event time decides: a purchase at or after the end of the wait is too late,
         * however early it arrives */
        {cart, PATRON__V1__EVENT_KIND__PURCHASE, fire, false},
        {cart, PATRON__V1__EVENT_KIND__PURCHASE, fire + 1, false},
        {cart, PATRON__V1__EVENT_KIND__VIEW, T0, false},
        {cart, 0, T0, false},
        {cart, 99, T0, false},
        {browse, PATRON__V1__EVENT_KIND__PURCHASE, T0, false}, /* no unless */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++)
        cr_expect_eq(patron_campaign_wait_cancelled(rows[i].c, rows[i].kind, rows[i].at, fire),
                     rows[i].cancelled, "row %zu", i);

    Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
    u.kind = PATRON__V1__EVENT_KIND__CONSENT;
    u.consent_channel = PATRON__V1__CHANNEL__PUSH;
    u.consent_granted = false;
    cr_expect(patron_campaign_consent_revoked(cart, &u));
    u.consent_granted = true;
    cr_expect_not(patron_campaign_consent_revoked(cart, &u));
    u.consent_granted = false;
    u.consent_channel = PATRON__V1__CHANNEL__SMS;
    cr_expect_not(patron_campaign_consent_revoked(cart, &u));
    u.kind = PATRON__V1__EVENT_KIND__VIEW;
    u.consent_channel = PATRON__V1__CHANNEL__PUSH;
    cr_expect_not(patron_campaign_consent_revoked(cart, &u));
    patron_campaigns_free(cs);
}

/* A customer id outside the 5 % holdout and one inside it. */
static void find_ids(char *out_id, char *ctl_id)
{
    out_id[0] = ctl_id[0] = 0;
    char id[16];
    for (int i = 0; i < 10000 && (!out_id[0] || !ctl_id[0]); i++) {
        snprintf(id, sizeof(id), "cust%d", i);
        if (patron_campaign_in_control(id, 500))
            memcpy(ctl_id, id, sizeof(id));
        else
            memcpy(out_id, id, sizeof(id));
    }
    cr_assert(out_id[0] && ctl_id[0]);
}

struct decide_case {
    const char *campaign;
    bool control_customer;
    bool consent;
    const char *segment, *tier, *zone;
    int64_t now, last_sent;
    struct patron_send sends[5];
    size_t n_sends;
    enum patron_outcome want;
    int64_t want_at;
};

#define DAYTIME utc(2026, 7, 1, 15, 0) /* 16:00 in London, outside quiet hours */
#define NIGHT utc(2026, 7, 1, 22, 0)   /* 23:00 in London */

Test(campaign_rules, decision_table)
{
    struct patron_campaigns *cs = load();
    char ok_id[16], ctl_id[16];
    find_ids(ok_id, ctl_id);
    const struct patron_send sms = {DAYTIME - H, PATRON_CAMPAIGN_CHANNEL_SMS};
    const struct patron_send push = {DAYTIME - H, PATRON_CAMPAIGN_CHANNEL_PUSH};
    const struct patron_send email = {DAYTIME - H, PATRON_CAMPAIGN_CHANNEL_EMAIL};
    const struct patron_send old_push = {DAYTIME - DAY, PATRON_CAMPAIGN_CHANNEL_PUSH};
    const struct patron_send later_push = {DAYTIME + H, PATRON_CAMPAIGN_CHANNEL_PUSH};
    const struct decide_case cases[] = {
        {"cart-abandonment",
         false,
         true,
         "loyal",
         "gold",
         "Europe/London",
         DAYTIME,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_SENT,
         DAYTIME},
        /* order: consent first, even when every other check fails too */
        {"cart-abandonment",
         true,
         false,
         "lost",
         "silver",
         "Europe/London",
         DAYTIME,
         DAYTIME,
         {push, push, push},
         3,
         PATRON_OUTCOME_SUPPRESSED_CONSENT,
         0},
        /* then audience: segment, then tier, unknown segment */
        {"cart-abandonment",
         true,
         true,
         "lost",
         "gold",
         "Europe/London",
         DAYTIME,
         DAYTIME,
         {push, push, push},
         3,
         PATRON_OUTCOME_SUPPRESSED_AUDIENCE,
         0},
        {"cart-abandonment",
         false,
         true,
         "loyal",
         "silver",
         "Europe/London",
         DAYTIME,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_SUPPRESSED_AUDIENCE,
         0},
        {"cart-abandonment",
         false,
         true,
         "",
         "gold",
         "Europe/London",
         DAYTIME,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_SUPPRESSED_AUDIENCE,
         0},
        /* the control group last: a holdout customer meets cooldown and caps
         * like a treated one, and otherwise "would have been sent" now */
        {"cart-abandonment",
         true,
         true,
         "loyal",
         "gold",
         "Europe/London",
         DAYTIME,
         DAYTIME,
         {push, push, push},
         3,
         PATRON_OUTCOME_SUPPRESSED_COOLDOWN,
         0},
        {"browse",
         true,
         true,
         "",
         "",
         "",
         DAYTIME,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_SUPPRESSED_CONTROL_GROUP,
         DAYTIME},
        /* cooldown (1d) before caps */
        {"cart-abandonment",
         false,
         true,
         "loyal",
         "gold",
         "Europe/London",
         DAYTIME,
         DAYTIME - DAY + 1,
         {push, push, push},
         3,
         PATRON_OUTCOME_SUPPRESSED_COOLDOWN,
         0},
        {"cart-abandonment",
         false,
         true,
         "loyal",
         "gold",
         "Europe/London",
         DAYTIME,
         DAYTIME - DAY,
         {{0}},
         0,
         PATRON_OUTCOME_SENT,
         DAYTIME},
        /* caps: push 3/1d */
        {"browse",
         false,
         true,
         "",
         "",
         "Europe/London",
         DAYTIME,
         0,
         {push, push, push},
         3,
         PATRON_OUTCOME_SUPPRESSED_FREQUENCY_CAP,
         0},
        {"browse",
         false,
         true,
         "",
         "",
         "Europe/London",
         DAYTIME,
         0,
         {push, push, old_push},
         3,
         PATRON_OUTCOME_SENT,
         DAYTIME}, /* a send exactly 1d ago left the window */
        {"browse",
         false,
         true,
         "",
         "",
         "Europe/London",
         DAYTIME,
         0,
         {push, push, later_push},
         3,
         PATRON_OUTCOME_SENT,
         DAYTIME}, /* a later send is not in (now - 1d, now] */
        /* any: 4/1d across channels; sms 1/1d */
        {"browse",
         false,
         true,
         "",
         "",
         "Europe/London",
         DAYTIME,
         0,
         {push, sms, email, email},
         4,
         PATRON_OUTCOME_SUPPRESSED_FREQUENCY_CAP,
         0},
        {"winback",
         false,
         true,
         "",
         "",
         "Europe/London",
         DAYTIME,
         0,
         {sms},
         1,
         PATRON_OUTCOME_SUPPRESSED_FREQUENCY_CAP,
         0},
        {"winback",
         false,
         true,
         "",
         "",
         "Europe/London",
         DAYTIME,
         0,
         {push, push},
         2,
         PATRON_OUTCOME_SENT,
         DAYTIME},
        /* email has no cap of its own: only `any` */
        {"cross-sell",
         false,
         true,
         "",
         "",
         "Europe/London",
         DAYTIME,
         0,
         {email, email, email},
         3,
         PATRON_OUTCOME_SENT,
         DAYTIME},
        /* quiet hours delay, in the customer's zone */
        {"browse",
         false,
         true,
         "",
         "",
         "Europe/London",
         NIGHT,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_DELAYED,
         utc(2026, 7, 2, 8, 0)},
        {"browse",
         false,
         true,
         "",
         "",
         "America/New_York",
         NIGHT,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_SENT,
         NIGHT}, /* 18:00 in New York */
        {"browse",
         false,
         true,
         "",
         "",
         "Asia/Kolkata",
         NIGHT,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_DELAYED,
         utc(2026, 7, 2, 3, 30)}, /* 03:30 -> 09:00 IST */
        {"browse",
         false,
         true,
         "",
         "",
         "Bad/Zone",
         NIGHT,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_DELAYED,
         utc(2026, 7, 2, 9, 0)}, /* unknown zone: UTC */
        /* a campaign's own window replaces the defaults' */
        {"daytime", false, true, "", "", "UTC", NIGHT, 0, {{0}}, 0, PATRON_OUTCOME_SENT, NIGHT},
        {"daytime",
         false,
         true,
         "",
         "",
         "UTC",
         utc(2026, 7, 1, 13, 0),
         0,
         {{0}},
         0,
         PATRON_OUTCOME_DELAYED,
         utc(2026, 7, 1, 14, 0)},
        /* ignore_caps: neither caps nor quiet hours, but consent still */
        {"tier-upgrade",
         false,
         true,
         "",
         "",
         "Europe/London",
         NIGHT,
         0,
         {push, push, push},
         3,
         PATRON_OUTCOME_SENT,
         NIGHT},
        {"tier-upgrade",
         false,
         false,
         "",
         "",
         "Europe/London",
         NIGHT,
         0,
         {{0}},
         0,
         PATRON_OUTCOME_SUPPRESSED_CONSENT,
         0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct decide_case *c = &cases[i];
        const struct patron_campaign *camp = patron_campaigns_find(cs, c->campaign);
        cr_assert_not_null(camp);
        struct patron_customer_view v = {
            .customer_id = c->control_customer ? ctl_id : ok_id,
            .segment = c->segment,
            .tier = c->tier,
            .time_zone = c->zone,
        };
        v.consent[camp->channel] = c->consent;
        struct patron_decision_input in = {
            .cs = cs,
            .campaign = camp,
            .customer = &v,
            .now_ms = c->now,
            .trigger_event_id = "e1",
            .trigger_at_ms = c->now,
            .last_sent_ms = c->last_sent,
            .sends = c->sends,
            .n_sends = c->n_sends,
        };
        struct patron_decision d;
        cr_assert_eq(patron_campaign_decide(&in, &d), 0, "row %zu", i);
        cr_expect_eq(d.outcome, c->want, "row %zu: outcome %s", i, patron_outcome_name(d.outcome));
        cr_expect_eq(d.send_at_ms, c->want_at, "row %zu: at %lld", i, (long long)d.send_at_ms);
        cr_expect_eq(strlen(d.message_id), PATRON_MESSAGE_ID_LEN, "row %zu", i);
        cr_expect_eq(d.control, c->control_customer, "row %zu", i);
        cr_expect_eq(d.variant != NULL, camp->n_variants > 0, "row %zu", i);
    }
    struct patron_decision d;
    cr_expect_eq(patron_campaign_decide(NULL, &d), PATRON_EINVAL);
    struct patron_decision_input bad = {.cs = cs, .campaign = &cs->campaigns[0]};
    cr_expect_eq(patron_campaign_decide(&bad, &d), PATRON_EINVAL);
    patron_campaigns_free(cs);
}

struct qh_case {
    const char *zone;
    int start, end;
    int64_t now, want;
};

/* Quiet hours 21:00-09:00 on the nights the clocks change. */
Test(campaign_rules, quiet_hours_across_dst)
{
    const struct qh_case cases[] = {
        /* London, spring forward 2026-03-29 01:00Z: 22:00 GMT -> 09:00 BST = 08:00Z */
        {"Europe/London", 1260, 540, utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 8, 0)},
        {"Europe/London", 1260, 540, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 8, 0)},
        {"Europe/London", 1260, 540, utc(2026, 3, 29, 2, 0), utc(2026, 3, 29, 8, 0)},
        {"Europe/London", 1260, 540, utc(2026, 3, 29, 7, 59), utc(2026, 3, 29, 8, 0)},
        {"Europe/London", 1260, 540, utc(2026, 3, 29, 8, 0), utc(2026, 3, 29, 8, 0)},
        /* 2011: 27 March */
        {"Europe/London", 1260, 540, utc(2011, 3, 26, 21, 0), utc(2011, 3, 27, 8, 0)},
        /* fall back 2026-10-25: 22:00 BST (21:00Z) -> 09:00 GMT = 09:00Z */
        {"Europe/London", 1260, 540, utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 9, 0)},
        {"Europe/London", 1260, 540, utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 9, 0)},
        {"Europe/London", 1260, 540, utc(2011, 10, 29, 20, 0), utc(2011, 10, 30, 9, 0)},
        /* 20:59 BST is before the window */
        {"Europe/London", 1260, 540, utc(2026, 10, 24, 19, 59), utc(2026, 10, 24, 19, 59)},
        /* New York spring forward 2026-03-08 */
        {"America/New_York", 1260, 540, utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 13, 0)},
        /* Lord Howe, its 30-minute change on 2026-04-05: 21:00 LHDT -> 09:00 LHST (+10:30) */
        {"Australia/Lord_Howe", 1260, 540, utc(2026, 4, 4, 10, 0), utc(2026, 4, 4, 22, 30)},
        /* a window ending inside the spring-forward gap ends when the gap does */
        {"Europe/London", 1380, 90, utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 1, 0)},
        /* a window that does not wrap midnight */
        {"UTC", 720, 840, utc(2026, 7, 1, 11, 59), utc(2026, 7, 1, 11, 59)},
        {"UTC", 720, 840, utc(2026, 7, 1, 12, 0), utc(2026, 7, 1, 14, 0)},
        /* year end: the window ends next year */
        {"UTC", 1260, 540, utc(2026, 12, 31, 23, 0), utc(2027, 1, 1, 9, 0)},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct qh_case *c = &cases[i];
        struct patron_quiet_hours qh = {.set = true, .start_min = c->start, .end_min = c->end};
        int64_t got = 0;
        cr_assert_eq(patron_quiet_hours_next(&qh, c->zone, c->now, &got), 0, "row %zu", i);
        cr_expect_eq(got, c->want, "row %zu: got %lld want %lld", i, (long long)got,
                     (long long)c->want);
    }
    struct patron_quiet_hours none = {0};
    int64_t got = 0;
    cr_expect_eq(patron_quiet_hours_next(&none, "UTC", NIGHT, &got), 0);
    cr_expect_eq(got, NIGHT);
}

Test(campaign_rules, control_group_is_a_stable_global_holdout)
{
    int in = 0;
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "%d", 10000 + i);
        bool c = patron_campaign_in_control(id, 500);
        cr_assert_eq(c, patron_campaign_in_control(id, 500));
        in += c;
        /* a larger holdout contains the smaller one */
        if (c)
            cr_assert(patron_campaign_in_control(id, 1000));
        cr_assert_not(patron_campaign_in_control(id, 0));
        cr_assert(patron_campaign_in_control(id, 10000));
    }
    cr_expect(in > 800 && in < 1200, "%d of 20000 in a 5%% holdout", in);
}

Test(campaign_rules, variants_follow_weights_deterministically)
{
    struct patron_campaigns *cs = load();
    const struct patron_campaign *c = patron_campaigns_find(cs, "cart-abandonment");
    int b = 0;
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "cust-%d", i);
        const struct patron_campaign_variant *v = patron_campaign_variant_of(c, id);
        cr_assert_not_null(v);
        cr_assert_eq(v, patron_campaign_variant_of(c, id));
        b += strcmp(v->id, "B") == 0;
    }
    cr_expect(b > 14500 && b < 15500, "B (weight 3 of 4) got %d of 20000", b);
    cr_expect_null(patron_campaign_variant_of(patron_campaigns_find(cs, "browse"), "x"));
    patron_campaigns_free(cs);
}

Test(campaign_rules, message_ids_are_deterministic_and_distinct)
{
    char a[33], b[33];
    patron_campaign_message_id("cart", "c1", "e1", 5, a);
    patron_campaign_message_id("cart", "c1", "e1", 99, b);
    cr_expect_str_eq(a, b); /* an event id makes the time irrelevant */
    const struct {
        const char *campaign, *customer, *event;
        int64_t at;
    } others[] = {
        {"cart", "c2", "e1", 5}, {"carts", "c1", "e1", 5}, {"cart", "c1", "e2", 5},
        {"cart", "c1", "", 5},   {"cart", "c1", NULL, 6},  {"car", "tc1", "e1", 5},
        {"cart", "c1e", "1", 5},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(others); i++) {
        patron_campaign_message_id(others[i].campaign, others[i].customer, others[i].event,
                                   others[i].at, b);
        cr_expect_str_neq(a, b, "row %zu", i);
        cr_expect_eq(strspn(b, "0123456789abcdef"), 32);
    }
    patron_campaign_message_id("cart", "c1", "", 5, a);
    patron_campaign_message_id("cart", "c1", NULL, 5, b);
    cr_expect_str_eq(a, b);
}

Test(campaign_rules, attribution_table)
{
    const int64_t p = T0 + 10 * DAY, w = 7 * DAY;
    struct patron_attribution_send sends[] = {
        /* 0 */ {p - DAY, "cart", "A", false, false},
        /* 1 */ {p - 2 * DAY, "cart", "A", false, false}, /* not cart's last touch */
        /* 2 */ {p - 3 * DAY, "browse", "", false, false},
        /* 3 */ {p - w, "review", "", false, false},      /* exactly at the window's edge */
        /* 4 */ {p - w - 1, "winback", "", false, false}, /* too old */
        /* 5 */ {p, "cross", "", false, false},           /* not before the purchase */
        /* 6 */ {p + 1, "birthday", "", false, false},    /* after it */
        /* 7 */ {p - H, "at-risk", "", false, true},      /* already converted */
        /* 8 */ {p - 2 * H, "tier", "", true, false},     /* a control "would have sent" */
    };
    size_t idx[16], n = 0;
    cr_assert_eq(patron_attribution_match(sends, PATRON_ARRAY_LEN(sends), p, w, idx, 16, &n), 0);
    const size_t want[] = {0, 2, 3, 8};
    cr_assert_eq(n, PATRON_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(idx[i], want[i], "match %zu", i);
    /* once converted, cart's next purchase goes to its earlier send, at most once each */
    sends[0].converted = true;
    cr_assert_eq(patron_attribution_match(sends, 2, p + 1, w, idx, 16, &n), 0);
    cr_expect_eq(n, 1);
    cr_expect_eq(idx[0], 1);
    sends[1].converted = true;
    cr_assert_eq(patron_attribution_match(sends, 2, p + 2, w, idx, 16, &n), 0);
    cr_expect_eq(n, 0);
    cr_expect_eq(patron_attribution_match(sends, 3, p, w, idx, 0, &n), PATRON_ETOOBIG);
    cr_expect_eq(patron_attribution_match(sends, 3, p, 0, idx, 16, &n), PATRON_EINVAL);
    cr_expect_eq(patron_attribution_match(NULL, 3, p, w, idx, 16, &n), PATRON_EINVAL);
}

Test(campaign_rules, outcome_names)
{
    cr_expect_str_eq(patron_outcome_name(PATRON_OUTCOME_SENT), "sent");
    cr_expect_str_eq(patron_outcome_name(PATRON_OUTCOME_SUPPRESSED_FREQUENCY_CAP), "frequency_cap");
    cr_expect_str_eq(patron_outcome_name(PATRON_OUTCOME_SUPPRESSED_CONTROL_GROUP), "control_group");
    cr_expect_str_eq(patron_outcome_name((enum patron_outcome)42), "unknown");
}

static const char *param(const Patron__V1__CampaignMessage *m, const char *key)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i]->key, key) == 0)
            return m->params[i]->value;
    return NULL;
}

Test(campaign_template, fills_message_from_decision)
{
    struct patron_campaigns *cs = load();
    const struct patron_campaign *c = patron_campaigns_find(cs, "cart-abandonment");
    struct patron_decision d = {.outcome = PATRON_OUTCOME_SENT};
    patron_campaign_message_id(c->id, "c1", "e1", 0, d.message_id);
    for (size_t k = 0; k < 3; k++) {
        d.variant = k < 2 ? &c->variants[k] : NULL;
        struct patron_template_input in = {
            .campaign = c,
            .decision = &d,
            .customer_id = "c1",
            .trigger_event_id = "e1",
            .locale = "en-GB",
            .tier = k == 2 ? "" : "gold",
            .segment = "loyal",
            .points = -12,
            .created_at_ms = T0,
        };
        Patron__V1__CampaignMessage m = PATRON__V1__CAMPAIGN_MESSAGE__INIT;
        cr_assert_eq(patron_template_fill(&m, &in), 0);
        cr_expect_str_eq(m.message_id, d.message_id);
        cr_expect_str_eq(m.customer_id, "c1");
        cr_expect_str_eq(m.campaign_id, "cart-abandonment");
        cr_expect_str_eq(m.variant, k == 0 ? "A" : k == 1 ? "B" : "");
        /* variant A has its template; B falls back to the campaign's */
        cr_expect_str_eq(m.template_, k == 0 ? "cart_a" : "cart_reminder");
        cr_expect_eq(m.channel, PATRON__V1__CHANNEL__PUSH);
        cr_expect_eq(m.created_at_ms, T0);
        cr_expect_str_eq(m.trigger_event_id, "e1");
        cr_expect_str_eq(m.locale, "en-GB");
        cr_expect_str_eq(param(&m, "coupon"), "X1");
        cr_expect_str_eq(param(&m, "points"), "-12");
        cr_expect_str_eq(param(&m, "segment"), "loyal");
        if (k == 2)
            cr_expect_null(param(&m, "tier"));
        else
            cr_expect_str_eq(param(&m, "tier"), "gold");
        cr_expect_eq(m.n_items, 0);
        /* it serialises */
        size_t sz = patron__v1__campaign_message__get_packed_size(&m);
        cr_expect_gt(sz, 0);
        patron_template_clear(&m);
        patron_template_clear(&m); /* idempotent */
    }
    struct patron_decision empty = {0};
    struct patron_template_input bad = {.campaign = c, .decision = &empty, .customer_id = "c1"};
    Patron__V1__CampaignMessage m = PATRON__V1__CAMPAIGN_MESSAGE__INIT;
    cr_expect_eq(patron_template_fill(&m, &bad), PATRON_EINVAL);
    cr_expect_eq(patron_template_fill(NULL, &bad), PATRON_EINVAL);
    patron_campaigns_free(cs);
}
