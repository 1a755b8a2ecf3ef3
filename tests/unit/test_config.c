#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/config.h"
#include "patron/log.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(config);

#define ENV_MAX 8

/* {model}:clusters as the API stores it: two clusters */
#define CLUSTERS_JSON                                                                              \
    "{\"version\":1,\"fitted_at_ms\":0,\"customers\":10,\"sample\":10,\"mean\":[1,1,5],"           \
    "\"sd\":[1,0.5,2],\"k\":2,\"as_of_ms\":1323388800000,\"clusters\":["                           \
    "{\"id\":0,\"label\":\"recent, frequent, high spend\",\"size\":4,\"centroid\":"                \
    "{\"recency_days\":3,\"orders\":9,\"net_spend_cents\":90000},\"z\":[-1,1,1]},"                 \
    "{\"id\":1,\"label\":\"lapsed, rare, low spend\",\"size\":6,\"centroid\":"                     \
    "{\"recency_days\":200,\"orders\":1,\"net_spend_cents\":1500},\"z\":[1,-1,-1]}],"              \
    "\"silhouette\":0.5}"

/* A field of the configuration as text, so that one table can check any. */
static void field_str(const struct patron_config *c, const char *field, char *out, size_t cap)
{
    const struct patron_profile_config *p = &c->profile;
#define S(name, expr)                                                                              \
    if (strcmp(field, name) == 0) {                                                                \
        snprintf(out, cap, "%s", (expr) ? (expr) : "(null)");                                      \
        return;                                                                                    \
    }
#define I(name, expr)                                                                              \
    if (strcmp(field, name) == 0) {                                                                \
        snprintf(out, cap, "%lld", (long long)(expr));                                             \
        return;                                                                                    \
    }
#define L4(name, a)                                                                                \
    if (strcmp(field, name) == 0) {                                                                \
        snprintf(out, cap, "%lld,%lld,%lld,%lld", (long long)a[0], (long long)a[1],                \
                 (long long)a[2], (long long)a[3]);                                                \
        return;                                                                                    \
    }
    S("service", c->service);
    S("kafka_brokers", c->kafka_brokers);
    S("redis.host", c->redis.host);
    I("redis.port", c->redis.port);
    S("redis_user", c->redis_user);
    S("redis_password", c->redis_password);
    I("redis_db", c->redis_db);
    I("n_redis_cluster", c->n_redis_cluster);
    S("http_addr", c->http_addr);
    S("http.host", c->http.host);
    I("http.port", c->http.port);
    S("campaigns_path", c->campaigns_path);
    S("clock", patron_clock_kind_name(c->clock));
    S("log_level", patron_log_level_name(c->log_level));
    S("group_id", c->group_id);
    S("topic_events", c->topic_events);
    S("topic_catalog", c->topic_catalog);
    S("topic_profile_updates", c->topic_profile_updates);
    S("topic_dlq", c->topic_dlq);
    S("topic_campaign_prefix", c->topic_campaign_prefix);
    S("api_token", c->api_token);
    I("n_rdkafka_props", c->n_rdkafka_props);
    I("batch_max", c->batch_max);
    I("inflight_batches", c->inflight_batches);
    I("batch_max_bytes", c->batch_max_bytes);
    I("inflight_max_bytes", c->inflight_max_bytes);
    I("graph_history", c->graph_history);
    I("graph_topk", c->graph_topk);
    I("reco_cache_items", c->reco_cache_items);
    I("reco_momentum", c->reco_momentum);
    I("reco_list_max_age_ms", c->reco_list_max_age_ms);
    I("reco_max_age_ms", c->reco_max_age_ms);
    I("shutdown_timeout_ms", c->shutdown_timeout_ms);
    I("redis_timeout_ms", c->redis_timeout_ms);
    L4("rfm_recency_days", p->rfm_recency_days);
    L4("rfm_frequency", p->rfm_frequency);
    L4("rfm_monetary_cents", p->rfm_monetary_cents);
    I("tier_gold_cents", p->tier_gold_cents);
    I("tier_platinum_cents", p->tier_platinum_cents);
    I("points_per_review", p->points_per_review);
    I("churn_horizon_days", p->churn_horizon_days);
    I("clusters_k", c->clusters_k);
    I("dashboard_refresh_ms", c->dashboard_refresh_ms);
    I("has_clv_override", c->has_clv_override);
    I("clv_override.n_bands", c->clv_override.n_bands);
    I("has_clusters_override", c->has_clusters_override);
    I("clusters_override.k", c->clusters_override.k);
    S("clusters_override.c[1].label", c->clusters_override.c[1].label);
#undef S
#undef I
#undef L4
    cr_assert_fail("unknown field %s", field);
}

struct env_case {
    const char *env[ENV_MAX]; /* "NAME=value", NULL-ended */
    const char *field;        /* checked on success */
    const char *want;         /* its value, or the variable the error must name */
    bool fails;
};

#define OK(field, want, ...)                                                                       \
    {                                                                                              \
        {__VA_ARGS__}, field, want, false                                                          \
    }
#define BAD(var, ...)                                                                              \
    {                                                                                              \
        {__VA_ARGS__}, NULL, var, true                                                             \
    }

static const struct env_case CASES[] = {
    /* defaults */
    OK("service", "patron-ingest", NULL),
    OK("kafka_brokers", "127.0.0.1:9092", NULL),
    OK("redis.host", "127.0.0.1", NULL),
    OK("redis.port", "6379", NULL),
    OK("redis_user", "(null)", NULL),
    OK("redis_password", "(null)", NULL),
    OK("redis_db", "0", NULL),
    OK("n_redis_cluster", "0", NULL),
    OK("http_addr", "0.0.0.0:8080", NULL),
    OK("http.host", "0.0.0.0", NULL),
    OK("http.port", "8080", NULL),
    OK("campaigns_path", "(null)", NULL),
    OK("clock", "wall", NULL),
    OK("log_level", "info", NULL),
    OK("group_id", "patron-ingest", NULL),
    OK("topic_events", "patron.events", NULL),
    OK("topic_catalog", "patron.catalog", NULL),
    OK("topic_profile_updates", "patron.profile-updates", NULL),
    OK("topic_dlq", "patron.dlq", NULL),
    OK("topic_campaign_prefix", "patron.campaign.", NULL),
    OK("api_token", "(null)", NULL),
    OK("n_rdkafka_props", "0", NULL),
    OK("batch_max", "5000", NULL),
    OK("inflight_batches", "16", NULL),
    OK("batch_max_bytes", "16777216", NULL),
    OK("inflight_max_bytes", "67108864", NULL),
    OK("graph_history", "16", NULL),
    OK("graph_topk", "100", NULL),
    OK("reco_cache_items", "65536", NULL),
    OK("reco_momentum", "1", NULL),
    OK("reco_list_max_age_ms", "60000", NULL),
    OK("reco_max_age_ms", "5000", NULL),
    OK("shutdown_timeout_ms", "10000", NULL),
    OK("redis_timeout_ms", "5000", NULL), /* patron-ingest's; patron-api's below */
    OK("rfm_recency_days", "14,30,90,180", NULL),
    OK("rfm_frequency", "20,10,5,2", NULL),
    OK("rfm_monetary_cents", "500000,100000,30000,10000", NULL),
    OK("tier_gold_cents", "100000", NULL),
    OK("tier_platinum_cents", "500000", NULL),
    OK("points_per_review", "10", NULL),
    OK("churn_horizon_days", "90", NULL),
    OK("clusters_k", "0", NULL),
    OK("dashboard_refresh_ms", "30000", NULL),
    OK("has_clv_override", "0", NULL),
    OK("has_clusters_override", "0", NULL),

    /* overrides */
    OK("kafka_brokers", "k1:9092,k2:9092", "PATRON_KAFKA_BROKERS=k1:9092,k2:9092"),
    OK("redis.host", "redis.svc", "PATRON_REDIS_URL=redis://redis.svc:6380/2"),
    OK("redis.port", "6380", "PATRON_REDIS_URL=redis://redis.svc:6380/2"),
    OK("redis_db", "2", "PATRON_REDIS_URL=redis://redis.svc:6380/2"),
    OK("redis_user", "app", "PATRON_REDIS_URL=redis://app:s3cret@r:1"),
    OK("redis_password", "s3cret", "PATRON_REDIS_URL=redis://app:s3cret@r:1"),
    OK("redis_user", "(null)", "PATRON_REDIS_URL=redis://:pw@r"),
    OK("redis_password", "pw", "PATRON_REDIS_URL=redis://:pw@r"),
    OK("redis.port", "6379", "PATRON_REDIS_URL=redis://:pw@r"),
    OK("redis_password", "p@ss:w", "PATRON_REDIS_URL=redis://u:p%40ss%3aw@r:1"),
    OK("redis.host", "::1", "PATRON_REDIS_URL=redis://[::1]:7000"),
    OK("n_redis_cluster", "3", "PATRON_REDIS_CLUSTER=a:7000,b:7001,[::1]:7002"),
    OK("redis.host", "(null)", "PATRON_REDIS_CLUSTER=a:7000"),
    /* one set of credentials for every node of the cluster */
    OK("redis_user", "app", "PATRON_REDIS_CLUSTER=app:s3cret@a:7000,b:7001"),
    OK("redis_password", "s3cret", "PATRON_REDIS_CLUSTER=app:s3cret@a:7000,b:7001"),
    OK("n_redis_cluster", "2", "PATRON_REDIS_CLUSTER=app:s3cret@a:7000,b:7001"),
    OK("redis_user", "(null)", "PATRON_REDIS_CLUSTER=:pw@a:7000"),
    OK("redis_password", "pw", "PATRON_REDIS_CLUSTER=:pw@a:7000"),
    OK("http_addr", "127.0.0.1:0", "PATRON_HTTP_ADDR=127.0.0.1:0"),
    OK("http.port", "0", "PATRON_HTTP_ADDR=127.0.0.1:0"),
    OK("http.host", "0.0.0.0", "PATRON_HTTP_ADDR=:9000"),
    OK("http.host", "::", "PATRON_HTTP_ADDR=[::]:65535"),
    OK("http.port", "65535", "PATRON_HTTP_ADDR=[::]:65535"),
    OK("campaigns_path", "/etc/patron/campaigns.yaml",
       "PATRON_CAMPAIGNS=/etc/patron/campaigns.yaml"),
    OK("clock", "event", "PATRON_CLOCK=event"),
    OK("log_level", "debug", "PATRON_LOG_LEVEL=debug"),
    OK("log_level", "warn", "PATRON_LOG_LEVEL=WARNING"),
    OK("group_id", "my-group", "PATRON_GROUP_ID=my-group"),
    OK("topic_events", "shop.events_v2", "PATRON_TOPIC_EVENTS=shop.events_v2"),
    OK("topic_campaign_prefix", "mkt-", "PATRON_TOPIC_CAMPAIGN_PREFIX=mkt-"),
    OK("api_token", "0123456789abcdef", "PATRON_API_TOKEN=0123456789abcdef"),
    OK("api_token", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}",
       "PATRON_API_TOKEN=~!#$%&'()*+,-./:;<=>?@[]^_`{|}"),
    OK("redis_timeout_ms", "50", "PATRON_REDIS_TIMEOUT_MS=50"),
    OK("redis_timeout_ms", "60000", "PATRON_REDIS_TIMEOUT_MS=60000"),
    OK("batch_max", "1", "PATRON_BATCH_MAX=1"),
    OK("batch_max", "100000", "PATRON_BATCH_MAX=100000"),
    OK("inflight_batches", "64", "PATRON_INFLIGHT_BATCHES=64"),
    OK("batch_max_bytes", "1048576", "PATRON_BATCH_MAX_BYTES=1048576"),
    OK("batch_max_bytes", "1073741824", "PATRON_BATCH_MAX_BYTES=1073741824"),
    OK("inflight_max_bytes", "4294967296", "PATRON_INFLIGHT_MAX_BYTES=4294967296"),
    OK("graph_history", "0", "PATRON_GRAPH_HISTORY=0"),
    OK("graph_topk", "1000", "PATRON_GRAPH_TOPK=1000"),
    OK("reco_cache_items", "1024", "PATRON_RECO_CACHE_ITEMS=1024"),
    OK("reco_cache_items", "16777216", "PATRON_RECO_CACHE_ITEMS=16777216"),
    OK("reco_momentum", "0", "PATRON_RECO_MOMENTUM=0"),
    OK("reco_momentum", "4", "PATRON_RECO_MOMENTUM=4"),
    OK("reco_list_max_age_ms", "100", "PATRON_RECO_LIST_MAX_AGE_MS=100"),
    OK("reco_max_age_ms", "600000", "PATRON_RECO_MAX_AGE_MS=600000"),
    OK("reco_list_max_age_ms", "3600000", "PATRON_RECO_LIST_MAX_AGE_MS=3600000"),
    OK("shutdown_timeout_ms", "0", "PATRON_SHUTDOWN_TIMEOUT_MS=0"),
    OK("rfm_recency_days", "7,14,60,365", "PATRON_RFM_RECENCY_DAYS=7,14,60,365"),
    OK("rfm_frequency", "50,20,10,3", "PATRON_RFM_FREQUENCY=50,20,10,3"),
    OK("rfm_monetary_cents", "9,7,5,3", "PATRON_RFM_MONETARY_CENTS=9,7,5,3"),
    OK("tier_gold_cents", "1", "PATRON_TIER_CENTS=1,2"),
    OK("tier_platinum_cents", "2", "PATRON_TIER_CENTS=1,2"),
    OK("points_per_review", "0", "PATRON_POINTS_PER_REVIEW=0"),
    OK("churn_horizon_days", "92", "PATRON_CHURN_HORIZON_DAYS=92"),
    OK("clusters_k", "4", "PATRON_CLUSTERS_K=4"),
    OK("dashboard_refresh_ms", "1000", "PATRON_DASHBOARD_REFRESH_MS=1000"),
    OK("has_clv_override", "1", "PATRON_CLV_MODEL=0.6,40,0.05,1.6,2,3.5,40000"),
    OK("clv_override.n_bands", "2", "PATRON_CLV_MODEL=0.6,40,0.05,1.6,2,3.5,40000;20000:1,50,1,9"),
    OK("has_clusters_override", "1", "PATRON_CLUSTERS_MODEL=" CLUSTERS_JSON),
    OK("clusters_override.k", "2", "PATRON_CLUSTERS_MODEL=" CLUSTERS_JSON),
    OK("clusters_override.c[1].label", "lapsed, rare, low spend",
       "PATRON_CLUSTERS_MODEL=" CLUSTERS_JSON),
    /* empty counts as unset */
    OK("kafka_brokers", "127.0.0.1:9092", "PATRON_KAFKA_BROKERS="),
    OK("redis_timeout_ms", "5000", "PATRON_REDIS_TIMEOUT_MS="),
    OK("batch_max", "5000", "PATRON_BATCH_MAX="),
    OK("n_redis_cluster", "1", "PATRON_REDIS_URL=", "PATRON_REDIS_CLUSTER=c:1"),

    /* bad values name their variable */
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_URL=redis://a:1", "PATRON_REDIS_CLUSTER=b:2"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=http://a:1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=rediss://a:1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a:0"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a:65536"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a:-1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a:12x"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a:1/x"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a:1/-1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a:1?timeout=1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://user@a:1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://u:p%zz@a:1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://u:p%00@a:1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://a b:1"),
    BAD("PATRON_REDIS_URL", "PATRON_REDIS_URL=redis://[::1:1"),
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_CLUSTER=a:1,,b:2"),
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_CLUSTER=a:1,b"),
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_CLUSTER=a:1,"),
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_CLUSTER=:1"),
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_CLUSTER=nocolon@a:1"),
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_CLUSTER=u:@a:1"),
    BAD("PATRON_REDIS_CLUSTER", "PATRON_REDIS_CLUSTER=u:p@a:1@b:2"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=8080"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=0.0.0.0:65536"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=0.0.0.0:"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=0.0.0.0:+80"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=0.0.0.0: 80"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=localhost:80"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=::1:80"),
    BAD("PATRON_HTTP_ADDR", "PATRON_HTTP_ADDR=[::1]80"),
    BAD("PATRON_CLOCK", "PATRON_CLOCK=event-time"),
    BAD("PATRON_LOG_LEVEL", "PATRON_LOG_LEVEL=verbose"),
    BAD("PATRON_TOPIC_EVENTS", "PATRON_TOPIC_EVENTS=bad topic"),
    BAD("PATRON_TOPIC_DLQ", "PATRON_TOPIC_DLQ=a/b"),
    BAD("PATRON_BATCH_MAX", "PATRON_BATCH_MAX=0"),
    BAD("PATRON_BATCH_MAX", "PATRON_BATCH_MAX=100001"),
    BAD("PATRON_BATCH_MAX", "PATRON_BATCH_MAX=12abc"),
    BAD("PATRON_BATCH_MAX", "PATRON_BATCH_MAX= 12"),
    BAD("PATRON_BATCH_MAX", "PATRON_BATCH_MAX=+12"),
    BAD("PATRON_BATCH_MAX", "PATRON_BATCH_MAX=1e3"),
    BAD("PATRON_BATCH_MAX", "PATRON_BATCH_MAX=99999999999999999999999"),
    BAD("PATRON_INFLIGHT_BATCHES", "PATRON_INFLIGHT_BATCHES=65"),
    BAD("PATRON_BATCH_MAX_BYTES", "PATRON_BATCH_MAX_BYTES=1048575"),
    BAD("PATRON_BATCH_MAX_BYTES", "PATRON_BATCH_MAX_BYTES=1073741825"),
    BAD("PATRON_BATCH_MAX_BYTES", "PATRON_BATCH_MAX_BYTES=16M"),
    BAD("PATRON_INFLIGHT_MAX_BYTES", "PATRON_INFLIGHT_MAX_BYTES=4294967297"),
    BAD("PATRON_GRAPH_HISTORY", "PATRON_GRAPH_HISTORY=-1"),
    BAD("PATRON_GRAPH_TOPK", "PATRON_GRAPH_TOPK=0"),
    BAD("PATRON_RECO_CACHE_ITEMS", "PATRON_RECO_CACHE_ITEMS=1023"),
    BAD("PATRON_RECO_MOMENTUM", "PATRON_RECO_MOMENTUM=5"),
    BAD("PATRON_RECO_MOMENTUM", "PATRON_RECO_MOMENTUM=-1"),
    BAD("PATRON_RECO_CACHE_ITEMS", "PATRON_RECO_CACHE_ITEMS=16777217"),
    BAD("PATRON_RECO_LIST_MAX_AGE_MS", "PATRON_RECO_LIST_MAX_AGE_MS=99"),
    BAD("PATRON_RECO_LIST_MAX_AGE_MS", "PATRON_RECO_LIST_MAX_AGE_MS=3600001"),
    BAD("PATRON_RECO_MAX_AGE_MS", "PATRON_RECO_MAX_AGE_MS=99"),
    BAD("PATRON_RECO_MAX_AGE_MS", "PATRON_RECO_MAX_AGE_MS=600001"),
    BAD("PATRON_SHUTDOWN_TIMEOUT_MS", "PATRON_SHUTDOWN_TIMEOUT_MS=3600001"),
    BAD("PATRON_RFM_RECENCY_DAYS", "PATRON_RFM_RECENCY_DAYS=14,30,90"),
    BAD("PATRON_RFM_RECENCY_DAYS", "PATRON_RFM_RECENCY_DAYS=14,30,90,180,365"),
    BAD("PATRON_RFM_RECENCY_DAYS", "PATRON_RFM_RECENCY_DAYS=180,90,30,14"),
    BAD("PATRON_RFM_RECENCY_DAYS", "PATRON_RFM_RECENCY_DAYS=14,14,90,180"),
    BAD("PATRON_RFM_RECENCY_DAYS", "PATRON_RFM_RECENCY_DAYS=14,,90,180"),
    BAD("PATRON_RFM_RECENCY_DAYS", "PATRON_RFM_RECENCY_DAYS=14,30,90,180,"),
    BAD("PATRON_RFM_RECENCY_DAYS", "PATRON_RFM_RECENCY_DAYS=14, 30,90,180"),
    BAD("PATRON_RFM_FREQUENCY", "PATRON_RFM_FREQUENCY=2,5,10,20"),
    BAD("PATRON_RFM_FREQUENCY", "PATRON_RFM_FREQUENCY=20,10,5,0"),
    BAD("PATRON_RFM_MONETARY_CENTS", "PATRON_RFM_MONETARY_CENTS=5,5,3,1"),
    BAD("PATRON_TIER_CENTS", "PATRON_TIER_CENTS=500000,100000"),
    BAD("PATRON_TIER_CENTS", "PATRON_TIER_CENTS=100000"),
    BAD("PATRON_TIER_CENTS", "PATRON_TIER_CENTS=x,y"),
    BAD("PATRON_POINTS_PER_REVIEW", "PATRON_POINTS_PER_REVIEW=-1"),
    BAD("PATRON_POINTS_PER_REVIEW", "PATRON_POINTS_PER_REVIEW=ten"),
    BAD("PATRON_CHURN_HORIZON_DAYS", "PATRON_CHURN_HORIZON_DAYS=0"),
    BAD("PATRON_CHURN_HORIZON_DAYS", "PATRON_CHURN_HORIZON_DAYS=3651"),
    BAD("PATRON_CLUSTERS_K", "PATRON_CLUSTERS_K=1"),
    BAD("PATRON_CLUSTERS_K", "PATRON_CLUSTERS_K=17"),
    BAD("PATRON_DASHBOARD_REFRESH_MS", "PATRON_DASHBOARD_REFRESH_MS=999"),
    BAD("PATRON_CLV_MODEL", "PATRON_CLV_MODEL=1,2,3"),
    BAD("PATRON_CLUSTERS_MODEL", "PATRON_CLUSTERS_MODEL={\"k\":2}"),
    BAD("PATRON_CLUSTERS_MODEL", "PATRON_CLUSTERS_MODEL=3"),
    BAD("PATRON_CLV_MODEL", "PATRON_CLV_MODEL=1,2,3,4,5,6,-7"),
    /* a token set but empty or short fails closed; unset is allowed (above) */
    BAD("PATRON_API_TOKEN", "PATRON_API_TOKEN="),
    BAD("PATRON_API_TOKEN", "PATRON_API_TOKEN=0123456789abcde"),
    BAD("PATRON_API_TOKEN", "PATRON_API_TOKEN=x"),
    BAD("PATRON_API_TOKEN", "PATRON_API_TOKEN=0123456789abcdef\n"),
    BAD("PATRON_API_TOKEN", "PATRON_API_TOKEN=0123456789 abcdef"),
    BAD("PATRON_API_TOKEN", "PATRON_API_TOKEN=0123456789abcdef\x7f"),
    BAD("PATRON_API_TOKEN", "PATRON_API_TOKEN=0123456789abcdef\xc3\xa9"),
    BAD("PATRON_REDIS_TIMEOUT_MS", "PATRON_REDIS_TIMEOUT_MS=49"),
    BAD("PATRON_REDIS_TIMEOUT_MS", "PATRON_REDIS_TIMEOUT_MS=60001"),
    BAD("PATRON_REDIS_TIMEOUT_MS", "PATRON_REDIS_TIMEOUT_MS=1s"),
    BAD("PATRON_RDKAFKA_", "PATRON_RDKAFKA_=x"),
    BAD("PATRON_RDKAFKA_SSL-CA", "PATRON_RDKAFKA_SSL-CA=x"),
    BAD("PATRON_RDKAFKA__X", "PATRON_RDKAFKA__X=x"),
    BAD("PATRON_RDKAFKA_X_", "PATRON_RDKAFKA_X_=x"),
};

/* A table-backed getenv over the same envp: the two lookup paths must agree. */
static const char *table_getenv(void *ud, const char *name)
{
    char *const *env = ud;
    size_t n = strlen(name);
    for (; *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

static void run_case(size_t i, const struct env_case *tc, bool via_getenv)
{
    char *envp[ENV_MAX + 1] = {0};
    for (size_t k = 0; k < ENV_MAX && tc->env[k]; k++)
        envp[k] = (char *)tc->env[k];
    struct patron_config cfg;
    char err[256] = "untouched";
    int rc = patron_config_load(&cfg, "patron-ingest", via_getenv ? table_getenv : NULL,
                                via_getenv ? envp : NULL, envp, err, sizeof(err));
    if (tc->fails) {
        cr_assert_eq(rc, PATRON_EINVAL, "case %zu (%s) should fail", i, tc->env[0]);
        size_t n = strlen(tc->want);
        cr_assert(strncmp(err, tc->want, n) == 0 && err[n] == ':',
                  "case %zu: error \"%s\" should name %s", i, err, tc->want);
        cr_assert_null(cfg.service, "case %zu: cfg left empty", i);
    } else {
        cr_assert_eq(rc, 0, "case %zu (%s): %s", i, tc->env[0] ? tc->env[0] : "defaults", err);
        char got[256];
        field_str(&cfg, tc->field, got, sizeof(got));
        cr_assert_str_eq(got, tc->want, "case %zu: %s", i, tc->field);
        cr_assert_str_eq(err, "", "case %zu: err cleared on success", i);
    }
    patron_config_free(&cfg);
}

Test(config, table_via_envp)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(CASES); i++)
        run_case(i, &CASES[i], false);
}

Test(config, table_via_getenv_fn)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(CASES); i++)
        run_case(i, &CASES[i], true);
}

Test(config, rdkafka_pass_through)
{
    char *envp[] = {
        "PATRON_RDKAFKA_SECURITY_PROTOCOL=ssl",
        "HOME=/root",
        "PATRON_RDKAFKA_SSL_CA_LOCATION=/etc/ca.pem",
        "PATRON_RDKAFKA_SASL_PASSWORD=hunter2",
        "PATRON_RDKAFKA_SOME__ODD_NAME=1",
        "PATRON_RDKAFKA_EMPTY=",
        "PATRON_RDKAFKA_statistics_interval_ms=1000",
        NULL,
    };
    static const char *const want[] = {
        "security.protocol",      "ssl",     "ssl.ca.location", "/etc/ca.pem",
        "sasl.password",          "hunter2", "some_odd.name",   "1",
        "statistics.interval.ms", "1000",
    };
    struct patron_config cfg;
    char err[256];
    cr_assert_eq(patron_config_load(&cfg, "patron-trigger", NULL, NULL, envp, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(2 * cfg.n_rdkafka_props, PATRON_ARRAY_LEN(want), "pairs");
    for (size_t i = 0; i < PATRON_ARRAY_LEN(want); i++)
        cr_assert_str_eq(cfg.rdkafka_props[i], want[i], "string %zu", i);
    cr_assert_eq(cfg.n_unknown_vars, 0);
    patron_config_free(&cfg);
}

Test(config, rdkafka_count_is_bounded)
{
    enum { N = PATRON_CONFIG_RDKAFKA_MAX + 1 };
    static char vars[N][48];
    char *envp[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(vars[i], sizeof(vars[i]), "PATRON_RDKAFKA_P%d=v", i);
        envp[i] = vars[i];
    }
    envp[N] = NULL;
    struct patron_config cfg;
    char err[256];
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, envp, err, sizeof(err)), PATRON_EINVAL);
    cr_assert(strncmp(err, "PATRON_RDKAFKA_P", 16) == 0, "%s", err);
    envp[N - 1] = NULL; /* exactly the maximum is fine */
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, envp, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.n_rdkafka_props, PATRON_CONFIG_RDKAFKA_MAX);
    patron_config_free(&cfg);
}

Test(config, unknown_patron_variables_are_reported)
{
    char *envp[] = {"PATRON_BACH_MAX=10", "PATRON_BATCH_MAX=10", "PATH=/bin",
                    "PATRONX=1",          "PATRON_NOEQUALS",     NULL};
    struct patron_config cfg;
    char err[256];
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, envp, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.n_unknown_vars, 1);
    cr_assert_str_eq(cfg.unknown_vars[0], "PATRON_BACH_MAX");
    cr_assert_eq(cfg.batch_max, 10);
    patron_config_free(&cfg);
}

Test(config, secrets_are_not_echoed_but_plain_values_are)
{
    struct patron_config cfg;
    char err[256];
    char *secret[] = {"PATRON_REDIS_URL=redis://u:hunter2@:1", NULL};
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, secret, err, sizeof(err)),
                 PATRON_EINVAL);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    char *plain[] = {"PATRON_BATCH_MAX=lots", NULL};
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, plain, err, sizeof(err)), PATRON_EINVAL);
    cr_assert_str_eq(err, "PATRON_BATCH_MAX: must be an integer in 1..100000 (got \"lots\")");
    /* garbage bytes are not echoed raw */
    char *junk[] = {"PATRON_CLOCK=\x01\xff\"x", NULL};
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, junk, err, sizeof(err)), PATRON_EINVAL);
    cr_assert_str_eq(err, "PATRON_CLOCK: must be wall or event (got \"???x\")");
}

Test(config, short_token_is_not_echoed)
{
    struct patron_config cfg;
    char err[256];
    char *env[] = {"PATRON_API_TOKEN=hunter2", NULL};
    cr_assert_eq(patron_config_load(&cfg, "patron-api", NULL, NULL, env, err, sizeof(err)),
                 PATRON_EINVAL);
    cr_assert(strncmp(err, "PATRON_API_TOKEN: too short", 27) == 0, "%s", err);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
}

Test(config, redis_timeout_defaults_by_service)
{
    static const struct {
        const char *service;
        int want;
    } cases[] = {
        {"patron-api", PATRON_CONFIG_REDIS_TIMEOUT_API_MS},
        {"patron-ingest", PATRON_CONFIG_REDIS_TIMEOUT_MS},
        {"patron-trigger", PATRON_CONFIG_REDIS_TIMEOUT_MS},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        struct patron_config cfg;
        char err[256];
        cr_assert_eq(patron_config_load(&cfg, cases[i].service, NULL, NULL, NULL, err, sizeof(err)),
                     0);
        cr_assert_eq(cfg.redis_timeout_ms, cases[i].want, "%s", cases[i].service);
        patron_config_free(&cfg);
        char *set[] = {"PATRON_REDIS_TIMEOUT_MS=250", NULL};
        cr_assert_eq(patron_config_load(&cfg, cases[i].service, NULL, NULL, set, err, sizeof(err)),
                     0);
        cr_assert_eq(cfg.redis_timeout_ms, 250, "%s", cases[i].service);
        patron_config_free(&cfg);
    }
}

Test(config, huge_values_are_refused)
{
    size_t n = PATRON_CONFIG_VALUE_MAX + 1;
    char *var = malloc(n + 32);
    int k = snprintf(var, 32, "PATRON_KAFKA_BROKERS=");
    memset(var + k, 'a', n);
    var[k + n] = '\0';
    char *envp[] = {var, NULL};
    struct patron_config cfg;
    char err[256];
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, envp, err, sizeof(err)), PATRON_EINVAL);
    cr_assert(strncmp(err, "PATRON_KAFKA_BROKERS:", 21) == 0, "%s", err);
    cr_assert_lt(strlen(err), 200, "the value is not echoed whole");
    free(var);
}

Test(config, cluster_nodes_parsed)
{
    char *envp[] = {"PATRON_REDIS_CLUSTER=r1:7000,r2.svc:7001,[fe80::1]:7002", NULL};
    struct patron_config cfg;
    char err[256];
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, envp, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.n_redis_cluster, 3);
    cr_assert_str_eq(cfg.redis_cluster[0].host, "r1");
    cr_assert_eq(cfg.redis_cluster[0].port, 7000);
    cr_assert_str_eq(cfg.redis_cluster[1].host, "r2.svc");
    cr_assert_eq(cfg.redis_cluster[1].port, 7001);
    cr_assert_str_eq(cfg.redis_cluster[2].host, "fe80::1");
    cr_assert_eq(cfg.redis_cluster[2].port, 7002);
    patron_config_free(&cfg);
}

Test(config, cluster_size_is_bounded)
{
    char *val = malloc(16 * (PATRON_CONFIG_CLUSTER_MAX + 1) + 32);
    size_t o = (size_t)snprintf(val, 32, "PATRON_REDIS_CLUSTER=");
    for (int i = 0; i <= PATRON_CONFIG_CLUSTER_MAX; i++)
        o += (size_t)snprintf(val + o, 16, "%sh%d:1", i ? "," : "", i);
    char *envp[] = {val, NULL};
    struct patron_config cfg;
    char err[256];
    cr_assert_eq(patron_config_load(&cfg, "s", NULL, NULL, envp, err, sizeof(err)), PATRON_EINVAL);
    cr_assert(strncmp(err, "PATRON_REDIS_CLUSTER:", 21) == 0, "%s", err);
    free(val);
}

Test(config, no_environment_at_all)
{
    struct patron_config cfg;
    cr_assert_eq(patron_config_load(&cfg, NULL, NULL, NULL, NULL, NULL, 0), 0);
    cr_assert_str_eq(cfg.service, "patron");
    cr_assert_str_eq(cfg.group_id, "patron");
    patron_config_free(&cfg);
    patron_config_free(&cfg); /* twice is harmless: free leaves it empty */
}

Test(config, hostport_table)
{
    static const struct {
        const char *in;
        int rc;
        const char *host;
        int port;
    } cases[] = {
        {"127.0.0.1:8080", 0, "127.0.0.1", 8080},
        {":80", 0, "0.0.0.0", 80},
        {"[::1]:0", 0, "::1", 0},
        {"h:65535", 0, "h", 65535},
        {"h", PATRON_EINVAL, NULL, 0},
        {"h:", PATRON_EINVAL, NULL, 0},
        {"h:65536", PATRON_EINVAL, NULL, 0},
        {"h:-1", PATRON_EINVAL, NULL, 0},
        {"h:0x50", PATRON_EINVAL, NULL, 0},
        {"h:1:2", PATRON_EINVAL, NULL, 0},
        {"[::1]", PATRON_EINVAL, NULL, 0},
        {"[]:1", PATRON_EINVAL, NULL, 0},
        {"h h:1", PATRON_EINVAL, NULL, 0},
        {"", PATRON_EINVAL, NULL, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        char host[64];
        int port = -7;
        int rc = patron_config_parse_hostport(cases[i].in, host, sizeof(host), &port);
        cr_assert_eq(rc, cases[i].rc, "case %zu (%s)", i, cases[i].in);
        if (rc == 0) {
            cr_assert_str_eq(host, cases[i].host, "case %zu", i);
            cr_assert_eq(port, cases[i].port, "case %zu", i);
        }
    }
    char tiny[4];
    int port;
    cr_assert_eq(patron_config_parse_hostport("hostname:1", tiny, sizeof(tiny), &port),
                 PATRON_EINVAL, "a host that does not fit is refused");
}

Test(config, redis_url_parse_direct)
{
    struct patron_endpoint ep;
    char *user, *pw, why[128];
    int db = -1;
    cr_assert_eq(
        patron_config_parse_redis_url("REDIS://h:1/15", &ep, &user, &pw, &db, why, sizeof(why)), 0,
        "%s", why);
    cr_assert_str_eq(ep.host, "h");
    cr_assert_eq(ep.port, 1);
    cr_assert_eq(db, 15);
    cr_assert_null(user);
    cr_assert_null(pw);
    free(ep.host);
    cr_assert_eq(
        patron_config_parse_redis_url("redis://h/", &ep, &user, &pw, &db, why, sizeof(why)), 0,
        "%s", why);
    cr_assert_eq(db, 0);
    free(ep.host);
    cr_assert_eq(
        patron_config_parse_redis_url("redis://u:@h", &ep, &user, &pw, &db, why, sizeof(why)), 0,
        "%s", why);
    cr_assert_str_eq(user, "u");
    cr_assert_null(pw, "an empty password is no password");
    free(user);
    free(ep.host);
    cr_assert_eq(patron_config_parse_redis_url("redis://u:p@h:99999", &ep, &user, &pw, &db, why,
                                               sizeof(why)),
                 PATRON_EINVAL);
    cr_assert_null(ep.host);
    cr_assert_null(user, "nothing leaks on failure");
    cr_assert_null(pw);
}
