/*
 * RESP splitting (resp.h): a command formatted by hiredis (as
 * patron_kv_command does) split back into its arguments, and RESP that is
 * not exactly one array of bulk strings refused. hiredis' formatter is the
 * oracle here, the one I/O library a unit test links, for a pure function.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/resp.h"

PATRON_LEAK_CHECKED_SUITE(kv_resp_split);

#define ARGS_MAX 8

static int split(const char *resp, size_t len, const char **argv, size_t *lens, size_t max)
{
    return patron_resp_split(resp, len, argv, lens, max);
}

static int format(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(out, fmt, ap);
    va_end(ap);
    return len;
}

struct want {
    int argc;
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX]; /* 0 with a non-empty argv[i]: strlen */
};

static void expect_args(const char *resp, int len, const struct want *w, const char *what)
{
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    cr_assert_gt(len, 0, "%s: hiredis did not format", what);
    int n = split(resp, (size_t)len, argv, lens, ARGS_MAX);
    cr_assert_eq(n, w->argc, "%s: %d arguments, want %d", what, n, w->argc);
    for (int i = 0; i < n; i++) {
        size_t wl = w->lens[i] ? w->lens[i] : strlen(w->argv[i]);
        cr_expect_eq(lens[i], wl, "%s: argument %d is %zu bytes, want %zu", what, i, lens[i], wl);
        cr_expect(lens[i] == wl && memcmp(argv[i], w->argv[i], wl) == 0, "%s: argument %d differs",
                  what, i);
        /* Arguments point into the buffer, not into copies. */
        cr_expect(argv[i] >= resp && argv[i] + lens[i] <= resp + len, "%s: argument %d outside",
                  what, i);
    }
}

/* %s and %b as patron_redis_command has them: a word per argument, %s a C
 * string, %b bytes with their length (NULs and spaces included). */
Test(kv_resp_split, formats_round_trip)
{
    static const char bin[] = {'a', '\0', ' ', '\r', '\n', 'z'};
    char *resp;
    int len;

    len = format(&resp, "GET %s", "{c:42}");
    expect_args(resp, len, &(struct want){2, {"GET", "{c:42}"}, {0}}, "GET %s");
    redisFreeCommand(resp);

    len = format(&resp, "HDEL %s %b", "{tp:3}:outbox", bin, sizeof bin);
    expect_args(resp, len, &(struct want){3, {"HDEL", "{tp:3}:outbox", bin}, {0, 0, sizeof bin}},
                "HDEL %s %b");
    redisFreeCommand(resp);

    len = format(&resp, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %d", "{tp:0}:due", "1700", 64);
    expect_args(
        resp, len,
        &(struct want){7, {"ZRANGEBYSCORE", "{tp:0}:due", "-inf", "1700", "LIMIT", "0", "64"}, {0}},
        "ZRANGEBYSCORE");
    redisFreeCommand(resp);

    /* A %s with spaces stays one argument; an empty %s is an empty one. */
    len = format(&resp, "SADD %s %s", "a b c", "");
    expect_args(resp, len, &(struct want){3, {"SADD", "a b c", ""}, {0, 0, 0}}, "spaces, empty");
    redisFreeCommand(resp);

    /* Text glued to a conversion is part of the same word. */
    len = format(&resp, "INCR x%sy", "-mid-");
    expect_args(resp, len, &(struct want){2, {"INCR", "x-mid-y"}, {0}}, "glued");
    redisFreeCommand(resp);

    len = format(&resp, "PING");
    expect_args(resp, len, &(struct want){1, {"PING"}, {0}}, "no argument");
    redisFreeCommand(resp);
}

/* Too small a vector: the count comes back, nothing is written. */
Test(kv_resp_split, count_when_vector_too_small)
{
    char *resp;
    int len = format(&resp, "MGET %s %s %s", "{tp:1}:c:a", "{tp:1}:c:b", "{tp:1}:c:c");
    const char *argv[2] = {"untouched", "untouched"};
    size_t lens[2] = {99, 99};
    cr_assert_eq(split(resp, (size_t)len, argv, lens, 2), 4);
    cr_expect_str_eq(argv[0], "untouched");
    cr_expect_eq(lens[1], 99);
    cr_assert_eq(split(resp, (size_t)len, NULL, NULL, 0), 4);
    redisFreeCommand(resp);
}

/* More than fits on the kv's stack: the caller retries with the count. */
Test(kv_resp_split, many_arguments)
{
    enum { N = 1000 };
    const char **in = calloc(N, sizeof *in);
    char(*words)[8] = calloc(N, sizeof *words);
    for (int i = 0; i < N; i++) {
        snprintf(words[i], sizeof words[i], "w%d", i);
        in[i] = words[i];
    }
    char *resp;
    int len = redisFormatCommandArgv(&resp, N, in, NULL);
    cr_assert_gt(len, 0);
    const char **argv = calloc(N, sizeof *argv);
    size_t *lens = calloc(N, sizeof *lens);
    cr_assert_eq(split(resp, (size_t)len, argv, lens, N), N);
    for (int i = 0; i < N; i++)
        cr_expect(lens[i] == strlen(words[i]) && memcmp(argv[i], words[i], lens[i]) == 0, "%d", i);
    redisFreeCommand(resp);
    free(argv);
    free(lens);
    free(words);
    free(in);
}

struct bad_case {
    const char *name;
    const char *resp;
    size_t len; /* 0: strlen */
};

Test(kv_resp_split, malformed_is_refused)
{
    static const char nul_in_header[] = "*1\r\n$\0003\r\nGET\r\n";
    static const struct bad_case cases[] = {
        {"empty", "", 0},
        {"not an array", "$3\r\nGET\r\n", 0},
        {"inline command", "GET x\r\n", 0},
        {"zero elements", "*0\r\n", 0},
        {"negative count", "*-1\r\n", 0},
        {"no count digits", "*\r\n$3\r\nGET\r\n", 0},
        {"count without CRLF", "*1", 0},
        {"count with LF only", "*1\n$3\r\nGET\r\n", 0},
        {"missing element", "*2\r\n$3\r\nGET\r\n", 0},
        {"element not bulk", "*1\r\n+GET\r\n", 0},
        {"negative bulk", "*1\r\n$-1\r\n", 0},
        {"bulk longer than buffer", "*1\r\n$30\r\nGET\r\n", 0},
        {"bulk shorter than data", "*1\r\n$2\r\nGET\r\n", 0},
        {"bulk without CRLF", "*1\r\n$3\r\nGET", 0},
        {"bulk with wrong terminator", "*1\r\n$3\r\nGETxx", 0},
        {"trailing bytes", "*1\r\n$3\r\nGET\r\nX", 0},
        {"two commands", "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 0},
        {"count overflows", "*99999999999999999999999\r\n", 0},
        {"count above the maximum", "*1048577\r\n", 0},
        {"bulk length overflows", "*1\r\n$18446744073709551616\r\nx\r\n", 0},
        {"bulk length huge", "*1\r\n$18446744073709551615\r\nx\r\n", 0},
        {"NUL in a header", nul_in_header, sizeof nul_in_header - 1},
        {"sign in a length", "*1\r\n$+3\r\nGET\r\n", 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct bad_case *c = &cases[i];
        const char *argv[ARGS_MAX];
        size_t lens[ARGS_MAX];
        size_t len = c->len ? c->len : strlen(c->resp);
        cr_expect_eq(split(c->resp, len, argv, lens, ARGS_MAX), PATRON_EINVAL, "%s", c->name);
    }
    cr_expect_eq(split(NULL, 0, NULL, NULL, 0), PATRON_EINVAL, "NULL buffer");
}

/* A length read from the buffer never lets a read run past `len`: every
 * proper prefix of a good command is refused. */
Test(kv_resp_split, every_truncation_is_refused)
{
    char *resp;
    int len = format(&resp, "EVALSHA %s 1 %s %b", "0123456789abcdef", "{clock}", "\0\1\2", 3);
    cr_assert_gt(len, 0);
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    for (int cut = 0; cut < len; cut++) {
        char *copy = malloc((size_t)cut + 1); /* exactly `cut` bytes visible to ASan + 1 */
        memcpy(copy, resp, (size_t)cut);
        cr_expect_eq(split(copy, (size_t)cut, argv, lens, ARGS_MAX), PATRON_EINVAL, "cut at %d",
                     cut);
        free(copy);
    }
    cr_expect_eq(split(resp, (size_t)len, argv, lens, ARGS_MAX), 5);
    redisFreeCommand(resp);
}

/* Garbage bytes: never accepted unless they happen to be a command, and
 * never read out of bounds (ASan watches the exact-size copies). */
Test(kv_resp_split, garbage_bytes)
{
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(round % 64);
        char *buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Mostly RESP's own alphabet, so that parsing gets deep. */
            static const char alphabet[] = "*$\r\n0123456789-+GET";
            buf[i] = (x >> 32) % 4 ? alphabet[(x >> 8) % (sizeof alphabet - 1)] : (char)x;
        }
        if (len)
            buf[0] = '*';
        const char *argv[ARGS_MAX];
        size_t lens[ARGS_MAX];
        int n = split(buf, len, argv, lens, ARGS_MAX);
        cr_expect(n == PATRON_EINVAL || n >= 1, "round %d: %d", round, n);
        for (int i = 0; i < n && i < ARGS_MAX; i++)
            cr_expect(argv[i] >= buf && argv[i] + lens[i] <= buf + len, "round %d arg %d", round,
                      i);
        free(buf);
    }
}
