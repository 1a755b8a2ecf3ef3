/*
 * The Redis Cluster client against a real cluster: three masters and three
 * replicas (redis-server --cluster-enabled, redis-cli --cluster create) on
 * free ports in a temporary directory, started by each test and killed at
 * its end.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/config.h"
#include "patron/redis_cluster.h"
#include "patron/keys.h"
#include "stack.h"

#define NODES 6

/* ---- the cluster --------------------------------------------------------------- */

/* Six nodes sharing one temporary directory (each its nodes-PORT.conf). */
struct cluster {
    char dir[128];
    struct stack_redis node[NODES];
};

static struct cluster cl;
static uv_loop_t loop;

static bool cluster_ok(int port)
{
    char out[4096];
    stack_redis_cli(out, sizeof out, "-p %d cluster info", port);
    return strstr(out, "cluster_state:ok") != NULL;
}

static void cluster_start(void)
{
    snprintf(cl.dir, sizeof cl.dir, "/tmp/patron-cluster-XXXXXX");
    cr_assert(mkdtemp(cl.dir) != NULL);
    for (int i = 0; i < NODES; i++) {
        int port = stack_free_port_pair(10000); /* the bus port is port + 10000 */
        for (int j = 0; j < i; j++)
            if (cl.node[j].port == port || cl.node[j].port + 10000 == port ||
                port + 10000 == cl.node[j].port)
                port = 0;
        if (!port) {
            i--; /* again: taken by a node already chosen, or by its bus */
            continue;
        }
        cl.node[i].port = port;
        snprintf(cl.node[i].dir, sizeof cl.node[i].dir, "%s", cl.dir);
    }
    for (int i = 0; i < NODES; i++) {
        char conf[32];
        snprintf(conf, sizeof conf, "nodes-%d.conf", cl.node[i].port);
        const char *extra[] = {"--cluster-enabled",
                               "yes",
                               "--cluster-config-file",
                               conf,
                               "--cluster-node-timeout",
                               "2000",
                               NULL};
        stack_redis_start(&cl.node[i], extra);
    }
    char args[512];
    size_t off = 0;
    for (int i = 0; i < NODES; i++)
        off += (size_t)snprintf(args + off, sizeof args - off, "127.0.0.1:%d ", cl.node[i].port);
    char out[16384];
    stack_redis_cli(out, sizeof out, "--cluster create %s --cluster-replicas 1 --cluster-yes",
                    args);
    cr_assert(strstr(out, "All 16384 slots covered"), "cluster create: %s", out);
    for (int i = 0; i < NODES; i++) {
        int t = 0;
        while (t++ < 500 && !cluster_ok(cl.node[i].port))
            stack_sleep_ms(20);
        cr_assert(cluster_ok(cl.node[i].port), "cluster_state not ok on %d", cl.node[i].port);
    }
}

static void node_kill(int i)
{
    stack_redis_kill(&cl.node[i]);
}

static void cluster_stop(void)
{
    for (int i = 0; i < NODES; i++)
        stack_redis_cleanup(&cl.node[i]); /* the directory is the cluster's, not the node's */
    if (cl.dir[0] && !stack_remove_tree(cl.dir))
        fprintf(stderr, "could not remove %s\n", cl.dir);
    memset(&cl, 0, sizeof cl);
}

/* The index of the master owning `slot`, from CLUSTER NODES, and its id. */
static int master_of(int slot, char id[64])
{
    for (int i = 0; i < NODES; i++) {
        if (!cl.node[i].pid)
            continue;
        char out[8192];
        stack_redis_cli(out, sizeof out, "-p %d cluster nodes", cl.node[i].port);
        char *save = NULL;
        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (!strstr(line, "master") || strstr(line, "fail"))
                continue;
            char nid[64], addr[64], flags[64], master[64], ping[32], pong[32], epoch[32], link[32];
            int n = 0;
            if (sscanf(line, "%63s %63s %63s %63s %31s %31s %31s %31s%n", nid, addr, flags, master,
                       ping, pong, epoch, link, &n) != 8)
                continue;
            for (char *r = line + n; *r;) {
                while (*r == ' ')
                    r++;
                int from, to, used = 0;
                if (sscanf(r, "%d-%d%n", &from, &to, &used) == 2 && used > 0) {
                } else if (sscanf(r, "%d%n", &from, &used) == 1 && used > 0) {
                    to = from;
                } else {
                    break;
                }
                r += used;
                if (slot >= from && slot <= to) {
                    int port = (int)stack_leading_int(strchr(addr, ':') + 1);
                    for (int k = 0; k < NODES; k++) {
                        if (cl.node[k].port == port) {
                            if (id)
                                snprintf(id, 64, "%s", nid);
                            return k;
                        }
                    }
                }
                while (*r && *r != ' ')
                    r++;
            }
        }
        break;
    }
    return -1;
}

struct state_log {
    int ups, downs;
    bool up;
};

static void on_state(void *ud, bool connected)
{
    struct state_log *s = ud;
    s->up = connected;
    if (connected)
        s->ups++;
    else
        s->downs++;
}

static void on_closed(void *ud)
{
    *(bool *)ud = true;
}

/* Counts of replies of a batch of commands. */
struct tally {
    int calls, nulls, errors, ints, strs, other;
    int expected;
    bool done;
    char last_error[256];
};

static void tally_cb(void *ud, redisReply *reply)
{
    struct tally *t = ud;
    t->calls++;
    if (!reply)
        t->nulls++;
    else if (reply->type == REDIS_REPLY_ERROR) {
        t->errors++;
        snprintf(t->last_error, sizeof t->last_error, "%s", reply->str);
    } else if (reply->type == REDIS_REPLY_INTEGER)
        t->ints++;
    else if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
        t->strs++;
    else
        t->other++;
    if (t->calls == t->expected)
        t->done = true;
}

static struct patron_endpoint seeds[2];
static struct state_log st;

static struct patron_redis_cluster *open_client(void)
{
    seeds[0] = (struct patron_endpoint){.host = "127.0.0.1", .port = cl.node[0].port};
    seeds[1] = (struct patron_endpoint){.host = "127.0.0.1", .port = cl.node[1].port};
    struct patron_redis_cluster_options o = {
        .seeds = seeds,
        .n_seeds = 2,
        .connect_timeout_ms = 1000,
        .max_backoff_ms = 500,
        .on_state = on_state,
        .ud = &st,
    };
    struct patron_redis_cluster *c;
    cr_assert_eq(patron_redis_cluster_open(&c, &loop, &o), 0);
    cr_assert(stack_run_until_flag(&loop, &st.up, 5000), "cluster client not connected");
    cr_assert(patron_redis_cluster_connected(c));
    return c;
}

static void close_client(struct patron_redis_cluster *c)
{
    bool closed = false;
    patron_redis_cluster_close(c, on_closed, &closed);
    cr_assert(stack_run_until_flag(&loop, &closed, 3000));
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open");
}

static void setup(void)
{
    cluster_start();
    cr_assert_eq(uv_loop_init(&loop), 0);
    memset(&st, 0, sizeof st);
}

static void teardown(void)
{
    cluster_stop();
}

/* Sends INCR {tag:i % tags}:n `n` times; returns after every reply. */
static void incr_many(struct patron_redis_cluster *c, struct tally *t, int n, int tags)
{
    *t = (struct tally){.expected = n};
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "{tag:%d}:n", i % tags);
        const char *argv[] = {"INCR", key};
        cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, t, 2, argv, NULL), 0);
    }
    cr_assert(stack_run_until_flag(&loop, &t->done, 20000), "%d of %d replies", t->calls, n);
}

static int64_t cli_get(const char *key)
{
    char out[256];
    stack_redis_cli(out, sizeof out, "-c -p %d GET '%s'", cl.node[2].port, key);
    return stack_leading_int(out);
}

/* ---- tests ------------------------------------------------------------------------ */

TestSuite(redis_cluster, .init = setup, .fini = teardown, .timeout = 60);

Test(redis_cluster, incr_across_many_slots_land)
{
    struct patron_redis_cluster *c = open_client();
    struct tally t;
    incr_many(c, &t, 10000, 200);
    cr_assert_eq(t.ints, 10000, "nulls %d errors %d (%s)", t.nulls, t.errors, t.last_error);
    /* Every tag got 50, as another client routing on its own sees it. */
    for (int i = 0; i < 200; i += 13) {
        char key[64];
        snprintf(key, sizeof key, "{tag:%d}:n", i);
        cr_expect_eq(cli_get(key), 50, "%s", key);
    }
    /* Our slot function agrees with the server's. */
    static const char *keys[] = {"{tag:7}:n",     "foo",        "{user1000}.following",
                                 "foo{{bar}}zap", "foo{}{bar}", "{c:C17850}"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(keys); i++) {
        char out[64];
        stack_redis_cli(out, sizeof out, "-p %d cluster keyslot '%s'", cl.node[0].port, keys[i]);
        cr_expect_eq(stack_leading_int(out), (int64_t)patron_key_slot(keys[i], strlen(keys[i])),
                     "%s", keys[i]);
    }
    /* Keys of different slots in one command: refused, callback never runs. */
    const char *del[] = {"DEL", "{a}x", "{b}x"};
    cr_expect_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 3, del, NULL), PATRON_EINVAL);
    const char *mset[] = {"MSET", "{a}x", "1", "{a}y", "2"};
    t = (struct tally){.expected = 1};
    cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 5, mset, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &t.done, 2000));
    cr_expect_eq(t.strs, 1, "%s", t.last_error);
    /* A keyless command goes to some master. */
    const char *ping[] = {"PING"};
    t = (struct tally){.expected = 1};
    cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 1, ping, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &t.done, 2000));
    cr_expect_eq(t.strs, 1);
    close_client(c);
}

Test(redis_cluster, evalsha_on_every_node)
{
    struct patron_redis_cluster *c = open_client();
    struct patron_redis_cluster_script *s, *again;
    const char *lua = "redis.call('SET', KEYS[1], ARGV[1]); "
                      "return redis.call('INCRBY', KEYS[2], ARGV[1])";
    cr_assert_eq(patron_redis_cluster_script(c, lua, &s), 0);
    cr_assert_eq(patron_redis_cluster_script(c, lua, &again), 0);
    cr_assert_eq(s, again);
    cr_assert_eq(strlen(patron_redis_cluster_script_sha(s)), 40);
    struct tally t = {.expected = 300};
    for (int i = 0; i < 300; i++) {
        char k1[32], k2[32];
        snprintf(k1, sizeof k1, "{s:%d}:a", i % 100);
        snprintf(k2, sizeof k2, "{s:%d}:b", i % 100);
        const char *argv[] = {k1, k2, "2"};
        cr_assert_eq(patron_redis_cluster_evalsha(c, s, tally_cb, &t, 2, 1, argv, NULL), 0);
    }
    cr_assert(stack_run_until_flag(&loop, &t.done, 10000));
    cr_assert_eq(t.ints, 300, "errors %d (%s) nulls %d", t.errors, t.last_error, t.nulls);
    cr_expect_eq(cli_get("{s:42}:b"), 6);
    /* The 100 tags covered all three masters. */
    bool seen[NODES] = {false};
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof k, "{s:%d}:a", i);
        int m = master_of((int)patron_key_slot(k, strlen(k)), NULL);
        cr_assert_geq(m, 0);
        seen[m] = true;
    }
    int masters = 0;
    for (int i = 0; i < NODES; i++)
        masters += seen[i];
    cr_expect_eq(masters, 3);
    /* SCRIPT FLUSH everywhere: NOSCRIPT is recovered on every node. */
    for (int i = 0; i < NODES; i++) {
        char out[64];
        stack_redis_cli(out, sizeof out, "-p %d script flush", cl.node[i].port);
    }
    t = (struct tally){.expected = 100};
    for (int i = 0; i < 100; i++) {
        char k1[32], k2[32];
        snprintf(k1, sizeof k1, "{s:%d}:a", i);
        snprintf(k2, sizeof k2, "{s:%d}:b", i);
        const char *argv[] = {k1, k2, "1"};
        cr_assert_eq(patron_redis_cluster_evalsha(c, s, tally_cb, &t, 2, 1, argv, NULL), 0);
    }
    cr_assert(stack_run_until_flag(&loop, &t.done, 10000));
    cr_expect_eq(t.ints, 100, "errors %d (%s)", t.errors, t.last_error);
    /* Keys of two slots in one script call: refused. */
    const char *bad[] = {"{x}1", "{y}1", "1"};
    cr_expect_eq(patron_redis_cluster_evalsha(c, s, tally_cb, &t, 2, 1, bad, NULL), PATRON_EINVAL);
    close_client(c);
}

/* Moves the slot of `key` from its master to another one, as redis-cli
 * --cluster reshard does, with the client's map left stale: the first
 * command after it gets MOVED. In between, a key not yet migrated is
 * answered with ASK. */
Test(redis_cluster, moved_and_ask_during_resharding)
{
    struct patron_redis_cluster *c = open_client();
    const char *key = "{mig}:n";
    int slot = (int)patron_key_slot(key, strlen(key));
    struct tally t;
    incr_many(c, &t, 1, 1); /* warm up: {tag:0}:n */
    const char *incr[] = {"INCR", key};
    t = (struct tally){.expected = 5};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 2, incr, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &t.done, 2000));

    char src_id[64], dst_id[64];
    int src = master_of(slot, src_id);
    cr_assert_geq(src, 0);
    int dst = -1;
    for (int s = 0; s < 16384 && dst < 0; s += 4096) {
        int m = master_of(s, dst_id);
        if (m >= 0 && m != src)
            dst = m;
    }
    cr_assert_geq(dst, 0);
    char out[4096];
    stack_redis_cli(out, sizeof out, "-p %d cluster setslot %d importing %s", cl.node[dst].port,
                    slot, src_id);
    cr_assert(strstr(out, "OK"), "%s", out);
    stack_redis_cli(out, sizeof out, "-p %d cluster setslot %d migrating %s", cl.node[src].port,
                    slot, dst_id);
    cr_assert(strstr(out, "OK"), "%s", out);

    /* A new key of the migrating slot: the source answers ASK. */
    const char *set_new[] = {"SET", "{mig}:fresh", "asked"};
    t = (struct tally){.expected = 1};
    cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 3, set_new, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &t.done, 3000));
    cr_expect_eq(t.strs, 1, "errors %d (%s) nulls %d", t.errors, t.last_error, t.nulls);
    stack_redis_cli(out, sizeof out, "-p %d cluster countkeysinslot %d", cl.node[dst].port, slot);
    cr_expect_eq(stack_leading_int(out), 1, "the new key is on the target: %s", out);

    /* Finish: migrate the old key, then give the slot to dst everywhere. */
    stack_redis_cli(out, sizeof out, "-p %d migrate 127.0.0.1 %d '' 0 5000 keys '%s'",
                    cl.node[src].port, cl.node[dst].port, key);
    cr_assert(strstr(out, "OK"), "%s", out);
    for (int i = 0; i < NODES; i++) {
        stack_redis_cli(out, sizeof out, "-p %d cluster setslot %d node %s", cl.node[i].port, slot,
                        dst_id);
    }
    t = (struct tally){.expected = 5};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 2, incr, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &t.done, 3000));
    cr_expect_eq(t.ints, 5, "errors %d (%s) nulls %d", t.errors, t.last_error, t.nulls);
    stack_redis_cli(out, sizeof out, "-p %d GET '%s'", cl.node[dst].port, key);
    cr_expect_eq(stack_leading_int(out), 10, "on the new master: %s", out);
    /* After the refresh, commands go straight to the new master. */
    incr_many(c, &t, 100, 10);
    cr_expect_eq(t.ints, 100);
    close_client(c);
}

Test(redis_cluster, master_killed_replica_promoted)
{
    struct patron_redis_cluster *c = open_client();
    struct tally t;
    incr_many(c, &t, 1000, 50);
    cr_assert_eq(t.ints, 1000);

    const char *key = "{victim}:n";
    int victim = master_of((int)patron_key_slot(key, strlen(key)), NULL);
    cr_assert_geq(victim, 0);
    /* Replicas have synced: the failover needs them. */
    for (int i = 0; i < 200; i++) {
        char out[4096];
        stack_redis_cli(out, sizeof out, "-p %d info replication", cl.node[victim].port);
        if (strstr(out, "connected_slaves:1") && strstr(out, "state=online"))
            break;
        stack_sleep_ms(20);
    }
    const char *incr[] = {"INCR", key};
    struct tally lost = {.expected = 200};
    for (int i = 0; i < 200; i++)
        cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &lost, 2, incr, NULL), 0);
    node_kill(victim); /* before the loop ran: the commands are in flight */
    cr_assert(stack_run_until_flag(&loop, &lost.done, 5000));
    cr_expect_eq(lost.nulls + lost.ints, 200);
    cr_expect_gt(lost.nulls, 0, "the lost node's callbacks got NULL");

    bool down = false;
    for (int i = 0; i < 100 && !down; i++) {
        down = !patron_redis_cluster_connected(c);
        uv_run(&loop, UV_RUN_NOWAIT);
        stack_sleep_ms(1);
    }
    cr_expect(st.downs >= 1 || down);
    /* the replica's election takes a few node timeouts (2 s); a loaded machine more */
    cr_assert(stack_run_until_flag(&loop, &st.up, 45000), "not connected again after the failover");
    incr_many(c, &t, 2000, 100);
    cr_expect_eq(t.ints, 2000, "nulls %d errors %d (%s)", t.nulls, t.errors, t.last_error);
    t = (struct tally){.expected = 1};
    cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 2, incr, NULL), 0);
    cr_assert(stack_run_until_flag(&loop, &t.done, 3000));
    cr_expect_eq(t.ints, 1, "%s", t.last_error);
    close_client(c);
}

static void close_in_callback_cb(void *ud, redisReply *reply)
{
    void **p = ud;
    (void)reply;
    patron_redis_cluster_close(p[0], NULL, NULL);
    tally_cb(p[1], reply);
}

Test(redis_cluster, close_with_pending_commands)
{
    struct patron_redis_cluster *c = open_client();
    struct tally t = {.expected = 3000};
    for (int i = 0; i < 3000; i++) {
        char key[32];
        snprintf(key, sizeof key, "{p:%d}", i % 300);
        const char *argv[] = {"INCR", key};
        cr_assert_eq(patron_redis_cluster_commandv(c, tally_cb, &t, 2, argv, NULL), 0);
    }
    cr_assert_eq(patron_redis_cluster_pending(c), 3000);
    bool closed = false;
    patron_redis_cluster_close(c, on_closed, &closed);
    cr_expect_eq(t.calls, 3000, "every callback ran once at close");
    cr_expect_eq(t.nulls, 3000);
    cr_assert(stack_run_until_flag(&loop, &closed, 3000));
    cr_assert_eq(t.calls, 3000);
    cr_assert_eq(uv_loop_close(&loop), 0);

    /* Closing from inside a reply callback. */
    cr_assert_eq(uv_loop_init(&loop), 0);
    memset(&st, 0, sizeof st);
    c = open_client();
    struct tally t2 = {.expected = 100};
    void *ctx[2] = {c, &t2};
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "{q:%d}", i);
        const char *argv[] = {"INCR", key};
        cr_assert_eq(patron_redis_cluster_commandv(c, close_in_callback_cb, ctx, 2, argv, NULL), 0);
    }
    cr_assert(stack_run_until_flag(&loop, &t2.done, 3000));
    cr_expect_eq(t2.calls, 100);
    cr_expect_gt(t2.nulls, 0);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open");
}
