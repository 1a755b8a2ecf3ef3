/*
 * patron-ingest: consumes patron.events and patron.catalog, keeps every
 * customer's profile and the item graph in Redis, publishes ProfileUpdates.
 * All configuration comes from the environment (README, "Configuration").
 */
#include <stdio.h>

#include "ingest.h"
#include "patron/service.h"

struct app {
    struct patron_service svc;
    struct ingest *ingest;
};

static bool app_ready(void *ud)
{
    struct app *app = ud;
    return app->ingest && ingest_ready(app->ingest);
}

static void app_stopped(void *ud)
{
    struct app *app = ud;
    patron_log(&app->svc.log, PATRON_LOG_INFO, "stopped", NULL);
    patron_service_shutdown(&app->svc);
}

static void app_stop(void *ud)
{
    struct app *app = ud;
    ingest_stop(app->ingest, app_stopped, app);
}

int main(void)
{
    struct app app = {0};
    char err[512];
    if (patron_service_init(&app.svc, "patron-ingest", err, sizeof(err))) {
        fprintf(stderr, "patron-ingest: %s\n", err);
        return 2;
    }
    int rc = ingest_start(&app.ingest, &app.svc.loop, &app.svc.cfg, &app.svc.log, app.svc.metrics);
    if (rc) {
        patron_log(&app.svc.log, PATRON_LOG_ERROR, "ingest did not start", "\"error\":\"%s\"",
                   patron_strerror(rc));
        patron_service_free(&app.svc);
        return 1;
    }
    struct patron_service_hooks hooks = {.ready = app_ready, .on_stop = app_stop, .ud = &app};
    if (patron_service_listen(&app.svc, &hooks)) {
        app_stop(&app); /* drain what started, then exit non-zero */
        (void)patron_service_run(&app.svc);
        ingest_free(app.ingest);
        patron_service_free(&app.svc);
        return 1;
    }
    rc = patron_service_run(&app.svc);
    ingest_free(app.ingest);
    patron_service_free(&app.svc);
    return rc ? 1 : 0;
}
