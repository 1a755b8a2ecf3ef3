/*
 * The HTTP server every service runs (io/patron/http.h), driven only through
 * its public API: one server on a libuv loop in 127.0.0.1, and per input one
 * client connection over loopback that writes the input in chunks, shuts
 * its writing half, and reads until the server closes.
 *
 * Input: byte 0 is the chunk size (0: all at once), byte 1 picks the limits
 * (bits 0-1 max_head 64/1024/8 KiB; bits 2-3 max_body 0/64/4 KiB/1 MiB), the
 * rest is what the client sends.
 *
 * The handler checks what the server hands it (a path that starts with '/',
 * a NUL-terminated body of body_len bytes, ...), runs patron_http_query_param
 * on the query, and answers by the path's second byte: 'd' deferred to the
 * next loop turn, 'x' not at all (the server must answer 500 itself), 't'
 * twice (the second is ignored), 'e' with extra headers, else at once.
 *
 * Properties: the server survives; it answers every request it dispatched,
 * in order, each once, with the status and body given; its byte stream is a
 * well-formed sequence of HTTP/1.1 responses, each with a Content-Length,
 * optionally ended by one error of its own (400, 408, 413, 431, 503, 505) after which
 * it closes; it closes within 5 s of the client's end; and it releases the
 * connection (patron_http_server_connections returns to 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "fuzz.h"
#include "patron/http.h"

#define REQUESTS_MAX 8192       /* dispatches recorded per input */
#define RESPONSE_MAX (8u << 20) /* bytes read back per input */
#define DEADLINE_NS (5 * 1000000000LL)

struct dispatched {
    int status;   /* what the client must see */
    bool head;    /* HEAD: headers only */
    bool server;  /* answered by the server (500), not by the handler */
    uint32_t seq; /* the body is "seq=<seq>" */
};

static struct {
    uv_loop_t loop;
    struct patron_http_server *server;
    int port;
    struct dispatched req[REQUESTS_MAX];
    size_t n_req;
    bool overflow;
    struct patron_http_response *deferred[REQUESTS_MAX];
    uint32_t deferred_seq[REQUESTS_MAX];
    size_t n_deferred;
    char *resp;
    size_t resp_len;
} H;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void answer(struct patron_http_response *res, int status, uint32_t seq, const char *extra)
{
    char body[32];
    int n = snprintf(body, sizeof(body), "seq=%u", (unsigned)seq);
    patron_http_respond_ex(res, status, "text/plain", extra, body, (size_t)n);
}

static void handler(void *ud, const struct patron_http_request *req,
                    struct patron_http_response *res)
{
    (void)ud;
    FUZZ_CHECK(req->method && req->path && req->query && req->body, "a NULL member");
    FUZZ_CHECK(req->path[0] == '/', "path \"%s\" does not start with '/'", req->path);
    FUZZ_CHECK(req->body[req->body_len] == '\0', "body not NUL-terminated");
    FUZZ_CHECK(!req->authorization || strlen(req->authorization) <= PATRON_HTTP_MAX_HEAD,
               "authorization longer than a head");
    char value[64];
    static const char *const names[] = {"id", "n", "category", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int rc = patron_http_query_param(req->query, names[i], value, sizeof(value));
        FUZZ_CHECK(rc < 0 || ((size_t)rc < sizeof(value) && strlen(value) == (size_t)rc),
                   "query param of %d bytes", rc);
    }

    if (H.n_req == REQUESTS_MAX) {
        H.overflow = true;
        patron_http_respond(res, 200, NULL, "", 0);
        return;
    }
    uint32_t seq = (uint32_t)H.n_req;
    struct dispatched *d = &H.req[H.n_req++];
    *d = (struct dispatched){.status = 200, .head = strcmp(req->method, "HEAD") == 0, .seq = seq};
    switch (req->path[1]) {
    case 'd':
        d->status = 202;
        H.deferred[H.n_deferred] = patron_http_defer(res);
        H.deferred_seq[H.n_deferred++] = seq;
        break;
    case 'x':
        d->status = 500;
        d->server = true;
        break;
    case 't':
        answer(res, 200, seq, NULL);
        answer(res, 299, seq, NULL); /* ignored */
        break;
    case 'e':
        d->status = 401;
        answer(res, 401, seq, "WWW-Authenticate: Bearer\r\n");
        break;
    default:
        answer(res, 200, seq, NULL);
        break;
    }
}

static void answer_deferred(void)
{
    for (size_t i = 0; i < H.n_deferred; i++)
        answer(H.deferred[i], 202, H.deferred_seq[i], NULL);
    H.n_deferred = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* http.h: the process must ignore it */
    FUZZ_CHECK(uv_loop_init(&H.loop) == 0, "uv_loop_init");
    int rc = patron_http_server_start(&H.server, &H.loop, "127.0.0.1:0", handler, NULL);
    FUZZ_CHECK(rc == 0, "patron_http_server_start: %d", rc);
    H.port = patron_http_server_port(H.server);
    H.resp = malloc(RESPONSE_MAX);
    FUZZ_CHECK(H.resp, "out of memory");
    return 0;
}

/* ---- the client's reading of the answers ---------------------------------------------- */

struct reading {
    size_t next;       /* the dispatched request the next final response answers */
    bool in_error;     /* the current response is the server's own error */
    bool error_seen;   /* one came: nothing may follow */
    uint64_t body_len; /* bytes of the current body */
    char body[32];     /* its first bytes */
    int status;
};

static int on_headers_complete(http_parser *p)
{
    struct reading *r = p->data;
    r->status = (int)p->status_code;
    r->body_len = 0;
    FUZZ_CHECK(p->http_major == 1 && p->http_minor == 1, "response HTTP/%u.%u", p->http_major,
               p->http_minor);
    FUZZ_CHECK(!r->error_seen, "a response after the server's error response");
    if (r->status == 100)
        return 0;
    FUZZ_CHECK(p->content_length != UINT64_MAX, "status %d without Content-Length", r->status);
    if (r->next < H.n_req) {
        const struct dispatched *d = &H.req[r->next];
        FUZZ_CHECK(r->status == d->status, "response %zu: status %d, want %d", r->next, r->status,
                   d->status);
        return d->head ? 1 : 0; /* 1: no body follows */
    }
    FUZZ_CHECK(r->status == 400 || r->status == 408 || r->status == 413 || r->status == 431 ||
                   r->status == 503 || r->status == 505,
               "status %d for no dispatched request", r->status);
    r->in_error = true;
    r->error_seen = true;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct reading *r = p->data;
    for (size_t i = 0; i < len && r->body_len + i < sizeof(r->body) - 1; i++)
        r->body[r->body_len + i] = at[i];
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct reading *r = p->data;
    if (r->status == 100)
        return 0;
    if (r->in_error) {
        r->in_error = false;
        return 0;
    }
    const struct dispatched *d = &H.req[r->next++];
    if (!d->head && !d->server) {
        char want[32];
        int n = snprintf(want, sizeof(want), "seq=%u", (unsigned)d->seq);
        FUZZ_CHECK(r->body_len == (uint64_t)n && memcmp(r->body, want, (size_t)n) == 0,
                   "response %u: another body", (unsigned)d->seq);
    }
    return 0;
}

static const http_parser_settings RESPONSE_SETTINGS = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* complete: the server closed cleanly, so every dispatched request must be
 * answered; else (a reset) what came must only be a valid beginning. */
static void check_responses(bool complete)
{
    struct reading r = {0};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &r;
    size_t n = http_parser_execute(&p, &RESPONSE_SETTINGS, H.resp, H.resp_len);
    FUZZ_CHECK(HTTP_PARSER_ERRNO(&p) == HPE_OK && n == H.resp_len,
               "malformed response stream at byte %zu of %zu: %s", n, H.resp_len,
               http_errno_name(HTTP_PARSER_ERRNO(&p)));
    if (!complete)
        return;
    /* the end: a response cut short is wrong, except an error's body that a
     * HEAD request does not get (the client cannot tell it from here) */
    if (!(r.in_error && r.body_len == 0)) {
        (void)http_parser_execute(&p, &RESPONSE_SETTINGS, NULL, 0);
        FUZZ_CHECK(HTTP_PARSER_ERRNO(&p) == HPE_OK, "response stream cut short: %s",
                   http_errno_name(HTTP_PARSER_ERRNO(&p)));
    }
    FUZZ_CHECK(r.next == H.n_req, "%zu requests dispatched, %zu answered", H.n_req, r.next);
}

/* ---- one connection ------------------------------------------------------------------ */

static int connect_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    FUZZ_CHECK(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    return fd;
}

/* Reads what is there; false once the server closed (EOF or reset). */
static bool drain(int fd, bool *reset)
{
    for (;;) {
        FUZZ_CHECK(H.resp_len < RESPONSE_MAX, "more than %u bytes of responses", RESPONSE_MAX);
        ssize_t n = recv(fd, H.resp + H.resp_len, RESPONSE_MAX - H.resp_len, MSG_DONTWAIT);
        if (n > 0) {
            H.resp_len += (size_t)n;
            continue;
        }
        if (n == 0)
            return false;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return true;
        FUZZ_CHECK(errno == ECONNRESET, "recv: %s", strerror(errno));
        *reset = true;
        return false;
    }
}

static void turn(void)
{
    (void)uv_run(&H.loop, UV_RUN_NOWAIT);
    answer_deferred();
}

static void set_limits(uint8_t pick)
{
    static const size_t heads[] = {64, 1024, PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_HEAD};
    static const size_t bodies[] = {0, 64, 4096, PATRON_HTTP_MAX_BODY};
    struct patron_http_limits lim = {
        .max_head = heads[pick & 3],
        .max_body = bodies[(pick >> 2) & 3],
        .max_connections = PATRON_HTTP_MAX_CONNECTIONS,
        .idle_timeout_ms = PATRON_HTTP_IDLE_TIMEOUT_MS,
    };
    patron_http_server_set_limits(H.server, &lim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    size_t chunk = fuzz_u8(&in);
    set_limits(fuzz_u8(&in));
    if (chunk == 0)
        chunk = in.len ? in.len : 1;
    H.n_req = H.n_deferred = H.resp_len = 0;
    H.overflow = false;

    int fd = connect_client();
    int64_t deadline = now_ns() + DEADLINE_NS;
    bool open = true, reset = false, writing = true;
    size_t pending = 0;
    const uint8_t *p = NULL;
    while (open) {
        turn();
        if (writing) {
            if (pending == 0 && in.len > 0) {
                pending = chunk;
                p = fuzz_bytes(&in, &pending);
            }
            if (pending > 0) {
                ssize_t n = send(fd, p, pending, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                    p += n;
                    pending -= (size_t)n;
                } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN &&
                           errno != EINTR) {
                    /* the server closed after an error: what is left is unsent */
                    FUZZ_CHECK(errno == EPIPE || errno == ECONNRESET, "send: %s", strerror(errno));
                    writing = false;
                }
            }
            if (writing && pending == 0 && in.len == 0) {
                if (shutdown(fd, SHUT_WR) == 0 || errno != ENOTCONN)
                    writing = false;
            }
        }
        open = drain(fd, &reset);
        if (open && now_ns() > deadline) {
            FUZZ_CHECK(false,
                       "the server neither answered nor closed within 5 s "
                       "(%zu requests dispatched, %zu bytes answered)",
                       H.n_req, H.resp_len);
        }
        if (open)
            (void)poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 0);
    }
    /* no TIME_WAIT on our side: a reset ends it */
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);

    while (patron_http_server_connections(H.server) > 0) {
        turn();
        FUZZ_CHECK(now_ns() < deadline + DEADLINE_NS, "the connection was not released");
    }
    FUZZ_CHECK(H.n_deferred == 0, "a deferred answer left");
    if (!H.overflow)
        check_responses(!reset);
    return 0;
}
