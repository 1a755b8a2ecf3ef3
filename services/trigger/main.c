/*
 * patron-trigger: consumes patron.profile-updates, decides campaigns from
 * the campaigns file (PATRON_CAMPAIGNS), sends CampaignMessages to
 * patron.campaign.{sms,push,email}. SIGHUP reloads the campaigns file; a
 * file that fails to load keeps the running campaigns. All configuration
 * comes from the environment (README, "Configuration").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/campaign.h"
#include "patron/service.h"
#include "patron/campaign_yaml.h"
#include "trigger.h"

struct app {
    struct patron_service svc;
    struct trigger *trigger;
};

/* Reads and parses the campaigns file; `err` says where and why. */
static int load_campaigns(const char *path, struct patron_campaigns **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return PATRON_EIO;
    }
    char *buf = patron_malloc(PATRON_CAMPAIGNS_FILE_MAX + 1);
    size_t n = fread(buf, 1, PATRON_CAMPAIGNS_FILE_MAX + 1, f);
    int rc = ferror(f) ? PATRON_EIO : 0;
    fclose(f);
    if (rc) {
        snprintf(err, errlen, "%s: read error", path);
    } else if (n > PATRON_CAMPAIGNS_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, PATRON_CAMPAIGNS_FILE_MAX);
        rc = PATRON_ETOOBIG;
    } else {
        char why[512];
        rc = patron_campaigns_parse(buf, n, out, why, sizeof(why));
        if (rc)
            snprintf(err, errlen, "%s: %s", path, why);
    }
    free(buf);
    return rc;
}

static bool app_ready(void *ud)
{
    struct app *app = ud;
    return app->trigger && trigger_ready(app->trigger);
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
    trigger_stop(app->trigger, app_stopped, app);
}

static void app_reload(void *ud)
{
    struct app *app = ud;
    struct patron_campaigns *cs;
    char err[700];
    if (load_campaigns(app->svc.cfg.campaigns_path, &cs, err, sizeof(err))) {
        patron_log(&app->svc.log, PATRON_LOG_ERROR, "reload failed, keeping the running campaigns",
                   "\"error\":\"%s\"", err);
        return;
    }
    trigger_reload(app->trigger, cs);
}

int main(void)
{
    struct app app = {0};
    char err[700];
    if (patron_service_init(&app.svc, "patron-trigger", err, sizeof(err))) {
        fprintf(stderr, "patron-trigger: %s\n", err);
        return 2;
    }
    if (!app.svc.cfg.campaigns_path) {
        fprintf(stderr, "patron-trigger: PATRON_CAMPAIGNS: the campaigns file is required\n");
        patron_service_free(&app.svc);
        return 2;
    }
    struct patron_campaigns *cs;
    if (load_campaigns(app.svc.cfg.campaigns_path, &cs, err, sizeof(err))) {
        fprintf(stderr, "patron-trigger: PATRON_CAMPAIGNS: %s\n", err);
        patron_service_free(&app.svc);
        return 2;
    }
    int rc =
        trigger_start(&app.trigger, &app.svc.loop, &app.svc.cfg, &app.svc.log, app.svc.metrics, cs);
    if (rc) {
        patron_log(&app.svc.log, PATRON_LOG_ERROR, "trigger did not start", "\"error\":\"%s\"",
                   patron_strerror(rc));
        patron_service_free(&app.svc);
        return 1;
    }
    patron_log(&app.svc.log, PATRON_LOG_INFO, "campaigns loaded", "\"count\":%zu,\"file\":\"%s\"",
               cs->count, app.svc.cfg.campaigns_path);
    struct patron_service_hooks hooks = {
        .ready = app_ready, .on_stop = app_stop, .on_reload = app_reload, .ud = &app};
    if (patron_service_listen(&app.svc, &hooks)) {
        app_stop(&app);
        (void)patron_service_run(&app.svc);
        trigger_free(app.trigger);
        patron_service_free(&app.svc);
        return 1;
    }
    rc = patron_service_run(&app.svc);
    trigger_free(app.trigger);
    patron_service_free(&app.svc);
    return rc ? 1 : 0;
}
