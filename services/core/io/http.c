#include "patron/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include "patron/config.h"
#include "patron/metrics.h"
#include "http_conn.h"

static void kick(struct conn *c);
static void conn_close(struct conn *c);
static void conn_free(struct conn *c);
static void on_write(uv_write_t *req, int status);

void http_count(struct patron_counter *m)
{
    if (m)
        patron_counter_inc(m);
}

static void gauge_add(struct patron_gauge *g, double v)
{
    if (g)
        patron_gauge_add(g, v);
}

/* Output not yet taken by the kernel: what is queued plus what libuv still
 * holds of the write in flight. */
static size_t out_bytes(const struct conn *c)
{
    return c->pend.len + (c->writing ? uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) : 0);
}

/* Whether the output allows reading and parsing more requests: stops at
 * the high-water mark, resumes at the low one. */
bool http_out_allows_input(struct conn *c)
{
    size_t out = out_bytes(c);
    if (out >= PATRON_HTTP_OUT_HIGH_WATER)
        c->out_paused = true;
    else if (out <= PATRON_HTTP_OUT_LOW_WATER)
        c->out_paused = false;
    return !c->out_paused;
}

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

void http_out_put(struct outbuf *b, const char *s, size_t n)
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
    if (!c->writing && c->pend.len == 0)
        c->out_since = uv_now(c->tcp.loop); /* the write deadline counts from here */
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
        http_out_put(&c->pend, body, len);
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
    if (n > 0)
        c->out_since = uv_now(c->tcp.loop);
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
    c->out_queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

/* ---- answers ------------------------------------------------------------------ */

/* After an answer: a keep-alive connection waits for its next request. */
static void answered(struct conn *c)
{
    c->got_bytes = false;
    if (c->keep_alive) {
        c->phase = PH_WAIT;
        c->last_active = uv_now(c->tcp.loop);
    } else {
        c->phase = PH_HANDLER; /* closes once written: only the write deadline */
    }
}

/* An answer of the server's own: 4xx for what the client sent and 503 for
 * a reserve connection that is not a probe (the connection is then closed,
 * as what follows cannot be trusted), 500 for a handler that gave none (the
 * connection goes on). */
void http_respond_error(struct conn *c, int status)
{
    static const struct {
        int status;
        const char *code, *msg, *extra;
    } errors[] = {
        {400, "bad_request", "malformed request", NULL},
        {408, "request_timeout", "request not received in time", NULL},
        {413, "payload_too_large", "request body too large", NULL},
        {431, "headers_too_large", "request line and headers too large", NULL},
        {500, "internal", "no response", NULL},
        {503, "unavailable", "too many connections", "Retry-After: 1\r\n"},
        {505, "http_version_not_supported", "HTTP/1.x only", NULL},
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
    append_response(c, errors[i].status, "application/json", errors[i].extra, body, (size_t)n);
    if (!c->keep_alive)
        c->close_after_write = true;
    answered(c);
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
    answered(c);
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
                c->rlen - c->rpos < sizeof(c->rbuf) && http_out_allows_input(c);
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
    /* Parsing stops at the output's high-water mark; a flush that drained
     * it lets the requests waiting in rbuf go on (each turn answers at
     * least one, or the output did not drain). */
    do {
        http_process(c);
        flush(c);
        if (c->closing)
            return;
    } while (c->res.state == RES_IDLE && c->rpos < c->rlen && !c->close_after_write &&
             http_out_allows_input(c));
    update_reading(c);
    if (c->closing || c->writing || c->pend.len || c->res.state != RES_IDLE)
        return;
    if (c->close_after_write || (c->eof && c->rpos == c->rlen))
        conn_close(c);
}

/* A head or body deadline passed: 408 when the request had begun, else
 * (a connection that never sent a byte) a close without an answer. */
static void request_timed_out(struct conn *c, bool body)
{
    http_count(body ? c->server->m_to_body : c->server->m_to_head);
    if (!c->got_bytes) {
        conn_close(c);
        return;
    }
    http_respond_error(c, 408);
    kick(c);
}

static uint64_t head_timeout(const struct conn *c)
{
    const struct patron_http_limits *l = &c->server->limits;
    return c->reserve && l->reserve_head_timeout_ms < l->head_timeout_ms
               ? l->reserve_head_timeout_ms
               : l->head_timeout_ms;
}

/* One timer per connection, never armed further than the server's shortest
 * timeout (tick_ms): a deadline set later (a phase begun, output queued) is
 * then never earlier than the timer, which therefore need not be re-armed
 * on the hot path. When it fires it finds the nearest deadline, and acts on
 * it or sleeps until it. */
static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct patron_http_server *s = c->server;
    const struct patron_http_limits *l = &s->limits;
    uint64_t now = uv_now(t->loop);
    enum { NONE, IDLE, HEAD, BODY, WRITE } what = NONE;
    uint64_t at = UINT64_MAX;
    if (c->phase == PH_WAIT) {
        what = IDLE;
        at = c->last_active + l->idle_timeout_ms;
    } else if (c->reserve && (c->phase == PH_HEAD || c->phase == PH_BODY)) {
        what = c->phase == PH_HEAD ? HEAD : BODY;
        at = c->accepted_at + head_timeout(c); /* one request, head and body */
    } else if (c->phase == PH_HEAD) {
        what = HEAD;
        at = c->phase_start + head_timeout(c);
    } else if (c->phase == PH_BODY) {
        what = BODY;
        at = c->phase_start + l->body_timeout_ms;
    }
    if (c->writing || c->pend.len) {
        size_t queued = c->writing ? uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) : 0;
        if (c->writing && queued < c->out_queued) { /* libuv wrote some: progress */
            c->out_queued = queued;
            c->out_since = now;
        }
        if (c->out_since + l->write_timeout_ms < at) {
            what = WRITE;
            at = c->out_since + l->write_timeout_ms;
        }
    }
    if (what != NONE && now >= at) {
        if (what == WRITE)
            http_count(s->m_to_write);
        if (what == HEAD || what == BODY)
            request_timed_out(c, what == BODY);
        else
            conn_close(c);
        if (c->closing)
            return;
        at = UINT64_MAX; /* a 408 on its way: look again within a tick */
    }
    uint64_t wait = at > now ? at - now : 0;
    (void)uv_timer_start(t, on_timer, wait < s->tick_ms ? wait : s->tick_ms, 0); /* cannot fail */
}

static void server_maybe_finish(struct patron_http_server *s)
{
    if (!s->closing || !s->listener_closed || s->n_conns || s->n_refused || s->aux_open)
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
    /* the slot is free from now on, though the handles close a turn later */
    struct patron_http_server *s = c->server;
    s->n_live--;
    if (c->reserve) {
        s->n_reserve--;
        if (c->r_prev)
            c->r_prev->r_next = c->r_next;
        else
            s->reserve_head = c->r_next;
        if (c->r_next)
            c->r_next->r_prev = c->r_prev;
        else
            s->reserve_tail = c->r_prev;
    }
    gauge_add(c->reserve ? s->m_reserve : s->m_conns, -1);
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

/* Beyond the reserve: accept (or the listener stalls) and close at once. */
static void refuse(struct patron_http_server *s)
{
    uv_tcp_t *t = patron_malloc(sizeof(*t));
    if (uv_tcp_init(s->loop, t) != 0) {
        free(t);
        return;
    }
    t->data = s;
    s->n_refused++;
    http_count(s->m_full);
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t); /* closed either way */
    uv_close((uv_handle_t *)t, on_refused_closed);
}

/* The reserve is full: its oldest connection still sending its request
 * makes room (a probe sends its request at once, so the one that has been
 * at it longest is the least likely to be one). False when every reserve
 * connection is being answered. */
static bool evict_reserve(struct patron_http_server *s)
{
    for (struct conn *c = s->reserve_head; c; c = c->r_next) {
        if (c->phase == PH_HEAD || c->phase == PH_BODY) {
            http_count(s->m_evicted);
            conn_close(c);
            return true;
        }
    }
    return false;
}

/* Takes the connection libuv holds: an ordinary one, or one of the reserve
 * for the probes, or none. */
static void accept_one(struct patron_http_server *s)
{
    bool reserve = s->n_live - s->n_reserve >= s->limits.max_connections;
    if (reserve && s->n_reserve >= s->limits.reserve_connections && !evict_reserve(s)) {
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
    c->reserve = reserve;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->n_live++;
    if (reserve) {
        s->n_reserve++;
        c->r_prev = s->reserve_tail;
        if (s->reserve_tail)
            s->reserve_tail->r_next = c;
        else
            s->reserve_head = c;
        s->reserve_tail = c;
    }
    gauge_add(reserve ? s->m_reserve : s->m_conns, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1); /* small answers must not wait for Nagle */
    c->last_active = c->accepted_at = c->phase_start = uv_now(s->loop);
    c->phase = PH_HEAD; /* the first request's deadline runs from the accept */
    uint64_t first = head_timeout(c);
    (void)uv_timer_start(&c->timer, on_timer, first < s->tick_ms ? first : s->tick_ms, 0);
    update_reading(c);
}

static void on_burst_reset(uv_check_t *h)
{
    struct patron_http_server *s = h->data;
    s->burst = 0;
    (void)uv_check_stop(h);
}

/* The next loop turn after a full burst: take the connection left in
 * libuv, which makes it watch the listener again. */
static void on_resume(uv_idle_t *h)
{
    struct patron_http_server *s = h->data;
    (void)uv_idle_stop(h);
    s->held = false;
    if (s->closing)
        return;
    /* this one counts towards the turn's burst, which the poll continues */
    s->burst = 1;
    (void)uv_check_start(&s->burst_reset, on_burst_reset);
    accept_one(s);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct patron_http_server *s = listener->data;
    if (status < 0 || s->closing)
        return;
    if (s->burst >= PATRON_HTTP_ACCEPT_BURST) {
        /* Not accepted: libuv keeps it and stops watching the listener
         * until on_resume takes it. */
        s->held = true;
        (void)uv_idle_start(&s->resume, on_resume);
        return;
    }
    if (s->burst++ == 0)
        (void)uv_check_start(&s->burst_reset, on_burst_reset);
    accept_one(s);
}

/* ---- the server ------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    struct patron_http_server *s = h->data;
    s->listener_closed = true;
    server_maybe_finish(s);
}

static void on_aux_closed(uv_handle_t *h)
{
    struct patron_http_server *s = h->data;
    s->aux_open--;
    server_maybe_finish(s);
}

/* The listener and the accept burst's handles. */
static void close_handles(struct patron_http_server *s)
{
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    uv_close((uv_handle_t *)&s->burst_reset, on_aux_closed);
    uv_close((uv_handle_t *)&s->resume, on_aux_closed);
}

/* Fills the defaults and the tick: the shortest timeout, at least 1 ms. */
static void apply_limits(struct patron_http_server *s, const struct patron_http_limits *l)
{
    s->limits = *l;
    struct patron_http_limits *m = &s->limits;
    if (!m->head_timeout_ms)
        m->head_timeout_ms = PATRON_HTTP_HEAD_TIMEOUT_MS;
    if (!m->body_timeout_ms)
        m->body_timeout_ms = PATRON_HTTP_BODY_TIMEOUT_MS;
    if (!m->write_timeout_ms)
        m->write_timeout_ms = PATRON_HTTP_WRITE_TIMEOUT_MS;
    if (!m->reserve_connections)
        m->reserve_connections = PATRON_HTTP_RESERVE_CONNECTIONS;
    if (!m->reserve_head_timeout_ms)
        m->reserve_head_timeout_ms = PATRON_HTTP_RESERVE_HEAD_TIMEOUT_MS;
    uint64_t t[] = {m->idle_timeout_ms, m->head_timeout_ms, m->body_timeout_ms, m->write_timeout_ms,
                    m->reserve_head_timeout_ms};
    s->tick_ms = UINT64_MAX;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(t); i++)
        if (t[i] < s->tick_ms)
            s->tick_ms = t[i];
    if (s->tick_ms == 0)
        s->tick_ms = 1;
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
    apply_limits(s, &(struct patron_http_limits){PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY,
                                                 PATRON_HTTP_MAX_CONNECTIONS,
                                                 PATRON_HTTP_IDLE_TIMEOUT_MS});
    if (uv_tcp_init(loop, &s->listener) != 0) {
        free(s);
        return PATRON_EIO;
    }
    s->listener.data = s;
    (void)uv_check_init(loop, &s->burst_reset); /* cannot fail */
    (void)uv_idle_init(loop, &s->resume);
    s->burst_reset.data = s->resume.data = s;
    s->aux_open = 2;
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
        close_handles(s);
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
    apply_limits(s, limits);
    /* timers armed for longer than the new tick look again now */
    for (struct conn *c = s->conns; c; c = c->next)
        if (!c->closing)
            (void)uv_timer_start(&c->timer, on_timer, 0, 0);
}

void patron_http_server_set_metrics(struct patron_http_server *s, struct patron_metrics *m)
{
    const char *conns = "patron_http_connections",
               *conns_help =
                   "Open HTTP connections, by pool (the reserve keeps the probes answering)";
    s->m_conns = patron_metrics_gauge(m, conns, conns_help, "pool=\"ordinary\"");
    s->m_reserve = patron_metrics_gauge(m, conns, conns_help, "pool=\"reserve\"");
    patron_gauge_set(s->m_conns, (double)(s->n_live - s->n_reserve));
    patron_gauge_set(s->m_reserve, (double)s->n_reserve);
    const char *rej = "patron_http_connections_rejected_total",
               *rej_help = "HTTP connections turned away: every pool full (closed at accept), a "
                           "reserve connection not asking for a probe (503), or one of the "
                           "reserve still sending its request when a new one came (closed)";
    s->m_full = patron_metrics_counter(m, rej, rej_help, "reason=\"full\"");
    s->m_not_probe = patron_metrics_counter(m, rej, rej_help, "reason=\"not_probe\"");
    s->m_evicted = patron_metrics_counter(m, rej, rej_help, "reason=\"evicted\"");
    const char *to = "patron_http_timeouts_total",
               *to_help = "HTTP deadlines missed: request head or body too slow (408), "
                          "output stuck (closed)";
    s->m_to_head = patron_metrics_counter(m, to, to_help, "phase=\"head\"");
    s->m_to_body = patron_metrics_counter(m, to, to_help, "phase=\"body\"");
    s->m_to_write = patron_metrics_counter(m, to, to_help, "phase=\"write\"");
}

int patron_http_server_port(const struct patron_http_server *s)
{
    return s->port;
}

size_t patron_http_server_connections(const struct patron_http_server *s)
{
    return s->n_live;
}

void patron_http_server_close(struct patron_http_server *s, void (*on_closed)(void *ud), void *ud)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    s->on_closed = on_closed;
    s->closed_ud = ud;
    close_handles(s);
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
