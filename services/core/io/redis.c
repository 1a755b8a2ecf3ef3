#include "patron/redis.h"

#include <hiredis/async.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/num.h"

#define BACKOFF_MIN_MS 50
#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_MAX_BACKOFF_MS 5000
#define DEFAULT_PORT 6379
#define HOST_MAX 1024
#define SCRIPT_MAX (1u << 20) /* bytes of one Lua script */
/* The formatting buffer is kept between commands up to this size. */
#define FMT_KEEP_MAX (1u << 20)

/*
 * States of one client. A connection goes CONNECTING (TCP connect and the
 * handshake: AUTH, SELECT, SCRIPT LOADs, PING, all pipelined) -> READY;
 * losing it in either state leads to IDLE with the reconnect timer armed.
 * CLOSING is final: the client is freed when its last uv handle is closed.
 */
enum redis_state { ST_IDLE, ST_CONNECTING, ST_READY, ST_CLOSING };

struct patron_redis_script {
    struct patron_redis_script *next;
    char *lua;
    size_t len;
    char sha[41];
};

/*
 * Our own libuv glue for hiredis' event hooks (instead of adapters/libuv.h):
 * it lets a poll error reach hiredis as a read error, checks the read
 * buffer's size after every read, and tells the client when its handle is
 * closed so that close can wait for it. hiredis may call cleanup more than
 * once; the io is freed in the uv close callback, after hiredis let go.
 */
struct redis_io {
    uv_poll_t poll;
    uv_prepare_t flush;    /* writes the commands of this loop turn before it polls */
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    struct patron_redis *r;
    int events;
    int polling;   /* the events uv_poll_start was last given */
    bool flushing; /* inside the flush: a write that did not finish needs the poll */
    int open_uv;   /* of poll and flush, the handles not yet closed */
};

struct redis_req;

struct patron_redis {
    uv_loop_t *loop;
    enum redis_state state;
    redisAsyncContext *ac; /* the live connection, NULL in IDLE and CLOSING */
    uv_timer_t timer;      /* connect timeout in CONNECTING, backoff in IDLE */
    /* READY with a command timeout: the oldest command's deadline, or the
     * heartbeat while none is pending (see redis.h, "Stalls"). */
    uv_timer_t deadline_timer;
    int handles; /* open uv handles: the two timers and any io */
    int command_timeout_ms;
    struct redis_req *dl_head, *dl_tail; /* commands awaiting replies, oldest first */
    uint64_t last_reply;                 /* uv_now */
    struct patron_counter *m_timeouts;
    char *host, *user, *password;
    int port, db, connect_timeout_ms, max_backoff_ms, backoff_ms;
    size_t max_pending, max_reply_bytes, pending;
    void (*on_state)(void *ud, bool connected);
    void *ud;
    void (*on_closed)(void *ud);
    void *closed_ud;
    const struct patron_log *log;
    struct patron_redis_script *scripts;
    uint64_t rng;
    char *fmt; /* RESP of the command being sent; see format_command */
    size_t fmt_cap;
};

/* A user command in flight (or the heartbeat's PING: cb NULL). Script
 * calls keep their arguments, for the EVAL retry after NOSCRIPT. With a
 * command timeout it is on the client's deadline list from its send to its
 * reply. */
struct redis_req {
    struct patron_redis *r;
    patron_redis_cb cb;
    void *ud;
    struct redis_req *dl_prev, *dl_next;
    uint64_t deadline; /* uv_now */
    bool listed;       /* on the deadline list */
    struct patron_redis_script *script;
    int argc; /* of args, the keys and arguments after "numkeys" */
    const char **args;
    size_t *arglens;
    char nkeys[16];
};

static void start_connect(struct patron_redis *r);
static void conn_lost(struct patron_redis *r, const redisAsyncContext *ac, const char *why);
static void req_cb(redisAsyncContext *ac, void *reply_, void *privdata);
static void deadline_cb(uv_timer_t *t);

static void rlog(const struct patron_redis *r, int level, const char *msg, const char *detail)
{
    if (!r->log || !patron_log_enabled(r->log, level))
        return;
    char esc[512];
    char host[256];
    (void)patron_json_escape(esc, sizeof esc, detail ? detail : "");
    (void)patron_json_escape(host, sizeof host, r->host);
    patron_log(r->log, level, msg, "\"redis\":\"%s:%d\",\"detail\":\"%s\"", host, r->port, esc);
}

/* ---- the libuv adapter ---------------------------------------------------- */

/* One of the client's uv handles finished closing; the last one frees it. */
static void handle_closed(struct patron_redis *r)
{
    r->handles--;
    if (r->state != ST_CLOSING || r->handles > 0)
        return;
    void (*on_closed)(void *) = r->on_closed;
    void *ud = r->closed_ud;
    for (struct patron_redis_script *s = r->scripts, *next; s; s = next) {
        next = s->next;
        free(s->lua);
        free(s);
    }
    free(r->host);
    free(r->user);
    free(r->password);
    free(r->fmt);
    free(r);
    if (on_closed)
        on_closed(ud);
}

static void io_closed(uv_handle_t *h)
{
    struct redis_io *io = h->data;
    if (--io->open_uv > 0)
        return;
    struct patron_redis *r = io->r;
    free(io);
    handle_closed(r);
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* Reads what the socket holds and runs the replies' callbacks; a reply
 * left unparsed past max_reply_bytes drops the connection. Returns whether
 * ac is still the live connection. */
static bool read_replies(struct patron_redis *r, redisAsyncContext *ac)
{
    redisAsyncHandleRead(ac);
    if (ac != r->ac)
        return false; /* lost meanwhile: its callbacks have run */
    redisReader *reader = ac->c.reader;
    if (reader && reader->len - reader->pos > r->max_reply_bytes) {
        rlog(r, PATRON_LOG_ERROR, "redis reply exceeds max_reply_bytes", NULL);
        conn_lost(r, ac, "reply too big");
        redisAsyncFree(ac); /* not inside a hiredis callback: frees now */
        return false;
    }
    return true;
}

static void io_poll_cb(uv_poll_t *h, int status, int events)
{
    struct redis_io *io = h->data;
    /* On POLLERR libuv has stopped the handle: forget what it polled, so
     * that hiredis' next add_read starts it again. Else a read that still
     * finds queued replies (a peer reset with data in flight) leaves the
     * socket unwatched, its error unseen and its callbacks pending forever. */
    if (status < 0)
        io->polling = 0;
    /* A poll error is a socket error: let hiredis find it with read(). */
    if (io->ac && (status < 0 || (events & UV_READABLE)) && !read_replies(io->r, io->ac))
        return;
    if (io->ac && status == 0 && (events & UV_WRITABLE))
        redisAsyncHandleWrite(io->ac);
}

/* hiredis asks for write interest once per command; restarting the poll
 * costs two epoll_ctl calls, so only a change of events reaches libuv. */
static void io_update(struct redis_io *io)
{
    if (!io->ac || io->events == io->polling)
        return;
    io->polling = io->events;
    int rc =
        io->events ? uv_poll_start(&io->poll, io->events, io_poll_cb) : uv_poll_stop(&io->poll);
    if (rc < 0) {
        io->polling = -1; /* try again on the next change */
        rlog(io->r, PATRON_LOG_ERROR, "redis uv_poll failed", uv_strerror(rc));
    }
}

static void io_add_read(void *p)
{
    struct redis_io *io = p;
    io->events |= UV_READABLE;
    io_update(io);
}

static void io_del_read(void *p)
{
    struct redis_io *io = p;
    io->events &= ~UV_READABLE;
    io_update(io);
}

/*
 * Commands are written once per loop turn, just before the loop polls (as
 * Redis itself answers its clients before it sleeps): a socket with room
 * takes them at once, without the write interest hiredis asks for per
 * command, which costs two epoll_ctl calls and a loop turn. Only a write
 * that did not finish, or a connection still being made (hiredis learns of
 * it by writability), polls for writable.
 */
static void io_flush(uv_prepare_t *h)
{
    struct redis_io *io = h->data;
    uv_prepare_stop(h);
    if (!io->ac)
        return;
    io->flushing = true;
    redisAsyncHandleWrite(io->ac); /* may end in io_cleanup: io stays valid */
    io->flushing = false;
}

static void io_add_write(void *p)
{
    struct redis_io *io = p;
    if (io->ac && (io->ac->c.flags & REDIS_CONNECTED) && !io->flushing) {
        if (uv_prepare_start(&io->flush, io_flush) == 0)
            return;
    }
    io->events |= UV_WRITABLE;
    io_update(io);
}

static void io_del_write(void *p)
{
    struct redis_io *io = p;
    io->events &= ~UV_WRITABLE;
    io_update(io);
}

static void io_cleanup(void *p)
{
    struct redis_io *io = p;
    if (!io->ac)
        return;
    io->ac = NULL;
    uv_close((uv_handle_t *)&io->poll, io_closed);
    uv_close((uv_handle_t *)&io->flush, io_closed);
}

static int io_attach(struct patron_redis *r, redisAsyncContext *ac)
{
    struct redis_io *io = patron_calloc(1, sizeof *io);
    int rc = uv_poll_init(r->loop, &io->poll, ac->c.fd);
    if (rc < 0) {
        rlog(r, PATRON_LOG_ERROR, "redis uv_poll_init failed", uv_strerror(rc));
        free(io);
        return PATRON_EIO;
    }
    io->poll.data = io;
    uv_prepare_init(r->loop, &io->flush);
    io->flush.data = io;
    io->open_uv = 2;
    io->ac = ac;
    io->r = r;
    r->handles++;
    ac->ev.data = io;
    ac->ev.addRead = io_add_read;
    ac->ev.delRead = io_del_read;
    ac->ev.addWrite = io_add_write;
    ac->ev.delWrite = io_del_write;
    ac->ev.cleanup = io_cleanup;
    return 0;
}

/* ---- connection life cycle ------------------------------------------------ */

static uint64_t next_random(struct patron_redis *r)
{
    /* xorshift64*: jitter only, no need for quality. */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ull;
}

static void timer_cb(uv_timer_t *t)
{
    struct patron_redis *r = t->data;
    if (r->state == ST_IDLE) {
        start_connect(r);
    } else if (r->state == ST_CONNECTING && r->ac) {
        redisAsyncContext *ac = r->ac;
        /* Not READY, so no on_state; handshake callbacks see NULL and return. */
        conn_lost(r, ac, "connect timed out");
        redisAsyncFree(ac);
    }
}

static void schedule_reconnect(struct patron_redis *r)
{
    int delay = r->backoff_ms / 2 + (int)(next_random(r) % (uint64_t)(r->backoff_ms / 2 + 1));
    r->backoff_ms = r->backoff_ms * 2 > r->max_backoff_ms ? r->max_backoff_ms : r->backoff_ms * 2;
    r->state = ST_IDLE;
    /* uv_timer_start on an initialised timer only fails for a NULL callback. */
    (void)uv_timer_start(&r->timer, timer_cb, (uint64_t)delay, 0);
}

/* The connection `ac` is gone (or going): called once per connection, by
 * whichever of hiredis' callbacks notices first. hiredis frees `ac` itself. */
static void conn_lost(struct patron_redis *r, const redisAsyncContext *ac, const char *why)
{
    if (ac != r->ac || r->state == ST_CLOSING)
        return;
    bool was_ready = r->state == ST_READY;
    r->ac = NULL;
    rlog(r, was_ready ? PATRON_LOG_WARN : PATRON_LOG_INFO, "redis connection lost", why);
    schedule_reconnect(r);
    if (was_ready && r->on_state)
        r->on_state(r->ud, false);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct patron_redis *r = ac->data;
    if (status != REDIS_OK) {
        conn_lost(r, ac, ac->errstr);
        return;
    }
    /* A dead peer behind a silent network otherwise goes unnoticed. */
    if (redisEnableKeepAlive((redisContext *)&ac->c) != REDIS_OK)
        rlog(r, PATRON_LOG_WARN, "redis keepalive failed", ac->errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    conn_lost(ac->data, ac, ac->err ? ac->errstr : "disconnected");
}

/* Drops the live connection from inside one of its reply callbacks: hiredis
 * defers the free until the callback returns. */
static void drop_from_callback(struct patron_redis *r, redisAsyncContext *ac, const char *why)
{
    conn_lost(r, ac, why);
    redisAsyncFree(ac);
}

static bool reply_is_error(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR;
}

static void handshake_step_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct patron_redis *r = ac->data;
    redisReply *reply = reply_;
    (void)privdata;
    if (!reply || ac != r->ac)
        return;
    if (reply_is_error(reply)) {
        rlog(r, PATRON_LOG_ERROR, "redis handshake failed", reply->str);
        drop_from_callback(r, ac, reply->str);
    }
}

static void script_load_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct patron_redis *r = ac->data;
    redisReply *reply = reply_;
    (void)privdata;
    /* Not fatal: EVALSHA falls back to EVAL, which reports the error to the
     * caller of the script. */
    if (reply && reply_is_error(reply))
        rlog(r, PATRON_LOG_ERROR, "redis SCRIPT LOAD failed", reply->str);
}

static void handshake_done_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct patron_redis *r = ac->data;
    redisReply *reply = reply_;
    (void)privdata;
    if (!reply || ac != r->ac || r->state != ST_CONNECTING)
        return;
    if (reply_is_error(reply)) {
        rlog(r, PATRON_LOG_ERROR, "redis handshake failed", reply->str);
        drop_from_callback(r, ac, reply->str);
        return;
    }
    uv_timer_stop(&r->timer);
    r->state = ST_READY;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->last_reply = uv_now(r->loop);
    if (r->command_timeout_ms)
        (void)uv_timer_start(&r->deadline_timer, deadline_cb, PATRON_REDIS_PING_INTERVAL_MS, 0);
    rlog(r, PATRON_LOG_INFO, "redis connected", NULL);
    if (r->on_state)
        r->on_state(r->ud, true);
}

static int send_script_load(struct patron_redis *r, const struct patron_redis_script *s)
{
    const char *argv[] = {"SCRIPT", "LOAD", s->lua};
    size_t lens[] = {6, 4, s->len};
    return redisAsyncCommandArgv(r->ac, script_load_cb, NULL, 3, argv, lens) == REDIS_OK
               ? 0
               : PATRON_EIO;
}

static int send_handshake(struct patron_redis *r)
{
    redisAsyncContext *ac = r->ac;
    if (r->password) {
        const char *argv[3];
        int argc = 0;
        argv[argc++] = "AUTH";
        if (r->user)
            argv[argc++] = r->user;
        argv[argc++] = r->password;
        if (redisAsyncCommandArgv(ac, handshake_step_cb, NULL, argc, argv, NULL) != REDIS_OK)
            return PATRON_EIO;
    }
    if (r->db != 0 &&
        redisAsyncCommand(ac, handshake_step_cb, NULL, "SELECT %d", r->db) != REDIS_OK)
        return PATRON_EIO;
    for (const struct patron_redis_script *s = r->scripts; s; s = s->next)
        if (send_script_load(r, s) < 0)
            return PATRON_EIO;
    if (redisAsyncCommand(ac, handshake_done_cb, NULL, "PING") != REDIS_OK)
        return PATRON_EIO;
    return 0;
}

static void start_connect(struct patron_redis *r)
{
    redisAsyncContext *ac =
        r->host[0] == '/' ? redisAsyncConnectUnix(r->host) : redisAsyncConnect(r->host, r->port);
    if (!ac) {
        rlog(r, PATRON_LOG_ERROR, "redis connect failed", "out of memory");
        schedule_reconnect(r);
        return;
    }
    if (ac->err) {
        rlog(r, PATRON_LOG_INFO, "redis connect failed", ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    if (io_attach(r, ac) < 0) {
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    /* Both setters only fail when a callback is already set. */
    (void)redisAsyncSetConnectCallback(ac, on_connect);
    (void)redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = ST_CONNECTING;
    if (send_handshake(r) < 0) {
        r->ac = NULL;
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    (void)uv_timer_start(&r->timer, timer_cb, (uint64_t)r->connect_timeout_ms, 0);
}

/* ---- deadlines (redis.h, "Stalls") ----------------------------------------- */

/* Puts a command just sent at the end of the deadline list. Every command
 * waits the same timeout and the heartbeat's PING (a shorter one) is sent
 * only when the list is empty, so the list stays in deadline order and its
 * head is the one to watch. */
static void dl_add(struct patron_redis *r, struct redis_req *req, uint64_t timeout)
{
    if (!r->command_timeout_ms)
        return;
    /* the loop's clock stands where its turn began: after a long callback
     * (a batch applied) it is behind, and the command's time would have
     * begun before it was sent */
    uv_update_time(r->loop);
    req->deadline = uv_now(r->loop) + timeout;
    req->listed = true;
    req->dl_next = NULL;
    req->dl_prev = r->dl_tail;
    if (r->dl_tail)
        r->dl_tail->dl_next = req;
    else
        r->dl_head = req;
    r->dl_tail = req;
    /* a timer due later than this deadline (the heartbeat's) is brought in;
     * one due earlier finds this deadline when it fires */
    if (!uv_is_active((uv_handle_t *)&r->deadline_timer) ||
        uv_timer_get_due_in(&r->deadline_timer) > timeout)
        (void)uv_timer_start(&r->deadline_timer, deadline_cb, timeout, 0);
}

static void dl_remove(struct patron_redis *r, struct redis_req *req)
{
    if (!req->listed)
        return;
    req->listed = false;
    if (req->dl_prev)
        req->dl_prev->dl_next = req->dl_next;
    else
        r->dl_head = req->dl_next;
    if (req->dl_next)
        req->dl_next->dl_prev = req->dl_prev;
    else
        r->dl_tail = req->dl_prev;
}

static bool send_ping(struct patron_redis *r)
{
    struct redis_req *req = patron_calloc(1, sizeof *req);
    req->r = r; /* no cb: the client's own */
    if (redisAsyncCommand(r->ac, req_cb, req, "PING") != REDIS_OK) {
        free(req);
        return false;
    }
    uint64_t timeout = r->command_timeout_ms < PATRON_REDIS_PING_TIMEOUT_MS
                           ? (uint64_t)r->command_timeout_ms
                           : PATRON_REDIS_PING_TIMEOUT_MS;
    dl_add(r, req, timeout);
    return true;
}

/* The oldest command missed its deadline: the server is connected but not
 * answering. Dropped as a lost connection is (hiredis 1.x's
 * redisAsyncHandleTimeout does the same): every pending callback runs with
 * NULL now, in order, and the client reconnects. */
static void stalled(struct patron_redis *r)
{
    redisAsyncContext *ac = r->ac;
    char why[64];
    (void)snprintf(why, sizeof why, "no reply within %d ms", r->command_timeout_ms);
    if (r->m_timeouts)
        patron_counter_inc(r->m_timeouts);
    rlog(r, PATRON_LOG_WARN, "redis command timed out", why);
    conn_lost(r, ac, "command timed out");
    redisAsyncFree(ac); /* not inside a hiredis callback: the callbacks run now */
}

static void deadline_cb(uv_timer_t *t)
{
    struct patron_redis *r = t->data;
    if (r->state != ST_READY || !r->ac)
        return; /* the next handshake arms it again */
    uint64_t now = uv_now(r->loop);
    if (r->dl_head && now >= r->dl_head->deadline) {
        /* Late by the loop's clock, but a loop turn runs its timers before
         * it polls: a loop kept busy past the deadline (a starved CPU, a
         * long batch) has not yet read a reply that came in time. Read
         * first; only a socket with nothing for the oldest command is a
         * stall. */
        redisAsyncContext *ac = r->ac;
        if (!read_replies(r, ac) || r->state != ST_READY)
            return; /* dropped: the next handshake arms the timer again */
        if (r->dl_head && now >= r->dl_head->deadline) {
            stalled(r);
            return;
        }
    }
    if (r->dl_head) {
        (void)uv_timer_start(t, deadline_cb, r->dl_head->deadline - now, 0);
        return;
    }
    /* idle: a PING once the connection has been quiet for an interval */
    uint64_t quiet = now > r->last_reply ? now - r->last_reply : 0;
    if (quiet < PATRON_REDIS_PING_INTERVAL_MS) {
        (void)uv_timer_start(t, deadline_cb, PATRON_REDIS_PING_INTERVAL_MS - quiet, 0);
        return;
    }
    if (!send_ping(r))
        (void)uv_timer_start(t, deadline_cb, PATRON_REDIS_PING_INTERVAL_MS, 0);
}

/* ---- public API ------------------------------------------------------------ */

int patron_redis_open(struct patron_redis **out, uv_loop_t *loop,
                      const struct patron_redis_options *opt)
{
    if (!out || !loop || !opt)
        return PATRON_EINVAL;
    const char *host = opt->host ? opt->host : "127.0.0.1";
    int port = opt->port ? opt->port : DEFAULT_PORT;
    if (!host[0] || strlen(host) > HOST_MAX || port < 1 || port > 65535 || opt->db < 0 ||
        opt->connect_timeout_ms < 0 || opt->max_backoff_ms < 0 || opt->command_timeout_ms < 0)
        return PATRON_EINVAL;
    if (opt->user && !opt->password)
        return PATRON_EINVAL;

    struct patron_redis *r = patron_calloc(1, sizeof *r);
    r->loop = loop;
    r->host = patron_strdup(host);
    r->user = opt->user ? patron_strdup(opt->user) : NULL;
    r->password = opt->password ? patron_strdup(opt->password) : NULL;
    r->port = port;
    r->db = opt->db;
    r->connect_timeout_ms =
        opt->connect_timeout_ms ? opt->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    r->max_backoff_ms = opt->max_backoff_ms ? opt->max_backoff_ms : DEFAULT_MAX_BACKOFF_MS;
    if (r->max_backoff_ms < BACKOFF_MIN_MS)
        r->max_backoff_ms = BACKOFF_MIN_MS;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->max_pending = opt->max_pending ? opt->max_pending : PATRON_REDIS_MAX_PENDING;
    r->max_reply_bytes = opt->max_reply_bytes ? opt->max_reply_bytes : PATRON_REDIS_MAX_REPLY_BYTES;
    r->command_timeout_ms = opt->command_timeout_ms;
    r->m_timeouts = opt->timeouts;
    r->on_state = opt->on_state;
    r->ud = opt->ud;
    r->log = opt->log;
    r->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)r;
    if (!r->rng)
        r->rng = 1;
    /* uv_timer_init cannot fail on a valid loop. */
    (void)uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    (void)uv_timer_init(loop, &r->deadline_timer);
    r->deadline_timer.data = r;
    r->handles = 2;
    r->state = ST_IDLE;
    start_connect(r);
    *out = r;
    return 0;
}

bool patron_redis_connected(const struct patron_redis *r)
{
    return r->state == ST_READY;
}

size_t patron_redis_pending(const struct patron_redis *r)
{
    return r->pending;
}

static void req_free(struct redis_req *req)
{
    free(req); /* args and arglens share the allocation */
}

static int eval_retry(struct redis_req *req)
{
    struct patron_redis *r = req->r;
    struct patron_redis_script *s = req->script;
    req->script = NULL; /* retry once */
    if (r->state != ST_READY)
        return PATRON_EIO;
    size_t argc = 3 + (size_t)req->argc;
    const char **argv = patron_malloc(argc * sizeof *argv);
    size_t *lens = patron_malloc(argc * sizeof *lens);
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = s->lua;
    lens[1] = s->len;
    argv[2] = req->nkeys;
    lens[2] = strlen(req->nkeys);
    for (int i = 0; i < req->argc; i++) {
        argv[3 + i] = req->args[i];
        lens[3 + i] = req->arglens[i];
    }
    int rc = redisAsyncCommandArgv(r->ac, req_cb, req, (int)argc, argv, lens);
    free(argv);
    free(lens);
    return rc == REDIS_OK ? 0 : PATRON_EIO;
}

/*
 * The RESP of `head` then `argv` in r->fmt, for redisAsyncFormattedCommand:
 * hiredis' own formatter (sdscatfmt, an allocation per command and its
 * regrowth) was a tenth of ingest's time. Returns the length.
 */
static size_t format_command(struct patron_redis *r, int n_head, const char *const *head,
                             const size_t *head_lens, int argc, const char *const *argv,
                             const size_t *argvlen)
{
    size_t need = 32 + 1; /* "*argc\r\n", and a NUL: hiredis scans the command with strchr */
    for (int i = 0; i < n_head + argc; i++) {
        size_t len = i < n_head ? head_lens[i]
                     : argvlen  ? argvlen[i - n_head]
                                : strlen(argv[i - n_head]);
        need += len + 32; /* "$len\r\n" ... "\r\n" */
    }
    if (need > r->fmt_cap) {
        free(r->fmt);
        r->fmt_cap = need > 4096 ? need : 4096;
        r->fmt = patron_malloc(r->fmt_cap);
    }
    char *p = r->fmt;
    *p++ = '*';
    p = patron_put_decimal(p, (size_t)(n_head + argc));
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < n_head + argc; i++) {
        const char *arg = i < n_head ? head[i] : argv[i - n_head];
        size_t len = i < n_head ? head_lens[i]
                     : argvlen  ? argvlen[i - n_head]
                                : strlen(argv[i - n_head]);
        *p++ = '$';
        p = patron_put_decimal(p, len);
        *p++ = '\r';
        *p++ = '\n';
        if (len)
            memcpy(p, arg, len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p = '\0'; /* not sent; ends hiredis' strchr scans inside the buffer */
    return (size_t)(p - r->fmt);
}

/* Sends what format_command wrote; a huge command does not pin its buffer. */
static int send_formatted(struct patron_redis *r, struct redis_req *req, size_t len)
{
    int rc = redisAsyncFormattedCommand(r->ac, req_cb, req, r->fmt, len);
    if (r->fmt_cap > FMT_KEEP_MAX) {
        free(r->fmt);
        r->fmt = NULL;
        r->fmt_cap = 0;
    }
    return rc;
}

static void req_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct redis_req *req = privdata;
    struct patron_redis *r = req->r;
    redisReply *reply = reply_;
    dl_remove(r, req);
    if (!reply) {
        conn_lost(r, ac, ac->err ? ac->errstr : "connection closed");
    } else {
        r->last_reply = uv_now(r->loop);
        if (req->script && reply->type == REDIS_REPLY_ERROR && reply->str &&
            strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            if (eval_retry(req) == 0) {
                dl_add(r, req, (uint64_t)r->command_timeout_ms);
                return;
            }
            reply = NULL;
        }
    }
    if (!req->cb) { /* the heartbeat's PING */
        req_free(req);
        return;
    }
    r->pending--;
    patron_redis_cb cb = req->cb;
    void *ud = req->ud;
    req_free(req);
    cb(ud, reply);
}

static int check_can_send(const struct patron_redis *r)
{
    if (r->state != ST_READY || !r->ac)
        return PATRON_EIO;
    if (r->pending >= r->max_pending)
        return PATRON_ETOOBIG;
    return 0;
}

int patron_redis_commandv(struct patron_redis *r, patron_redis_cb cb, void *ud, int argc,
                          const char **argv, const size_t *argvlen)
{
    if (!r || !cb || argc < 1 || !argv)
        return PATRON_EINVAL;
    int rc = check_can_send(r);
    if (rc < 0)
        return rc;
    struct redis_req *req = patron_calloc(1, sizeof *req);
    req->r = r;
    req->cb = cb;
    req->ud = ud;
    size_t len = format_command(r, 0, NULL, NULL, argc, argv, argvlen);
    if (send_formatted(r, req, len) != REDIS_OK) {
        free(req);
        return PATRON_EIO;
    }
    r->pending++;
    dl_add(r, req, (uint64_t)r->command_timeout_ms);
    return 0;
}

int patron_redis_command(struct patron_redis *r, patron_redis_cb cb, void *ud, const char *fmt, ...)
{
    if (!r || !cb || !fmt)
        return PATRON_EINVAL;
    int rc = check_can_send(r);
    if (rc < 0)
        return rc;
    struct redis_req *req = patron_calloc(1, sizeof *req);
    req->r = r;
    req->cb = cb;
    req->ud = ud;
    va_list ap;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ac, req_cb, req, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        free(req);
        /* hiredis also fails on a bad format string. */
        return r->ac && !(r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) ? PATRON_EINVAL
                                                                                  : PATRON_EIO;
    }
    r->pending++;
    dl_add(r, req, (uint64_t)r->command_timeout_ms);
    return 0;
}

int patron_redis_script(struct patron_redis *r, const char *lua, struct patron_redis_script **out)
{
    if (!r || !lua || !out || r->state == ST_CLOSING)
        return PATRON_EINVAL;
    size_t len = strlen(lua);
    if (len > SCRIPT_MAX)
        return PATRON_ETOOBIG;
    char sha[41];
    patron_sha1_hex(lua, len, sha);
    for (struct patron_redis_script *s = r->scripts; s; s = s->next) {
        if (memcmp(s->sha, sha, sizeof sha) == 0) {
            *out = s;
            return 0;
        }
    }
    struct patron_redis_script *s = patron_calloc(1, sizeof *s);
    s->lua = patron_strndup(lua, len);
    s->len = len;
    memcpy(s->sha, sha, sizeof sha);
    s->next = r->scripts;
    r->scripts = s;
    /* A connection being set up already queued its loads; add this one. */
    if (r->ac && send_script_load(r, s) < 0)
        rlog(r, PATRON_LOG_WARN, "redis SCRIPT LOAD not sent", s->sha);
    *out = s;
    return 0;
}

const char *patron_redis_script_sha(const struct patron_redis_script *s)
{
    return s->sha;
}

int patron_redis_evalsha(struct patron_redis *r, struct patron_redis_script *s, patron_redis_cb cb,
                         void *ud, int nkeys, int nargs, const char **argv, const size_t *argvlen)
{
    if (!r || !s || !cb || nkeys < 0 || nargs < 0 || nkeys > INT32_MAX / 2 - 8 ||
        nargs > INT32_MAX / 2 - 8 || (nkeys + nargs > 0 && !argv))
        return PATRON_EINVAL;
    int rc = check_can_send(r);
    if (rc < 0)
        return rc;
    int n = nkeys + nargs;
    /* One allocation: the request, the argument pointers and lengths, and a
     * copy of the argument bytes (kept for the EVAL retry). */
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += argvlen ? argvlen[i] : strlen(argv[i]);
    size_t head = sizeof(struct redis_req) + (size_t)n * (sizeof(char *) + sizeof(size_t));
    struct redis_req *req = patron_calloc(1, head + bytes);
    req->r = r;
    req->cb = cb;
    req->ud = ud;
    req->script = s;
    req->argc = n;
    req->args = (const char **)(void *)(req + 1);
    req->arglens = (size_t *)(void *)(req->args + n);
    char *data = (char *)(req->arglens + n);
    for (int i = 0; i < n; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        if (len)
            memcpy(data, argv[i], len);
        req->args[i] = data;
        req->arglens[i] = len;
        data += len;
    }
    size_t nkeys_len = (size_t)(patron_put_decimal(req->nkeys, (size_t)nkeys) - req->nkeys);
    req->nkeys[nkeys_len] = '\0';

    const char *cmd[] = {"EVALSHA", s->sha, req->nkeys};
    const size_t cmd_lens[] = {7, 40, nkeys_len};
    size_t len = format_command(r, 3, cmd, cmd_lens, n, req->args, req->arglens);
    rc = send_formatted(r, req, len);
    if (rc != REDIS_OK) {
        req_free(req);
        return PATRON_EIO;
    }
    r->pending++;
    dl_add(r, req, (uint64_t)r->command_timeout_ms);
    return 0;
}

void patron_redis_close(struct patron_redis *r, void (*on_closed)(void *ud), void *ud)
{
    if (!r || r->state == ST_CLOSING)
        return;
    r->state = ST_CLOSING;
    r->on_closed = on_closed;
    r->closed_ud = ud;
    uv_timer_stop(&r->timer);
    uv_timer_stop(&r->deadline_timer);
    /* io_closed frees the client when the last handle is closed; the timers
     * count as handles, so that happens on a later loop iteration at the
     * earliest, after hiredis is done with the connection. */
    uv_close((uv_handle_t *)&r->timer, timer_closed);
    uv_close((uv_handle_t *)&r->deadline_timer, timer_closed);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks run with NULL */
    }
}
