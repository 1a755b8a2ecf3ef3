/*
 * Redis Cluster client: the calling convention of patron_redis (redis.h),
 * with each command routed to the master that owns its key's hash slot,
 * over one patron_redis connection per master.
 *
 * Ownership: the client copies its options and every command's arguments
 * (it may resend them after MOVED, ASK or TRYAGAIN); a reply belongs to
 * hiredis and is valid only inside its callback. Guarantee: the callback of
 * every accepted command runs exactly once, with the reply or with NULL when
 * the node holding it was lost, the retries ran out or the client closes; a
 * refused command (negative return) never runs its callback. A command may
 * be answered out of order with commands to other slots, never with
 * commands to the same slot unless it was redirected. Threading: loop
 * thread only; every callback runs on the loop.
 */
#ifndef PATRON_REDIS_CLUSTER_H
#define PATRON_REDIS_CLUSTER_H

#include "patron/keys.h"
#include "patron/redis.h"

#define PATRON_REDIS_CLUSTER_SLOTS PATRON_KEY_SLOTS
/* Nodes (masters and seeds) the client connects to at most: a CLUSTER SLOTS
 * reply naming more is refused. */
#define PATRON_REDIS_CLUSTER_MAX_NODES 1000
/* Redirections (MOVED, ASK) followed for one command before it fails. */
#define PATRON_REDIS_CLUSTER_MAX_REDIRECTS 16

struct patron_endpoint;
struct patron_redis_cluster;
struct patron_redis_cluster_script;

struct patron_redis_cluster_options {
    const struct patron_endpoint *seeds; /* config.h's redis_cluster[] */
    size_t n_seeds;                      /* 1..PATRON_CONFIG_CLUSTER_MAX */
    const char *user;                    /* as in patron_redis_options */
    const char *password;
    int connect_timeout_ms; /* 0: 2000, per node */
    int max_backoff_ms;     /* 0: 5000, per node reconnect */
    /* How long a command already accepted may wait for its slot's master
     * (after MOVED to a node not yet connected, TRYAGAIN, CLUSTERDOWN)
     * before its callback gets NULL. 0: 5000. */
    int retry_timeout_ms;
    size_t max_pending;     /* 0: PATRON_REDIS_MAX_PENDING, over all nodes */
    size_t max_reply_bytes; /* 0: PATRON_REDIS_MAX_REPLY_BYTES */
    /* Each node's, as in patron_redis_options: a node that stops answering
     * is dropped (its commands get NULL) and reconnected. */
    int command_timeout_ms;
    struct patron_counter *timeouts;
    /* Connected = every slot is owned by a connected master. Called on the
     * loop on every change; never during or after close. */
    void (*on_state)(void *ud, bool connected);
    void *ud;
    const struct patron_log *log; /* borrowed, may be NULL */
};

/* Connects to the seeds at once, reads the slot map (CLUSTER SLOTS) from the
 * first that answers, and keeps reconnecting and refreshing until closed.
 * PATRON_EINVAL for options out of range. */
int patron_redis_cluster_open(struct patron_redis_cluster **out, uv_loop_t *loop,
                              const struct patron_redis_cluster_options *opt) PATRON_MUST_USE;

bool patron_redis_cluster_connected(const struct patron_redis_cluster *c);

/* The key is argv[1]; for DEL, UNLINK, EXISTS, TOUCH, MGET, WATCH every
 * argument from argv[1] on, and for MSET every other one, is a key too, and
 * all keys must share a slot (Patron's keys.h hash-tags them) or the command
 * is refused with PATRON_EINVAL. A command without a key (argc == 1) goes to
 * any connected master. PATRON_EIO when the slot's master is not connected,
 * PATRON_ETOOBIG at max_pending. Pipelining per node is automatic. */
int patron_redis_cluster_commandv(struct patron_redis_cluster *c, patron_redis_cb cb, void *ud,
                                  int argc, const char **argv,
                                  const size_t *argvlen) PATRON_MUST_USE;

/* Lua scripts: registered on every master, present and future (SCRIPT LOAD
 * on each connection, NOSCRIPT recovered by EVAL as in redis.h). The keys of
 * one call must share a slot (PATRON_EINVAL otherwise); nkeys == 0 runs on
 * any connected master. */
int patron_redis_cluster_script(struct patron_redis_cluster *c, const char *lua,
                                struct patron_redis_cluster_script **out) PATRON_MUST_USE;
const char *patron_redis_cluster_script_sha(const struct patron_redis_cluster_script *s);
int patron_redis_cluster_evalsha(struct patron_redis_cluster *c,
                                 struct patron_redis_cluster_script *s, patron_redis_cb cb,
                                 void *ud, int nkeys, int nargs, const char **argv,
                                 const size_t *argvlen) PATRON_MUST_USE;

/* Commands about a node rather than a key (SCAN) must run on every master.
 * A master is named by the lowest slot it owns, a name that a replica
 * promoted in its place keeps. Writes the min(n, max) lowest such slots to
 * `slots`, ascending, and returns n, the masters of the current map (0
 * before the first CLUSTER SLOTS reply). */
size_t patron_redis_cluster_masters(const struct patron_redis_cluster *c, unsigned *slots,
                                    size_t max);
/* As commandv, but sent to the master of `slot` whatever the arguments are
 * (PATRON_EINVAL for a slot out of range). */
int patron_redis_cluster_slot_commandv(struct patron_redis_cluster *c, unsigned slot,
                                       patron_redis_cb cb, void *ud, int argc, const char **argv,
                                       const size_t *argvlen) PATRON_MUST_USE;

size_t patron_redis_cluster_pending(const struct patron_redis_cluster *c);

/* As patron_redis_close: every pending callback runs with NULL (those of
 * commands waiting for a retry before this returns, those on a node's
 * connection as that node closes), then on_closed runs on the loop once
 * every node and handle is closed and the client is freed. */
void patron_redis_cluster_close(struct patron_redis_cluster *c, void (*on_closed)(void *ud),
                                void *ud);

#endif
