/*
 * What every Patron service shares: configuration from the environment,
 * the JSON logger, the metrics registry, one libuv loop, the HTTP server
 * with /healthz, /readyz and /metrics (plus the service's own routes), and
 * the signals — SIGTERM and SIGINT ask the service to stop, SIGHUP to reload.
 *
 * The shell of a service is then: patron_service_init, start its own work,
 * patron_service_listen, patron_service_run; on the stop signal it drains
 * its work and calls patron_service_shutdown, and run returns once every
 * handle of the loop is closed.
 */
#ifndef PATRON_SERVICE_H
#define PATRON_SERVICE_H

#include <uv.h>

#include "patron/common.h"
#include "patron/config.h"
#include "patron/http.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/kv.h"

struct patron_service_hooks {
    bool (*ready)(void *ud);     /* /readyz: NULL means always ready */
    void (*on_stop)(void *ud);   /* SIGTERM or SIGINT, once */
    void (*on_reload)(void *ud); /* SIGHUP; NULL: ignored */
    patron_http_handler route;   /* the service's routes; NULL: 404 */
    void *ud;
};

struct patron_service {
    uv_loop_t loop;
    struct patron_config cfg;
    struct patron_log log;
    struct patron_metrics *metrics;
    struct patron_http_server *http;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t trim; /* gives the heap's free pages back (service.c) */
    struct patron_service_hooks hooks;
    bool stopping;
};

/* Loads the configuration (a bad value: the error names the variable) and
 * sets up the loop, logger and metrics. On failure nothing needs closing. */
int patron_service_init(struct patron_service *s, const char *name, char *err,
                        size_t errlen) PATRON_MUST_USE;

/* Installs the hooks, the signal handlers and starts the HTTP server on
 * PATRON_HTTP_ADDR. */
int patron_service_listen(struct patron_service *s,
                          const struct patron_service_hooks *hooks) PATRON_MUST_USE;

/* Runs the loop until every handle is closed; returns 0 on a clean stop. */
int patron_service_run(struct patron_service *s);

/* Closes what patron_service_listen opened (HTTP server, signals); the
 * service calls it once its own work is drained. */
void patron_service_shutdown(struct patron_service *s);

/* Frees the configuration and metrics after run returned. */
void patron_service_free(struct patron_service *s);

/* The Redis every service opens, from the configuration: the seeds of
 * PATRON_REDIS_CLUSTER when set (a database in PATRON_REDIS_URL does not
 * apply: a cluster has no SELECT), else the node of PATRON_REDIS_URL with
 * its database; credentials, reconnect backoff up to 2 s, the command
 * timeout of PATRON_REDIS_TIMEOUT_MS (a stalled Redis is dropped: on_state
 * false, the pending callbacks get NULL) counted in metrics'
 * patron_redis_timeouts_total, state changes to on_state. For
 * patron_kv_open. */
void patron_service_kv_options(const struct patron_config *cfg, const struct patron_log *log,
                               struct patron_metrics *metrics,
                               void (*on_state)(void *ud, bool connected), void *ud,
                               struct patron_kv_options *out);

/* A JSON error body {"error": code, "message": msg} with the status. */
void patron_service_error(struct patron_http_response *res, int status, const char *code,
                          const char *msg);

#endif
