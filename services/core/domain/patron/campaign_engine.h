/*
 * The campaign engine: one customer's campaign state and what happens to it,
 * pure. patron-trigger loads a customer's state, calls the engine with a
 * profile update (or with "time has reached T"), and stores what comes out:
 * the new state, the messages to send, the counters to add. Everything the
 * trigger decides is decided here, from the state, the update and the
 * campaigns; nothing here reads a clock, a socket or a file.
 *
 * Time is event time (Unix epoch ms). A customer's timers fire in fire-time
 * order, each decided *at its own fire time* (not when the shell got round
 * to it), and every update first fires the timers due at or before its own
 * event time: the outcome for a customer then depends only on the order of
 * that customer's updates, which Kafka keeps, so a replay with the event
 * clock is deterministic (docs/guarantees.md, "Time").
 *
 * Exactly once: an update already applied (its offset, or its event id among
 * the recent ones) changes nothing, and a decision whose message id is in the
 * ledger is not taken again; the shell commits state, counters and outgoing
 * messages in one atomic write, so none of them can happen twice.
 *
 * Ownership: a struct patron_customer_state owns its arrays (free with
 * patron_customer_state_free); a struct patron_engine_out owns its arrays
 * (patron_engine_out_free) and borrows the campaigns its sends point to, which
 * must outlive it. Memory per customer is bounded: at most one timer and one
 * last-send entry per campaign, PATRON_SEND_HISTORY_MAX sends,
 * PATRON_ENGINE_TOUCHES_MAX touches and fixed-size id rings.
 */
#ifndef PATRON_CAMPAIGN_ENGINE_H
#define PATRON_CAMPAIGN_ENGINE_H

#include "patron/campaign_rules.h"
#include "patron/clv.h"
#include "patron/kmeans.h"
#include "patron/profile.h"
#include "patron/tz.h"

#define PATRON_ENGINE_RECENT_EVENTS 32       /* event ids remembered per customer */
#define PATRON_ENGINE_LEDGER_MAX 128         /* decided message ids remembered per customer */
#define PATRON_ENGINE_TOUCHES_MAX 64         /* sends a purchase may still convert */
#define PATRON_ENGINE_STATE_MAX (256 * 1024) /* bytes of an encoded state, at most */

struct patron_engine_timer {
    char campaign_id[PATRON_CAMPAIGN_ID_MAX + 1];
    enum patron_timer_kind kind;
    int64_t fire_at_ms;    /* when to decide; quiet hours move it */
    int64_t trigger_at_ms; /* the original fire time, part of the message id */
    char trigger_event_id[PATRON_ID_MAX + 1];
};

struct patron_engine_last_sent {
    char campaign_id[PATRON_CAMPAIGN_ID_MAX + 1];
    int64_t at_ms;
};

struct patron_engine_touch {
    char campaign_id[PATRON_CAMPAIGN_ID_MAX + 1];
    char variant[PATRON_CAMPAIGN_ID_MAX + 1];
    int64_t at_ms;
    bool control;
    bool converted;
};

/* What the trigger knows of a customer: the latest profile update's view,
 * and the campaign history. */
struct patron_customer_state {
    char customer_id[PATRON_ID_MAX + 1];
    int64_t last_offset; /* highest patron.profile-updates offset applied, -1: none */
    uint64_t recent_events[PATRON_ENGINE_RECENT_EVENTS]; /* most recent first */
    size_t n_recent;
    uint64_t ledger[PATRON_ENGINE_LEDGER_MAX]; /* most recent first */
    size_t n_ledger;

    char segment[32];
    char tier[32];
    bool consent[PATRON_CAMPAIGN_CHANNELS]; /* by channel; [ANY] unused */
    char time_zone[PATRON_TZ_NAME_MAX + 1];
    char locale[PATRON_ID_MAX + 1];
    char birthday[8]; /* "MM-DD" or "" */
    int64_t points, orders, net_spend_cents, last_purchase_ms;
    int64_t first_purchase_ms; /* 0: none, or unknown (an update from before the field) */

    struct patron_engine_timer *timers; /* at most one per campaign */
    size_t n_timers, cap_timers;
    struct patron_send sends[PATRON_SEND_HISTORY_MAX]; /* oldest first */
    size_t n_sends;
    struct patron_engine_last_sent *last_sent; /* one per campaign sent to */
    size_t n_last_sent, cap_last_sent;
    struct patron_engine_touch touches[PATRON_ENGINE_TOUCHES_MAX]; /* oldest first */
    size_t n_touches;
};

/* A fresh state for `customer_id` (cut at PATRON_ID_MAX). */
void patron_customer_state_init(struct patron_customer_state *st, const char *customer_id);
void patron_customer_state_free(struct patron_customer_state *st);

/* The earliest timer's fire time, or INT64_MAX when none is pending. */
int64_t patron_customer_state_next_fire(const struct patron_customer_state *st);

/* The per-campaign counters of the campaign statistics (docs/contracts/api.md). */
enum patron_stat {
    PATRON_STAT_SENT,
    PATRON_STAT_EXITED,
    PATRON_STAT_CONSENT,
    PATRON_STAT_AUDIENCE,
    PATRON_STAT_CONTROL_GROUP, /* the control group's "would have sent" */
    PATRON_STAT_COOLDOWN,
    PATRON_STAT_FREQUENCY_CAP,
    PATRON_STAT_CONVERSIONS,
    PATRON_STAT_REVENUE_CENTS,
    PATRON_STAT_CONTROL_CONVERSIONS,
    PATRON_STAT_CONTROL_REVENUE_CENTS,
};
#define PATRON_STATS 11

/* "sent", "exited", "consent", ... "control_revenue_cents": the names the
 * statistics are stored and served under. */
const char *patron_stat_name(enum patron_stat s);

struct patron_engine_count {
    char campaign_id[PATRON_CAMPAIGN_ID_MAX + 1];
    char variant[PATRON_CAMPAIGN_ID_MAX + 1]; /* "" without variants */
    enum patron_stat stat;
    int64_t delta;
    int64_t at_ms; /* the event time it belongs to: the decision's, or the converting purchase's */
};

/* A decision that sends a message; the shell builds it (template.h) and adds
 * recommendations. */
struct patron_engine_send {
    const struct patron_campaign *campaign;
    struct patron_decision decision; /* variant points into the campaign */
    char trigger_event_id[PATRON_ID_MAX + 1];
    int64_t at_ms; /* the decision's event time: created_at_ms */
};

struct patron_engine_out {
    struct patron_engine_send *sends;
    size_t n_sends, cap_sends;
    struct patron_engine_count *counts;
    size_t n_counts, cap_counts;
    bool duplicate; /* the update had been applied before: nothing changed */
    bool erased;    /* an erasure: the shell deletes the customer's state */
};

void patron_engine_out_reset(struct patron_engine_out *out); /* empties, keeps capacity */
void patron_engine_out_free(struct patron_engine_out *out);

struct patron_engine {
    const struct patron_campaigns *campaigns;    /* borrowed */
    const struct patron_profile_config *profile; /* borrowed: RFM thresholds, churn horizon */
    /* The fitted models (borrowed; the shell reads them from Redis, or a
     * backtest fixes them): churn_risk_above campaigns are dormant without
     * clv, and a cluster audience matches nobody without clusters. Decisions
     * depend on them, so a replay is deterministic only with fixed ones. */
    const struct patron_clv_model *clv;
    const struct patron_clusters *clusters;
};

/* churn_risk_above campaigns fire once per crossing: when the churn risk
 * (patron_clv_churn_risk_at, the profile's churn_risk) goes from at or
 * below the threshold to above it. Time alone raises it: the customer
 * carries a timer at the instant it will cross if nothing is bought
 * (patron_clv_churn_crossing), decided there if the risk is then above
 * (else, the model having moved, armed again at the new crossing). An
 * update that carries it over (a refund, a new model) decides at once.
 * Above, nothing is armed: it re-arms once an update finds the risk at or
 * below the threshold again (a purchase). A customer without a purchase
 * is outside the model (risk 1) and never crosses.
 *
 * Applies one profile update (from partition offset `offset`, -1 when not
 * from Kafka): fires the timers due at or before its event time, then
 * erasure, consent revocations (waiting campaigns of that channel end as
 * suppressed:consent), `unless` exits, purchase attribution, and the
 * campaigns the update triggers (decided at once, or a timer that replaces
 * the campaign's pending one). segment_becomes campaigns also get a timer
 * at the next instant recency alone can change the segment (last purchase
 * + a recency threshold + 1 day): at_risk is reached by time passing, with
 * no event to announce it; it fires when the segment a moment before that
 * instant was not the target and is at it. An IDENTIFY that carries items
 * (the cart a visitor brought to the customer at login) counts as a cart
 * add at the login's time; one without, as a change of the profile only
 * (tier and segment campaigns). Appends to `out` (not reset). PATRON_EINVAL
 * on NULL arguments or an update of another customer. */
int patron_engine_on_update(const struct patron_engine *e, struct patron_customer_state *st,
                            const Patron__V1__ProfileUpdate *u, int64_t offset,
                            struct patron_engine_out *out) PATRON_MUST_USE;

/* Fires every timer due at or before bound_ms, in fire-time order. A timer of
 * a campaign no longer in the file is dropped. */
int patron_engine_fire_due(const struct patron_engine *e, struct patron_customer_state *st,
                           int64_t bound_ms, struct patron_engine_out *out) PATRON_MUST_USE;

#endif
