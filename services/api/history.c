/*
 * The dashboard's customers over time (see history.h).
 *
 * @locality: the loop thread; the answer is given from the Redis callback.
 */
#include "history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "patron/clock.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/num.h"

/* KEYS lease, history; ARGV token, lease ms, day, value, days kept. 0 when
 * another process holds the lease. */
static const char record_lua[] = "local cur = redis.call('GET', KEYS[1])\n"
                                 "if cur and cur ~= ARGV[1] then return 0 end\n"
                                 "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                 "redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])\n"
                                 "local over = redis.call('HLEN', KEYS[2]) - tonumber(ARGV[5])\n"
                                 "if over > 0 then\n"
                                 "  local days = redis.call('HKEYS', KEYS[2])\n"
                                 "  table.sort(days)\n"
                                 "  for i = 1, over do redis.call('HDEL', KEYS[2], days[i]) end\n"
                                 "end\n"
                                 "return 1\n";

struct api_history {
    struct patron_kv *redis;
    struct patron_kv_script *record;
    const struct patron_log *log;
    int refresh_ms;
    char token[64];
    bool writer; /* the last write held the lease (for the log) */
    struct patron_counter *m_skipped, *m_written;
};

struct history_req {
    struct api_history *h;
    struct api *api;
    struct patron_http_response *res;
    int64_t from_day, to_day;
};

/* ---- recording ------------------------------------------------------------------ */

static void on_recorded(void *ud, redisReply *reply)
{
    struct api_history *h = ud;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        patron_log(h->log, PATRON_LOG_WARN, "dashboard history not written", "\"error\":\"%s\"",
                   reply ? reply->str : "redis unavailable");
        return;
    }
    bool wrote = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    if (wrote)
        patron_counter_inc(h->m_written);
    if (wrote != h->writer)
        patron_log(h->log, PATRON_LOG_INFO,
                   wrote ? "writing the dashboard history" : "another process writes the history",
                   NULL);
    h->writer = wrote;
}

void api_history_record(struct api_history *h, const struct patron_history_day *day)
{
    char date[PATRON_DATE_LEN + 1], lease[24], keep[24];
    if (h->record == NULL || patron_utc_date_format(patron_utc_day(day->as_of_ms), date) != 0)
        return; /* a clock before 1970: nothing to record */
    char *value = patron_history_day_encode(day);
    snprintf(lease, sizeof(lease), "%d", API_HISTORY_LEASE_REFRESHES * h->refresh_ms);
    snprintf(keep, sizeof(keep), "%d", PATRON_HISTORY_DAYS_MAX);
    const char *argv[] = {PATRON_KEY_DASHBOARD_LEASE,
                          PATRON_KEY_DASHBOARD_HISTORY,
                          h->token,
                          lease,
                          date,
                          value,
                          keep};
    if (patron_kv_evalsha(h->redis, h->record, on_recorded, h, 2, 5, argv, NULL))
        patron_log(h->log, PATRON_LOG_WARN, "dashboard history not written",
                   "\"error\":\"redis unavailable\"");
    free(value);
}

/* ---- GET /v1/dashboard/history ---------------------------------------------------- */

struct entry {
    char date[PATRON_DATE_LEN + 1];
    struct patron_history_day day;
};

static int by_date(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->date, ((const struct entry *)b)->date);
}

static void answer(struct history_req *rq, const redisReply *reply)
{
    struct api_history *h = rq->h;
    size_t cap = reply->elements / 2, n = 0;
    struct entry *e = patron_malloc((cap ? cap : 1) * sizeof(*e));
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *f = reply->element[i], *v = reply->element[i + 1];
        int64_t day;
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            patron_utc_date_parse(f->str, (size_t)f->len, &day) != 0 ||
            patron_history_day_decode(v->str, (size_t)v->len, &e[n].day) != 0) {
            patron_counter_inc(h->m_skipped);
            continue;
        }
        if (day < rq->from_day || day > rq->to_day)
            continue;
        memcpy(e[n].date, f->str, PATRON_DATE_LEN);
        e[n].date[PATRON_DATE_LEN] = 0;
        n++;
    }
    qsort(e, n, sizeof(*e), by_date);
    json_t *days = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(days, patron_history_day_to_json(&e[i].day, e[i].date));
    free(e);
    char from[PATRON_DATE_LEN + 1], to[PATRON_DATE_LEN + 1];
    json_t *body = json_object();
    json_object_set_new(body, "from",
                        patron_utc_date_format(rq->from_day, from) == 0 ? json_string(from)
                                                                        : json_null());
    json_object_set_new(
        body, "to", patron_utc_date_format(rq->to_day, to) == 0 ? json_string(to) : json_null());
    json_object_set_new(body, "days", days);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (text)
        api_respond_json_text(rq->api, rq->res, 200, text);
    else
        api_respond_error(rq->api, rq->res, 500, "internal", "response did not render");
    free(text);
}

static void on_history(void *ud, redisReply *reply)
{
    struct history_req *rq = ud;
    if (!reply || (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) != 0))
        api_respond_error(rq->api, rq->res, 503, "unavailable", "redis unavailable");
    else if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        patron_counter_inc(rq->h->m_skipped); /* not a hash: garbage, nothing to show */
        redisReply empty = {.type = REDIS_REPLY_ARRAY};
        answer(rq, &empty);
    } else {
        answer(rq, reply);
    }
    free(rq);
}

void api_history_get(struct api_history *h, struct api *api, int64_t now_ms,
                     const struct patron_http_request *req, struct patron_http_response *res)
{
    int64_t days = API_HISTORY_DAYS_DEFAULT;
    char buf[8];
    int n = patron_http_query_param(req->query, "days", buf, sizeof(buf));
    if (n != PATRON_ENOTFOUND &&
        (n <= 0 || patron_parse_i64(buf, (size_t)n, 1, PATRON_HISTORY_DAYS_MAX, &days) != 0)) {
        api_respond_error(api, res, 400, "bad_request", "days must be an integer from 1 to 400");
        return;
    }
    struct history_req *rq = patron_calloc(1, sizeof(*rq));
    rq->h = h;
    rq->api = api;
    rq->to_day = patron_utc_day(now_ms);
    rq->from_day = rq->to_day - days + 1 < 0 ? 0 : rq->to_day - days + 1;
    const char *argv[] = {"HGETALL", PATRON_KEY_DASHBOARD_HISTORY};
    if (patron_kv_commandv(h->redis, on_history, rq, 2, argv, NULL)) {
        free(rq);
        api_respond_error(api, res, 503, "unavailable", "redis unavailable");
        return;
    }
    rq->res = patron_http_defer(res);
}

/* ---- lifecycle ------------------------------------------------------------------- */

struct api_history *api_history_new(struct patron_kv *redis, struct patron_metrics *metrics,
                                    const struct patron_log *log, int refresh_ms)
{
    struct api_history *h = patron_calloc(1, sizeof(*h));
    h->redis = redis;
    h->log = log;
    h->refresh_ms = refresh_ms > 0 ? refresh_ms : 30000;
    snprintf(h->token, sizeof(h->token), "%ld-%" PRId64, (long)getpid(), patron_wall_ms());
    if (patron_kv_script(redis, record_lua, &h->record) != 0) {
        h->record = NULL; /* a closing client: nothing will be recorded */
        patron_log(log, PATRON_LOG_ERROR, "dashboard history script not loaded", NULL);
    }
    h->m_skipped = patron_metrics_counter(
        metrics, "patron_api_dashboard_skipped_total",
        "Redis values the dashboard skipped because they do not parse", "reason=\"history\"");
    h->m_written = patron_metrics_counter(metrics, "patron_api_dashboard_history_writes_total",
                                          "Days of customer counts this process wrote", NULL);
    return h;
}

void api_history_free(struct api_history *h)
{
    free(h);
}
