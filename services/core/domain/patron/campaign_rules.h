/*
 * Campaign rules, pure: which campaigns a profile update makes a customer
 * eligible for (now or by a timer), whether a pending wait is cancelled,
 * the send decision with its fixed suppression order, deterministic
 * message ids, variants and control group, and purchase attribution.
 *
 * No clock reads, no I/O, no allocation: time comes in as arguments (event
 * time, Unix epoch ms), results go to caller-provided structs. Safe from
 * any thread. The shell (patron-trigger) stores timers, sends, ledger and
 * counters; these functions only decide.
 *
 * Replayed updates (ProfileUpdate.replayed) yield the same triggers again,
 * with the same ids: the send ledger, keyed by message_id, makes the effect
 * exactly once.
 */
#ifndef PATRON_CAMPAIGN_RULES_H
#define PATRON_CAMPAIGN_RULES_H

#include "patron/campaign.h"
#include "patron/v1/profile.pb-c.h"

enum patron_timer_kind {
    PATRON_TIMER_NONE,       /* fire now: no timer to store */
    PATRON_TIMER_WAIT,       /* event + wait; cancelled by `unless` */
    PATRON_TIMER_INACTIVITY, /* last purchase + inactive_for; replaced by the next purchase */
    PATRON_TIMER_BIRTHDAY,   /* next birthday at `at` local; re-armed after firing */
    PATRON_TIMER_SEGMENT,    /* the next instant recency alone can change the segment
                                (segment_becomes without an event; campaign_engine.h) */
    PATRON_TIMER_CHURN,      /* the instant the churn risk passes a churn_risk_above
                                campaign's threshold if nothing is bought (campaign_engine.h) */
    PATRON_TIMER_KIND_LAST = PATRON_TIMER_CHURN, /* the decoders' bound: a kind added above
                                                    moves it, so no check goes stale */
};

/* A campaign an update triggered. For kind NONE fire_at_ms is the event
 * time; otherwise the shell stores a timer keyed by (customer, campaign),
 * replacing any earlier one of the same campaign for INACTIVITY and
 * BIRTHDAY (a purchase reschedules the win-back). */
struct patron_trigger {
    const struct patron_campaign *campaign;
    enum patron_timer_kind kind;
    int64_t fire_at_ms;
    char trigger_event_id[PATRON_ID_MAX + 1]; /* "" for birthdays */
};

/* Fills out[0..*n_out) with the campaigns `u` triggers, at most `cap`
 * (cs->count always suffices: one trigger per campaign at most), in file
 * order. Erasures trigger nothing. Rules:
 * - event: u->kind is in `when.event`; NONE without `wait`, else WAIT at
 *   occurred_at + wait;
 * - inactive_for: on a purchase, INACTIVITY at last_purchase_ms + inactive_for;
 * - segment_becomes: previous_segment != target and segment == target;
 * - tier_up: tier rank (silver < gold < platinum) rises from a known tier;
 * - birthday: on a customer update with a birthday, BIRTHDAY at its next
 *   occurrence strictly after occurred_at (patron_campaign_birthday_next).
 * PATRON_EINVAL on NULL arguments; a malformed birthday only skips that
 * campaign. */
int patron_campaign_triggers(const struct patron_campaigns *cs, const Patron__V1__ProfileUpdate *u,
                             struct patron_trigger *out, size_t cap, size_t *n_out) PATRON_MUST_USE;

/* The first instant strictly after `after_ms` at which the customer's
 * local clock in `zone` shows `birthday` ("MM-DD") at at_min minutes after
 * midnight. 02-29 falls on 02-28 in common years (the last day of February
 * the customer was born in, as most CRMs and legal ages do). An unknown zone
 * is UTC (tz.h). PATRON_EINVAL for a malformed birthday. */
int patron_campaign_birthday_next(const char *birthday, int at_min, const char *zone,
                                  int64_t after_ms, int64_t *out_ms) PATRON_MUST_USE;

/* True when an event of `kind` at `event_ms` cancels a wait of campaign
 * `c` that fires at fire_at_ms: the kind is in `unless` and the event
 * happened (event time) strictly before the wait ended. */
bool patron_campaign_wait_cancelled(const struct patron_campaign *c, int kind, int64_t event_ms,
                                    int64_t fire_at_ms);

/* True when update `u` revokes consent for campaign `c`'s channel: what was
 * waiting for that channel is then dropped (counted as suppressed:consent). */
bool patron_campaign_consent_revoked(const struct patron_campaign *c,
                                     const Patron__V1__ProfileUpdate *u);

/* What the shell knows about the customer when a campaign fires. */
struct patron_customer_view {
    const char *customer_id;
    const char *segment; /* "" when unknown: matches only an audience of any */
    const char *tier;
    bool consent[PATRON_CAMPAIGN_CHANNELS]; /* indexed by channel; [ANY] unused */
    const char *time_zone;                  /* IANA; unknown -> UTC */
    int cluster;                            /* K-Means cluster id; -1: none (audience.clusters) */
    const char *cluster_label;              /* its label; NULL: none */
};

/* Fills a view from an update (pointers into `u`). */
void patron_customer_view_of(const Patron__V1__ProfileUpdate *u, struct patron_customer_view *v);

#define PATRON_SEND_HISTORY_MAX 256 /* recent sends per customer the shell keeps */

struct patron_send {
    int64_t at_ms;
    enum patron_campaign_channel channel;
};

struct patron_decision_input {
    const struct patron_campaigns *cs;
    const struct patron_campaign *campaign;
    const struct patron_customer_view *customer;
    int64_t now_ms;                  /* when the campaign fires (event clock) */
    const char *trigger_event_id;    /* "" or NULL for timer-only triggers */
    int64_t trigger_at_ms;           /* the original fire time: with the event id, the message id */
    int64_t last_sent_ms;            /* this campaign's last send to this customer; 0: never */
    const struct patron_send *sends; /* the customer's recent sends, any order */
    size_t n_sends;                  /* at most PATRON_SEND_HISTORY_MAX are looked at */
};

enum patron_outcome {
    PATRON_OUTCOME_SENT,
    PATRON_OUTCOME_EXITED, /* from patron_campaign_wait_cancelled, never from decide */
    PATRON_OUTCOME_SUPPRESSED_CONSENT,
    PATRON_OUTCOME_SUPPRESSED_AUDIENCE,
    PATRON_OUTCOME_SUPPRESSED_CONTROL_GROUP,
    PATRON_OUTCOME_SUPPRESSED_COOLDOWN,
    PATRON_OUTCOME_SUPPRESSED_FREQUENCY_CAP,
    PATRON_OUTCOME_DELAYED, /* quiet hours: decide again at send_at_ms */
};
#define PATRON_OUTCOMES 8

/* "sent", "exited", "consent", "audience", "control_group", "cooldown",
 * "frequency_cap", "delayed" (the stats' names). */
const char *patron_outcome_name(enum patron_outcome o);

#define PATRON_MESSAGE_ID_LEN 32 /* hex digits of a 128-bit id */

struct patron_decision {
    enum patron_outcome outcome;
    int64_t send_at_ms; /* SENT: now; DELAYED: end of the quiet window; else 0 */
    const struct patron_campaign_variant *variant; /* NULL when the campaign has none */
    bool control;                                  /* in the global holdout */
    char message_id[PATRON_MESSAGE_ID_LEN + 1];
};

/* The decision, checks in this fixed order, the first failing one wins:
 *   1. consent for the campaign's channel        -> SUPPRESSED_CONSENT
 *   2. audience (segment, tier, cluster)         -> SUPPRESSED_AUDIENCE
 *   3. cooldown since this campaign's last send  -> SUPPRESSED_COOLDOWN
 *   4. frequency caps, per channel and `any`, sliding windows (now - per, now]
 *                                                -> SUPPRESSED_FREQUENCY_CAP
 *   5. quiet hours (campaign's, else defaults')  -> DELAYED until the window's
 *      end in the customer's zone; the shell decides again then, and the
 *      message id does not change.
 *   6. control group (global holdout)            -> SUPPRESSED_CONTROL_GROUP
 *      ("would have been sent": variant and message id are set; the shell
 *      records it in the customer's history like a send)
 *   ignore_caps skips 4 and 5. Otherwise SENT.
 * Why the holdout comes last: a holdout customer must pass every check a
 * treated one does, or caps and cooldowns would thin out only the treated
 * group (the frequent buyers would pile up in the control group) and bias
 * the uplift. The variant and message id are set for every outcome.
 * PATRON_EINVAL on NULL or inconsistent input. */
int patron_campaign_decide(const struct patron_decision_input *in,
                           struct patron_decision *out) PATRON_MUST_USE;

/* Deterministic ids and choices (SipHash-2-4 with fixed keys). */
/* hex of a 128-bit hash of (campaign, customer, trigger event id or, when it
 * is empty, trigger time). */
void patron_campaign_message_id(const char *campaign_id, const char *customer_id,
                                const char *trigger_event_id, int64_t trigger_at_ms,
                                char out[PATRON_MESSAGE_ID_LEN + 1]);
/* hash("control:" + customer id) mod 10000 < control_bp: a global holdout,
 * the same for every campaign. */
bool patron_campaign_in_control(const char *customer_id, uint32_t control_bp);
/* Weighted choice by hash(campaign id, customer id); NULL without variants. */
const struct patron_campaign_variant *patron_campaign_variant_of(const struct patron_campaign *c,
                                                                 const char *customer_id);

/* The next allowed send time: now_ms itself when outside the window `qh`,
 * else the window's end in local time of `zone` (DST included). */
int patron_quiet_hours_next(const struct patron_quiet_hours *qh, const char *zone, int64_t now_ms,
                            int64_t *out_ms) PATRON_MUST_USE;

/* Attribution. A send (or a control group's "would have sent") converts
 * when a purchase happens strictly after it and within the window. Multi-
 * touch choice: last touch per campaign — of each campaign's unconverted
 * sends in the window, only the latest converts, and it is credited with
 * the full purchase value; a send converts at most once (the shell sets
 * `converted`). Different campaigns may all convert on one purchase. */
struct patron_attribution_send {
    int64_t at_ms;
    const char *campaign_id;
    const char *variant; /* "" without variants */
    bool control;
    bool converted;
};

/* Writes to out_idx the indexes of the sends the purchase at purchase_ms
 * converts, at most `cap` (n always suffices). */
int patron_attribution_match(const struct patron_attribution_send *sends, size_t n,
                             int64_t purchase_ms, int64_t window_ms, size_t *out_idx, size_t cap,
                             size_t *n_out) PATRON_MUST_USE;

#endif
