/*
 * Command deadlines (redis.h, "Stalls") against a real redis-server that is
 * stopped with SIGSTOP: connected, not answering — a stuck fork or a long
 * script, as a client sees them. Each test starts its own server (stack.h)
 * and kills it at the end.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "patron/kv.h"
#include "patron/metrics.h"
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

/* Replies of many commands: how often each one's callback ran. */
enum { MANY = 20 };

struct many {
    int calls[MANY];
    int nulls, total;
    bool all_done;
};

struct slot {
    struct many *m;
    int i;
};

static void many_cb(void *ud, redisReply *reply)
{
    struct slot *s = ud;
    s->m->calls[s->i]++;
    s->m->nulls += reply == NULL;
    if (++s->m->total == MANY)
        s->m->all_done = true;
}

struct one {
    bool done, null;
    int type, calls;
};

static void one_cb(void *ud, redisReply *reply)
{
    struct one *o = ud;
    o->calls++;
    o->done = true;
    o->null = reply == NULL;
    o->type = reply ? reply->type : -1;
}

static struct stack_redis srv;
static uv_loop_t loop;
static struct patron_metrics *metrics;

static void setup(void)
{
    memset(&srv, 0, sizeof srv);
    cr_assert_eq(uv_loop_init(&loop), 0);
    metrics = patron_metrics_new();
    stack_redis_start(&srv, NULL);
}

static void teardown(void)
{
    if (srv.pid > 0)
        kill(srv.pid, SIGCONT); /* a stopped process takes SIGKILL anyway; tidy */
    stack_redis_cleanup(&srv);
    patron_metrics_free(metrics);
}

static struct patron_counter *timeouts(void)
{
    return patron_metrics_counter(metrics, "patron_redis_timeouts_total", "-", NULL);
}

static struct patron_redis *connect_ok(int timeout_ms, struct state_log *st)
{
    struct patron_redis_options o = {.host = "127.0.0.1",
                                     .port = srv.port,
                                     .max_backoff_ms = 100,
                                     .connect_timeout_ms = 300,
                                     .command_timeout_ms = timeout_ms,
                                     .timeouts = timeouts(),
                                     .on_state = on_state,
                                     .ud = st};
    struct patron_redis *r;
    cr_assert_eq(patron_redis_open(&r, &loop, &o), 0);
    cr_assert(stack_run_until_flag(&loop, &st->up, 5000), "not connected");
    return r;
}

static void close_and_drain(struct patron_redis *r)
{
    bool closed = false;
    patron_redis_close(r, on_closed, &closed);
    cr_assert(stack_run_until_flag(&loop, &closed, 2000));
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- tests ------------------------------------------------------------------ */

Test(redis_timeout, stalled_server_fails_every_pending_command_once, .init = setup,
     .fini = teardown, .timeout = 30)
{
    struct state_log st = {0};
    struct patron_redis *r = connect_ok(300, &st);
    cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
    struct many m = {0};
    struct slot slots[MANY];
    uint64_t t0 = uv_now(&loop);
    for (int i = 0; i < MANY; i++) {
        slots[i] = (struct slot){&m, i};
        cr_assert_eq(patron_redis_command(r, many_cb, &slots[i], "INCR %s", "k"), 0);
    }
    cr_assert(stack_run_until_flag(&loop, &m.all_done, 3000),
              "callbacks still pending: %d of %d ran", m.total, MANY);
    uint64_t took = uv_now(&loop) - t0;
    cr_assert(took >= 280 && took < 1500, "failed after %llu ms", (unsigned long long)took);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(m.calls[i], 1, "callback %d ran %d times", i, m.calls[i]);
    cr_assert_eq(m.nulls, MANY);
    cr_assert_eq(st.downs, 1);
    cr_assert_not(patron_redis_connected(r));
    cr_assert_eq(patron_redis_pending(r), 0);
    cr_assert_eq(patron_counter_value(timeouts()), 1);
    /* while stopped, new commands are refused at once (not connected) */
    struct one refused = {0};
    cr_assert_eq(patron_redis_command(r, one_cb, &refused, "PING"), PATRON_EIO);
    stack_run_for(&loop, 500);
    cr_assert_not(patron_redis_connected(r), "a stopped server completed a handshake");
    /* it answers again: the client comes back */
    st.up = false;
    cr_assert_eq(kill(srv.pid, SIGCONT), 0);
    cr_assert(stack_run_until_flag(&loop, &st.up, 5000), "no reconnect after SIGCONT");
    struct one ok = {0};
    cr_assert_eq(patron_redis_command(r, one_cb, &ok, "PING"), 0);
    cr_assert(stack_run_until_flag(&loop, &ok.done, 2000));
    cr_assert(!ok.null && ok.type == REDIS_REPLY_STATUS);
    close_and_drain(r);
    cr_assert_eq(refused.calls, 0);
}

Test(redis_timeout, idle_stall_is_seen_by_the_heartbeat, .init = setup, .fini = teardown,
     .timeout = 30)
{
    struct state_log st = {0};
    struct patron_redis *r = connect_ok(300, &st);
    stack_run_for(&loop, 1200); /* a heartbeat or two, answered: nothing happens */
    cr_assert_eq(st.downs, 0);
    cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
    uint64_t t0 = uv_now(&loop);
    cr_assert(stack_run_until_flag(&loop, &st.down, 5000), "an idle client never saw the stall");
    uint64_t took = uv_now(&loop) - t0;
    /* within one interval plus the PING's deadline */
    cr_assert(took < PATRON_REDIS_PING_INTERVAL_MS + 300 + 300, "seen after %llu ms",
              (unsigned long long)took);
    cr_assert_eq(patron_counter_value(timeouts()), 1);
    st.up = false;
    cr_assert_eq(kill(srv.pid, SIGCONT), 0);
    cr_assert(stack_run_until_flag(&loop, &st.up, 5000), "no reconnect after SIGCONT");
    cr_assert_eq(st.ups, 2);
    close_and_drain(r);
}

Test(redis_timeout, a_slow_answer_within_the_deadline_is_kept, .init = setup, .fini = teardown,
     .timeout = 30)
{
    struct state_log st = {0};
    struct patron_redis *r = connect_ok(1000, &st);
    /* a blocking pop that gives up after 0.4 s: a slow answer, not a stall */
    struct one slow = {0};
    cr_assert_eq(patron_redis_command(r, one_cb, &slow, "BLPOP %s 0.4", "nothing"), 0);
    cr_assert(stack_run_until_flag(&loop, &slow.done, 3000));
    cr_assert(!slow.null && slow.type == REDIS_REPLY_NIL, "type %d", slow.type);
    /* idle for longer than the timeout: the heartbeat keeps it up */
    stack_run_for(&loop, 2500);
    cr_assert_eq(st.downs, 0);
    cr_assert(patron_redis_connected(r));
    cr_assert_eq(patron_counter_value(timeouts()), 0);
    close_and_drain(r);
}

Test(redis_timeout, a_reply_that_came_while_the_loop_was_busy_is_kept, .init = setup,
     .fini = teardown, .timeout = 30)
{
    struct state_log st = {0};
    struct patron_redis *r = connect_ok(300, &st);
    /* answered after 0.1 s, while the loop is kept busy for 0.6 s: by the
     * loop's clock the deadline has passed when it next turns, and its
     * timers run before it polls; the reply sits in the socket */
    struct one slow = {0};
    cr_assert_eq(patron_redis_command(r, one_cb, &slow, "BLPOP %s 0.1", "nothing"), 0);
    cr_assert_eq(uv_run(&loop, UV_RUN_NOWAIT), 1); /* sent */
    cr_assert_not(slow.done);
    usleep(600 * 1000);
    cr_assert(stack_run_until_flag(&loop, &slow.done, 2000));
    cr_assert(!slow.null && slow.type == REDIS_REPLY_NIL, "the reply was dropped (type %d)",
              slow.type);
    cr_assert_eq(st.downs, 0);
    cr_assert_eq(patron_counter_value(timeouts()), 0);
    cr_assert(patron_redis_connected(r));
    close_and_drain(r);
}

Test(redis_timeout, script_retried_after_noscript_keeps_a_deadline, .init = setup, .fini = teardown,
     .timeout = 30)
{
    struct state_log st = {0};
    struct patron_redis *r = connect_ok(300, &st);
    struct patron_redis_script *s;
    cr_assert_eq(patron_redis_script(r, "return 7", &s), 0);
    struct one flush = {0};
    cr_assert_eq(patron_redis_command(r, one_cb, &flush, "SCRIPT FLUSH"), 0);
    cr_assert(stack_run_until_flag(&loop, &flush.done, 2000));
    /* EVALSHA gets NOSCRIPT, the EVAL retry is answered */
    struct one ran = {0};
    cr_assert_eq(patron_redis_evalsha(r, s, one_cb, &ran, 0, 0, NULL, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &ran.done, 2000));
    cr_assert(!ran.null && ran.type == REDIS_REPLY_INTEGER);
    /* the same, with the server stopped before the retry is answered */
    cr_assert_eq(patron_redis_command(r, one_cb, &flush, "SCRIPT FLUSH"), 0);
    struct one lost = {0};
    cr_assert_eq(patron_redis_evalsha(r, s, one_cb, &lost, 0, 0, NULL, NULL), 0);
    cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
    cr_assert(stack_run_until_flag(&loop, &lost.done, 3000));
    cr_assert(lost.null);
    cr_assert_eq(lost.calls, 1);
    cr_assert_eq(kill(srv.pid, SIGCONT), 0);
    close_and_drain(r);
}

/* kv.h passes the timeout to the node (and, on a cluster, to every node). */
static void kv_closed(void *ud)
{
    *(bool *)ud = true;
}

static void kv_state(void *ud, bool connected)
{
    on_state(ud, connected);
}

Test(redis_timeout, through_kv, .init = setup, .fini = teardown, .timeout = 30)
{
    struct state_log st = {0};
    struct patron_kv_options o = {.host = "127.0.0.1",
                                  .port = srv.port,
                                  .max_backoff_ms = 100,
                                  .command_timeout_ms = 300,
                                  .timeouts = timeouts(),
                                  .on_state = kv_state,
                                  .ud = &st};
    struct patron_kv *kv;
    cr_assert_eq(patron_kv_open(&kv, &loop, &o), 0);
    cr_assert(stack_run_until_flag(&loop, &st.up, 5000));
    cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
    struct one got = {0};
    uint64_t t0 = uv_now(&loop);
    cr_assert_eq(patron_kv_command(kv, one_cb, &got, "GET %s", "k"), 0);
    cr_assert(stack_run_until_flag(&loop, &got.done, 3000));
    cr_assert(got.null);
    cr_assert(uv_now(&loop) - t0 < 1500);
    cr_assert_not(patron_kv_connected(kv));
    cr_assert_eq(patron_counter_value(timeouts()), 1);
    cr_assert_eq(kill(srv.pid, SIGCONT), 0);
    bool closed = false;
    patron_kv_close(kv, kv_closed, &closed);
    cr_assert(stack_run_until_flag(&loop, &closed, 2000));
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(redis_timeout, negative_timeout_is_refused)
{
    uv_loop_t l;
    cr_assert_eq(uv_loop_init(&l), 0);
    struct patron_redis *r;
    struct patron_redis_options o = {.command_timeout_ms = -1};
    cr_assert_eq(patron_redis_open(&r, &l, &o), PATRON_EINVAL);
    cr_assert_eq(uv_loop_close(&l), 0);
}
