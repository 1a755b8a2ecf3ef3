/*
 * What the C integration tests share to run real processes on loopback: free
 * ports, a libuv loop run until a condition or a deadline, redis-server
 * started in a temporary directory and removed with it, redis-cli's answer.
 * Compiled into every integration test (patron_test_support in CMake).
 *
 * Every function that can fail fails the running Criterion test (cr_assert):
 * a caller never checks a return value for an error. The Python tests, the
 * benchmarks and the demo start their processes with tests/support/harness.py
 * instead (it also starts patron-devkafka and the services).
 */
#ifndef PATRON_TEST_STACK_H
#define PATRON_TEST_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "patron/common.h"

/* ---- ports and time ---------------------------------------------------------- */

/* A loopback TCP port nothing listens on now (the kernel's pick). */
int stack_free_port(void);

/* A free port p whose p + offset is free too (a Redis Cluster node's bus port
 * is its port + 10000). */
int stack_free_port_pair(int offset);

/* True when something accepts a connection on 127.0.0.1:port. */
bool stack_port_open(int port);

void stack_sleep_ms(int ms);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t stack_now_ms(void);

/* ---- the loop -------------------------------------------------------------------- */

typedef bool (*stack_pred_fn)(void *ud);

/* Runs `loop` until pred(ud) is true or timeout_ms have passed (a 5 ms timer
 * keeps the loop turning while nothing else happens); returns pred(ud). The
 * timer is closed before it returns: the loop holds no handle of its own. */
bool stack_run_until(uv_loop_t *loop, stack_pred_fn pred, void *ud, int timeout_ms);

/* stack_run_until on a flag a callback sets. */
bool stack_run_until_flag(uv_loop_t *loop, const bool *flag, int timeout_ms);

/* Runs the loop for `ms`, whatever happens. */
void stack_run_for(uv_loop_t *loop, int ms);

/* ---- redis-server ---------------------------------------------------------------- */

struct stack_redis {
    pid_t pid;     /* 0 while not running */
    int port;      /* chosen by the first start, kept by a restart */
    char dir[128]; /* its --dir; made by the first start unless set before */
    bool own_dir;  /* made by stack_redis_start: removed by stack_redis_cleanup */
};

/* Starts redis-server on s->port (a free one if 0), without persistence, in
 * s->dir (a new temporary directory if empty), and waits until it accepts
 * connections. `extra`: NULL or a NULL-terminated list of more arguments
 * (at most 16). Its output goes to /dev/null. Start it again after
 * stack_redis_kill to restart it on the same port. */
void stack_redis_start(struct stack_redis *s, const char *const *extra);

/* SIGKILL and reap; nothing if not running. */
void stack_redis_kill(struct stack_redis *s);

/* Kills it and removes its directory (with what Redis wrote there) if
 * stack_redis_start made it. */
void stack_redis_cleanup(struct stack_redis *s);

/* Runs `redis-cli ARGS 2>&1` (ARGS a shell fragment made from fmt) and puts
 * its output, cut to cap - 1 bytes, into out. */
void stack_redis_cli(char *out, size_t cap, const char *fmt, ...) PATRON_PRINTF(3, 4);

/* The integer text starts with ("12\n" from redis-cli, "7000@17000" from
 * CLUSTER NODES): an optional '-' and digits, read by patron_parse_i64.
 * Fails the test when text does not start with one. */
int64_t stack_leading_int(const char *text);

/* Removes a directory and everything under it; false if something stayed. */
bool stack_remove_tree(const char *dir);

#endif
