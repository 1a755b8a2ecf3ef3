#include "patron/service.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A service's working set is steady (batches in flight, caches with a
 * maximum), but it frees and allocates megabytes of it every batch: Redis
 * command buffers, a batch's arrays. glibc would hand blocks above its
 * mmap threshold back to the kernel at each free and trim the heap's top,
 * so the next batch pays a page fault per 4 KiB page again (a tenth of
 * ingest's time). Keeping them costs no more than the peak RSS the service
 * reaches anyway. Not fatal when refused (another allocator, ASan). */
static void keep_freed_memory(const struct patron_log *log)
{
    if (mallopt(M_MMAP_THRESHOLD, 64 << 20) != 1 || mallopt(M_TRIM_THRESHOLD, 512 << 20) != 1)
        patron_log(log, PATRON_LOG_DEBUG, "mallopt refused: freed memory goes back to the kernel",
                   NULL);
}

/* What keep_freed_memory keeps is the heap's peak, and a heap where small
 * long-lived blocks (cache entries) sit between the holes of large
 * transient ones (command buffers of 64 KiB to 1 MiB) only grows: the
 * trigger held 160 MiB of heap for 35 MiB in use after half an hour of the
 * soak. Every TRIM_INTERVAL_MS the free pages go back to the kernel
 * (malloc_trim releases those inside the heap too), so resident memory
 * follows what is in use; a page used again costs one fault per interval,
 * not per batch. */
#define TRIM_INTERVAL_MS 10000

static void on_trim(uv_timer_t *t)
{
    (void)t;
    (void)malloc_trim(0); /* returns whether it released any: nothing to do either way */
}

int patron_service_init(struct patron_service *s, const char *name, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    int rc = patron_config_load_environ(&s->cfg, name, err, errlen);
    if (rc)
        return rc;
    patron_log_init(&s->log, name, s->cfg.log_level, stderr);
    for (size_t i = 0; i < s->cfg.n_unknown_vars; i++)
        patron_log(&s->log, PATRON_LOG_WARN, "unknown variable (a typo?)", "\"name\":\"%s\"",
                   s->cfg.unknown_vars[i]);
    rc = uv_loop_init(&s->loop);
    if (rc) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(rc));
        patron_config_free(&s->cfg);
        return PATRON_EIO;
    }
    s->metrics = patron_metrics_new();
    keep_freed_memory(&s->log);
    /* a peer closing a socket must not kill the process */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

void patron_service_kv_options(const struct patron_config *cfg, const struct patron_log *log,
                               struct patron_metrics *metrics,
                               void (*on_state)(void *ud, bool connected), void *ud,
                               struct patron_kv_options *out)
{
    *out = (struct patron_kv_options){
        .cluster = cfg->redis_cluster,
        .n_cluster = cfg->n_redis_cluster,
        .host = cfg->redis.host,
        .port = cfg->redis.port,
        .user = cfg->redis_user,
        .password = cfg->redis_password,
        .db = cfg->redis_db,
        .connect_timeout_ms = 2000,
        .max_backoff_ms = 2000,
        .command_timeout_ms = cfg->redis_timeout_ms,
        .on_state = on_state,
        .ud = ud,
        .log = log,
        .timeouts = patron_metrics_counter(
            metrics, "patron_redis_timeouts_total",
            "Redis connections dropped because a command missed PATRON_REDIS_TIMEOUT_MS", NULL),
    };
}

void patron_service_error(struct patron_http_response *res, int status, const char *code,
                          const char *msg)
{
    char body[512], esc[384];
    patron_json_escape(esc, sizeof(esc), msg);
    snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}", code, esc);
    patron_http_respond_json(res, status, body);
}

static void on_http(void *ud, const struct patron_http_request *req,
                    struct patron_http_response *res)
{
    struct patron_service *s = ud;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (get && strcmp(req->path, "/healthz") == 0) {
        patron_http_respond_json(res, 200, "{\"status\":\"ok\"}");
    } else if (get && strcmp(req->path, "/readyz") == 0) {
        bool ready = !s->stopping && (!s->hooks.ready || s->hooks.ready(s->hooks.ud));
        patron_http_respond_json(res, ready ? 200 : 503,
                                 ready ? "{\"status\":\"ready\"}" : "{\"status\":\"not ready\"}");
    } else if (get && strcmp(req->path, "/metrics") == 0) {
        char *text;
        size_t len;
        if (patron_metrics_render(s->metrics, &text, &len)) {
            patron_service_error(res, 500, "internal", "metrics did not render");
            return;
        }
        patron_http_respond(res, 200, "text/plain; version=0.0.4", text, len);
        free(text);
    } else if (s->hooks.route) {
        s->hooks.route(s->hooks.ud, req, res);
    } else {
        patron_service_error(res, 404, "not_found", "no such route");
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct patron_service *s = h->data;
    if (signum == SIGHUP) {
        if (s->hooks.on_reload)
            s->hooks.on_reload(s->hooks.ud);
        return;
    }
    if (s->stopping)
        return;
    s->stopping = true;
    patron_log(&s->log, PATRON_LOG_INFO, "stop requested", "\"signal\":%d", signum);
    if (s->hooks.on_stop)
        s->hooks.on_stop(s->hooks.ud);
    else
        patron_service_shutdown(s);
}

int patron_service_listen(struct patron_service *s, const struct patron_service_hooks *hooks)
{
    s->hooks = *hooks;
    uv_signal_t *sigs[] = {&s->sigterm, &s->sigint, &s->sighup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(sigs); i++) {
        uv_signal_init(&s->loop, sigs[i]);
        sigs[i]->data = s;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    int rc = patron_http_server_start_shared(&s->http, &s->loop, s->cfg.http_addr,
                                             s->cfg.http_workers > 1, on_http, s);
    if (rc) {
        patron_log(&s->log, PATRON_LOG_ERROR, "http server did not start", "\"addr\":\"%s\"",
                   s->cfg.http_addr);
        return rc;
    }
    patron_http_server_set_metrics(s->http, s->metrics);
    /* the trim is housekeeping: a service without it runs, with a warning */
    if (uv_timer_init(&s->loop, &s->trim) == 0) {
        if (uv_timer_start(&s->trim, on_trim, TRIM_INTERVAL_MS, TRIM_INTERVAL_MS))
            patron_log(&s->log, PATRON_LOG_WARN, "heap trim timer did not start", NULL);
        uv_unref((uv_handle_t *)&s->trim); /* never what keeps the loop running */
    } else {
        patron_log(&s->log, PATRON_LOG_WARN, "heap trim timer did not start", NULL);
    }
    patron_log(&s->log, PATRON_LOG_INFO, "listening", "\"port\":%d",
               patron_http_server_port(s->http));
    return 0;
}

int patron_service_run(struct patron_service *s)
{
    return uv_run(&s->loop, UV_RUN_DEFAULT) == 0 ? 0 : PATRON_EIO;
}

void patron_service_shutdown(struct patron_service *s)
{
    uv_signal_t *sigs[] = {&s->sigterm, &s->sigint, &s->sighup};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(sigs); i++)
        if (!uv_is_closing((uv_handle_t *)sigs[i]))
            uv_close((uv_handle_t *)sigs[i], NULL);
    if (s->trim.loop && !uv_is_closing((uv_handle_t *)&s->trim))
        uv_close((uv_handle_t *)&s->trim, NULL);
    if (s->http) {
        patron_http_server_close(s->http, NULL, NULL);
        s->http = NULL;
    }
}

void patron_service_free(struct patron_service *s)
{
    if (uv_loop_close(&s->loop))
        patron_log(&s->log, PATRON_LOG_WARN, "loop closed with open handles", NULL);
    patron_metrics_free(s->metrics);
    patron_config_free(&s->cfg);
}
