/*
 * patron-api: profiles, recommendations, campaign statistics, health and
 * metrics over HTTP. Configuration from the environment (README).
 */
#include <stdio.h>

#include "api.h"

struct app {
    struct patron_service svc;
    struct api *api;
};

static bool app_ready(void *ud)
{
    struct app *app = ud;
    return api_ready(app->api);
}

static void app_stopped(void *ud)
{
    struct app *app = ud;
    patron_log(&app->svc.log, PATRON_LOG_INFO, "stopped", NULL);
}

static void app_route(void *ud, const struct patron_http_request *req,
                      struct patron_http_response *res)
{
    struct app *app = ud;
    api_route(app->api, req, res);
}

/* Stop listening first, so that no request starts while Redis and Kafka close. */
static void app_stop(void *ud)
{
    struct app *app = ud;
    patron_service_shutdown(&app->svc);
    api_stop(app->api, app_stopped, app);
}

int main(void)
{
    struct app app = {0};
    char err[512];
    if (patron_service_init(&app.svc, "patron-api", err, sizeof(err))) {
        fprintf(stderr, "patron-api: %s\n", err);
        return 2;
    }
    if (api_start(&app.api, &app.svc.loop, &app.svc.cfg, &app.svc.log, app.svc.metrics)) {
        patron_log(&app.svc.log, PATRON_LOG_ERROR, "api did not start", NULL);
        patron_service_free(&app.svc);
        return 1;
    }
    struct patron_service_hooks hooks = {
        .ready = app_ready, .on_stop = app_stop, .route = app_route, .ud = &app};
    int rc = patron_service_listen(&app.svc, &hooks);
    if (rc)
        app_stop(&app);
    int run = patron_service_run(&app.svc);
    api_free(app.api);
    patron_service_free(&app.svc);
    return rc || run ? 1 : 0;
}
