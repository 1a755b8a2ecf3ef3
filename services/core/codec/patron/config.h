/*
 * Configuration from the environment (docs/configuration.md).
 *
 * patron_config_load reads every PATRON_* variable once at start, applies the
 * defaults, checks every value, and fills a struct patron_config that owns all
 * its strings (patron_config_free releases them). A bad value is reported as
 * "PATRON_X: why" so that the service stops naming the variable; secrets
 * (PATRON_REDIS_URL, PATRON_API_TOKEN, PATRON_RDKAFKA_*) are never echoed.
 * An empty variable counts as unset (a ConfigMap key left blank). Pure: the
 * environment comes in through the parameters, so tests pass a table.
 */
#ifndef PATRON_CONFIG_H
#define PATRON_CONFIG_H

#include "patron/clock.h"
#include "patron/clv.h"
#include "patron/common.h"
#include "patron/kmeans.h"
#include "patron/profile.h"

/* Bounds on what the environment can make us hold. */
#define PATRON_CONFIG_VALUE_MAX 4096  /* bytes of any one value */
#define PATRON_CONFIG_HOST_MAX 255    /* bytes of a host name */
#define PATRON_CONFIG_CLUSTER_MAX 64  /* seed nodes in PATRON_REDIS_CLUSTER */
#define PATRON_CONFIG_RDKAFKA_MAX 128 /* PATRON_RDKAFKA_* properties */
#define PATRON_CONFIG_UNKNOWN_MAX 32  /* unknown PATRON_* names remembered */
/* PATRON_API_TOKEN: at least this many bytes, printable ASCII. */
#define PATRON_CONFIG_TOKEN_MIN 16
/* PATRON_REDIS_TIMEOUT_MS when unset: patron-api answers a request within
 * about this (or 503); the other services' commands are batches and Lua
 * scripts, and a stall only needs to be seen within a few seconds. */
#define PATRON_CONFIG_REDIS_TIMEOUT_API_MS 1000
#define PATRON_CONFIG_REDIS_TIMEOUT_MS 5000

struct patron_endpoint {
    char *host; /* a name or an IP literal, IPv6 without brackets */
    int port;
};

struct patron_config {
    char *service;       /* the name passed in, e.g. "patron-ingest" */
    char *kafka_brokers; /* librdkafka bootstrap.servers */

    /* Redis: one node (n_redis_cluster == 0) or the seed nodes of a cluster. */
    struct patron_endpoint redis;
    char *redis_user;     /* NULL: none (AUTH with the password only) */
    char *redis_password; /* NULL: no AUTH */
    int redis_db;         /* SELECT; 0 for a cluster */
    struct patron_endpoint *redis_cluster;
    size_t n_redis_cluster;

    char *http_addr;             /* "host:port" as given (checked), for patron_http_server_start */
    struct patron_endpoint http; /* the same, parsed; port 0 = any free port */

    char *campaigns_path; /* NULL: no campaigns file */
    enum patron_clock_kind clock;
    int log_level; /* enum patron_log_level */
    char *group_id;
    char *topic_events, *topic_catalog, *topic_profile_updates, *topic_dlq;
    char *topic_campaign_prefix; /* + "sms", "push", "email" */
    /* NULL (unset): the API asks for no token. Set, it is at least
     * PATRON_CONFIG_TOKEN_MIN bytes of printable ASCII: an empty or short
     * one is an error, so that a blank Secret cannot open the API. */
    char *api_token;

    /* librdkafka pass-through: PATRON_RDKAFKA_SECURITY_PROTOCOL=ssl gives
     * "security.protocol", "ssl"; a double underscore gives one underscore.
     * Key, value, key, value... in environment order: n_rdkafka_props PAIRS,
     * so 2 * n_rdkafka_props strings (what kafka.h's n_props counts). */
    char **rdkafka_props;
    size_t n_rdkafka_props;

    int batch_max;        /* events per ingest batch, 1..100000 */
    int http_workers;     /* patron-api processes sharing PATRON_HTTP_ADDR, 1..64 */
    int inflight_batches; /* ingest batches in flight, 1..64 */
    /* Bytes an ingest batch stops taking records at (its records and what
     * decoding them took; the last record may pass it), 1 MiB .. 1 GiB;
     * and the in-flight batches' bytes at which no new batch starts, 1 MiB
     * .. 4 GiB. */
    int64_t batch_max_bytes, inflight_max_bytes;
    int graph_history;        /* recent items a purchase pairs with, 0..64 */
    int graph_topk;           /* neighbours kept per item, 1..1000 */
    int reco_cache_items;     /* items the recommendation cache holds, 1024..16777216 */
    int reco_momentum;        /* exponent of an item's momentum in its score, 0..4 */
    int reco_list_max_age_ms; /* how old a cached neighbour list may be, 100..3600000 */
    int reco_max_age_ms;      /* how old cached item facts may be, 100..600000 */
    int shutdown_timeout_ms;  /* drain time on SIGTERM, 0..3600000 */
    /* Fault injection for the tests (0: off): patron-ingest aborts, as a
     * kill -9 would stop it, once the n-th batch with two stages of writes
     * has its first (the visitors of an Identify or an erasure) acknowledged
     * and before its second is sent. */
    int fault_crash_after_visitor_writes;
    int dashboard_refresh_ms; /* between two customer snapshots (and model fits), 1000..3600000 */
    int clusters_k;           /* PATRON_CLUSTERS_K: 0 = chosen by silhouette in 3..8, else 2..16 */
    /* PATRON_CLV_MODEL: fixed churn and value parameters, no fit. */
    bool has_clv_override;
    struct patron_clv_model clv_override;
    /* How long a Redis command may wait for its reply before the connection
     * is deemed stalled (redis.h), 50..60000; unset: the service's default
     * (PATRON_CONFIG_REDIS_TIMEOUT_API_MS for patron-api, else
     * PATRON_CONFIG_REDIS_TIMEOUT_MS). */
    int redis_timeout_ms;
    /* PATRON_CLUSTERS_MODEL: fixed clusters (the stored JSON of
     * {model}:clusters, model_codec.h), no fit. */
    bool has_clusters_override;
    struct patron_clusters clusters_override;

    /* patron_profile_config_default, then PATRON_RFM_RECENCY_DAYS,
     * PATRON_RFM_FREQUENCY, PATRON_RFM_MONETARY_CENTS (4 values each, from the
     * best score down, strictly monotonic), PATRON_TIER_CENTS (gold,platinum,
     * increasing), PATRON_POINTS_PER_REVIEW, PATRON_DEDUPE_WINDOW_MS,
     * PATRON_CHURN_HORIZON_DAYS. */
    struct patron_profile_config profile;

    /* PATRON_* variables that no one reads: likely typos, worth a warning. */
    char **unknown_vars;
    size_t n_unknown_vars;
};

/* Fills *cfg (whatever it held is ignored). Variables are read through
 * getenv_fn(ud, name), or looked up in envp when getenv_fn is NULL. envp
 * ("NAME=value" strings, NULL-ended, e.g. environ; NULL = none) is scanned for
 * PATRON_RDKAFKA_* and unknown PATRON_* names. On a bad value returns
 * PATRON_EINVAL, writes "PATRON_X: why" into err (errlen bytes, NUL ended) and
 * leaves *cfg empty (patron_config_free on it is harmless). */
int patron_config_load(struct patron_config *cfg, const char *service,
                       const char *(*getenv_fn)(void *ud, const char *name), void *ud,
                       char *const *envp, char *err, size_t errlen) PATRON_MUST_USE;
/* The process environment: getenv and environ. */
int patron_config_load_environ(struct patron_config *cfg, const char *service, char *err,
                               size_t errlen) PATRON_MUST_USE;
const char *patron_config_getenv(void *ud, const char *name); /* getenv; ud ignored */
void patron_config_free(struct patron_config *cfg);

/* "host:port", "[v6]:port" or ":port" (host then "0.0.0.0"); port 0..65535.
 * Writes the host without brackets, NUL ended. */
int patron_config_parse_hostport(const char *s, char *host, size_t hostcap,
                                 int *port) PATRON_MUST_USE;

/* redis://[user:pass@]host[:port][/db], user and password percent-decoded;
 * port defaults to 6379, db to 0. On success the strings are the caller's
 * (free()); user/password are NULL when absent. `why` gets the reason. */
int patron_config_parse_redis_url(const char *url, struct patron_endpoint *ep, char **user,
                                  char **password, int *db, char *why,
                                  size_t whylen) PATRON_MUST_USE;

#endif
