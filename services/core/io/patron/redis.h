/*
 * Async Redis client on the service's libuv loop (hiredis 0.14 underneath),
 * with reconnect, AUTH/SELECT on every connection, automatic pipelining and
 * Lua scripts by SHA.
 *
 * Ownership: the client copies its options' strings; a reply belongs to
 * hiredis and is valid only inside its callback. Guarantee: the callback of
 * every accepted command runs exactly once, with the reply or with NULL when
 * the connection failed, a command timed out or the client closes, so that
 * a caller never leaks the `ud` it passed; a command that is refused
 * (negative return) never runs its callback. Threading: loop thread only;
 * every callback runs on the loop.
 *
 * Stalls: with command_timeout_ms set, every command carries a deadline. A
 * server that is connected but does not answer (stopped, a long script, a
 * stuck fork) makes the oldest command miss it: the connection is then
 * deemed unhealthy and dropped exactly as if it had been lost — on_state
 * (false), every pending callback runs with NULL, in order, at once — and
 * the client reconnects. While no command is pending, a PING every
 * PATRON_REDIS_PING_INTERVAL_MS (its deadline the shorter of the timeout
 * and PATRON_REDIS_PING_TIMEOUT_MS) finds a stall without traffic, so that
 * a service's readiness (patron_redis_connected) turns false within about
 * interval + deadline. hiredis 1.x has this (redisAsyncSetTimeout: on a
 * timeout every callback gets NULL and the connection is dropped); Debian's
 * hiredis 0.14 does not, so the adapter below does the same.
 */
#ifndef PATRON_REDIS_H
#define PATRON_REDIS_H

#include <hiredis/hiredis.h>
#include <uv.h>

#include "patron/common.h"

/* Defaults of the options below. */
#define PATRON_REDIS_MAX_PENDING 1000000
/* Bytes of reply buffered and not yet parsed. hiredis 0.14 has no maximum
 * bulk length, so the adapter checks its read buffer after every read: a
 * reply this large is a bug (profiles are bounded) or a hostile peer, and
 * drops the connection. */
#define PATRON_REDIS_MAX_REPLY_BYTES (64u << 20)
/* The heartbeat of an idle client with a command timeout (see "Stalls"). */
#define PATRON_REDIS_PING_INTERVAL_MS 1000
#define PATRON_REDIS_PING_TIMEOUT_MS 2000

struct patron_counter;
struct patron_log;
struct patron_redis;
struct patron_redis_script;

struct patron_redis_options {
    const char *host;       /* NULL: 127.0.0.1; a path starting with '/' is a Unix socket */
    int port;               /* 0: 6379 */
    const char *user;       /* NULL: "AUTH password" (requirepass); else ACL "AUTH user password" */
    const char *password;   /* NULL: no AUTH */
    int db;                 /* SELECT db when not 0 */
    int connect_timeout_ms; /* 0: 2000; TCP connect plus the AUTH/SELECT handshake */
    int max_backoff_ms;     /* 0: 5000; reconnect waits 50 ms doubling to this, jittered */
    size_t max_pending;     /* 0: PATRON_REDIS_MAX_PENDING commands awaiting replies */
    size_t max_reply_bytes; /* 0: PATRON_REDIS_MAX_REPLY_BYTES */
    /* 0: none (blocking commands such as BLPOP need none); else how long a
     * command may wait for its reply before the connection is deemed
     * stalled (see "Stalls"). */
    int command_timeout_ms;
    struct patron_counter *timeouts; /* +1 per stall seen; borrowed, may be NULL */
    /* Called on the loop when the client becomes usable (after the handshake)
     * and when it loses the connection; never during or after close. */
    void (*on_state)(void *ud, bool connected);
    void *ud;
    const struct patron_log *log; /* borrowed, may be NULL */
};

/* Starts connecting at once and keeps reconnecting until closed: a Redis that
 * is down at start is not an error. Host names resolve synchronously
 * (hiredis 0.14). PATRON_EINVAL for options out of range. */
int patron_redis_open(struct patron_redis **out, uv_loop_t *loop,
                      const struct patron_redis_options *opt) PATRON_MUST_USE;

/* True once the handshake succeeded and until the connection is lost. */
bool patron_redis_connected(const struct patron_redis *r);

/* Commands issued in the same loop iteration leave in one write: pipelining
 * is automatic, and replies come back in the order of the commands.
 * Returns PATRON_EIO when not connected, PATRON_ETOOBIG when max_pending
 * commands are awaiting replies, PATRON_EINVAL for argc < 1. */
typedef void (*patron_redis_cb)(void *ud, redisReply *reply);
int patron_redis_commandv(struct patron_redis *r, patron_redis_cb cb, void *ud, int argc,
                          const char **argv, const size_t *argvlen) PATRON_MUST_USE;
/* `fmt` is hiredis' format: %s for a C string, %b for (pointer, size_t). */
int patron_redis_command(struct patron_redis *r, patron_redis_cb cb, void *ud, const char *fmt,
                         ...) PATRON_MUST_USE;

/* Lua scripts: register once (the client keeps a copy, computes the SHA-1
 * and SCRIPT LOADs it on every connection, so that EVALSHA stays in order
 * with the commands around it), then run by SHA. A NOSCRIPT reply (SCRIPT
 * FLUSH while connected) is retried once with EVAL, transparently; only
 * that retried call may be reordered after commands issued after it.
 * Registering the same text twice returns the same script. Scripts live
 * until the client closes. */
int patron_redis_script(struct patron_redis *r, const char *lua,
                        struct patron_redis_script **out) PATRON_MUST_USE;
const char *patron_redis_script_sha(const struct patron_redis_script *s); /* 40 hex digits */
/* argv holds nkeys keys then nargs arguments; argvlen NULL means strlen. */
int patron_redis_evalsha(struct patron_redis *r, struct patron_redis_script *s, patron_redis_cb cb,
                         void *ud, int nkeys, int nargs, const char **argv,
                         const size_t *argvlen) PATRON_MUST_USE;

/* Commands accepted whose callback has not run yet. */
size_t patron_redis_pending(const struct patron_redis *r);

/* Every pending callback runs with NULL before this returns (or, when called
 * from inside a reply callback, as soon as that callback returns); on_closed
 * (may be NULL) runs on the loop once every handle is closed and the client
 * is freed. May be called from any of the client's callbacks. */
void patron_redis_close(struct patron_redis *r, void (*on_closed)(void *ud), void *ud);

/* SHA-1 of `len` bytes as 40 lowercase hex digits and a NUL: Redis names
 * scripts by it. */
void patron_sha1_hex(const void *data, size_t len, char out[41]);

/* An integer reply, or a string reply holding a canonical decimal (num.h),
 * within [min, max]: the scripts' answers, counters and prices as Redis
 * keeps them. PATRON_EINVAL for anything else (a NULL reply too). */
int patron_reply_i64(const redisReply *r, int64_t min, int64_t max, int64_t *out) PATRON_MUST_USE;

/* Whether r is Redis refusing a command on a key of another type
 * (WRONGTYPE): a stored value's fault, not Redis being away. NULL: false. */
bool patron_reply_wrong_type(const redisReply *r);

#endif
