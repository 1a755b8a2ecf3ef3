/*
 * A job's messages: for each send the engine decided, the recommendations
 * (the same scoring as the API's, recommend_fetch.h), then the catalog title
 * and price of each recommended item, then the CampaignMessage from the
 * campaign's template, as an outbox record.
 *
 * Every lookup of a job is issued at once (they pipeline); j->pending counts
 * those outstanding and the last one back hands the job to
 * trigger_job_commit. Recommendations failing fail the job (they are part
 * of the message: it is redone); a title or price missing is left empty
 * ("when known").
 */
#include <stdlib.h>
#include <string.h>

#include "patron/keys.h"
#include "patron/template.h"
#include "trigger_internal.h"

/* Counts an item recommended in a message of this job. */
static void reco_count(struct job *j, const char *item)
{
    size_t len = strlen(item);
    struct reco_item *r = patron_strmap_get(&j->reco_items, item, len);
    if (r == NULL) {
        r = patron_malloc(sizeof(*r) + len + 1);
        memcpy(r->item, item, len + 1);
        r->count = 0;
        patron_strmap_put(&j->reco_items, r->item, len, r);
    }
    r->count++;
}

static void build_message(struct out_msg *m)
{
    struct job *j = m->job;
    struct patron_customer_state *st = &m->cust->st;
    Patron__V1__CampaignMessage msg = PATRON__V1__CAMPAIGN_MESSAGE__INIT;
    struct patron_template_input in = {
        .campaign = m->send.campaign,
        .decision = &m->send.decision,
        .customer_id = m->cust->id,
        .trigger_event_id = m->send.trigger_event_id,
        .locale = st->locale,
        .tier = st->tier,
        .segment = st->segment,
        .points = st->points,
        .created_at_ms = m->send.at_ms,
    };
    if (patron_template_fill(&msg, &in)) {
        j->failed = true;
        return;
    }
    size_t n = m->reco ? m->reco->n : 0;
    Patron__V1__RecommendedItem *items = patron_calloc(n + 1, sizeof(*items));
    Patron__V1__RecommendedItem **ptrs = patron_calloc(n + 1, sizeof(*ptrs));
    for (size_t i = 0; i < n; i++) {
        patron__v1__recommended_item__init(&items[i]);
        items[i].item_id = m->reco->items[i].item;
        items[i].score = m->reco->items[i].score;
        items[i].title = m->titles[i];
        items[i].price_cents = m->prices[i];
        ptrs[i] = &items[i];
        reco_count(j, items[i].item_id);
    }
    msg.n_items = n;
    msg.items = ptrs;
    /* Stamped with the wall clock when built: the outbox check's age. */
    m->bytes = trigger_outbox_record(&msg, patron_wall_ms(), &m->len);
    msg.n_items = 0;
    msg.items = NULL;
    free(ptrs);
    free(items);
    patron_template_clear(&msg);
}

static void job_lookup_done(struct job *j)
{
    if (--j->pending == 0)
        trigger_job_commit(j);
}

struct title_req {
    struct out_msg *m;
    size_t i;
};

/* A catalog title for a message: cut to cap - 1 bytes on a character
 * boundary, and to its valid UTF-8 prefix (a title written before ingest
 * checked them may be anything): a message's strings are UTF-8, or its
 * readers fail on it. */
static void copy_reply_str(char *dst, size_t cap, const redisReply *r)
{
    size_t l = patron_utf8_prefix(r->str, (size_t)r->len, cap - 1);
    memcpy(dst, r->str, l);
    dst[l] = 0;
}

/* Catalog title and price of one recommended item: "when known", so a
 * missing or odd answer leaves them empty. */
static void on_title(void *ud, redisReply *reply)
{
    struct title_req *r = ud;
    struct out_msg *m = r->m;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        const redisReply *t = reply->element[0], *p = reply->element[1];
        if (t->type == REDIS_REPLY_STRING)
            copy_reply_str(m->titles[r->i], sizeof(m->titles[r->i]), t);
        int64_t v;
        if (p->type == REDIS_REPLY_STRING && patron_reply_i64(p, 0, INT64_MAX, &v) == 0)
            m->prices[r->i] = v;
    }
    free(r);
    if (--m->titles_left == 0 && !m->job->failed)
        build_message(m);
    job_lookup_done(m->job);
}

static void on_reco(void *ud, const struct patron_reco_answer *a)
{
    struct out_msg *m = ud;
    struct job *j = m->job;
    struct trigger *tr = j->tr;
    if (a->err) {
        j->failed = true; /* recommendations are part of the message: redo the job */
        job_lookup_done(j);
        return;
    }
    m->reco = patron_malloc(sizeof(*m->reco));
    *m->reco = *a;
    m->titles = patron_calloc(a->n + 1, sizeof(*m->titles));
    m->prices = patron_calloc(a->n + 1, sizeof(*m->prices));
    m->titles_left = 1; /* held until every lookup is issued */
    for (size_t i = 0; i < a->n; i++) {
        char key[PATRON_KEY_MAX];
        int kl = patron_key_item(key, sizeof(key), a->items[i].item, strlen(a->items[i].item));
        if (kl < 0)
            continue;
        struct title_req *r = patron_malloc(sizeof(*r));
        *r = (struct title_req){.m = m, .i = i};
        if (patron_kv_command(tr->redis, on_title, r, "HMGET %b title price_cents", key,
                              (size_t)kl)) {
            free(r);
            j->failed = true;
            break;
        }
        m->titles_left++;
        j->pending++;
    }
    if (--m->titles_left == 0 && !j->failed)
        build_message(m);
    job_lookup_done(j);
}

void trigger_job_messages(struct job *j)
{
    struct trigger *tr = j->tr;
    j->phase = PHASE_BUILD;
    j->pending = 1; /* held while issuing */
    for (size_t i = 0; i < j->n_outs && !j->failed; i++) {
        struct out_msg *m = &j->outs[i];
        uint32_t k = m->send.campaign->recommendations;
        if (k == 0) {
            build_message(m);
            continue;
        }
        if (patron_reco_fetch_customer(tr->reco, m->cust->id, m->cust->id_len, NULL, k,
                                       m->send.at_ms, on_reco, m)) {
            j->failed = true;
            break;
        }
        j->pending++;
    }
    job_lookup_done(j);
}
