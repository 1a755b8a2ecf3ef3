/*
 * The HTTP server's bounds (http.h, "Bounds") over real sockets: deadlines
 * for a request's head and body, the connection bound and the reserve that
 * keeps the probes answering, output back-pressure and the write deadline,
 * the accept burst. As in tests/support/http_rig.h, the server's loop runs
 * on the test's thread and a client thread does blocking socket I/O,
 * records what it saw and wakes the loop, which closes everything; the loop
 * must end with no handle left, and LeakSanitizer checks that nothing
 * leaked. The rig is not used: these tests need routes of their own (big
 * answers, the probes, the live connection count), the server's metrics,
 * and a client that reads answers larger than the rig's buffer.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "patron/http.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/num.h"
#include "stack.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#define BIG_BODY (256u << 10) /* bytes of /big's answer */

/* ---- the server side --------------------------------------------------------- */

struct harness;
typedef void (*client_fn)(struct harness *h);

struct harness {
    uv_loop_t loop;
    uv_async_t wake;
    uv_check_t turn; /* after each poll: how many connections this turn accepted */
    size_t conns_before, max_accepted_in_a_turn;
    struct patron_http_server *srv;
    struct patron_metrics *metrics;
    int port;
    client_fn client;
    pthread_t thread;
    _Atomic bool server_closed;
    _Atomic int requests; /* handler calls */
    _Atomic size_t live;  /* patron_http_server_connections, at the last /conns */
    char fail[512];       /* the client's first failure, "" if none */
    char *big;
};

/* Routes: /healthz /readyz /metrics /hello: 200 small JSON; /big: 200 with
 * BIG_BODY bytes; /conns: the open connections; /echo: the Cookie header;
 * /block: blocks the loop for 300 ms (connections pile up in the backlog). */
static void handler(void *ud, const struct patron_http_request *req,
                    struct patron_http_response *res)
{
    struct harness *h = ud;
    atomic_fetch_add(&h->requests, 1);
    if (strcmp(req->path, "/big") == 0) {
        patron_http_respond(res, 200, "text/plain", h->big, BIG_BODY);
    } else if (strcmp(req->path, "/conns") == 0) {
        char body[64];
        size_t n = patron_http_server_connections(h->srv);
        atomic_store(&h->live, n);
        snprintf(body, sizeof(body), "{\"conns\":%zu}", n);
        patron_http_respond_json(res, 200, body);
    } else if (strcmp(req->path, "/block") == 0) {
        stack_sleep_ms(300); /* on the loop's thread: the loop stops */
        patron_http_respond_json(res, 200, "{\"blocked\":true}");
    } else if (strcmp(req->path, "/echo") == 0) {
        char cookie[512], out[600];
        patron_json_escape(cookie, sizeof(cookie), req->cookie ? req->cookie : "-");
        snprintf(out, sizeof(out), "{\"cookie\":\"%s\"}", cookie);
        patron_http_respond_json(res, 200, out);
    } else {
        patron_http_respond_json(res, 200, "{\"ok\":true}");
    }
}

static void on_server_closed(void *ud)
{
    struct harness *h = ud;
    atomic_store(&h->server_closed, true);
}

static void on_turn(uv_check_t *p)
{
    struct harness *h = p->data;
    size_t now = patron_http_server_connections(h->srv);
    if (now > h->conns_before && now - h->conns_before > h->max_accepted_in_a_turn)
        h->max_accepted_in_a_turn = now - h->conns_before;
    h->conns_before = now;
}

static void on_wake(uv_async_t *a)
{
    struct harness *h = a->data;
    patron_http_server_close(h->srv, on_server_closed, h);
    h->srv = NULL;
    uv_close((uv_handle_t *)&h->turn, NULL);
    uv_close((uv_handle_t *)&h->wake, NULL);
}

static void *client_main(void *arg)
{
    struct harness *h = arg;
    h->client(h);
    uv_async_send(&h->wake);
    return NULL;
}

/* Runs `client` against a fresh server; `limits` NULL keeps the defaults.
 * The metrics stay in h->metrics for the test to read; free_harness
 * releases them. */
static void run(client_fn client, const struct patron_http_limits *limits, struct harness *h)
{
    signal(SIGPIPE, SIG_IGN);
    memset(h, 0, sizeof(*h));
    h->big = malloc(BIG_BODY);
    memset(h->big, 'x', BIG_BODY);
    h->metrics = patron_metrics_new();
    cr_assert_eq(uv_loop_init(&h->loop), 0);
    cr_assert_eq(uv_async_init(&h->loop, &h->wake, on_wake), 0);
    h->wake.data = h;
    cr_assert_eq(patron_http_server_start(&h->srv, &h->loop, "127.0.0.1:0", handler, h), 0);
    if (limits)
        patron_http_server_set_limits(h->srv, limits);
    patron_http_server_set_metrics(h->srv, h->metrics);
    h->port = patron_http_server_port(h->srv);
    cr_assert_eq(uv_check_init(&h->loop, &h->turn), 0);
    h->turn.data = h;
    cr_assert_eq(uv_check_start(&h->turn, on_turn), 0);
    h->client = client;
    cr_assert_eq(pthread_create(&h->thread, NULL, client_main, h), 0);
    cr_assert_eq(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(pthread_join(h->thread, NULL), 0);
    cr_assert(atomic_load(&h->server_closed), "on_closed ran");
    cr_assert_eq(uv_loop_close(&h->loop), 0, "no handle left open");
    cr_assert_str_eq(h->fail, "", "client: %s", h->fail);
    free(h->big);
    h->big = NULL;
}

static double counter(struct harness *h, const char *name, const char *labels)
{
    return patron_counter_value(patron_metrics_counter(h->metrics, name, "-", labels));
}

static void free_harness(struct harness *h)
{
    patron_metrics_free(h->metrics);
#ifdef __SANITIZE_ADDRESS__
    /* LeakSanitizer's report at exit does not fail a Criterion test: ask now. */
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "leaks: see the report above");
#endif
}

/* ---- the client side ---------------------------------------------------------- */

static void check_failed(struct harness *h, int line, const char *fmt, ...) PATRON_PRINTF(3, 4);
static void check_failed(struct harness *h, int line, const char *fmt, ...)
{
    if (h->fail[0])
        return;
    int n = snprintf(h->fail, sizeof(h->fail), "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->fail + n, sizeof(h->fail) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A failed check in the client thread: record it and leave the client. */
#define CHECK(h, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_failed((h), __LINE__, __VA_ARGS__);                                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
};

struct response {
    int status;
    char headers[2048];
    char body[1024];
    size_t body_len;
    bool conn_close;
};

/* Connects with `rcv_ms` as the receive timeout. */
static bool client_open_t(struct client *c, int port, int rcv_ms)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return false;
    struct timeval tv = {rcv_ms / 1000, (rcv_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static bool client_open(struct client *c, int port)
{
    return client_open_t(c, port, 5000);
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static bool send_str(struct client *c, const char *s)
{
    size_t len = strlen(s);
    while (len) {
        ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads more into c->buf; false on EOF, error or timeout. */
static bool fill(struct client *c)
{
    if (c->len == sizeof(c->buf))
        return false;
    ssize_t n;
    do
        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

static const char *header_value(const struct response *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL)
        if (strncasecmp(p, name, n) == 0 && p[n] == ':')
            return p + n + 2;
    return NULL;
}

/* One response off the connection; a body beyond r->body is read and
 * dropped (body_len says how long it was). */
static bool read_response(struct client *c, struct response *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!fill(c))
            return false;
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (sscanf(c->buf, "HTTP/1.1 %d ", &r->status) != 1)
        return false;
    const char *first_eol = memmem(c->buf, head_len, "\r\n", 2);
    size_t hl = head_len - (size_t)(first_eol + 2 - c->buf);
    if (hl >= sizeof(r->headers))
        return false;
    memcpy(r->headers, first_eol + 2, hl);
    const char *cl = header_value(r, "Content-Length");
    if (!cl)
        return false;
    int64_t length;
    if (patron_parse_i64(cl, strcspn(cl, "\r\n"), 0, INT32_MAX, &length) < 0)
        return false;
    size_t body = (size_t)length;
    const char *conn = header_value(r, "Connection");
    r->conn_close = conn && strncasecmp(conn, "close", 5) == 0;
    memmove(c->buf, c->buf + head_len, c->len - head_len);
    c->len -= head_len;
    r->body_len = body;
    while (body > 0) {
        if (c->len == 0 && !fill(c))
            return false;
        size_t take = c->len < body ? c->len : body;
        size_t at = r->body_len - body;
        if (at < sizeof(r->body) - 1) {
            size_t keep = sizeof(r->body) - 1 - at < take ? sizeof(r->body) - 1 - at : take;
            memcpy(r->body + at, c->buf, keep);
        }
        memmove(c->buf, c->buf + take, c->len - take);
        c->len -= take;
        body -= take;
    }
    return true;
}

/* True when the server closed the connection (EOF or reset) before the
 * receive timeout; whatever it sent first is dropped. */
static bool closed_by_server(struct client *c)
{
    char b[4096];
    for (;;) {
        ssize_t n = recv(c->fd, b, sizeof(b), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false; /* timeout */
    }
}

/* True when the server closed without sending a byte. */
static bool closed_silently(struct client *c)
{
    char b[64];
    ssize_t n;
    do
        n = recv(c->fd, b, sizeof(b), 0);
    while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"
#define HALF "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: " /* never finished */

static bool get(struct client *c, const char *raw, struct response *r)
{
    return send_str(c, raw) && read_response(c, r);
}

/* The answer /conns gives on a new connection: the server's own count of
 * open connections, this one included. */
static long live_connections(struct harness *h)
{
    struct client c;
    struct response r;
    if (!client_open(&c, h->port) || !get(&c, GET("/conns"), &r) || r.status != 200) {
        client_close(&c);
        return -1;
    }
    client_close(&c);
    /* {"conns":N} */
    const char *n = strchr(r.body, ':');
    int64_t v;
    if (!n || patron_parse_i64(n + 1, strcspn(n + 1, "}"), 0, INT32_MAX, &v) < 0)
        return -1;
    return (long)v;
}

/* ---- deadlines ------------------------------------------------------------------ */

static void c_head_deadline(struct harness *h)
{
    struct client c;
    struct response r;
    /* a request line and half a header, then nothing: 408, then closed */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, HALF), "send");
    int64_t t0 = stack_now_ms();
    CHECK(h, read_response(&c, &r), "an answer");
    int64_t took = stack_now_ms() - t0;
    CHECK(h, r.status == 408 && r.conn_close, "%d close=%d", r.status, r.conn_close);
    CHECK(h, strstr(r.body, "\"request_timeout\""), "%s", r.body);
    CHECK(h, took >= 250 && took < 2000, "after %lld ms", (long long)took);
    CHECK(h, closed_by_server(&c), "closed after the 408");
    client_close(&c);

    /* a connection that sends nothing: closed without an answer */
    CHECK(h, client_open(&c, h->port), "connect");
    t0 = stack_now_ms();
    CHECK(h, closed_silently(&c), "closed without a byte");
    took = stack_now_ms() - t0;
    CHECK(h, took >= 250 && took < 2000, "after %lld ms", (long long)took);
    client_close(&c);

    /* keep-alive: the idle time between requests is not the head's; the
     * next request's head deadline runs from its first byte */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, get(&c, GET("/hello"), &r) && r.status == 200, "first");
    stack_sleep_ms(700); /* idle, longer than the head deadline */
    CHECK(h, get(&c, GET("/hello"), &r) && r.status == 200, "after idling");
    /* a slow client: one byte every 40 ms of a 40-byte request */
    static const char slow[] = "GET /hello HTTP/1.1\r\nHost: slowloris\r\n\r\n";
    t0 = stack_now_ms();
    bool answered = false;
    for (size_t i = 0; i < sizeof(slow) - 1; i++) {
        char one[2] = {slow[i], 0};
        if (!send_str(&c, one))
            break; /* closed under us: the 408 came */
        stack_sleep_ms(40);
        struct timeval tv = {0, 0};
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(c.fd, &fds);
        if (select(c.fd + 1, &fds, NULL, NULL, &tv) > 0) {
            answered = true;
            break;
        }
    }
    CHECK(h, answered, "the slow request got no answer while it dribbled");
    CHECK(h, read_response(&c, &r) && r.status == 408, "408 for the slow head, got %d", r.status);
    took = stack_now_ms() - t0;
    CHECK(h, took >= 250 && took < 1500, "after %lld ms", (long long)took);
    client_close(&c);
}

Test(http_limits, head_deadline_408)
{
    struct harness h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 16, 5000,
                                   .head_timeout_ms = 300};
    run(c_head_deadline, &l, &h);
    cr_assert_eq(counter(&h, "patron_http_timeouts_total", "phase=\"head\""), 3);
    cr_assert_eq(counter(&h, "patron_http_timeouts_total", "phase=\"body\""), 0);
    free_harness(&h);
}

static void c_body_deadline(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, "POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"),
          "send");
    int64_t t0 = stack_now_ms();
    CHECK(h, read_response(&c, &r), "an answer");
    int64_t took = stack_now_ms() - t0;
    CHECK(h, r.status == 408 && r.conn_close, "%d", r.status);
    CHECK(h, took >= 250 && took < 2000, "after %lld ms", (long long)took);
    CHECK(h, closed_by_server(&c), "closed");
    client_close(&c);
    /* a body on time is served */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h,
          get(&c, "POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r) &&
              r.status == 200,
          "a body on time");
    client_close(&c);
}

Test(http_limits, body_deadline_408)
{
    struct harness h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 16, 5000,
                                   .body_timeout_ms = 300};
    run(c_body_deadline, &l, &h);
    cr_assert_eq(counter(&h, "patron_http_timeouts_total", "phase=\"body\""), 1);
    cr_assert_eq(counter(&h, "patron_http_timeouts_total", "phase=\"head\""), 0);
    free_harness(&h);
}

/* ---- the connection bound and the reserve -------------------------------------------- */

enum { MAX_CONNS = 4, RESERVE = 2 };

static void c_reserve(struct harness *h)
{
    struct client slow[MAX_CONNS], c, idle[RESERVE];
    struct response r;
    for (int i = 0; i < MAX_CONNS; i++) {
        CHECK(h, client_open(&slow[i], h->port), "connect %d", i);
        CHECK(h, send_str(&slow[i], HALF), "half a request");
    }
    stack_sleep_ms(100); /* every ordinary connection is taken */
    /* a probe on a new connection: served, then closed */
    static const char *const probes[] = {GET("/healthz"), GET("/readyz"), GET("/metrics"),
                                         "HEAD /healthz HTTP/1.1\r\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        CHECK(h, client_open(&c, h->port), "connect probe");
        CHECK(h, get(&c, probes[i], &r), "probe %zu answered", i);
        CHECK(h, r.status == 200 && r.conn_close, "probe %zu: %d close=%d", i, r.status,
              r.conn_close);
        CHECK(h, closed_by_server(&c), "probe connection closed after its answer");
        client_close(&c);
    }
    /* anything else: 503, Retry-After, closed */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, get(&c, GET("/hello"), &r), "an answer");
    CHECK(h, r.status == 503 && r.conn_close, "%d", r.status);
    const char *retry = header_value(&r, "Retry-After");
    int64_t after = 0;
    CHECK(h, retry && patron_parse_i64(retry, strcspn(retry, "\r\n"), 1, 3600, &after) == 0,
          "Retry-After: %s", r.headers);
    CHECK(h, strstr(r.body, "\"unavailable\""), "%s", r.body);
    CHECK(h, closed_by_server(&c), "closed after the 503");
    client_close(&c);
    /* the reserve full of connections that send nothing: a probe takes the
     * place of the oldest, at once */
    for (int i = 0; i < RESERVE; i++) {
        CHECK(h, client_open(&idle[i], h->port), "connect idle %d", i);
        stack_sleep_ms(20);
    }
    stack_sleep_ms(50);
    int64_t t0 = stack_now_ms();
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, get(&c, GET("/healthz"), &r) && r.status == 200, "a probe with the reserve full");
    CHECK(h, stack_now_ms() - t0 < 200, "answered after %lld ms", (long long)(stack_now_ms() - t0));
    client_close(&c);
    CHECK(h, closed_silently(&idle[0]), "the oldest made room");
    CHECK(h, stack_now_ms() - t0 < 200, "evicted after %lld ms", (long long)(stack_now_ms() - t0));
    /* the other one goes at its short deadline */
    CHECK(h, closed_silently(&idle[1]), "the reserve's deadline");
    CHECK(h, stack_now_ms() - t0 >= 250, "closed after %lld ms", (long long)(stack_now_ms() - t0));
    for (int i = 0; i < RESERVE; i++)
        client_close(&idle[i]);
    /* the ordinary slow ones are still there: the reserve did not touch them */
    for (int i = 0; i < MAX_CONNS; i++) {
        CHECK(h, send_str(&slow[i], "1\r\n\r\n"), "the rest of request %d", i);
        CHECK(h, read_response(&slow[i], &r) && r.status == 200, "slow %d served: %d", i, r.status);
        client_close(&slow[i]);
    }
    stack_sleep_ms(50);
    CHECK(h, live_connections(h) == 1, "only the /conns connection is left");
}

Test(http_limits, reserve_answers_probes_when_full)
{
    struct harness h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD,
                                   PATRON_HTTP_MAX_BODY,
                                   MAX_CONNS,
                                   60000,
                                   .head_timeout_ms = 5000,
                                   .reserve_connections = RESERVE,
                                   .reserve_head_timeout_ms = 400};
    run(c_reserve, &l, &h);
    cr_assert_eq(counter(&h, "patron_http_connections_rejected_total", "reason=\"not_probe\""), 1);
    cr_assert_eq(counter(&h, "patron_http_connections_rejected_total", "reason=\"evicted\""), 1);
    cr_assert_eq(counter(&h, "patron_http_connections_rejected_total", "reason=\"full\""), 0);
    cr_assert_eq(counter(&h, "patron_http_timeouts_total", "phase=\"head\""), 1);
    free_harness(&h);
}

/* What the service saw on main: more slow clients than connections, each
 * holding a half-sent request; a probe on a new connection must still be
 * answered within a kubelet's default second. Default limits. */
enum { SLOW_CLIENTS = 1100 };

static void c_slow_flood(struct harness *h)
{
    struct client *slow = calloc(SLOW_CLIENTS, sizeof(*slow));
    int opened = 0;
    for (; opened < SLOW_CLIENTS; opened++) {
        if (!client_open(&slow[opened], h->port) || !send_str(&slow[opened], HALF))
            break;
    }
    stack_sleep_ms(300); /* the server has accepted what it will */
    int answered = 0;
    int64_t worst = 0;
    for (int i = 0; i < 5; i++) {
        struct client c;
        struct response r;
        int64_t t0 = stack_now_ms();
        if (client_open_t(&c, h->port, 1000) && get(&c, GET("/healthz"), &r) && r.status == 200)
            answered++;
        if (stack_now_ms() - t0 > worst)
            worst = stack_now_ms() - t0;
        client_close(&c);
    }
    for (int i = 0; i < opened; i++)
        client_close(&slow[i]);
    free(slow);
    CHECK(h, opened == SLOW_CLIENTS, "only %d slow clients connected", opened);
    CHECK(h, answered == 5, "%d of 5 probes answered within 1 s (slowest %lld ms)", answered,
          (long long)worst);
}

Test(http_limits, probe_answered_behind_1100_slow_clients, .timeout = 120)
{
    struct harness h;
    run(c_slow_flood, NULL, &h);
    cr_assert_geq(counter(&h, "patron_http_connections_rejected_total", "reason=\"full\"") +
                      counter(&h, "patron_http_connections_rejected_total", "reason=\"evicted\""),
                  SLOW_CLIENTS - PATRON_HTTP_MAX_CONNECTIONS - PATRON_HTTP_RESERVE_CONNECTIONS);
    free_harness(&h);
}

/* More connections waiting in the backlog than one accept burst: the loop
 * takes them a burst per turn, and every one is served. */
enum { BURSTY = 3 * PATRON_HTTP_ACCEPT_BURST + 7 };

static void c_accept_burst(struct harness *h)
{
    struct client *cs = calloc(BURSTY, sizeof(*cs)), blocker;
    struct response r;
    CHECK(h, client_open(&blocker, h->port), "connect");
    CHECK(h, send_str(&blocker, GET("/block")), "block the loop");
    stack_sleep_ms(50); /* the loop is in the handler now */
    for (int i = 0; i < BURSTY; i++)
        CHECK(h, client_open(&cs[i], h->port), "connect %d", i);
    CHECK(h, read_response(&blocker, &r) && r.status == 200, "the blocker's answer");
    client_close(&blocker);
    for (int i = 0; i < BURSTY; i++)
        CHECK(h, send_str(&cs[i], GET("/hello")), "send %d", i);
    for (int i = 0; i < BURSTY; i++) {
        CHECK(h, read_response(&cs[i], &r) && r.status == 200, "answer %d", i);
        client_close(&cs[i]);
    }
    free(cs);
}

Test(http_limits, more_connections_than_an_accept_burst)
{
    struct harness h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 1024, 60000};
    run(c_accept_burst, &l, &h);
    cr_assert_eq(atomic_load(&h.requests), BURSTY + 1);
    cr_assert_leq(h.max_accepted_in_a_turn, PATRON_HTTP_ACCEPT_BURST);
    cr_assert_geq(h.max_accepted_in_a_turn, PATRON_HTTP_ACCEPT_BURST / 2, "a burst piled up");
    free_harness(&h);
}

/* ---- output back-pressure ------------------------------------------------------------- */

enum { PIPELINED = 200 };

static void c_backpressure(struct harness *h)
{
    struct client c;
    CHECK(h, client_open(&c, h->port), "connect");
    /* 200 requests for 256 KiB each (50 MiB of answers), none read */
    static const char one[] = GET("/big");
    char *batch = malloc(PIPELINED * sizeof(one));
    for (int i = 0; i < PIPELINED; i++)
        memcpy(batch + (size_t)i * (sizeof(one) - 1), one, sizeof(one));
    CHECK(h, send_str(&c, batch), "send");
    free(batch);
    stack_sleep_ms(1000);
    /* the server stopped at its high-water mark: what it answered fits in
     * the high-water mark, the socket buffers and the request in hand */
    int handled = atomic_load(&h->requests);
    CHECK(h, handled < PIPELINED / 2, "%d of %d answered while none was read", handled, PIPELINED);
    /* reading resumes the rest, in order, whole */
    for (int i = 0; i < PIPELINED; i++) {
        struct response r;
        CHECK(h, read_response(&c, &r) && r.status == 200 && r.body_len == BIG_BODY, "answer %d",
              i);
    }
    client_close(&c);
    CHECK(h, atomic_load(&h->requests) == PIPELINED, "all answered");
}

Test(http_limits, pipelined_output_is_bounded, .timeout = 60)
{
    struct harness h;
    run(c_backpressure, NULL, &h);
    free_harness(&h);
}

static void c_stuck_output(struct harness *h)
{
    struct client c;
    CHECK(h, client_open(&c, h->port), "connect");
    int rcvbuf = 4096;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    for (int i = 0; i < 40; i++)
        CHECK(h, send_str(&c, GET("/big")), "send");
    /* never read: the output stops moving; the write deadline closes it */
    stack_sleep_ms(100);
    CHECK(h, live_connections(h) == 2, "the stuck one and /conns's");
    int64_t t0 = stack_now_ms();
    long live = -1;
    while (stack_now_ms() - t0 < 3000 && (live = live_connections(h)) != 1)
        stack_sleep_ms(50);
    CHECK(h, live == 1, "the stuck connection is still open: %ld", live);
    int64_t took = stack_now_ms() - t0;
    CHECK(h, took >= 300, "closed after %lld ms", (long long)took);
    client_close(&c);
}

Test(http_limits, stuck_output_closed_after_write_deadline)
{
    struct harness h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 16, 60000,
                                   .write_timeout_ms = 500};
    run(c_stuck_output, &l, &h);
    cr_assert_eq(counter(&h, "patron_http_timeouts_total", "phase=\"write\""), 1);
    free_harness(&h);
}

/* ---- the Cookie header ---------------------------------------------------------------- */

static void c_cookie(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, get(&c, "GET /echo HTTP/1.1\r\nCookie: a=1; patron_session=ab\r\n\r\n", &r), "get");
    CHECK(h, r.status == 200 && strstr(r.body, "\"cookie\":\"a=1; patron_session=ab\""), "%s",
          r.body);
    CHECK(h, get(&c, GET("/echo"), &r), "get");
    CHECK(h, r.status == 200 && strstr(r.body, "\"cookie\":\"-\""), "none: %s", r.body);
    /* the Cookie and Authorization values share the head's buffer */
    CHECK(h,
          get(&c,
              "GET /echo HTTP/1.1\r\nCookie: x=\r\nAuthorization: Bearer t\r\nCookie: y=2\r\n\r\n",
              &r),
          "get");
    CHECK(h, r.status == 400 && r.conn_close, "two Cookie headers: %d", r.status);
    client_close(&c);
}

Test(http_limits, cookie_header)
{
    struct harness h;
    run(c_cookie, NULL, &h);
    free_harness(&h);
}
