/*
 * The services' Redis: one handle over either client, one Redis node
 * (redis.h) or a Redis Cluster (redis_cluster.h), chosen by the options —
 * PATRON_REDIS_CLUSTER set means the cluster, else PATRON_REDIS_URL's node.
 * Every Patron key is hash-tagged (keys.h), so every command and script
 * touches one slot and the same calls run on both.
 *
 * Ownership, threading and guarantees are those of the client underneath:
 * the handle copies its options' strings and every command's arguments (a
 * printf-style command is formatted, then sent as arguments); a reply
 * belongs to hiredis and is valid only inside its callback; the callback of
 * every accepted command runs exactly once, with the reply or with NULL
 * (connection lost, retries exhausted, closing); a refused command
 * (negative return) never runs its callback. Replies come back in the
 * order of the commands on one node; on a cluster only commands to the same
 * slot keep their order. Loop thread only; every callback runs on the loop.
 */
#ifndef PATRON_KV_H
#define PATRON_KV_H

#include <stdarg.h>

#include "patron/redis.h"
#include "patron/resp.h"

/* Arguments of one printf-style command, at most. */
#define PATRON_KV_ARGS_MAX PATRON_RESP_ARGS_MAX
/* Shards (cluster masters) patron_kv_shards reports, at most. */
#define PATRON_KV_SHARDS_MAX 1000

struct patron_endpoint;
struct patron_kv;
struct patron_kv_script;

struct patron_kv_options {
    /* The cluster's seed nodes (config.h's redis_cluster[]); n_cluster == 0
     * means one node at host:port, in database db. */
    const struct patron_endpoint *cluster;
    size_t n_cluster;
    const char *host; /* as in patron_redis_options */
    int port;
    int db;                 /* one node only: Redis Cluster has no SELECT */
    const char *user;       /* NULL: "AUTH password"; else ACL "AUTH user password" */
    const char *password;   /* NULL: no AUTH */
    int connect_timeout_ms; /* 0: 2000 (per node) */
    int max_backoff_ms;     /* 0: 5000 (per node) */
    size_t max_pending;     /* 0: PATRON_REDIS_MAX_PENDING (over all nodes) */
    size_t max_reply_bytes; /* 0: PATRON_REDIS_MAX_REPLY_BYTES */
    /* 0: none; else each command's deadline (redis.h, "Stalls"): a node
     * that does not answer within it is dropped, its commands get NULL and
     * it is reconnected. On a cluster it also bounds how long a command
     * waits for its slot's master (after MOVED, TRYAGAIN, CLUSTERDOWN), so
     * that every command is answered or failed within about twice this. */
    int command_timeout_ms;
    struct patron_counter *timeouts; /* +1 per stall; borrowed, may be NULL */
    /* Called on the loop when the store becomes usable and when it stops
     * being so (a cluster: every slot's master connected, or not); never
     * during or after close. */
    void (*on_state)(void *ud, bool connected);
    void *ud;
    const struct patron_log *log; /* borrowed, may be NULL */
};

/* Starts connecting at once and keeps reconnecting until closed; a store
 * that is down at start is not an error. PATRON_EINVAL for options out of
 * range. */
int patron_kv_open(struct patron_kv **out, uv_loop_t *loop,
                   const struct patron_kv_options *opt) PATRON_MUST_USE;

bool patron_kv_connected(const struct patron_kv *kv);
bool patron_kv_is_cluster(const struct patron_kv *kv);
/* Which keys may share one multi-key command or script call: keys with the
 * same group may. 0 for every key on one node (a script there may touch any
 * key it declares); the key's hash slot on a cluster. */
unsigned patron_kv_key_group(const struct patron_kv *kv, const char *key, size_t len);

/* As patron_redis_commandv; on a cluster the keys of one command must share
 * a slot (PATRON_EINVAL when the client sees they do not). PATRON_EIO when
 * the (slot's) node is not connected, PATRON_ETOOBIG at max_pending. */
int patron_kv_commandv(struct patron_kv *kv, patron_redis_cb cb, void *ud, int argc,
                       const char **argv, const size_t *argvlen) PATRON_MUST_USE;
/* hiredis' format, exactly as patron_redis_command: %s a C string, %b
 * (pointer, size_t); each space-separated word is one argument. A bad
 * format is PATRON_EINVAL. */
int patron_kv_command(struct patron_kv *kv, patron_redis_cb cb, void *ud, const char *fmt,
                      ...) PATRON_MUST_USE;
int patron_kv_vcommand(struct patron_kv *kv, patron_redis_cb cb, void *ud, const char *fmt,
                       va_list ap) PATRON_MUST_USE;

/* Lua scripts as in redis.h (on a cluster: loaded on every master). The
 * script lives until the handle closes. */
int patron_kv_script(struct patron_kv *kv, const char *lua,
                     struct patron_kv_script **out) PATRON_MUST_USE;
const char *patron_kv_script_sha(const struct patron_kv_script *s); /* 40 hex digits */
/* argv holds nkeys keys then nargs arguments; argvlen NULL means strlen. */
int patron_kv_evalsha(struct patron_kv *kv, struct patron_kv_script *s, patron_redis_cb cb,
                      void *ud, int nkeys, int nargs, const char **argv,
                      const size_t *argvlen) PATRON_MUST_USE;

/* Commands that are about a node rather than a key (SCAN, DBSIZE) must run
 * on every shard: the one node, or each master of a cluster. A shard is
 * named by the lowest slot it owns, so that it keeps its name when a
 * replica takes its master's place. Writes min(n, max) shards to `shards`
 * (ascending) and returns n: 1 for one node, the masters of the current
 * slot map for a cluster (0 before the first map). */
size_t patron_kv_shards(const struct patron_kv *kv, unsigned *shards, size_t max);
/* As patron_kv_commandv, sent to the shard owning slot `shard` whatever the
 * arguments are. On one node the shard is ignored. */
int patron_kv_shard_commandv(struct patron_kv *kv, unsigned shard, patron_redis_cb cb, void *ud,
                             int argc, const char **argv, const size_t *argvlen) PATRON_MUST_USE;

size_t patron_kv_pending(const struct patron_kv *kv);

/* As patron_redis_close: every pending callback runs with NULL, then
 * on_closed (may be NULL) runs on the loop once the handle is freed. May
 * be called from any of the handle's callbacks. */
void patron_kv_close(struct patron_kv *kv, void (*on_closed)(void *ud), void *ud);

#endif
