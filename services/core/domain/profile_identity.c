/*
 * Identity (patron/profile.h, docs/guarantees.md "Identity"): a visitor's
 * profile merged into a customer's exactly once, and the visitor's later
 * events applied to the customer. Pure: the caller reads and writes both
 * profiles (the visitor first, frozen, then the customer), this file only
 * decides.
 */
#include <stdlib.h>
#include <string.h>

#include "patron/event_check.h"
#include "patron/profile.h"
#include "profile_internal.h"

int patron_profile_alias_find(const struct patron_profile *c, const char *anonymous_id)
{
    for (size_t i = 0; i < c->n_aliases && i < PATRON_PROFILE_ALIASES_MAX; i++)
        if (strncmp(c->aliases[i].anonymous_id, anonymous_id, PATRON_ID_MAX + 1) == 0)
            return (int)i;
    return -1;
}

/* ---- the merge ------------------------------------------------------------ */

/* The month buckets of both, summed per month, within the 12-month window
 * of c's (already merged) last_event_ms. */
static void merge_months(struct patron_profile *c, const struct patron_profile *v)
{
    struct patron_profile_month all[2 * PATRON_PROFILE_MONTHS];
    size_t n = 0, i = 0, j = 0;
    size_t nc = c->n_months < PATRON_PROFILE_MONTHS ? c->n_months : PATRON_PROFILE_MONTHS;
    size_t nv = v->n_months < PATRON_PROFILE_MONTHS ? v->n_months : PATRON_PROFILE_MONTHS;
    while (i < nc || j < nv) {
        const struct patron_profile_month *x = i < nc ? &c->months[i] : NULL;
        const struct patron_profile_month *y = j < nv ? &v->months[j] : NULL;
        if (x && y && x->month == y->month) {
            all[n] = *x;
            all[n++].cents = sat_add(x->cents, y->cents);
            i++;
            j++;
        } else if (x && (!y || x->month < y->month)) {
            all[n++] = *x;
            i++;
        } else {
            all[n++] = *y;
            j++;
        }
    }
    int64_t last = patron_month_of_ms(c->last_event_ms);
    size_t keep = 0;
    for (size_t k = 0; k < n; k++)
        if (all[k].month >= last - (PATRON_PROFILE_MONTHS - 1) && all[k].month <= last &&
            keep < PATRON_PROFILE_MONTHS)
            all[keep++] = all[k];
    memset(c->months, 0, sizeof(c->months));
    memcpy(c->months, all, keep * sizeof(all[0]));
    c->n_months = keep;
}

/* Most recent first: `first`'s entries, then `second`'s not among them;
 * the first `cap` stay in out, the rest are returned in over (the bought
 * list remembers them by hash). Returns how many stayed. */
static size_t merge_recent(char (*out)[PATRON_ID_MAX + 1], size_t cap,
                           const char (*first)[PATRON_ID_MAX + 1], size_t n_first,
                           const char (*second)[PATRON_ID_MAX + 1], size_t n_second,
                           char (*over)[PATRON_ID_MAX + 1], size_t *n_over)
{
    size_t n = 0;
    *n_over = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        const char(*src)[PATRON_ID_MAX + 1] = pass ? second : first;
        size_t count = pass ? n_second : n_first;
        for (size_t i = 0; i < count && i < cap; i++) {
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++)
                seen = strcmp(out[k], src[i]) == 0;
            for (size_t k = 0; k < *n_over && !seen; k++)
                seen = strcmp(over[k], src[i]) == 0;
            if (seen)
                continue;
            if (n < cap)
                set_id(out[n++], src[i]);
            else
                set_id(over[(*n_over)++], src[i]);
        }
    }
    return n;
}

static void merge_viewed(struct patron_profile *c, const struct patron_profile *v, bool v_first)
{
    char out[PATRON_PROFILE_VIEWED_MAX][PATRON_ID_MAX + 1];
    char over[PATRON_PROFILE_VIEWED_MAX][PATRON_ID_MAX + 1];
    size_t n_over;
    const struct patron_profile *a = v_first ? v : c, *b = v_first ? c : v;
    size_t n = merge_recent(
        out, PATRON_PROFILE_VIEWED_MAX, (const char(*)[PATRON_ID_MAX + 1]) a->viewed, a->n_viewed,
        (const char(*)[PATRON_ID_MAX + 1]) b->viewed, b->n_viewed, over, &n_over);
    memset(c->viewed, 0, sizeof(c->viewed));
    memcpy(c->viewed, out, n * sizeof(out[0]));
    c->n_viewed = n;
}

/* Bought items: both lists (the more recent buyer's first); what does not
 * fit joins bought_earlier, as do the visitor's own earlier hashes, so that
 * nothing either side bought is recommended again. */
static void merge_bought(struct patron_profile *c, const struct patron_profile *v, bool v_first)
{
    static const size_t cap = PATRON_PROFILE_BOUGHT_MAX;
    char(*out)[PATRON_ID_MAX + 1] = patron_malloc(2 * cap * sizeof(*out));
    char(*over)[PATRON_ID_MAX + 1] = out + cap;
    size_t n_over;
    const struct patron_profile *a = v_first ? v : c, *b = v_first ? c : v;
    size_t n =
        merge_recent(out, cap, (const char(*)[PATRON_ID_MAX + 1]) a->bought, a->n_bought,
                     (const char(*)[PATRON_ID_MAX + 1]) b->bought, b->n_bought, over, &n_over);
    memset(c->bought, 0, sizeof(c->bought));
    memcpy(c->bought, out, n * sizeof(out[0]));
    c->n_bought = n;
    for (size_t i = 0; i < n_over; i++)
        profile_earlier_add_hash(c, patron_item_hash32(over[i], strlen(over[i])));
    for (size_t i = 0; i < v->n_bought_earlier && i < PATRON_PROFILE_BOUGHT_EARLIER_MAX; i++)
        profile_earlier_add_hash(c, v->bought_earlier[i]);
    free(out);
}

/* Lines of `from` join `to`'s (same item: quantities add); a full cart
 * drops its oldest line. */
static void cart_join(struct patron_profile_cart_line *to, size_t *n,
                      const struct patron_profile_cart_line *from, size_t n_from)
{
    for (size_t i = 0; i < n_from && i < PATRON_PROFILE_CART_MAX; i++) {
        size_t k = 0;
        while (k < *n && strcmp(to[k].item_id, from[i].item_id) != 0)
            k++;
        if (k < *n) {
            int64_t q = (int64_t)to[k].quantity + from[i].quantity;
            to[k].quantity = q > INT32_MAX ? INT32_MAX : (int32_t)q;
            continue;
        }
        if (*n == PATRON_PROFILE_CART_MAX) {
            memmove(&to[0], &to[1], (*n - 1) * sizeof(to[0]));
            (*n)--;
        }
        to[*n] = from[i];
        (*n)++;
    }
}

/*
 * The carts as if every event had been applied to one profile: a purchase
 * clears the cart, so a side's lines all added before the other side's
 * latest purchase (its cart last changed before it) are gone; the others
 * join, the older cart's lines first. Returns the visitor's lines kept.
 */
static size_t merge_cart(struct patron_profile *c, const struct patron_profile *v)
{
    bool keep_c = c->n_cart && c->cart_updated_ms >= v->last_purchase_ms;
    bool keep_v = v->n_cart && v->cart_updated_ms >= c->last_purchase_ms;
    struct patron_profile_cart_line cart[PATRON_PROFILE_CART_MAX];
    size_t n = 0;
    memset(cart, 0, sizeof(cart));
    bool v_older = v->cart_updated_ms < c->cart_updated_ms;
    for (int pass = 0; pass < 2; pass++) {
        bool visitor = (pass == 0) == v_older;
        if (visitor && keep_v)
            cart_join(cart, &n, v->cart, v->n_cart);
        else if (!visitor && keep_c)
            cart_join(cart, &n, c->cart, c->n_cart);
    }
    memcpy(c->cart, cart, sizeof(cart));
    c->n_cart = n;
    c->cart_updated_ms = max64(c->cart_updated_ms, v->cart_updated_ms);
    return keep_v ? (v->n_cart < PATRON_PROFILE_CART_MAX ? v->n_cart : PATRON_PROFILE_CART_MAX) : 0;
}

/* Consent per channel and customer data: last writer wins by event time;
 * at the same time a revocation wins (as in profile.c). */
static void merge_settings(struct patron_profile *c, const struct patron_profile *v)
{
    for (int slot = 0; slot < 3; slot++) {
        bool *cv = profile_consent_of(c, slot);
        bool vv = *profile_consent_of((struct patron_profile *)v, slot);
        if (v->consent_ms[slot] > c->consent_ms[slot]) {
            *cv = vv;
            c->consent_ms[slot] = v->consent_ms[slot];
        } else if (v->consent_ms[slot] == c->consent_ms[slot] && v->consent_ms[slot] != 0) {
            *cv = *cv && vv;
        }
    }
    bool v_newer = v->customer_ms > c->customer_ms;
    struct {
        char *mine;
        const char *theirs;
        size_t cap;
    } fields[] = {
        {c->birthday, v->birthday, sizeof(c->birthday)},
        {c->time_zone, v->time_zone, sizeof(c->time_zone)},
        {c->locale, v->locale, sizeof(c->locale)},
        {c->country, v->country, sizeof(c->country)},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(fields); i++)
        if (fields[i].theirs[0] && (v_newer || !fields[i].mine[0]))
            set_text(fields[i].mine, fields[i].cap, fields[i].theirs);
    c->customer_ms = max64(c->customer_ms, v->customer_ms);
}

/* The events that count nothing: both rings (an id in both keeps its later
 * time); beyond capacity the earliest go, raising the floor as ring_add
 * does (those older than the window leave at the next add, as they would
 * have). Most recent first. */
static void merge_ring(struct patron_profile *c, const struct patron_profile *v)
{
    enum { CAP = PATRON_PROFILE_EVENT_IDS_MAX };
    uint64_t *ids = patron_malloc(2 * CAP * sizeof(*ids));
    int64_t *ms = patron_malloc(2 * CAP * sizeof(*ms));
    size_t n = 0;
    int64_t floor_ms = max64(c->event_ids_floor_ms, v->event_ids_floor_ms);
    for (int side = 0; side < 2; side++) {
        const struct patron_profile *p = side ? v : c;
        for (size_t i = 0; i < p->n_event_ids && i < CAP; i++) {
            size_t k = 0;
            while (k < n && ids[k] != p->event_ids[i])
                k++;
            if (k < n) {
                ms[k] = max64(ms[k], p->event_ms[i]);
                continue;
            }
            ids[n] = p->event_ids[i];
            ms[n++] = p->event_ms[i];
        }
    }
    while (n > CAP) {
        size_t oldest = 0;
        for (size_t i = 1; i < n; i++)
            if (ms[i] <= ms[oldest])
                oldest = i;
        floor_ms = max64(floor_ms, ms[oldest]);
        memmove(&ids[oldest], &ids[oldest + 1], (n - oldest - 1) * sizeof(ids[0]));
        memmove(&ms[oldest], &ms[oldest + 1], (n - oldest - 1) * sizeof(ms[0]));
        n--;
    }
    /* most recent first, as the ring is read: a stable sort by time */
    for (size_t i = 1; i < n; i++) {
        uint64_t id = ids[i];
        int64_t t = ms[i];
        size_t k = i;
        while (k > 0 && ms[k - 1] < t) {
            ids[k] = ids[k - 1];
            ms[k] = ms[k - 1];
            k--;
        }
        ids[k] = id;
        ms[k] = t;
    }
    memset(c->event_ids, 0, sizeof(c->event_ids));
    memset(c->event_ms, 0, sizeof(c->event_ms));
    memcpy(c->event_ids, ids, n * sizeof(ids[0]));
    memcpy(c->event_ms, ms, n * sizeof(ms[0]));
    c->n_event_ids = n;
    c->event_ids_floor_ms = floor_ms;
    free(ms);
    free(ids);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ledgers: their union, ascending. An event id counted on both sides
 * was counted twice before the merge (the same event sent under both
 * identities); it is kept once and reported. Past capacity the oldest
 * months go whole, as counted_add does. Returns the ids on both sides. */
static int64_t merge_counted(struct patron_profile *c, const struct patron_profile *v)
{
    enum { CAP = PATRON_PROFILE_COUNTED_MAX };
    const uint64_t mask = (UINT64_C(1) << PATRON_COUNTED_HASH_BITS) - 1;
    size_t nc = c->n_counted < CAP ? c->n_counted : CAP;
    size_t nv = v->n_counted < CAP ? v->n_counted : CAP;
    uint64_t *hashes = patron_malloc((nc ? nc : 1) * sizeof(*hashes));
    uint64_t *all = patron_malloc((nc + nv + 1) * sizeof(*all));
    for (size_t i = 0; i < nc; i++)
        hashes[i] = c->counted[i] & mask;
    qsort(hashes, nc, sizeof(*hashes), u64_cmp);
    memcpy(all, c->counted, nc * sizeof(*all));
    size_t n = nc;
    int64_t shared = 0;
    for (size_t i = 0; i < nv; i++) {
        uint64_t h = v->counted[i] & mask;
        if (nc && bsearch(&h, hashes, nc, sizeof(*hashes), u64_cmp)) {
            shared++;
            continue;
        }
        all[n++] = v->counted[i];
    }
    qsort(all, n, sizeof(*all), u64_cmp);
    int32_t floor_month = c->counted_floor_month > v->counted_floor_month ? c->counted_floor_month
                                                                          : v->counted_floor_month;
    size_t from = 0;
    while (n - from > CAP) {
        int32_t oldest = profile_counted_month(all[from]);
        while (from < n && profile_counted_month(all[from]) == oldest)
            from++;
        if (oldest > floor_month)
            floor_month = oldest;
    }
    memset(c->counted, 0, sizeof(c->counted));
    memcpy(c->counted, all + from, (n - from) * sizeof(*all));
    c->n_counted = n - from;
    c->counted_floor_month = floor_month;
    free(all);
    free(hashes);
    return shared;
}

void patron_profile_merge(struct patron_profile *c, const struct patron_profile *v,
                          const struct patron_profile_config *cfg, struct patron_merge_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->viewed = (int64_t)(v->n_viewed < PATRON_PROFILE_VIEWED_MAX ? v->n_viewed
                                                                   : PATRON_PROFILE_VIEWED_MAX);
    st->orders = v->orders;
    /* which side's recent lists go first: the one seen last */
    bool v_views_first = v->last_event_ms > c->last_event_ms;
    bool v_bought_first = v->last_purchase_ms > c->last_purchase_ms;

    c->orders = sat_add(c->orders, v->orders);
    c->net_spend_cents = sat_add(c->net_spend_cents, v->net_spend_cents);
    c->points = sat_add(c->points, v->points);
    c->reviews = sat_add(c->reviews, v->reviews);
    c->refunds = sat_add(c->refunds, v->refunds);
    c->first_seen_ms = min_set(c->first_seen_ms, v->first_seen_ms);
    c->last_seen_ms = max64(c->last_seen_ms, v->last_seen_ms);
    c->first_purchase_ms = min_set(c->first_purchase_ms, v->first_purchase_ms);
    /* merge_cart reads the last purchases before either moves */
    st->cart_lines = (int64_t)merge_cart(c, v);
    c->last_purchase_ms = max64(c->last_purchase_ms, v->last_purchase_ms);
    c->last_event_ms = max64(c->last_event_ms, v->last_event_ms);

    merge_months(c, v);
    for (size_t i = 0; i < v->n_categories && i < PATRON_PROFILE_CATEGORIES_MAX; i++)
        profile_category_add(c, v->categories[i].category, v->categories[i].score,
                             v->categories[i].updated_ms, cfg);
    merge_viewed(c, v, v_views_first);
    merge_bought(c, v, v_bought_first);
    merge_settings(c, v);
    merge_ring(c, v);
    st->shared_counted = merge_counted(c, v);
}

/* ---- Identify ---------------------------------------------------------------- */

static void alias_add(struct patron_profile *c, const struct patron_profile *v, int64_t at_ms,
                      const struct patron_merge_stats *st)
{
    struct patron_profile_alias *a = &c->aliases[c->n_aliases++];
    memset(a, 0, sizeof(*a));
    set_id(a->anonymous_id, v->anonymous_id);
    a->merged_at_ms = at_ms;
    a->floor_ms = v->erased_at_ms;
    a->n_marks = v->n_marks < PATRON_PROFILE_MARKS_MAX ? v->n_marks : PATRON_PROFILE_MARKS_MAX;
    memcpy(a->marks, v->marks, a->n_marks * sizeof(a->marks[0]));
    a->viewed = st->viewed;
    a->cart_lines = st->cart_lines;
    a->orders = st->orders;
}

static bool same_id(const char *a, const char *b)
{
    return strncmp(a, b, PATRON_ID_MAX + 1) == 0;
}

int patron_profile_identify(struct patron_profile *c, struct patron_profile *v,
                            const Patron__V1__Event *ev, int32_t partition, int64_t offset,
                            const struct patron_profile_config *cfg,
                            struct patron_identify_outcome *out)
{
    const char *why;
    if (patron_event_check(ev, &why) < 0 || ev->kind_case != PATRON__V1__EVENT__KIND_IDENTIFY ||
        patron_profile_is_visitor(c) || !same_id(ev->customer_id, c->customer_id) ||
        !patron_profile_is_visitor(v) || !same_id(ev->identify->anonymous_id, v->anonymous_id))
        return PATRON_EINVAL;
    memset(out, 0, sizeof(*out));
    struct patron_apply_outcome *ao = &out->apply;
    profile_outcome_init(c, ev, cfg, ao);
    int64_t t = ev->occurred_at_ms;

    /* An anonymous id belongs to one customer, for ever (until erased):
     * checked first, so that a replay of a conflict goes to the DLQ again. */
    if (v->merged_into[0] && !same_id(v->merged_into, c->customer_id)) {
        ao->result = PATRON_APPLY_REFUSED;
        out->reason = PATRON_IDENTIFY_CONFLICT_REASON;
        return 0;
    }
    int a = patron_profile_alias_find(c, v->anonymous_id);
    if (offset >= 0 && offset <= profile_mark_get(c, partition)) {
        ao->result = PATRON_APPLY_REPLAYED;
        ao->cart_lines = a >= 0 ? c->aliases[a].cart_lines : 0;
        return 0;
    }
    if (t <= c->erased_at_ms) {
        ao->result = PATRON_APPLY_STALE; /* from before the customer's erasure */
        return 0;
    }
    if (a >= 0) {
        ao->result = PATRON_APPLY_DUPLICATE; /* merged already: by a resend, or another Identify */
        return 0;
    }
    if (c->n_aliases >= PATRON_PROFILE_ALIASES_MAX) {
        ao->result = PATRON_APPLY_REFUSED;
        out->reason = PATRON_IDENTIFY_LIMIT_REASON;
        return 0;
    }

    struct patron_merge_stats st;
    ao->result = PATRON_APPLY_APPLIED;
    c->erased = false; /* a tombstone holds nothing: it starts afresh */
    patron_profile_merge(c, v, cfg, &st);
    alias_add(c, v, t, &st);
    /* the login is the customer's activity */
    c->first_seen_ms = min_set(c->first_seen_ms, t);
    c->last_seen_ms = max64(c->last_seen_ms, t);
    c->last_event_ms = max64(c->last_event_ms, t);
    profile_months_prune(c);
    if (offset >= 0)
        profile_mark_set(c, partition, offset);
    ao->cart_lines = st.cart_lines;
    out->shared_counted = st.shared_counted;
    if (!same_id(v->merged_into, c->customer_id)) {
        out->freeze = true;
        set_id(v->merged_into, c->customer_id);
        v->merged_partition = partition;
    }
    profile_evaluate(c, t, cfg, &ao->tier_after, &ao->segment_after);
    return 0;
}

/* ---- the visitor's events, once merged ----------------------------------------- */

static bool replayed_at(const struct patron_profile_mark *marks, size_t n, int32_t partition,
                        int64_t offset)
{
    for (size_t i = 0; i < n && i < PATRON_PROFILE_MARKS_MAX; i++)
        if (marks[i].partition == partition && offset <= marks[i].offset)
            return true;
    return false;
}

int patron_profile_apply_redirected(struct patron_profile *c, const struct patron_profile *pending,
                                    const Patron__V1__Event *ev, int32_t partition, int64_t offset,
                                    const struct patron_profile_config *cfg,
                                    struct patron_apply_outcome *out)
{
    const char *why;
    if (patron_event_check(ev, &why) < 0 || ev->kind_case == PATRON__V1__EVENT__KIND_IDENTIFY ||
        ev->customer_id[0] != '\0' || patron_profile_is_visitor(c))
        return PATRON_EINVAL;
    int a = patron_profile_alias_find(c, ev->anonymous_id);
    if (a < 0 && (!pending || !same_id(pending->anonymous_id, ev->anonymous_id) ||
                  !same_id(pending->merged_into, c->customer_id)))
        return PATRON_EINVAL; /* not one of c's visitors */
    profile_outcome_init(c, ev, cfg, out);
    if (a >= 0) {
        const struct patron_profile_alias *al = &c->aliases[a];
        if (offset >= 0 && replayed_at(al->marks, al->n_marks, partition, offset)) {
            out->result = PATRON_APPLY_REPLAYED;
            out->visitor = true; /* the visitor's, merged: nothing to publish */
            return 0;
        }
        if (ev->kind_case != PATRON__V1__EVENT__KIND_ERASURE &&
            ev->occurred_at_ms <= al->floor_ms) {
            out->result = PATRON_APPLY_STALE;
            return 0;
        }
    } else {
        /* Frozen, not merged yet (the Identify's second write is still to
         * come): the visitor's own replay state and memory count too. */
        if (offset >= 0 && replayed_at(pending->marks, pending->n_marks, partition, offset)) {
            out->result = PATRON_APPLY_REPLAYED;
            out->visitor = true;
            return 0;
        }
        if (profile_dedupe(pending, ev, cfg, out))
            return 0;
    }
    if (offset >= 0 && offset <= profile_mark_get(c, partition)) {
        out->result = PATRON_APPLY_REPLAYED;
        return 0;
    }
    if (profile_dedupe(c, ev, cfg, out))
        return 0;
    profile_apply_new(c, ev, partition, offset, cfg, out);
    return 0;
}

/* ---- the visitor's key after the merge ---------------------------------------------- */

void patron_profile_alias_only(struct patron_profile *v)
{
    char anon[PATRON_ID_MAX + 1], into[PATRON_ID_MAX + 1];
    int32_t partition = v->merged_partition;
    memcpy(anon, v->anonymous_id, sizeof(anon));
    memcpy(into, v->merged_into, sizeof(into));
    patron_profile_init_visitor(v, anon);
    set_id(v->merged_into, into);
    v->merged_partition = partition;
}

bool patron_profile_erase_visitor(struct patron_profile *v, const char *customer_id, int64_t at_ms)
{
    if (!patron_profile_is_visitor(v) || !same_id(v->merged_into, customer_id))
        return false;
    profile_tombstone(v, at_ms);
    return true;
}
