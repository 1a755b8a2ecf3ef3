/*
 * The rig of the HTTP server's integration tests (test_http*.c): the server
 * under test runs on the test's thread, on its own libuv loop, as in a
 * service; a client thread does blocking socket I/O and records what it saw
 * (Criterion's asserts belong to the test's thread), then wakes the loop,
 * which closes everything. The loop must end with no handle left, and
 * LeakSanitizer checks that nothing leaked.
 *
 * The server's routes (http_rig_handler):
 *   /hello            200 {"hello":"world"}
 *   /echo...          200 with method, path, query, authorization and body echoed
 *   /defer?ms=N&i=K   deferred 200 {"deferred":K} after N ms
 *   /defer-now        defers, then answers at once from inside the handler
 *   /silent           neither answers nor defers (the server must answer 500)
 *   anything else     404 with an X-Test: yes header
 */
#ifndef PATRON_TEST_HTTP_RIG_H
#define PATRON_TEST_HTTP_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "patron/http.h"

/* What the client thread asks of the loop (http_rig.cmd, then wake). */
enum http_rig_cmd { HTTP_RIG_NONE, HTTP_RIG_CLOSE_SERVER, HTTP_RIG_DONE };

struct http_rig;
typedef void (*http_rig_client_fn)(struct http_rig *h);

struct http_rig {
    uv_loop_t loop;
    uv_async_t wake;
    struct patron_http_server *srv;
    int port;
    http_rig_client_fn client;
    pthread_t thread;
    _Atomic int cmd;
    _Atomic bool server_closed;
    _Atomic int requests;         /* handler calls */
    _Atomic int deferred_started; /* deferred answers scheduled */
    _Atomic int deferred_done;    /* deferred answers given */
    _Atomic size_t max_conns_seen;
    char fail[512]; /* the client's first failure, "" if none */
};

/* The routes above; ud is the struct http_rig (NULL when never called). */
void http_rig_handler(void *ud, const struct patron_http_request *req,
                      struct patron_http_response *res);

/* Runs `client` in a thread against a fresh server on 127.0.0.1:0 (`limits`
 * NULL keeps the defaults) and asserts, on the test's thread, that the
 * client saw no failure, that the loop closed with no handle left, that
 * every deferred answer was given and that nothing leaked. */
void http_rig_run(http_rig_client_fn client, const struct patron_http_limits *limits,
                  struct http_rig *h);

/* Asks the loop to close the server now (from the client thread). */
void http_rig_close_server(struct http_rig *h);

/* Records the client's first failure (the others are consequences). */
void http_rig_failed(struct http_rig *h, int line, const char *fmt, ...) PATRON_PRINTF(3, 4);

/* A failed check in the client thread: record it and leave the client. */
#define CHECK(h, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            http_rig_failed((h), __LINE__, __VA_ARGS__);                                           \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* ---- the client side: blocking sockets with a 5 s receive timeout ---------------------- */

struct http_client {
    int fd;
    char buf[1 << 16]; /* received, not yet consumed */
    size_t len;
};

struct http_response {
    int status;
    char headers[2048]; /* the header lines, CRLF-separated */
    char body[4096];
    size_t body_len;
    long content_length;
    bool conn_close; /* Connection: close */
};

bool http_client_open(struct http_client *c, int port);
void http_client_close(struct http_client *c);
bool http_send_all(struct http_client *c, const char *data, size_t len);
bool http_send_str(struct http_client *c, const char *s);

/* Reads more into c->buf; false on EOF, error or timeout. */
bool http_fill(struct http_client *c);

/* The value of a header (up to its CRLF), NULL if absent. */
const char *http_header_value(const struct http_response *r, const char *name);

/* One response off the connection (pipelined ones stay buffered). */
bool http_read_response(struct http_client *c, struct http_response *r, bool head_request);

/* True when the server closed the connection (EOF or reset) within 5 s. */
bool http_closed_by_server(struct http_client *c);

/* Sends `raw` and reads one response. */
bool http_request(struct http_client *c, const char *raw, struct http_response *r);

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

#endif
