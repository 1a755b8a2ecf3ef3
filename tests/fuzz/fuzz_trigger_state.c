/*
 * A customer's stored campaign state (patron.v1.TriggerState) through
 * patron_customer_state_decode.
 *
 * Properties: decode never fails on the way to an unbounded state (every
 * list within its bound, every time within 1970..9999, every channel and
 * timer kind known); the state it makes re-encodes, and the encoding is a
 * fixed point: decoding and encoding it again gives the same bytes. Then
 * the engine runs on the decoded state as patron-trigger would: profile
 * updates of every kind, and the timers due within a year fired; the state
 * still encodes.
 */
#include "fuzz.h"
#include "patron/campaign_state_codec.h"
#include "patron/campaign_yaml.h"
#include "patron/clock.h"
#include "patron/profile.h"

/* A campaign of every trigger kind (examples/campaigns.yaml's, shortened). */
static const char CAMPAIGNS[] = "defaults:\n"
                                "  quiet_hours: { start: \"21:00\", end: \"09:00\" }\n"
                                "  frequency_caps:\n"
                                "    - { channel: any, max: 4, per: 1d }\n"
                                "  control_group_percent: 5\n"
                                "  attribution_window: 7d\n"
                                "campaigns:\n"
                                "  - id: cart-abandonment\n"
                                "    when: { event: cart_add }\n"
                                "    wait: 1h\n"
                                "    unless: { event: purchase }\n"
                                "    channel: push\n"
                                "    template: cart_reminder\n"
                                "    cooldown: 1d\n"
                                "    variants:\n"
                                "      - { id: A, weight: 50, template: cart_reminder_a }\n"
                                "      - { id: B, weight: 50, template: cart_reminder_b }\n"
                                "  - id: cross-sell\n"
                                "    when: { event: purchase }\n"
                                "    channel: email\n"
                                "    template: you_may_also_like\n"
                                "  - id: winback-60d\n"
                                "    when: { inactive_for: 60d }\n"
                                "    channel: sms\n"
                                "    template: winback_coupon\n"
                                "  - id: at-risk\n"
                                "    when: { segment_becomes: at_risk }\n"
                                "    channel: email\n"
                                "    template: we_miss_you\n"
                                "  - id: tier-upgrade\n"
                                "    when: { tier_up: true }\n"
                                "    channel: push\n"
                                "    template: tier_upgrade\n"
                                "    ignore_caps: true\n"
                                "  - id: birthday\n"
                                "    when: { birthday: true }\n"
                                "    at: \"10:00\"\n"
                                "    channel: sms\n"
                                "    template: birthday_gift\n";

static struct patron_campaigns *campaigns;
static struct patron_profile_config profile_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    int rc = patron_campaigns_parse(CAMPAIGNS, sizeof(CAMPAIGNS) - 1, &campaigns, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "the harness's campaigns: %s", err);
    patron_profile_config_default(&profile_cfg);
    return 0;
}

/* 2021-06-01T00:00:00Z */
#define T0 INT64_C(1622505600000)
#define DAY INT64_C(86400000)

/* Updates of every kind for the state's customer, then the timers due within a year. */
static void run_engine(struct patron_customer_state *st)
{
    const struct patron_engine e = {campaigns, &profile_cfg};
    struct patron_engine_out out = {0};
    static const struct {
        Patron__V1__EventKind kind;
        const char *tier, *segment;
        int64_t dt;
    } U[] = {
        {PATRON__V1__EVENT_KIND__CART_ADD, "silver", "new", 0},
        {PATRON__V1__EVENT_KIND__PURCHASE, "gold", "promising", DAY},
        {PATRON__V1__EVENT_KIND__VIEW, "gold", "at_risk", 90 * DAY},
        {PATRON__V1__EVENT_KIND__CONSENT, "gold", "at_risk", 91 * DAY},
        {PATRON__V1__EVENT_KIND__CUSTOMER, "platinum", "champion", 92 * DAY},
        {PATRON__V1__EVENT_KIND__REFUND, "platinum", "champion", 93 * DAY},
        {PATRON__V1__EVENT_KIND__ERASURE, "", "", 94 * DAY},
    };
    char *items[] = {"85123A", "71053"};
    /* a decoded state may claim any offset: one at the end of the range has
     * no update after it (Kafka's offsets are far below; the engine is not
     * asked to wrap) */
    size_t n_updates = st->last_offset <= INT64_MAX - (int64_t)(sizeof(U) / sizeof(U[0]))
                           ? sizeof(U) / sizeof(U[0])
                           : 0;
    int64_t offset = n_updates ? st->last_offset + 1 : 0;
    for (size_t i = 0; i < n_updates; i++) {
        Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
        char event_id[16];
        snprintf(event_id, sizeof(event_id), "u-%zu", i);
        u.customer_id = st->customer_id;
        u.event_id = event_id;
        u.kind = U[i].kind;
        u.occurred_at_ms = T0 + U[i].dt;
        u.n_item_ids = 2;
        u.item_ids = items;
        u.value_cents = 1234;
        u.tier = (char *)U[i].tier;
        u.previous_tier = "silver";
        u.segment = (char *)U[i].segment;
        u.previous_segment = "new";
        u.orders = st->orders < INT64_MAX ? st->orders + 1 : st->orders;
        u.net_spend_cents = 1234;
        u.last_purchase_ms = T0 + DAY;
        u.consent_sms = u.consent_push = u.consent_email = true;
        u.time_zone = "Europe/London";
        u.locale = "en-GB";
        u.birthday = "06-02";
        u.consent_channel = PATRON__V1__CHANNEL__SMS;
        u.consent_granted = i != 3;
        u.offset = offset + (int64_t)i;
        int rc = patron_engine_on_update(&e, st, &u, u.offset, &out);
        FUZZ_CHECK(rc == 0, "update %zu refused: %d", i, rc);
        patron_engine_out_reset(&out);
    }
    /* a year on, as the trigger's clock would go: not to 9999, where a
     * birthday timer alone fires 8,000 times and the target crawls */
    int rc = patron_engine_fire_due(&e, st, T0 + 400 * DAY, &out);
    FUZZ_CHECK(rc == 0, "fire_due: %d", rc);
    patron_engine_out_free(&out);
    uint8_t *buf = NULL;
    size_t n = patron_customer_state_encode(st, &buf);
    FUZZ_CHECK(buf && n <= PATRON_ENGINE_STATE_MAX, "the state after the engine: %zu bytes", n);
    free(buf);
}

static void check_bounds(const struct patron_customer_state *st)
{
    FUZZ_CHECK(st->n_recent <= PATRON_ENGINE_RECENT_EVENTS, "n_recent %zu", st->n_recent);
    FUZZ_CHECK(st->n_ledger <= PATRON_ENGINE_LEDGER_MAX, "n_ledger %zu", st->n_ledger);
    FUZZ_CHECK(st->n_timers <= PATRON_CAMPAIGNS_MAX && st->n_timers <= st->cap_timers,
               "n_timers %zu (cap %zu)", st->n_timers, st->cap_timers);
    for (size_t i = 0; i < st->n_timers; i++) {
        const struct patron_engine_timer *t = &st->timers[i];
        FUZZ_CHECK(t->kind >= PATRON_TIMER_NONE && t->kind <= PATRON_TIMER_KIND_LAST,
                   "timer kind %d", (int)t->kind);
        FUZZ_CHECK(t->fire_at_ms >= 0 && t->fire_at_ms <= PATRON_TIME_MAX_MS &&
                       t->trigger_at_ms >= 0 && t->trigger_at_ms <= PATRON_TIME_MAX_MS,
                   "timer times %lld %lld", (long long)t->fire_at_ms, (long long)t->trigger_at_ms);
    }
    FUZZ_CHECK(st->n_sends <= PATRON_SEND_HISTORY_MAX, "n_sends %zu", st->n_sends);
    for (size_t i = 0; i < st->n_sends; i++)
        FUZZ_CHECK(st->sends[i].channel >= PATRON_CAMPAIGN_CHANNEL_SMS &&
                       st->sends[i].channel <= PATRON_CAMPAIGN_CHANNEL_EMAIL &&
                       st->sends[i].at_ms >= 0 && st->sends[i].at_ms <= PATRON_TIME_MAX_MS,
                   "send %zu: channel %d at %lld", i, (int)st->sends[i].channel,
                   (long long)st->sends[i].at_ms);
    FUZZ_CHECK(st->n_last_sent <= PATRON_CAMPAIGNS_MAX && st->n_last_sent <= st->cap_last_sent,
               "n_last_sent %zu", st->n_last_sent);
    FUZZ_CHECK(st->n_touches <= PATRON_ENGINE_TOUCHES_MAX, "n_touches %zu", st->n_touches);
    FUZZ_CHECK(st->last_purchase_ms >= 0 && st->last_purchase_ms <= PATRON_TIME_MAX_MS,
               "last_purchase_ms %lld", (long long)st->last_purchase_ms);
    /* the earliest timer must be computable whatever was stored */
    (void)patron_customer_state_next_fire(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct patron_customer_state st, st2;
    int rc = patron_customer_state_decode(&st, data, size);
    if (rc != 0) {
        FUZZ_CHECK(rc == PATRON_EINVAL || rc == PATRON_ETOOBIG, "decode returned %d", rc);
        patron_customer_state_free(&st);
        return 0;
    }
    check_bounds(&st);
    uint8_t *first = NULL, *second = NULL;
    size_t n1 = patron_customer_state_encode(&st, &first);
    FUZZ_CHECK(first && n1 <= PATRON_ENGINE_STATE_MAX, "encoding of %zu bytes", n1);
    rc = patron_customer_state_decode(&st2, first, n1);
    FUZZ_CHECK(rc == 0, "the re-encoded state does not decode: %d", rc);
    check_bounds(&st2);
    size_t n2 = patron_customer_state_encode(&st2, &second);
    FUZZ_CHECK(n1 == n2 && memcmp(first, second, n1) == 0,
               "round trip not stable: %zu bytes, then %zu", n1, n2);
    free(first);
    free(second);
    run_engine(&st2);
    patron_customer_state_free(&st);
    patron_customer_state_free(&st2);
    return 0;
}
