/*
 * Requests: http-parser's callbacks fill the connection's request (http_conn.h),
 * then dispatch hands it to the handler. The bounds of http.h ("Limits",
 * "Bounds") that concern what the client sends are checked here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_conn.h"

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
    c->head_used = c->url_len + 1;
    c->url_done = true;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    /* the first byte of a later request starts its head deadline */
    if (c->phase == PH_WAIT) {
        c->phase = PH_HEAD;
        c->phase_start = uv_now(c->tcp.loop);
    }
    c->got_bytes = true;
    /* the limit of this request, fixed now: head is sized for it */
    c->head_max = c->server->limits.max_head;
    /* The URL and the two captured values with their NULs: what they hold
     * is counted in head_bytes (<= head_max), and each header line counts
     * HEADER_OVERHEAD more than its name and value, so a NUL each fits. */
    size_t need = c->head_max + 3;
    if (c->head_cap < need) {
        free(c->head);
        c->head = patron_malloc(need);
        c->head_cap = need;
    }
    c->head_bytes = c->url_len = c->head_used = c->n_captured = 0;
    c->auth = c->cookie = (struct captured){0};
    c->url_done = c->in_value = false;
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

static struct captured *captured_of(struct conn *c)
{
    return c->hdr == HDR_AUTHORIZATION ? &c->auth : c->hdr == HDR_COOKIE ? &c->cookie : NULL;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (!head_count(c, len))
        return fail_request(c, 431);
    if (!c->in_value) {
        c->in_value = true;
        c->hdr = field_is(c, "authorization") ? HDR_AUTHORIZATION
                 : field_is(c, "cookie")      ? HDR_COOKIE
                 : field_is(c, "expect")      ? HDR_EXPECT
                                              : HDR_OTHER;
        struct captured *cap = captured_of(c);
        if (cap) {
            if (cap->set)
                return fail_request(c, 400); /* which one would we check? */
            if (c->n_captured++)
                c->head_used++; /* past the NUL of the value before */
            *cap = (struct captured){.off = c->head_used, .set = true};
        }
    }
    struct captured *cap = captured_of(c);
    if (cap) {
        /* fits: see on_message_begin */
        memcpy(c->head + c->head_used, at, len);
        c->head_used += len;
        cap->len += len;
        c->head[c->head_used] = '\0';
    } else if (c->hdr == HDR_EXPECT) {
        size_t n =
            len < sizeof(c->expect) - c->expect_len ? len : sizeof(c->expect) - c->expect_len;
        memcpy(c->expect + c->expect_len, at, n);
        c->expect_len += n;
    }
    return 0;
}

/* The probes, which a reserve connection may ask for: the URL's path as
 * sent (no query), before any decoding. */
static bool is_probe(const char *url)
{
    static const char *const probes[] = {"/healthz", "/readyz", "/metrics"};
    size_t n = strcspn(url, "?#");
    for (size_t i = 0; i < PATRON_ARRAY_LEN(probes); i++)
        if (strlen(probes[i]) == n && memcmp(url, probes[i], n) == 0)
            return true;
    return false;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    end_url(c);
    c->phase = PH_BODY;
    c->phase_start = uv_now(c->tcp.loop);
    if (c->reserve && !is_probe(c->head)) {
        http_count(c->server->m_not_probe);
        return fail_request(c, 503);
    }
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
        strncasecmp(c->expect, "100-continue", 12) == 0) {
        if (!c->writing && c->pend.len == 0)
            c->out_since = uv_now(c->tcp.loop);
        http_out_put(&c->pend, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
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
    c->phase = PH_HANDLER;
    /* a reserve connection answers one probe, then makes room */
    c->keep_alive = http_should_keep_alive(p) && !p->upgrade && !c->reserve;
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
        http_respond_error(c, 400);
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
        http_respond_error(c, 400);
        return;
    }
    struct patron_http_request req = {
        .method = http_method_str((enum http_method)c->method),
        .path = path,
        .query = query,
        .authorization = c->auth.set ? c->head + c->auth.off : NULL,
        .cookie = c->cookie.set ? c->head + c->cookie.off : NULL,
        .body = c->body_len ? c->body : "",
        .body_len = c->body_len,
    };
    struct patron_http_server *s = c->server;
    c->res.state = RES_PENDING;
    s->handler(s->ud, &req, &c->res);
    if (c->res.state == RES_PENDING) /* neither answered nor deferred: a bug, but answer */
        http_respond_error(c, 500);
}

/* Parses and dispatches what rbuf holds, until it is used up, a request
 * waits for its answer or the output reached its high-water mark. */
void http_process(struct conn *c)
{
    c->in_process = true;
    while (!c->closing && !c->close_after_write && c->res.state == RES_IDLE && c->rpos < c->rlen &&
           http_out_allows_input(c)) {
        size_t n = http_parser_execute(&c->parser, &SETTINGS, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rpos += n;
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            dispatch(c);
        } else if (c->error_status) {
            http_respond_error(c, c->error_status);
        } else if (err != HPE_OK) {
            http_respond_error(c, err == HPE_HEADER_OVERFLOW ? 431 : 400);
        } else if (c->rpos < c->rlen) {
            http_respond_error(c, 400); /* the parser stopped without a reason: not HTTP we speak */
        }
    }
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    c->in_process = false;
}
