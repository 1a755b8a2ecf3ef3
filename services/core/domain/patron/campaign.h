/*
 * The campaigns (docs/contracts/campaigns.md) as data. The file's parser
 * is patron_campaigns_parse (campaign_yaml.h); it turns the YAML text into
 * a struct patron_campaigns that the caller owns and releases with
 * patron_campaigns_free; it is immutable afterwards, so a reload builds a new one and swaps
 * pointers only on success (a bad reload keeps the running campaigns). Pure: no files, no clock.
 * Every error is PATRON_EINVAL (PATRON_ETOOBIG for a file over PATRON_CAMPAIGNS_FILE_MAX) with
 * "line L, column C: <reason>" in `err`, 1-based, from libyaml's marks. Unknown fields at any level
 * are errors, so that a typo never silently disables a rule.
 *
 * Choices where the format is silent:
 * - control_group_percent may be fractional, with 0.01 % resolution;
 * - attribution_window defaults to 7d; no quiet hours and no caps by default;
 * - `wait` is allowed only with `when: {event: ...}`, `unless` only with
 *   `wait`, `at` only (and always) with `birthday`;
 * - a variant without a template uses the campaign's; the campaign template
 *   may be omitted only when every variant has one;
 * - params keys "points", "tier" and "segment" are reserved for the values
 *   the template module computes.
 */
#ifndef PATRON_CAMPAIGN_H
#define PATRON_CAMPAIGN_H

#include "patron/common.h"
#include "patron/kmeans.h"
#include "patron/rfm.h"

#define PATRON_CAMPAIGNS_FILE_MAX (1024 * 1024) /* bytes of YAML */
#define PATRON_CAMPAIGNS_MAX 1000               /* campaigns per file */
#define PATRON_CAMPAIGN_STRING_MAX 256          /* bytes of any string value */
#define PATRON_CAMPAIGN_ID_MAX 64 /* campaign ids [a-z0-9_-], variant ids [A-Za-z0-9_-] */
#define PATRON_CAMPAIGN_VARIANTS_MAX 16
#define PATRON_CAMPAIGN_PARAMS_MAX 32
#define PATRON_CAMPAIGN_CAPS_MAX 16
#define PATRON_CAMPAIGN_RECOMMENDATIONS_MAX 50
#define PATRON_CAMPAIGN_VARIANT_WEIGHT_MAX 1000000
#define PATRON_CAMPAIGN_ERR_MIN 128 /* an `err` buffer this big holds any reason's start */

/* Values match patron.v1.Channel; ANY (0) only appears in frequency caps. */
enum patron_campaign_channel {
    PATRON_CAMPAIGN_CHANNEL_ANY = 0,
    PATRON_CAMPAIGN_CHANNEL_SMS = 1,
    PATRON_CAMPAIGN_CHANNEL_PUSH = 2,
    PATRON_CAMPAIGN_CHANNEL_EMAIL = 3,
};
#define PATRON_CAMPAIGN_CHANNELS 4

enum patron_campaign_trigger {
    PATRON_CAMPAIGN_WHEN_EVENT,           /* when: {event: kind | [kinds]} */
    PATRON_CAMPAIGN_WHEN_INACTIVE_FOR,    /* when: {inactive_for: duration} */
    PATRON_CAMPAIGN_WHEN_SEGMENT_BECOMES, /* when: {segment_becomes: segment} */
    PATRON_CAMPAIGN_WHEN_TIER_UP,         /* when: {tier_up: true} */
    PATRON_CAMPAIGN_WHEN_BIRTHDAY,        /* when: {birthday: true}, at: "HH:MM" */
    PATRON_CAMPAIGN_WHEN_CHURN_RISK,      /* when: {churn_risk_above: 0.7} */
};

/* Bit (1u << PATRON__V1__EVENT_KIND__X) for each event kind in a set. */
typedef uint32_t patron_event_kinds;

/* A daily window in local time, minutes after midnight; start > end wraps
 * midnight (21:00-09:00). start == end is rejected by the parser. */
struct patron_quiet_hours {
    bool set;
    int start_min;
    int end_min;
};

struct patron_frequency_cap {
    enum patron_campaign_channel channel; /* ANY counts every channel */
    uint32_t max;                         /* sends allowed in any window of per_ms */
    int64_t per_ms;
};

struct patron_campaign_defaults {
    struct patron_quiet_hours quiet_hours;
    struct patron_frequency_cap caps[PATRON_CAMPAIGN_CAPS_MAX];
    size_t n_caps;
    uint32_t control_group_bp; /* control_group_percent in basis points, 0..10000 */
    int64_t attribution_window_ms;
};

struct patron_campaign_variant {
    char id[PATRON_CAMPAIGN_ID_MAX + 1];
    uint32_t weight;                                    /* > 0 */
    char template_name[PATRON_CAMPAIGN_STRING_MAX + 1]; /* "" -> the campaign's */
};

struct patron_campaign_param {
    char key[PATRON_CAMPAIGN_STRING_MAX + 1];
    char value[PATRON_CAMPAIGN_STRING_MAX + 1];
};

/* audience: {clusters: [...]}: K-Means clusters (kmeans.h) by id (bit (1u
 * << id) of ids) or by label (labels[0..n_labels)), a customer matching
 * either is in; a customer without a cluster (no purchase, no clusters
 * fitted) is not. */
struct patron_cluster_audience {
    uint32_t ids;
    char labels[PATRON_CLUSTERS_MAX][PATRON_CLUSTER_LABEL_MAX + 1];
    size_t n_labels;
    size_t n; /* ids and labels listed; 0: no cluster filter */
};

struct patron_campaign {
    char id[PATRON_CAMPAIGN_ID_MAX + 1];
    int line; /* 1-based line of the campaign in the file, for logs */
    enum patron_campaign_trigger when;
    patron_event_kinds events;               /* WHEN_EVENT */
    int64_t inactive_for_ms;                 /* WHEN_INACTIVE_FOR */
    enum patron_segment segment;             /* WHEN_SEGMENT_BECOMES */
    double churn_above;                      /* WHEN_CHURN_RISK: 0 < threshold < 1 */
    int at_min;                              /* WHEN_BIRTHDAY: local minutes after midnight */
    int64_t wait_ms;                         /* 0: fire at once */
    patron_event_kinds unless;               /* cancels a wait */
    uint32_t audience_segments;              /* bit (1u << enum patron_segment); all bits = any */
    uint32_t audience_tiers;                 /* bit (1u << enum patron_tier); all bits = any */
    struct patron_cluster_audience clusters; /* n == 0: any cluster (or none) */
    enum patron_campaign_channel channel;    /* never ANY */
    char template_name[PATRON_CAMPAIGN_STRING_MAX + 1];
    uint32_t recommendations;             /* 0..PATRON_CAMPAIGN_RECOMMENDATIONS_MAX */
    int64_t cooldown_ms;                  /* 0: none */
    bool ignore_caps;                     /* skips frequency caps and quiet hours */
    struct patron_campaign_param *params; /* n_params entries, owned */
    size_t n_params;
    struct patron_campaign_variant variants[PATRON_CAMPAIGN_VARIANTS_MAX];
    size_t n_variants;
    struct patron_quiet_hours quiet_hours; /* .set: overrides the defaults' */
};

#define PATRON_AUDIENCE_ANY_SEGMENT ((1u << PATRON_SEGMENT_COUNT) - 1)
#define PATRON_AUDIENCE_ANY_TIER ((1u << PATRON_TIER_COUNT) - 1)

struct patron_campaigns {
    struct patron_campaign_defaults defaults;
    struct patron_campaign *campaigns; /* in file order, ids unique */
    size_t count;
};

void patron_campaigns_free(struct patron_campaigns *cs);

/* The campaign with this id, or NULL. Linear: a file has at most 1000. */
const struct patron_campaign *patron_campaigns_find(const struct patron_campaigns *cs,
                                                    const char *id);

/* Event kind by its campaigns-file name (view, cart_add, ... consent);
 * returns the PATRON__V1__EVENT_KIND__ value, or 0 when unknown. */
int patron_campaign_event_kind_parse(const char *s);

/* The channels' names, indexed by enum patron_campaign_channel: the one
 * table the campaigns file, the messages and the statistics use. */
extern const char *const patron_campaign_channel_names[PATRON_CAMPAIGN_CHANNELS];
/* Its name, "unknown" out of range. */
const char *patron_campaign_channel_name(enum patron_campaign_channel ch);

#endif
