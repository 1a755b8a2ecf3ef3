/*
 * The recommendation routes (see recommend.h).
 *
 * @locality: the loop thread; an answer is given from the fetcher's
 * callback, which runs on the loop.
 */
#include "recommend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "patron/event_check.h"
#include "patron/num.h"

const char *api_reco_query_parse(const char *query, bool category_allowed, struct api_reco_query *q)
{
    *q = (struct api_reco_query){.limit = PATRON_RECO_LIMIT_DEFAULT};
    char buf[8];
    int n = patron_http_query_param(query, "limit", buf, sizeof(buf));
    if (n != PATRON_ENOTFOUND) {
        int64_t v;
        if (n <= 0 || patron_parse_i64(buf, (size_t)n, 1, PATRON_RECO_LIMIT_MAX, &v))
            return "limit must be an integer from 1 to 100";
        q->limit = (size_t)v;
    }
    if (!category_allowed)
        return NULL;
    n = patron_http_query_param(query, "category", q->category, sizeof(q->category));
    if (n == PATRON_ENOTFOUND)
        return NULL;
    if (n <= 0)
        return n == PATRON_ETOOBIG ? "category is longer than 64 bytes"
                                   : "category must not be empty";
    for (int i = 0; i < n; i++)
        if ((unsigned char)q->category[i] < 0x20 || q->category[i] == 0x7f)
            return "category holds a control character";
    q->has_category = true;
    return NULL;
}

/* A request waiting for its recommendations. */
struct pending_reco {
    struct api *api;
    struct patron_http_response *res;
    bool customer; /* else similar items */
    bool visitor;  /* a customer's answer asked for by a visitor's id */
    char id[PATRON_ID_MAX + 1];
};

/* Appends s as a JSON string: quotes and backslashes escaped; the ids are
 * checked UTF-8 without control bytes (patron_event_text_valid), so nothing
 * else needs escaping. */
static size_t put_string(char *dst, const char *s)
{
    size_t n = 0;
    dst[n++] = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            dst[n++] = '\\';
        dst[n++] = *s;
    }
    dst[n++] = '"';
    return n;
}

/* Each id at most PATRON_ID_MAX bytes, doubled by escapes, plus the quotes,
 * the score and the punctuation. */
#define ITEM_JSON_MAX (2 * PATRON_ID_MAX + 64)
#define ANSWER_JSON_MAX (ITEM_JSON_MAX * (PATRON_RECO_LIMIT_MAX + 2) + 64)

/* {"customer_id":..,"strategy":..,"items":[{"item_id":..,"score":..}]},
 * {"anonymous_id":..,"customer_id":..|null,"strategy":..,"items":[..]} or
 * {"item_id":..,"items":[..]}, rendered directly into out (ANSWER_JSON_MAX
 * bytes): the answer is the hot path. Items whose id is not valid text are
 * left out (ingest never writes one). Returns the length. */
static size_t render(const struct pending_reco *pd, const struct patron_reco_answer *a, char *out)
{
    char *p = out;
    if (pd->visitor) {
        memcpy(p, "{\"anonymous_id\":", 16);
        p += 16;
        p += put_string(p, pd->id);
        memcpy(p, ",\"customer_id\":", 15);
        p += 15;
        if (a->customer_id[0] && patron_event_text_valid(a->customer_id, strlen(a->customer_id))) {
            p += put_string(p, a->customer_id);
        } else {
            memcpy(p, "null", 4);
            p += 4;
        }
        p += snprintf(p, 64, ",\"strategy\":\"%s\",\"items\":[",
                      patron_reco_strategy_name(a->strategy));
    } else if (pd->customer) {
        memcpy(p, "{\"customer_id\":", 15);
        p += 15;
        p += put_string(p, pd->id);
        p += snprintf(p, 64, ",\"strategy\":\"%s\",\"items\":[",
                      patron_reco_strategy_name(a->strategy));
    } else {
        memcpy(p, "{\"item_id\":", 11);
        p += 11;
        p += put_string(p, pd->id);
        memcpy(p, ",\"items\":[", 10);
        p += 10;
    }
    bool first = true;
    for (size_t i = 0; i < a->n; i++) {
        const char *id = a->items[i].item;
        if (!patron_event_text_valid(id, strlen(id)))
            continue;
        if (!first)
            *p++ = ',';
        first = false;
        memcpy(p, "{\"item_id\":", 11);
        p += 11;
        p += put_string(p, id);
        memcpy(p, ",\"score\":", 9);
        p += 9;
        p = patron_put_score(p, a->items[i].score);
        *p++ = '}';
    }
    memcpy(p, "]}", 3);
    return (size_t)(p + 2 - out);
}

static void on_answer(void *ud, const struct patron_reco_answer *a)
{
    struct pending_reco *pd = ud;
    if (a->err == PATRON_EIO) {
        api_respond_error(pd->api, pd->res, 503, "unavailable", "redis unavailable");
    } else if (a->err) {
        api_respond_error(pd->api, pd->res, 500, "internal", "stored profile does not decode");
    } else {
        char body[ANSWER_JSON_MAX];
        size_t len = render(pd, a, body);
        api_respond(pd->api, pd->res, 200, "application/json", NULL, body, len);
    }
    free(pd);
}

static struct pending_reco *pending_new(struct api *api, struct patron_http_response *res,
                                        bool customer, const char *id, size_t id_len)
{
    struct pending_reco *pd = patron_calloc(1, sizeof(*pd));
    pd->api = api;
    pd->res = res;
    pd->customer = customer;
    memcpy(pd->id, id, id_len);
    return pd;
}

static void recommendations(struct api *api, struct patron_reco_fetcher *f, int64_t now_ms,
                            bool visitor, const char *id, size_t id_len,
                            const struct patron_http_request *req, struct patron_http_response *res)
{
    const char *invalid = visitor ? "invalid anonymous id" : "invalid customer id";
    struct api_reco_query q;
    const char *why = api_reco_query_parse(req->query, true, &q);
    if (why) {
        api_respond_error(api, res, 400, "bad_request", why);
        return;
    }
    if (!patron_event_text_valid(id, id_len)) {
        api_respond_error(api, res, 400, "bad_request", invalid);
        return;
    }
    struct pending_reco *pd = pending_new(api, res, true, id, id_len);
    pd->visitor = visitor;
    const char *category = q.has_category ? q.category : NULL;
    int rc =
        visitor
            ? patron_reco_fetch_visitor(f, id, id_len, category, q.limit, now_ms, on_answer, pd)
            : patron_reco_fetch_customer(f, id, id_len, category, q.limit, now_ms, on_answer, pd);
    if (rc) {
        free(pd);
        if (rc == PATRON_EINVAL)
            api_respond_error(api, res, 400, "bad_request", invalid);
        else
            api_respond_error(api, res, 503, "unavailable", "redis unavailable");
        return;
    }
    pd->res = patron_http_defer(res);
}

void api_recommendations(struct api *api, struct patron_reco_fetcher *f, int64_t now_ms,
                         const char *customer_id, size_t id_len,
                         const struct patron_http_request *req, struct patron_http_response *res)
{
    recommendations(api, f, now_ms, false, customer_id, id_len, req, res);
}

void api_visitor_recommendations(struct api *api, struct patron_reco_fetcher *f, int64_t now_ms,
                                 const char *anonymous_id, size_t id_len,
                                 const struct patron_http_request *req,
                                 struct patron_http_response *res)
{
    recommendations(api, f, now_ms, true, anonymous_id, id_len, req, res);
}

void api_similar(struct api *api, struct patron_reco_fetcher *f, const char *item_id, size_t id_len,
                 const struct patron_http_request *req, struct patron_http_response *res)
{
    struct api_reco_query q;
    const char *why = api_reco_query_parse(req->query, false, &q);
    if (why) {
        api_respond_error(api, res, 400, "bad_request", why);
        return;
    }
    if (!patron_event_text_valid(item_id, id_len)) {
        api_respond_error(api, res, 400, "bad_request", "invalid item id");
        return;
    }
    struct pending_reco *pd = pending_new(api, res, false, item_id, id_len);
    int rc = patron_reco_fetch_similar(f, item_id, id_len, q.limit, on_answer, pd);
    if (rc) {
        free(pd);
        if (rc == PATRON_EINVAL)
            api_respond_error(api, res, 400, "bad_request", "invalid item id");
        else
            api_respond_error(api, res, 503, "unavailable", "redis unavailable");
        return;
    }
    pd->res = patron_http_defer(res);
}
