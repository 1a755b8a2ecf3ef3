/*
 * patron-api: the HTTP face of Patron. Stateless: every answer is read from
 * Redis (profiles, the item graph, campaign statistics) and rendered by the
 * pure core; an erasure is published as an ErasureRequest event so that
 * ingest applies it in order with the customer's other events.
 *
 * @locality: one libuv loop; a request whose answer needs Redis is deferred
 * and completed from the Redis callback.
 */
#include "api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "patron/clock.h"
#include "patron/clock_redis.h"
#include "patron/kafka.h"
#include "patron/keys.h"
#include "patron/profile.h"
#include "patron/recommend_fetch.h"
#include "patron/kv.h"
#include "auth.h"
#include "campaign_stats.h"
#include "dashboard.h"
#include "model.h"
#include "segments.h"
#include "recommend.h"
#include "patron/v1/event.pb-c.h"
#include "patron/profile_codec.h"
#include "patron/profile_json.h"

struct api {
    uv_loop_t *loop;
    const struct patron_config *cfg;
    const struct patron_log *log;
    struct patron_metrics *metrics;
    struct patron_kv *redis;
    struct patron_producer *producer;
    struct patron_reco_fetcher *reco;
    struct api_campaign_stats *stats;
    struct api_dashboard *dashboard;
    struct api_model *model;
    struct api_auth *auth;
    struct patron_clock clock;
    uv_timer_t clock_timer;
    bool redis_up;
    uint64_t erasures;
    struct patron_counter *m_requests_ok, *m_requests_client_err, *m_requests_server_err;
    void (*on_stopped)(void *ud);
    void *stopped_ud;
};

/* A request waiting for Redis or Kafka. */
struct pending {
    struct api *api;
    struct patron_http_response *res;
    char customer_id[PATRON_ID_MAX + 1];
    char anonymous_id[PATRON_ID_MAX + 1]; /* a visitor's request */
    struct patron_profile *visitor;       /* its frozen profile, while its customer is read */
};

static void count_status(struct api *api, int status)
{
    if (status < 400)
        patron_counter_inc(api->m_requests_ok);
    else if (status < 500)
        patron_counter_inc(api->m_requests_client_err);
    else
        patron_counter_inc(api->m_requests_server_err);
}

static void respond_error(struct api *api, struct patron_http_response *res, int status,
                          const char *code, const char *msg)
{
    count_status(api, status);
    patron_service_error(res, status, code, msg);
}

static void respond_json(struct api *api, struct patron_http_response *res, int status,
                         json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        respond_error(api, res, 500, "internal", "response did not render");
        return;
    }
    count_status(api, status);
    patron_http_respond_json(res, status, text);
    free(text);
}

void api_respond_error(struct api *api, struct patron_http_response *res, int status,
                       const char *code, const char *msg)
{
    respond_error(api, res, status, code, msg);
}

void api_respond_json_text(struct api *api, struct patron_http_response *res, int status,
                           const char *json)
{
    count_status(api, status);
    patron_http_respond_json(res, status, json);
}

void api_respond(struct api *api, struct patron_http_response *res, int status,
                 const char *content_type, const char *extra_headers, const char *body, size_t len)
{
    count_status(api, status);
    patron_http_respond_ex(res, status, content_type, extra_headers, body, len);
}

static bool id_valid(const char *s, size_t n)
{
    if (n == 0 || n > PATRON_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '/')
            return false;
    return true;
}

/* ---- GET /v1/customers/{id}/profile --------------------------------------- */

static void on_profile(void *ud, redisReply *reply)
{
    struct pending *pd = ud;
    struct api *api = pd->api;
    /* the handle stays valid until answered, even if the client left */
    if (patron_reply_wrong_type(reply)) {
        patron_log(api->log, PATRON_LOG_ERROR, "stored profile of another type", NULL);
        respond_error(api, pd->res, 500, "internal", "stored profile of another type");
    } else if (!reply || reply->type == REDIS_REPLY_ERROR) {
        respond_error(api, pd->res, 503, "unavailable", "redis unavailable");
    } else if (reply->type != REDIS_REPLY_STRING) {
        respond_error(api, pd->res, 404, "not_found", "unknown customer");
    } else {
        struct patron_profile *p = patron_malloc(sizeof(*p));
        size_t len = (size_t)reply->len;
        if (patron_profile_stored_decode(p, reply->str, len, NULL)) {
            patron_log(api->log, PATRON_LOG_ERROR, "stored profile does not decode",
                       "\"bytes\":%zu", len);
            respond_error(api, pd->res, 500, "internal", "stored profile does not decode");
        } else if (p->erased) {
            respond_error(api, pd->res, 404, "not_found", "unknown customer");
        } else {
            struct patron_profile_models models = {api_model_clv(api->model),
                                                   api_model_clusters(api->model)};
            json_t *body = patron_profile_to_json_models(p, patron_clock_now_ms(&api->clock),
                                                         &api->cfg->profile, &models);
            respond_json(api, pd->res, 200, body);
        }
        free(p);
    }
    free(pd);
}

static void get_profile(struct api *api, const char *id, size_t id_len,
                        struct patron_http_response *res)
{
    char key[PATRON_KEY_MAX];
    int klen = patron_key_customer(key, sizeof(key), id, id_len);
    if (klen < 0) {
        respond_error(api, res, 400, "bad_request", "customer id too long");
        return;
    }
    struct pending *pd = patron_calloc(1, sizeof(*pd));
    pd->api = api;
    pd->res = patron_http_defer(res);
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, (size_t)klen};
    if (patron_kv_commandv(api->redis, on_profile, pd, 2, argv, lens)) {
        respond_error(api, pd->res, 503, "unavailable", "redis unavailable");
        free(pd);
    }
}

/* ---- GET /v1/visitors/{anonymous_id}/profile -------------------------------- */

static void visitor_answer(struct api *api, struct pending *pd, struct patron_profile *p)
{
    struct patron_profile_models models = {api_model_clv(api->model),
                                           api_model_clusters(api->model)};
    json_t *body = patron_profile_to_json_models(p, patron_clock_now_ms(&api->clock),
                                                 &api->cfg->profile, &models);
    json_object_set_new(body, "anonymous_id", json_string(pd->anonymous_id));
    respond_json(api, pd->res, 200, body);
}

/* A stored profile, or why there is none to answer with (answered here). */
static struct patron_profile *stored_profile(struct api *api, struct pending *pd, redisReply *reply,
                                             const char *unknown)
{
    if (patron_reply_wrong_type(reply)) {
        patron_log(api->log, PATRON_LOG_ERROR, "stored profile of another type", NULL);
        respond_error(api, pd->res, 500, "internal", "stored profile of another type");
        return NULL;
    }
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        respond_error(api, pd->res, 503, "unavailable", "redis unavailable");
        return NULL;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        respond_error(api, pd->res, 404, "not_found", unknown);
        return NULL;
    }
    struct patron_profile *p = patron_malloc(sizeof(*p));
    size_t len = (size_t)reply->len;
    if (patron_profile_stored_decode(p, reply->str, len, NULL)) {
        patron_log(api->log, PATRON_LOG_ERROR, "stored profile does not decode", "\"bytes\":%zu",
                   len);
        respond_error(api, pd->res, 500, "internal", "stored profile does not decode");
    } else if (p->erased) {
        respond_error(api, pd->res, 404, "not_found", unknown);
    } else {
        return p;
    }
    free(p);
    return NULL;
}

static void pending_free(struct pending *pd)
{
    free(pd->visitor);
    free(pd);
}

/* The customer an identified visitor was merged into. Not there yet (its
 * merge's second write is still to come): the frozen visitor, whose
 * contents are about to be that customer's, answered under its id. */
static void on_visitor_customer(void *ud, redisReply *reply)
{
    struct pending *pd = ud;
    struct api *api = pd->api;
    if (reply && reply->type == REDIS_REPLY_NIL &&
        pd->visitor->n_event_ids + pd->visitor->n_counted) {
        struct patron_profile *v = pd->visitor;
        memcpy(v->customer_id, v->merged_into, sizeof(v->customer_id));
        memset(v->anonymous_id, 0, sizeof(v->anonymous_id));
        visitor_answer(api, pd, v);
        pending_free(pd);
        return;
    }
    struct patron_profile *p = stored_profile(api, pd, reply, "unknown visitor");
    if (p)
        visitor_answer(api, pd, p);
    free(p);
    pending_free(pd);
}

static void on_visitor(void *ud, redisReply *reply)
{
    struct pending *pd = ud;
    struct api *api = pd->api;
    struct patron_profile *p = stored_profile(api, pd, reply, "unknown visitor");
    if (!p) {
        pending_free(pd);
        return;
    }
    if (!p->merged_into[0]) {
        visitor_answer(api, pd, p);
        free(p);
        pending_free(pd);
        return;
    }
    char key[PATRON_KEY_MAX];
    int klen = patron_key_customer(key, sizeof(key), p->merged_into, strlen(p->merged_into));
    pd->visitor = p;
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, klen > 0 ? (size_t)klen : 0};
    if (klen < 0 || patron_kv_commandv(api->redis, on_visitor_customer, pd, 2, argv, lens)) {
        respond_error(api, pd->res, 503, "unavailable", "redis unavailable");
        pending_free(pd);
    }
}

static void get_visitor_profile(struct api *api, const char *id, size_t id_len,
                                struct patron_http_response *res)
{
    char key[PATRON_KEY_MAX];
    int klen = patron_key_visitor(key, sizeof(key), id, id_len);
    if (klen < 0) {
        respond_error(api, res, 400, "bad_request", "anonymous id too long");
        return;
    }
    struct pending *pd = patron_calloc(1, sizeof(*pd));
    pd->api = api;
    memcpy(pd->anonymous_id, id, id_len);
    pd->res = patron_http_defer(res);
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, (size_t)klen};
    if (patron_kv_commandv(api->redis, on_visitor, pd, 2, argv, lens)) {
        respond_error(api, pd->res, 503, "unavailable", "redis unavailable");
        pending_free(pd);
    }
}

/* ---- DELETE /v1/customers/{id} -------------------------------------------- */

static void on_erasure_delivered(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    (void)msg;
    struct pending *pd = ud;
    struct api *api = pd->api;
    if (err) {
        respond_error(api, pd->res, 503, "unavailable", rd_kafka_err2str(err));
    } else {
        json_t *body =
            json_pack("{s:s, s:s}", "customer_id", pd->customer_id, "status", "erasure accepted");
        respond_json(api, pd->res, 202, body);
    }
    free(pd);
}

static void delete_customer(struct api *api, const char *id, size_t id_len,
                            struct patron_http_response *res)
{
    char event_id[PATRON_ID_MAX + 1];
    int64_t now = patron_wall_ms();
    snprintf(event_id, sizeof(event_id), "api-erasure-%" PRId64 "-%" PRIu64, now, ++api->erasures);
    struct pending *pd = patron_calloc(1, sizeof(*pd));
    pd->api = api;
    memcpy(pd->customer_id, id, id_len);

    Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
    Patron__V1__ErasureRequest er = PATRON__V1__ERASURE_REQUEST__INIT;
    ev.event_id = event_id;
    ev.customer_id = pd->customer_id;
    ev.occurred_at_ms = now;
    ev.kind_case = PATRON__V1__EVENT__KIND_ERASURE;
    ev.erasure = &er;
    uint8_t buf[256];
    size_t len = patron__v1__event__get_packed_size(&ev);
    if (len > sizeof(buf)) {
        free(pd);
        respond_error(api, res, 400, "bad_request", "customer id too long");
        return;
    }
    patron__v1__event__pack(&ev, buf);
    pd->res = patron_http_defer(res);
    if (patron_producer_send(api->producer, api->cfg->topic_events, RD_KAFKA_PARTITION_UA, id,
                             id_len, buf, len, NULL, on_erasure_delivered, pd)) {
        respond_error(api, pd->res, 503, "unavailable", "kafka unavailable");
        free(pd);
    }
}

/* ---- routing -------------------------------------------------------------- */

void api_route(void *ud, const struct patron_http_request *req, struct patron_http_response *res)
{
    struct api *api = ud;
    static const char customers[] = "/v1/customers/", items[] = "/v1/items/";
    static const char visitors[] = "/v1/visitors/";
    const char *path = req->path;
    if (!api_auth_gate(api->auth, api, req, res))
        return;
    if (strncmp(path, customers, sizeof(customers) - 1) == 0) {
        const char *id = path + sizeof(customers) - 1;
        const char *slash = strchr(id, '/');
        size_t id_len = slash ? (size_t)(slash - id) : strlen(id);
        const char *rest = slash ? slash : "";
        if (!id_valid(id, id_len)) {
            respond_error(api, res, 400, "bad_request", "invalid customer id");
            return;
        }
        bool is_get = strcmp(req->method, "GET") == 0;
        if (strcmp(rest, "/recommendations") == 0) {
            if (!is_get)
                respond_error(api, res, 405, "method_not_allowed", "use GET");
            else
                api_recommendations(api, api->reco, patron_clock_now_ms(&api->clock), id, id_len,
                                    req, res);
            return;
        }
        if (strcmp(rest, "/profile") == 0) {
            if (!is_get)
                respond_error(api, res, 405, "method_not_allowed", "use GET");
            else
                get_profile(api, id, id_len, res);
            return;
        }
        if (*rest == '\0') {
            if (strcmp(req->method, "DELETE") != 0)
                respond_error(api, res, 405, "method_not_allowed", "use DELETE");
            else
                delete_customer(api, id, id_len, res);
            return;
        }
    }
    if (strncmp(path, visitors, sizeof(visitors) - 1) == 0) {
        const char *id = path + sizeof(visitors) - 1;
        const char *slash = strchr(id, '/');
        size_t id_len = slash ? (size_t)(slash - id) : strlen(id);
        const char *rest = slash ? slash : "";
        bool profile = strcmp(rest, "/profile") == 0;
        if (profile || strcmp(rest, "/recommendations") == 0) {
            if (!id_valid(id, id_len))
                respond_error(api, res, 400, "bad_request", "invalid anonymous id");
            else if (strcmp(req->method, "GET") != 0)
                respond_error(api, res, 405, "method_not_allowed", "use GET");
            else if (profile)
                get_visitor_profile(api, id, id_len, res);
            else
                api_visitor_recommendations(api, api->reco, patron_clock_now_ms(&api->clock), id,
                                            id_len, req, res);
            return;
        }
    }
    if (strncmp(path, items, sizeof(items) - 1) == 0) {
        const char *id = path + sizeof(items) - 1;
        const char *slash = strchr(id, '/');
        size_t id_len = slash ? (size_t)(slash - id) : strlen(id);
        if (slash && strcmp(slash, "/similar") == 0) {
            if (!id_valid(id, id_len))
                respond_error(api, res, 400, "bad_request", "invalid item id");
            else if (strcmp(req->method, "GET") != 0)
                respond_error(api, res, 405, "method_not_allowed", "use GET");
            else
                api_similar(api, api->reco, id, id_len, req, res);
            return;
        }
    }
    if (strcmp(path, "/v1/campaigns/stats") == 0) {
        if (strcmp(req->method, "GET") != 0)
            respond_error(api, res, 405, "method_not_allowed", "use GET");
        else
            api_campaign_stats_get(api->stats, api, patron_clock_now_ms(&api->clock), res);
        return;
    }
    if (strcmp(path, "/v1/campaigns/daily") == 0) {
        if (strcmp(req->method, "GET") != 0)
            respond_error(api, res, 405, "method_not_allowed", "use GET");
        else
            api_campaign_daily_get(api->stats, api, patron_clock_now_ms(&api->clock), req, res);
        return;
    }
    if (api_dashboard_route(api->dashboard, api, req, res))
        return;
    if (api_segments_route(api->model, api, req, res))
        return;
    respond_error(api, res, 404, "not_found", "no such route");
}

/* ---- the event clock ------------------------------------------------------ */

static void on_clock(void *ud, redisReply *reply)
{
    struct api *api = ud;
    (void)patron_clock_advance_from_reply(&api->clock, reply, NULL);
}

static void on_clock_timer(uv_timer_t *t)
{
    struct api *api = t->data;
    if (!api->redis_up)
        return;
    const char *argv[] = {"HGETALL", PATRON_KEY_CLOCK};
    size_t lens[] = {7, strlen(PATRON_KEY_CLOCK)};
    if (patron_kv_commandv(api->redis, on_clock, api, 2, argv, lens))
        return; /* disconnected: the next tick asks again */
}

static void on_redis_state(void *ud, bool connected)
{
    struct api *api = ud;
    api->redis_up = connected;
    patron_log(api->log, connected ? PATRON_LOG_INFO : PATRON_LOG_WARN,
               connected ? "redis connected" : "redis disconnected", NULL);
}

/* ---- lifecycle ------------------------------------------------------------ */

int api_start(struct api **out, uv_loop_t *loop, const struct patron_config *cfg,
              const struct patron_log *log, struct patron_metrics *metrics)
{
    char err[512];
    struct api *api = patron_calloc(1, sizeof(*api));
    api->loop = loop;
    api->cfg = cfg;
    api->log = log;
    api->metrics = metrics;
    patron_clock_init(&api->clock, cfg->clock);
    const char *name = "patron_api_requests_total", *help = "HTTP requests by status class";
    api->m_requests_ok = patron_metrics_counter(metrics, name, help, "class=\"2xx\"");
    api->m_requests_client_err = patron_metrics_counter(metrics, name, help, "class=\"4xx\"");
    api->m_requests_server_err = patron_metrics_counter(metrics, name, help, "class=\"5xx\"");

    api->auth = api_auth_new(cfg->api_token);
    if (!cfg->api_token)
        patron_log(log, PATRON_LOG_WARN,
                   "PATRON_API_TOKEN is unset: every route is open to whoever reaches the port",
                   NULL);
    struct patron_kv_options ro;
    patron_service_kv_options(cfg, log, metrics, on_redis_state, api, &ro);
    int rc = patron_kv_open(&api->redis, loop, &ro);
    if (rc)
        goto out_free;
    struct patron_reco_fetcher_options fo = {.max_age_ms = cfg->reco_max_age_ms,
                                             .list_max_age_ms = cfg->reco_list_max_age_ms,
                                             .cache_items = (size_t)cfg->reco_cache_items,
                                             .momentum = cfg->reco_momentum,
                                             .log = log,
                                             .metrics = metrics};
    rc = patron_reco_fetcher_open(&api->reco, api->redis, &fo);
    if (rc)
        goto out_close_redis;
    rc = patron_producer_open_log(&api->producer, loop, cfg->kafka_brokers,
                                  (const char *const *)cfg->rdkafka_props, cfg->n_rdkafka_props,
                                  log, err, sizeof(err));
    if (rc) {
        patron_log(log, PATRON_LOG_ERROR, "producer", "\"error\":\"%s\"", err);
        goto out_free_reco;
    }
    uv_timer_init(loop, &api->clock_timer);
    api->clock_timer.data = api;
    if (cfg->clock == PATRON_CLOCK_EVENT)
        uv_timer_start(&api->clock_timer, on_clock_timer, 0, 250);
    api->stats = api_campaign_stats_new(api->redis, metrics);
    struct api_model_options mopt = {
        .loop = loop, .redis = api->redis, .cfg = cfg, .log = log, .metrics = metrics};
    api->model = api_model_start(&mopt);
    const struct api_dashboard_observer observer = {
        api_model_snapshot_begin, api_model_snapshot_profile, api_model_snapshot_end, api->model};
    struct api_dashboard_options dopt = {.loop = loop,
                                         .refresh_ms = cfg->dashboard_refresh_ms,
                                         .observer = &observer,
                                         .model = api->model,
                                         .redis = api->redis,
                                         .clock = &api->clock,
                                         .profile = &cfg->profile,
                                         .metrics = metrics,
                                         .log = log};
    api->dashboard = api_dashboard_start(&dopt);
    *out = api;
    return 0;

out_free_reco:
    patron_reco_fetcher_free(api->reco);
out_close_redis:
    patron_kv_close(api->redis, NULL, NULL);
out_free:
    api_auth_free(api->auth);
    free(api);
    return rc;
}

bool api_ready(const struct api *api)
{
    return api->redis_up;
}

static void on_redis_closed(void *ud)
{
    struct api *api = ud;
    if (api->on_stopped)
        api->on_stopped(api->stopped_ud);
}

void api_stop(struct api *api, void (*on_stopped)(void *ud), void *ud)
{
    api->on_stopped = on_stopped;
    api->stopped_ud = ud;
    uv_close((uv_handle_t *)&api->clock_timer, NULL);
    api_dashboard_stop(api->dashboard);
    api_model_stop(api->model);
    size_t undelivered = patron_producer_close(api->producer, api->cfg->shutdown_timeout_ms);
    api->producer = NULL;
    if (undelivered)
        patron_log(api->log, PATRON_LOG_WARN, "undelivered at shutdown", "\"messages\":%zu",
                   undelivered);
    patron_kv_close(api->redis, on_redis_closed, api);
}

void api_free(struct api *api)
{
    /* after the loop ran: Redis has closed and called back every request */
    patron_reco_fetcher_free(api->reco);
    api_campaign_stats_free(api->stats);
    api_dashboard_free(api->dashboard);
    api_model_free(api->model);
    api_auth_free(api->auth);
    free(api);
}
