/*
 * The HTTP server over real sockets. The server's loop runs on the test's
 * thread, as in a service; a client thread does blocking socket I/O and
 * records what it saw (Criterion's asserts belong to the test's thread), then
 * wakes the loop, which closes everything. The loop must end with no handle
 * left, and ASan checks that nothing leaked.
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
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "patron/http.h"
#include "patron/log.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* ---- the server side --------------------------------------------------------- */

enum cmd { CMD_NONE, CMD_CLOSE_SERVER, CMD_DONE };

struct harness;
typedef void (*client_fn)(struct harness *h);

struct harness {
    uv_loop_t loop;
    uv_async_t wake;
    struct patron_http_server *srv;
    int port;
    client_fn client;
    pthread_t thread;
    _Atomic int cmd;
    _Atomic bool server_closed;
    _Atomic int requests;         /* handler calls */
    _Atomic int deferred_started; /* deferred answers scheduled */
    _Atomic int deferred_done;    /* deferred answers given */
    _Atomic size_t max_conns_seen;
    char fail[512]; /* the client's first failure, "" if none */
};

struct deferred {
    uv_timer_t timer;
    struct patron_http_response *res;
    struct harness *h;
    char body[128];
};

static void on_deferred_closed(uv_handle_t *t)
{
    free(t->data);
}

static void on_deferred_timer(uv_timer_t *t)
{
    struct deferred *d = t->data;
    patron_http_respond_json(d->res, 200, d->body);
    atomic_fetch_add(&d->h->deferred_done, 1);
    uv_close((uv_handle_t *)t, on_deferred_closed);
}

/* Routes:
 *   /hello            200 {"hello":"world"}
 *   /echo...          200 with method, path, query, authorization and body echoed
 *   /defer?ms=N&i=K   deferred 200 {"deferred":K} after N ms
 *   /defer-now        defers, then answers at once from inside the handler
 *   /silent           neither answers nor defers (the server must answer 500)
 *   anything else     404 */
static void handler(void *ud, const struct patron_http_request *req,
                    struct patron_http_response *res)
{
    struct harness *h = ud;
    atomic_fetch_add(&h->requests, 1);
    size_t conns = patron_http_server_connections(h->srv);
    if (conns > atomic_load(&h->max_conns_seen))
        atomic_store(&h->max_conns_seen, conns);
    if (strcmp(req->path, "/hello") == 0) {
        patron_http_respond_json(res, 200, "{\"hello\":\"world\"}");
    } else if (strncmp(req->path, "/echo", 5) == 0) {
        char path[256], query[256], auth[256], body[512], out[1600];
        patron_json_escape(path, sizeof(path), req->path);
        patron_json_escape(query, sizeof(query), req->query);
        patron_json_escape(auth, sizeof(auth), req->authorization ? req->authorization : "-");
        patron_json_escape_n(body, sizeof(body), req->body, req->body_len, NULL);
        snprintf(out, sizeof(out),
                 "{\"method\":\"%s\",\"path\":\"%s\",\"query\":\"%s\",\"auth\":\"%s\","
                 "\"body\":\"%s\",\"body_len\":%zu}",
                 req->method, path, query, auth, body, req->body_len);
        patron_http_respond_json(res, 200, out);
    } else if (strcmp(req->path, "/defer") == 0) {
        char ms[16] = "0", i[16] = "0";
        if (patron_http_query_param(req->query, "ms", ms, sizeof(ms)) < 0)
            snprintf(ms, sizeof(ms), "0");
        if (patron_http_query_param(req->query, "i", i, sizeof(i)) < 0)
            snprintf(i, sizeof(i), "0");
        struct deferred *d = calloc(1, sizeof(*d));
        d->h = h;
        d->res = patron_http_defer(res);
        snprintf(d->body, sizeof(d->body), "{\"deferred\":%s}", i);
        uv_timer_init(&h->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, on_deferred_timer, strtoull(ms, NULL, 10), 0);
        atomic_fetch_add(&h->deferred_started, 1);
    } else if (strcmp(req->path, "/defer-now") == 0) {
        struct patron_http_response *later = patron_http_defer(res);
        patron_http_respond_json(later, 202, "{\"now\":true}");
        patron_http_respond_json(later, 500, "{\"twice\":true}"); /* ignored */
    } else if (strcmp(req->path, "/silent") == 0) {
        /* nothing */
    } else {
        patron_http_respond_ex(res, 404, "application/json", "X-Test: yes\r\n",
                               "{\"error\":\"not_found\"}", 21);
    }
}

static void on_server_closed(void *ud)
{
    struct harness *h = ud;
    atomic_store(&h->server_closed, true);
}

static void close_server(struct harness *h)
{
    if (h->srv) {
        patron_http_server_close(h->srv, on_server_closed, h);
        h->srv = NULL;
    }
}

static void on_wake(uv_async_t *a)
{
    struct harness *h = a->data;
    int cmd = atomic_exchange(&h->cmd, CMD_NONE);
    if (cmd == CMD_CLOSE_SERVER) {
        close_server(h);
    } else if (cmd == CMD_DONE) {
        close_server(h);
        uv_close((uv_handle_t *)&h->wake, NULL);
    }
}

static void *client_main(void *arg)
{
    struct harness *h = arg;
    h->client(h);
    atomic_store(&h->cmd, CMD_DONE);
    uv_async_send(&h->wake);
    return NULL;
}

/* Runs `client` against a fresh server; `limits` NULL keeps the defaults. */
static void run(client_fn client, const struct patron_http_limits *limits, struct harness *h)
{
    signal(SIGPIPE, SIG_IGN);
    memset(h, 0, sizeof(*h));
    cr_assert_eq(uv_loop_init(&h->loop), 0);
    cr_assert_eq(uv_async_init(&h->loop, &h->wake, on_wake), 0);
    h->wake.data = h;
    cr_assert_eq(patron_http_server_start(&h->srv, &h->loop, "127.0.0.1:0", handler, h), 0);
    if (limits)
        patron_http_server_set_limits(h->srv, limits);
    h->port = patron_http_server_port(h->srv);
    cr_assert_gt(h->port, 0);
    h->client = client;
    cr_assert_eq(pthread_create(&h->thread, NULL, client_main, h), 0);
    cr_assert_eq(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(pthread_join(h->thread, NULL), 0);
    cr_assert(atomic_load(&h->server_closed), "on_closed ran");
    cr_assert_eq(uv_loop_close(&h->loop), 0, "no handle left open");
    cr_assert_str_eq(h->fail, "", "client: %s", h->fail);
    cr_assert_eq(atomic_load(&h->deferred_done), atomic_load(&h->deferred_started));
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
        return; /* the first failure is the one that matters */
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
    char body[4096];
    size_t body_len;
    long content_length;
    bool conn_close;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool client_open(struct client *c, int port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return false;
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static bool send_all(struct client *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static bool send_str(struct client *c, const char *s)
{
    return send_all(c, s, strlen(s));
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

/* One response off the connection (pipelined ones stay buffered). */
static bool read_response(struct client *c, struct response *r, bool head_request)
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
        return false; /* every response has one */
    r->content_length = strtol(cl, NULL, 10);
    const char *conn = header_value(r, "Connection");
    r->conn_close = conn && strncasecmp(conn, "close", 5) == 0;
    size_t body = head_request ? 0 : (size_t)r->content_length;
    if (body >= sizeof(r->body))
        return false;
    while (c->len < head_len + body)
        if (!fill(c))
            return false;
    memcpy(r->body, c->buf + head_len, body);
    r->body[body] = '\0';
    r->body_len = body;
    memmove(c->buf, c->buf + head_len + body, c->len - head_len - body);
    c->len -= head_len + body;
    return true;
}

/* True when the server closed the connection (EOF or reset) within 5 s. */
static bool closed_by_server(struct client *c)
{
    char b[256];
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

static bool request(struct harness *h, struct client *c, const char *raw, struct response *r)
{
    (void)h;
    return send_str(c, raw) && read_response(c, r, false);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- tests ------------------------------------------------------------------------- */

static void c_get_ok(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, request(h, &c, GET("/hello"), &r), "request");
    CHECK(h, r.status == 200, "status %d", r.status);
    CHECK(h, strcmp(r.body, "{\"hello\":\"world\"}") == 0, "body %s", r.body);
    CHECK(h, r.content_length == 17, "length %ld", r.content_length);
    const char *ct = header_value(&r, "Content-Type");
    CHECK(h, ct && strncmp(ct, "application/json\r\n", 18) == 0, "content type");
    CHECK(h, header_value(&r, "Date"), "a Date header");
    CHECK(h, !r.conn_close, "keep-alive by default");
    client_close(&c);
}

Test(http, get_ok)
{
    struct harness h;
    run(c_get_ok, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 1);
}

static void c_keep_alive(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    for (int i = 0; i < 3; i++) {
        CHECK(h, request(h, &c, GET("/hello"), &r), "request %d", i);
        CHECK(h, r.status == 200 && !r.conn_close, "request %d: %d", i, r.status);
    }
    client_close(&c);
}

Test(http, keep_alive_three_requests_one_connection)
{
    struct harness h;
    run(c_keep_alive, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 3);
    cr_assert_eq(atomic_load(&h.max_conns_seen), 1);
}

static void c_pipelined(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    /* one write, with a slow (deferred) answer in the middle */
    CHECK(h,
          send_str(&c, GET("/echo?i=1") GET("/defer?ms=50&i=2") GET("/echo?i=3") GET("/defer-now")
                           GET("/silent") GET("/echo?i=6")),
          "send");
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "1");
    CHECK(h, strstr(r.body, "\"query\":\"i=1\""), "1: %s", r.body);
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "2");
    CHECK(h, strcmp(r.body, "{\"deferred\":2}") == 0, "2: %s", r.body);
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "3");
    CHECK(h, strstr(r.body, "\"query\":\"i=3\""), "3: %s", r.body);
    CHECK(h, read_response(&c, &r, false) && r.status == 202, "4: %d", r.status);
    CHECK(h, strcmp(r.body, "{\"now\":true}") == 0, "4: %s", r.body);
    CHECK(h, read_response(&c, &r, false) && r.status == 500, "5: %d", r.status);
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "6");
    CHECK(h, strstr(r.body, "\"query\":\"i=6\""), "6: %s", r.body);
    CHECK(h, c.len == 0, "nothing more");
    client_close(&c);
}

Test(http, pipelined_requests_answered_in_order)
{
    struct harness h;
    run(c_pipelined, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 6);
}

#define BEHIND_DEFERRED 600 /* ~22 KiB of requests: more than the 16 KiB input buffer */

/* The server reads on while a request is deferred: what arrives meanwhile
 * (in pieces, one request cut in two, more than its input buffer holds)
 * waits, and is answered in order once the deferred answer is given. */
static void c_pipelined_behind_deferred(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    /* the slow one and half the next: the half waits behind it, unparsed */
    CHECK(h, send_str(&c, GET("/defer?ms=200&i=0") "GET /echo?i=1 HT"), "send");
    sleep_ms(20); /* it is deferred by now */
    static char more[BEHIND_DEFERRED * 48];
    size_t len = 0;
    len += (size_t)snprintf(more + len, sizeof(more) - len, "TP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 2; i <= BEHIND_DEFERRED; i++)
        len += (size_t)snprintf(more + len, sizeof(more) - len, GET("/echo?i=%d"), i);
    CHECK(h, send_all(&c, more, len), "send the rest");
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "0");
    CHECK(h, strcmp(r.body, "{\"deferred\":0}") == 0, "0: %s", r.body);
    for (int i = 1; i <= BEHIND_DEFERRED; i++) {
        char want[32];
        snprintf(want, sizeof(want), "\"query\":\"i=%d\"", i);
        CHECK(h, read_response(&c, &r, false) && r.status == 200, "%d", i);
        CHECK(h, strstr(r.body, want), "%d: %s", i, r.body);
    }
    CHECK(h, c.len == 0, "nothing more");
    client_close(&c);
}

Test(http, pipelined_requests_behind_a_deferred_one)
{
    struct harness h;
    run(c_pipelined_behind_deferred, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), BEHIND_DEFERRED + 1);
}

static void c_not_found(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, request(h, &c, GET("/nope"), &r), "request");
    CHECK(h, r.status == 404, "status %d", r.status);
    CHECK(h, strcmp(r.body, "{\"error\":\"not_found\"}") == 0, "body %s", r.body);
    const char *x = header_value(&r, "X-Test");
    CHECK(h, x && strncmp(x, "yes\r\n", 5) == 0, "extra header");
    CHECK(h, request(h, &c, GET("/hello"), &r) && r.status == 200, "still usable");
    client_close(&c);
}

Test(http, not_found_from_handler)
{
    struct harness h;
    run(c_not_found, NULL, &h);
}

static void c_deferred(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    int64_t t0 = now_ms();
    CHECK(h, request(h, &c, GET("/defer?ms=80&i=7"), &r), "request");
    int64_t waited = now_ms() - t0;
    CHECK(h, r.status == 200 && strcmp(r.body, "{\"deferred\":7}") == 0, "%d %s", r.status, r.body);
    CHECK(h, waited >= 70, "answered after %lld ms", (long long)waited);
    CHECK(h, request(h, &c, GET("/hello"), &r) && r.status == 200, "then the next one");
    client_close(&c);
}

Test(http, deferred_response)
{
    struct harness h;
    run(c_deferred, NULL, &h);
    cr_assert_eq(atomic_load(&h.deferred_done), 1);
}

static void c_big_headers(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    char *req = malloc(10000);
    int n = snprintf(req, 10000, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', 9000);
    memcpy(req + n + 9000, "\r\n\r\n", 5);
    bool sent = send_str(&c, req);
    free(req);
    CHECK(h, sent, "send");
    CHECK(h, read_response(&c, &r, false), "a response");
    CHECK(h, r.status == 431, "status %d", r.status);
    CHECK(h, r.conn_close, "Connection: close");
    CHECK(h, strstr(r.body, "\"error\":\"headers_too_large\""), "body %s", r.body);
    CHECK(h, closed_by_server(&c), "closed");
    client_close(&c);

    /* a long URL counts too */
    CHECK(h, client_open(&c, h->port), "connect");
    req = malloc(10000);
    n = snprintf(req, 10000, "GET /");
    memset(req + n, 'u', 8500);
    snprintf(req + n + 8500, 10000 - (size_t)n - 8500, " HTTP/1.1\r\n\r\n");
    sent = send_str(&c, req);
    free(req);
    CHECK(h, sent, "send");
    CHECK(h, read_response(&c, &r, false) && r.status == 431, "long url: %d", r.status);
    client_close(&c);

    /* just under the limit is fine */
    CHECK(h, client_open(&c, h->port), "connect");
    req = malloc(10000);
    n = snprintf(req, 10000, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', 7000);
    memcpy(req + n + 7000, "\r\n\r\n", 5);
    sent = send_str(&c, req);
    free(req);
    CHECK(h, sent && read_response(&c, &r, false) && r.status == 200, "7000: %d", r.status);
    client_close(&c);
}

Test(http, oversize_headers_431)
{
    struct harness h;
    run(c_big_headers, NULL, &h);
}

static void c_big_body(struct harness *h)
{
    struct client c;
    struct response r;
    /* declared too big: refused before the body is sent */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, "POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"), "send");
    CHECK(h, read_response(&c, &r, false) && r.status == 413, "declared: %d", r.status);
    CHECK(h, r.conn_close && strstr(r.body, "payload_too_large"), "%s", r.body);
    CHECK(h, closed_by_server(&c), "closed");
    client_close(&c);

    /* chunked: refused once it grows too big */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), "send");
    static char chunk[65536 + 16];
    int n = snprintf(chunk, sizeof(chunk), "10000\r\n");
    memset(chunk + n, 'b', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    bool refused = false;
    for (int i = 0; i < 20 && !refused; i++) /* 20 x 64 KiB > 1 MiB */
        refused = !send_all(&c, chunk, (size_t)n + 65536 + 2);
    CHECK(h, read_response(&c, &r, false) && r.status == 413, "chunked: %d", r.status);
    client_close(&c);

    /* exactly the limit is fine */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, "POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n"), "send");
    char *body = malloc(1048576);
    memset(body, 'c', 1048576);
    bool sent = send_all(&c, body, 1048576);
    free(body);
    CHECK(h, sent, "send body");
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "1 MiB: %d", r.status);
    CHECK(h, strstr(r.body, "\"body_len\":1048576"), "%s", r.body);
    client_close(&c);
}

Test(http, oversize_body_413)
{
    struct harness h;
    run(c_big_body, NULL, &h);
}

static void c_garbage(struct harness *h)
{
    static const char *const inputs[] = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n",
        "HELLO WORLD\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /a\x01b HTTP/1.1\r\n\r\n",
        "GET /%zz HTTP/1.1\r\n\r\n",
        "GET /a%00b HTTP/1.1\r\n\r\n",
        "GET /a% HTTP/1.1\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(inputs); i++) {
        struct client c;
        struct response r;
        CHECK(h, client_open(&c, h->port), "connect");
        CHECK(h, send_str(&c, inputs[i]), "send %zu", i);
        CHECK(h, read_response(&c, &r, false), "input %zu: a response", i);
        CHECK(h, r.status == 400, "input %zu: status %d", i, r.status);
        CHECK(h, r.conn_close && strstr(r.body, "\"error\":\"bad_request\""), "input %zu", i);
        CHECK(h, closed_by_server(&c), "input %zu: closed", i);
        client_close(&c);
    }
    /* a version we do not speak */
    struct client v;
    struct response vr;
    CHECK(h, client_open(&v, h->port), "connect");
    CHECK(h, request(h, &v, "GET / HTTP/9.9\r\n\r\n", &vr) && vr.status == 505, "%d", vr.status);
    CHECK(h, vr.conn_close && closed_by_server(&v), "closed");
    client_close(&v);
    /* a good request, then garbage: the first is answered, then 400 */
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, GET("/hello") "\x01\x02garbage\r\n\r\n"), "send");
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "good one first");
    CHECK(h, read_response(&c, &r, false) && r.status == 400, "then 400");
    CHECK(h, closed_by_server(&c), "closed");
    client_close(&c);
}

Test(http, garbage_bytes_400_and_close)
{
    struct harness h;
    run(c_garbage, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 1, "no garbage reached the handler");
}

static void c_disconnect_during_deferred(struct harness *h)
{
    struct client c;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, GET("/defer?ms=150&i=1")), "send");
    while (atomic_load(&h->deferred_started) == 0)
        sleep_ms(5);
    client_close(&c); /* gone before the answer */
    while (atomic_load(&h->deferred_done) == 0)
        sleep_ms(5);
    sleep_ms(100);

    /* and the same while the server closes: the answer comes to a closed connection */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, GET("/defer?ms=200&i=2")), "send");
    while (atomic_load(&h->deferred_started) < 2)
        sleep_ms(5);
    atomic_store(&h->cmd, CMD_CLOSE_SERVER);
    uv_async_send(&h->wake);
    CHECK(h, closed_by_server(&c), "closed by the server");
    while (atomic_load(&h->deferred_done) < 2)
        sleep_ms(5);
    client_close(&c);
}

Test(http, client_disconnect_during_deferred_response)
{
    struct harness h;
    run(c_disconnect_during_deferred, NULL, &h);
    cr_assert_eq(atomic_load(&h.deferred_done), 2);
    cr_assert_eq(atomic_load(&h.requests), 2);
}

static void c_close_with_open_connections(struct harness *h)
{
    struct client cs[3];
    struct response r;
    for (int i = 0; i < 3; i++) {
        CHECK(h, client_open(&cs[i], h->port), "connect %d", i);
        CHECK(h, request(h, &cs[i], GET("/hello"), &r) && r.status == 200, "request %d", i);
    }
    /* one more with half a request in flight */
    struct client half;
    CHECK(h, client_open(&half, h->port), "connect");
    CHECK(h, send_str(&half, "GET /hello HTTP/1.1\r\nHo"), "send");
    sleep_ms(50);
    atomic_store(&h->cmd, CMD_CLOSE_SERVER);
    uv_async_send(&h->wake);
    for (int i = 0; i < 3; i++) {
        CHECK(h, closed_by_server(&cs[i]), "connection %d closed", i);
        client_close(&cs[i]);
    }
    CHECK(h, closed_by_server(&half), "half request closed");
    client_close(&half);
    while (!atomic_load(&h->server_closed))
        sleep_ms(5);
    struct client late;
    CHECK(h, !client_open(&late, h->port), "no longer listening");
    client_close(&late);
}

Test(http, server_close_with_open_connections)
{
    struct harness h;
    run(c_close_with_open_connections, NULL, &h);
}

static void c_connection_close(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, request(h, &c, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n", &r), "request");
    CHECK(h, r.status == 200 && r.conn_close, "Connection: close answered");
    CHECK(h, closed_by_server(&c), "closed");
    client_close(&c);

    /* HTTP/1.0: closes by default, keeps alive when asked */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, request(h, &c, "GET /hello HTTP/1.0\r\n\r\n", &r), "request");
    CHECK(h, r.status == 200 && r.conn_close, "1.0 closes");
    CHECK(h, closed_by_server(&c), "closed");
    client_close(&c);
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, request(h, &c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), "1");
    const char *ka = header_value(&r, "Connection");
    CHECK(h, ka && strncasecmp(ka, "keep-alive", 10) == 0, "1.0 keep-alive confirmed");
    CHECK(h, request(h, &c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), "2");
    client_close(&c);

    /* a half-closed client still gets its answers */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, send_str(&c, GET("/hello") GET("/defer?ms=30&i=1")), "send");
    shutdown(c.fd, SHUT_WR);
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "first");
    CHECK(h, read_response(&c, &r, false) && strcmp(r.body, "{\"deferred\":1}") == 0, "second");
    CHECK(h, closed_by_server(&c), "then closed");
    client_close(&c);
}

Test(http, connection_close_and_http10)
{
    struct harness h;
    run(c_connection_close, NULL, &h);
}

static void c_request_fields(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    static const char req[] = "POST /echo/a%20b%2Fc?x=1%202&y=%zz#frag HTTP/1.1\r\n"
                              "authorization: Bearer s3cret\r\nContent-Length: 11\r\n\r\n"
                              "hello\0world";
    CHECK(h, send_all(&c, req, sizeof(req) - 1), "send");
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "status %d", r.status);
    CHECK(h, strstr(r.body, "\"method\":\"POST\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"path\":\"/echo/a b/c\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"query\":\"x=1%202&y=%zz\""), "raw query: %s", r.body);
    CHECK(h, strstr(r.body, "\"auth\":\"Bearer s3cret\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"body\":\"hello\\u0000world\",\"body_len\":11"), "%s", r.body);
    /* no Authorization: NULL */
    CHECK(h, request(h, &c, GET("/echo"), &r) && strstr(r.body, "\"auth\":\"-\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"query\":\"\""), "%s", r.body);
    /* HEAD: headers only, with the length of the body it would have */
    CHECK(h, send_str(&c, "HEAD /hello HTTP/1.1\r\n\r\n"), "send");
    CHECK(h, read_response(&c, &r, true) && r.status == 200, "head");
    CHECK(h, r.content_length == 17 && r.body_len == 0, "%ld", r.content_length);
    CHECK(h, request(h, &c, GET("/hello"), &r) && r.status == 200, "after HEAD");
    /* Expect: 100-continue gets the interim answer first */
    CHECK(h,
          send_str(&c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
          "send");
    char interim[26] = {0};
    while (c.len < 25)
        CHECK(h, fill(&c), "100 Continue");
    memcpy(interim, c.buf, 25);
    CHECK(h, strcmp(interim, "HTTP/1.1 100 Continue\r\n\r\n") == 0, "%s", interim);
    memmove(c.buf, c.buf + 25, c.len - 25);
    c.len -= 25;
    CHECK(h, send_str(&c, "ok") && read_response(&c, &r, false), "final");
    CHECK(h, strstr(r.body, "\"body\":\"ok\""), "%s", r.body);
    /* chunked body */
    CHECK(h,
          request(h, &c,
                  "POST /echo HTTP/1.1\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                  &r),
          "chunked");
    CHECK(h, strstr(r.body, "\"body\":\"abcde\""), "%s", r.body);
    client_close(&c);
}

/* A request that arrives a byte at a time: every parser callback is split. */
static void c_byte_by_byte(struct harness *h)
{
    struct client c;
    struct response r;
    static const char req[] = "POST /echo/%41b?x=1 HTTP/1.1\r\nX-Empty:\r\nAuthorization: Bearer "
                              "abc\r\nContent-Length: 3\r\n\r\nxyz";
    CHECK(h, client_open(&c, h->port), "connect");
    for (size_t i = 0; i + 1 < sizeof(req); i++) {
        CHECK(h, send_all(&c, req + i, 1), "send %zu", i);
        sleep_ms(1);
    }
    CHECK(h, read_response(&c, &r, false) && r.status == 200, "status %d", r.status);
    CHECK(h, strstr(r.body, "\"path\":\"/echo/Ab\",\"query\":\"x=1\",\"auth\":\"Bearer abc\""),
          "%s", r.body);
    CHECK(h, strstr(r.body, "\"body\":\"xyz\""), "%s", r.body);
    client_close(&c);
}

Test(http, request_split_into_single_bytes)
{
    struct harness h;
    run(c_byte_by_byte, NULL, &h);
}

Test(http, request_fields_decoding_head_expect_chunked)
{
    struct harness h;
    run(c_request_fields, NULL, &h);
}

static void c_idle_timeout(struct harness *h)
{
    struct client c;
    struct response r;
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, request(h, &c, GET("/hello"), &r) && r.status == 200, "request");
    int64_t t0 = now_ms();
    CHECK(h, closed_by_server(&c), "closed when idle");
    int64_t took = now_ms() - t0;
    CHECK(h, took >= 150 && took < 2000, "after %lld ms", (long long)took);
    client_close(&c);
    /* a deferred answer slower than the timeout is not cut */
    CHECK(h, client_open(&c, h->port), "connect");
    CHECK(h, request(h, &c, GET("/defer?ms=500&i=3"), &r) && r.status == 200, "slow answer");
    client_close(&c);
}

Test(http, idle_timeout)
{
    struct harness h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 16, 200};
    run(c_idle_timeout, &l, &h);
}

static void c_max_connections(struct harness *h)
{
    struct client a, b, c;
    struct response r;
    CHECK(h, client_open(&a, h->port) && client_open(&b, h->port), "connect");
    CHECK(h, request(h, &a, GET("/hello"), &r) && r.status == 200, "a");
    CHECK(h, request(h, &b, GET("/hello"), &r) && r.status == 200, "b");
    CHECK(h, client_open(&c, h->port), "connect c (accepted, then closed)");
    CHECK(h, closed_by_server(&c), "c refused");
    client_close(&c);
    CHECK(h, request(h, &a, GET("/hello"), &r) && r.status == 200, "a still served");
    client_close(&a);
    sleep_ms(100); /* a's slot frees up */
    CHECK(h, client_open(&c, h->port), "connect c again");
    CHECK(h, request(h, &c, GET("/hello"), &r) && r.status == 200, "c served now");
    client_close(&c);
    client_close(&b);
}

Test(http, max_connections_refused_beyond)
{
    struct harness h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 2, 60000};
    run(c_max_connections, &l, &h);
    cr_assert_eq(atomic_load(&h.max_conns_seen), 2);
}

/* Many small requests, pipelined 64 deep on 4 connections: a smoke test of
 * the fast path (the number is logged; sanitizers make it slow). */
static void c_throughput(struct harness *h)
{
    enum { CONNS = 4, DEPTH = 64, ROUNDS = 80 };
    static const char one[] = GET("/hello");
    char *batch = malloc(sizeof(one) * DEPTH);
    size_t blen = 0;
    for (int i = 0; i < DEPTH; i++) {
        memcpy(batch + blen, one, sizeof(one) - 1);
        blen += sizeof(one) - 1;
    }
    struct client *cs = calloc(CONNS, sizeof(*cs));
    for (int i = 0; i < CONNS; i++)
        CHECK(h, client_open(&cs[i], h->port), "connect");
    int64_t t0 = now_ms();
    int done = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < CONNS; i++)
            CHECK(h, send_all(&cs[i], batch, blen), "send");
        for (int i = 0; i < CONNS; i++)
            for (int k = 0; k < DEPTH; k++) {
                struct response r;
                CHECK(h, read_response(&cs[i], &r, false) && r.status == 200, "response");
                done++;
            }
    }
    int64_t ms = now_ms() - t0;
    cr_log_info("http: %d requests in %lld ms (%.0f req/s)", done, (long long)ms,
                ms ? done * 1000.0 / (double)ms : 0.0);
    for (int i = 0; i < CONNS; i++)
        client_close(&cs[i]);
    free(cs);
    free(batch);
}

Test(http, throughput_smoke)
{
    struct harness h;
    run(c_throughput, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 4 * 64 * 80);
}

/* ---- pure helpers ----------------------------------------------------------------- */

Test(http, query_param_table)
{
    static const struct {
        const char *query, *name;
        size_t cap;
        int rc;
        const char *want;
    } cases[] = {
        {"limit=10&category=home", "limit", 16, 2, "10"},
        {"limit=10&category=home", "category", 16, 4, "home"},
        {"limit=10&category=home", "cat", 16, PATRON_ENOTFOUND, NULL},
        {"a=1&a=2", "a", 16, 1, "1"},
        {"q=a%20b+c", "q", 16, 5, "a b c"},
        {"q=%E2%82%AC", "q", 16, 3, "\xe2\x82\xac"},
        {"flag&x=1", "flag", 16, 0, ""},
        {"x=", "x", 16, 0, ""},
        {"", "x", 16, PATRON_ENOTFOUND, NULL},
        {"x=abcdef", "x", 6, PATRON_ETOOBIG, NULL},
        {"x=abcde", "x", 6, 5, "abcde"},
        {"x=%zz", "x", 16, PATRON_EINVAL, NULL},
        {"x=%2", "x", 16, PATRON_EINVAL, NULL},
        {"x=%00", "x", 16, PATRON_EINVAL, NULL},
        {"xx=1&x=2", "x", 16, 1, "2"},
        {"&&x=3&", "x", 16, 1, "3"},
        {"x=1=2", "x", 16, 3, "1=2"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        char out[16];
        int rc = patron_http_query_param(cases[i].query, cases[i].name, out, cases[i].cap);
        cr_assert_eq(rc, cases[i].rc, "case %zu: %d", i, rc);
        if (rc >= 0)
            cr_assert_str_eq(out, cases[i].want, "case %zu", i);
    }
}

Test(http, start_rejects_bad_addresses)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct patron_http_server *s = NULL;
    static const char *const bad[] = {"", "8080", "localhost:80", "127.0.0.1:99999", "1.2.3:80"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++)
        cr_assert_eq(patron_http_server_start(&s, &loop, bad[i], handler, NULL), PATRON_EINVAL,
                     "%s", bad[i]);
    cr_assert_eq(patron_http_server_start(&s, &loop, NULL, handler, NULL), PATRON_EINVAL);
    /* a port in use: EIO, and the half-made handle closes on the next turn */
    struct patron_http_server *a = NULL, *b = NULL;
    cr_assert_eq(patron_http_server_start(&a, &loop, "127.0.0.1:0", handler, NULL), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", patron_http_server_port(a));
    cr_assert_eq(patron_http_server_start(&b, &loop, addr, handler, NULL), PATRON_EIO);
    cr_assert_null(b);
    patron_http_server_close(a, NULL, NULL);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
