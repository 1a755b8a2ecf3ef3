/* See http_rig.h. */
#include "http_rig.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "patron/log.h"
#include "patron/num.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* ---- the server side --------------------------------------------------------- */

struct deferred {
    uv_timer_t timer;
    struct patron_http_response *res;
    struct http_rig *h;
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

void http_rig_handler(void *ud, const struct patron_http_request *req,
                      struct patron_http_response *res)
{
    struct http_rig *h = ud;
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
        uint64_t delay_ms = 0;
        if (patron_parse_u64(ms, strlen(ms), 0, UINT64_MAX, &delay_ms) < 0)
            delay_ms = 0;
        uv_timer_start(&d->timer, on_deferred_timer, delay_ms, 0);
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
    struct http_rig *h = ud;
    atomic_store(&h->server_closed, true);
}

static void close_server(struct http_rig *h)
{
    if (h->srv) {
        patron_http_server_close(h->srv, on_server_closed, h);
        h->srv = NULL;
    }
}

static void on_wake(uv_async_t *a)
{
    struct http_rig *h = a->data;
    int cmd = atomic_exchange(&h->cmd, HTTP_RIG_NONE);
    if (cmd == HTTP_RIG_CLOSE_SERVER) {
        close_server(h);
    } else if (cmd == HTTP_RIG_DONE) {
        close_server(h);
        uv_close((uv_handle_t *)&h->wake, NULL);
    }
}

static void *client_main(void *arg)
{
    struct http_rig *h = arg;
    h->client(h);
    atomic_store(&h->cmd, HTTP_RIG_DONE);
    uv_async_send(&h->wake);
    return NULL;
}

void http_rig_run(http_rig_client_fn client, const struct patron_http_limits *limits,
                  struct http_rig *h)
{
    signal(SIGPIPE, SIG_IGN);
    memset(h, 0, sizeof(*h));
    cr_assert_eq(uv_loop_init(&h->loop), 0);
    cr_assert_eq(uv_async_init(&h->loop, &h->wake, on_wake), 0);
    h->wake.data = h;
    cr_assert_eq(patron_http_server_start(&h->srv, &h->loop, "127.0.0.1:0", http_rig_handler, h),
                 0);
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

void http_rig_close_server(struct http_rig *h)
{
    atomic_store(&h->cmd, HTTP_RIG_CLOSE_SERVER);
    uv_async_send(&h->wake);
}

/* ---- the client side ---------------------------------------------------------- */

void http_rig_failed(struct http_rig *h, int line, const char *fmt, ...)
{
    if (h->fail[0])
        return; /* the first failure is the one that matters */
    int n = snprintf(h->fail, sizeof(h->fail), "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->fail + n, sizeof(h->fail) - (size_t)n, fmt, ap);
    va_end(ap);
}

bool http_client_open(struct http_client *c, int port)
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

void http_client_close(struct http_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

bool http_send_all(struct http_client *c, const char *data, size_t len)
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

bool http_send_str(struct http_client *c, const char *s)
{
    return http_send_all(c, s, strlen(s));
}

bool http_fill(struct http_client *c)
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

const char *http_header_value(const struct http_response *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL)
        if (strncasecmp(p, name, n) == 0 && p[n] == ':')
            return p + n + 2;
    return NULL;
}

bool http_read_response(struct http_client *c, struct http_response *r, bool head_request)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!http_fill(c))
            return false;
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (sscanf(c->buf, "HTTP/1.1 %d ", &r->status) != 1)
        return false;
    const char *first_eol = memmem(c->buf, head_len, "\r\n", 2);
    size_t hl = head_len - (size_t)(first_eol + 2 - c->buf);
    if (hl >= sizeof(r->headers))
        return false;
    memcpy(r->headers, first_eol + 2, hl);
    const char *cl = http_header_value(r, "Content-Length");
    if (!cl)
        return false; /* every response has one */
    int64_t length = 0;
    if (patron_parse_i64(cl, strcspn(cl, "\r\n"), 0, INT32_MAX, &length) < 0)
        return false;
    r->content_length = (long)length;
    const char *conn = http_header_value(r, "Connection");
    r->conn_close = conn && strncasecmp(conn, "close", 5) == 0;
    size_t body = head_request ? 0 : (size_t)r->content_length;
    if (body >= sizeof(r->body))
        return false;
    while (c->len < head_len + body)
        if (!http_fill(c))
            return false;
    memcpy(r->body, c->buf + head_len, body);
    r->body[body] = '\0';
    r->body_len = body;
    memmove(c->buf, c->buf + head_len + body, c->len - head_len - body);
    c->len -= head_len + body;
    return true;
}

bool http_closed_by_server(struct http_client *c)
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

bool http_request(struct http_client *c, const char *raw, struct http_response *r)
{
    return http_send_str(c, raw) && http_read_response(c, r, false);
}
