/*
 * patron-devkafka: librdkafka's mock cluster (a Kafka-protocol cluster in
 * this process, rdkafka_mock.h) for the demo and the tests; kcat and any
 * Kafka client can talk to it over TCP on 127.0.0.1.
 *
 *   patron-devkafka [--brokers N] [--port P] [--topic name[:partitions]]...
 *                   [--bootstrap-file PATH]
 *
 * Prints the bootstrap list as the first line of stdout (and writes it to
 * PATH, atomically), then runs until SIGTERM or SIGINT and exits 0.
 *
 * For fault tests, SIGUSR1 takes every broker down (its connections close
 * and new ones are refused, as when a broker process dies) and SIGUSR2
 * brings them back up with what they held.
 *
 * librdkafka 2.0 binds its mock brokers to ephemeral ports and has no way to
 * choose them, so --port listens on 127.0.0.1:P and forwards each connection
 * to the first broker: clients bootstrap there, then the metadata sends them
 * to the brokers' own ports. Topics that a producer creates on the fly get
 * the mock's default of 4 partitions (also not settable in 2.0). The mock
 * keeps at most 5 MiB or 100,000 batches per partition.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "patron/common.h"
#include "patron/num.h"

#define MAX_TOPICS 64
#define MAX_BROKERS 16
#define MAX_PARTITIONS 1024
#define DEFAULT_PARTITIONS 4
#define PROXY_BUF 65536
#define PROXY_QUEUE_MAX (1u << 20) /* bytes queued to one side before reading pauses */

struct topic_arg {
    char name[250];
    int partitions;
};

struct args {
    int brokers;
    int port; /* 0: none */
    const char *bootstrap_file;
    struct topic_arg topics[MAX_TOPICS];
    int n_topics;
};

/* One proxied connection: `side[0]` the client, `side[1]` the broker. */
struct pconn {
    struct pconn *next, *prev;
    struct devkafka *dk;
    uv_tcp_t side[2];
    uv_connect_t connect;
    bool reading_paused[2];
    bool closing;
    int open;
};

struct pwrite {
    uv_write_t req;
    uv_buf_t buf;
    struct pconn *pc;
    int from;
};

struct devkafka {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sigdown, sigup;
    rd_kafka_mock_cluster_t *mc;
    int brokers;
    uv_tcp_t listener;
    bool listening;
    struct sockaddr_in target;
    struct pconn *conns;
};

static void usage(void)
{
    fprintf(stderr, "usage: patron-devkafka [--brokers N] [--port P] "
                    "[--topic name[:partitions]]... [--bootstrap-file PATH]\n");
}

static int parse_int(const char *s, long min, long max, int *out)
{
    int64_t v;
    if (patron_parse_i64_str(s, min, max, &v))
        return PATRON_EINVAL;
    *out = (int)v;
    return 0;
}

static int parse_topic(const char *s, struct topic_arg *t)
{
    const char *colon = strrchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    if (len == 0 || len >= sizeof t->name)
        return PATRON_EINVAL;
    memcpy(t->name, s, len);
    t->name[len] = '\0';
    t->partitions = DEFAULT_PARTITIONS;
    return colon ? parse_int(colon + 1, 1, MAX_PARTITIONS, &t->partitions) : 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    a->brokers = 1;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return PATRON_EINVAL;
        i++;
        if (strcmp(opt, "--brokers") == 0) {
            if (parse_int(val, 1, MAX_BROKERS, &a->brokers) < 0)
                return PATRON_EINVAL;
        } else if (strcmp(opt, "--port") == 0) {
            if (parse_int(val, 1, 65535, &a->port) < 0)
                return PATRON_EINVAL;
        } else if (strcmp(opt, "--topic") == 0) {
            if (a->n_topics == MAX_TOPICS || parse_topic(val, &a->topics[a->n_topics++]) < 0)
                return PATRON_EINVAL;
        } else if (strcmp(opt, "--bootstrap-file") == 0) {
            a->bootstrap_file = val;
        } else {
            return PATRON_EINVAL;
        }
    }
    return 0;
}

static int write_bootstrap_file(const char *path, const char *line)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return PATRON_EINVAL;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return PATRON_EIO;
    bool ok = fprintf(f, "%s\n", line) > 0;
    ok = fclose(f) == 0 && ok;
    /* rename: a reader never sees half a line */
    if (!ok || rename(tmp, path) != 0) {
        (void)remove(tmp);
        return PATRON_EIO;
    }
    return 0;
}

/* ---- the bootstrap proxy ------------------------------------------------- */

static void pconn_closed(uv_handle_t *h)
{
    struct pconn *pc = h->data;
    if (--pc->open == 0)
        free(pc);
}

static void pconn_close(struct pconn *pc)
{
    if (pc->closing)
        return;
    pc->closing = true;
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        pc->dk->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    uv_close((uv_handle_t *)&pc->side[0], pconn_closed);
    uv_close((uv_handle_t *)&pc->side[1], pconn_closed);
}

static void proxy_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = patron_malloc(PROXY_BUF);
    buf->len = PROXY_BUF;
}

static void proxy_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void proxy_written(uv_write_t *req, int status)
{
    struct pwrite *w = (struct pwrite *)req;
    struct pconn *pc = w->pc;
    free(w->buf.base);
    int from = w->from;
    free(w);
    if (status < 0) {
        pconn_close(pc);
        return;
    }
    uv_stream_t *to = (uv_stream_t *)&pc->side[!from];
    if (!pc->closing && pc->reading_paused[from] &&
        uv_stream_get_write_queue_size(to) < PROXY_QUEUE_MAX) {
        pc->reading_paused[from] = false;
        if (uv_read_start((uv_stream_t *)&pc->side[from], proxy_alloc, proxy_read) < 0)
            pconn_close(pc);
    }
}

static void proxy_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pconn *pc = s->data;
    int from = s == (uv_stream_t *)&pc->side[0] ? 0 : 1;
    if (nread <= 0) {
        free(buf->base);
        if (nread < 0)
            pconn_close(pc);
        return;
    }
    uv_stream_t *to = (uv_stream_t *)&pc->side[!from];
    struct pwrite *w = patron_malloc(sizeof *w);
    w->buf = uv_buf_init(buf->base, (unsigned)nread);
    w->pc = pc;
    w->from = from;
    if (uv_write(&w->req, to, &w->buf, 1, proxy_written) < 0) {
        free(buf->base);
        free(w);
        pconn_close(pc);
        return;
    }
    /* A slow reader on the other side must not grow our memory. */
    if (uv_stream_get_write_queue_size(to) >= PROXY_QUEUE_MAX) {
        pc->reading_paused[from] = true;
        (void)uv_read_stop(s);
    }
}

static void proxy_connected(uv_connect_t *req, int status)
{
    struct pconn *pc = req->data;
    if (pc->closing)
        return;
    if (status < 0 || uv_read_start((uv_stream_t *)&pc->side[0], proxy_alloc, proxy_read) < 0 ||
        uv_read_start((uv_stream_t *)&pc->side[1], proxy_alloc, proxy_read) < 0)
        pconn_close(pc);
}

static void proxy_accept(uv_stream_t *listener, int status)
{
    struct devkafka *dk = listener->data;
    if (status < 0)
        return;
    struct pconn *pc = patron_calloc(1, sizeof *pc);
    pc->dk = dk;
    (void)uv_tcp_init(&dk->loop, &pc->side[0]);
    (void)uv_tcp_init(&dk->loop, &pc->side[1]);
    pc->side[0].data = pc;
    pc->side[1].data = pc;
    pc->connect.data = pc;
    pc->open = 2;
    pc->next = dk->conns;
    if (dk->conns)
        dk->conns->prev = pc;
    dk->conns = pc;
    if (uv_accept(listener, (uv_stream_t *)&pc->side[0]) < 0 ||
        uv_tcp_connect(&pc->connect, &pc->side[1], (const struct sockaddr *)&dk->target,
                       proxy_connected) < 0)
        pconn_close(pc);
}

static int proxy_start(struct devkafka *dk, int port, const char *bootstraps)
{
    /* The first broker of "127.0.0.1:p1,127.0.0.1:p2" */
    char first[64];
    size_t len = strcspn(bootstraps, ",");
    if (len >= sizeof first)
        return PATRON_EINVAL;
    memcpy(first, bootstraps, len);
    first[len] = '\0';
    char *colon = strrchr(first, ':');
    int bport;
    if (!colon || parse_int(colon + 1, 1, 65535, &bport) < 0)
        return PATRON_EINVAL;
    *colon = '\0';
    if (uv_ip4_addr(first, bport, &dk->target) < 0)
        return PATRON_EINVAL;

    struct sockaddr_in addr;
    int rc = uv_ip4_addr("127.0.0.1", port, &addr);
    if (rc == 0)
        rc = uv_tcp_init(&dk->loop, &dk->listener);
    if (rc < 0)
        return PATRON_EIO;
    dk->listener.data = dk;
    dk->listening = true;
    if ((rc = uv_tcp_bind(&dk->listener, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&dk->listener, 128, proxy_accept)) < 0) {
        fprintf(stderr, "patron-devkafka: cannot listen on 127.0.0.1:%d: %s\n", port,
                uv_strerror(rc));
        return PATRON_EIO;
    }
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

/* SIGUSR1: every broker down; SIGUSR2: every broker up (ids 1..N). */
static void on_broker_signal(uv_signal_t *s, int signum)
{
    struct devkafka *dk = s->data;
    bool down = signum == SIGUSR1;
    for (int id = 1; id <= dk->brokers; id++) {
        rd_kafka_resp_err_t e = down ? rd_kafka_mock_broker_set_down(dk->mc, id)
                                     : rd_kafka_mock_broker_set_up(dk->mc, id);
        if (e)
            fprintf(stderr, "patron-devkafka: broker %d %s: %s\n", id, down ? "down" : "up",
                    rd_kafka_err2str(e));
    }
    fprintf(stderr, "patron-devkafka: brokers %s\n", down ? "down" : "up");
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct devkafka *dk = s->data;
    (void)signum;
    uv_close((uv_handle_t *)&dk->sigterm, NULL);
    uv_close((uv_handle_t *)&dk->sigint, NULL);
    uv_close((uv_handle_t *)&dk->sigdown, NULL);
    uv_close((uv_handle_t *)&dk->sigup, NULL);
    if (dk->listening)
        uv_close((uv_handle_t *)&dk->listener, NULL);
    dk->listening = false;
    while (dk->conns)
        pconn_close(dk->conns);
}

int main(int argc, char **argv)
{
    struct args a = {0};
    if (parse_args(argc, argv, &a) < 0) {
        usage();
        return 2;
    }
    int status = 1;
    struct devkafka dk = {0};
    char err[512], brokers[16];
    (void)snprintf(brokers, sizeof brokers, "%d", a.brokers);
    /* The mock cluster lives in a client instance; test.mock.num.brokers
     * creates it and points the client's bootstrap.servers at it. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "client.id", "patron-devkafka", err, sizeof err) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "test.mock.num.brokers", brokers, err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
        fprintf(stderr, "patron-devkafka: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "patron-devkafka: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
    if (!mc) {
        fprintf(stderr, "patron-devkafka: cannot create the mock cluster\n");
        goto out_destroy_rk;
    }
    for (int i = 0; i < a.n_topics; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
            mc, a.topics[i].name, a.topics[i].partitions, a.brokers < 3 ? a.brokers : 3);
        if (e) {
            fprintf(stderr, "patron-devkafka: topic %s: %s\n", a.topics[i].name,
                    rd_kafka_err2str(e));
            goto out_destroy_rk;
        }
    }

    if (uv_loop_init(&dk.loop) < 0)
        goto out_destroy_rk;
    char line[4096];
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (a.port) {
        if (proxy_start(&dk, a.port, bootstraps) < 0)
            goto out_close_loop;
        (void)snprintf(line, sizeof line, "127.0.0.1:%d", a.port);
    } else {
        (void)snprintf(line, sizeof line, "%s", bootstraps);
    }
    dk.mc = mc;
    dk.brokers = a.brokers;
    (void)uv_signal_init(&dk.loop, &dk.sigterm);
    (void)uv_signal_init(&dk.loop, &dk.sigint);
    (void)uv_signal_init(&dk.loop, &dk.sigdown);
    (void)uv_signal_init(&dk.loop, &dk.sigup);
    dk.sigterm.data = dk.sigint.data = dk.sigdown.data = dk.sigup.data = &dk;
    if (uv_signal_start(&dk.sigterm, on_signal, SIGTERM) < 0 ||
        uv_signal_start(&dk.sigint, on_signal, SIGINT) < 0 ||
        uv_signal_start(&dk.sigdown, on_broker_signal, SIGUSR1) < 0 ||
        uv_signal_start(&dk.sigup, on_broker_signal, SIGUSR2) < 0) {
        on_signal(&dk.sigterm, 0);
        goto out_close_loop;
    }
    if (a.bootstrap_file && write_bootstrap_file(a.bootstrap_file, line) < 0) {
        fprintf(stderr, "patron-devkafka: cannot write %s\n", a.bootstrap_file);
        on_signal(&dk.sigterm, 0);
        goto out_close_loop;
    }
    printf("%s\n", line);
    fflush(stdout);
    status = 0;

out_close_loop:
    if (status && dk.listening) {
        uv_close((uv_handle_t *)&dk.listener, NULL);
        dk.listening = false;
    }
    /* Runs until a signal closed every handle (or at once after a failure). */
    (void)uv_run(&dk.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&dk.loop) != 0)
        status = 1;
out_destroy_rk:
    rd_kafka_destroy(rk);
    return status;
}
