#include "patron/profile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/event_check.h"
#include "patron/strmap.h"
#include "profile_internal.h"

#define DAY_MS INT64_C(86400000)

void patron_profile_config_default(struct patron_profile_config *cfg)
{
    *cfg = (struct patron_profile_config){
        .rfm_recency_days = {14, 30, 90, 180},
        .rfm_frequency = {20, 10, 5, 2},
        .rfm_monetary_cents = {500000, 100000, 30000, 10000},
        .tier_gold_cents = 100000,
        .tier_platinum_cents = 500000,
        .points_per_review = 10,
        .category_half_life_ms = 30 * DAY_MS,
        .weight_view = 1.0,
        .weight_cart_add = 2.0,
        .weight_purchase = 3.0,
        .churn_horizon_days = 90,
        .dedupe_window_ms = DAY_MS,
    };
}

void patron_profile_init(struct patron_profile *p, const char *customer_id)
{
    memset(p, 0, sizeof(*p));
    set_id(p->customer_id, customer_id);
}

void patron_profile_init_visitor(struct patron_profile *p, const char *anonymous_id)
{
    memset(p, 0, sizeof(*p));
    set_id(p->anonymous_id, anonymous_id);
}

/* ---- marks: per partition, the highest offset applied -------------------- */

int64_t profile_mark_get(const struct patron_profile *p, int32_t partition)
{
    for (size_t i = 0; i < p->n_marks && i < PATRON_PROFILE_MARKS_MAX; i++)
        if (p->marks[i].partition == partition)
            return p->marks[i].offset;
    return -1;
}

/* Moves the partition's mark to the front with `offset` (never lower than
 * it was); a full list forgets its least recently written mark. */
void profile_mark_set(struct patron_profile *p, int32_t partition, int64_t offset)
{
    size_t i = 0;
    while (i < p->n_marks && p->marks[i].partition != partition)
        i++;
    if (i < p->n_marks) {
        if (p->marks[i].offset > offset)
            offset = p->marks[i].offset;
    } else if (p->n_marks < PATRON_PROFILE_MARKS_MAX) {
        p->n_marks++;
    } else {
        i = p->n_marks - 1;
    }
    memmove(&p->marks[1], &p->marks[0], i * sizeof(p->marks[0]));
    p->marks[0] = (struct patron_profile_mark){partition, offset};
}

int64_t patron_month_of_ms(int64_t ms)
{
    int64_t days = ms / DAY_MS;
    if (ms % DAY_MS < 0)
        days--;
    /* Howard Hinnant's civil_from_days; |days| < 2^47, no overflow. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    return y * 12 + (m - 1);
}

/* 2^(-(to - from) / half_life), not above 1: a score never grows by looking
 * at it from before its time. */
static double decay(int64_t from_ms, int64_t to_ms, int64_t half_life_ms)
{
    if (half_life_ms <= 0 || to_ms <= from_ms)
        return 1.0;
    return exp2(-((double)to_ms - (double)from_ms) / (double)half_life_ms);
}

double patron_profile_category_score(const struct patron_profile *p, size_t i, int64_t now_ms,
                                     const struct patron_profile_config *cfg)
{
    if (i >= p->n_categories)
        return 0.0;
    const struct patron_profile_category *c = &p->categories[i];
    return c->score * decay(c->updated_ms, now_ms, cfg->category_half_life_ms);
}

static int rank_cmp(const void *a, const void *b)
{
    const struct patron_category_rank *x = a, *y = b;
    if (x->score > y->score)
        return -1;
    if (x->score < y->score)
        return 1;
    return strcmp(x->category, y->category);
}

size_t patron_profile_top_categories(const struct patron_profile *p, int64_t now_ms,
                                     const struct patron_profile_config *cfg,
                                     struct patron_category_rank *out, size_t max)
{
    struct patron_category_rank all[PATRON_PROFILE_CATEGORIES_MAX];
    size_t n = p->n_categories < PATRON_PROFILE_CATEGORIES_MAX ? p->n_categories
                                                               : PATRON_PROFILE_CATEGORIES_MAX;
    for (size_t i = 0; i < n; i++) {
        all[i].category = p->categories[i].category;
        all[i].score = patron_profile_category_score(p, i, now_ms, cfg);
    }
    qsort(all, n, sizeof(all[0]), rank_cmp);
    if (n > max)
        n = max;
    if (n)
        memcpy(out, all, n * sizeof(all[0]));
    return n;
}

/* Adds `weight` at event time t. A score lives at its updated_ms: a later
 * event decays it forward first; an earlier one (out of order) adds its
 * weight decayed to updated_ms. When the table is full, the lowest score as
 * of the latest event time makes room, unless the newcomer is lower still;
 * on a tie the newcomer wins (recency). */
void profile_category_add(struct patron_profile *p, const char *category, double weight, int64_t t,
                          const struct patron_profile_config *cfg)
{
    if (!category || !category[0] || !(weight > 0))
        return;
    int64_t hl = cfg->category_half_life_ms;
    for (size_t i = 0; i < p->n_categories; i++) {
        struct patron_profile_category *c = &p->categories[i];
        if (strcmp(c->category, category) != 0)
            continue;
        if (t >= c->updated_ms) {
            c->score = c->score * decay(c->updated_ms, t, hl) + weight;
            c->updated_ms = t;
        } else {
            c->score += weight * decay(t, c->updated_ms, hl);
        }
        return;
    }
    size_t slot = p->n_categories;
    if (slot == PATRON_PROFILE_CATEGORIES_MAX) {
        int64_t ref = max64(t, p->last_event_ms);
        double low = 0;
        for (size_t i = 0; i < p->n_categories; i++) {
            const struct patron_profile_category *c = &p->categories[i];
            double s = c->score * decay(c->updated_ms, ref, hl);
            if (i == 0 || s < low) {
                low = s;
                slot = i;
            }
        }
        if (weight * decay(t, ref, hl) < low)
            return;
    } else {
        p->n_categories++;
    }
    struct patron_profile_category *c = &p->categories[slot];
    set_id(c->category, category);
    c->score = weight;
    c->updated_ms = t;
}

/* Moves id to the front of a most-recent-first list without duplicates,
 * dropping the last entry when full. */
static void recent_push(char (*list)[PATRON_ID_MAX + 1], size_t *n, size_t cap, const char *id)
{
    size_t i;
    for (i = 0; i < *n; i++)
        if (strcmp(list[i], id) == 0)
            break;
    if (i == *n) {
        if (*n < cap)
            (*n)++;
        i = *n - 1;
    }
    memmove(&list[1], &list[0], i * sizeof(list[0]));
    set_id(list[0], id);
}

uint32_t patron_item_hash32(const char *id, size_t len)
{
    uint64_t h = patron_hash64(id, len);
    return (uint32_t)(h ^ (h >> 32));
}

/* Index of the first element >= h. */
static size_t earlier_lower_bound(const struct patron_profile *p, uint32_t h)
{
    size_t lo = 0, hi = p->n_bought_earlier;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->bought_earlier[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void earlier_add(struct patron_profile *p, const char *id)
{
    profile_earlier_add_hash(p, patron_item_hash32(id, strlen(id)));
}

void profile_earlier_add_hash(struct patron_profile *p, uint32_t h)
{
    size_t i = earlier_lower_bound(p, h);
    if ((i < p->n_bought_earlier && p->bought_earlier[i] == h) ||
        p->n_bought_earlier == PATRON_PROFILE_BOUGHT_EARLIER_MAX)
        return;
    memmove(&p->bought_earlier[i + 1], &p->bought_earlier[i],
            (p->n_bought_earlier - i) * sizeof(p->bought_earlier[0]));
    p->bought_earlier[i] = h;
    p->n_bought_earlier++;
}

/* The item that a full list pushes off is remembered by its hash. */
static void bought_push(struct patron_profile *p, const char *id)
{
    if (p->n_bought == PATRON_PROFILE_BOUGHT_MAX) {
        size_t i = 0;
        while (i < p->n_bought && strcmp(p->bought[i], id) != 0)
            i++;
        if (i == p->n_bought)
            earlier_add(p, p->bought[p->n_bought - 1]);
    }
    recent_push(p->bought, &p->n_bought, PATRON_PROFILE_BOUGHT_MAX, id);
}

bool patron_profile_has_bought(const struct patron_profile *p, const char *item_id)
{
    for (size_t i = 0; i < p->n_bought; i++)
        if (strcmp(p->bought[i], item_id) == 0)
            return true;
    if (p->n_bought_earlier == 0)
        return false;
    uint32_t h = patron_item_hash32(item_id, strlen(item_id));
    size_t i = earlier_lower_bound(p, h);
    return i < p->n_bought_earlier && p->bought_earlier[i] == h;
}

static void cart_add(struct patron_profile *p, const Patron__V1__LineItem *li)
{
    for (size_t i = 0; i < p->n_cart; i++) {
        struct patron_profile_cart_line *l = &p->cart[i];
        if (strcmp(l->item_id, li->item_id) == 0) {
            int64_t q = (int64_t)l->quantity + li->quantity;
            l->quantity = q > INT32_MAX ? INT32_MAX : (int32_t)q;
            return;
        }
    }
    if (p->n_cart == PATRON_PROFILE_CART_MAX) {
        memmove(&p->cart[0], &p->cart[1], (p->n_cart - 1) * sizeof(p->cart[0]));
        p->n_cart--;
    }
    struct patron_profile_cart_line *l = &p->cart[p->n_cart++];
    memset(l, 0, sizeof(*l));
    set_id(l->item_id, li->item_id);
    l->quantity = li->quantity;
}

static void cart_remove(struct patron_profile *p, const char *item_id)
{
    for (size_t i = 0; i < p->n_cart; i++) {
        if (strcmp(p->cart[i].item_id, item_id) != 0)
            continue;
        memmove(&p->cart[i], &p->cart[i + 1], (p->n_cart - i - 1) * sizeof(p->cart[0]));
        p->n_cart--;
        memset(&p->cart[p->n_cart], 0, sizeof(p->cart[0]));
        return;
    }
}

static void cart_clear(struct patron_profile *p)
{
    memset(p->cart, 0, sizeof(p->cart));
    p->n_cart = 0;
}

/* Drops the months that left the 12-month window ending at last_event_ms. */
void profile_months_prune(struct patron_profile *p)
{
    int64_t first = patron_month_of_ms(p->last_event_ms) - (PATRON_PROFILE_MONTHS - 1);
    size_t keep = 0;
    for (size_t i = 0; i < p->n_months; i++)
        if (p->months[i].month >= first)
            p->months[keep++] = p->months[i];
    memset(&p->months[keep], 0, (p->n_months - keep) * sizeof(p->months[0]));
    p->n_months = keep;
}

/* Adds cents to the bucket of time t, if t is inside the window (call
 * months_prune first). Buckets stay sorted by month. */
static void months_add(struct patron_profile *p, int64_t t, int64_t cents)
{
    int64_t month = patron_month_of_ms(t);
    int64_t first = patron_month_of_ms(p->last_event_ms) - (PATRON_PROFILE_MONTHS - 1);
    if (month < first || month > INT32_MAX)
        return;
    size_t i = 0;
    while (i < p->n_months && p->months[i].month < month)
        i++;
    if (i < p->n_months && p->months[i].month == month) {
        p->months[i].cents = sat_add(p->months[i].cents, cents);
        return;
    }
    if (p->n_months == PATRON_PROFILE_MONTHS) {
        /* Only a corrupt profile gets here (future months): drop the oldest. */
        if (i == 0)
            return;
        memmove(&p->months[0], &p->months[1], (i - 1) * sizeof(p->months[0]));
        p->months[i - 1].month = (int32_t)month;
        p->months[i - 1].cents = cents;
        return;
    }
    memmove(&p->months[i + 1], &p->months[i], (p->n_months - i) * sizeof(p->months[0]));
    p->months[i].month = (int32_t)month;
    p->months[i].cents = cents;
    p->n_months++;
}

/* Erasure at event time t: nothing personal stays; the erasure's time and
 * the replay state do, so that neither a replay nor a late resend of
 * anything before the erasure can bring data back (those are STALE). A
 * visitor stays a visitor and is no longer merged into anyone; a customer
 * keeps no alias (the caller erased the visitors first). */
void profile_tombstone(struct patron_profile *p, int64_t t)
{
    uint64_t ids[PATRON_PROFILE_EVENT_IDS_MAX];
    int64_t ms[PATRON_PROFILE_EVENT_IDS_MAX];
    struct patron_profile_mark marks[PATRON_PROFILE_MARKS_MAX];
    memcpy(ids, p->event_ids, sizeof(ids));
    memcpy(ms, p->event_ms, sizeof(ms));
    memcpy(marks, p->marks, sizeof(marks));
    size_t n_ids = p->n_event_ids, n_marks = p->n_marks;
    int64_t floor_ms = p->event_ids_floor_ms, erased_at = max64(p->erased_at_ms, t);
    char id[PATRON_ID_MAX + 1], anon[PATRON_ID_MAX + 1];
    memcpy(id, p->customer_id, sizeof(id));
    memcpy(anon, p->anonymous_id, sizeof(anon));

    if (id[0])
        patron_profile_init(p, id);
    else
        patron_profile_init_visitor(p, anon);
    memcpy(p->event_ids, ids, sizeof(ids));
    memcpy(p->event_ms, ms, sizeof(ms));
    memcpy(p->marks, marks, sizeof(marks));
    p->n_event_ids = n_ids;
    p->n_marks = n_marks;
    p->event_ids_floor_ms = floor_ms;
    p->erased = true;
    p->erased_at_ms = erased_at;
}

/* Kinds whose events change a counter: remembered for ever (`counted`). */
bool profile_counts(const Patron__V1__Event *ev)
{
    return ev->kind_case == PATRON__V1__EVENT__KIND_PURCHASE ||
           ev->kind_case == PATRON__V1__EVENT__KIND_REFUND ||
           ev->kind_case == PATRON__V1__EVENT__KIND_REVIEW;
}

uint64_t patron_counted_entry(const char *event_id, size_t len, int64_t at_ms)
{
    const uint64_t mask = (UINT64_C(1) << PATRON_COUNTED_HASH_BITS) - 1;
    int64_t month = patron_month_of_ms(at_ms) - 1970 * 12; /* 0 .. 96,359: 17 bits */
    if (month < 0)
        month = 0;
    return (uint64_t)month << PATRON_COUNTED_HASH_BITS | (patron_hash64(event_id, len) & mask);
}

int32_t profile_counted_month(uint64_t entry)
{
    return (int32_t)(entry >> PATRON_COUNTED_HASH_BITS) + 1970 * 12;
}

/* Whether the ledger holds the event id, whatever month it was counted in
 * (a resend whose time was changed is still a resend). */
bool profile_counted_has(const struct patron_profile *p, uint64_t entry)
{
    const uint64_t mask = (UINT64_C(1) << PATRON_COUNTED_HASH_BITS) - 1;
    for (size_t i = 0; i < p->n_counted; i++)
        if ((p->counted[i] & mask) == (entry & mask))
            return true;
    return false;
}

/* Inserts in order; a full ledger first forgets its oldest month whole, and
 * remembers up to which month it forgot. */
static void counted_add(struct patron_profile *p, uint64_t entry)
{
    if (p->n_counted == PATRON_PROFILE_COUNTED_MAX) {
        int32_t oldest = profile_counted_month(p->counted[0]);
        size_t drop = 0;
        while (drop < p->n_counted && profile_counted_month(p->counted[drop]) == oldest)
            drop++;
        memmove(&p->counted[0], &p->counted[drop], (p->n_counted - drop) * sizeof(p->counted[0]));
        p->n_counted -= drop;
        memset(&p->counted[p->n_counted], 0, drop * sizeof(p->counted[0]));
        if (oldest > p->counted_floor_month)
            p->counted_floor_month = oldest;
        if (profile_counted_month(entry) <= p->counted_floor_month)
            return; /* its own month was the oldest: refused next time it comes */
    }
    size_t lo = 0, hi = p->n_counted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->counted[mid] < entry)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(&p->counted[lo + 1], &p->counted[lo], (p->n_counted - lo) * sizeof(p->counted[0]));
    p->counted[lo] = entry;
    p->n_counted++;
}

/* The events that count nothing, most recently applied first. Those that
 * left the window leave (older ones are stale anyway); when it is still
 * full, the one of the earliest event time leaves early, and the floor
 * rises to its time: anything at or before the floor may be a resend
 * nobody remembers. */
static void ring_add(struct patron_profile *p, uint64_t id_hash, int64_t t, int64_t window_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_event_ids; i++) {
        if (p->event_ms[i] < p->last_event_ms - window_ms)
            continue;
        p->event_ids[n] = p->event_ids[i];
        p->event_ms[n++] = p->event_ms[i];
    }
    memset(&p->event_ids[n], 0, (p->n_event_ids - n) * sizeof(p->event_ids[0]));
    memset(&p->event_ms[n], 0, (p->n_event_ids - n) * sizeof(p->event_ms[0]));
    if (n == PATRON_PROFILE_EVENT_IDS_MAX) {
        size_t oldest = 0;
        for (size_t i = 1; i < n; i++)
            if (p->event_ms[i] <= p->event_ms[oldest])
                oldest = i;
        p->event_ids_floor_ms = max64(p->event_ids_floor_ms, p->event_ms[oldest]);
        memmove(&p->event_ids[oldest], &p->event_ids[oldest + 1],
                (n - oldest - 1) * sizeof(p->event_ids[0]));
        memmove(&p->event_ms[oldest], &p->event_ms[oldest + 1],
                (n - oldest - 1) * sizeof(p->event_ms[0]));
        n--;
    }
    memmove(&p->event_ids[1], &p->event_ids[0], n * sizeof(p->event_ids[0]));
    memmove(&p->event_ms[1], &p->event_ms[0], n * sizeof(p->event_ms[0]));
    p->event_ids[0] = id_hash;
    p->event_ms[0] = t;
    p->n_event_ids = n + 1;
}

bool profile_ring_has(const struct patron_profile *p, uint64_t id_hash)
{
    for (size_t i = 0; i < p->n_event_ids && i < PATRON_PROFILE_EVENT_IDS_MAX; i++)
        if (p->event_ids[i] == id_hash)
            return true;
    return false;
}

void profile_remember(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                      int64_t offset, const struct patron_profile_config *cfg)
{
    size_t len = strlen(ev->event_id);
    if (profile_counts(ev))
        counted_add(p, patron_counted_entry(ev->event_id, len, ev->occurred_at_ms));
    else
        ring_add(p, patron_hash64(ev->event_id, len), ev->occurred_at_ms, cfg->dedupe_window_ms);
    if (offset >= 0)
        profile_mark_set(p, partition, offset);
}

/* The consent slot of a channel, or -1. */
static int consent_slot(Patron__V1__Channel ch)
{
    switch (ch) {
    case PATRON__V1__CHANNEL__SMS:
        return 0;
    case PATRON__V1__CHANNEL__PUSH:
        return 1;
    case PATRON__V1__CHANNEL__EMAIL:
        return 2;
    default:
        return -1;
    }
}

bool *profile_consent_of(struct patron_profile *p, int slot)
{
    return slot == 0 ? &p->consent_sms : slot == 1 ? &p->consent_push : &p->consent_email;
}

static bool consent_value(const struct patron_profile *p, int slot)
{
    return slot == 0 ? p->consent_sms : slot == 1 ? p->consent_push : p->consent_email;
}

/* Last writer wins, by event time: a consent older than the channel's, or
 * as old and changing nothing, is stale. At the same time a revocation
 * beats a grant, so that the order Kafka delivers them in never matters. */
static bool consent_stale(const struct patron_profile *p, const Patron__V1__ConsentChange *cc,
                          int64_t t)
{
    int slot = consent_slot(cc->channel);
    if (slot < 0)
        return true;
    int64_t at = p->consent_ms[slot];
    bool granted = cc->granted != 0;
    if (t < at)
        return true;
    return t == at && at != 0 && (granted || !consent_value(p, slot));
}

/* Whether a CustomerUpdate would change any field it sets. */
static bool customer_changes(const struct patron_profile *p, const Patron__V1__CustomerUpdate *cu)
{
    const struct {
        const char *in, *have;
    } fields[] = {{cu->birthday, p->birthday},
                  {cu->time_zone, p->time_zone},
                  {cu->locale, p->locale},
                  {cu->country, p->country}};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(fields); i++)
        if (fields[i].in && fields[i].in[0] && strcmp(fields[i].in, fields[i].have) != 0)
            return true;
    return false;
}

/* Whether an event that passed the replay check is a resend, or too old
 * to change anything; fills *out's result when it is. */
bool profile_dedupe(const struct patron_profile *p, const Patron__V1__Event *ev,
                    const struct patron_profile_config *cfg, struct patron_apply_outcome *out)
{
    int64_t t = ev->occurred_at_ms;
    size_t len = strlen(ev->event_id);
    /* kept when the customer comes back: what came before stays erased */
    if (ev->kind_case != PATRON__V1__EVENT__KIND_ERASURE && t <= p->erased_at_ms) {
        out->result = PATRON_APPLY_STALE;
        return true;
    }
    if (profile_counts(ev)) {
        uint64_t entry = patron_counted_entry(ev->event_id, len, t);
        if (profile_counted_has(p, entry)) {
            out->result = PATRON_APPLY_DUPLICATE;
            return true;
        }
        if (p->counted_floor_month && profile_counted_month(entry) <= p->counted_floor_month) {
            out->result = PATRON_APPLY_REFUSED;
            return true;
        }
        return false;
    }
    if (profile_ring_has(p, patron_hash64(ev->event_id, len))) {
        out->result = PATRON_APPLY_DUPLICATE;
        return true;
    }
    bool stale;
    switch (ev->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
    case PATRON__V1__EVENT__KIND_CART_ADD:
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        stale = t <= p->event_ids_floor_ms || t < p->last_event_ms - cfg->dedupe_window_ms;
        break;
    case PATRON__V1__EVENT__KIND_CONSENT:
        stale = consent_stale(p, ev->consent, t);
        break;
    case PATRON__V1__EVENT__KIND_CUSTOMER:
        /* at the same time, in order; a resend of the latest changes nothing */
        stale = t < p->customer_ms || (t == p->customer_ms && !customer_changes(p, ev->customer));
        break;
    default:
        stale = false;
        break;
    }
    if (stale)
        out->result = PATRON_APPLY_STALE;
    return stale;
}

static void apply_purchase(struct patron_profile *p, const Patron__V1__Purchase *pu, int64_t t,
                           int64_t value, const struct patron_profile_config *cfg)
{
    p->orders = sat_add(p->orders, 1);
    p->net_spend_cents = sat_add(p->net_spend_cents, value);
    p->points = sat_add(p->points, value / 100);
    p->last_purchase_ms = max64(p->last_purchase_ms, t);
    p->first_purchase_ms = min_set(p->first_purchase_ms, t);
    months_add(p, t, value);
    for (size_t i = 0; i < pu->n_items; i++) {
        const Patron__V1__LineItem *li = pu->items[i];
        bought_push(p, li->item_id);
        profile_category_add(p, li->category, cfg->weight_purchase, t, cfg);
    }
    cart_clear(p);
    p->cart_updated_ms = max64(p->cart_updated_ms, t);
}

static void apply_refund(struct patron_profile *p, int64_t t, int64_t amount)
{
    p->net_spend_cents = sat_add(p->net_spend_cents, -amount);
    p->points = sat_add(p->points, -(amount / 100));
    months_add(p, t, -amount);
    p->refunds = sat_add(p->refunds, 1);
}

static void apply_customer(struct patron_profile *p, const Patron__V1__CustomerUpdate *cu,
                           int64_t t)
{
    p->customer_ms = max64(p->customer_ms, t);
    if (cu->birthday && cu->birthday[0])
        set_text(p->birthday, sizeof(p->birthday), cu->birthday);
    if (cu->time_zone && cu->time_zone[0])
        set_text(p->time_zone, sizeof(p->time_zone), cu->time_zone);
    if (cu->locale && cu->locale[0])
        set_text(p->locale, sizeof(p->locale), cu->locale);
    if (cu->country && cu->country[0])
        set_text(p->country, sizeof(p->country), cu->country);
}

static void apply_consent(struct patron_profile *p, const Patron__V1__ConsentChange *cc, int64_t t)
{
    int slot = consent_slot(cc->channel);
    if (slot < 0)
        return; /* rejected by patron_event_check */
    *profile_consent_of(p, slot) = cc->granted != 0;
    p->consent_ms[slot] = t;
}

void profile_evaluate(const struct patron_profile *p, int64_t now_ms,
                      const struct patron_profile_config *cfg, enum patron_tier *tier,
                      enum patron_segment *segment)
{
    struct patron_rfm rfm = patron_rfm_score(p, now_ms, cfg);
    *tier = patron_tier_of(p, cfg);
    *segment = patron_segment_of(&rfm, p->orders);
}

int patron_profile_apply(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                         int64_t offset, const struct patron_profile_config *cfg,
                         struct patron_apply_outcome *out)
{
    const char *why;
    if (patron_event_check(ev, &why) < 0 || ev->kind_case == PATRON__V1__EVENT__KIND_IDENTIFY)
        return PATRON_EINVAL;
    if (!patron_profile_is_visitor(p)) {
        if (strncmp(ev->customer_id, p->customer_id, PATRON_ID_MAX + 1) != 0)
            return PATRON_EINVAL;
    } else if (ev->customer_id[0] != '\0' || p->merged_into[0] != '\0' ||
               strncmp(ev->anonymous_id, p->anonymous_id, PATRON_ID_MAX + 1) != 0) {
        return PATRON_EINVAL; /* not its event, or frozen: its events are its customer's */
    }
    profile_apply_checked(p, ev, partition, offset, cfg, out);
    out->visitor = patron_profile_is_visitor(p);
    return 0;
}

void profile_outcome_init(const struct patron_profile *p, const Patron__V1__Event *ev,
                          const struct patron_profile_config *cfg, struct patron_apply_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->value_cents = patron_event_value_cents(ev);
    out->erased = ev->kind_case == PATRON__V1__EVENT__KIND_ERASURE;
    profile_evaluate(p, ev->occurred_at_ms, cfg, &out->tier_before, &out->segment_before);
    out->tier_after = out->tier_before;
    out->segment_after = out->segment_before;
}

void profile_apply_checked(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                           int64_t offset, const struct patron_profile_config *cfg,
                           struct patron_apply_outcome *out)
{
    profile_outcome_init(p, ev, cfg, out);
    if (offset >= 0 && offset <= profile_mark_get(p, partition)) {
        out->result = PATRON_APPLY_REPLAYED;
        return;
    }
    if (profile_dedupe(p, ev, cfg, out))
        return;
    profile_apply_new(p, ev, partition, offset, cfg, out);
}

void profile_apply_new(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                       int64_t offset, const struct patron_profile_config *cfg,
                       struct patron_apply_outcome *out)
{
    int64_t t = ev->occurred_at_ms;
    out->result = PATRON_APPLY_APPLIED;
    p->erased = false; /* a tombstone holds nothing: it starts afresh */
    p->first_seen_ms = min_set(p->first_seen_ms, t);
    p->last_seen_ms = max64(p->last_seen_ms, t);
    p->last_event_ms = max64(p->last_event_ms, t);
    profile_months_prune(p);

    switch (ev->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        recent_push(p->viewed, &p->n_viewed, PATRON_PROFILE_VIEWED_MAX, ev->view->item_id);
        profile_category_add(p, ev->view->category, cfg->weight_view, t, cfg);
        break;
    case PATRON__V1__EVENT__KIND_CART_ADD:
        /* A purchase after it in event time cleared the cart it was in: one
         * that arrived first (a merged visitor's events come from another
         * partition, at their own pace) does not bring it back. */
        if (t >= p->last_purchase_ms)
            cart_add(p, ev->cart_add->item);
        profile_category_add(p, ev->cart_add->item->category, cfg->weight_cart_add, t, cfg);
        p->cart_updated_ms = max64(p->cart_updated_ms, t);
        break;
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        cart_remove(p, ev->cart_remove->item_id);
        p->cart_updated_ms = max64(p->cart_updated_ms, t);
        break;
    case PATRON__V1__EVENT__KIND_PURCHASE:
        apply_purchase(p, ev->purchase, t, out->value_cents, cfg);
        break;
    case PATRON__V1__EVENT__KIND_REFUND:
        apply_refund(p, t, out->value_cents);
        break;
    case PATRON__V1__EVENT__KIND_REVIEW:
        p->points = sat_add(p->points, cfg->points_per_review);
        p->reviews = sat_add(p->reviews, 1);
        break;
    case PATRON__V1__EVENT__KIND_CUSTOMER:
        apply_customer(p, ev->customer, t);
        break;
    case PATRON__V1__EVENT__KIND_CONSENT:
        apply_consent(p, ev->consent, t);
        break;
    case PATRON__V1__EVENT__KIND_ERASURE:
        profile_tombstone(p, t);
        break;
    default:
        break; /* rejected by patron_event_check */
    }

    profile_remember(p, ev, partition, offset, cfg);
    profile_evaluate(p, t, cfg, &out->tier_after, &out->segment_after);
}
