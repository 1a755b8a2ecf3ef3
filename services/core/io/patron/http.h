/*
 * A small HTTP/1.1 server on libuv + http-parser, for the API and for every
 * service's /healthz, /readyz and /metrics.
 *
 * Keep-alive is the HTTP/1.1 default ("Connection: close" and HTTP/1.0 are
 * honoured); pipelined requests are answered in order, one at a time: while
 * a request awaits its response the connection reads only what fits in its
 * input buffer (16 KiB), and parses it once the response is given. Limits
 * (struct patron_http_limits) answer with a JSON error and close: request
 * line + headers -> 431, body -> 413, malformed -> 400, too slow -> 408.
 * Every response has a Content-Length and goes out with one write per batch
 * of requests.
 *
 * Bounds, so that slow or hostile clients cannot take the server:
 *  - Time. A request's line and headers must arrive within head_timeout_ms
 *    of its first byte (of the accept, for a connection's first request),
 *    its body within body_timeout_ms of the end of its headers; else 408
 *    and the connection closes (a connection that sent nothing is closed
 *    without an answer). Between requests, a keep-alive connection may stay
 *    idle for idle_timeout_ms. While a handler prepares its answer the
 *    client waits as long as it takes.
 *  - Connections. At most max_connections ordinary ones, plus
 *    reserve_connections kept for the probes: beyond max_connections a new
 *    connection is still accepted and read, with a head deadline of
 *    reserve_head_timeout_ms from the accept; a request for /healthz,
 *    /readyz or /metrics is answered (then the connection closes), anything
 *    else gets 503 with "Retry-After: 1" and "Connection: close". With the
 *    reserve full too, the reserve connection that has been sending its
 *    request longest is closed to make room for the new one (a new
 *    connection is closed at once only when every reserve connection is
 *    being answered). So a kubelet probe (a new connection each time, its
 *    request sent at once, 1 s timeout) is answered while thousands of slow
 *    clients hold every ordinary connection and keep the reserve full. At most
 *    PATRON_HTTP_ACCEPT_BURST connections are accepted per loop turn, so
 *    that a flood of connections cannot stall the loop's other work.
 *  - Memory. A connection's unsent output stays below
 *    PATRON_HTTP_OUT_HIGH_WATER plus one answer: above it the connection is
 *    neither read nor parsed (pipelined requests wait in the kernel) until
 *    the output drains below PATRON_HTTP_OUT_LOW_WATER. Output that makes
 *    no progress for write_timeout_ms closes the connection. Input: 16 KiB
 *    of read buffer, max_head and max_body per request.
 *
 * Ownership: the server owns its connections; the handler borrows `req`,
 * whose strings stay valid until the response is given (also when it is
 * deferred), so a deferred handler may keep pointers into it until then.
 *
 * Deferred responses: a handler that cannot answer at once (it waits for
 * Redis) calls patron_http_defer and must later answer exactly once with
 * patron_http_respond*. The handle stays valid until that answer, whatever
 * happens to the client: if the connection was closed in the meantime (client
 * gone, a timeout, server closed), the answer is dropped and the handle
 * freed then. So an answer is never lost and never written to a stranger —
 * and a deferred request that is never answered leaks its connection.
 *
 * Threads: everything runs on the loop's thread, handlers included. The
 * process must ignore SIGPIPE (a client that went away must not kill it).
 */
#ifndef PATRON_HTTP_H
#define PATRON_HTTP_H

#include <uv.h>

#include "patron/common.h"

struct patron_http_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* percent-decoded, no query, e.g. "/v1/items/a b/similar" */
    const char *query;         /* raw (not decoded) query without '?', or "" */
    const char *authorization; /* the Authorization header's value, or NULL */
    const char *cookie;        /* the Cookie header's value (several joined by "; "), or NULL */
    const char *body;          /* NUL-terminated for convenience; may hold NULs */
    size_t body_len;
};

struct patron_http_response;
struct patron_http_server;

/* The answer. content_type NULL: no Content-Type header. The body is copied.
 * A HEAD request gets the headers only. Answering twice is ignored. */
void patron_http_respond(struct patron_http_response *res, int status, const char *content_type,
                         const char *body, size_t len);
/* Same, with `extra_headers` ("Name: value\r\n" lines, or NULL), e.g.
 * "WWW-Authenticate: Bearer\r\n" on a 401. */
void patron_http_respond_ex(struct patron_http_response *res, int status, const char *content_type,
                            const char *extra_headers, const char *body, size_t len);
/* application/json, body = the NUL-terminated `json`. */
void patron_http_respond_json(struct patron_http_response *res, int status, const char *json);
/* Marks the response as given later; returns the handle to answer with
 * (the same pointer). See "Deferred responses" above. */
struct patron_http_response *patron_http_defer(struct patron_http_response *res);

typedef void (*patron_http_handler)(void *ud, const struct patron_http_request *req,
                                    struct patron_http_response *res);

struct patron_http_limits {
    size_t max_head;          /* request line + headers, bytes (431 beyond) */
    size_t max_body;          /* bytes (413 beyond) */
    size_t max_connections;   /* ordinary connections; beyond, the reserve */
    uint64_t idle_timeout_ms; /* a keep-alive connection between requests */
    /* 0 in any field below means its default. */
    uint64_t head_timeout_ms;         /* line + headers, from the first byte (408) */
    uint64_t body_timeout_ms;         /* body, from the end of the headers (408) */
    uint64_t write_timeout_ms;        /* output without progress: closed */
    size_t reserve_connections;       /* beyond max_connections, probes only */
    uint64_t reserve_head_timeout_ms; /* a reserve connection's request, from accept */
};
#define PATRON_HTTP_MAX_HEAD (8u << 10)
#define PATRON_HTTP_MAX_BODY (1u << 20)
#define PATRON_HTTP_MAX_CONNECTIONS 1024u
#define PATRON_HTTP_IDLE_TIMEOUT_MS 60000u
#define PATRON_HTTP_HEAD_TIMEOUT_MS 10000u
#define PATRON_HTTP_BODY_TIMEOUT_MS 30000u
#define PATRON_HTTP_WRITE_TIMEOUT_MS 30000u
#define PATRON_HTTP_RESERVE_CONNECTIONS 32u
#define PATRON_HTTP_RESERVE_HEAD_TIMEOUT_MS 2000u
/* Unsent output of one connection at which reading and parsing stop, and
 * below which they resume. */
#define PATRON_HTTP_OUT_HIGH_WATER (1u << 20)
#define PATRON_HTTP_OUT_LOW_WATER (256u << 10)
/* Connections accepted per loop turn at most; the rest wait in the backlog. */
#define PATRON_HTTP_ACCEPT_BURST 64u

struct patron_metrics;

/* Binds and listens on addr ("host:port", "[v6]:port"; the host an IP
 * literal, port 0 = any free port). PATRON_EINVAL for a bad address,
 * PATRON_EIO when bind/listen fails (the half-made handle is then closed on
 * the loop's next turn, which must still run). Limits start at the defaults. */
int patron_http_server_start(struct patron_http_server **out, uv_loop_t *loop, const char *addr,
                             patron_http_handler h, void *ud) PATRON_MUST_USE;
/* As patron_http_server_start, with SO_REUSEPORT on the listening socket when
 * `shared`: several processes then listen on the same address and the
 * kernel spreads the connections among them (patron-api's workers). */
int patron_http_server_start_shared(struct patron_http_server **out, uv_loop_t *loop,
                                    const char *addr, bool shared, patron_http_handler h,
                                    void *ud) PATRON_MUST_USE;
/* Applies to connections and requests from now on (0 fields: defaults). */
void patron_http_server_set_limits(struct patron_http_server *s,
                                   const struct patron_http_limits *limits);
/* Registers the server's metrics in m (borrowed; it must outlive the
 * server): patron_http_connections{pool="ordinary"|"reserve"} (open now),
 * patron_http_connections_rejected_total{reason="full"} (closed at accept:
 * reserve full and busy), {reason="not_probe"} (a reserve connection asked
 * for something else: 503) and {reason="evicted"} (a reserve connection
 * closed for a newer one), patron_http_timeouts_total{phase="head"|"body"|
 * "write"} (408s, and stuck output closed). Counts from now on. */
void patron_http_server_set_metrics(struct patron_http_server *s, struct patron_metrics *m);
int patron_http_server_port(const struct patron_http_server *s);           /* the bound port */
size_t patron_http_server_connections(const struct patron_http_server *s); /* open now, all */
/* Stops listening and closes every connection at once (answers being written
 * are cut; deferred ones are dropped when given, see above). on_closed (may be
 * NULL) runs on the loop once every handle is closed, after s was freed; s
 * must not be used once this is called. */
void patron_http_server_close(struct patron_http_server *s, void (*on_closed)(void *ud), void *ud);

/* The value of the first `name` in a raw query string ("a=1&b=x%20y"),
 * percent-decoded ('+' is a space), NUL-terminated into out. Returns its
 * length, PATRON_ENOTFOUND if absent, PATRON_ETOOBIG if it does not fit in
 * cap, PATRON_EINVAL for a bad escape or %00. "?flag" has the value "". */
int patron_http_query_param(const char *query, const char *name, char *out,
                            size_t cap) PATRON_MUST_USE;

#endif
