/*
 * The customer profile and how events change it (docs/contracts/profile.md), its stored form
 * (protobuf ProfileState) and its API form (JSON).
 *
 * A struct patron_profile is a plain value with fixed capacities and no
 * pointers: copy it with `=`, keep it on the stack or in an array. Unused
 * slots of its lists are kept zeroed, so that an erased profile holds no
 * stale personal data. Everything here is pure (time comes in as arguments,
 * Unix epoch ms) and allocation-free except the codec and the JSON, which
 * abort on out of memory (common.h). No shared state: safe from any thread
 * on distinct profiles.
 *
 * Exactly-once apply (docs/guarantees.md, "Resends"): each event_id counts
 * at most once for its customer, at any distance.
 * - A replayed Kafka offset (at or below the highest the profile applied
 *   from that partition: one mark per partition, PATRON_PROFILE_MARKS_MAX
 *   of them) is REPLAYED.
 * - Events that count (purchase, refund, review: orders, spend, points,
 *   reviews) are remembered for ever in `counted`, a ledger of 8 bytes per
 *   event: a resend a second or a year later is a DUPLICATE. A customer
 *   with more than PATRON_PROFILE_COUNTED_MAX of them forgets its oldest
 *   month of them at a time; an event of a forgotten month that the ledger
 *   cannot vouch for is REFUSED (to the DLQ), never counted twice.
 * - Every other event is remembered with its event time while it is
 *   within the dedupe window (a day by default) of the customer's latest
 *   event, up to PATRON_PROFILE_EVENT_IDS_MAX. A view or cart change older
 *   than the window, or at or before the latest time the memory had to
 *   forget early, may be a resend nobody remembers: it is STALE, not
 *   applied. Consent and customer updates are last-writer-wins by event
 *   time per field instead, so a resend of one changes nothing (STALE too).
 * - After an erasure, events from before it are STALE (a replay or a late
 *   resend cannot bring data back).
 *
 * Visitors (docs/guarantees.md "Identity"): a profile is either a
 * customer's (customer_id set) or an anonymous visitor's (anonymous_id set,
 * customer_id ""), in the same form. An Identify merges a visitor into a
 * customer exactly once (patron_profile_identify): the visitor is frozen
 * (merged_into), the customer takes its contents and lists the anonymous id
 * among its aliases; from then on the visitor's events apply to the customer
 * (patron_profile_apply_redirected). profile_identity.c holds those rules.
 */
#ifndef PATRON_PROFILE_H
#define PATRON_PROFILE_H

#include "patron/common.h"
#include "patron/rfm.h"
#include "patron/v1/event.pb-c.h"

#define PATRON_PROFILE_VIEWED_MAX 10 /* recently viewed items, most recent first */
#define PATRON_PROFILE_BOUGHT_MAX 64 /* recently bought items, most recent first */
/* Hashes of items that fell off the bought list: with it, every item bought
 * is remembered (4 bytes each), so that it is never recommended again. */
#define PATRON_PROFILE_BOUGHT_EARLIER_MAX 1024
#define PATRON_PROFILE_CART_MAX 32      /* open cart lines, oldest first */
#define PATRON_PROFILE_CATEGORIES_MAX 8 /* category affinities kept */
/* Events that count nothing, remembered while within the dedupe window
 * (patron_profile_config.dedupe_window_ms) of the customer's latest event:
 * at most this many, 4 KiB, for a customer of 256 events in a day. */
#define PATRON_PROFILE_EVENT_IDS_MAX 256
/* Events that count (purchases, refunds, reviews) remembered for ever: 32 KiB
 * at most, reached by a customer of 4,096 of them. */
#define PATRON_PROFILE_COUNTED_MAX 4096
/* A `counted` entry: the event's month (patron_month_of_ms, 17 bits from
 * 1970) above the low PATRON_COUNTED_HASH_BITS bits of its event-id hash. */
#define PATRON_COUNTED_HASH_BITS 47
#define PATRON_PROFILE_MONTHS 12        /* months of net spend in the tier window */
#define PATRON_PROFILE_TIME_ZONE_MAX 63 /* bytes, without the NUL */
#define PATRON_PROFILE_LOCALE_MAX 35
#define PATRON_PROFILE_COUNTRY_MAX 63
#define PATRON_PROFILE_BIRTHDAY_LEN 5 /* "MM-DD" */
/* Partitions of patron.events whose position a profile remembers: a
 * customer's own and those of its visitors' events redirected to it. Past
 * this many, the mark of the lowest offset goes: a replay from that
 * partition is then recognised by its event id alone (still changes
 * nothing, but is not published again). */
#define PATRON_PROFILE_MARKS_MAX 8
/* Anonymous ids (devices, cookies) one customer may have merged: an Identify
 * of one more goes to the DLQ (identify_limit). */
#define PATRON_PROFILE_ALIASES_MAX 16

/* Thresholds and weights; patron_profile_config_default gives docs/contracts/profile.md's
 * defaults and the configuration loader overrides them from the environment.
 * Threshold lists go from the best score down. */
struct patron_profile_config {
    int64_t rfm_recency_days[4];   /* days since last purchase <= [0] -> R 5, <= [1] -> 4 ... */
    int64_t rfm_frequency[4];      /* orders >= [0] -> F 5, >= [1] -> 4 ... */
    int64_t rfm_monetary_cents[4]; /* net spend >= [0] -> M 5, >= [1] -> 4 ... */
    int64_t tier_gold_cents;       /* 12-month net spend from which the tier is gold */
    int64_t tier_platinum_cents;   /* ... and platinum */
    int64_t points_per_review;     /* loyalty points a review earns */
    int64_t category_half_life_ms; /* affinity halves in this time; <= 0: no decay */
    double weight_view;            /* affinity a product view adds to its category */
    double weight_cart_add;        /* ... a cart add */
    double weight_purchase;        /* ... each line of a purchase */
    int64_t churn_horizon_days;    /* churn_risk: P(no purchase within this many days) */
    int64_t dedupe_window_ms;      /* events that count nothing: remembered this long */
};

void patron_profile_config_default(struct patron_profile_config *cfg);

struct patron_profile_month {
    int32_t month; /* year * 12 + (month - 1), UTC */
    int64_t cents; /* net spend whose event time falls in that month */
};

struct patron_profile_category {
    char category[PATRON_ID_MAX + 1];
    double score;       /* decayed weight as of updated_ms */
    int64_t updated_ms; /* event time the score refers to */
};

struct patron_profile_cart_line {
    char item_id[PATRON_ID_MAX + 1];
    int32_t quantity; /* > 0 */
};

/* The highest offset of a partition of patron.events applied to a profile. */
struct patron_profile_mark {
    int32_t partition;
    int64_t offset;
};

/* An anonymous id merged into a customer, and what the merge took over. */
struct patron_profile_alias {
    char anonymous_id[PATRON_ID_MAX + 1];
    int64_t merged_at_ms; /* the Identify's event time */
    /* The visitor's erasure time, if it had one: the anonymous id's events
     * at or before it stay erased (STALE) once redirected here. */
    int64_t floor_ms;
    /* The visitor's own marks when it was merged: an event of the anonymous
     * id at or below one of them was applied to the visitor (and merged),
     * so it is a replay, never the customer's anew. */
    struct patron_profile_mark marks[PATRON_PROFILE_MARKS_MAX];
    size_t n_marks;
    /* What the visitor brought (reports; the trigger's merged cart). */
    int64_t viewed, cart_lines, orders;
};

/* Times are event times in Unix epoch ms; 0 means "never". Money is in
 * cents of the shop's currency. */
struct patron_profile {
    char customer_id[PATRON_ID_MAX + 1];  /* "" for a visitor */
    char anonymous_id[PATRON_ID_MAX + 1]; /* a visitor's; "" for a customer */
    int64_t orders;                       /* purchases applied */
    int64_t net_spend_cents;              /* purchases minus refunds, lifetime; may be negative */
    int64_t points;                       /* loyalty balance; may be negative */
    int64_t reviews;                      /* reviews applied */
    int64_t refunds;                      /* refunds applied */
    int64_t first_seen_ms, last_seen_ms;  /* earliest and latest event time */
    int64_t first_purchase_ms, last_purchase_ms; /* 0 until the first purchase */
    int64_t last_event_ms;                       /* latest event time: anchors the tier window */
    int64_t cart_updated_ms;                     /* latest cart_add, cart_remove or purchase */

    /* Ascending by month, all within [month(last_event_ms) - 11, month(last_event_ms)]. */
    struct patron_profile_month months[PATRON_PROFILE_MONTHS];
    size_t n_months;
    /* In no particular order; see patron_profile_top_categories. */
    struct patron_profile_category categories[PATRON_PROFILE_CATEGORIES_MAX];
    size_t n_categories;
    char viewed[PATRON_PROFILE_VIEWED_MAX][PATRON_ID_MAX + 1];
    size_t n_viewed;
    char bought[PATRON_PROFILE_BOUGHT_MAX][PATRON_ID_MAX + 1];
    size_t n_bought;
    /* patron_item_hash32 of the items pushed off `bought`, strictly
     * ascending (binary search); empty until a customer has bought more than
     * PATRON_PROFILE_BOUGHT_MAX distinct items, and no longer growing once
     * full (beyond ~1,100 distinct items an old one may be recommended again). */
    uint32_t bought_earlier[PATRON_PROFILE_BOUGHT_EARLIER_MAX];
    size_t n_bought_earlier;
    struct patron_profile_cart_line cart[PATRON_PROFILE_CART_MAX];
    size_t n_cart;

    bool consent_sms, consent_push, consent_email;    /* false until granted */
    char time_zone[PATRON_PROFILE_TIME_ZONE_MAX + 1]; /* IANA name, "" when unknown */
    char locale[PATRON_PROFILE_LOCALE_MAX + 1];       /* e.g. "en-GB", "" when unknown */
    char birthday[PATRON_PROFILE_BIRTHDAY_LEN + 1];   /* "MM-DD", "" when unknown */
    char country[PATRON_PROFILE_COUNTRY_MAX + 1];

    /* Events that count nothing: FNV-1a of event_id and the event's time,
     * most recently applied first. */
    uint64_t event_ids[PATRON_PROFILE_EVENT_IDS_MAX];
    int64_t event_ms[PATRON_PROFILE_EVENT_IDS_MAX];
    size_t n_event_ids;
    int64_t
        event_ids_floor_ms; /* latest event time of an id forgotten within the window; 0: none */
    /* Events that count: ascending patron_counted_entry values. */
    uint64_t counted[PATRON_PROFILE_COUNTED_MAX];
    size_t n_counted;
    int32_t counted_floor_month; /* months up to this one were trimmed; 0: none */
    int64_t consent_ms[3];       /* event time of the consent applied: sms, push, email */
    int64_t customer_ms;         /* event time of the CustomerUpdate applied */
    int64_t erased_at_ms;        /* a tombstone's erasure time */
    /* Per partition of patron.events, the highest offset applied (replays);
     * most recently written first. */
    struct patron_profile_mark marks[PATRON_PROFILE_MARKS_MAX];
    size_t n_marks;

    /* A visitor merged (or being merged) into a customer: frozen, it takes
     * no event of its own any more; its events go to that customer, whose
     * ProfileUpdates go to partition merged_partition (the customer's, the
     * Identify's) of patron.profile-updates. "" until an Identify. */
    char merged_into[PATRON_ID_MAX + 1];
    int32_t merged_partition;
    /* A customer's merged anonymous ids, in merge order. */
    struct patron_profile_alias aliases[PATRON_PROFILE_ALIASES_MAX];
    size_t n_aliases;

    /* A tombstone after an erasure: no personal data left, only customer_id
     * and the dedupe state (event ids, source position). */
    bool erased;
};

/* An empty profile. customer_id must be a checked id (at most PATRON_ID_MAX
 * bytes; a longer one is cut). */
void patron_profile_init(struct patron_profile *p, const char *customer_id);
/* An empty visitor profile (customer_id ""), the same way. */
void patron_profile_init_visitor(struct patron_profile *p, const char *anonymous_id);

/* Whether p is a visitor's profile. */
static inline bool patron_profile_is_visitor(const struct patron_profile *p)
{
    return p->customer_id[0] == '\0';
}

enum patron_apply_result {
    PATRON_APPLY_APPLIED,   /* the profile changed */
    PATRON_APPLY_DUPLICATE, /* the event id was applied before (a producer resend) */
    PATRON_APPLY_REPLAYED,  /* the Kafka offset was applied before (a consumer replay) */
    PATRON_APPLY_STALE,     /* older than what it could change (see the top): not applied */
    PATRON_APPLY_REFUSED,   /* counts, and the ledger cannot vouch it is new: to the DLQ */
};

/* The DLQ reason of a REFUSED event. */
#define PATRON_APPLY_REFUSED_REASON "late_beyond_ledger"

struct patron_apply_outcome {
    enum patron_apply_result result;
    /* Before and after the event, with now = the event's time; equal unless
     * the result is APPLIED. */
    enum patron_tier tier_before, tier_after;
    enum patron_segment segment_before, segment_after;
    int64_t value_cents; /* purchase value or refund amount (>= 0), whatever the result */
    /* The event is an erasure (whatever the result, so that a replay deletes
     * again what a crash may have left): the caller deletes the customer's
     * other keys and stores the tombstone. */
    bool erased;
    /* The event is, or was, a visitor's own (applied to an unmerged visitor,
     * or a replay of one merged since): no ProfileUpdate, a visitor cannot
     * be messaged. */
    bool visitor;
    /* An Identify applied or replayed: cart lines the visitor brought (the
     * trigger's merged cart). */
    int64_t cart_lines;
};

/* Applies one event to the customer's profile. partition/offset are the
 * event's Kafka position; offset < 0 means none (API, tests): no replay check,
 * nothing stored. The event is checked with patron_event_check first; an
 * event that fails it, or whose customer_id is not p's, is PATRON_EINVAL and
 * changes nothing. An erased profile comes back to life (empty) on the next
 * applied event. A visitor's profile takes the events of its anonymous_id
 * (customer_id "") while it is not merged (merged_into ""); an Identify goes
 * through patron_profile_identify, never here (PATRON_EINVAL). */
int patron_profile_apply(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                         int64_t offset, const struct patron_profile_config *cfg,
                         struct patron_apply_outcome *out) PATRON_MUST_USE;

/* The `counted` entry of an event id at event time at_ms. */
uint64_t patron_counted_entry(const char *event_id, size_t len, int64_t at_ms);

/* A stable 32-bit hash of an item id (FNV-1a 64 folded): the stored form of
 * bought_earlier, so it must never change. */
uint32_t patron_item_hash32(const char *id, size_t len);

/* Whether the customer ever bought the item: in the bought list, or its hash
 * among bought_earlier (a 32-bit collision may rarely say yes wrongly). */
bool patron_profile_has_bought(const struct patron_profile *p, const char *item_id);

/* The UTC calendar month of a time: year * 12 + (month - 1). Total over int64. */
int64_t patron_month_of_ms(int64_t ms);

/* Category i's score decayed to now_ms (a now before the score's time does
 * not grow it). */
double patron_profile_category_score(const struct patron_profile *p, size_t i, int64_t now_ms,
                                     const struct patron_profile_config *cfg);

struct patron_category_rank {
    const char *category; /* borrowed from the profile */
    double score;         /* decayed to now */
};
/* The categories by decayed score, highest first (ties by name); writes at
 * most max, returns how many. */
size_t patron_profile_top_categories(const struct patron_profile *p, int64_t now_ms,
                                     const struct patron_profile_config *cfg,
                                     struct patron_category_rank *out, size_t max);

/* ---- identity: visitors merged into customers (profile_identity.c) ------- */

/* The DLQ reasons of an Identify that is not applied. */
#define PATRON_IDENTIFY_CONFLICT_REASON "identify_conflict" /* the id is another customer's */
#define PATRON_IDENTIFY_LIMIT_REASON "identify_limit"       /* PATRON_PROFILE_ALIASES_MAX reached */

/* What a merge took from the visitor. */
struct patron_merge_stats {
    int64_t viewed;     /* recently viewed items the visitor had */
    int64_t cart_lines; /* its cart lines still in the merged cart */
    int64_t orders;     /* its guest purchases */
    /* events counted on both sides before the merge (one event id sent
     * under both identities): each was counted twice and cannot be undone */
    int64_t shared_counted;
};

/* Merges visitor v's contents into customer c, as if every event of both
 * had been applied to c: counters add; first times take the earliest, last
 * times the latest; month buckets add within c's new 12-month window;
 * category scores add (decayed to their times); recently viewed and bought
 * lists join, the more recent side first (bought items pushed off are kept
 * by hash with v's bought_earlier); a cart whose last change came before
 * the other side's latest purchase is gone (that purchase cleared it), the
 * other lines join, older cart first; consent per channel and customer
 * data: last writer wins by event time; both resend memories join (the
 * ledger of counted events for ever, the other events within the dedupe
 * window). Marks and aliases are not merged (patron_profile_identify
 * records v's marks in its alias). */
void patron_profile_merge(struct patron_profile *c, const struct patron_profile *v,
                          const struct patron_profile_config *cfg, struct patron_merge_stats *st);

struct patron_identify_outcome {
    /* The Identify as an event of the customer: APPLIED (merged now),
     * REPLAYED (its offset was applied: the ProfileUpdate goes again),
     * DUPLICATE (the visitor was merged already), STALE (from before the
     * customer's erasure), or REFUSED: to the DLQ with `reason`. */
    struct patron_apply_outcome apply;
    const char *reason; /* REFUSED: PATRON_IDENTIFY_CONFLICT_REASON or _LIMIT_REASON */
    /* The visitor is now frozen into the customer (v->merged_into set): the
     * caller writes v, and only once that write is acknowledged, c. */
    bool freeze;
    int64_t shared_counted; /* APPLIED: see patron_merge_stats */
};

/*
 * Applies Identify ev (customer c, visitor v: the visitor's profile as
 * stored, or patron_profile_init_visitor'd when it has none) read at Kafka
 * (partition, offset). Exactly once: the visitor is merged into c unless c
 * lists it among its aliases already; a visitor frozen into c but not in
 * its aliases (a crash between the two writes) is merged now. v changes
 * only when out->freeze. PATRON_EINVAL when ev is not a checked Identify of
 * c and v (nothing changes).
 */
int patron_profile_identify(struct patron_profile *c, struct patron_profile *v,
                            const Patron__V1__Event *ev, int32_t partition, int64_t offset,
                            const struct patron_profile_config *cfg,
                            struct patron_identify_outcome *out) PATRON_MUST_USE;

/* The index of an anonymous id among c's aliases, or -1. */
int patron_profile_alias_find(const struct patron_profile *c, const char *anonymous_id);

/*
 * Applies the event of a merged visitor (customer_id "", anonymous_id one
 * of c's aliases) to its customer c. `pending` is the visitor's frozen
 * profile when c does not list it yet (the merge's second write is still to
 * come), else NULL. A replay of an event the visitor applied itself is
 * REPLAYED with out->visitor (nothing to publish); an event the visitor had
 * (pending) or that c has is a DUPLICATE; one from before the visitor's
 * erasure is STALE; otherwise the rules of patron_profile_apply on c.
 * PATRON_EINVAL when the event is not such an event of c's.
 */
int patron_profile_apply_redirected(struct patron_profile *c, const struct patron_profile *pending,
                                    const Patron__V1__Event *ev, int32_t partition, int64_t offset,
                                    const struct patron_profile_config *cfg,
                                    struct patron_apply_outcome *out) PATRON_MUST_USE;

/* A merged visitor's key once its customer holds the merge: the alias alone
 * (anonymous_id, merged_into, merged_partition), its contents dropped. */
void patron_profile_alias_only(struct patron_profile *v);

/* The erasure of customer_id reaching one of its visitors: when v is merged
 * into customer_id it becomes a visitor tombstone at at_ms (no longer
 * merged; its events from before stay erased) and true is returned; any
 * other v is left alone (false). */
bool patron_profile_erase_visitor(struct patron_profile *v, const char *customer_id, int64_t at_ms);

#endif
