#include "patron/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "patron/log.h"
#include "patron/model_codec.h"
#include "patron/num.h"

extern char **environ;

#define RDKAFKA_PREFIX "PATRON_RDKAFKA_"
#define TOPIC_MAX 249 /* Kafka's limit on topic names */
#define ECHO_MAX 64   /* bytes of a bad value quoted back in the error */

struct var;
/* Parses `value` (set, non-empty, at most PATRON_CONFIG_VALUE_MAX bytes) into
 * the field of cfg the var names; on failure writes the reason into why. */
typedef int (*parse_fn)(struct patron_config *cfg, const struct var *v, const char *value,
                        char *why, size_t whylen);

struct var {
    const char *name;
    const char *def; /* NULL: no default, the field keeps what it has */
    parse_fn parse;
    size_t offset;       /* of the field in struct patron_config */
    int64_t min, max;    /* of the value, or of each element of a list */
    bool secret;         /* never quoted back in an error */
    bool empty_is_value; /* "" is parsed (and refused), not taken as unset */
};

static int parse_string(struct patron_config *cfg, const struct var *v, const char *value,
                        char *why, size_t whylen);
static int parse_token(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen);
static int parse_topic(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen);
static int parse_int(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                     size_t whylen);
static int parse_clock(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen);
static int parse_log_level(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen);
static int parse_http_addr(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen);
static int parse_group_id(struct patron_config *cfg, const struct var *v, const char *value,
                          char *why, size_t whylen);
static int parse_redis_url(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen);
static int parse_redis_cluster(struct patron_config *cfg, const struct var *v, const char *value,
                               char *why, size_t whylen);
static int parse_int64(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen);
static int parse_rfm_up(struct patron_config *cfg, const struct var *v, const char *value,
                        char *why, size_t whylen);
static int parse_rfm_down(struct patron_config *cfg, const struct var *v, const char *value,
                          char *why, size_t whylen);
static int parse_tiers(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen);
static int parse_clv_model(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen);
static int parse_clusters_model(struct patron_config *cfg, const struct var *v, const char *value,
                                char *why, size_t whylen);

#define FIELD(f) offsetof(struct patron_config, f)

/* Every variable, its default and its parser. The Redis pair comes first: the
 * loader picks one of them before walking the rest (see load_redis). */
static const struct var VARS[] = {
    {"PATRON_REDIS_URL", "redis://127.0.0.1:6379", parse_redis_url, 0, 0, 0, true},
    {"PATRON_REDIS_CLUSTER", NULL, parse_redis_cluster, 0, 0, 0, false},
    {"PATRON_KAFKA_BROKERS", "127.0.0.1:9092", parse_string, FIELD(kafka_brokers), 0, 0, false},
    {"PATRON_HTTP_ADDR", "0.0.0.0:8080", parse_http_addr, 0, 0, 0, false},
    {"PATRON_CAMPAIGNS", NULL, parse_string, FIELD(campaigns_path), 0, 0, false},
    {"PATRON_CLOCK", "wall", parse_clock, 0, 0, 0, false},
    {"PATRON_LOG_LEVEL", "info", parse_log_level, 0, 0, 0, false},
    {"PATRON_GROUP_ID", NULL, parse_group_id, FIELD(group_id), 0, 0, false},
    {"PATRON_TOPIC_EVENTS", "patron.events", parse_topic, FIELD(topic_events), 0, 0, false},
    {"PATRON_TOPIC_CATALOG", "patron.catalog", parse_topic, FIELD(topic_catalog), 0, 0, false},
    {"PATRON_TOPIC_PROFILE_UPDATES", "patron.profile-updates", parse_topic,
     FIELD(topic_profile_updates), 0, 0, false},
    {"PATRON_TOPIC_DLQ", "patron.dlq", parse_topic, FIELD(topic_dlq), 0, 0, false},
    {"PATRON_TOPIC_CAMPAIGN_PREFIX", "patron.campaign.", parse_topic, FIELD(topic_campaign_prefix),
     0, 0, false},
    {"PATRON_API_TOKEN", NULL, parse_token, FIELD(api_token), PATRON_CONFIG_TOKEN_MIN,
     PATRON_CONFIG_VALUE_MAX, true, true},
    {"PATRON_REDIS_TIMEOUT_MS", NULL, parse_int, FIELD(redis_timeout_ms), 50, 60000, false},
    {"PATRON_BATCH_MAX", "5000", parse_int, FIELD(batch_max), 1, 100000, false},
    {"PATRON_HTTP_WORKERS", "1", parse_int, FIELD(http_workers), 1, 64, false},
    {"PATRON_INFLIGHT_BATCHES", "16", parse_int, FIELD(inflight_batches), 1, 64, false},
    /* Memory of ingest's batches (docs/operations.md, "Memory"): 1 MiB .. 1 GiB, 4 GiB */
    {"PATRON_BATCH_MAX_BYTES", "16777216", parse_int64, FIELD(batch_max_bytes), 1048576,
     INT64_C(1073741824), false},
    {"PATRON_INFLIGHT_MAX_BYTES", "67108864", parse_int64, FIELD(inflight_max_bytes), 1048576,
     INT64_C(4294967296), false},
    {"PATRON_GRAPH_HISTORY", "16", parse_int, FIELD(graph_history), 0, 64, false},
    {"PATRON_GRAPH_TOPK", "100", parse_int, FIELD(graph_topk), 1, 1000, false},
    {"PATRON_RECO_CACHE_ITEMS", "65536", parse_int, FIELD(reco_cache_items), 1024, 16777216, false},
    {"PATRON_RECO_MOMENTUM", "1", parse_int, FIELD(reco_momentum), 0, 4, false},
    {"PATRON_RECO_LIST_MAX_AGE_MS", "60000", parse_int, FIELD(reco_list_max_age_ms), 100, 3600000,
     false},
    {"PATRON_RECO_MAX_AGE_MS", "5000", parse_int, FIELD(reco_max_age_ms), 100, 600000, false},
    {"PATRON_SHUTDOWN_TIMEOUT_MS", "10000", parse_int, FIELD(shutdown_timeout_ms), 0, 3600000,
     false},
    {"PATRON_FAULT_CRASH_AFTER_VISITOR_WRITES", "0", parse_int,
     FIELD(fault_crash_after_visitor_writes), 0, 1000000, false},
    /* Profile thresholds: the defaults are patron_profile_config_default's. */
    {"PATRON_RFM_RECENCY_DAYS", NULL, parse_rfm_up, FIELD(profile.rfm_recency_days), 0, 36500,
     false},
    {"PATRON_RFM_FREQUENCY", NULL, parse_rfm_down, FIELD(profile.rfm_frequency), 1, 1000000000,
     false},
    {"PATRON_RFM_MONETARY_CENTS", NULL, parse_rfm_down, FIELD(profile.rfm_monetary_cents), 1,
     INT64_C(1000000000000000), false},
    {"PATRON_TIER_CENTS", NULL, parse_tiers, 0, 1, INT64_C(1000000000000000), false},
    {"PATRON_POINTS_PER_REVIEW", NULL, parse_int64, FIELD(profile.points_per_review), 0, 1000000,
     false},
    /* How long a view or cart change is remembered against resends: 1 min .. 30 days */
    {"PATRON_DEDUPE_WINDOW_MS", NULL, parse_int64, FIELD(profile.dedupe_window_ms), 60000,
     INT64_C(2592000000), false},
    /* churn_risk's horizon: 1 day .. 10 years */
    {"PATRON_CHURN_HORIZON_DAYS", NULL, parse_int64, FIELD(profile.churn_horizon_days), 1, 3650,
     false},
    {"PATRON_CLV_MODEL", NULL, parse_clv_model, 0, 0, 0, false},
    {"PATRON_CLUSTERS_K", NULL, parse_int, FIELD(clusters_k), 2, 16, false},
    {"PATRON_CLUSTERS_MODEL", NULL, parse_clusters_model, 0, 0, 0, false},
    {"PATRON_DASHBOARD_REFRESH_MS", "30000", parse_int, FIELD(dashboard_refresh_ms), 1000, 3600000,
     false},
};

#define VAR_REDIS_URL (&VARS[0])
#define VAR_REDIS_CLUSTER (&VARS[1])

static void why_set(char *why, size_t whylen, const char *fmt, ...) PATRON_PRINTF(3, 4);
static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* ---- field parsers ---------------------------------------------------------- */

static char **str_field(struct patron_config *cfg, const struct var *v)
{
    return (char **)((char *)cfg + v->offset);
}

static int parse_string(struct patron_config *cfg, const struct var *v, const char *value,
                        char *why, size_t whylen)
{
    (void)why;
    (void)whylen;
    *str_field(cfg, v) = patron_strdup(value);
    return 0;
}

/* Fails closed: a token that is there but empty or short (a blank Secret,
 * a placeholder) must not run the API open or guessable. Whitespace and
 * control characters could never match a header (a newline from a file). */
static int parse_token(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen)
{
    size_t n = strlen(value);
    if (n == 0) {
        why_set(why, whylen,
                "empty: set a token of at least %lld bytes, or leave the variable unset to run "
                "without authentication",
                (long long)v->min);
        return PATRON_EINVAL;
    }
    if ((int64_t)n < v->min) {
        why_set(why, whylen,
                "too short: a token needs at least %lld bytes (e.g. openssl rand -hex 32), or "
                "leave the variable unset to run without authentication",
                (long long)v->min);
        return PATRON_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x21 || c > 0x7e) {
            why_set(why, whylen,
                    "byte %zu is not printable ASCII (spaces, control characters and a trailing "
                    "newline are refused)",
                    i + 1);
            return PATRON_EINVAL;
        }
    }
    *str_field(cfg, v) = patron_strdup(value);
    return 0;
}

static int parse_topic(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen)
{
    size_t len = strlen(value);
    if (len > TOPIC_MAX) {
        why_set(why, whylen, "a topic name has at most %d characters", TOPIC_MAX);
        return PATRON_EINVAL;
    }
    for (const char *p = value; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            why_set(why, whylen, "a topic name has only letters, digits, '.', '_' and '-'");
            return PATRON_EINVAL;
        }
    }
    *str_field(cfg, v) = patron_strdup(value);
    return 0;
}

/* An integer within [v->min, v->max], or the message that says so. */
static int int_value(const struct var *v, const char *value, int64_t *n, char *why, size_t whylen)
{
    if (patron_parse_i64_str(value, v->min, v->max, n) == 0)
        return 0;
    why_set(why, whylen, "must be an integer in %lld..%lld", (long long)v->min, (long long)v->max);
    return PATRON_EINVAL;
}

static int parse_int(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                     size_t whylen)
{
    int64_t n;
    if (int_value(v, value, &n, why, whylen))
        return PATRON_EINVAL;
    *(int *)((char *)cfg + v->offset) = (int)n;
    return 0;
}

static int parse_clv_model(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen)
{
    (void)v;
    if (patron_clv_model_parse(value, &cfg->clv_override, why, whylen) != 0)
        return PATRON_EINVAL;
    cfg->has_clv_override = true;
    return 0;
}

static int parse_clusters_model(struct patron_config *cfg, const struct var *v, const char *value,
                                char *why, size_t whylen)
{
    (void)v;
    if (patron_clusters_decode(value, strlen(value), &cfg->clusters_override) != 0) {
        why_set(why, whylen, "must be the JSON of {model}:clusters (version %d)",
                PATRON_CLUSTERS_VERSION);
        return PATRON_EINVAL;
    }
    cfg->has_clusters_override = true;
    return 0;
}

static int parse_int64(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen)
{
    return int_value(v, value, (int64_t *)((char *)cfg + v->offset), why, whylen);
}

/* Exactly `count` comma-separated integers within [v->min, v->max], strictly
 * increasing (order > 0) or decreasing (order < 0). */
static int list_parse(const struct var *v, const char *value, int64_t *out, size_t count, int order,
                      char *why, size_t whylen)
{
    const char *p = value;
    for (size_t i = 0; i < count; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool last = i + 1 == count;
        bool ok = last == !end && patron_parse_i64(p, len, v->min, v->max, &out[i]) == 0;
        if (!ok) {
            why_set(why, whylen, "must be %zu comma-separated integers in %lld..%lld", count,
                    (long long)v->min, (long long)v->max);
            return PATRON_EINVAL;
        }
        if (i > 0 && (order > 0 ? out[i] <= out[i - 1] : out[i] >= out[i - 1])) {
            why_set(why, whylen, "values must be strictly %s",
                    order > 0 ? "increasing" : "decreasing");
            return PATRON_EINVAL;
        }
        p = end ? end + 1 : p + len;
    }
    return 0;
}

static int parse_rfm(struct patron_config *cfg, const struct var *v, const char *value, int order,
                     char *why, size_t whylen)
{
    int64_t vals[4];
    if (list_parse(v, value, vals, 4, order, why, whylen) != 0)
        return PATRON_EINVAL;
    memcpy((char *)cfg + v->offset, vals, sizeof(vals));
    return 0;
}

/* Recency in days: the best score has the smallest threshold. */
static int parse_rfm_up(struct patron_config *cfg, const struct var *v, const char *value,
                        char *why, size_t whylen)
{
    return parse_rfm(cfg, v, value, 1, why, whylen);
}

/* Frequency and monetary: the best score has the largest threshold. */
static int parse_rfm_down(struct patron_config *cfg, const struct var *v, const char *value,
                          char *why, size_t whylen)
{
    return parse_rfm(cfg, v, value, -1, why, whylen);
}

static int parse_tiers(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen)
{
    int64_t vals[2];
    if (list_parse(v, value, vals, 2, 1, why, whylen) != 0)
        return PATRON_EINVAL;
    cfg->profile.tier_gold_cents = vals[0];
    cfg->profile.tier_platinum_cents = vals[1];
    return 0;
}

static int parse_clock(struct patron_config *cfg, const struct var *v, const char *value, char *why,
                       size_t whylen)
{
    (void)v;
    if (patron_clock_kind_parse(value, &cfg->clock) != 0) {
        why_set(why, whylen, "must be wall or event");
        return PATRON_EINVAL;
    }
    return 0;
}

static int parse_log_level(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen)
{
    (void)v;
    if (patron_log_level_parse(value, &cfg->log_level) != 0) {
        why_set(why, whylen, "must be debug, info, warn or error");
        return PATRON_EINVAL;
    }
    return 0;
}

static int parse_group_id(struct patron_config *cfg, const struct var *v, const char *value,
                          char *why, size_t whylen)
{
    if (strlen(value) > 255) {
        why_set(why, whylen, "a group id has at most 255 characters");
        return PATRON_EINVAL;
    }
    return parse_string(cfg, v, value, why, whylen);
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* The host and port of "host:port" / "[v6]:port" / "host" in s[0..len).
 * default_port < 0: the port is required. Ports within [min_port, 65535]. */
static int split_hostport(const char *s, size_t len, char *host, size_t hostcap, int *port,
                          int default_port, int min_port)
{
    const char *h = s, *colon;
    size_t hlen;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return PATRON_EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        for (size_t i = 0; i < hlen; i++)
            if (!(host_char_ok(h[i]) || h[i] == ':'))
                return PATRON_EINVAL;
        colon = close + 1 < s + len ? close + 1 : NULL;
        if (colon && *colon != ':')
            return PATRON_EINVAL;
        if (hlen == 0)
            return PATRON_EINVAL;
    } else {
        colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
        for (size_t i = 0; i < hlen; i++)
            if (!host_char_ok(h[i]))
                return PATRON_EINVAL;
    }
    if (hlen > PATRON_CONFIG_HOST_MAX || hlen + 1 > hostcap)
        return PATRON_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (!colon) {
        if (default_port < 0)
            return PATRON_EINVAL;
        *port = default_port;
        return 0;
    }
    size_t plen = (size_t)(s + len - (colon + 1));
    char digits[8];
    if (plen == 0 || plen >= sizeof(digits))
        return PATRON_EINVAL;
    memcpy(digits, colon + 1, plen);
    digits[plen] = '\0';
    if (digits[0] == '-')
        return PATRON_EINVAL;
    int64_t p;
    if (patron_parse_i64_str(digits, min_port, 65535, &p) != 0)
        return PATRON_EINVAL;
    *port = (int)p;
    return 0;
}

int patron_config_parse_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    int rc = split_hostport(s, strlen(s), host, hostcap, port, -1, 0);
    if (rc != 0)
        return rc;
    if (host[0] == '\0') {
        if (hostcap < sizeof("0.0.0.0"))
            return PATRON_EINVAL;
        memcpy(host, "0.0.0.0", sizeof("0.0.0.0"));
    }
    return 0;
}

static int parse_http_addr(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen)
{
    (void)v;
    char host[PATRON_CONFIG_HOST_MAX + 1];
    int port;
    if (patron_config_parse_hostport(value, host, sizeof(host), &port) != 0) {
        why_set(why, whylen, "must be host:port with a port in 0..65535");
        return PATRON_EINVAL;
    }
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
        why_set(why, whylen, "the host must be an IP address (0.0.0.0 for every interface)");
        return PATRON_EINVAL;
    }
    cfg->http_addr = patron_strdup(value);
    cfg->http.host = patron_strdup(host);
    cfg->http.port = port;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a new string; NULL on a bad escape or %00. */
static char *percent_decode(const char *s, size_t len)
{
    char *out = patron_malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

int patron_config_parse_redis_url(const char *url, struct patron_endpoint *ep, char **user,
                                  char **password, int *db, char *why, size_t whylen)
{
    static const char scheme[] = "redis://";
    const size_t scheme_len = sizeof(scheme) - 1;
    char *u = NULL, *pw = NULL;
    *user = *password = NULL;
    ep->host = NULL;
    if (strncasecmp(url, "rediss://", 9) == 0) {
        why_set(why, whylen, "TLS (rediss://) is not supported");
        return PATRON_EINVAL;
    }
    if (strncasecmp(url, scheme, scheme_len) != 0) {
        why_set(why, whylen, "must be redis://[user:password@]host[:port][/db]");
        return PATRON_EINVAL;
    }
    const char *auth = url + scheme_len;
    const char *path = strchr(auth, '/');
    const char *auth_end = path ? path : auth + strlen(auth);
    if (memchr(auth, '?', (size_t)(auth_end - auth)) || (path && strchr(path, '?'))) {
        why_set(why, whylen, "URL options (?...) are not supported");
        return PATRON_EINVAL;
    }
    /* userinfo ends at the last '@' of the authority: a password may hold '@'
     * only percent-encoded, but be lenient with what is unambiguous. */
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p;
    const char *hostport = auth;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (!colon) {
            why_set(why, whylen, "credentials must be user:password@ or :password@");
            return PATRON_EINVAL;
        }
        if (colon > auth) {
            u = percent_decode(auth, (size_t)(colon - auth));
            if (!u)
                goto out_bad_escape;
        }
        pw = percent_decode(colon + 1, (size_t)(at - colon - 1));
        if (!pw)
            goto out_bad_escape;
        if (pw[0] == '\0') {
            free(pw);
            pw = NULL;
        }
        hostport = at + 1;
    }
    char host[PATRON_CONFIG_HOST_MAX + 1];
    int port;
    if (split_hostport(hostport, (size_t)(auth_end - hostport), host, sizeof(host), &port, 6379,
                       1) != 0 ||
        host[0] == '\0') {
        why_set(why, whylen, "the host must be host[:port] with a port in 1..65535");
        goto out_free_creds;
    }
    int64_t n = 0;
    if (path && path[1] != '\0' && patron_parse_i64_str(path + 1, 0, 1000000, &n) != 0) {
        why_set(why, whylen, "the database must be a number, e.g. redis://host:6379/0");
        goto out_free_creds;
    }
    ep->host = patron_strdup(host);
    ep->port = port;
    *db = (int)n;
    *user = u;
    *password = pw;
    return 0;

out_bad_escape:
    why_set(why, whylen, "bad percent-escape in the credentials");
out_free_creds:
    free(u);
    free(pw);
    return PATRON_EINVAL;
}

static int parse_redis_url(struct patron_config *cfg, const struct var *v, const char *value,
                           char *why, size_t whylen)
{
    (void)v;
    return patron_config_parse_redis_url(value, &cfg->redis, &cfg->redis_user, &cfg->redis_password,
                                         &cfg->redis_db, why, whylen);
}

static int parse_redis_cluster(struct patron_config *cfg, const struct var *v, const char *value,
                               char *why, size_t whylen)
{
    (void)v;
    /* "[user:password@]host:port,...": one set of credentials for every node
     * (AUTH user password, or AUTH password when user is empty). */
    const char *at = strchr(value, '@');
    if (at) {
        const char *colon = memchr(value, ':', (size_t)(at - value));
        if (!colon || colon == at - 1 || memchr(at + 1, '@', strlen(at + 1))) {
            why_set(why, whylen, "credentials must be user:password@ (user may be empty)");
            return PATRON_EINVAL;
        }
        cfg->redis_user = colon > value ? patron_strndup(value, (size_t)(colon - value)) : NULL;
        cfg->redis_password = patron_strndup(colon + 1, (size_t)(at - colon - 1));
        value = at + 1;
    }
    size_t n = 1;
    for (const char *p = value; *p; p++)
        n += *p == ',';
    if (n > PATRON_CONFIG_CLUSTER_MAX) {
        why_set(why, whylen, "at most %d nodes", PATRON_CONFIG_CLUSTER_MAX);
        return PATRON_EINVAL;
    }
    cfg->redis_cluster = patron_calloc(n, sizeof(*cfg->redis_cluster));
    const char *p = value;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char host[PATRON_CONFIG_HOST_MAX + 1];
        int port;
        if (split_hostport(p, len, host, sizeof(host), &port, -1, 1) != 0 || host[0] == '\0') {
            why_set(why, whylen, "node %zu: must be host:port with a port in 1..65535", i + 1);
            return PATRON_EINVAL; /* the caller frees what is already there */
        }
        cfg->redis_cluster[i].host = patron_strdup(host);
        cfg->redis_cluster[i].port = port;
        cfg->n_redis_cluster = i + 1;
        p = end ? end + 1 : p + len;
    }
    return 0;
}

/* ---- the loader ------------------------------------------------------------- */

static const char *envp_lookup(char *const *envp, const char *name)
{
    if (!envp)
        return NULL;
    size_t n = strlen(name);
    for (char *const *e = envp; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

struct env {
    const char *(*get)(void *ud, const char *name);
    void *ud;
    char *const *envp;
};

static const char *env_raw(const struct env *env, const char *name)
{
    return env->get ? env->get(env->ud, name) : envp_lookup(env->envp, name);
}

static const char *env_get(const struct env *env, const char *name)
{
    const char *v = env_raw(env, name);
    return v && v[0] ? v : NULL; /* empty counts as unset */
}

static void fail(char *err, size_t errlen, const char *name, const char *why, const char *value)
{
    if (!err || errlen == 0)
        return;
    if (!value) {
        (void)snprintf(err, errlen, "%s: %s", name, why);
        return;
    }
    char echo[ECHO_MAX + 4];
    size_t i = 0;
    for (; value[i] && i < ECHO_MAX; i++) {
        unsigned char c = (unsigned char)value[i];
        echo[i] = c < 0x20 || c >= 0x7f || c == '"' ? '?' : (char)c;
    }
    if (value[i]) {
        memcpy(echo + i, "...", 3);
        i += 3;
    }
    echo[i] = '\0';
    (void)snprintf(err, errlen, "%s: %s (got \"%s\")", name, why, echo);
}

static int apply_var(struct patron_config *cfg, const struct var *v, const char *value, char *err,
                     size_t errlen)
{
    char why[256] = "";
    if (strlen(value) > PATRON_CONFIG_VALUE_MAX) {
        fail(err, errlen, v->name, "value too long", NULL);
        return PATRON_EINVAL;
    }
    if (v->parse(cfg, v, value, why, sizeof(why)) != 0) {
        fail(err, errlen, v->name, why, v->secret ? NULL : value);
        return PATRON_EINVAL;
    }
    return 0;
}

static bool known_var(const char *name, size_t len)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(VARS); i++)
        if (strlen(VARS[i].name) == len && strncmp(VARS[i].name, name, len) == 0)
            return true;
    return false;
}

/* PATRON_RDKAFKA_SSL_CA_LOCATION -> "ssl.ca.location"; "__" -> "_". */
static int rdkafka_key(const char *name, size_t len, char *key, size_t keycap)
{
    size_t o = 0;
    if (len == 0)
        return PATRON_EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (o + 1 >= keycap)
            return PATRON_EINVAL;
        if (c == '_' && i + 1 < len && name[i + 1] == '_') {
            key[o++] = '_';
            i++;
        } else if (c == '_') {
            key[o++] = '.';
        } else if (c >= 'A' && c <= 'Z') {
            key[o++] = (char)(c - 'A' + 'a');
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            key[o++] = c;
        } else {
            return PATRON_EINVAL;
        }
    }
    key[o] = '\0';
    if (strchr("._", key[0]) || strchr("._", key[o - 1]) || strstr(key, ".."))
        return PATRON_EINVAL;
    return 0;
}

static int scan_envp(struct patron_config *cfg, char *const *envp, char *err, size_t errlen)
{
    const size_t prefix_len = sizeof(RDKAFKA_PREFIX) - 1;
    size_t cap_props = 0;
    for (char *const *e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, "PATRON_", 7) != 0)
            continue;
        size_t name_len = (size_t)(eq - *e);
        const char *value = eq + 1;
        if (strncmp(*e, RDKAFKA_PREFIX, prefix_len) != 0) {
            if (!known_var(*e, name_len) && cfg->n_unknown_vars < PATRON_CONFIG_UNKNOWN_MAX) {
                cfg->unknown_vars = patron_realloc(
                    cfg->unknown_vars, (cfg->n_unknown_vars + 1) * sizeof(*cfg->unknown_vars));
                cfg->unknown_vars[cfg->n_unknown_vars++] = patron_strndup(*e, name_len);
            }
            continue;
        }
        if (value[0] == '\0')
            continue; /* empty counts as unset */
        char key[128];
        char name[160];
        (void)snprintf(name, sizeof(name), "%.*s", (int)(name_len > 150 ? 150 : name_len), *e);
        if (rdkafka_key(*e + prefix_len, name_len - prefix_len, key, sizeof(key)) != 0) {
            fail(err, errlen, name,
                 "the name after PATRON_RDKAFKA_ must be a librdkafka property in upper case "
                 "with '_' for '.'",
                 NULL);
            return PATRON_EINVAL;
        }
        if (strlen(value) > PATRON_CONFIG_VALUE_MAX) {
            fail(err, errlen, name, "value too long", NULL);
            return PATRON_EINVAL;
        }
        if (cfg->n_rdkafka_props == PATRON_CONFIG_RDKAFKA_MAX) {
            fail(err, errlen, name, "too many PATRON_RDKAFKA_* variables", NULL);
            return PATRON_EINVAL;
        }
        if (cfg->n_rdkafka_props == cap_props) { /* cap_props counts pairs too */
            cap_props = cap_props ? cap_props * 2 : 8;
            cfg->rdkafka_props =
                patron_realloc(cfg->rdkafka_props, 2 * cap_props * sizeof(*cfg->rdkafka_props));
        }
        cfg->rdkafka_props[2 * cfg->n_rdkafka_props] = patron_strdup(key);
        cfg->rdkafka_props[2 * cfg->n_rdkafka_props + 1] = patron_strdup(value);
        cfg->n_rdkafka_props++;
    }
    return 0;
}

static int load_redis(struct patron_config *cfg, const struct env *env, char *err, size_t errlen)
{
    const char *url = env_get(env, VAR_REDIS_URL->name);
    const char *cluster = env_get(env, VAR_REDIS_CLUSTER->name);
    if (url && cluster) {
        fail(err, errlen, VAR_REDIS_CLUSTER->name,
             "PATRON_REDIS_URL is set too; set only one of them", NULL);
        return PATRON_EINVAL;
    }
    if (cluster)
        return apply_var(cfg, VAR_REDIS_CLUSTER, cluster, err, errlen);
    return apply_var(cfg, VAR_REDIS_URL, url ? url : VAR_REDIS_URL->def, err, errlen);
}

int patron_config_load(struct patron_config *cfg, const char *service,
                       const char *(*getenv_fn)(void *ud, const char *name), void *ud,
                       char *const *envp, char *err, size_t errlen)
{
    const struct env env = {getenv_fn, ud, envp};
    memset(cfg, 0, sizeof(*cfg));
    if (err && errlen)
        err[0] = '\0';
    cfg->service = patron_strdup(service ? service : "patron");
    patron_profile_config_default(&cfg->profile);
    if (load_redis(cfg, &env, err, errlen) != 0)
        goto out_free_cfg;
    for (size_t i = 2; i < PATRON_ARRAY_LEN(VARS); i++) {
        const struct var *v = &VARS[i];
        const char *value = v->empty_is_value ? env_raw(&env, v->name) : env_get(&env, v->name);
        if (!value)
            value = v->def;
        if (value && apply_var(cfg, v, value, err, errlen) != 0)
            goto out_free_cfg;
    }
    if (!cfg->group_id)
        cfg->group_id = patron_strdup(cfg->service);
    if (!cfg->redis_timeout_ms)
        cfg->redis_timeout_ms = strcmp(cfg->service, "patron-api") == 0
                                    ? PATRON_CONFIG_REDIS_TIMEOUT_API_MS
                                    : PATRON_CONFIG_REDIS_TIMEOUT_MS;
    if (scan_envp(cfg, envp, err, errlen) != 0)
        goto out_free_cfg;
    return 0;

out_free_cfg:
    patron_config_free(cfg);
    return PATRON_EINVAL;
}

const char *patron_config_getenv(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

int patron_config_load_environ(struct patron_config *cfg, const char *service, char *err,
                               size_t errlen)
{
    return patron_config_load(cfg, service, patron_config_getenv, NULL, environ, err, errlen);
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void patron_config_free(struct patron_config *cfg)
{
    free(cfg->service);
    free(cfg->kafka_brokers);
    free(cfg->redis.host);
    free(cfg->redis_user);
    free(cfg->redis_password);
    for (size_t i = 0; i < cfg->n_redis_cluster; i++)
        free(cfg->redis_cluster[i].host);
    free(cfg->redis_cluster);
    free(cfg->http_addr);
    free(cfg->http.host);
    free(cfg->campaigns_path);
    free(cfg->group_id);
    free(cfg->topic_events);
    free(cfg->topic_catalog);
    free(cfg->topic_profile_updates);
    free(cfg->topic_dlq);
    free(cfg->topic_campaign_prefix);
    free(cfg->api_token);
    free_strings(cfg->rdkafka_props, 2 * cfg->n_rdkafka_props);
    free_strings(cfg->unknown_vars, cfg->n_unknown_vars);
    memset(cfg, 0, sizeof(*cfg));
}
