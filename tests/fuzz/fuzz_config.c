/*
 * The configuration loader over a fuzzed environment: the input is
 * "NAME=value" strings separated by NUL bytes, given to patron_config_load
 * as envp (the lookup and the scan of PATRON_RDKAFKA_* and unknown names);
 * each value also goes through the host:port and Redis URL parsers alone.
 *
 * Properties: success gives a configuration within its documented bounds;
 * failure names the variable ("PATRON_X: why") and never quotes a secret
 * (PATRON_REDIS_URL, PATRON_API_TOKEN, PATRON_RDKAFKA_*); patron_config_free
 * releases everything either way (LeakSanitizer checks).
 */
#include "fuzz.h"
#include "patron/config.h"

#define ENV_MAX 64

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* An error about a secret says why, never what: no "(got ...)" echo after
 * the variable's name (which the error quotes, cut at 150 bytes, and which
 * the environment may have made look like anything). */
static void check_secret_not_echoed(char *const *envp, const char *err)
{
    if (!has_prefix(err, "PATRON_REDIS_URL:") && !has_prefix(err, "PATRON_API_TOKEN:") &&
        !has_prefix(err, "PATRON_RDKAFKA_"))
        return;
    for (char *const *e = envp; *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : 0;
        n = n > 150 ? 150 : n;
        if (n == 0 || strncmp(err, *e, n) != 0 || strncmp(err + n, ": ", 2) != 0)
            continue;
        FUZZ_CHECK(strstr(err + n, "(got \"") == NULL, "the error \"%s\" quotes a secret", err);
        return;
    }
}

static void check_config(const struct patron_config *c)
{
    FUZZ_CHECK(c->service && strcmp(c->service, "patron-fuzz") == 0, "service name");
    FUZZ_CHECK(c->kafka_brokers && c->http_addr && c->http.host, "a defaulted string is NULL");
    /* one node, or the seeds of a cluster */
    FUZZ_CHECK(c->n_redis_cluster > 0 ||
                   (c->redis.host && c->redis.port >= 1 && c->redis.port <= 65535),
               "redis endpoint %s:%d", c->redis.host ? c->redis.host : "NULL", c->redis.port);
    FUZZ_CHECK(c->http.port >= 0 && c->http.port <= 65535, "http port %d", c->http.port);
    FUZZ_CHECK(c->n_redis_cluster <= PATRON_CONFIG_CLUSTER_MAX, "%zu cluster seeds",
               c->n_redis_cluster);
    for (size_t i = 0; i < c->n_redis_cluster; i++)
        FUZZ_CHECK(c->redis_cluster[i].host && c->redis_cluster[i].port >= 1 &&
                       c->redis_cluster[i].port <= 65535,
                   "cluster seed %zu", i);
    FUZZ_CHECK(c->n_rdkafka_props <= PATRON_CONFIG_RDKAFKA_MAX, "%zu rdkafka props",
               c->n_rdkafka_props);
    FUZZ_CHECK(c->n_unknown_vars <= PATRON_CONFIG_UNKNOWN_MAX, "%zu unknown vars",
               c->n_unknown_vars);
    FUZZ_CHECK(c->batch_max >= 1 && c->batch_max <= 100000, "batch_max %d", c->batch_max);
    FUZZ_CHECK(c->http_workers >= 1 && c->http_workers <= 64, "http_workers %d", c->http_workers);
    FUZZ_CHECK(c->inflight_batches >= 1 && c->inflight_batches <= 64, "inflight_batches %d",
               c->inflight_batches);
    FUZZ_CHECK(c->graph_history >= 0 && c->graph_history <= 64, "graph_history %d",
               c->graph_history);
    FUZZ_CHECK(c->graph_topk >= 1 && c->graph_topk <= 1000, "graph_topk %d", c->graph_topk);
    const struct patron_profile_config *p = &c->profile;
    FUZZ_CHECK(p->tier_gold_cents < p->tier_platinum_cents, "tiers not increasing");
}

static void parse_alone(const char *value)
{
    char host[PATRON_CONFIG_HOST_MAX + 1];
    int port = -1;
    if (patron_config_parse_hostport(value, host, sizeof(host), &port) == 0)
        FUZZ_CHECK(port >= 0 && port <= 65535 && strlen(host) <= PATRON_CONFIG_HOST_MAX,
                   "hostport %s: port %d", value, port);
    struct patron_endpoint ep = {0};
    char *user = NULL, *password = NULL, why[256];
    int db = -1;
    if (patron_config_parse_redis_url(value, &ep, &user, &password, &db, why, sizeof(why)) == 0) {
        FUZZ_CHECK(ep.host && ep.port >= 1 && ep.port <= 65535 && db >= 0,
                   "redis url %s: port %d db %d", value, ep.port, db);
        free(ep.host);
        free(user);
        free(password);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* NUL-separated strings, each its own allocation (ASan sees past it) */
    char *envp[ENV_MAX + 1];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < ENV_MAX; i++) {
        if (i < size && data[i] != '\0')
            continue;
        envp[n] = malloc(i - start + 1);
        FUZZ_CHECK(envp[n], "out of memory");
        memcpy(envp[n], data + start, i - start);
        envp[n][i - start] = '\0';
        n++;
        start = i + 1;
    }
    envp[n] = NULL;

    struct patron_config cfg;
    char err[512];
    int rc = patron_config_load(&cfg, "patron-fuzz", NULL, NULL, envp, err, sizeof(err));
    if (rc == 0) {
        check_config(&cfg);
    } else {
        FUZZ_CHECK(rc == PATRON_EINVAL, "load returned %d", rc);
        FUZZ_CHECK(has_prefix(err, "PATRON_"), "the error \"%s\" names no variable", err);
        check_secret_not_echoed(envp, err);
    }
    patron_config_free(&cfg);

    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(envp[i], '=');
        parse_alone(eq ? eq + 1 : envp[i]);
        free(envp[i]);
    }
    return 0;
}
