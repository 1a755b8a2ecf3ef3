/*
 * GET /v1/campaigns/daily (see campaign_stats.h): the trigger's daily
 * counters, summed over partitions and variants.
 *
 * @locality: the loop thread; the answer is given from the last Redis
 * callback of the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "campaign_stats.h"
#include "patron/clock.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/metrics.h"
#include "patron/num.h"
#include "patron/stats_field.h"
#include "patron/strmap.h"

/* What a day of a campaign shows. */
enum figure {
    F_ELIGIBLE,
    F_SENT,
    F_CONVERSIONS,
    F_REVENUE,
    F_WOULD_HAVE_SENT,
    F_CONTROL_CONVERSIONS,
    F_CONTROL_REVENUE,
    F_COUNT
};

/* The figure a counter adds to; F_COUNT for none. Every decision is one
 * eligible customer (campaigns.md, "Statistics"). */
static enum figure figure_of(enum patron_stat s)
{
    switch (s) {
    case PATRON_STAT_SENT:
        return F_SENT;
    case PATRON_STAT_CONVERSIONS:
        return F_CONVERSIONS;
    case PATRON_STAT_REVENUE_CENTS:
        return F_REVENUE;
    case PATRON_STAT_CONTROL_GROUP:
        return F_WOULD_HAVE_SENT;
    case PATRON_STAT_CONTROL_CONVERSIONS:
        return F_CONTROL_CONVERSIONS;
    case PATRON_STAT_CONTROL_REVENUE_CENTS:
        return F_CONTROL_REVENUE;
    default:
        return F_COUNT;
    }
}

struct campaign {
    char id[PATRON_CAMPAIGN_ID_MAX + 1];
    int64_t (*days)[F_COUNT]; /* n_days rows */
};

struct daily_req {
    struct api_campaign_stats *s;
    const struct api_stats_skips *skip;
    struct api *api;
    struct patron_http_response *res;
    int64_t now_ms, from_day;
    size_t n_days;
    char only[PATRON_CAMPAIGN_ID_MAX + 1]; /* "" for every campaign */
    size_t outstanding;                    /* replies still due, plus one while issuing */
    bool failed;
    struct patron_strmap campaigns; /* id -> struct campaign (owned) */
};

/* An HGETALL of one partition's day. */
struct day_ctx {
    struct daily_req *rq;
    size_t index; /* into the days */
};

static void req_free(struct daily_req *rq)
{
    for (size_t i = 0; i < rq->campaigns.cap; i++)
        if (rq->campaigns.slots[i].key) {
            struct campaign *c = rq->campaigns.slots[i].value;
            free(c->days);
            free(c);
        }
    patron_strmap_free(&rq->campaigns);
    free(rq);
}

static bool campaign_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > PATRON_CAMPAIGN_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '_'))
            return false;
    return true;
}

/* ---- the answer ----------------------------------------------------------------- */

static int by_id(const void *a, const void *b)
{
    return strcmp((*(struct campaign *const *)a)->id, (*(struct campaign *const *)b)->id);
}

static json_t *day_json(const int64_t *f, const char *date)
{
    json_t *control = json_object(), *o = json_object();
    json_object_set_new(control, "would_have_sent", json_integer(f[F_WOULD_HAVE_SENT]));
    json_object_set_new(control, "conversions", json_integer(f[F_CONTROL_CONVERSIONS]));
    json_object_set_new(control, "revenue_cents", json_integer(f[F_CONTROL_REVENUE]));
    json_object_set_new(o, "day", json_string(date));
    json_object_set_new(o, "eligible", json_integer(f[F_ELIGIBLE]));
    json_object_set_new(o, "sent", json_integer(f[F_SENT]));
    json_object_set_new(o, "conversions", json_integer(f[F_CONVERSIONS]));
    json_object_set_new(o, "revenue_cents", json_integer(f[F_REVENUE]));
    json_object_set_new(o, "control", control);
    return o;
}

static void finish(struct daily_req *rq)
{
    if (rq->failed) {
        api_respond_error(rq->api, rq->res, 503, "unavailable", "redis unavailable");
        req_free(rq);
        return;
    }
    size_t n = 0;
    struct campaign **all =
        patron_malloc((rq->campaigns.count ? rq->campaigns.count : 1) * sizeof(*all));
    for (size_t i = 0; i < rq->campaigns.cap; i++)
        if (rq->campaigns.slots[i].key)
            all[n++] = rq->campaigns.slots[i].value;
    qsort(all, n, sizeof(*all), by_id);
    char dates[PATRON_DAILY_DAYS_MAX][PATRON_DATE_LEN + 1];
    for (size_t d = 0; d < rq->n_days; d++)
        if (patron_utc_date_format(rq->from_day + (int64_t)d, dates[d]) != 0)
            dates[d][0] = 0; /* cannot happen: the range is checked */
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *days = json_array(), *o = json_object();
        for (size_t d = 0; d < rq->n_days; d++)
            json_array_append_new(days, day_json(all[i]->days[d], dates[d]));
        json_object_set_new(o, "campaign_id", json_string(all[i]->id));
        json_object_set_new(o, "days", days);
        json_array_append_new(list, o);
    }
    free(all);
    json_t *body = json_object();
    json_object_set_new(body, "from", json_string(dates[0]));
    json_object_set_new(body, "to", json_string(dates[rq->n_days - 1]));
    json_object_set_new(body, "as_of_ms", json_integer(rq->now_ms));
    json_object_set_new(body, "campaigns", list);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (text)
        api_respond_json_text(rq->api, rq->res, 200, text);
    else
        api_respond_error(rq->api, rq->res, 500, "internal", "response did not render");
    free(text);
    req_free(rq);
}

static void settle(struct daily_req *rq)
{
    if (--rq->outstanding == 0)
        finish(rq);
}

/* ---- the counters ----------------------------------------------------------------- */

static void add_field(struct daily_req *rq, size_t day, const redisReply *f, const redisReply *v)
{
    char campaign[PATRON_CAMPAIGN_ID_MAX + 1], variant[PATRON_CAMPAIGN_ID_MAX + 1];
    enum patron_stat stat;
    int64_t value;
    if (f->type != REDIS_REPLY_STRING ||
        patron_stats_field_parse(f->str, (size_t)f->len, campaign, variant, &stat) != 0) {
        patron_counter_inc(rq->skip->field);
        return;
    }
    if (v->type != REDIS_REPLY_STRING ||
        patron_parse_i64(v->str, (size_t)v->len, 0, INT64_MAX, &value) != 0) {
        patron_counter_inc(rq->skip->value);
        return;
    }
    if (rq->only[0] && strcmp(rq->only, campaign) != 0)
        return;
    size_t clen = strlen(campaign);
    struct campaign *c = patron_strmap_get(&rq->campaigns, campaign, clen);
    if (!c) {
        if (rq->campaigns.count == API_DAILY_CAMPAIGNS_MAX) {
            patron_counter_inc(rq->skip->rows);
            return;
        }
        c = patron_calloc(1, sizeof(*c));
        memcpy(c->id, campaign, clen + 1);
        c->days = patron_calloc(rq->n_days, sizeof(*c->days));
        (void)patron_strmap_put(&rq->campaigns, c->id, clen, c);
    }
    enum figure fig = figure_of(stat);
    int64_t *row = c->days[day];
    bool decision = stat <= PATRON_STAT_FREQUENCY_CAP; /* sent, exited, suppressed */
    if ((fig != F_COUNT && __builtin_add_overflow(row[fig], value, &row[fig])) ||
        (decision && __builtin_add_overflow(row[F_ELIGIBLE], value, &row[F_ELIGIBLE])))
        patron_counter_inc(rq->skip->value);
}

static void on_day(void *ud, redisReply *reply)
{
    struct day_ctx *ctx = ud;
    struct daily_req *rq = ctx->rq;
    size_t day = ctx->index;
    free(ctx);
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply)))
        rq->failed = true;
    else if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2)
        patron_counter_inc(rq->skip->partition);
    else if (!rq->failed)
        for (size_t i = 0; i + 1 < reply->elements; i += 2)
            add_field(rq, day, reply->element[i], reply->element[i + 1]);
    settle(rq);
}

/* One partition's days in the range: ZRANGEBYSCORE ... WITHSCORES pairs. */
struct days_ctx {
    struct daily_req *rq;
    int partition;
};

static void on_days(void *ud, redisReply *reply)
{
    struct days_ctx *dc = ud;
    struct daily_req *rq = dc->rq;
    int p = dc->partition;
    free(dc);
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply))) {
        rq->failed = true;
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        patron_counter_inc(rq->skip->partition);
    } else {
        for (size_t i = 0; i + 1 < reply->elements && !rq->failed; i += 2) {
            const redisReply *m = reply->element[i], *sc = reply->element[i + 1];
            int64_t day, score;
            /* the member is the date, the score its number: both must agree */
            if (m->type != REDIS_REPLY_STRING || sc->type != REDIS_REPLY_STRING ||
                patron_utc_date_parse(m->str, (size_t)m->len, &day) != 0 ||
                patron_parse_i64(sc->str, (size_t)sc->len, 0, PATRON_DAY_MAX, &score) != 0 ||
                score != day || day < rq->from_day || day >= rq->from_day + (int64_t)rq->n_days) {
                patron_counter_inc(rq->skip->field);
                continue;
            }
            char key[PATRON_KEY_MAX];
            int kl = patron_key_trigger_daily(key, sizeof(key), p, day);
            if (kl < 0)
                continue;
            struct day_ctx *ctx = patron_malloc(sizeof(*ctx));
            *ctx = (struct day_ctx){rq, (size_t)(day - rq->from_day)};
            const char *argv[] = {"HGETALL", key};
            size_t lens[] = {7, (size_t)kl};
            rq->outstanding++;
            if (patron_kv_commandv(api_campaign_stats_redis(rq->s), on_day, ctx, 2, argv, lens)) {
                free(ctx);
                rq->outstanding--;
                rq->failed = true;
            }
        }
    }
    settle(rq);
}

static void on_partitions(void *ud, redisReply *reply)
{
    struct daily_req *rq = ud;
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply))) {
        rq->failed = true;
        settle(rq);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        patron_counter_inc(rq->skip->partition);
        settle(rq);
        return;
    }
    char lo[24], hi[24];
    snprintf(lo, sizeof(lo), "%lld", (long long)rq->from_day);
    snprintf(hi, sizeof(hi), "%lld", (long long)(rq->from_day + (int64_t)rq->n_days - 1));
    size_t taken = 0;
    for (size_t i = 0; i < reply->elements && !rq->failed; i++) {
        const redisReply *e = reply->element[i];
        int p = e->type == REDIS_REPLY_STRING ? api_partition_parse(e->str, (size_t)e->len) : -1;
        if (p < 0 || taken == API_PARTITIONS_MAX) {
            patron_counter_inc(rq->skip->partition);
            continue;
        }
        taken++;
        char key[32];
        if (patron_key_trigger(key, sizeof(key), p, "daily") < 0)
            continue;
        struct days_ctx *dc = patron_malloc(sizeof(*dc));
        *dc = (struct days_ctx){rq, p};
        const char *argv[] = {"ZRANGEBYSCORE", key, lo, hi, "WITHSCORES"};
        rq->outstanding++;
        if (patron_kv_commandv(api_campaign_stats_redis(rq->s), on_days, dc, 5, argv, NULL)) {
            free(dc);
            rq->outstanding--;
            rq->failed = true;
        }
    }
    settle(rq); /* the SMEMBERS reply's own share */
}

void api_campaign_daily_get(struct api_campaign_stats *s, struct api *api, int64_t now_ms,
                            const struct patron_http_request *req, struct patron_http_response *res)
{
    int64_t days = API_DAILY_DAYS_DEFAULT;
    char buf[PATRON_CAMPAIGN_ID_MAX + 2];
    int n = patron_http_query_param(req->query, "days", buf, sizeof(buf));
    if (n != PATRON_ENOTFOUND &&
        (n <= 0 || patron_parse_i64(buf, (size_t)n, 1, PATRON_DAILY_DAYS_MAX, &days) != 0)) {
        api_respond_error(api, res, 400, "bad_request", "days must be an integer from 1 to 400");
        return;
    }
    char only[sizeof(buf)] = "";
    n = patron_http_query_param(req->query, "campaign", only, sizeof(only));
    if (n != PATRON_ENOTFOUND && (n <= 0 || !campaign_id_ok(only, (size_t)n))) {
        api_respond_error(api, res, 400, "bad_request",
                          "campaign must be a campaign id: 1 to 64 of [a-z0-9_-]");
        return;
    }
    if (n == PATRON_ENOTFOUND)
        only[0] = 0;
    int64_t to = patron_utc_day(now_ms);
    if (to < 0)
        to = 0;
    if (to > PATRON_DAY_MAX)
        to = PATRON_DAY_MAX;
    struct daily_req *rq = patron_calloc(1, sizeof(*rq));
    rq->s = s;
    rq->skip = api_campaign_stats_skips(s);
    rq->api = api;
    rq->now_ms = now_ms;
    rq->from_day = to - days + 1 < 0 ? 0 : to - days + 1;
    rq->n_days = (size_t)(to - rq->from_day + 1);
    memcpy(rq->only, only, sizeof(rq->only));
    rq->outstanding = 1;
    patron_strmap_init(&rq->campaigns);
    const char *argv[] = {"SMEMBERS", PATRON_KEY_TRIGGER_PARTITIONS};
    if (patron_kv_commandv(api_campaign_stats_redis(s), on_partitions, rq, 2, argv, NULL)) {
        req_free(rq);
        api_respond_error(api, res, 503, "unavailable", "redis unavailable");
        return;
    }
    rq->res = patron_http_defer(res);
}
