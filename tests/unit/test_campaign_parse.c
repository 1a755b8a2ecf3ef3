#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/campaign.h"
#include "patron/v1/profile.pb-c.h"
#include "patron/campaign_yaml.h"

PATRON_LEAK_CHECKED_SUITE(campaign_parse);

/* docs/contracts/campaigns.md's example, as in examples/campaigns.yaml (unit tests read no files).
 */
static const char example[] =
    "defaults:\n"
    "  quiet_hours: { start: \"21:00\", end: \"09:00\" }  # customer's local time: messages wait, "
    "then go\n"
    "  frequency_caps:                                 # per customer, sliding window\n"
    "    - { channel: sms,   max: 1, per: 1d }\n"
    "    - { channel: push,  max: 3, per: 1d }\n"
    "    - { channel: email, max: 2, per: 7d }\n"
    "    - { channel: any,   max: 4, per: 1d }\n"
    "  control_group_percent: 5     # global holdout: never messaged, measured all the same\n"
    "  attribution_window: 7d       # a purchase this soon after a send converts it\n"
    "campaigns:\n"
    "  - id: cart-abandonment\n"
    "    when: { event: cart_add }\n"
    "    wait: 1h\n"
    "    unless: { event: purchase }          # leave the campaign if this happens during the "
    "wait\n"
    "    audience: { segments: [champion, loyal, promising, new], tiers: [any] }\n"
    "    channel: push\n"
    "    template: cart_reminder\n"
    "    recommendations: 3\n"
    "    cooldown: 1d                         # re-eligibility after a send\n"
    "    variants:\n"
    "      - { id: A, weight: 50, template: cart_reminder_a }\n"
    "      - { id: B, weight: 50, template: cart_reminder_b }\n"
    "  - id: browse-abandonment\n"
    "    when: { event: view }\n"
    "    wait: 2h\n"
    "    unless: { event: [cart_add, purchase] }\n"
    "    channel: push\n"
    "    template: still_looking\n"
    "  - id: cross-sell\n"
    "    when: { event: purchase }\n"
    "    channel: email\n"
    "    template: you_may_also_like\n"
    "    recommendations: 4\n"
    "  - id: review-request\n"
    "    when: { event: purchase }\n"
    "    wait: 3d\n"
    "    channel: email\n"
    "    template: review_request\n"
    "  - id: winback-60d\n"
    "    when: { inactive_for: 60d }          # 60 days after the last purchase, if none came "
    "since\n"
    "    channel: sms\n"
    "    template: winback_coupon\n"
    "    params: { coupon: COMEBACK10 }\n"
    "  - id: at-risk\n"
    "    when: { segment_becomes: at_risk }\n"
    "    channel: email\n"
    "    template: we_miss_you\n"
    "  - id: tier-upgrade\n"
    "    when: { tier_up: true }\n"
    "    channel: push\n"
    "    template: tier_upgrade\n"
    "    ignore_caps: true                    # transactional: caps and quiet hours don't apply\n"
    "  - id: birthday\n"
    "    when: { birthday: true }\n"
    "    at: \"10:00\"                          # local time on the day\n"
    "    channel: sms\n"
    "    template: birthday_gift\n"
    "  - id: churn-save\n"
    "    when: { churn_risk_above: 0.7 }      # the fitted churn risk (no purchase in 90 days) "
    "passes 70%\n"
    "    channel: email\n"
    "    template: stay_with_us\n"
    "    cooldown: 30d\n"
    "    params: { coupon: STAYWITHUS }\n"
    "  - id: vip-early-access\n"
    "    when: { event: purchase }\n"
    "    wait: 1d\n"
    "    audience: { clusters: [0] }          # the K-Means cluster that spends most (ids go by "
    "spend)\n"
    "    channel: push\n"
    "    template: vip_early_access\n"
    "    cooldown: 30d\n";

#define KIND(k) (1u << PATRON__V1__EVENT_KIND__##k)
#define SEG(s) (1u << PATRON_SEGMENT_##s)
#define DAY (86400000LL)

static struct patron_campaigns *parse_ok(const char *yaml)
{
    struct patron_campaigns *cs = NULL;
    char err[256];
    int rc = patron_campaigns_parse(yaml, strlen(yaml), &cs, err, sizeof(err));
    cr_assert_eq(rc, 0, "parse failed: %s", err);
    cr_assert_not_null(cs);
    return cs;
}

Test(campaign_parse, design_example)
{
    struct patron_campaigns *cs = parse_ok(example);
    const struct patron_campaign_defaults *d = &cs->defaults;
    cr_expect(d->quiet_hours.set);
    cr_expect_eq(d->quiet_hours.start_min, 21 * 60);
    cr_expect_eq(d->quiet_hours.end_min, 9 * 60);
    cr_assert_eq(d->n_caps, 4);
    cr_expect_eq(d->caps[0].channel, PATRON_CAMPAIGN_CHANNEL_SMS);
    cr_expect_eq(d->caps[0].max, 1);
    cr_expect_eq(d->caps[0].per_ms, DAY);
    cr_expect_eq(d->caps[1].channel, PATRON_CAMPAIGN_CHANNEL_PUSH);
    cr_expect_eq(d->caps[1].max, 3);
    cr_expect_eq(d->caps[2].channel, PATRON_CAMPAIGN_CHANNEL_EMAIL);
    cr_expect_eq(d->caps[2].per_ms, 7 * DAY);
    cr_expect_eq(d->caps[3].channel, PATRON_CAMPAIGN_CHANNEL_ANY);
    cr_expect_eq(d->caps[3].max, 4);
    cr_expect_eq(d->control_group_bp, 500);
    cr_expect_eq(d->attribution_window_ms, 7 * DAY);
    cr_assert_eq(cs->count, 10);

    const struct patron_campaign *c = &cs->campaigns[0];
    cr_expect_str_eq(c->id, "cart-abandonment");
    cr_expect_eq(c->line, 11);
    cr_expect_eq(c->when, PATRON_CAMPAIGN_WHEN_EVENT);
    cr_expect_eq(c->events, KIND(CART_ADD));
    cr_expect_eq(c->wait_ms, 3600000);
    cr_expect_eq(c->unless, KIND(PURCHASE));
    cr_expect_eq(c->audience_segments, SEG(CHAMPION) | SEG(LOYAL) | SEG(PROMISING) | SEG(NEW));
    cr_expect_eq(c->audience_tiers, PATRON_AUDIENCE_ANY_TIER);
    cr_expect_eq(c->channel, PATRON_CAMPAIGN_CHANNEL_PUSH);
    cr_expect_str_eq(c->template_name, "cart_reminder");
    cr_expect_eq(c->recommendations, 3);
    cr_expect_eq(c->cooldown_ms, DAY);
    cr_expect_not(c->ignore_caps);
    cr_assert_eq(c->n_variants, 2);
    cr_expect_str_eq(c->variants[0].id, "A");
    cr_expect_eq(c->variants[0].weight, 50);
    cr_expect_str_eq(c->variants[0].template_name, "cart_reminder_a");
    cr_expect_str_eq(c->variants[1].template_name, "cart_reminder_b");
    cr_expect_not(c->quiet_hours.set);

    c = &cs->campaigns[1];
    cr_expect_str_eq(c->id, "browse-abandonment");
    cr_expect_eq(c->events, KIND(VIEW));
    cr_expect_eq(c->wait_ms, 2 * 3600000);
    cr_expect_eq(c->unless, KIND(CART_ADD) | KIND(PURCHASE));
    cr_expect_eq(c->audience_segments, PATRON_AUDIENCE_ANY_SEGMENT);
    cr_expect_eq(c->n_variants, 0);

    c = &cs->campaigns[2];
    cr_expect_str_eq(c->id, "cross-sell");
    cr_expect_eq(c->events, KIND(PURCHASE));
    cr_expect_eq(c->wait_ms, 0);
    cr_expect_eq(c->channel, PATRON_CAMPAIGN_CHANNEL_EMAIL);
    cr_expect_eq(c->recommendations, 4);

    c = &cs->campaigns[3];
    cr_expect_str_eq(c->id, "review-request");
    cr_expect_eq(c->wait_ms, 3 * DAY);
    cr_expect_eq(c->unless, 0);

    c = &cs->campaigns[4];
    cr_expect_str_eq(c->id, "winback-60d");
    cr_expect_eq(c->when, PATRON_CAMPAIGN_WHEN_INACTIVE_FOR);
    cr_expect_eq(c->inactive_for_ms, 60 * DAY);
    cr_expect_eq(c->channel, PATRON_CAMPAIGN_CHANNEL_SMS);
    cr_assert_eq(c->n_params, 1);
    cr_expect_str_eq(c->params[0].key, "coupon");
    cr_expect_str_eq(c->params[0].value, "COMEBACK10");

    c = &cs->campaigns[5];
    cr_expect_eq(c->when, PATRON_CAMPAIGN_WHEN_SEGMENT_BECOMES);
    cr_expect_eq(c->segment, PATRON_SEGMENT_AT_RISK);

    c = &cs->campaigns[6];
    cr_expect_eq(c->when, PATRON_CAMPAIGN_WHEN_TIER_UP);
    cr_expect(c->ignore_caps);

    c = &cs->campaigns[7];
    cr_expect_str_eq(c->id, "birthday");
    cr_expect_eq(c->when, PATRON_CAMPAIGN_WHEN_BIRTHDAY);
    cr_expect_eq(c->at_min, 600);
    cr_expect_eq(c->line, 53);

    c = &cs->campaigns[8];
    cr_expect_str_eq(c->id, "churn-save");
    cr_expect_eq(c->when, PATRON_CAMPAIGN_WHEN_CHURN_RISK);
    cr_expect_eq(c->churn_above, 0.7);
    cr_expect_eq(c->cooldown_ms, 30 * DAY);
    c = &cs->campaigns[9];
    cr_expect_str_eq(c->id, "vip-early-access");
    cr_expect_eq(c->wait_ms, DAY);
    cr_expect_eq(c->clusters.n, 1);
    cr_expect_eq(c->clusters.ids, 1u);
    cr_expect_eq(c->audience_segments, PATRON_AUDIENCE_ANY_SEGMENT);

    cr_expect_eq(patron_campaigns_find(cs, "at-risk"), &cs->campaigns[5]);
    cr_expect_null(patron_campaigns_find(cs, "nope"));
    patron_campaigns_free(cs);
}

Test(campaign_parse, minimal_and_optional_forms)
{
    struct patron_campaigns *cs =
        parse_ok("campaigns:\n"
                 "  - id: a_1\n"
                 "    when: { event: [view, cart_remove, refund, review, customer, consent] }\n"
                 "    channel: email\n"
                 "    template: t\n"
                 "    audience: { segments: any, tiers: [gold, platinum] }\n"
                 "    quiet_hours: { start: \"08:00\", end: \"20:30\" }\n"
                 "    params: { a: \"\", b: x }\n"
                 "    variants: [{ id: v1, weight: 1 }, { id: v2, weight: 3, template: t2 }]\n"
                 "defaults:\n"
                 "  control_group_percent: 2.55\n");
    cr_expect_eq(cs->defaults.control_group_bp, 255);
    cr_expect_eq(cs->defaults.attribution_window_ms, 7 * DAY);
    cr_expect_not(cs->defaults.quiet_hours.set);
    cr_expect_eq(cs->defaults.n_caps, 0);
    const struct patron_campaign *c = &cs->campaigns[0];
    cr_expect_eq(c->events, KIND(VIEW) | KIND(CART_REMOVE) | KIND(REFUND) | KIND(REVIEW) |
                                KIND(CUSTOMER) | KIND(CONSENT));
    cr_expect_eq(c->audience_segments, PATRON_AUDIENCE_ANY_SEGMENT);
    cr_expect_eq(c->audience_tiers, (1u << PATRON_TIER_GOLD) | (1u << PATRON_TIER_PLATINUM));
    cr_expect(c->quiet_hours.set);
    cr_expect_eq(c->quiet_hours.start_min, 480);
    cr_expect_eq(c->quiet_hours.end_min, 1230);
    cr_expect_str_eq(c->params[0].value, "");
    cr_expect_str_eq(c->variants[0].template_name, "");
    patron_campaigns_free(cs);

    cs = parse_ok("campaigns: []\n");
    cr_expect_eq(cs->count, 0);
    patron_campaigns_free(cs);

    /* no campaign template: every variant brings one */
    cs = parse_ok("campaigns:\n"
                  "- id: x\n"
                  "  when: {tier_up: true}\n"
                  "  channel: sms\n"
                  "  variants: [{id: A, weight: 1, template: a}]\n");
    cr_expect_str_eq(cs->campaigns[0].template_name, "");
    patron_campaigns_free(cs);

    cs = parse_ok("defaults: { control_group_percent: 100, attribution_window: 30s }\n"
                  "campaigns: []\n");
    cr_expect_eq(cs->defaults.control_group_bp, 10000);
    cr_expect_eq(cs->defaults.attribution_window_ms, 30000);
    patron_campaigns_free(cs);
}

Test(campaign_parse, predictions)
{
    struct patron_campaigns *cs =
        parse_ok("campaigns:\n"
                 "  - id: churn\n"
                 "    when: { churn_risk_above: 0.7 }\n"
                 "    channel: email\n"
                 "    template: t\n"
                 "  - id: vip\n"
                 "    when: { event: purchase }\n"
                 "    audience: { clusters: [0, 2, \"lapsed, rare, low spend\"], tiers: gold }\n"
                 "    channel: push\n"
                 "    template: t\n"
                 "  - id: one\n"
                 "    when: { churn_risk_above: 0.0625 }\n"
                 "    audience: { clusters: 15 }\n"
                 "    channel: sms\n"
                 "    template: t\n"
                 "  - id: label\n"
                 "    when: { tier_up: true }\n"
                 "    audience: { clusters: \"12\" }\n"
                 "    channel: sms\n"
                 "    template: t\n");
    cr_assert_eq(cs->count, 4);
    const struct patron_campaign *c = &cs->campaigns[0];
    cr_expect_eq(c->when, PATRON_CAMPAIGN_WHEN_CHURN_RISK);
    cr_expect_eq(c->churn_above, 0.7);
    cr_expect_eq(c->clusters.n, 0, "no cluster filter");
    c = &cs->campaigns[1];
    cr_expect_eq(c->clusters.n, 3);
    cr_expect_eq(c->clusters.ids, (1u << 0) | (1u << 2));
    cr_assert_eq(c->clusters.n_labels, 1);
    cr_expect_str_eq(c->clusters.labels[0], "lapsed, rare, low spend");
    cr_expect_eq(c->audience_tiers, 1u << PATRON_TIER_GOLD);
    c = &cs->campaigns[2];
    cr_expect_eq(c->churn_above, 0.0625);
    cr_expect_eq(c->clusters.ids, 1u << 15);
    c = &cs->campaigns[3];
    cr_expect_eq(c->clusters.ids, 0, "a quoted number is a label");
    cr_assert_eq(c->clusters.n_labels, 1);
    cr_expect_str_eq(c->clusters.labels[0], "12");
    patron_campaigns_free(cs);
}

struct err_case {
    const char *yaml;
    int line;
    const char *reason; /* a substring of the message */
};

#define C0 "campaigns:\n"
/* a valid campaign's head; lines 2..4 */
#define HEAD "- id: c\n  when: {event: purchase}\n  channel: sms\n"

Test(campaign_parse, every_error_with_its_line)
{
    static const struct err_case cases[] = {
        /* YAML itself */
        {"campaigns: [\n", 2, "did not find expected node"},
        {"a: b\n c: d\n", 2, "mapping values are not allowed"},
        {"", 1, "empty"},
        {"# only a comment\n", 1, "empty"},
        {"campaigns: []\n---\ncampaigns: []\n", 3, "more than one YAML document"},
        {"campaigns: [\xff]\n", 1, "invalid"},
        {"campaigns: *nope\n", 1, "undefined alias"},
        /* top level */
        {"- a\n", 1, "the campaigns file must be a mapping"},
        {"defaults: {}\n", 1, "missing the required field 'campaigns'"},
        {"campaign: []\n", 1, "unknown field 'campaign'"},
        {"campaigns: []\ncampaigns: []\n", 2, "duplicate field 'campaigns'"},
        {"campaigns: {a: b}\n", 1, "campaigns must be a list"},
        {"[a]: 1\n", 1, "a key of the campaigns file must be a scalar"},
        /* defaults */
        {"defaults: []\ncampaigns: []\n", 1, "defaults must be a mapping"},
        {"defaults:\n  quiet_hour: {}\ncampaigns: []\n", 2,
         "unknown field 'quiet_hour' in defaults"},
        {"defaults:\n  quiet_hours: {start: \"21:00\"}\ncampaigns: []\n", 2,
         "missing the required field 'end'"},
        {"defaults:\n  quiet_hours: {start: \"21:00\", end: \"24:00\"}\ncampaigns: []\n", 2,
         "quiet_hours.end must be a time"},
        {"defaults:\n  quiet_hours: {start: \"9:00\", end: \"10:00\"}\ncampaigns: []\n", 2,
         "quiet_hours.start must be a time"},
        {"defaults:\n  quiet_hours: {start: \"09:00\", end: \"09:00\"}\ncampaigns: []\n", 2,
         "start and end are equal"},
        {"defaults:\n  quiet_hours: {start: \"09:00\", end: \"10:00\", tz: x}\ncampaigns: []\n", 2,
         "unknown field 'tz' in quiet_hours"},
        {"defaults:\n  frequency_caps: {channel: sms}\ncampaigns: []\n", 2,
         "frequency_caps must be a list"},
        {"defaults:\n  frequency_caps:\n  - {channel: fax, max: 1, per: 1d}\ncampaigns: []\n", 3,
         "frequency_caps.channel must be one of any, sms, push, email, not 'fax'"},
        {"defaults:\n  frequency_caps:\n  - {channel: sms, max: -1, per: 1d}\ncampaigns: []\n", 3,
         "frequency_caps.max must be an integer"},
        {"defaults:\n  frequency_caps:\n  - {channel: sms, max: \"1\", per: 1d}\ncampaigns: []\n",
         3, "frequency_caps.max must be an integer"},
        {"defaults:\n  frequency_caps:\n  - {channel: sms, max: 1000001, per: 1d}\ncampaigns: []\n",
         3, "between 0 and 1000000"},
        {"defaults:\n  frequency_caps:\n  - {channel: sms, max: 1}\ncampaigns: []\n", 3,
         "missing the required field 'per'"},
        {"defaults:\n  frequency_caps:\n  - {channel: sms, max: 1, per: 1y}\ncampaigns: []\n", 3,
         "frequency_caps.per must be a positive duration"},
        {"defaults:\n  frequency_caps:\n  - [sms]\ncampaigns: []\n", 3,
         "a frequency cap must be a mapping"},
        {"defaults:\n  control_group_percent: 100.01\ncampaigns: []\n", 2, "control_group_percent"},
        {"defaults:\n  control_group_percent: -1\ncampaigns: []\n", 2, "control_group_percent"},
        {"defaults:\n  control_group_percent: 5%\ncampaigns: []\n", 2, "control_group_percent"},
        {"defaults:\n  control_group_percent: 1.234\ncampaigns: []\n", 2, "at most two decimals"},
        {"defaults:\n  control_group_percent: .5\ncampaigns: []\n", 2, "control_group_percent"},
        {"defaults:\n  attribution_window: 0d\ncampaigns: []\n", 2, "attribution_window"},
        {"defaults:\n  attribution_window: 99999999999w\ncampaigns: []\n", 2, "at most 100 years"},
        /* campaigns: fields */
        {C0 "- 42\n", 2, "a campaign must be a mapping"},
        {C0 "- when: {event: purchase}\n  channel: sms\n  template: t\n", 2,
         "missing the required field 'id'"},
        {C0 "- id: c\n  channel: sms\n  template: t\n", 2, "missing the required field 'when'"},
        {C0 "- id: c\n  when: {event: purchase}\n  template: t\n", 2,
         "missing the required field 'channel'"},
        {C0 HEAD, 2, "missing the required field 'template'"},
        {C0 HEAD "  template: t\n  colour: red\n", 6, "unknown field 'colour' in a campaign"},
        {C0 HEAD "  template: t\n  template: u\n", 6, "duplicate field 'template'"},
        {C0 "- id: Cart\n", 2, "must match [a-z0-9_-]"},
        {C0 "- id: \"\"\n", 2, "id must not be empty"},
        {C0 "- id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 2,
         "longer than 64 bytes"},
        {C0 "- id: [c]\n", 2, "id must be a scalar, not a list"},
        {C0 HEAD "  template: t\n"
                 "- id: c\n  when: {tier_up: true}\n  channel: sms\n  template: t\n",
         6, "duplicate campaign id 'c' (first on line 2)"},
        /* when */
        {C0 "- id: c\n  when: {}\n", 3, "exactly one of"},
        {C0 "- id: c\n  when: {event: purchase, tier_up: true}\n", 3, "exactly one of"},
        {C0 "- id: c\n  when: purchase\n", 3, "when must be a mapping"},
        {C0 "- id: c\n  when: {event: buy}\n", 3, "unknown event kind 'buy'"},
        {C0 "- id: c\n  when: {event: erasure}\n", 3, "unknown event kind 'erasure'"},
        {C0 "- id: c\n  when: {event: []}\n", 3, "when.event must not be an empty list"},
        {C0 "- id: c\n  when: {event: [view, view]}\n", 3, "lists 'view' twice"},
        {C0 "- id: c\n  when: {event: {a: b}}\n", 3, "a name or a list of names"},
        {C0 "- id: c\n  when: {inactive_for: 60}\n", 3, "when.inactive_for must be a positive"},
        {C0 "- id: c\n  when: {inactive_for: -1d}\n", 3, "when.inactive_for"},
        {C0 "- id: c\n  when: {segment_becomes: vip}\n", 3, "unknown segment 'vip'"},
        {C0 "- id: c\n  when: {segment_becomes: any}\n", 3, "needs one segment"},
        {C0 "- id: c\n  when: {tier_up: false}\n", 3, "when.tier_up must be true"},
        {C0 "- id: c\n  when: {tier_up: yes}\n", 3, "when.tier_up must be true or false"},
        {C0 "- id: c\n  when: {birthday: \"true\"}\n", 3, "when.birthday must be true or false"},
        {C0 "- id: c\n  when: {birthday: true}\n  channel: sms\n  template: t\n", 2, "needs 'at'"},
        {C0 "- id: c\n  when: {birthday: true}\n  at: \"25:00\"\n", 4, "at must be a time"},
        {C0 "- id: c\n  when: {when: purchase}\n", 3, "unknown field 'when' in when"},
        {C0 "- id: c\n  when: {churn_risk_above: 1}\n", 3, "strictly between 0 and 1"},
        {C0 "- id: c\n  when: {churn_risk_above: 0}\n", 3, "strictly between 0 and 1"},
        {C0 "- id: c\n  when: {churn_risk_above: 0.0}\n", 3, "strictly between 0 and 1"},
        {C0 "- id: c\n  when: {churn_risk_above: 1.0}\n", 3, "strictly between 0 and 1"},
        {C0 "- id: c\n  when: {churn_risk_above: .7}\n", 3, "strictly between 0 and 1"},
        {C0 "- id: c\n  when: {churn_risk_above: 0.12345}\n", 3, "at most four decimals"},
        {C0 "- id: c\n  when: {churn_risk_above: 70%}\n", 3, "when.churn_risk_above"},
        {C0 "- id: c\n  when: {churn_risk_above: \"0.7\"}\n", 3,
         "when.churn_risk_above must be a number"},
        {C0 "- id: c\n  when: {churn_risk_above: [0.7]}\n", 3, "when.churn_risk_above"},
        {C0 "- id: c\n  when: {churn_risk_above: 0.7, tier_up: true}\n", 3, "exactly one of"},
        {C0 "- id: c\n  when: {churn_risk_above: 0.7}\n  channel: sms\n  template: t\n"
            "  wait: 1d\n",
         6, "'wait' is only for event campaigns"},
        /* the rest of a campaign */
        {C0 HEAD "  template: t\n  at: \"10:00\"\n", 6, "'at' is only for birthday campaigns"},
        {C0 "- id: c\n  when: {tier_up: true}\n  channel: sms\n  template: t\n  wait: 1h\n", 6,
         "'wait' is only for event campaigns"},
        {C0 HEAD "  template: t\n  unless: {event: purchase}\n", 6, "'unless' needs a 'wait'"},
        {C0 HEAD "  template: t\n  wait: 1h\n  unless: {}\n", 7,
         "unless is missing the required field 'event'"},
        {C0 HEAD "  template: t\n  wait: 1h\n  unless: {event: nope}\n", 7, "unknown event kind"},
        {C0 HEAD "  template: t\n  wait: 1h\n  unless: {events: purchase}\n", 7,
         "unknown field 'events' in unless"},
        {C0 HEAD "  template: t\n  wait: 1.5h\n", 6, "wait must be a positive duration"},
        {C0 HEAD "  template: t\n  wait: 1 h\n", 6, "wait must be a positive duration"},
        {C0 HEAD "  template: t\n  wait: +1h\n", 6, "wait must be a positive duration"},
        {C0 HEAD "  template: t\n  wait: 1H\n", 6, "wait must be a positive duration"},
        {C0 HEAD "  template: t\n  wait: [1h]\n", 6, "wait must be a duration"},
        {C0 HEAD "  template: t\n  audience: {segments: [vip]}\n", 6, "unknown segment 'vip'"},
        {C0 HEAD "  template: t\n  audience: {tiers: [bronze]}\n", 6, "unknown tier 'bronze'"},
        {C0 HEAD "  template: t\n  audience: {tiers: []}\n", 6, "must not be an empty list"},
        {C0 HEAD "  template: t\n  audience: {countries: [fr]}\n", 6,
         "unknown field 'countries' in audience"},
        {C0 HEAD "  template: t\n  audience: [any]\n", 6, "audience must be a mapping"},
        {C0 HEAD "  template: t\n  audience: {clusters: [16]}\n", 6, "a cluster id is 0 to 15"},
        {C0 HEAD "  template: t\n  audience: {clusters: [100]}\n", 6, "a cluster id is 0 to 15"},
        {C0 HEAD "  template: t\n  audience: {clusters: [01]}\n", 6, "a cluster id is 0 to 15"},
        {C0 HEAD "  template: t\n  audience: {clusters: [1, 1]}\n", 6, "lists cluster 1 twice"},
        {C0 HEAD "  template: t\n  audience: {clusters: [a, a]}\n", 6, "lists 'a' twice"},
        {C0 HEAD "  template: t\n  audience: {clusters: []}\n", 6, "must not be an empty list"},
        {C0 HEAD "  template: t\n  audience: {clusters: {id: 1}}\n", 6,
         "audience.clusters must be a cluster id or label"},
        {C0 HEAD "  template: t\n  audience: {clusters: [[0]]}\n", 6,
         "audience.clusters must be a scalar"},
        {C0 HEAD "  template: t\n  audience: {clusters: [\"\"]}\n", 6, "must not be empty"},
        {C0 HEAD "  template: t\n  audience: {clusters: "
                 "[\"recent, frequent, high spend and then a little more\"]}\n",
         6, "longer than 47 bytes"},
        {C0 "- id: c\n  when: {event: purchase}\n  channel: any\n", 4,
         "channel must be one of sms, push, email, not 'any'"},
        {C0 "- id: c\n  when: {event: purchase}\n  channel: fax\n", 4, "channel must be one of"},
        {C0 HEAD "  template: {a: b}\n", 5, "template must be a scalar, not a mapping"},
        {C0 HEAD "  template: \"\"\n", 5, "template must not be empty"},
        {C0 HEAD "  template: t\n  recommendations: 51\n", 6, "between 0 and 50"},
        {C0 HEAD "  template: t\n  recommendations: 3.0\n", 6,
         "recommendations must be an integer"},
        {C0 HEAD "  template: t\n  recommendations: 0x10\n", 6, "recommendations must be"},
        {C0 HEAD "  template: t\n  cooldown: 0s\n", 6, "cooldown must be a positive duration"},
        {C0 HEAD "  template: t\n  ignore_caps: 1\n", 6, "ignore_caps must be true or false"},
        {C0 HEAD "  template: t\n  params: [a]\n", 6, "params must be a mapping"},
        {C0 HEAD "  template: t\n  params: {a: x, a: y}\n", 6, "duplicate params key 'a'"},
        {C0 HEAD "  template: t\n  params: {points: 100}\n", 6, "params key 'points' is reserved"},
        {C0 HEAD "  template: t\n  params: {a: [x]}\n", 6, "a params value must be a scalar"},
        {C0 HEAD "  template: t\n  params: {[a]: x}\n", 6, "a params key must be a scalar"},
        {C0 HEAD "  template: t\n  variants: {id: A}\n", 6, "variants must be a list"},
        {C0 HEAD "  template: t\n  variants: []\n", 6, "variants must not be an empty list"},
        {C0 HEAD "  template: t\n  variants:\n  - {id: A}\n", 7,
         "a variant is missing the required field 'weight'"},
        {C0 HEAD "  template: t\n  variants:\n  - {weight: 1}\n", 7,
         "a variant is missing the required field 'id'"},
        {C0 HEAD "  template: t\n  variants:\n  - {id: A, weight: 0}\n", 7,
         "variant weight must be between 1 and 1000000"},
        {C0 HEAD "  template: t\n  variants:\n  - {id: A, weight: 1}\n  - {id: A, weight: 1}\n", 8,
         "duplicate variant id 'A'"},
        {C0 HEAD "  template: t\n  variants:\n  - {id: A b, weight: 1}\n", 7, "must match"},
        {C0 HEAD "  template: t\n  variants:\n  - {id: A, weight: 1, colour: red}\n", 7,
         "unknown field 'colour' in a variant"},
        {C0 HEAD "  variants:\n  - {id: A, weight: 1, template: a}\n  - {id: B, weight: 1}\n", 5,
         "variant 'B' has no template"},
        {C0 HEAD "  template: t\n  quiet_hours: {start: \"22:00\"}\n", 6,
         "missing the required field 'end'"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct err_case *c = &cases[i];
        struct patron_campaigns *cs = NULL;
        char err[512];
        int rc = patron_campaigns_parse(c->yaml, strlen(c->yaml), &cs, err, sizeof(err));
        cr_expect_eq(rc, PATRON_EINVAL, "row %zu: rc %d", i, rc);
        cr_expect_null(cs, "row %zu", i);
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "line %d, column ", c->line);
        cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "row %zu: want line %d, got \"%s\"", i,
                  c->line, err);
        cr_expect_not_null(strstr(err, c->reason), "row %zu: want \"%s\" in \"%s\"", i, c->reason,
                           err);
    }
}

Test(campaign_parse, error_column)
{
    struct patron_campaigns *cs = NULL;
    char err[256];
    const char *y = C0 HEAD "  template: t\n  recommendations: 99\n";
    cr_assert_eq(patron_campaigns_parse(y, strlen(y), &cs, err, sizeof(err)), PATRON_EINVAL);
    cr_expect_str_eq(err, "line 6, column 20: recommendations must be between 0 and 50, not 99");
}

Test(campaign_parse, too_big_file)
{
    size_t n = PATRON_CAMPAIGNS_FILE_MAX + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    struct patron_campaigns *cs = NULL;
    char err[128];
    cr_expect_eq(patron_campaigns_parse(big, n, &cs, err, sizeof(err)), PATRON_ETOOBIG);
    cr_expect_null(cs);
    cr_expect_not_null(strstr(err, "larger than"));
    free(big);
}

Test(campaign_parse, too_many_campaigns)
{
    enum { N = PATRON_CAMPAIGNS_MAX + 1 };
    size_t cap = (size_t)N * 80 + 64;
    char *y = malloc(cap);
    size_t off = (size_t)snprintf(y, cap, "campaigns:\n");
    for (int i = 0; i < N; i++)
        off +=
            (size_t)snprintf(y + off, cap - off,
                             "- {id: c%d, when: {tier_up: true}, channel: sms, template: t}\n", i);
    struct patron_campaigns *cs = NULL;
    char err[256];
    cr_expect_eq(patron_campaigns_parse(y, off, &cs, err, sizeof(err)), PATRON_EINVAL);
    cr_expect_str_eq(err, "line 1002, column 3: more than 1000 campaigns");
    /* exactly the maximum parses */
    off = (size_t)(strstr(y, "- {id: c1000,") - y);
    cr_assert_eq(patron_campaigns_parse(y, off, &cs, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cs->count, PATRON_CAMPAIGNS_MAX);
    patron_campaigns_free(cs);
    free(y);
}

Test(campaign_parse, long_strings)
{
    char y[2048];
    char s257[258];
    memset(s257, 'x', 257);
    s257[257] = 0;
    snprintf(y, sizeof(y), C0 HEAD "  template: %s\n", s257);
    struct patron_campaigns *cs = NULL;
    char err[256];
    cr_expect_eq(patron_campaigns_parse(y, strlen(y), &cs, err, sizeof(err)), PATRON_EINVAL);
    cr_expect_not_null(strstr(err, "longer than 256 bytes"), "%s", err);
    s257[256] = 0; /* exactly 256 bytes is fine */
    snprintf(y, sizeof(y), C0 HEAD "  template: %s\n  params: {k: %s}\n", s257, s257);
    cr_assert_eq(patron_campaigns_parse(y, strlen(y), &cs, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(strlen(cs->campaigns[0].template_name), 256);
    patron_campaigns_free(cs);
}

/* Garbage must be an error with a line, never a crash: binary bytes, deep
 * nesting, an alias loop, a tiny err buffer, input without a NUL. */
Test(campaign_parse, garbage)
{
    const char *inputs[] = {
        "\x00\x01\x02",
        "campaigns: &a [*a]\n",
        "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
        "campaigns: !!binary aGVsbG8=\n",
        "campaigns:\n- &c {id: c, when: {tier_up: true}, channel: sms, template: t}\n- *c\n",
        "\t\tcampaigns: []\n",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(inputs); i++) {
        struct patron_campaigns *cs = NULL;
        char err[256];
        size_t len = i == 0 ? 3 : strlen(inputs[i]);
        cr_expect_lt(patron_campaigns_parse(inputs[i], len, &cs, err, sizeof(err)), 0, "row %zu",
                     i);
        cr_expect_null(cs, "row %zu", i);
        cr_expect(strncmp(err, "line ", 5) == 0, "row %zu: %s", i, err);
    }
    size_t depth = 100000;
    char *deep = malloc(depth);
    memset(deep, '[', depth);
    struct patron_campaigns *cs = NULL;
    char err[8];
    cr_expect_eq(patron_campaigns_parse(deep, depth, &cs, err, sizeof(err)), PATRON_EINVAL);
    cr_expect_eq(strlen(err), 7); /* truncated, NUL-terminated */
    char full[128];
    cr_expect_eq(patron_campaigns_parse(deep, depth, &cs, full, sizeof(full)), PATRON_EINVAL);
    cr_expect_str_eq(full, "line 1, column 65: nesting deeper than 64");
    cr_expect_eq(patron_campaigns_parse(deep, depth, &cs, NULL, 0), PATRON_EINVAL);
    free(deep);
}

/* The depth pre-scan ignores brackets inside strings, comments and plain scalars. */
Test(campaign_parse, brackets_in_strings_are_not_nesting)
{
    char y[4096];
    char b[201];
    memset(b, '[', 200);
    b[200] = 0;
    snprintf(y, sizeof(y),
             C0 HEAD "  template: \"%s\"  # %s\n  params:\n    b: x%s\n"
                     "  variants: [{id: A, weight: 1, template: '%s'}, {id: B, weight: 1, "
                     "template: \"\\\"%s\"}]\n",
             b, b, b, b, b);
    struct patron_campaigns *cs = NULL;
    char err[256];
    cr_assert_eq(patron_campaigns_parse(y, strlen(y), &cs, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(strlen(cs->campaigns[0].template_name), 200);
    patron_campaigns_free(cs);
}

Test(campaign_parse, durations_table)
{
    static const struct {
        const char *s;
        int64_t ms; /* -1: rejected */
    } rows[] = {
        {"30s", 30000},
        {"15m", 900000},
        {"1h", 3600000},
        {"3d", 3 * DAY},
        {"2w", 14 * DAY},
        {"5200w", 5200 * 7 * DAY},
        {"36500d", 36500 * DAY},
        {"36501d", -1},
        {"0s", -1},
        {"00m", -1},
        {"-1h", -1},
        {"+1h", -1},
        {"1", -1},
        {"h", -1},
        {"", -1},
        {"1y", -1},
        {"1ms", -1},
        {"1.5h", -1},
        {" 1h", -1},
        {"1h ", -1},
        {"9999999999999s", -1},
        {"999999999999s", -1},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        int64_t ms = -1;
        int rc = patron_duration_parse(rows[i].s, &ms);
        if (rows[i].ms < 0) {
            cr_expect_eq(rc, PATRON_EINVAL, "row %zu (%s)", i, rows[i].s);
        } else {
            cr_expect_eq(rc, 0, "row %zu (%s)", i, rows[i].s);
            cr_expect_eq(ms, rows[i].ms, "row %zu (%s)", i, rows[i].s);
        }
    }
}

Test(campaign_parse, clock_times_and_names)
{
    int m = -1;
    cr_expect_eq(patron_clock_time_parse("00:00", &m), 0);
    cr_expect_eq(m, 0);
    cr_expect_eq(patron_clock_time_parse("23:59", &m), 0);
    cr_expect_eq(m, 1439);
    const char *bad[] = {"24:00", "12:60", "1:00", "12:0", "12-00", "ab:cd", "", "12:000"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++)
        cr_expect_eq(patron_clock_time_parse(bad[i], &m), PATRON_EINVAL, "%s", bad[i]);
    cr_expect_eq(patron_campaign_event_kind_parse("cart_add"), PATRON__V1__EVENT_KIND__CART_ADD);
    cr_expect_eq(patron_campaign_event_kind_parse("erasure"), 0);
    cr_expect_str_eq(patron_campaign_channel_name(PATRON_CAMPAIGN_CHANNEL_EMAIL), "email");
    cr_expect_str_eq(patron_campaign_channel_name((enum patron_campaign_channel)9), "unknown");
}
