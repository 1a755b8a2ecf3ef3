/*
 * The HTTP server over real sockets: requests and their answers (keep-alive,
 * pipelining, deferred answers, request fields, HTTP/1.0, Connection: close)
 * and the pure helpers. The rig (a server on the test's loop, a blocking
 * client in a thread) is tests/support/http_rig.h; the limits and bad input
 * are in test_http_limits.c.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http_rig.h"
#include "stack.h"

/* ---- requests ------------------------------------------------------------------------- */

static void c_get_ok(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_request(&c, GET("/hello"), &r), "request");
    CHECK(h, r.status == 200, "status %d", r.status);
    CHECK(h, strcmp(r.body, "{\"hello\":\"world\"}") == 0, "body %s", r.body);
    CHECK(h, r.content_length == 17, "length %ld", r.content_length);
    const char *ct = http_header_value(&r, "Content-Type");
    CHECK(h, ct && strncmp(ct, "application/json\r\n", 18) == 0, "content type");
    CHECK(h, http_header_value(&r, "Date"), "a Date header");
    CHECK(h, !r.conn_close, "keep-alive by default");
    http_client_close(&c);
}

Test(http, get_ok)
{
    struct http_rig h;
    http_rig_run(c_get_ok, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 1);
}

static void c_keep_alive(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    for (int i = 0; i < 3; i++) {
        CHECK(h, http_request(&c, GET("/hello"), &r), "request %d", i);
        CHECK(h, r.status == 200 && !r.conn_close, "request %d: %d", i, r.status);
    }
    http_client_close(&c);
}

Test(http, keep_alive_three_requests_one_connection)
{
    struct http_rig h;
    http_rig_run(c_keep_alive, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 3);
    cr_assert_eq(atomic_load(&h.max_conns_seen), 1);
}

static void c_pipelined(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    /* one write, with a slow (deferred) answer in the middle */
    CHECK(h,
          http_send_str(&c, GET("/echo?i=1") GET("/defer?ms=50&i=2") GET("/echo?i=3")
                                GET("/defer-now") GET("/silent") GET("/echo?i=6")),
          "send");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "1");
    CHECK(h, strstr(r.body, "\"query\":\"i=1\""), "1: %s", r.body);
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "2");
    CHECK(h, strcmp(r.body, "{\"deferred\":2}") == 0, "2: %s", r.body);
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "3");
    CHECK(h, strstr(r.body, "\"query\":\"i=3\""), "3: %s", r.body);
    CHECK(h, http_read_response(&c, &r, false) && r.status == 202, "4: %d", r.status);
    CHECK(h, strcmp(r.body, "{\"now\":true}") == 0, "4: %s", r.body);
    CHECK(h, http_read_response(&c, &r, false) && r.status == 500, "5: %d", r.status);
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "6");
    CHECK(h, strstr(r.body, "\"query\":\"i=6\""), "6: %s", r.body);
    CHECK(h, c.len == 0, "nothing more");
    http_client_close(&c);
}

Test(http, pipelined_requests_answered_in_order)
{
    struct http_rig h;
    http_rig_run(c_pipelined, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 6);
}

#define BEHIND_DEFERRED 600 /* ~22 KiB of requests: more than the 16 KiB input buffer */

/* The server reads on while a request is deferred: what arrives meanwhile
 * (in pieces, one request cut in two, more than its input buffer holds)
 * waits, and is answered in order once the deferred answer is given. */
static void c_pipelined_behind_deferred(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    /* the slow one and half the next: the half waits behind it, unparsed */
    CHECK(h, http_send_str(&c, GET("/defer?ms=200&i=0") "GET /echo?i=1 HT"), "send");
    stack_sleep_ms(20); /* it is deferred by now */
    static char more[BEHIND_DEFERRED * 48];
    size_t len = 0;
    len += (size_t)snprintf(more + len, sizeof(more) - len, "TP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 2; i <= BEHIND_DEFERRED; i++)
        len += (size_t)snprintf(more + len, sizeof(more) - len, GET("/echo?i=%d"), i);
    CHECK(h, http_send_all(&c, more, len), "send the rest");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "0");
    CHECK(h, strcmp(r.body, "{\"deferred\":0}") == 0, "0: %s", r.body);
    for (int i = 1; i <= BEHIND_DEFERRED; i++) {
        char want[32];
        snprintf(want, sizeof(want), "\"query\":\"i=%d\"", i);
        CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "%d", i);
        CHECK(h, strstr(r.body, want), "%d: %s", i, r.body);
    }
    CHECK(h, c.len == 0, "nothing more");
    http_client_close(&c);
}

Test(http, pipelined_requests_behind_a_deferred_one)
{
    struct http_rig h;
    http_rig_run(c_pipelined_behind_deferred, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), BEHIND_DEFERRED + 1);
}

static void c_not_found(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_request(&c, GET("/nope"), &r), "request");
    CHECK(h, r.status == 404, "status %d", r.status);
    CHECK(h, strcmp(r.body, "{\"error\":\"not_found\"}") == 0, "body %s", r.body);
    const char *x = http_header_value(&r, "X-Test");
    CHECK(h, x && strncmp(x, "yes\r\n", 5) == 0, "extra header");
    CHECK(h, http_request(&c, GET("/hello"), &r) && r.status == 200, "still usable");
    http_client_close(&c);
}

Test(http, not_found_from_handler)
{
    struct http_rig h;
    http_rig_run(c_not_found, NULL, &h);
}

static void c_deferred(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    int64_t t0 = stack_now_ms();
    CHECK(h, http_request(&c, GET("/defer?ms=80&i=7"), &r), "request");
    int64_t waited = stack_now_ms() - t0;
    CHECK(h, r.status == 200 && strcmp(r.body, "{\"deferred\":7}") == 0, "%d %s", r.status, r.body);
    CHECK(h, waited >= 70, "answered after %lld ms", (long long)waited);
    CHECK(h, http_request(&c, GET("/hello"), &r) && r.status == 200, "then the next one");
    http_client_close(&c);
}

Test(http, deferred_response)
{
    struct http_rig h;
    http_rig_run(c_deferred, NULL, &h);
    cr_assert_eq(atomic_load(&h.deferred_done), 1);
}

static void c_connection_close(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_request(&c, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n", &r), "request");
    CHECK(h, r.status == 200 && r.conn_close, "Connection: close answered");
    CHECK(h, http_closed_by_server(&c), "closed");
    http_client_close(&c);

    /* HTTP/1.0: closes by default, keeps alive when asked */
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_request(&c, "GET /hello HTTP/1.0\r\n\r\n", &r), "request");
    CHECK(h, r.status == 200 && r.conn_close, "1.0 closes");
    CHECK(h, http_closed_by_server(&c), "closed");
    http_client_close(&c);
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_request(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), "1");
    const char *ka = http_header_value(&r, "Connection");
    CHECK(h, ka && strncasecmp(ka, "keep-alive", 10) == 0, "1.0 keep-alive confirmed");
    CHECK(h, http_request(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), "2");
    http_client_close(&c);

    /* a half-closed client still gets its answers */
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_send_str(&c, GET("/hello") GET("/defer?ms=30&i=1")), "send");
    shutdown(c.fd, SHUT_WR);
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "first");
    CHECK(h, http_read_response(&c, &r, false) && strcmp(r.body, "{\"deferred\":1}") == 0,
          "second");
    CHECK(h, http_closed_by_server(&c), "then closed");
    http_client_close(&c);
}

Test(http, connection_close_and_http10)
{
    struct http_rig h;
    http_rig_run(c_connection_close, NULL, &h);
}

static void c_request_fields(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    static const char req[] = "POST /echo/a%20b%2Fc?x=1%202&y=%zz#frag HTTP/1.1\r\n"
                              "authorization: Bearer s3cret\r\nContent-Length: 11\r\n\r\n"
                              "hello\0world";
    CHECK(h, http_send_all(&c, req, sizeof(req) - 1), "send");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "status %d", r.status);
    CHECK(h, strstr(r.body, "\"method\":\"POST\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"path\":\"/echo/a b/c\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"query\":\"x=1%202&y=%zz\""), "raw query: %s", r.body);
    CHECK(h, strstr(r.body, "\"auth\":\"Bearer s3cret\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"body\":\"hello\\u0000world\",\"body_len\":11"), "%s", r.body);
    /* no Authorization: NULL */
    CHECK(h, http_request(&c, GET("/echo"), &r) && strstr(r.body, "\"auth\":\"-\""), "%s", r.body);
    CHECK(h, strstr(r.body, "\"query\":\"\""), "%s", r.body);
    /* HEAD: headers only, with the length of the body it would have */
    CHECK(h, http_send_str(&c, "HEAD /hello HTTP/1.1\r\n\r\n"), "send");
    CHECK(h, http_read_response(&c, &r, true) && r.status == 200, "head");
    CHECK(h, r.content_length == 17 && r.body_len == 0, "%ld", r.content_length);
    CHECK(h, http_request(&c, GET("/hello"), &r) && r.status == 200, "after HEAD");
    /* Expect: 100-continue gets the interim answer first */
    CHECK(h,
          http_send_str(&c,
                        "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
          "send");
    char interim[26] = {0};
    while (c.len < 25)
        CHECK(h, http_fill(&c), "100 Continue");
    memcpy(interim, c.buf, 25);
    CHECK(h, strcmp(interim, "HTTP/1.1 100 Continue\r\n\r\n") == 0, "%s", interim);
    memmove(c.buf, c.buf + 25, c.len - 25);
    c.len -= 25;
    CHECK(h, http_send_str(&c, "ok") && http_read_response(&c, &r, false), "final");
    CHECK(h, strstr(r.body, "\"body\":\"ok\""), "%s", r.body);
    /* chunked body */
    CHECK(h,
          http_request(&c,
                       "POST /echo HTTP/1.1\r\nTransfer-Encoding: "
                       "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                       &r),
          "chunked");
    CHECK(h, strstr(r.body, "\"body\":\"abcde\""), "%s", r.body);
    http_client_close(&c);
}

/* A request that arrives a byte at a time: every parser callback is split. */
static void c_byte_by_byte(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    static const char req[] = "POST /echo/%41b?x=1 HTTP/1.1\r\nX-Empty:\r\nAuthorization: Bearer "
                              "abc\r\nContent-Length: 3\r\n\r\nxyz";
    CHECK(h, http_client_open(&c, h->port), "connect");
    for (size_t i = 0; i + 1 < sizeof(req); i++) {
        CHECK(h, http_send_all(&c, req + i, 1), "send %zu", i);
        stack_sleep_ms(1);
    }
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "status %d", r.status);
    CHECK(h, strstr(r.body, "\"path\":\"/echo/Ab\",\"query\":\"x=1\",\"auth\":\"Bearer abc\""),
          "%s", r.body);
    CHECK(h, strstr(r.body, "\"body\":\"xyz\""), "%s", r.body);
    http_client_close(&c);
}

Test(http, request_split_into_single_bytes)
{
    struct http_rig h;
    http_rig_run(c_byte_by_byte, NULL, &h);
}

Test(http, request_fields_decoding_head_expect_chunked)
{
    struct http_rig h;
    http_rig_run(c_request_fields, NULL, &h);
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
        cr_assert_eq(patron_http_server_start(&s, &loop, bad[i], http_rig_handler, NULL),
                     PATRON_EINVAL, "%s", bad[i]);
    cr_assert_eq(patron_http_server_start(&s, &loop, NULL, http_rig_handler, NULL), PATRON_EINVAL);
    /* a port in use: EIO, and the half-made handle closes on the next turn */
    struct patron_http_server *a = NULL, *b = NULL;
    cr_assert_eq(patron_http_server_start(&a, &loop, "127.0.0.1:0", http_rig_handler, NULL), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", patron_http_server_port(a));
    cr_assert_eq(patron_http_server_start(&b, &loop, addr, http_rig_handler, NULL), PATRON_EIO);
    cr_assert_null(b);
    patron_http_server_close(a, NULL, NULL);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
