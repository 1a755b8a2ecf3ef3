/*
 * The campaigns file's scalar values (campaign_yaml_internal.h): each reader
 * checks one node and converts it, or says why not with its line and column.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign_yaml_internal.h"
#include "patron/campaign_yaml.h"
#include "patron/v1/profile.pb-c.h"

int cy_fail(struct pctx *p, const yaml_node_t *at, const char *fmt, ...)
{
    if (p->errlen == 0)
        return PATRON_EINVAL;
    int n = snprintf(p->err, p->errlen, "line %zu, column %zu: ", at->start_mark.line + 1,
                     at->start_mark.column + 1);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return PATRON_EINVAL;
}

const char *cy_node_type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

int cy_want_scalar(struct pctx *p, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE)
        return cy_fail(p, n, "%s must be a scalar, not %s", what, cy_node_type_name(n));
    return 0;
}

/* A plain (unquoted) scalar: numbers and booleans, whose quoting would
 * signal a string where a number was meant. */
int cy_want_plain(struct pctx *p, const yaml_node_t *n, const char *what, const char *kind)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return cy_fail(p, n, "%s must be %s", what, kind);
    return 0;
}

bool cy_scalar_is(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

/* Copies a non-empty scalar of at most `max` bytes into dst[max + 1]. */
int cy_get_string(struct pctx *p, const yaml_node_t *n, char *dst, size_t max, const char *what)
{
    int rc = cy_want_scalar(p, n, what);
    if (rc)
        return rc;
    size_t len = n->data.scalar.length;
    if (len == 0)
        return cy_fail(p, n, "%s must not be empty", what);
    if (len > max)
        return cy_fail(p, n, "%s is longer than %zu bytes", what, max);
    if (memchr(n->data.scalar.value, 0, len) != NULL)
        return cy_fail(p, n, "%s contains a NUL byte", what);
    memcpy(dst, n->data.scalar.value, len);
    dst[len] = 0;
    return 0;
}

static bool cy_valid_id(const char *s, bool upper)
{
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (upper && ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/* Campaign ids are lower case; variant ids may be upper case too ("A", "B"). */
int cy_get_id(struct pctx *p, const yaml_node_t *n, char *dst, bool upper, const char *what)
{
    int rc = cy_get_string(p, n, dst, PATRON_CAMPAIGN_ID_MAX, what);
    if (rc)
        return rc;
    if (!cy_valid_id(dst, upper))
        return cy_fail(p, n, "%s '%s' must match %s{1,64}", what, dst,
                       upper ? "[A-Za-z0-9_-]" : "[a-z0-9_-]");
    return 0;
}

int cy_get_bool(struct pctx *p, const yaml_node_t *n, bool *out, const char *what)
{
    int rc = cy_want_plain(p, n, what, "true or false");
    if (rc)
        return rc;
    if (cy_scalar_is(n, "true"))
        *out = true;
    else if (cy_scalar_is(n, "false"))
        *out = false;
    else
        return cy_fail(p, n, "%s must be true or false, not '%.*s'", what, SHOW(n));
    return 0;
}

/* Decimal digits only: no sign, no spaces, no hex, at most 9 digits. */
int cy_get_uint(struct pctx *p, const yaml_node_t *n, uint32_t min, uint32_t max, uint32_t *out,
                const char *what)
{
    int rc = cy_want_plain(p, n, what, "an integer");
    if (rc)
        return rc;
    size_t len = n->data.scalar.length;
    const unsigned char *s = n->data.scalar.value;
    uint64_t v = 0;
    if (len == 0 || len > 9)
        goto out_bad;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            goto out_bad;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return cy_fail(p, n, "%s must be between %u and %u, not %llu", what, min, max,
                       (unsigned long long)v);
    *out = (uint32_t)v;
    return 0;
out_bad:
    return cy_fail(p, n, "%s must be an integer between %u and %u, not '%.*s'", what, min, max,
                   SHOW(n));
}

int patron_duration_parse(const char *s, int64_t *out_ms)
{
    size_t len = strlen(s);
    if (len < 2 || len > 13)
        return PATRON_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PATRON_EINVAL;
        v = v * 10 + (s[i] - '0'); /* at most 12 digits: no overflow */
    }
    int64_t unit;
    switch (s[len - 1]) {
    case 's':
        unit = MS_PER_S;
        break;
    case 'm':
        unit = 60 * MS_PER_S;
        break;
    case 'h':
        unit = 3600 * MS_PER_S;
        break;
    case 'd':
        unit = 86400 * MS_PER_S;
        break;
    case 'w':
        unit = 7 * 86400 * MS_PER_S;
        break;
    default:
        return PATRON_EINVAL;
    }
    if (v == 0 || v > DURATION_MAX_MS / unit)
        return PATRON_EINVAL;
    *out_ms = v * unit;
    return 0;
}

int cy_get_duration(struct pctx *p, const yaml_node_t *n, int64_t *out, const char *what)
{
    char buf[32];
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length >= sizeof(buf) ||
        memchr(n->data.scalar.value, 0, n->data.scalar.length) != NULL)
        goto out_bad;
    memcpy(buf, n->data.scalar.value, n->data.scalar.length);
    buf[n->data.scalar.length] = 0;
    if (patron_duration_parse(buf, out) == 0)
        return 0;
out_bad:
    if (n->type != YAML_SCALAR_NODE)
        return cy_fail(p, n, "%s must be a duration such as 30s, 15m, 1h, 3d, 2w, not %s", what,
                       cy_node_type_name(n));
    return cy_fail(p, n,
                   "%s must be a positive duration such as 30s, 15m, 1h, 3d, 2w (at most 100 "
                   "years), not '%.*s'",
                   what, SHOW(n));
}

int patron_clock_time_parse(const char *s, int *out_min)
{
    if (strlen(s) != 5 || s[2] != ':')
        return PATRON_EINVAL;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return PATRON_EINVAL;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return PATRON_EINVAL;
    *out_min = h * 60 + m;
    return 0;
}

int cy_get_clock(struct pctx *p, const yaml_node_t *n, int *out, const char *what)
{
    char buf[8];
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.length == 5) {
        memcpy(buf, n->data.scalar.value, 5);
        buf[5] = 0;
        if (patron_clock_time_parse(buf, out) == 0)
            return 0;
    }
    if (n->type != YAML_SCALAR_NODE)
        return cy_fail(p, n, "%s must be a time \"HH:MM\", not %s", what, cy_node_type_name(n));
    return cy_fail(p, n, "%s must be a time \"HH:MM\" (00:00 to 23:59), not '%.*s'", what, SHOW(n));
}

/* "5", "5.5", "0.25": at most two decimals, in basis points. */
int cy_get_percent(struct pctx *p, const yaml_node_t *n, uint32_t *out_bp, const char *what)
{
    int rc = cy_want_plain(p, n, what, "a number from 0 to 100");
    if (rc)
        return rc;
    size_t len = n->data.scalar.length;
    const unsigned char *s = n->data.scalar.value;
    uint32_t whole = 0, frac = 0;
    size_t i = 0, digits = 0, fdigits = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9' && digits < 4; i++, digits++)
        whole = whole * 10 + (uint32_t)(s[i] - '0');
    if (digits == 0)
        goto out_bad;
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9' && fdigits < 2; i++, fdigits++)
            frac = frac * 10 + (uint32_t)(s[i] - '0');
        if (fdigits == 0)
            goto out_bad;
        if (fdigits == 1)
            frac *= 10;
    }
    if (i != len)
        goto out_bad;
    uint32_t bp = whole * 100 + frac;
    if (bp > 10000)
        goto out_bad;
    *out_bp = bp;
    return 0;
out_bad:
    return cy_fail(p, n, "%s must be a number from 0 to 100 with at most two decimals, not '%.*s'",
                   what, SHOW(n));
}

int cy_get_channel(struct pctx *p, const yaml_node_t *n, bool allow_any,
                   enum patron_campaign_channel *out, const char *what)
{
    int rc = cy_want_scalar(p, n, what);
    if (rc)
        return rc;
    for (int i = allow_any ? 0 : 1; i < PATRON_CAMPAIGN_CHANNELS; i++) {
        if (cy_scalar_is(n, patron_campaign_channel_names[i])) {
            *out = (enum patron_campaign_channel)i;
            return 0;
        }
    }
    return cy_fail(p, n, "%s must be one of %ssms, push, email, not '%.*s'", what,
                   allow_any ? "any, " : "", SHOW(n));
}

/* A scalar or a non-empty list of scalars, each resolved by `one`. */
int cy_get_set(struct pctx *p, const yaml_node_t *n, cy_item_fn one, uint32_t *mask,
               const char *what)
{
    *mask = 0;
    if (n->type == YAML_SCALAR_NODE)
        return one(p, n, mask, what);
    if (n->type != YAML_SEQUENCE_NODE)
        return cy_fail(p, n, "%s must be a name or a list of names, not %s", what,
                       cy_node_type_name(n));
    yaml_node_item_t *it = n->data.sequence.items.start;
    if (it == n->data.sequence.items.top)
        return cy_fail(p, n, "%s must not be an empty list", what);
    for (; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *item = yaml_document_get_node(p->doc, *it);
        int rc = one(p, item, mask, what);
        if (rc)
            return rc;
    }
    return 0;
}

bool cy_scalar_cstr(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length >= cap ||
        memchr(n->data.scalar.value, 0, n->data.scalar.length) != NULL)
        return false;
    memcpy(buf, n->data.scalar.value, n->data.scalar.length);
    buf[n->data.scalar.length] = 0;
    return true;
}

int cy_one_event_kind(struct pctx *p, const yaml_node_t *n, uint32_t *mask, const char *what)
{
    int rc = cy_want_scalar(p, n, what);
    if (rc)
        return rc;
    char name[16];
    int kind = cy_scalar_cstr(n, name, sizeof(name)) ? patron_campaign_event_kind_parse(name) : 0;
    if (kind) {
        uint32_t bit = 1u << kind;
        if (*mask & bit)
            return cy_fail(p, n, "%s lists '%s' twice", what, name);
        *mask |= bit;
        return 0;
    }
    return cy_fail(p, n,
                   "%s: unknown event kind '%.*s' (view, cart_add, cart_remove, purchase, refund, "
                   "review, customer, consent)",
                   what, SHOW(n));
}

/* Names are short; anything longer cannot match and is reported as unknown. */
int cy_one_segment(struct pctx *p, const yaml_node_t *n, uint32_t *mask, const char *what)
{
    int rc = cy_want_scalar(p, n, what);
    if (rc)
        return rc;
    char buf[32];
    enum patron_segment seg;
    if (cy_scalar_is(n, "any")) {
        *mask |= PATRON_AUDIENCE_ANY_SEGMENT;
        return 0;
    }
    if (!cy_scalar_cstr(n, buf, sizeof(buf)) || patron_segment_parse(buf, &seg) != 0)
        return cy_fail(p, n,
                       "%s: unknown segment '%.*s' (new, champion, loyal, at_risk, promising, "
                       "hibernating, lost, needs_attention, any)",
                       what, SHOW(n));
    *mask |= 1u << seg;
    return 0;
}

int cy_one_tier(struct pctx *p, const yaml_node_t *n, uint32_t *mask, const char *what)
{
    int rc = cy_want_scalar(p, n, what);
    if (rc)
        return rc;
    char buf[32];
    enum patron_tier tier;
    if (cy_scalar_is(n, "any")) {
        *mask |= PATRON_AUDIENCE_ANY_TIER;
        return 0;
    }
    if (!cy_scalar_cstr(n, buf, sizeof(buf)) || patron_tier_parse(buf, &tier) != 0)
        return cy_fail(p, n, "%s: unknown tier '%.*s' (silver, gold, platinum, any)", what,
                       SHOW(n));
    *mask |= 1u << tier;
    return 0;
}

int cy_get_probability(struct pctx *p, const yaml_node_t *n, double *out, const char *what)
{
    int rc = cy_want_plain(p, n, what, "a number between 0 and 1");
    if (rc)
        return rc;
    size_t len = n->data.scalar.length;
    const unsigned char *s = n->data.scalar.value;
    uint32_t frac = 0, scale = 1;
    if (len < 3 || len > 6 || s[0] != '0' || s[1] != '.')
        goto out_bad;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            goto out_bad;
        frac = frac * 10 + (uint32_t)(s[i] - '0');
        scale *= 10;
    }
    if (frac == 0)
        goto out_bad;
    *out = (double)frac / (double)scale;
    return 0;
out_bad:
    return cy_fail(p, n,
                   "%s must be a number strictly between 0 and 1 with at most four decimals "
                   "(0.7), not '%.*s'",
                   what, SHOW(n));
}

/* One id or label of audience.clusters. */
static int one_cluster(struct pctx *p, const yaml_node_t *n, struct patron_cluster_audience *out,
                       const char *what)
{
    int rc = cy_want_scalar(p, n, what);
    if (rc)
        return rc;
    size_t len = n->data.scalar.length;
    const unsigned char *s = n->data.scalar.value;
    bool digits = len > 0 && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    for (size_t i = 0; digits && i < len; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    if (digits) {
        if (len > 2 || (len == 2 && s[0] == '0') ||
            (len == 2 ? (s[0] - '0') * 10 + (s[1] - '0') : s[0] - '0') >= PATRON_CLUSTERS_MAX)
            return cy_fail(p, n, "%s: a cluster id is 0 to %d, not '%.*s'", what,
                           PATRON_CLUSTERS_MAX - 1, SHOW(n));
        int id = len == 2 ? (s[0] - '0') * 10 + (s[1] - '0') : s[0] - '0';
        if (out->ids & (1u << id))
            return cy_fail(p, n, "%s lists cluster %d twice", what, id);
        out->ids |= 1u << id;
        out->n++;
        return 0;
    }
    char label[PATRON_CLUSTER_LABEL_MAX + 1];
    if ((rc = cy_get_string(p, n, label, PATRON_CLUSTER_LABEL_MAX, what)) != 0)
        return rc;
    for (size_t i = 0; i < out->n_labels; i++)
        if (strcmp(out->labels[i], label) == 0)
            return cy_fail(p, n, "%s lists '%s' twice", what, label);
    if (out->n_labels == PATRON_CLUSTERS_MAX)
        return cy_fail(p, n, "%s lists more than %d labels", what, PATRON_CLUSTERS_MAX);
    memcpy(out->labels[out->n_labels++], label, sizeof(label));
    out->n++;
    return 0;
}

int cy_get_clusters(struct pctx *p, const yaml_node_t *n, struct patron_cluster_audience *out,
                    const char *what)
{
    memset(out, 0, sizeof(*out));
    if (n->type == YAML_SCALAR_NODE)
        return one_cluster(p, n, out, what);
    if (n->type != YAML_SEQUENCE_NODE)
        return cy_fail(p, n, "%s must be a cluster id or label, or a list of them, not %s", what,
                       cy_node_type_name(n));
    yaml_node_item_t *it = n->data.sequence.items.start;
    if (it == n->data.sequence.items.top)
        return cy_fail(p, n, "%s must not be an empty list", what);
    for (; it < n->data.sequence.items.top; it++) {
        int rc = one_cluster(p, yaml_document_get_node(p->doc, *it), out, what);
        if (rc)
            return rc;
    }
    return 0;
}
