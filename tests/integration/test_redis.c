/*
 * The Redis adapter against a real redis-server, started on a free port in a
 * temporary directory by each test and killed at its end.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/redis.h"
#include "stack.h"

struct state_log {
    int ups, downs;
    bool up, down;
};

static void on_state(void *ud, bool connected)
{
    struct state_log *s = ud;
    if (connected) {
        s->ups++;
        s->up = true;
    } else {
        s->downs++;
        s->down = true;
    }
}

static void on_closed(void *ud)
{
    *(bool *)ud = true;
}

/* Opens a client and waits for it to be connected. */
static struct patron_redis *connect_ok(uv_loop_t *loop, struct patron_redis_options *o,
                                       struct state_log *st)
{
    o->on_state = on_state;
    o->ud = st;
    struct patron_redis *r;
    cr_assert_eq(patron_redis_open(&r, loop, o), 0);
    cr_assert(stack_run_until_flag(loop, &st->up, 5000), "not connected");
    cr_assert(patron_redis_connected(r));
    return r;
}

static void close_and_drain(uv_loop_t *loop, struct patron_redis *r)
{
    bool closed = false;
    patron_redis_close(r, on_closed, &closed);
    cr_assert(stack_run_until_flag(loop, &closed, 2000));
    /* every handle closed: the loop closes */
    cr_assert_eq(uv_loop_close(loop), 0);
}

/* One reply, copied out of its callback. */
struct result {
    bool done;
    bool null;
    int type;
    long long integer;
    char str[256];
    int calls;
};

static void result_cb(void *ud, redisReply *reply)
{
    struct result *res = ud;
    res->calls++;
    res->done = true;
    res->null = reply == NULL;
    if (!reply)
        return;
    res->type = reply->type;
    res->integer = reply->integer;
    if (reply->str)
        snprintf(res->str, sizeof res->str, "%.*s", (int)reply->len, reply->str);
}

static struct stack_redis srv;
static uv_loop_t loop;

static void setup(void)
{
    memset(&srv, 0, sizeof srv);
    cr_assert_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
    stack_redis_cleanup(&srv);
}

static struct patron_redis_options opts(void)
{
    return (struct patron_redis_options){.host = "127.0.0.1", .port = srv.port};
}

static struct result command(struct patron_redis *r, const char *fmt, const char *arg)
{
    struct result res = {0};
    cr_assert_eq(patron_redis_command(r, result_cb, &res, fmt, arg), 0);
    cr_assert(stack_run_until_flag(&loop, &res.done, 5000));
    cr_assert_eq(res.calls, 1);
    return res;
}

/* ---- tests ------------------------------------------------------------------ */

struct incr_ctx {
    int calls;
    long long last;
    bool in_order;
    bool done;
};

static void incr_cb(void *ud, redisReply *reply)
{
    struct incr_ctx *c = ud;
    c->calls++;
    if (!reply || reply->type != REDIS_REPLY_INTEGER || reply->integer != c->last + 1)
        c->in_order = false;
    else
        c->last = reply->integer;
    if (c->calls == 10000)
        c->done = true;
}

Test(redis, pipelining_10000_incr, .init = setup, .fini = teardown, .timeout = 60)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct incr_ctx c = {.in_order = true};
    const char *argv[] = {"INCR", "counter"};
    /* All in one loop iteration: hiredis writes them in one go. */
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(patron_redis_commandv(r, incr_cb, &c, 2, argv, NULL), 0);
    cr_assert_eq(patron_redis_pending(r), 10000);
    cr_assert(stack_run_until_flag(&loop, &c.done, 20000));
    cr_assert_eq(c.calls, 10000);
    cr_assert(c.in_order);
    cr_assert_eq(c.last, 10000);
    cr_assert_eq(patron_redis_pending(r), 0);
    struct result res = command(r, "GET %s", "counter");
    cr_assert_str_eq(res.str, "10000");
    close_and_drain(&loop, r);
}

static const struct {
    const char *in;
    const char *sha;
} sha1_vectors[] = {
    {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
    {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    {"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
};

Test(redis, sha1_vectors)
{
    char out[41];
    for (size_t i = 0; i < sizeof sha1_vectors / sizeof sha1_vectors[0]; i++) {
        patron_sha1_hex(sha1_vectors[i].in, strlen(sha1_vectors[i].in), out);
        cr_assert_str_eq(out, sha1_vectors[i].sha, "vector %zu", i);
    }
    /* a million 'a': many blocks, and lengths around the padding edge */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    patron_sha1_hex(a, 1000000, out);
    cr_assert_str_eq(out, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);
}

static const char *INCRBY_LUA = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

Test(redis, script_evalsha, .init = setup, .fini = teardown, .timeout = 30)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct patron_redis_script *s, *again;
    cr_assert_eq(patron_redis_script(r, INCRBY_LUA, &s), 0);
    cr_assert_eq(patron_redis_script(r, INCRBY_LUA, &again), 0);
    cr_assert_eq(s, again, "the same text is the same script");
    /* Our SHA-1 is Redis' name for the script. */
    struct result load = command(r, "SCRIPT LOAD %s", INCRBY_LUA);
    cr_assert_str_eq(load.str, patron_redis_script_sha(s));

    const char *argv[] = {"k", "5"};
    struct result res = {0};
    cr_assert_eq(patron_redis_evalsha(r, s, result_cb, &res, 1, 1, argv, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &res.done, 5000));
    cr_assert_eq(res.type, REDIS_REPLY_INTEGER);
    cr_assert_eq(res.integer, 5);

    /* binary arguments with explicit lengths */
    const char *bargv[] = {"bin\0key", "7"};
    size_t blens[] = {7, 1};
    res = (struct result){0};
    cr_assert_eq(patron_redis_evalsha(r, s, result_cb, &res, 1, 1, bargv, blens), 0);
    cr_assert(stack_run_until_flag(&loop, &res.done, 5000));
    cr_assert_eq(res.integer, 7);

    /* a script error reaches the caller as an error reply */
    struct patron_redis_script *bad;
    cr_assert_eq(patron_redis_script(r, "return redis.call('NOPE')", &bad), 0);
    res = (struct result){0};
    cr_assert_eq(patron_redis_evalsha(r, bad, result_cb, &res, 0, 0, NULL, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &res.done, 5000));
    cr_assert_eq(res.type, REDIS_REPLY_ERROR);
    close_and_drain(&loop, r);
}

Test(redis, noscript_after_flush_is_recovered, .init = setup, .fini = teardown, .timeout = 30)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct patron_redis_script *s;
    cr_assert_eq(patron_redis_script(r, INCRBY_LUA, &s), 0);
    const char *argv[] = {"k", "5"};
    struct result flush = {0}, first = {0}, second = {0};
    cr_assert_eq(patron_redis_evalsha(r, s, result_cb, &first, 1, 1, argv, NULL), 0);
    /* pipelined right behind: the EVALSHA after it meets NOSCRIPT for sure */
    cr_assert_eq(patron_redis_command(r, result_cb, &flush, "SCRIPT FLUSH"), 0);
    cr_assert_eq(patron_redis_evalsha(r, s, result_cb, &second, 1, 1, argv, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &second.done, 5000));
    cr_assert_eq(first.integer, 5);
    cr_assert_str_eq(flush.str, "OK");
    cr_assert_eq(second.type, REDIS_REPLY_INTEGER, "got %d: %s", second.type, second.str);
    cr_assert_eq(second.integer, 10);
    cr_assert_eq(second.calls, 1);
    /* and the script is cached again */
    struct result exists = command(r, "SCRIPT EXISTS %s", patron_redis_script_sha(s));
    cr_assert_eq(exists.type, REDIS_REPLY_ARRAY);
    close_and_drain(&loop, r);
}

Test(redis, auth_with_requirepass, .init = setup, .fini = teardown, .timeout = 30)
{
    const char *extra[] = {"--requirepass", "s3cret", NULL};
    stack_redis_start(&srv, extra);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    o.password = "s3cret";
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct result res = command(r, "SET %s 1", "authed");
    cr_assert_str_eq(res.str, "OK");

    /* an ACL user */
    res = command(r, "ACL SETUSER %s on >apppw ~* &* +@all", "app");
    cr_assert_str_eq(res.str, "OK");
    uv_loop_t loop2;
    cr_assert_eq(uv_loop_init(&loop2), 0);
    struct state_log st2 = {0};
    struct patron_redis_options o2 = opts();
    o2.user = "app";
    o2.password = "apppw";
    struct patron_redis *r2 = connect_ok(&loop2, &o2, &st2);
    struct result who = {0};
    cr_assert_eq(patron_redis_command(r2, result_cb, &who, "ACL WHOAMI"), 0);
    cr_assert(stack_run_until_flag(&loop2, &who.done, 5000));
    cr_assert_str_eq(who.str, "app");
    close_and_drain(&loop2, r2);
    close_and_drain(&loop, r);
}

Test(redis, wrong_password_never_connects, .init = setup, .fini = teardown, .timeout = 30)
{
    const char *extra[] = {"--requirepass", "s3cret", NULL};
    stack_redis_start(&srv, extra);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    o.password = "wrong";
    o.on_state = on_state;
    o.ud = &st;
    o.max_backoff_ms = 100;
    struct patron_redis *r;
    cr_assert_eq(patron_redis_open(&r, &loop, &o), 0);
    stack_run_for(&loop, 800); /* several attempts */
    cr_assert_not(st.up);
    cr_assert_not(patron_redis_connected(r));
    struct result res = {0};
    cr_assert_eq(patron_redis_command(r, result_cb, &res, "PING"), PATRON_EIO);
    close_and_drain(&loop, r);
    cr_assert_eq(res.calls, 0, "a refused command never runs its callback");
}

Test(redis, select_db_on_connect, .init = setup, .fini = teardown, .timeout = 30)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    o.db = 3;
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct result res = command(r, "CLIENT INFO", NULL);
    cr_assert(strstr(res.str, " db=3 ") != NULL, "%s", res.str);
    close_and_drain(&loop, r);
}

struct many {
    int calls, nulls;
    bool all_done;
    int want;
};

static void many_cb(void *ud, redisReply *reply)
{
    struct many *m = ud;
    m->calls++;
    if (!reply)
        m->nulls++;
    if (m->calls == m->want)
        m->all_done = true;
}

Test(redis, restart_gives_null_then_reconnects, .init = setup, .fini = teardown, .timeout = 60)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    o.max_backoff_ms = 200;
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct many m = {.want = 5};
    for (int i = 0; i < 5; i++) /* blocks forever: pending when the server dies */
        cr_assert_eq(patron_redis_command(r, many_cb, &m, "BLPOP %s 0", "nothing"), 0);
    stack_run_for(&loop, 50);
    cr_assert_eq(patron_redis_pending(r), 5);
    stack_redis_kill(&srv);
    cr_assert(stack_run_until_flag(&loop, &m.all_done, 5000));
    cr_assert_eq(m.nulls, 5);
    cr_assert_eq(m.calls, 5);
    cr_assert(stack_run_until_flag(&loop, &st.down, 5000));
    cr_assert_eq(st.downs, 1);
    cr_assert_not(patron_redis_connected(r));
    cr_assert_eq(patron_redis_pending(r), 0);
    struct result refused = {0};
    cr_assert_eq(patron_redis_command(r, result_cb, &refused, "PING"), PATRON_EIO);

    stack_run_for(&loop, 300); /* a few failed attempts while down */
    st.up = false;
    stack_redis_start(&srv, NULL); /* same port */
    cr_assert(stack_run_until_flag(&loop, &st.up, 5000), "no reconnect");
    cr_assert_eq(st.ups, 2);
    struct result res = command(r, "INCR %s", "after");
    cr_assert_eq(res.integer, 1);
    close_and_drain(&loop, r);
    cr_assert_eq(refused.calls, 0);
}

Test(redis, close_with_pending_commands, .init = setup, .fini = teardown, .timeout = 30)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct many m = {.want = 3};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(patron_redis_command(r, many_cb, &m, "BLPOP %s 0", "nothing"), 0);
    stack_run_for(&loop, 50);
    bool closed = false;
    patron_redis_close(r, on_closed, &closed);
    /* pending callbacks ran with NULL before close returned */
    cr_assert_eq(m.calls, 3);
    cr_assert_eq(m.nulls, 3);
    cr_assert_not(closed);
    cr_assert(stack_run_until_flag(&loop, &closed, 2000));
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(st.downs, 0, "no on_state during close");
}

struct closer {
    struct patron_redis *r;
    bool closed;
    struct many *m;
};

static void close_from_cb(void *ud, redisReply *reply)
{
    struct closer *c = ud;
    cr_assert_not_null(reply);
    c->m->calls++;
    patron_redis_close(c->r, on_closed, &c->closed);
}

Test(redis, close_from_a_reply_callback, .init = setup, .fini = teardown, .timeout = 30)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct many m = {.want = 100};
    struct closer c = {.r = r, .m = &m};
    cr_assert_eq(patron_redis_command(r, close_from_cb, &c, "PING"), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(patron_redis_command(r, many_cb, &m, "BLPOP %s 0", "nothing"), 0);
    cr_assert(stack_run_until_flag(&loop, &c.closed, 5000));
    cr_assert_eq(m.calls, 3);
    cr_assert_eq(m.nulls, 2);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(redis, nothing_listening_is_not_connected, .init = setup, .fini = teardown, .timeout = 30)
{
    struct state_log st = {0};
    struct patron_redis_options o = {.host = "127.0.0.1", .port = stack_free_port()};
    o.on_state = on_state;
    o.ud = &st;
    o.max_backoff_ms = 50;
    struct patron_redis *r;
    cr_assert_eq(patron_redis_open(&r, &loop, &o), 0);
    stack_run_for(&loop, 300);
    cr_assert_not(st.up);
    cr_assert_not(st.down, "never connected, never disconnected");
    struct result res = {0};
    cr_assert_eq(patron_redis_command(r, result_cb, &res, "PING"), PATRON_EIO);
    close_and_drain(&loop, r);
}

Test(redis, bad_arguments)
{
    uv_loop_t l;
    cr_assert_eq(uv_loop_init(&l), 0);
    struct patron_redis *r;
    static const struct patron_redis_options bad[] = {
        {.port = -1},
        {.port = 65536},
        {.db = -1},
        {.host = ""},
        {.user = "u"}, /* a user without a password */
        {.connect_timeout_ms = -5},
        {.max_backoff_ms = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(patron_redis_open(&r, &l, &bad[i]), PATRON_EINVAL, "case %zu", i);
    cr_assert_eq(patron_redis_open(&r, &l, NULL), PATRON_EINVAL);
    cr_assert_eq(patron_redis_open(NULL, &l, &bad[0]), PATRON_EINVAL);
    char longhost[2000];
    memset(longhost, 'h', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    struct patron_redis_options o = {.host = longhost};
    cr_assert_eq(patron_redis_open(&r, &l, &o), PATRON_EINVAL);
    cr_assert_eq(uv_loop_close(&l), 0);
}

Test(redis, bad_command_arguments, .init = setup, .fini = teardown, .timeout = 30)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    o.max_pending = 4;
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    struct many m = {.want = 4};
    const char *argv[] = {"PING"};
    cr_assert_eq(patron_redis_commandv(r, many_cb, &m, 0, argv, NULL), PATRON_EINVAL);
    cr_assert_eq(patron_redis_commandv(r, NULL, &m, 1, argv, NULL), PATRON_EINVAL);
    struct patron_redis_script *s;
    cr_assert_eq(patron_redis_script(r, INCRBY_LUA, &s), 0);
    cr_assert_eq(patron_redis_evalsha(r, s, many_cb, &m, -1, 0, argv, NULL), PATRON_EINVAL);
    cr_assert_eq(patron_redis_evalsha(r, s, many_cb, &m, 1, 0, NULL, NULL), PATRON_EINVAL);
    /* the pending bound */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(patron_redis_commandv(r, many_cb, &m, 1, argv, NULL), 0);
    cr_assert_eq(patron_redis_commandv(r, many_cb, &m, 1, argv, NULL), PATRON_ETOOBIG);
    cr_assert(stack_run_until_flag(&loop, &m.all_done, 5000));
    cr_assert_eq(m.nulls, 0);
    cr_assert_eq(patron_redis_commandv(r, many_cb, &m, 1, argv, NULL), 0);
    /* an unknown command is an error reply, not a failure */
    struct result res = command(r, "NOSUCHCOMMAND %s", "x");
    cr_assert_eq(res.type, REDIS_REPLY_ERROR);
    close_and_drain(&loop, r);
}

Test(redis, huge_reply_drops_the_connection, .init = setup, .fini = teardown, .timeout = 30)
{
    stack_redis_start(&srv, NULL);
    struct state_log st = {0};
    struct patron_redis_options o = opts();
    o.max_reply_bytes = 64 * 1024;
    o.max_backoff_ms = 100;
    struct patron_redis *r = connect_ok(&loop, &o, &st);
    /* hiredis reads 16 KiB at a time and checks after each read */
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    struct result set = command(r, "SET big %s", big); /* a small reply */
    free(big);
    cr_assert_str_eq(set.str, "OK");
    struct result get = command(r, "GET %s", "big");
    cr_assert(get.null, "a 1 MiB reply over a 64 KiB limit fails");
    cr_assert(stack_run_until_flag(&loop, &st.down, 2000));
    st.up = false;
    cr_assert(stack_run_until_flag(&loop, &st.up, 5000), "reconnects after");
    struct result small = command(r, "STRLEN %s", "big");
    cr_assert_eq(small.integer, 1 << 20);
    close_and_drain(&loop, r);
}

/* A peer that answers anything with bytes that are not RESP. */
static void garbage_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void garbage_closed(uv_handle_t *h)
{
    free(h);
}

static void garbage_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    free(buf->base);
    if (n < 0) {
        uv_close((uv_handle_t *)s, garbage_closed);
        return;
    }
    static char junk[] = "\x01\x02garbage\xff\r\n*-5\r\n";
    uv_buf_t b = uv_buf_init(junk, sizeof junk - 1);
    uv_write_t *w = malloc(sizeof *w);
    if (uv_write(w, s, &b, 1, garbage_written) < 0)
        free(w);
}

static void garbage_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(n);
    buf->len = n;
}

static void garbage_accept(uv_stream_t *server, int status)
{
    cr_assert_eq(status, 0);
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, c);
    c->data = NULL;
    cr_assert_eq(uv_accept(server, (uv_stream_t *)c), 0);
    uv_read_start((uv_stream_t *)c, garbage_alloc, garbage_read);
    (*(int *)server->data)++;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h->data == NULL ? garbage_closed : NULL);
}

Test(redis, garbage_from_the_peer, .init = setup, .fini = teardown, .timeout = 30)
{
    uv_tcp_t server;
    int accepted = 0;
    uv_tcp_init(&loop, &server);
    server.data = &accepted;
    int port = stack_free_port();
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    cr_assert_eq(uv_tcp_bind(&server, (struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&server, 16, garbage_accept), 0);

    struct state_log st = {0};
    struct patron_redis_options o = {.host = "127.0.0.1", .port = port, .max_backoff_ms = 50};
    o.on_state = on_state;
    o.ud = &st;
    struct patron_redis *r;
    cr_assert_eq(patron_redis_open(&r, &loop, &o), 0);
    stack_run_for(&loop, 500);
    cr_assert_not(st.up, "garbage is not a handshake");
    cr_assert_gt(accepted, 1, "and it keeps retrying");
    bool closed = false;
    patron_redis_close(r, on_closed, &closed);
    cr_assert(stack_run_until_flag(&loop, &closed, 2000));
    uv_close((uv_handle_t *)&server, NULL);
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
