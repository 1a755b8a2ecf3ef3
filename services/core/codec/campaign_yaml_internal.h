/*
 * Inside the campaigns file's parser (campaign_yaml.c): the parse context and
 * the readers of scalar values (strings, ids, numbers, durations, times,
 * percentages, probabilities, channels and the named sets), shared with
 * campaign_yaml_values.c. Every reader checks the node's type and range and,
 * on failure, writes "line L, column C: reason" through cy_fail and returns
 * PATRON_EINVAL; on success it writes its output only.
 */
#ifndef PATRON_CAMPAIGN_YAML_INTERNAL_H
#define PATRON_CAMPAIGN_YAML_INTERNAL_H

#include <yaml.h>

#include "patron/campaign.h"

#define MS_PER_S 1000LL
/* Longest duration accepted: 100 years, far beyond any campaign's wait. */
#define DURATION_MAX_MS (100LL * 365 * 86400 * MS_PER_S)
#define DEFAULT_ATTRIBUTION_MS (7LL * 86400 * MS_PER_S)

struct pctx {
    yaml_document_t *doc;
    char *err;
    size_t errlen;
};

/* Writes the reason, at node `at`'s line and column, into p->err. */
int cy_fail(struct pctx *p, const yaml_node_t *at, const char *fmt, ...) PATRON_PRINTF(3, 4);
/* "a scalar", "a list", "a mapping" or "nothing". */
const char *cy_node_type_name(const yaml_node_t *n);

/* Scalar text for messages: at most 64 bytes, so that a huge key cannot
 * crowd out the line number. */
#define SHOW(n)                                                                                    \
    (int)((n)->data.scalar.length > 64 ? 64 : (n)->data.scalar.length),                            \
        (const char *)(n)->data.scalar.value

int cy_want_scalar(struct pctx *p, const yaml_node_t *n, const char *what);
/* A plain (unquoted) scalar: numbers and booleans, whose quoting would
 * signal a string where a number was meant. */
int cy_want_plain(struct pctx *p, const yaml_node_t *n, const char *what, const char *kind);
bool cy_scalar_is(const yaml_node_t *n, const char *s);
/* The scalar as a C string into buf[cap]; false when it is not a scalar,
 * is too long or holds a NUL. */
bool cy_scalar_cstr(const yaml_node_t *n, char *buf, size_t cap);

/* Copies a non-empty scalar of at most `max` bytes into dst[max + 1]. */
int cy_get_string(struct pctx *p, const yaml_node_t *n, char *dst, size_t max, const char *what);
/* Campaign ids are lower case; variant ids may be upper case too ("A", "B"). */
int cy_get_id(struct pctx *p, const yaml_node_t *n, char *dst, bool upper, const char *what);
int cy_get_bool(struct pctx *p, const yaml_node_t *n, bool *out, const char *what);
/* Decimal digits only: no sign, no spaces, no hex, at most 9 digits. */
int cy_get_uint(struct pctx *p, const yaml_node_t *n, uint32_t min, uint32_t max, uint32_t *out,
                const char *what);
int cy_get_duration(struct pctx *p, const yaml_node_t *n, int64_t *out, const char *what);
int cy_get_clock(struct pctx *p, const yaml_node_t *n, int *out, const char *what);
/* "5", "5.5", "0.25": at most two decimals, in basis points. */
int cy_get_percent(struct pctx *p, const yaml_node_t *n, uint32_t *out_bp, const char *what);
/* A probability strictly between 0 and 1 written "0." and 1 to 4 decimals
 * ("0.7", "0.125"); exactly the decimal's double. */
int cy_get_probability(struct pctx *p, const yaml_node_t *n, double *out, const char *what);
int cy_get_channel(struct pctx *p, const yaml_node_t *n, bool allow_any,
                   enum patron_campaign_channel *out, const char *what);

/* Resolves one item of a set into a bit of *mask. */
typedef int (*cy_item_fn)(struct pctx *p, const yaml_node_t *n, uint32_t *mask, const char *what);
/* A scalar or a non-empty list of scalars, each resolved by `one`. */
int cy_get_set(struct pctx *p, const yaml_node_t *n, cy_item_fn one, uint32_t *mask,
               const char *what);
int cy_one_event_kind(struct pctx *p, const yaml_node_t *n, uint32_t *mask, const char *what);
/* Names are short; anything longer cannot match and is reported as unknown. */
int cy_one_segment(struct pctx *p, const yaml_node_t *n, uint32_t *mask, const char *what);
int cy_one_tier(struct pctx *p, const yaml_node_t *n, uint32_t *mask, const char *what);
/* audience.clusters: a cluster id (0..PATRON_CLUSTERS_MAX - 1, a plain
 * integer) or a label (a string of 1..PATRON_CLUSTER_LABEL_MAX bytes), or a
 * non-empty list of them; each at most once. */
int cy_get_clusters(struct pctx *p, const yaml_node_t *n, struct patron_cluster_audience *out,
                    const char *what);

#endif
