/*
 * The fitted models the engine decides churn_risk_above campaigns and
 * cluster audiences with (campaign_engine.h). patron-api fits them and
 * stores {model}:clv and {model}:clusters (model_codec.h); the trigger
 * reads both every TRIGGER_MODELS_POLL_MS while a campaign needs them, so
 * that it scores churn as the profiles show it. Until a fit exists: the
 * CDNOW defaults (clv.h) and no clusters (a cluster audience then matches
 * nobody). PATRON_CLV_MODEL and PATRON_CLUSTERS_MODEL fix them: never read,
 * so that a backtest does not depend on when a fit lands. A stored value
 * that does not decode is counted, logged and ignored (the current model
 * stays).
 *
 * A new model applies from the next job on: decisions already committed
 * stay, timers armed under the old one are checked at their fire time
 * (campaign_engine.h).
 */
#include <string.h>

#include "patron/keys.h"
#include "patron/model_codec.h"
#include "trigger_internal.h"

#define TRIGGER_MODELS_POLL_MS 2000

void trigger_models_init(struct trigger *tr)
{
    struct trigger_models *m = &tr->models;
    memset(m, 0, sizeof(*m));
    if (tr->cfg->has_clv_override)
        m->clv = tr->cfg->clv_override;
    else
        patron_clv_model_default(&m->clv);
    if (tr->cfg->has_clusters_override)
        m->clusters = tr->cfg->clusters_override;
    m->m_invalid = patron_metrics_counter(
        tr->metrics, "patron_trigger_model_stored_invalid_total",
        "Stored models ({model}:clv, {model}:clusters) that did not decode and were ignored", NULL);
}

static void on_stored(struct trigger *tr, redisReply *reply, bool clv)
{
    struct trigger_models *m = &tr->models;
    if (tr->stopping || !reply || reply->type != REDIS_REPLY_STRING)
        return; /* nil: nothing fitted yet; an error or disconnect: the next poll */
    uint64_t h = patron_hash64(reply->str, (size_t)reply->len);
    uint64_t *last = clv ? &m->clv_hash : &m->clusters_hash;
    if (h == *last)
        return;
    *last = h;
    int rc;
    if (clv) {
        struct patron_clv_model v;
        if ((rc = patron_clv_model_decode(reply->str, (size_t)reply->len, &v)) == 0)
            m->clv = v;
    } else {
        struct patron_clusters v;
        if ((rc = patron_clusters_decode(reply->str, (size_t)reply->len, &v)) == 0)
            m->clusters = v;
    }
    const char *key = clv ? PATRON_KEY_MODEL_CLV : PATRON_KEY_MODEL_CLUSTERS;
    if (rc) {
        patron_counter_inc(m->m_invalid);
        patron_log(tr->log, PATRON_LOG_WARN, "stored model does not decode, keeping the current",
                   "\"key\":\"%s\"", key);
        return;
    }
    patron_log(tr->log, PATRON_LOG_INFO, "model updated", "\"key\":\"%s\"", key);
}

static void on_stored_clv(void *ud, redisReply *reply)
{
    on_stored(ud, reply, true);
}

static void on_stored_clusters(void *ud, redisReply *reply)
{
    on_stored(ud, reply, false);
}

/* Which models the campaigns decide with. */
static void needed(const struct patron_campaigns *cs, bool *clv, bool *clusters)
{
    *clv = *clusters = false;
    for (size_t i = 0; cs && i < cs->count; i++) {
        *clv = *clv || cs->campaigns[i].when == PATRON_CAMPAIGN_WHEN_CHURN_RISK;
        *clusters = *clusters || cs->campaigns[i].clusters.n > 0;
    }
}

void trigger_models_poll(struct trigger *tr)
{
    struct trigger_models *m = &tr->models;
    int64_t now = patron_monotonic_ms();
    if (!tr->redis_up || now < m->next_poll_mono)
        return;
    m->next_poll_mono = now + TRIGGER_MODELS_POLL_MS;
    bool clv, clusters;
    needed(tr->campaigns, &clv, &clusters);
    if (clv && !tr->cfg->has_clv_override) {
        const char *argv[] = {"GET", PATRON_KEY_MODEL_CLV};
        if (patron_kv_commandv(tr->redis, on_stored_clv, tr, 2, argv, NULL))
            return; /* disconnected: asked again at the next poll */
    }
    if (clusters && !tr->cfg->has_clusters_override) {
        const char *argv[] = {"GET", PATRON_KEY_MODEL_CLUSTERS};
        if (patron_kv_commandv(tr->redis, on_stored_clusters, tr, 2, argv, NULL))
            return;
    }
}

const struct patron_clv_model *trigger_models_clv(const struct trigger *tr)
{
    return &tr->models.clv;
}

const struct patron_clusters *trigger_models_clusters(const struct trigger *tr)
{
    return tr->models.clusters.k > 0 ? &tr->models.clusters : NULL;
}
