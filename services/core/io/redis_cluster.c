#include "patron/redis_cluster.h"
#include "patron/num.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "patron/config.h"
#include "patron/log.h"
#include "patron/keys.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_MAX_BACKOFF_MS 5000
#define DEFAULT_RETRY_TIMEOUT_MS 5000
#define RETRY_TICK_MS 10            /* granularity of the wait list */
#define RETRY_MIN_MS 10             /* first wait of a command, doubling... */
#define RETRY_MAX_MS 500            /* ...to this */
#define REFRESH_MIN_INTERVAL_MS 100 /* a MOVED storm costs one CLUSTER SLOTS per this */
#define DEGRADED_REFRESH_MS 500     /* while some slot has no connected master */
#define HOST_MAX 255
#define SCRIPT_MAX (1u << 20)
#define CMD_NAME_MAX 16

/*
 * One node the client talks to: a seed, a master of the slot map, or the
 * target of a redirection. It lives from its first mention until it is
 * pruned (not a seed and owns no slot after a refresh) or the client
 * closes; the struct is freed only in patron_redis' on_closed, after every
 * callback of its connection ran, so a callback may always use it.
 */
struct cnode {
    struct cnode *next;
    struct patron_redis_cluster *c;
    struct patron_redis *r;
    char *host;
    int port;
    bool seed;
    bool closing;
    size_t n_slots; /* slots of the map pointing here */
    /* The node's handle of each cluster script, by the script's index. */
    struct patron_redis_script **scripts;
    size_t n_scripts;
};

struct patron_redis_cluster_script {
    char *lua;
    size_t len;
    size_t idx;
    char sha[41];
};

/*
 * A command accepted and not yet answered. It keeps a copy of its arguments
 * (in the same allocation) so that it can be resent to another node; while
 * waiting for a retry it is on the client's wait list, else it is in the
 * pipeline of `node`.
 */
struct creq {
    struct creq *next;
    struct patron_redis_cluster *c;
    struct cnode *node; /* sent to; valid only inside its callback */
    patron_redis_cb cb;
    void *ud;
    struct patron_redis_cluster_script *script;
    int nkeys;
    int argc;
    const char **argv;
    size_t *lens;
    int slot; /* -1: no key */
    int redirects;
    int backoff_ms;
    uint64_t deadline; /* 0 until the first wait */
    uint64_t due;
};

struct patron_redis_cluster {
    uv_loop_t *loop;
    struct cnode *nodes;
    struct cnode *slots[PATRON_REDIS_CLUSTER_SLOTS];
    size_t n_nodes;
    bool closing, connected, have_map;
    bool refresh_inflight, refresh_wanted;
    uint64_t last_refresh;
    uv_timer_t refresh_timer, retry_timer;
    int handles; /* the two timers and every node not yet closed */
    struct creq *wait_head, *wait_tail;
    size_t pending, max_pending, max_reply_bytes;
    char *user, *password;
    int connect_timeout_ms, max_backoff_ms, retry_timeout_ms, command_timeout_ms;
    struct patron_counter *timeouts;
    struct patron_redis_cluster_script **scripts;
    size_t n_scripts;
    void (*on_state)(void *ud, bool connected);
    void *ud;
    void (*on_closed)(void *ud);
    void *closed_ud;
    const struct patron_log *log;
};

static void request_refresh(struct patron_redis_cluster *c);
static void refresh_timer_cb(uv_timer_t *t);
static void retry_timer_cb(uv_timer_t *t);
static void resend(struct creq *req, struct cnode *ask);

static size_t arg_len(const char **argv, const size_t *lens, int i)
{
    return lens ? lens[i] : strlen(argv[i]);
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* Which arguments of a command are keys: from argv[1], every `step`-th. */
static int key_step(const char *name, size_t len)
{
    static const char *const every[] = {"DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "WATCH"};
    static const char *const pairs[] = {"MSET", "MSETNX"};
    if (len > CMD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(every); i++)
        if (name_is(name, len, every[i]))
            return 1;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(pairs); i++)
        if (name_is(name, len, pairs[i]))
            return 2;
    return 0;
}

#define NO_KEY (-1)
#define CROSS_SLOT (-2)

/* The slot shared by keys argv[first], argv[first + step]... (up to `end`),
 * NO_KEY when there is none, CROSS_SLOT when they differ. */
static int keys_slot(const char **argv, const size_t *lens, int first, int end, int step)
{
    int slot = NO_KEY;
    for (int i = first; i < end; i += step) {
        int s = (int)patron_key_slot(argv[i], arg_len(argv, lens, i));
        if (slot >= 0 && s != slot)
            return CROSS_SLOT;
        slot = s;
    }
    return slot;
}

/* ---- logging ----------------------------------------------------------------- */

static void cl_log(const struct patron_redis_cluster *c, int level, const char *msg,
                   const char *host, int port, const char *detail)
{
    if (!c->log || !patron_log_enabled(c->log, level))
        return;
    char esc[512], h[HOST_MAX * 2 + 8];
    (void)patron_json_escape(esc, sizeof esc, detail ? detail : "");
    (void)patron_json_escape(h, sizeof h, host ? host : "");
    patron_log(c->log, level, msg, "\"redis\":\"%s:%d\",\"detail\":\"%s\"", h, port, esc);
}

/* ---- state -------------------------------------------------------------------- */

static bool node_up(const struct cnode *n)
{
    return n && !n->closing && patron_redis_connected(n->r);
}

/* Connected = every slot owned by a connected master; counted per node so
 * that a MOVED does not cost a scan of the 16384 slots. */
static void update_state(struct patron_redis_cluster *c)
{
    if (c->closing)
        return;
    size_t covered = 0;
    for (struct cnode *n = c->nodes; n; n = n->next)
        if (n->n_slots && node_up(n))
            covered += n->n_slots;
    bool connected = covered == PATRON_REDIS_CLUSTER_SLOTS;
    /* Degraded: poll the map until a failover shows up in it. */
    if (!connected && !c->refresh_inflight && !uv_is_active((uv_handle_t *)&c->refresh_timer))
        (void)uv_timer_start(&c->refresh_timer, refresh_timer_cb, DEGRADED_REFRESH_MS, 0);
    if (connected == c->connected)
        return;
    c->connected = connected;
    cl_log(c, connected ? PATRON_LOG_INFO : PATRON_LOG_WARN,
           connected ? "redis cluster connected" : "redis cluster degraded", NULL, 0, NULL);
    if (c->on_state)
        c->on_state(c->ud, connected);
}

static void set_slot(struct patron_redis_cluster *c, int slot, struct cnode *n)
{
    struct cnode *old = c->slots[slot];
    if (old == n)
        return;
    if (old)
        old->n_slots--;
    if (n)
        n->n_slots++;
    c->slots[slot] = n;
}

/* ---- requests ------------------------------------------------------------------ */

static void finish(struct creq *req, redisReply *reply)
{
    struct patron_redis_cluster *c = req->c;
    patron_redis_cb cb = req->cb;
    void *ud = req->ud;
    c->pending--;
    free(req);
    cb(ud, reply);
}

static struct creq *req_new(struct patron_redis_cluster *c, patron_redis_cb cb, void *ud, int argc,
                            const char **argv, const size_t *lens)
{
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += arg_len(argv, lens, i);
    size_t head = sizeof(struct creq) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    struct creq *req = patron_calloc(1, head + bytes);
    req->c = c;
    req->cb = cb;
    req->ud = ud;
    req->argc = argc;
    req->argv = (const char **)(void *)(req + 1);
    req->lens = (size_t *)(void *)(req->argv + argc);
    char *data = (char *)(req->lens + argc);
    for (int i = 0; i < argc; i++) {
        size_t len = arg_len(argv, lens, i);
        if (len)
            memcpy(data, argv[i], len);
        req->argv[i] = data;
        req->lens[i] = len;
        data += len;
    }
    return req;
}

static void req_cb(void *ud, redisReply *reply);

static int send_to(struct cnode *n, struct creq *req)
{
    int rc;
    if (req->script) {
        if (req->script->idx >= n->n_scripts || !n->scripts[req->script->idx])
            return PATRON_EIO;
        rc = patron_redis_evalsha(n->r, n->scripts[req->script->idx], req_cb, req, req->nkeys,
                                  req->argc - req->nkeys, req->argv, req->lens);
    } else {
        rc = patron_redis_commandv(n->r, req_cb, req, req->argc, req->argv, req->lens);
    }
    if (rc == 0)
        req->node = n;
    return rc;
}

/* A master for a command without a key: one that owns slots, so that a
 * script's writes do not land on a replica. */
static struct cnode *any_master(struct patron_redis_cluster *c)
{
    struct cnode *fallback = NULL;
    for (struct cnode *n = c->nodes; n; n = n->next) {
        if (!node_up(n))
            continue;
        if (n->n_slots)
            return n;
        if (!fallback)
            fallback = n;
    }
    return c->have_map ? NULL : fallback;
}

static struct cnode *route(struct patron_redis_cluster *c, int slot)
{
    return slot >= 0 ? c->slots[slot] : any_master(c);
}

/* Puts an accepted command on the wait list with its next backoff; its
 * callback gets NULL once retry_timeout_ms has passed since its first wait. */
static void wait_retry(struct creq *req)
{
    struct patron_redis_cluster *c = req->c;
    uint64_t now = uv_now(c->loop);
    req->node = NULL;
    if (c->closing) {
        finish(req, NULL);
        return;
    }
    if (!req->deadline)
        req->deadline = now + (uint64_t)c->retry_timeout_ms;
    if (now >= req->deadline) {
        finish(req, NULL);
        return;
    }
    req->backoff_ms = req->backoff_ms ? req->backoff_ms * 2 : RETRY_MIN_MS;
    if (req->backoff_ms > RETRY_MAX_MS)
        req->backoff_ms = RETRY_MAX_MS;
    req->due = now + (uint64_t)req->backoff_ms;
    req->next = NULL;
    if (c->wait_tail)
        c->wait_tail->next = req;
    else
        c->wait_head = req;
    c->wait_tail = req;
    if (!uv_is_active((uv_handle_t *)&c->retry_timer))
        (void)uv_timer_start(&c->retry_timer, retry_timer_cb, RETRY_TICK_MS, RETRY_TICK_MS);
}

static void run_waiting(struct patron_redis_cluster *c, bool all);

static void retry_timer_cb(uv_timer_t *t)
{
    run_waiting(t->data, false);
}

static void noop_cb(void *ud, redisReply *reply)
{
    (void)ud;
    (void)reply;
}

/* Sends a command again: to `ask` (after ASKING, for this one send only) or
 * to the master of its slot; waits when there is none connected. */
static void resend(struct creq *req, struct cnode *ask)
{
    struct patron_redis_cluster *c = req->c;
    if (c->closing) {
        finish(req, NULL);
        return;
    }
    if (ask) {
        const char *asking[] = {"ASKING"};
        const size_t asking_len[] = {6};
        /* Both leave in the same write on the same connection, in order. */
        if (node_up(ask) &&
            patron_redis_commandv(ask->r, noop_cb, NULL, 1, asking, asking_len) == 0 &&
            send_to(ask, req) == 0)
            return;
        /* Without the target the source answers ASK again, later. */
    } else {
        struct cnode *n = route(c, req->slot);
        if (node_up(n) && send_to(n, req) == 0)
            return;
    }
    wait_retry(req);
}

/* Runs the commands on the wait list that are due (all of them when
 * `all`: a node just connected or the map changed). */
static void run_waiting(struct patron_redis_cluster *c, bool all)
{
    struct creq *list = c->wait_head;
    c->wait_head = c->wait_tail = NULL;
    uint64_t now = uv_now(c->loop);
    while (list) {
        struct creq *req = list;
        list = req->next;
        req->next = NULL;
        if (c->closing) {
            finish(req, NULL);
        } else if (all || req->due <= now) {
            resend(req, NULL);
        } else {
            if (c->wait_tail)
                c->wait_tail->next = req;
            else
                c->wait_head = req;
            c->wait_tail = req;
        }
    }
    if (!c->wait_head && !c->closing)
        uv_timer_stop(&c->retry_timer);
}

static struct cnode *node_get(struct patron_redis_cluster *c, const char *host, size_t host_len,
                              int port);

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the slot and the node, created
 * when new. An empty host (Redis 7: endpoint unknown) is the sender's. */
static struct cnode *parse_redirect(struct creq *req, const char *str, int *slot)
{
    const char *sp = strchr(str, ' ');
    const char *end = sp ? strchr(sp + 1, ' ') : NULL;
    int64_t s, port;
    if (!end ||
        patron_parse_i64(sp + 1, (size_t)(end - sp - 1), 0, PATRON_REDIS_CLUSTER_SLOTS - 1, &s))
        return NULL;
    const char *ep = end + 1;
    const char *colon = strrchr(ep, ':');
    if (!colon || patron_parse_i64_str(colon + 1, 1, 65535, &port))
        return NULL;
    *slot = (int)s;
    const char *host = ep;
    size_t host_len = (size_t)(colon - ep);
    if (host_len == 0 && req->node) {
        host = req->node->host;
        host_len = strlen(host);
    }
    return node_get(req->c, host, host_len, (int)port);
}

static bool error_is(const redisReply *reply, const char *prefix)
{
    size_t n = strlen(prefix);
    return reply->str && reply->len >= n && strncmp(reply->str, prefix, n) == 0 &&
           (reply->len == n || reply->str[n] == ' ');
}

static void req_cb(void *ud, redisReply *reply)
{
    struct creq *req = ud;
    struct patron_redis_cluster *c = req->c;
    if (!reply) {
        /* The node's connection failed: as on one node, the caller decides. */
        if (!c->closing)
            request_refresh(c);
        finish(req, NULL);
        return;
    }
    if (reply->type != REDIS_REPLY_ERROR || c->closing) {
        finish(req, reply);
        return;
    }
    bool moved = error_is(reply, "MOVED");
    if (moved || error_is(reply, "ASK")) {
        int slot;
        struct cnode *n;
        if (++req->redirects > PATRON_REDIS_CLUSTER_MAX_REDIRECTS ||
            !(n = parse_redirect(req, reply->str, &slot))) {
            cl_log(c, PATRON_LOG_ERROR, "redis cluster redirect not followed", NULL, 0, reply->str);
            finish(req, reply);
            return;
        }
        if (moved) {
            set_slot(c, slot, n);
            request_refresh(c);
            req->node = NULL;
            resend(req, NULL);
            update_state(c);
        } else {
            req->node = NULL;
            resend(req, n);
        }
        return;
    }
    if (error_is(reply, "TRYAGAIN") || error_is(reply, "CLUSTERDOWN")) {
        if (req->deadline && uv_now(c->loop) >= req->deadline) {
            finish(req, reply);
            return;
        }
        if (error_is(reply, "CLUSTERDOWN"))
            request_refresh(c);
        wait_retry(req);
        return;
    }
    finish(req, reply);
}

/* ---- nodes --------------------------------------------------------------------- */

static void node_free(struct cnode *n)
{
    free(n->scripts);
    free(n->host);
    free(n);
}

static void maybe_free(struct patron_redis_cluster *c)
{
    if (!c->closing || c->handles > 0)
        return;
    void (*on_closed)(void *) = c->on_closed;
    void *ud = c->closed_ud;
    for (size_t i = 0; i < c->n_scripts; i++) {
        free(c->scripts[i]->lua);
        free(c->scripts[i]);
    }
    free(c->scripts);
    free(c->user);
    free(c->password);
    free(c);
    if (on_closed)
        on_closed(ud);
}

static void node_closed(void *ud)
{
    struct cnode *n = ud;
    struct patron_redis_cluster *c = n->c;
    for (struct cnode **p = &c->nodes; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            break;
        }
    }
    c->n_nodes--;
    node_free(n);
    c->handles--;
    maybe_free(c);
}

static void node_close(struct cnode *n)
{
    if (n->closing)
        return;
    n->closing = true;
    /* Its pending commands get NULL from patron_redis, now. */
    patron_redis_close(n->r, node_closed, n);
}

static int node_add_script(struct cnode *n, struct patron_redis_cluster_script *s)
{
    if (s->idx >= n->n_scripts) {
        size_t cap = s->idx + 1;
        n->scripts = patron_realloc(n->scripts, cap * sizeof *n->scripts);
        for (size_t i = n->n_scripts; i < cap; i++)
            n->scripts[i] = NULL;
        n->n_scripts = cap;
    }
    return patron_redis_script(n->r, s->lua, &n->scripts[s->idx]);
}

static void node_state_cb(void *ud, bool connected)
{
    struct cnode *n = ud;
    struct patron_redis_cluster *c = n->c;
    if (c->closing || n->closing)
        return;
    cl_log(c, connected ? PATRON_LOG_DEBUG : PATRON_LOG_WARN,
           connected ? "redis cluster node up" : "redis cluster node down", n->host, n->port, NULL);
    request_refresh(c);
    if (connected && c->wait_head)
        run_waiting(c, true);
    update_state(c);
}

static struct cnode *node_find(struct patron_redis_cluster *c, const char *host, size_t host_len,
                               int port)
{
    for (struct cnode *n = c->nodes; n; n = n->next)
        if (!n->closing && n->port == port && strlen(n->host) == host_len &&
            memcmp(n->host, host, host_len) == 0)
            return n;
    return NULL;
}

/* The node at host:port, connecting to it when it is new; NULL when the
 * address is unusable or the client already holds MAX_NODES. */
static struct cnode *node_get(struct patron_redis_cluster *c, const char *host, size_t host_len,
                              int port)
{
    struct cnode *n = node_find(c, host, host_len, port);
    if (n)
        return n;
    if (c->closing || host_len == 0 || host_len > HOST_MAX || memchr(host, '\0', host_len) ||
        c->n_nodes >= PATRON_REDIS_CLUSTER_MAX_NODES)
        return NULL;
    n = patron_calloc(1, sizeof *n);
    n->c = c;
    n->host = patron_strndup(host, host_len);
    n->port = port;
    struct patron_redis_options opt = {
        .host = n->host,
        .port = port,
        .user = c->user,
        .password = c->password,
        .connect_timeout_ms = c->connect_timeout_ms,
        .max_backoff_ms = c->max_backoff_ms,
        .max_pending = c->max_pending,
        .max_reply_bytes = c->max_reply_bytes,
        .command_timeout_ms = c->command_timeout_ms,
        .timeouts = c->timeouts,
        .on_state = node_state_cb,
        .ud = n,
        .log = c->log,
    };
    if (patron_redis_open(&n->r, c->loop, &opt) < 0) {
        cl_log(c, PATRON_LOG_ERROR, "redis cluster node refused", n->host, port, NULL);
        node_free(n);
        return NULL;
    }
    n->next = c->nodes;
    c->nodes = n;
    c->n_nodes++;
    c->handles++;
    for (size_t i = 0; i < c->n_scripts; i++)
        if (node_add_script(n, c->scripts[i]) < 0)
            cl_log(c, PATRON_LOG_ERROR, "redis cluster script not registered", n->host, port,
                   c->scripts[i]->sha);
    return n;
}

/* ---- the slot map ---------------------------------------------------------------- */

static bool slots_entry_ok(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
        return false;
    const redisReply *from = e->element[0], *to = e->element[1], *master = e->element[2];
    if (from->type != REDIS_REPLY_INTEGER || to->type != REDIS_REPLY_INTEGER || from->integer < 0 ||
        to->integer < from->integer || to->integer >= PATRON_REDIS_CLUSTER_SLOTS)
        return false;
    if (master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
        master->element[0]->type != REDIS_REPLY_STRING ||
        master->element[1]->type != REDIS_REPLY_INTEGER || master->element[1]->integer < 1 ||
        master->element[1]->integer > 65535)
        return false;
    return true;
}

/* Replaces the map by a CLUSTER SLOTS reply from `from`, then closes the
 * nodes that are neither seeds nor masters any more. A malformed reply
 * changes nothing. */
static void apply_slots(struct patron_redis_cluster *c, struct cnode *from, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        cl_log(c, PATRON_LOG_WARN, "redis cluster: bad CLUSTER SLOTS reply", from->host, from->port,
               reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        if (!slots_entry_ok(reply->element[i])) {
            cl_log(c, PATRON_LOG_WARN, "redis cluster: bad CLUSTER SLOTS entry", from->host,
                   from->port, NULL);
            return;
        }
    }
    for (int s = 0; s < PATRON_REDIS_CLUSTER_SLOTS; s++)
        set_slot(c, s, NULL);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        const redisReply *master = e->element[2];
        const char *host = master->element[0]->str;
        size_t host_len = master->element[0]->len;
        if (host_len == 0 || (host_len == 1 && host[0] == '?')) {
            host = from->host;
            host_len = strlen(host);
        }
        struct cnode *n = node_get(c, host, host_len, (int)master->element[1]->integer);
        for (long long s = e->element[0]->integer; n && s <= e->element[1]->integer; s++)
            set_slot(c, (int)s, n);
    }
    c->have_map = true;
    for (struct cnode *n = c->nodes; n; n = n->next)
        if (!n->seed && !n->n_slots && !n->closing)
            node_close(n);
}

static void refresh_cb(void *ud, redisReply *reply)
{
    struct cnode *from = ud;
    struct patron_redis_cluster *c = from->c;
    c->refresh_inflight = false;
    if (c->closing)
        return;
    if (reply)
        apply_slots(c, from, reply);
    if (c->wait_head)
        run_waiting(c, true);
    update_state(c);
    if (c->refresh_wanted)
        request_refresh(c);
}

/* Asks a connected node, seeds first as they are the most stable, for the
 * slot map; a node that just connected will ask again. */
static void refresh_timer_cb(uv_timer_t *t)
{
    struct patron_redis_cluster *c = t->data;
    if (c->closing || c->refresh_inflight)
        return;
    const char *argv[] = {"CLUSTER", "SLOTS"};
    const size_t lens[] = {7, 5};
    /* Start after the node asked last time: a stale node must not be the
     * only voice. */
    size_t n_up = 0;
    for (struct cnode *n = c->nodes; n; n = n->next)
        n_up += node_up(n);
    if (n_up == 0)
        return;
    size_t pick = (size_t)(c->last_refresh / REFRESH_MIN_INTERVAL_MS) % n_up;
    for (size_t tries = 0; tries < n_up; tries++) {
        size_t k = 0;
        for (struct cnode *n = c->nodes; n; n = n->next) {
            if (!node_up(n))
                continue;
            if (k++ != (pick + tries) % n_up)
                continue;
            if (patron_redis_commandv(n->r, refresh_cb, n, 2, argv, lens) == 0) {
                c->refresh_inflight = true;
                c->refresh_wanted = false;
                c->last_refresh = uv_now(c->loop);
                return;
            }
            break;
        }
    }
}

/* Coalesces requests: at most one CLUSTER SLOTS in flight and one per
 * REFRESH_MIN_INTERVAL_MS; one more runs after the one in flight. */
static void request_refresh(struct patron_redis_cluster *c)
{
    if (c->closing)
        return;
    c->refresh_wanted = true;
    if (c->refresh_inflight)
        return;
    uint64_t now = uv_now(c->loop);
    uint64_t at = c->last_refresh ? c->last_refresh + REFRESH_MIN_INTERVAL_MS : now;
    uint64_t delay = at > now ? at - now : 0;
    if (uv_is_active((uv_handle_t *)&c->refresh_timer) &&
        uv_timer_get_due_in(&c->refresh_timer) <= delay)
        return;
    (void)uv_timer_start(&c->refresh_timer, refresh_timer_cb, delay, 0);
}

/* ---- public API ---------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
    struct patron_redis_cluster *c = h->data;
    c->handles--;
    maybe_free(c);
}

int patron_redis_cluster_open(struct patron_redis_cluster **out, uv_loop_t *loop,
                              const struct patron_redis_cluster_options *opt)
{
    if (!out || !loop || !opt || !opt->seeds || opt->n_seeds == 0 ||
        opt->n_seeds > PATRON_CONFIG_CLUSTER_MAX || opt->connect_timeout_ms < 0 ||
        opt->max_backoff_ms < 0 || opt->retry_timeout_ms < 0 || opt->command_timeout_ms < 0 ||
        (opt->user && !opt->password))
        return PATRON_EINVAL;
    for (size_t i = 0; i < opt->n_seeds; i++) {
        const struct patron_endpoint *e = &opt->seeds[i];
        if (!e->host || !e->host[0] || strlen(e->host) > HOST_MAX || e->port < 1 || e->port > 65535)
            return PATRON_EINVAL;
    }
    struct patron_redis_cluster *c = patron_calloc(1, sizeof *c);
    c->loop = loop;
    c->user = opt->user ? patron_strdup(opt->user) : NULL;
    c->password = opt->password ? patron_strdup(opt->password) : NULL;
    c->connect_timeout_ms =
        opt->connect_timeout_ms ? opt->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    c->max_backoff_ms = opt->max_backoff_ms ? opt->max_backoff_ms : DEFAULT_MAX_BACKOFF_MS;
    c->retry_timeout_ms = opt->retry_timeout_ms ? opt->retry_timeout_ms : DEFAULT_RETRY_TIMEOUT_MS;
    c->command_timeout_ms = opt->command_timeout_ms;
    c->timeouts = opt->timeouts;
    c->max_pending = opt->max_pending ? opt->max_pending : PATRON_REDIS_MAX_PENDING;
    c->max_reply_bytes = opt->max_reply_bytes ? opt->max_reply_bytes : PATRON_REDIS_MAX_REPLY_BYTES;
    c->on_state = opt->on_state;
    c->ud = opt->ud;
    c->log = opt->log;
    (void)uv_timer_init(loop, &c->refresh_timer);
    (void)uv_timer_init(loop, &c->retry_timer);
    c->refresh_timer.data = c;
    c->retry_timer.data = c;
    c->handles = 2;
    for (size_t i = 0; i < opt->n_seeds; i++) {
        const struct patron_endpoint *e = &opt->seeds[i];
        struct cnode *n = node_get(c, e->host, strlen(e->host), e->port);
        if (n)
            n->seed = true;
    }
    *out = c;
    return 0;
}

bool patron_redis_cluster_connected(const struct patron_redis_cluster *c)
{
    return c->connected && !c->closing;
}

size_t patron_redis_cluster_pending(const struct patron_redis_cluster *c)
{
    return c->pending;
}

/* Routes and sends a new command; on failure the request is freed. */
static int submit(struct patron_redis_cluster *c, struct creq *req)
{
    struct cnode *n = route(c, req->slot);
    int rc = node_up(n) ? send_to(n, req) : PATRON_EIO;
    if (rc < 0) {
        free(req);
        return rc;
    }
    c->pending++;
    return 0;
}

int patron_redis_cluster_commandv(struct patron_redis_cluster *c, patron_redis_cb cb, void *ud,
                                  int argc, const char **argv, const size_t *argvlen)
{
    if (!c || !cb || argc < 1 || !argv)
        return PATRON_EINVAL;
    if (c->closing)
        return PATRON_EIO;
    if (c->pending >= c->max_pending)
        return PATRON_ETOOBIG;
    int slot = NO_KEY;
    if (argc >= 2) {
        int step = key_step(argv[0], arg_len(argv, argvlen, 0));
        slot = keys_slot(argv, argvlen, 1, step ? argc : 2, step ? step : 1);
        if (slot == CROSS_SLOT)
            return PATRON_EINVAL;
    }
    struct creq *req = req_new(c, cb, ud, argc, argv, argvlen);
    req->slot = slot;
    return submit(c, req);
}

int patron_redis_cluster_slot_commandv(struct patron_redis_cluster *c, unsigned slot,
                                       patron_redis_cb cb, void *ud, int argc, const char **argv,
                                       const size_t *argvlen)
{
    if (!c || !cb || argc < 1 || !argv || slot >= PATRON_REDIS_CLUSTER_SLOTS)
        return PATRON_EINVAL;
    if (c->closing)
        return PATRON_EIO;
    if (c->pending >= c->max_pending)
        return PATRON_ETOOBIG;
    struct creq *req = req_new(c, cb, ud, argc, argv, argvlen);
    req->slot = (int)slot;
    return submit(c, req);
}

size_t patron_redis_cluster_masters(const struct patron_redis_cluster *c, unsigned *slots,
                                    size_t max)
{
    if (!c->have_map)
        return 0;
    size_t n = 0;
    /* Rare (once per scan of the keyspace) and nodes are few: a walk of the
     * map per master rather than a mark in every node. */
    for (const struct cnode *m = c->nodes; m; m = m->next) {
        if (!m->n_slots)
            continue;
        unsigned lowest = 0;
        while (lowest < PATRON_REDIS_CLUSTER_SLOTS && c->slots[lowest] != m)
            lowest++;
        if (lowest == PATRON_REDIS_CLUSTER_SLOTS)
            continue;
        /* Keep the `max` lowest, sorted: insertion. */
        size_t kept = n < max ? n : max;
        size_t at = kept;
        while (at > 0 && slots[at - 1] > lowest)
            at--;
        if (at < max) {
            size_t last = kept < max ? kept : max - 1;
            for (size_t i = last; i > at; i--)
                slots[i] = slots[i - 1];
            slots[at] = lowest;
        }
        n++;
    }
    return n;
}

int patron_redis_cluster_script(struct patron_redis_cluster *c, const char *lua,
                                struct patron_redis_cluster_script **out)
{
    if (!c || !lua || !out || c->closing)
        return PATRON_EINVAL;
    size_t len = strlen(lua);
    if (len > SCRIPT_MAX)
        return PATRON_ETOOBIG;
    char sha[41];
    patron_sha1_hex(lua, len, sha);
    for (size_t i = 0; i < c->n_scripts; i++) {
        if (memcmp(c->scripts[i]->sha, sha, sizeof sha) == 0) {
            *out = c->scripts[i];
            return 0;
        }
    }
    struct patron_redis_cluster_script *s = patron_calloc(1, sizeof *s);
    s->lua = patron_strndup(lua, len);
    s->len = len;
    s->idx = c->n_scripts;
    memcpy(s->sha, sha, sizeof sha);
    c->scripts = patron_realloc(c->scripts, (c->n_scripts + 1) * sizeof *c->scripts);
    c->scripts[c->n_scripts++] = s;
    for (struct cnode *n = c->nodes; n; n = n->next) {
        if (n->closing)
            continue;
        int rc = node_add_script(n, s);
        if (rc < 0)
            cl_log(c, PATRON_LOG_ERROR, "redis cluster script not registered", n->host, n->port,
                   s->sha);
    }
    *out = s;
    return 0;
}

const char *patron_redis_cluster_script_sha(const struct patron_redis_cluster_script *s)
{
    return s->sha;
}

int patron_redis_cluster_evalsha(struct patron_redis_cluster *c,
                                 struct patron_redis_cluster_script *s, patron_redis_cb cb,
                                 void *ud, int nkeys, int nargs, const char **argv,
                                 const size_t *argvlen)
{
    if (!c || !s || !cb || nkeys < 0 || nargs < 0 || nkeys > INT32_MAX / 2 - 8 ||
        nargs > INT32_MAX / 2 - 8 || (nkeys + nargs > 0 && !argv))
        return PATRON_EINVAL;
    if (c->closing)
        return PATRON_EIO;
    if (c->pending >= c->max_pending)
        return PATRON_ETOOBIG;
    int slot = keys_slot(argv, argvlen, 0, nkeys, 1);
    if (slot == CROSS_SLOT)
        return PATRON_EINVAL;
    struct creq *req = req_new(c, cb, ud, nkeys + nargs, argv, argvlen);
    req->slot = slot;
    req->script = s;
    req->nkeys = nkeys;
    return submit(c, req);
}

void patron_redis_cluster_close(struct patron_redis_cluster *c, void (*on_closed)(void *ud),
                                void *ud)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->on_closed = on_closed;
    c->closed_ud = ud;
    uv_timer_stop(&c->refresh_timer);
    uv_timer_stop(&c->retry_timer);
    uv_close((uv_handle_t *)&c->refresh_timer, timer_closed);
    uv_close((uv_handle_t *)&c->retry_timer, timer_closed);
    run_waiting(c, true); /* closing: each gets NULL */
    /* Nodes are freed on later loop iterations (uv close callbacks), so the
     * list stays walkable while their callbacks run. */
    for (struct cnode *n = c->nodes; n; n = n->next)
        node_close(n);
}
