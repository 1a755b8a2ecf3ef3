/*
 * patron-api: profiles, recommendations, campaign statistics, health and
 * metrics over HTTP. Configuration from the environment (docs/configuration.md).
 *
 * PATRON_HTTP_WORKERS=N runs N processes on one address (SO_REUSEPORT): the
 * API is stateless and single-threaded, so on a machine (rather than as N
 * pods) that is how it uses N cores. The first process forks the others
 * right after the configuration is read, before any connection exists;
 * each then opens its own Redis and Kafka clients. A worker dies with its
 * parent (PR_SET_PDEATHSIG); the parent passes SIGTERM on and waits for
 * them. /metrics answers for the process that took the connection.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"

#define WORKERS_MAX 64

struct app {
    struct patron_service svc;
    struct api *api;
    pid_t workers[WORKERS_MAX]; /* the parent's children */
    int n_workers;
};

/* Forks workers 1..n-1; returns in every process. */
static int fork_workers(struct app *app)
{
    for (int i = 1; i < app->svc.cfg.http_workers; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return PATRON_EIO;
        if (pid == 0) {
            app->n_workers = 0;
            if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() == 1)
                _exit(1); /* the parent is already gone */
            return uv_loop_fork(&app->svc.loop) ? PATRON_EIO : 0;
        }
        app->workers[app->n_workers++] = pid;
    }
    return 0;
}

static void stop_workers(struct app *app)
{
    for (int i = 0; i < app->n_workers; i++)
        kill(app->workers[i], SIGTERM);
}

static void wait_workers(struct app *app)
{
    for (int i = 0; i < app->n_workers; i++) {
        int status;
        while (waitpid(app->workers[i], &status, 0) < 0 && errno == EINTR)
            ;
    }
}

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
    stop_workers(app);
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
    if (fork_workers(&app)) {
        fprintf(stderr, "patron-api: PATRON_HTTP_WORKERS: cannot start the workers\n");
        stop_workers(&app);
        wait_workers(&app);
        patron_service_free(&app.svc);
        return 1;
    }
    if (api_start(&app.api, &app.svc.loop, &app.svc.cfg, &app.svc.log, app.svc.metrics)) {
        patron_log(&app.svc.log, PATRON_LOG_ERROR, "api did not start", NULL);
        stop_workers(&app);
        wait_workers(&app);
        patron_service_free(&app.svc);
        return 1;
    }
    struct patron_service_hooks hooks = {
        .ready = app_ready, .on_stop = app_stop, .route = app_route, .ud = &app};
    int rc = patron_service_listen(&app.svc, &hooks);
    if (rc)
        app_stop(&app);
    int run = patron_service_run(&app.svc);
    wait_workers(&app);
    api_free(app.api);
    patron_service_free(&app.svc);
    return rc || run ? 1 : 0;
}
