#include "patron/http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include "patron/config.h"

#define READ_BUF_SIZE (16u << 10)
/* Stop reading while more output than this waits for the client to read it:
 * a client that pipelines without reading must not grow our memory. */
#define OUT_HIGH_WATER (1u << 20)
/* An output buffer grown beyond this is released once written. */
#define OUT_KEEP_MAX (256u << 10)
#define LISTEN_BACKLOG 511
/* Bytes a header line costs besides its name and value (": " and CRLF). */
#define HEADER_OVERHEAD 4
/* A request body buffer grown beyond this is released once answered, so that
 * one big POST does not pin a megabyte to a keep-alive connection. */
#define BODY_KEEP_MAX (64u << 10)
/* Header names we look at are shorter than this; longer ones are skipped. */
#define FIELD_MAX 16
#define FIELD_TOO_LONG ((size_t)-1)

struct outbuf {
    char *data;
    size_t len, cap;
};

/*
 * A connection answers one request at a time:
 *   IDLE -> (request parsed) PENDING -> handler answers -> IDLE
 *                                    -> handler defers  -> DEFERRED -> answer -> IDLE
 * Parsing pauses at the end of each request, so pipelined bytes wait in rbuf
 * (read while there is room in it) until the answer is given; answers thus
 * leave in request order.
 *
 * Lifetime: the connection's memory is freed when its two handles (tcp, timer)
 * are closed and no deferred answer is outstanding; if one is, the answer
 * frees it (see http.h).
 */
enum res_state { RES_IDLE, RES_PENDING, RES_DEFERRED };

struct patron_http_response {
    struct conn *conn;
    enum res_state state;
};

enum hdr_kind { HDR_OTHER, HDR_AUTHORIZATION, HDR_EXPECT };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    http_parser parser;
    struct patron_http_server *server; /* NULL once the handles are closed */
    struct conn *prev, *next;
    struct patron_http_response res;
    int handles_open;
    uint64_t last_active; /* uv_now of the last read or completed write */
    bool closing, reading, writing, eof, close_after_write, in_process;

    /* Input: rbuf[rpos, rlen) is received but not parsed yet: bytes that
     * arrived while a request awaits its answer (the parser copies nothing,
     * so they can wait there and move). */
    size_t rpos, rlen;

    /* The request being parsed or answered. head holds the URL then the
     * Authorization value, each NUL-terminated; its size bounds both. */
    char *head;
    size_t head_cap, head_max, head_bytes, url_len, auth_off, auth_len;
    bool url_done, has_auth, in_value;
    char field[FIELD_MAX];
    size_t field_len;
    enum hdr_kind hdr;
    char expect[16];
    size_t expect_len;
    char *body;
    size_t body_len, body_cap;
    int error_status; /* set by a parser callback: answer it and close */
    int method;
    bool keep_alive, is_head, http10;

    /* Output: pend collects answers; wbuf is being written by uv_write. */
    struct outbuf pend, wbuf;

    char rbuf[READ_BUF_SIZE];
};

struct patron_http_server {
    uv_tcp_t listener;
    uv_loop_t *loop;
    patron_http_handler handler;
    void *ud;
    struct patron_http_limits limits;
    struct conn *conns; /* every connection with open handles */
    size_t n_conns, n_refused;
    bool closing, listener_closed;
    void (*on_closed)(void *ud);
    void *closed_ud;
    int port;
    time_t date_sec;
    char date[40];
    size_t date_len;
};

static void kick(struct conn *c);
static void conn_close(struct conn *c);
static void conn_free(struct conn *c);
static void on_write(uv_write_t *req, int status);

/* ---- output ----------------------------------------------------------------- */

static void out_reserve(struct outbuf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    b->data = patron_realloc(b->data, cap);
    b->cap = cap;
}

static void out_put(struct outbuf *b, const char *s, size_t n)
{
    out_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void out_release_if_big(struct outbuf *b)
{
    if (b->cap > OUT_KEEP_MAX && b->len == 0) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

/* The Date header's value and its length, formatted once a second. */
static const char *http_date(struct patron_http_server *s, size_t *len)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        size_t n;
        if (gmtime_r(&now, &tm) &&
            (n = strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm)) > 0) {
            s->date_sec = now;
            s->date_len = n;
        }
    }
    *len = s->date_len;
    return s->date;
}

static char *put(char *p, const char *s, size_t n)
{
    if (n)
        memcpy(p, s, n);
    return p + n;
}

/* The status line and headers, then the body: the answer is the hot path,
 * so the head is assembled from pieces rather than by snprintf. */
static void append_response(struct conn *c, int status, const char *content_type,
                            const char *extra_headers, const char *body, size_t len)
{
    static const char close_hdr[] = "Connection: close\r\n",
                      keep_hdr[] = "Connection: keep-alive\r\n";
    const char *reason = http_status_str((enum http_status)status);
    size_t reason_len = strlen(reason);
    size_t ct_len = content_type ? strlen(content_type) : 0;
    size_t extra_len = extra_headers ? strlen(extra_headers) : 0;
    size_t date_len;
    const char *date = http_date(c->server, &date_len);
    const char *connection = !c->keep_alive ? close_hdr : c->http10 ? keep_hdr : "";
    size_t conn_len = !c->keep_alive ? sizeof(close_hdr) - 1 : c->http10 ? sizeof(keep_hdr) - 1 : 0;
    /* every piece below, with 24 bytes per number */
    size_t head_max = 96 + reason_len + ct_len + date_len + conn_len + extra_len;
    out_reserve(&c->pend, head_max + len);
    char *start = c->pend.data + c->pend.len, *p = start;
    p = put(p, "HTTP/1.1 ", 9);
    if (status < 0)
        *p++ = '-';
    p = patron_put_decimal(p, status < 0 ? 0ULL - (uint64_t)status : (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, reason_len);
    p = put(p, "\r\n", 2);
    if (ct_len) {
        p = put(p, "Content-Type: ", 14);
        p = put(p, content_type, ct_len);
        p = put(p, "\r\n", 2);
    }
    p = put(p, "Content-Length: ", 16);
    p = patron_put_decimal(p, len);
    p = put(p, "\r\nDate: ", 8);
    p = put(p, date, date_len);
    p = put(p, "\r\n", 2);
    p = put(p, connection, conn_len);
    p = put(p, extra_headers, extra_len);
    p = put(p, "\r\n", 2);
    c->pend.len += (size_t)(p - start);
    if (!c->is_head && len)
        out_put(&c->pend, body, len);
}

/* Writes what pend holds: directly if the socket takes it all (the common
 * case: no write request at all), else through uv_write. */
static void flush(struct conn *c)
{
    if (c->closing || c->writing || c->pend.len == 0)
        return;
    uv_buf_t b = uv_buf_init(c->pend.data, (unsigned int)c->pend.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)n == c->pend.len) {
        c->pend.len = 0;
        out_release_if_big(&c->pend);
        c->last_active = uv_now(c->tcp.loop);
        return;
    }
    struct outbuf t = c->wbuf;
    c->wbuf = c->pend;
    c->pend = t;
    c->pend.len = 0;
    b = uv_buf_init(c->wbuf.data + n, (unsigned int)(c->wbuf.len - (size_t)n));
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        conn_close(c);
        return;
    }
    c->writing = true;
}

/* ---- answers ------------------------------------------------------------------ */

/* An answer of the server's own: 4xx for what the client sent (the
 * connection is then closed, as what follows cannot be trusted), 500 for a
 * handler that gave none (the connection goes on). */
static void respond_error(struct conn *c, int status)
{
    static const struct {
        int status;
        const char *code, *msg;
    } errors[] = {
        {400, "bad_request", "malformed request"},
        {413, "payload_too_large", "request body too large"},
        {431, "headers_too_large", "request line and headers too large"},
        {500, "internal", "no response"},
        {505, "http_version_not_supported", "HTTP/1.x only"},
    };
    size_t i = PATRON_ARRAY_LEN(errors);
    while (i > 0 && errors[i - 1].status != status)
        i--;
    i = i ? i - 1 : 0; /* unknown: a 400 */
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}", errors[i].code,
                     errors[i].msg);
    c->res.state = RES_IDLE;
    if (status != 500) {
        c->keep_alive = false;
        c->rpos = c->rlen = 0;
    }
    append_response(c, errors[i].status, "application/json", NULL, body, (size_t)n);
    if (!c->keep_alive)
        c->close_after_write = true;
}

void patron_http_respond_ex(struct patron_http_response *res, int status, const char *content_type,
                            const char *extra_headers, const char *body, size_t len)
{
    struct conn *c = res->conn;
    if (res->state == RES_IDLE)
        return; /* answered already */
    bool deferred = res->state == RES_DEFERRED;
    res->state = RES_IDLE;
    if (c->closing) {
        /* The client is gone: drop the answer. If the handles are closed
         * already, this answer was the last thing holding the memory. */
        if (c->handles_open == 0)
            conn_free(c);
        return;
    }
    append_response(c, status, content_type, extra_headers, body, len);
    if (!c->keep_alive)
        c->close_after_write = true;
    if (c->body_cap > BODY_KEEP_MAX) {
        free(c->body);
        c->body = NULL;
        c->body_cap = c->body_len = 0;
    }
    if (deferred)
        kick(c);
}

void patron_http_respond(struct patron_http_response *res, int status, const char *content_type,
                         const char *body, size_t len)
{
    patron_http_respond_ex(res, status, content_type, NULL, body, len);
}

void patron_http_respond_json(struct patron_http_response *res, int status, const char *json)
{
    patron_http_respond_ex(res, status, "application/json", NULL, json, strlen(json));
}

struct patron_http_response *patron_http_defer(struct patron_http_response *res)
{
    if (res->state == RES_PENDING)
        res->state = RES_DEFERRED;
    return res;
}

/* ---- decoding ------------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..len) into dst (which may be src: it never runs
 * ahead), NUL-terminated. Returns the length, PATRON_EINVAL for a bad escape
 * or %00, PATRON_ETOOBIG if it does not fit in cap. */
static int percent_decode(const char *src, size_t len, char *dst, size_t cap, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return PATRON_EINVAL;
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return PATRON_EINVAL;
            ch = (char)(hi << 4 | lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return PATRON_ETOOBIG;
        dst[o++] = ch;
    }
    if (o >= cap)
        return PATRON_ETOOBIG;
    dst[o] = '\0';
    return (int)o;
}

int patron_http_query_param(const char *query, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t key_len = eq ? (size_t)(eq - p) : len;
        if (key_len == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq ? eq + 1 : p + len;
            size_t v_len = eq ? len - key_len - 1 : 0;
            return percent_decode(v, v_len, out, cap, true);
        }
        p = amp ? amp + 1 : NULL;
    }
    return PATRON_ENOTFOUND;
}

/* ---- parser callbacks -------------------------------------------------------------- */

static int fail_request(struct conn *c, int status)
{
    c->error_status = status;
    return -1;
}

static bool head_count(struct conn *c, size_t n)
{
    c->head_bytes += n;
    return c->head_bytes <= c->head_max;
}

static void end_url(struct conn *c)
{
    if (c->url_done)
        return;
    c->head[c->url_len] = '\0';
    c->auth_off = c->url_len + 1;
    c->url_done = true;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    /* the limit of this request, fixed now: head is sized for it */
    c->head_max = c->server->limits.max_head;
    size_t need = c->head_max + 2; /* URL and Authorization, each with a NUL */
    if (c->head_cap < need) {
        free(c->head);
        c->head = patron_malloc(need);
        c->head_cap = need;
    }
    c->head_bytes = c->url_len = c->auth_len = 0;
    c->url_done = c->has_auth = c->in_value = false;
    c->field_len = 0;
    c->hdr = HDR_OTHER;
    c->expect_len = 0;
    c->body_len = 0;
    c->error_status = 0;
    c->is_head = c->http10 = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (!head_count(c, len))
        return fail_request(c, 431);
    memcpy(c->head + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    end_url(c);
    if (!head_count(c, len + HEADER_OVERHEAD))
        return fail_request(c, 431);
    if (c->in_value) { /* a new header begins */
        c->in_value = false;
        c->field_len = 0;
    }
    if (c->field_len != FIELD_TOO_LONG) {
        if (c->field_len + len <= FIELD_MAX) {
            memcpy(c->field + c->field_len, at, len);
            c->field_len += len;
        } else {
            c->field_len = FIELD_TOO_LONG;
        }
    }
    return 0;
}

static bool field_is(const struct conn *c, const char *name)
{
    size_t n = strlen(name);
    return c->field_len == n && strncasecmp(c->field, name, n) == 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (!head_count(c, len))
        return fail_request(c, 431);
    if (!c->in_value) {
        c->in_value = true;
        c->hdr = field_is(c, "authorization") ? HDR_AUTHORIZATION
                 : field_is(c, "expect")      ? HDR_EXPECT
                                              : HDR_OTHER;
        if (c->hdr == HDR_AUTHORIZATION) {
            if (c->has_auth)
                return fail_request(c, 400); /* which one would we check? */
            c->has_auth = true;
            c->auth_len = 0;
        }
    }
    if (c->hdr == HDR_AUTHORIZATION) {
        /* fits: url + auth <= head_bytes <= max_head, plus two NULs */
        memcpy(c->head + c->auth_off + c->auth_len, at, len);
        c->auth_len += len;
        c->head[c->auth_off + c->auth_len] = '\0';
    } else if (c->hdr == HDR_EXPECT) {
        size_t n =
            len < sizeof(c->expect) - c->expect_len ? len : sizeof(c->expect) - c->expect_len;
        memcpy(c->expect + c->expect_len, at, n);
        c->expect_len += n;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    end_url(c);
    c->method = p->method;
    c->is_head = p->method == HTTP_HEAD;
    c->http10 = p->http_major == 0 || (p->http_major == 1 && p->http_minor == 0);
    c->keep_alive = http_should_keep_alive(p);
    if (p->http_major != 1)
        return fail_request(c, 505);
    /* ULLONG_MAX: no Content-Length */
    if (p->content_length != UINT64_MAX && p->content_length > c->server->limits.max_body)
        return fail_request(c, 413);
    bool has_body =
        (p->content_length != UINT64_MAX && p->content_length > 0) || (p->flags & F_CHUNKED);
    if (has_body && !c->http10 && c->expect_len == 12 &&
        strncasecmp(c->expect, "100-continue", 12) == 0)
        out_put(&c->pend, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    size_t max = c->server->limits.max_body;
    if (len > max - c->body_len)
        return fail_request(c, 413);
    if (c->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + len + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        c->body = patron_realloc(c->body, cap);
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    if (c->body_len)
        c->body[c->body_len] = '\0';
    /* Stop here: the request is answered outside the parser, and the bytes
     * of the next one wait until this one has its answer. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings SETTINGS = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- request dispatch ------------------------------------------------------------- */

static void dispatch(struct conn *c)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (c->url_len == 0 ||
        http_parser_parse_url(c->head, c->url_len, c->method == HTTP_CONNECT, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        respond_error(c, 400);
        return;
    }
    const char *query = "";
    if (u.field_set & (1 << UF_QUERY)) {
        char *q = c->head + u.field_data[UF_QUERY].off;
        q[u.field_data[UF_QUERY].len] = '\0'; /* at '#' or at the URL's own NUL */
        query = q;
    }
    /* decoded in place: it ends at or before the '?', which the NUL replaces */
    char *path = c->head + u.field_data[UF_PATH].off;
    size_t path_len = u.field_data[UF_PATH].len;
    /* routes start with '/': "*" (OPTIONS) and the like are not ours */
    if (path[0] != '/' || percent_decode(path, path_len, path, path_len + 1, false) < 0) {
        respond_error(c, 400);
        return;
    }
    struct patron_http_request req = {
        .method = http_method_str((enum http_method)c->method),
        .path = path,
        .query = query,
        .authorization = c->has_auth ? c->head + c->auth_off : NULL,
        .body = c->body_len ? c->body : "",
        .body_len = c->body_len,
    };
    struct patron_http_server *s = c->server;
    c->res.state = RES_PENDING;
    s->handler(s->ud, &req, &c->res);
    if (c->res.state == RES_PENDING) /* neither answered nor deferred: a bug, but answer */
        respond_error(c, 500);
}

/* Parses and dispatches what rbuf holds, until it is used up or a request
 * waits for its answer. */
static void process(struct conn *c)
{
    c->in_process = true;
    while (!c->closing && !c->close_after_write && c->res.state == RES_IDLE && c->rpos < c->rlen) {
        size_t n = http_parser_execute(&c->parser, &SETTINGS, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rpos += n;
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            dispatch(c);
        } else if (c->error_status) {
            respond_error(c, c->error_status);
        } else if (err != HPE_OK) {
            respond_error(c, err == HPE_HEADER_OVERFLOW ? 431 : 400);
        } else if (c->rpos < c->rlen) {
            respond_error(c, 400); /* the parser stopped without a reason: not HTTP we speak */
        }
    }
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    c->in_process = false;
}

/* ---- connection I/O ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    /* Unparsed bytes (pipelined behind a deferred request) move to the
     * front: nothing points into rbuf between parser calls. update_reading
     * reads only while they leave room, so the buffer is never empty. */
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned int)(sizeof(c->rbuf) - c->rlen));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = stream->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            conn_close(c);
            return;
        }
        c->eof = true; /* answer what was asked, then close */
        kick(c);
        return;
    }
    c->rlen += (size_t)nread;
    c->last_active = uv_now(c->tcp.loop);
    kick(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = false;
    c->wbuf.len = 0;
    out_release_if_big(&c->wbuf);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->last_active = uv_now(c->tcp.loop);
    kick(c);
}

/* Reading goes on while a request awaits its answer, into the room left in
 * rbuf: stopping and restarting it around every request would cost two
 * epoll_ctl calls each. The bytes read then wait in rbuf (at most its size)
 * until the answer is given. */
static void update_reading(struct conn *c)
{
    bool want = !c->closing && !c->eof && !c->close_after_write &&
                c->rlen - c->rpos < sizeof(c->rbuf) && c->pend.len + c->wbuf.len < OUT_HIGH_WATER;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp); /* cannot fail */
        c->reading = false;
    }
}

/* Moves the connection on after anything happened: parse what waits, write
 * what was answered, read or not, close when done. */
static void kick(struct conn *c)
{
    if (c->in_process || c->closing)
        return;
    process(c);
    flush(c);
    update_reading(c);
    if (c->closing || c->writing || c->pend.len || c->res.state != RES_IDLE)
        return;
    if (c->close_after_write || (c->eof && c->rpos == c->rlen))
        conn_close(c);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t timeout = c->server->limits.idle_timeout_ms;
    uint64_t idle = uv_now(t->loop) - c->last_active;
    if (c->res.state == RES_DEFERRED) {                /* we are the slow one, not the client */
        (void)uv_timer_start(t, on_timer, timeout, 0); /* cannot fail: the callback is set */
        return;
    }
    if (idle >= timeout) {
        conn_close(c);
        return;
    }
    (void)uv_timer_start(t, on_timer, timeout - idle, 0);
}

static void server_maybe_finish(struct patron_http_server *s)
{
    if (!s->closing || !s->listener_closed || s->n_conns || s->n_refused)
        return;
    void (*cb)(void *) = s->on_closed;
    void *ud = s->closed_ud;
    free(s);
    if (cb)
        cb(ud);
}

static void conn_free(struct conn *c)
{
    free(c->head);
    free(c->body);
    free(c->pend.data);
    free(c->wbuf.data);
    free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    struct patron_http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    c->server = NULL;
    if (c->res.state != RES_DEFERRED)
        conn_free(c); /* else the deferred answer frees it */
    server_maybe_finish(s);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_refused_closed(uv_handle_t *h)
{
    struct patron_http_server *s = h->data;
    free(h);
    s->n_refused--;
    server_maybe_finish(s);
}

/* Beyond max_connections: accept (or the listener stalls) and close at once. */
static void refuse(struct patron_http_server *s)
{
    uv_tcp_t *t = patron_malloc(sizeof(*t));
    if (uv_tcp_init(s->loop, t) != 0) {
        free(t);
        return;
    }
    t->data = s;
    s->n_refused++;
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t); /* closed either way */
    uv_close((uv_handle_t *)t, on_refused_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct patron_http_server *s = listener->data;
    if (status < 0 || s->closing)
        return;
    if (s->n_conns >= s->limits.max_connections) {
        refuse(s);
        return;
    }
    struct conn *c = patron_calloc(1, sizeof(*c));
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->wreq.data = c;
    (void)uv_timer_init(s->loop, &c->timer); /* cannot fail */
    c->timer.data = c;
    c->handles_open = 2;
    c->server = s;
    c->res.conn = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1); /* small answers must not wait for Nagle */
    c->last_active = uv_now(s->loop);
    (void)uv_timer_start(&c->timer, on_timer, s->limits.idle_timeout_ms, 0);
    update_reading(c);
}

/* ---- the server ------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    struct patron_http_server *s = h->data;
    s->listener_closed = true;
    server_maybe_finish(s);
}

int patron_http_server_start(struct patron_http_server **out, uv_loop_t *loop, const char *addr,
                             patron_http_handler h, void *ud)
{
    return patron_http_server_start_shared(out, loop, addr, false, h, ud);
}

/* libuv 1.44 has no UV_TCP_REUSEPORT: the socket is made here, then given
 * to libuv. */
static int bind_shared(uv_tcp_t *t, const struct sockaddr *sa)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, sa, len) != 0 || uv_tcp_open(t, fd) != 0) {
        close(fd);
        return -1;
    }
    return 0;
}

int patron_http_server_start_shared(struct patron_http_server **out, uv_loop_t *loop,
                                    const char *addr, bool shared, patron_http_handler h, void *ud)
{
    char host[PATRON_CONFIG_HOST_MAX + 1];
    int port;
    struct sockaddr_storage ss;
    if (!addr || !h || patron_config_parse_hostport(addr, host, sizeof(host), &port) != 0)
        return PATRON_EINVAL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return PATRON_EINVAL;
    struct patron_http_server *s = patron_calloc(1, sizeof(*s));
    s->loop = loop;
    s->handler = h;
    s->ud = ud;
    s->limits =
        (struct patron_http_limits){PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY,
                                    PATRON_HTTP_MAX_CONNECTIONS, PATRON_HTTP_IDLE_TIMEOUT_MS};
    if (uv_tcp_init(loop, &s->listener) != 0) {
        free(s);
        return PATRON_EIO;
    }
    s->listener.data = s;
    int rc = shared ? bind_shared(&s->listener, (const struct sockaddr *)&ss)
                    : uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    struct sockaddr_storage bound;
    int bound_len = sizeof(bound);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &bound_len);
    if (rc != 0) {
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return PATRON_EIO;
    }
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

void patron_http_server_set_limits(struct patron_http_server *s,
                                   const struct patron_http_limits *limits)
{
    s->limits = *limits;
}

int patron_http_server_port(const struct patron_http_server *s)
{
    return s->port;
}

size_t patron_http_server_connections(const struct patron_http_server *s)
{
    return s->n_conns;
}

void patron_http_server_close(struct patron_http_server *s, void (*on_closed)(void *ud), void *ud)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    s->on_closed = on_closed;
    s->closed_ud = ud;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
