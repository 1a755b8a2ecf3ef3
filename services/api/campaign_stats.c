/*
 * GET /v1/campaigns/stats (see campaign_stats.h).
 *
 * @locality: the loop thread; the answer is given from the last Redis
 * callback of the request.
 */
#include "campaign_stats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "patron/keys.h"
#include "patron/metrics.h"
#include "patron/num.h"
#include "patron/stats_field.h"
#include "patron/kv.h"
#include "patron/strmap.h"

/* z for a two-sided 95% interval */
#define Z95 1.959963984540054

/* The suppression reasons, in the order of docs/contracts/campaigns.md, as the answer names them.
 */
static const enum patron_stat suppressed[] = {
    PATRON_STAT_CONSENT,  PATRON_STAT_AUDIENCE,      PATRON_STAT_CONTROL_GROUP,
    PATRON_STAT_COOLDOWN, PATRON_STAT_FREQUENCY_CAP,
};

struct api_campaign_stats {
    struct patron_kv *redis;
    struct patron_counter *m_skip_partition, *m_skip_field, *m_skip_value, *m_skip_rows;
    struct api_stats_skips skips; /* the same, for campaign_daily.c */
};

/* One campaign and variant, summed over partitions. */
struct row {
    char key[2 * PATRON_ID_MAX + 2]; /* campaign '|' variant: the map's key */
    char campaign[PATRON_ID_MAX + 1];
    char variant[PATRON_ID_MAX + 1];
    int64_t c[PATRON_STATS];
};

/* A request waiting for its partitions' hashes. */
struct stats_req {
    struct api_campaign_stats *s;
    struct api *api;
    struct patron_http_response *res;
    int64_t now_ms;
    size_t outstanding; /* replies still to come, plus one while issuing */
    bool failed;        /* Redis failed: the answer is a 503 */
    struct patron_strmap rows;
    size_t n_rows;
};

/* ---- pure helpers ---------------------------------------------------------- */

int api_partition_parse(const char *s, size_t len)
{
    int64_t v;
    return patron_parse_i64(s, len, 0, API_PARTITION_MAX, &v) ? -1 : (int)v;
}

void api_uplift_compute(int64_t sent, int64_t conversions, int64_t control, int64_t control_conv,
                        struct api_uplift *out)
{
    *out = (struct api_uplift){0};
    if (sent > 0) {
        out->has_rate = true;
        out->rate = (double)conversions / (double)sent;
    }
    if (control > 0) {
        out->has_control_rate = true;
        out->control_rate = (double)control_conv / (double)control;
    }
    if (!out->has_rate || !out->has_control_rate)
        return;
    out->has_uplift = true;
    out->uplift = out->rate - out->control_rate;
    double p1 = out->rate, p2 = out->control_rate;
    /* A rate above 1 (more conversions than sends) has no binomial variance. */
    if (p1 < 0 || p1 > 1 || p2 < 0 || p2 > 1)
        return;
    double se = sqrt(p1 * (1 - p1) / (double)sent + p2 * (1 - p2) / (double)control);
    if (!isfinite(se))
        return;
    out->has_ci = true;
    out->ci_lo = out->uplift - Z95 * se;
    out->ci_hi = out->uplift + Z95 * se;
}

/* ---- the request ----------------------------------------------------------- */

static void req_free(struct stats_req *rq)
{
    for (size_t i = 0; i < rq->rows.cap; i++)
        free(rq->rows.slots[i].value);
    patron_strmap_free(&rq->rows);
    free(rq);
}

static void add_field(struct stats_req *rq, const redisReply *f, const redisReply *v)
{
    struct api_campaign_stats *s = rq->s;
    char campaign[PATRON_CAMPAIGN_ID_MAX + 1], variant[PATRON_CAMPAIGN_ID_MAX + 1];
    enum patron_stat counter;
    int64_t value;
    if (f->type != REDIS_REPLY_STRING ||
        patron_stats_field_parse(f->str, (size_t)f->len, campaign, variant, &counter) != 0) {
        patron_counter_inc(s->m_skip_field);
        return;
    }
    if (v->type != REDIS_REPLY_STRING ||
        patron_parse_i64(v->str, (size_t)v->len, 0, INT64_MAX, &value) != 0) {
        patron_counter_inc(s->m_skip_value);
        return;
    }
    char key[2 * PATRON_ID_MAX + 2];
    int klen = snprintf(key, sizeof(key), "%s|%s", campaign, variant);
    struct row *r = patron_strmap_get(&rq->rows, key, (size_t)klen);
    if (!r) {
        if (rq->n_rows == API_STATS_ROWS_MAX) {
            patron_counter_inc(s->m_skip_rows);
            return;
        }
        r = patron_calloc(1, sizeof(*r));
        memcpy(r->key, key, (size_t)klen + 1);
        memcpy(r->campaign, campaign, sizeof(campaign));
        memcpy(r->variant, variant, sizeof(variant));
        (void)patron_strmap_put(&rq->rows, r->key, (size_t)klen, r);
        rq->n_rows++;
    }
    int64_t sum;
    if (__builtin_add_overflow(r->c[counter], value, &sum)) {
        patron_counter_inc(s->m_skip_value);
        return;
    }
    r->c[counter] = sum;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t s;
    return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

static json_t *rate_json(bool has, double v)
{
    return has && isfinite(v) ? json_real(v) : json_null();
}

static json_t *row_json(const struct row *r)
{
    const int64_t *c = r->c;
    int64_t eligible = sat_add(c[PATRON_STAT_SENT], c[PATRON_STAT_EXITED]);
    json_t *supp = json_object();
    for (size_t i = 0; i < PATRON_ARRAY_LEN(suppressed); i++) {
        eligible = sat_add(eligible, c[suppressed[i]]);
        json_object_set_new(supp, patron_stat_name(suppressed[i]), json_integer(c[suppressed[i]]));
    }
    struct api_uplift u;
    api_uplift_compute(c[PATRON_STAT_SENT], c[PATRON_STAT_CONVERSIONS],
                       c[PATRON_STAT_CONTROL_GROUP], c[PATRON_STAT_CONTROL_CONVERSIONS], &u);
    json_t *control = json_object();
    json_object_set_new(control, "would_have_sent", json_integer(c[PATRON_STAT_CONTROL_GROUP]));
    json_object_set_new(control, "conversions", json_integer(c[PATRON_STAT_CONTROL_CONVERSIONS]));
    json_object_set_new(control, "revenue_cents",
                        json_integer(c[PATRON_STAT_CONTROL_REVENUE_CENTS]));
    json_object_set_new(control, "conversion_rate", rate_json(u.has_control_rate, u.control_rate));

    json_t *o = json_object();
    json_object_set_new(o, "campaign_id", json_string(r->campaign));
    json_object_set_new(o, "variant", json_string(r->variant));
    json_object_set_new(o, "eligible", json_integer(eligible));
    json_object_set_new(o, "sent", json_integer(c[PATRON_STAT_SENT]));
    json_object_set_new(o, "exited", json_integer(c[PATRON_STAT_EXITED]));
    json_object_set_new(o, "suppressed", supp);
    json_object_set_new(o, "conversions", json_integer(c[PATRON_STAT_CONVERSIONS]));
    json_object_set_new(o, "revenue_cents", json_integer(c[PATRON_STAT_REVENUE_CENTS]));
    json_object_set_new(o, "conversion_rate", rate_json(u.has_rate, u.rate));
    json_object_set_new(o, "control", control);
    json_object_set_new(o, "uplift", rate_json(u.has_uplift, u.uplift));
    json_t *ci = json_null();
    if (u.has_ci && isfinite(u.ci_lo) && isfinite(u.ci_hi)) {
        json_decref(ci);
        ci = json_pack("[f,f]", u.ci_lo, u.ci_hi);
    }
    json_object_set_new(o, "uplift_ci95", ci);
    return o;
}

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = *(const struct row *const *)a, *y = *(const struct row *const *)b;
    int c = strcmp(x->campaign, y->campaign);
    return c ? c : strcmp(x->variant, y->variant);
}

static void finish(struct stats_req *rq)
{
    if (rq->failed) {
        api_respond_error(rq->api, rq->res, 503, "unavailable", "redis unavailable");
        req_free(rq);
        return;
    }
    struct row **sorted = patron_malloc((rq->n_rows ? rq->n_rows : 1) * sizeof(*sorted));
    size_t n = 0;
    for (size_t i = 0; i < rq->rows.cap; i++)
        if (rq->rows.slots[i].key)
            sorted[n++] = rq->rows.slots[i].value;
    qsort(sorted, n, sizeof(*sorted), row_cmp);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, row_json(sorted[i]));
    free(sorted);
    json_t *body = json_object();
    json_object_set_new(body, "campaigns", list);
    json_object_set_new(body, "as_of_ms", json_integer(rq->now_ms));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text)
        api_respond_json_text(rq->api, rq->res, 200, text);
    else
        api_respond_error(rq->api, rq->res, 500, "internal", "response did not render");
    free(text);
    req_free(rq);
}

static void settle(struct stats_req *rq)
{
    if (--rq->outstanding == 0)
        finish(rq);
}

static void on_stats_hash(void *ud, redisReply *reply)
{
    struct stats_req *rq = ud;
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply))) {
        rq->failed = true;
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        patron_counter_inc(rq->s->m_skip_partition);
    } else if (!rq->failed) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2)
            add_field(rq, reply->element[i], reply->element[i + 1]);
    }
    settle(rq);
}

static void on_partitions(void *ud, redisReply *reply)
{
    struct stats_req *rq = ud;
    struct api_campaign_stats *s = rq->s;
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply))) {
        rq->failed = true;
        settle(rq);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        patron_counter_inc(s->m_skip_partition);
        settle(rq);
        return;
    }
    size_t taken = 0;
    for (size_t i = 0; i < reply->elements && !rq->failed; i++) {
        const redisReply *e = reply->element[i];
        int p = e->type == REDIS_REPLY_STRING ? api_partition_parse(e->str, (size_t)e->len) : -1;
        if (p < 0 || taken == API_PARTITIONS_MAX) {
            patron_counter_inc(s->m_skip_partition);
            continue;
        }
        taken++;
        char key[32];
        int klen = patron_key_trigger(key, sizeof(key), p, "stats");
        if (klen < 0)
            continue;
        const char *argv[] = {"HGETALL", key};
        size_t lens[] = {7, (size_t)klen};
        rq->outstanding++;
        if (patron_kv_commandv(s->redis, on_stats_hash, rq, 2, argv, lens)) {
            rq->outstanding--;
            rq->failed = true;
        }
    }
    settle(rq); /* the SMEMBERS reply's own share */
}

void api_campaign_stats_get(struct api_campaign_stats *s, struct api *api, int64_t now_ms,
                            struct patron_http_response *res)
{
    struct stats_req *rq = patron_calloc(1, sizeof(*rq));
    rq->s = s;
    rq->api = api;
    rq->now_ms = now_ms;
    rq->outstanding = 1;
    patron_strmap_init(&rq->rows);
    const char *argv[] = {"SMEMBERS", PATRON_KEY_TRIGGER_PARTITIONS};
    size_t lens[] = {8, strlen(PATRON_KEY_TRIGGER_PARTITIONS)};
    if (patron_kv_commandv(s->redis, on_partitions, rq, 2, argv, lens)) {
        req_free(rq);
        api_respond_error(api, res, 503, "unavailable", "redis unavailable");
        return;
    }
    rq->res = patron_http_defer(res);
}

struct api_campaign_stats *api_campaign_stats_new(struct patron_kv *redis,
                                                  struct patron_metrics *metrics)
{
    struct api_campaign_stats *s = patron_calloc(1, sizeof(*s));
    s->redis = redis;
    const char *name = "patron_api_stats_skipped_total",
               *help = "Campaign counters in Redis skipped because they do not parse";
    s->m_skip_partition = patron_metrics_counter(metrics, name, help, "reason=\"partition\"");
    s->m_skip_field = patron_metrics_counter(metrics, name, help, "reason=\"field\"");
    s->m_skip_value = patron_metrics_counter(metrics, name, help, "reason=\"value\"");
    s->m_skip_rows = patron_metrics_counter(metrics, name, help, "reason=\"rows\"");
    s->skips = (struct api_stats_skips){s->m_skip_partition, s->m_skip_field, s->m_skip_value,
                                        s->m_skip_rows};
    return s;
}

struct patron_kv *api_campaign_stats_redis(const struct api_campaign_stats *s)
{
    return s->redis;
}

const struct api_stats_skips *api_campaign_stats_skips(const struct api_campaign_stats *s)
{
    return &s->skips;
}

void api_campaign_stats_free(struct api_campaign_stats *s)
{
    free(s);
}
