/*
 * The HTTP server over real sockets, at its limits and beyond them: oversize
 * headers and bodies, garbage, clients and servers going away mid-answer,
 * the idle timeout, the connection limit, and a throughput smoke test. The
 * rig is tests/support/http_rig.h; plain requests are in test_http.c.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_rig.h"
#include "stack.h"

/* ---- limits and bad input ------------------------------------------------------ */

static void c_big_headers(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    char *req = malloc(10000);
    int n = snprintf(req, 10000, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', 9000);
    memcpy(req + n + 9000, "\r\n\r\n", 5);
    bool sent = http_send_str(&c, req);
    free(req);
    CHECK(h, sent, "send");
    CHECK(h, http_read_response(&c, &r, false), "a response");
    CHECK(h, r.status == 431, "status %d", r.status);
    CHECK(h, r.conn_close, "Connection: close");
    CHECK(h, strstr(r.body, "\"error\":\"headers_too_large\""), "body %s", r.body);
    CHECK(h, http_closed_by_server(&c), "closed");
    http_client_close(&c);

    /* a long URL counts too */
    CHECK(h, http_client_open(&c, h->port), "connect");
    req = malloc(10000);
    n = snprintf(req, 10000, "GET /");
    memset(req + n, 'u', 8500);
    snprintf(req + n + 8500, 10000 - (size_t)n - 8500, " HTTP/1.1\r\n\r\n");
    sent = http_send_str(&c, req);
    free(req);
    CHECK(h, sent, "send");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 431, "long url: %d", r.status);
    http_client_close(&c);

    /* just under the limit is fine */
    CHECK(h, http_client_open(&c, h->port), "connect");
    req = malloc(10000);
    n = snprintf(req, 10000, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', 7000);
    memcpy(req + n + 7000, "\r\n\r\n", 5);
    sent = http_send_str(&c, req);
    free(req);
    CHECK(h, sent && http_read_response(&c, &r, false) && r.status == 200, "7000: %d", r.status);
    http_client_close(&c);
}

Test(http, oversize_headers_431)
{
    struct http_rig h;
    http_rig_run(c_big_headers, NULL, &h);
}

static void c_big_body(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    /* declared too big: refused before the body is sent */
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_send_str(&c, "POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"), "send");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 413, "declared: %d", r.status);
    CHECK(h, r.conn_close && strstr(r.body, "payload_too_large"), "%s", r.body);
    CHECK(h, http_closed_by_server(&c), "closed");
    http_client_close(&c);

    /* chunked: refused once it grows too big */
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_send_str(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
          "send");
    static char chunk[65536 + 16];
    int n = snprintf(chunk, sizeof(chunk), "10000\r\n");
    memset(chunk + n, 'b', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    bool refused = false;
    for (int i = 0; i < 20 && !refused; i++) /* 20 x 64 KiB > 1 MiB */
        refused = !http_send_all(&c, chunk, (size_t)n + 65536 + 2);
    CHECK(h, http_read_response(&c, &r, false) && r.status == 413, "chunked: %d", r.status);
    http_client_close(&c);

    /* exactly the limit is fine */
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_send_str(&c, "POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n"), "send");
    char *body = malloc(1048576);
    memset(body, 'c', 1048576);
    bool sent = http_send_all(&c, body, 1048576);
    free(body);
    CHECK(h, sent, "send body");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "1 MiB: %d", r.status);
    CHECK(h, strstr(r.body, "\"body_len\":1048576"), "%s", r.body);
    http_client_close(&c);
}

Test(http, oversize_body_413)
{
    struct http_rig h;
    http_rig_run(c_big_body, NULL, &h);
}

static void c_garbage(struct http_rig *h)
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
        struct http_client c;
        struct http_response r;
        CHECK(h, http_client_open(&c, h->port), "connect");
        CHECK(h, http_send_str(&c, inputs[i]), "send %zu", i);
        CHECK(h, http_read_response(&c, &r, false), "input %zu: a response", i);
        CHECK(h, r.status == 400, "input %zu: status %d", i, r.status);
        CHECK(h, r.conn_close && strstr(r.body, "\"error\":\"bad_request\""), "input %zu", i);
        CHECK(h, http_closed_by_server(&c), "input %zu: closed", i);
        http_client_close(&c);
    }
    /* a version we do not speak */
    struct http_client v;
    struct http_response vr;
    CHECK(h, http_client_open(&v, h->port), "connect");
    CHECK(h, http_request(&v, "GET / HTTP/9.9\r\n\r\n", &vr) && vr.status == 505, "%d", vr.status);
    CHECK(h, vr.conn_close && http_closed_by_server(&v), "closed");
    http_client_close(&v);
    /* a good request, then garbage: the first is answered, then 400 */
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_send_str(&c, GET("/hello") "\x01\x02garbage\r\n\r\n"), "send");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 200, "good one first");
    CHECK(h, http_read_response(&c, &r, false) && r.status == 400, "then 400");
    CHECK(h, http_closed_by_server(&c), "closed");
    http_client_close(&c);
}

Test(http, garbage_bytes_400_and_close)
{
    struct http_rig h;
    http_rig_run(c_garbage, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 1, "no garbage reached the handler");
}

static void c_disconnect_during_deferred(struct http_rig *h)
{
    struct http_client c;
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_send_str(&c, GET("/defer?ms=150&i=1")), "send");
    while (atomic_load(&h->deferred_started) == 0)
        stack_sleep_ms(5);
    http_client_close(&c); /* gone before the answer */
    while (atomic_load(&h->deferred_done) == 0)
        stack_sleep_ms(5);
    stack_sleep_ms(100);

    /* and the same while the server closes: the answer comes to a closed connection */
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_send_str(&c, GET("/defer?ms=200&i=2")), "send");
    while (atomic_load(&h->deferred_started) < 2)
        stack_sleep_ms(5);
    http_rig_close_server(h);
    CHECK(h, http_closed_by_server(&c), "closed by the server");
    while (atomic_load(&h->deferred_done) < 2)
        stack_sleep_ms(5);
    http_client_close(&c);
}

Test(http, client_disconnect_during_deferred_response)
{
    struct http_rig h;
    http_rig_run(c_disconnect_during_deferred, NULL, &h);
    cr_assert_eq(atomic_load(&h.deferred_done), 2);
    cr_assert_eq(atomic_load(&h.requests), 2);
}

static void c_close_with_open_connections(struct http_rig *h)
{
    struct http_client cs[3];
    struct http_response r;
    for (int i = 0; i < 3; i++) {
        CHECK(h, http_client_open(&cs[i], h->port), "connect %d", i);
        CHECK(h, http_request(&cs[i], GET("/hello"), &r) && r.status == 200, "request %d", i);
    }
    /* one more with half a request in flight */
    struct http_client half;
    CHECK(h, http_client_open(&half, h->port), "connect");
    CHECK(h, http_send_str(&half, "GET /hello HTTP/1.1\r\nHo"), "send");
    stack_sleep_ms(50);
    http_rig_close_server(h);
    for (int i = 0; i < 3; i++) {
        CHECK(h, http_closed_by_server(&cs[i]), "connection %d closed", i);
        http_client_close(&cs[i]);
    }
    CHECK(h, http_closed_by_server(&half), "half request closed");
    http_client_close(&half);
    while (!atomic_load(&h->server_closed))
        stack_sleep_ms(5);
    struct http_client late;
    CHECK(h, !http_client_open(&late, h->port), "no longer listening");
    http_client_close(&late);
}

Test(http, server_close_with_open_connections)
{
    struct http_rig h;
    http_rig_run(c_close_with_open_connections, NULL, &h);
}

static void c_idle_timeout(struct http_rig *h)
{
    struct http_client c;
    struct http_response r;
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_request(&c, GET("/hello"), &r) && r.status == 200, "request");
    int64_t t0 = stack_now_ms();
    CHECK(h, http_closed_by_server(&c), "closed when idle");
    int64_t took = stack_now_ms() - t0;
    CHECK(h, took >= 150 && took < 2000, "after %lld ms", (long long)took);
    http_client_close(&c);
    /* a deferred answer slower than the timeout is not cut */
    CHECK(h, http_client_open(&c, h->port), "connect");
    CHECK(h, http_request(&c, GET("/defer?ms=500&i=3"), &r) && r.status == 200, "slow answer");
    http_client_close(&c);
}

Test(http, idle_timeout)
{
    struct http_rig h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 16, 200};
    http_rig_run(c_idle_timeout, &l, &h);
}

static void c_max_connections(struct http_rig *h)
{
    struct http_client a, b, c;
    struct http_response r;
    CHECK(h, http_client_open(&a, h->port) && http_client_open(&b, h->port), "connect");
    CHECK(h, http_request(&a, GET("/hello"), &r) && r.status == 200, "a");
    CHECK(h, http_request(&b, GET("/hello"), &r) && r.status == 200, "b");
    CHECK(h, http_client_open(&c, h->port), "connect c (accepted, then closed)");
    CHECK(h, http_closed_by_server(&c), "c refused");
    http_client_close(&c);
    CHECK(h, http_request(&a, GET("/hello"), &r) && r.status == 200, "a still served");
    http_client_close(&a);
    stack_sleep_ms(100); /* a's slot frees up */
    CHECK(h, http_client_open(&c, h->port), "connect c again");
    CHECK(h, http_request(&c, GET("/hello"), &r) && r.status == 200, "c served now");
    http_client_close(&c);
    http_client_close(&b);
}

Test(http, max_connections_refused_beyond)
{
    struct http_rig h;
    struct patron_http_limits l = {PATRON_HTTP_MAX_HEAD, PATRON_HTTP_MAX_BODY, 2, 60000};
    http_rig_run(c_max_connections, &l, &h);
    cr_assert_eq(atomic_load(&h.max_conns_seen), 2);
}

/* Many small requests, pipelined 64 deep on 4 connections: a smoke test of
 * the fast path (the number is logged; sanitizers make it slow). */
static void c_throughput(struct http_rig *h)
{
    enum { CONNS = 4, DEPTH = 64, ROUNDS = 80 };
    static const char one[] = GET("/hello");
    char *batch = malloc(sizeof(one) * DEPTH);
    size_t blen = 0;
    for (int i = 0; i < DEPTH; i++) {
        memcpy(batch + blen, one, sizeof(one) - 1);
        blen += sizeof(one) - 1;
    }
    struct http_client *cs = calloc(CONNS, sizeof(*cs));
    for (int i = 0; i < CONNS; i++)
        CHECK(h, http_client_open(&cs[i], h->port), "connect");
    int64_t t0 = stack_now_ms();
    int done = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < CONNS; i++)
            CHECK(h, http_send_all(&cs[i], batch, blen), "send");
        for (int i = 0; i < CONNS; i++)
            for (int k = 0; k < DEPTH; k++) {
                struct http_response r;
                CHECK(h, http_read_response(&cs[i], &r, false) && r.status == 200, "response");
                done++;
            }
    }
    int64_t ms = stack_now_ms() - t0;
    cr_log_info("http: %d requests in %lld ms (%.0f req/s)", done, (long long)ms,
                ms ? done * 1000.0 / (double)ms : 0.0);
    for (int i = 0; i < CONNS; i++)
        http_client_close(&cs[i]);
    free(cs);
    free(batch);
}

Test(http, throughput_smoke)
{
    struct http_rig h;
    http_rig_run(c_throughput, NULL, &h);
    cr_assert_eq(atomic_load(&h.requests), 4 * 64 * 80);
}
