/*
 * The HTTP server's insides, shared by http.c (connections, answers,
 * deadlines, the listener) and http_request.c (parsing and dispatching a
 * request). Not an interface: nothing outside these two files includes it.
 */
#ifndef PATRON_HTTP_CONN_H
#define PATRON_HTTP_CONN_H

#include <http_parser.h>

#include "patron/http.h"

#define READ_BUF_SIZE (16u << 10)
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

enum hdr_kind { HDR_OTHER, HDR_AUTHORIZATION, HDR_COOKIE, HDR_EXPECT };

/* Where the client is, for its deadlines (http.h, "Bounds"):
 *   HEAD (from accept, or from the first byte of a later request)
 *   -> BODY (from the end of the headers) -> HANDLER (no deadline of the
 *   client's) -> answered: WAIT (keep-alive, idle timeout) -> HEAD ... */
enum phase { PH_WAIT, PH_HEAD, PH_BODY, PH_HANDLER };

/* A header value kept for the handler: head[off, off + len), NUL-ended. */
struct captured {
    size_t off, len;
    bool set;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    http_parser parser;
    struct patron_http_server *server; /* NULL once the handles are closed */
    struct conn *prev, *next;
    struct conn *r_prev, *r_next; /* the reserve's, oldest first */
    struct patron_http_response res;
    int handles_open;
    uint64_t last_active; /* uv_now of the last read or completed write */
    bool closing, reading, writing, eof, close_after_write, in_process;
    bool reserve;    /* beyond max_connections: one probe request, then closed */
    bool got_bytes;  /* a byte of the current request was parsed */
    bool out_paused; /* above the output high-water mark: not reading, not parsing */
    enum phase phase;
    uint64_t accepted_at, phase_start; /* uv_now */
    uint64_t out_since; /* uv_now of the output's last progress, or when it began to wait */
    size_t out_queued;  /* libuv's write queue at the last look */

    /* Input: rbuf[rpos, rlen) is received but not parsed yet: bytes that
     * arrived while a request awaits its answer (the parser copies nothing,
     * so they can wait there and move). */
    size_t rpos, rlen;

    /* The request being parsed or answered. head holds the URL, then the
     * Authorization and Cookie values in the order they came, each
     * NUL-terminated; max_head bounds them all (see on_message_begin). */
    char *head;
    size_t head_cap, head_max, head_bytes, head_used, url_len, n_captured;
    struct captured auth, cookie;
    bool url_done, in_value;
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
    uint64_t tick_ms;   /* the shortest timeout: no connection timer is armed longer */
    struct conn *conns; /* every connection with open handles */
    struct conn *reserve_head, *reserve_tail; /* the reserve, not closing, oldest first */
    size_t n_conns;                           /* with handles not yet closed */
    size_t n_live;                            /* not closing: ordinary and reserve */
    size_t n_reserve;                         /* of n_live, in the reserve */
    size_t n_refused;
    bool closing, listener_closed;
    /* The accept burst: `burst` connections accepted this loop turn (the
     * check handle zeroes it after the poll); past the burst one connection
     * is left in libuv (which stops watching the listener) and the idle
     * handle accepts it on the next turn. */
    uv_check_t burst_reset;
    uv_idle_t resume;
    int aux_open; /* of burst_reset and resume, the handles not yet closed */
    size_t burst;
    bool held;
    struct patron_gauge *m_conns, *m_reserve;
    struct patron_counter *m_full, *m_not_probe, *m_evicted, *m_to_head, *m_to_body, *m_to_write;
    void (*on_closed)(void *ud);
    void *closed_ud;
    int port;
    time_t date_sec;
    char date[40];
    size_t date_len;
};

/* http.c */
void http_count(struct patron_counter *m); /* m may be NULL */
void http_out_put(struct outbuf *b, const char *s, size_t n);
bool http_out_allows_input(struct conn *c);
void http_respond_error(struct conn *c, int status);

/* http_request.c: parses and dispatches what rbuf holds, until it is used
 * up, a request waits for its answer or the output is at its high-water
 * mark. */
void http_process(struct conn *c);

#endif
