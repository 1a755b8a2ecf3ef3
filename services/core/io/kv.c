#include "patron/kv.h"

#include <stdlib.h>
#include <string.h>

#include "patron/redis_cluster.h"
#include "patron/resp.h"
#include "patron/keys.h"

/* Arguments split on the stack; a longer command allocates. */
#define ARGS_ON_STACK 32

/*
 * Exactly one of the two clients is set. A script is the client's own
 * handle plus its kind; the kv keeps the wrappers in a list (registering
 * the same text twice returns the same one) and frees them with itself,
 * once the client closed.
 */
struct patron_kv_script {
    struct patron_kv_script *next;
    struct patron_redis_script *node;
    struct patron_redis_cluster_script *cluster;
};

struct patron_kv {
    struct patron_redis *node;
    struct patron_redis_cluster *cluster;
    struct patron_kv_script *scripts;
    bool closing;
    void (*on_closed)(void *ud);
    void *closed_ud;
};

/* ---- the handle --------------------------------------------------------- */

int patron_kv_open(struct patron_kv **out, uv_loop_t *loop, const struct patron_kv_options *opt)
{
    if (!out || !loop || !opt)
        return PATRON_EINVAL;
    struct patron_kv *kv = patron_calloc(1, sizeof *kv);
    int rc;
    if (opt->n_cluster > 0) {
        struct patron_redis_cluster_options co = {
            .seeds = opt->cluster,
            .n_seeds = opt->n_cluster,
            .user = opt->user,
            .password = opt->password,
            .connect_timeout_ms = opt->connect_timeout_ms,
            .max_backoff_ms = opt->max_backoff_ms,
            .max_pending = opt->max_pending,
            .max_reply_bytes = opt->max_reply_bytes,
            .command_timeout_ms = opt->command_timeout_ms,
            .timeouts = opt->timeouts,
            .retry_timeout_ms = opt->command_timeout_ms, /* 0: the cluster's default */
            .on_state = opt->on_state,
            .ud = opt->ud,
            .log = opt->log,
        };
        rc = patron_redis_cluster_open(&kv->cluster, loop, &co);
    } else {
        struct patron_redis_options ro = {
            .host = opt->host,
            .port = opt->port,
            .user = opt->user,
            .password = opt->password,
            .db = opt->db,
            .connect_timeout_ms = opt->connect_timeout_ms,
            .max_backoff_ms = opt->max_backoff_ms,
            .max_pending = opt->max_pending,
            .max_reply_bytes = opt->max_reply_bytes,
            .command_timeout_ms = opt->command_timeout_ms,
            .timeouts = opt->timeouts,
            .on_state = opt->on_state,
            .ud = opt->ud,
            .log = opt->log,
        };
        rc = patron_redis_open(&kv->node, loop, &ro);
    }
    if (rc < 0) {
        free(kv);
        return rc;
    }
    *out = kv;
    return 0;
}

bool patron_kv_connected(const struct patron_kv *kv)
{
    return kv->cluster ? patron_redis_cluster_connected(kv->cluster)
                       : patron_redis_connected(kv->node);
}

bool patron_kv_is_cluster(const struct patron_kv *kv)
{
    return kv->cluster != NULL;
}

unsigned patron_kv_key_group(const struct patron_kv *kv, const char *key, size_t len)
{
    return kv->cluster ? patron_key_slot(key, len) : 0;
}

int patron_kv_commandv(struct patron_kv *kv, patron_redis_cb cb, void *ud, int argc,
                       const char **argv, const size_t *argvlen)
{
    if (!kv)
        return PATRON_EINVAL;
    return kv->cluster ? patron_redis_cluster_commandv(kv->cluster, cb, ud, argc, argv, argvlen)
                       : patron_redis_commandv(kv->node, cb, ud, argc, argv, argvlen);
}

/* hiredis formats (so that %s and %b mean what they mean in redis.h), the
 * RESP is split back into arguments, and both clients copy them before
 * this returns: the formatted buffer is freed here. */
int patron_kv_vcommand(struct patron_kv *kv, patron_redis_cb cb, void *ud, const char *fmt,
                       va_list ap)
{
    if (!kv || !cb || !fmt)
        return PATRON_EINVAL;
    char *resp = NULL;
    int len = redisvFormatCommand(&resp, fmt, ap);
    if (len < 0 || !resp)
        return PATRON_EINVAL;
    const char *stack_argv[ARGS_ON_STACK];
    size_t stack_lens[ARGS_ON_STACK];
    const char **argv = stack_argv;
    size_t *lens = stack_lens;
    int rc = patron_resp_split(resp, (size_t)len, argv, lens, ARGS_ON_STACK);
    if (rc > ARGS_ON_STACK) {
        argv = patron_malloc((size_t)rc * sizeof *argv);
        lens = patron_malloc((size_t)rc * sizeof *lens);
        rc = patron_resp_split(resp, (size_t)len, argv, lens, (size_t)rc);
    }
    if (rc > 0)
        rc = patron_kv_commandv(kv, cb, ud, rc, argv, lens);
    if (argv != stack_argv) {
        free(argv);
        free(lens);
    }
    redisFreeCommand(resp);
    return rc;
}

int patron_kv_command(struct patron_kv *kv, patron_redis_cb cb, void *ud, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = patron_kv_vcommand(kv, cb, ud, fmt, ap);
    va_end(ap);
    return rc;
}

int patron_kv_script(struct patron_kv *kv, const char *lua, struct patron_kv_script **out)
{
    if (!kv || !out)
        return PATRON_EINVAL;
    struct patron_redis_script *ns = NULL;
    struct patron_redis_cluster_script *cs = NULL;
    int rc = kv->cluster ? patron_redis_cluster_script(kv->cluster, lua, &cs)
                         : patron_redis_script(kv->node, lua, &ns);
    if (rc < 0)
        return rc;
    struct patron_kv_script *s = kv->scripts;
    while (s && !(s->node == ns && s->cluster == cs))
        s = s->next;
    if (!s) {
        s = patron_calloc(1, sizeof *s);
        s->node = ns;
        s->cluster = cs;
        s->next = kv->scripts;
        kv->scripts = s;
    }
    *out = s;
    return 0;
}

const char *patron_kv_script_sha(const struct patron_kv_script *s)
{
    return s->cluster ? patron_redis_cluster_script_sha(s->cluster)
                      : patron_redis_script_sha(s->node);
}

int patron_kv_evalsha(struct patron_kv *kv, struct patron_kv_script *s, patron_redis_cb cb,
                      void *ud, int nkeys, int nargs, const char **argv, const size_t *argvlen)
{
    if (!kv || !s || (kv->cluster ? !s->cluster : !s->node))
        return PATRON_EINVAL;
    return kv->cluster
               ? patron_redis_cluster_evalsha(kv->cluster, s->cluster, cb, ud, nkeys, nargs, argv,
                                              argvlen)
               : patron_redis_evalsha(kv->node, s->node, cb, ud, nkeys, nargs, argv, argvlen);
}

size_t patron_kv_shards(const struct patron_kv *kv, unsigned *shards, size_t max)
{
    if (kv->cluster)
        return patron_redis_cluster_masters(kv->cluster, shards, max);
    if (max > 0)
        shards[0] = 0;
    return 1;
}

int patron_kv_shard_commandv(struct patron_kv *kv, unsigned shard, patron_redis_cb cb, void *ud,
                             int argc, const char **argv, const size_t *argvlen)
{
    if (!kv)
        return PATRON_EINVAL;
    return kv->cluster
               ? patron_redis_cluster_slot_commandv(kv->cluster, shard, cb, ud, argc, argv, argvlen)
               : patron_redis_commandv(kv->node, cb, ud, argc, argv, argvlen);
}

size_t patron_kv_pending(const struct patron_kv *kv)
{
    return kv->cluster ? patron_redis_cluster_pending(kv->cluster) : patron_redis_pending(kv->node);
}

static void client_closed(void *ud)
{
    struct patron_kv *kv = ud;
    void (*on_closed)(void *) = kv->on_closed;
    void *closed_ud = kv->closed_ud;
    while (kv->scripts) {
        struct patron_kv_script *s = kv->scripts;
        kv->scripts = s->next;
        free(s);
    }
    free(kv);
    if (on_closed)
        on_closed(closed_ud);
}

void patron_kv_close(struct patron_kv *kv, void (*on_closed)(void *ud), void *ud)
{
    if (!kv || kv->closing)
        return;
    kv->closing = true;
    kv->on_closed = on_closed;
    kv->closed_ud = ud;
    /* The client stays usable (refusing with PATRON_EIO) for the callbacks
     * that run with NULL from here on. */
    if (kv->cluster)
        patron_redis_cluster_close(kv->cluster, client_closed, kv);
    else
        patron_redis_close(kv->node, client_closed, kv);
}
