#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "patron/pb_pack.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(pb_pack);

/* Ours against protobuf-c's, byte for byte; and every room short of the
 * length is refused. */
static void same_state(const Patron__V1__ProfileState *m, const char *name)
{
    size_t want = patron__v1__profile_state__get_packed_size(m);
    uint8_t *ref = malloc(want + 1), *got = malloc(want + 16);
    cr_assert_eq(patron__v1__profile_state__pack(m, ref), want);
    size_t n = 0;
    cr_assert_eq(patron_pb_pack_profile_state(m, got, want + 16, &n), 0, "%s", name);
    cr_expect_eq(n, want, "%s: length %zu, protobuf-c %zu", name, n, want);
    cr_expect(n == want && memcmp(ref, got, want) == 0, "%s: bytes differ", name);
    for (size_t cap = 0; cap < want; cap += 1 + cap / 8)
        cr_expect_eq(patron_pb_pack_profile_state(m, got, cap, &n), PATRON_ETOOBIG, "%s: cap %zu",
                     name, cap);
    cr_expect_eq(patron_pb_pack_profile_state(m, got, want, &n), 0, "%s: exact room", name);
    cr_expect_eq(n, want, "%s: exact room", name);
    free(ref);
    free(got);
}

static void same_update(const Patron__V1__ProfileUpdate *m, const char *name)
{
    size_t want = patron__v1__profile_update__get_packed_size(m);
    uint8_t *ref = malloc(want + 1), *got = malloc(want + 16);
    cr_assert_eq(patron__v1__profile_update__pack(m, ref), want);
    size_t n = 0;
    cr_assert_eq(patron_pb_pack_profile_update(m, got, want + 16, &n), 0, "%s", name);
    cr_expect_eq(n, want, "%s: length %zu, protobuf-c %zu", name, n, want);
    cr_expect(n == want && memcmp(ref, got, want) == 0, "%s: bytes differ", name);
    for (size_t cap = 0; cap < want; cap += 1 + cap / 8)
        cr_expect_eq(patron_pb_pack_profile_update(m, got, cap, &n), PATRON_ETOOBIG, "%s: cap %zu",
                     name, cap);
    free(ref);
    free(got);
}

Test(pb_pack, profile_state_empty_and_scalars)
{
    Patron__V1__ProfileState m = PATRON__V1__PROFILE_STATE__INIT;
    same_state(&m, "all defaults");
    m.customer_id = "c-1";
    same_state(&m, "only an id");
    m.orders = 1;
    m.net_spend_cents = -250; /* a refund larger than the spend */
    m.points = -1;
    m.first_seen_ms = 1;
    m.last_seen_ms = INT64_MAX;
    m.last_purchase_ms = INT64_MIN;
    m.first_purchase_ms = 1300000000000;
    m.reviews = 127;
    m.last_event_ms = 128;
    m.refunds = 16383;
    m.cart_updated_ms = 16384;
    m.consent_sms = 1;
    m.consent_email = 1;
    m.erased = 1;
    m.time_zone = "Europe/London";
    m.locale = "";
    m.birthday = "02-29";
    same_state(&m, "scalars, negatives, extremes, varint boundaries");
}

Test(pb_pack, profile_state_lists_and_nested)
{
    Patron__V1__ProfileState m = PATRON__V1__PROFILE_STATE__INIT;
    m.customer_id = "c-2";
    Patron__V1__MonthSpend mo[3] = {PATRON__V1__MONTH_SPEND__INIT, PATRON__V1__MONTH_SPEND__INIT,
                                    PATRON__V1__MONTH_SPEND__INIT};
    mo[0].month = 24131;
    mo[0].cents = 100;
    mo[1].month = -5; /* negative int32: a ten-byte varint */
    mo[2].cents = 0;  /* an empty nested message is still written */
    Patron__V1__MonthSpend *mp[] = {&mo[0], &mo[1], &mo[2]};
    m.n_months = 3;
    m.months = mp;
    Patron__V1__CategoryScore cs[2] = {PATRON__V1__CATEGORY_SCORE__INIT,
                                       PATRON__V1__CATEGORY_SCORE__INIT};
    cs[0].category = "home";
    cs[0].score = 1.5;
    cs[0].updated_ms = 77;
    cs[1].category = "toys";
    cs[1].score = 0.0; /* left out */
    Patron__V1__CategoryScore *cp[] = {&cs[0], &cs[1]};
    m.n_categories = 2;
    m.categories = cp;
    char *viewed[] = {"v1", "", "v3"};
    m.n_viewed = 3;
    m.viewed = viewed;
    static char long_id[200];
    memset(long_id, 'b', sizeof(long_id) - 1); /* a length over one varint byte */
    char *bought[] = {"b1", long_id};
    m.n_bought = 2;
    m.bought = bought;
    Patron__V1__CartLine cl[2] = {PATRON__V1__CART_LINE__INIT, PATRON__V1__CART_LINE__INIT};
    cl[0].item_id = "x";
    cl[0].quantity = 3;
    cl[1].item_id = "y";
    cl[1].quantity = -1;
    Patron__V1__CartLine *clp[] = {&cl[0], &cl[1]};
    m.n_cart = 2;
    m.cart = clp;
    uint64_t ids[] = {0, 1, UINT64_MAX, 0x0102030405060708ull};
    m.n_recent_event_ids = 4;
    m.recent_event_ids = ids;
    Patron__V1__SourcePosition src = PATRON__V1__SOURCE_POSITION__INIT;
    m.source = &src;
    same_state(&m, "lists, an empty source");
    src.partition = 7;
    src.offset = 123456789;
    uint32_t earlier[] = {1, 2, 0xffffffffu};
    m.n_bought_earlier = 3;
    m.bought_earlier = earlier;
    same_state(&m, "bought_earlier");
    /* the resend ledger: times (packed varints, negatives ten bytes), the
     * counted events, the per-channel consent and customer times */
    int64_t ms[] = {0, 127, -1, 1300000000000};
    m.n_recent_event_ms = 4;
    m.recent_event_ms = ms;
    m.recent_floor_ms = 1299999999999;
    uint64_t counted[] = {1, (UINT64_C(40000) << 47) | 5, UINT64_MAX};
    m.n_counted_events = 3;
    m.counted_events = counted;
    m.counted_floor_month = 24131;
    m.consent_sms_ms = 1;
    m.consent_push_ms = -2;
    m.consent_email_ms = INT64_MAX;
    m.customer_updated_ms = 16384;
    m.erased_at_ms = 1300000000001;
    same_state(&m, "everything");
    m.counted_floor_month = -1; /* an int32: ten bytes */
    int64_t big[128];
    for (size_t i = 0; i < 128; i++)
        big[i] = (int64_t)1 << (i % 63); /* a packed length over one varint byte */
    m.n_recent_event_ms = 128;
    m.recent_event_ms = big;
    same_state(&m, "long packed times, negative month");
    /* identity: a visitor's ids, a customer's aliases with their marks,
     * more positions than `source` */
    m.anonymous_id = "cookie-1";
    m.merged_into = "alice";
    m.merged_partition = -3;
    Patron__V1__SourcePosition pos[3] = {PATRON__V1__SOURCE_POSITION__INIT,
                                         PATRON__V1__SOURCE_POSITION__INIT,
                                         PATRON__V1__SOURCE_POSITION__INIT};
    pos[0].partition = 2;
    pos[0].offset = 1LL << 50;
    pos[2].offset = -1;
    Patron__V1__SourcePosition *pp[] = {&pos[0], &pos[1], &pos[2]};
    m.n_more_sources = 3;
    m.more_sources = pp;
    Patron__V1__MergedAlias al[2] = {PATRON__V1__MERGED_ALIAS__INIT,
                                     PATRON__V1__MERGED_ALIAS__INIT};
    al[0].anonymous_id = long_id;
    al[0].merged_at_ms = 1300000000000;
    al[0].floor_ms = -5;
    al[0].n_marks = 3;
    al[0].marks = pp;
    al[0].viewed = 10;
    al[0].cart_lines = 32;
    al[0].orders = INT64_MIN;
    Patron__V1__MergedAlias *ap[] = {&al[0], &al[1]}; /* the second empty: still written */
    m.n_aliases = 2;
    m.aliases = ap;
    same_state(&m, "identity");
}

Test(pb_pack, profile_update)
{
    Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
    same_update(&u, "all defaults");
    u.customer_id = "alice";
    u.event_id = "e-1";
    u.kind = PATRON__V1__EVENT_KIND__PURCHASE;
    u.occurred_at_ms = 1300000000000;
    u.replayed = 1;
    char *items[] = {"a", "bb", ""};
    u.n_item_ids = 3;
    u.item_ids = items;
    u.value_cents = -99;
    u.tier = "gold";
    u.previous_tier = "silver";
    u.segment = "champions";
    u.previous_segment = "";
    u.orders = 3;
    u.net_spend_cents = 12345;
    u.points = 200;
    u.last_purchase_ms = 1;
    u.consent_push = 1;
    u.time_zone = "America/New_York";
    u.locale = "en-US";
    u.birthday = "12-31";
    u.consent_channel = PATRON__V1__CHANNEL__EMAIL;
    u.consent_granted = 1;
    u.partition = 15;
    u.offset = 1LL << 40;
    u.first_purchase_ms = 1291192000000;
    u.anonymous_id = "cookie-7";
    same_update(&u, "every field");
    u.partition = -1;
    u.kind = (Patron__V1__EventKind)-3; /* an enum is an int32: negatives are ten bytes */
    same_update(&u, "negative int32 and enum");
}
