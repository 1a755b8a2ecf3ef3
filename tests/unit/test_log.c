#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/log.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(log);

/* The logger writes to a FILE; an in-memory stream keeps the test free of
 * files and file descriptors. */
struct capture {
    char *buf;
    size_t len;
    FILE *f;
    struct patron_log log;
};

static void capture_open(struct capture *c, int level)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    cr_assert_not_null(c->f);
    patron_log_init(&c->log, "patron-test", level, c->f);
}

/* Closes the stream; the caller frees c->buf. */
static void capture_close(struct capture *c)
{
    cr_assert_eq(fclose(c->f), 0);
}

/* Parses the single line in buf; asserts it is one line of valid JSON. */
static json_t *one_line(const char *buf, size_t len)
{
    cr_assert(len > 0, "nothing logged");
    cr_assert_eq(buf[len - 1], '\n', "a line ends with a newline");
    cr_assert_eq(memchr(buf, '\n', len), buf + len - 1, "exactly one line");
    cr_assert_leq(len, PATRON_LOG_LINE_MAX);
    json_error_t e;
    json_t *j = json_loadb(buf, len - 1, 0, &e);
    cr_assert_not_null(j, "invalid JSON (%s): %.*s", e.text, (int)len, buf);
    cr_assert(json_is_object(j));
    return j;
}

Test(log, level_parse_table)
{
    static const struct {
        const char *in;
        int rc, level;
    } cases[] = {
        {"debug", 0, PATRON_LOG_DEBUG}, {"info", 0, PATRON_LOG_INFO},
        {"warn", 0, PATRON_LOG_WARN},   {"warning", 0, PATRON_LOG_WARN},
        {"error", 0, PATRON_LOG_ERROR}, {"INFO", 0, PATRON_LOG_INFO},
        {"", PATRON_EINVAL, 0},         {"trace", PATRON_EINVAL, 0},
        {"info ", PATRON_EINVAL, 0},    {"fatal", PATRON_EINVAL, 0},
        {NULL, PATRON_EINVAL, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        int level = -1;
        int rc = patron_log_level_parse(cases[i].in, &level);
        cr_assert_eq(rc, cases[i].rc, "case %zu", i);
        if (rc == 0)
            cr_assert_eq(level, cases[i].level, "case %zu", i);
    }
    cr_assert_str_eq(patron_log_level_name(PATRON_LOG_WARN), "warn");
    cr_assert_str_eq(patron_log_level_name(42), "unknown");
}

Test(log, line_has_ts_level_svc_msg_and_fields)
{
    struct capture c;
    capture_open(&c, PATRON_LOG_DEBUG);
    patron_log(&c.log, PATRON_LOG_INFO, "partition assigned", "\"partition\":%d,\"topic\":\"%s\"",
               7, "patron.events");
    capture_close(&c);
    json_t *j = one_line(c.buf, c.len);
    cr_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
    cr_assert_str_eq(json_string_value(json_object_get(j, "svc")), "patron-test");
    cr_assert_str_eq(json_string_value(json_object_get(j, "msg")), "partition assigned");
    cr_assert_eq(json_integer_value(json_object_get(j, "partition")), 7);
    cr_assert_str_eq(json_string_value(json_object_get(j, "topic")), "patron.events");
    cr_assert_null(json_object_get(j, "truncated"));
    /* 2026-11-24T19:20:56.123Z */
    const char *ts = json_string_value(json_object_get(j, "ts"));
    cr_assert_not_null(ts);
    cr_assert_eq(strlen(ts), 24, "ts %s", ts);
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < 24; i++) {
        if (shape[i] == 'd')
            cr_assert(ts[i] >= '0' && ts[i] <= '9', "ts %s", ts);
        else
            cr_assert_eq(ts[i], shape[i], "ts %s", ts);
    }
    /* the key order is fixed: ts, level, svc, msg */
    cr_assert(strncmp(c.buf, "{\"ts\":\"", 7) == 0);
    cr_assert_not_null(strstr(c.buf, "\",\"level\":\"info\",\"svc\":\"patron-test\",\"msg\":\""));
    json_decref(j);
    free(c.buf);
}

Test(log, below_level_is_dropped)
{
    struct capture c;
    capture_open(&c, PATRON_LOG_WARN);
    patron_log(&c.log, PATRON_LOG_DEBUG, "no", NULL);
    patron_log(&c.log, PATRON_LOG_INFO, "no", NULL);
    patron_log(&c.log, PATRON_LOG_WARN, "yes", NULL);
    patron_log(&c.log, PATRON_LOG_ERROR, "yes", NULL);
    capture_close(&c);
    size_t lines = 0;
    for (size_t i = 0; i < c.len; i++)
        lines += c.buf[i] == '\n';
    cr_assert_eq(lines, 2);
    cr_assert_null(strstr(c.buf, "\"no\""));
    free(c.buf);
}

Test(log, message_is_escaped)
{
    static const char *const msgs[] = {
        "quote \" backslash \\ slash /",
        "newline\nreturn\rtab\tbell\a",
        "\x01\x02\x1f control",
        "utf-8 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "bad utf-8 \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 \xc0\xaf \xf5\x80\x80\x80",
        "",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(msgs); i++) {
        struct capture c;
        capture_open(&c, PATRON_LOG_DEBUG);
        patron_log(&c.log, PATRON_LOG_ERROR, msgs[i], NULL);
        capture_close(&c);
        json_t *j = one_line(c.buf, c.len);
        const char *msg = json_string_value(json_object_get(j, "msg"));
        cr_assert_not_null(msg, "case %zu", i);
        if (i < 4 || i == 5)
            cr_assert_str_eq(msg, msgs[i], "case %zu round-trips", i);
        else
            cr_assert_not_null(strstr(msg, "\xef\xbf\xbd"), "invalid bytes become U+FFFD");
        json_decref(j);
        free(c.buf);
    }
}

Test(log, every_byte_value_gives_valid_json)
{
    char msg[256];
    for (int i = 1; i < 256; i++)
        msg[i - 1] = (char)i;
    msg[255] = '\0';
    struct capture c;
    capture_open(&c, PATRON_LOG_DEBUG);
    patron_log(&c.log, PATRON_LOG_INFO, msg, NULL);
    capture_close(&c);
    json_t *j = one_line(c.buf, c.len);
    const char *got = json_string_value(json_object_get(j, "msg"));
    cr_assert_eq(memcmp(got, msg, 127), 0, "ASCII survives unchanged");
    json_decref(j);
    free(c.buf);
}

Test(log, long_message_is_cut_and_marked)
{
    size_t n = 3 * PATRON_LOG_LINE_MAX;
    char *msg = malloc(n + 1);
    /* quotes expand to two bytes: the cut must not split an escape */
    for (size_t i = 0; i < n; i++)
        msg[i] = i % 3 == 0 ? '"' : 'x';
    msg[n] = '\0';
    struct capture c;
    capture_open(&c, PATRON_LOG_DEBUG);
    patron_log(&c.log, PATRON_LOG_WARN, msg, "\"k\":1");
    capture_close(&c);
    json_t *j = one_line(c.buf, c.len);
    cr_assert(json_is_true(json_object_get(j, "truncated")));
    const char *got = json_string_value(json_object_get(j, "msg"));
    cr_assert_gt(strlen(got), PATRON_LOG_LINE_MAX / 2, "most of the room goes to the message");
    cr_assert_eq(strncmp(got, msg, strlen(got)), 0, "a prefix of the message");
    json_decref(j);
    free(c.buf);
    free(msg);
}

Test(log, long_message_with_multibyte_is_cut_between_characters)
{
    size_t n = 2 * PATRON_LOG_LINE_MAX;
    char *msg = malloc(n + 1);
    for (size_t i = 0; i + 1 < n; i += 2) {
        msg[i] = (char)0xc3; /* é */
        msg[i + 1] = (char)0xa9;
    }
    msg[n] = '\0';
    for (size_t shift = 0; shift < 3; shift++) {
        struct capture c;
        capture_open(&c, PATRON_LOG_DEBUG);
        /* a service name of varying length moves the cut point */
        c.log.service = shift == 0 ? "a" : shift == 1 ? "ab" : "abc";
        patron_log(&c.log, PATRON_LOG_INFO, msg, NULL);
        capture_close(&c);
        json_t *j = one_line(c.buf, c.len);
        cr_assert(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);
        free(c.buf);
    }
    free(msg);
}

Test(log, fields_that_do_not_fit_are_dropped_whole)
{
    size_t n = PATRON_LOG_LINE_MAX;
    char *big = malloc(n + 1);
    memset(big, 'v', n);
    big[n] = '\0';
    struct capture c;
    capture_open(&c, PATRON_LOG_DEBUG);
    patron_log(&c.log, PATRON_LOG_INFO, "short", "\"big\":\"%s\"", big);
    capture_close(&c);
    json_t *j = one_line(c.buf, c.len);
    cr_assert_str_eq(json_string_value(json_object_get(j, "msg")), "short");
    cr_assert_null(json_object_get(j, "big"));
    cr_assert(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(c.buf);
    free(big);
}

Test(log, null_msg_and_null_out)
{
    struct capture c;
    capture_open(&c, PATRON_LOG_DEBUG);
    patron_log(&c.log, PATRON_LOG_INFO, NULL, NULL);
    capture_close(&c);
    json_t *j = one_line(c.buf, c.len);
    cr_assert_str_eq(json_string_value(json_object_get(j, "msg")), "");
    json_decref(j);
    free(c.buf);
    struct patron_log quiet;
    patron_log_init(&quiet, "x", PATRON_LOG_DEBUG, NULL);
    patron_log(&quiet, PATRON_LOG_ERROR, "goes nowhere", NULL); /* must not crash */
}

Test(log, json_escape_table)
{
    static const struct {
        const char *in;
        size_t cap;
        const char *out;
        size_t consumed;
    } cases[] = {
        {"plain", 64, "plain", 5},
        {"a\"b\\c", 64, "a\\\"b\\\\c", 5},
        {"\n\r\t\b\f", 64, "\\n\\r\\t\\b\\f", 5},
        {"\x01\x1f", 64, "\\u0001\\u001f", 2},
        {"\x7f", 64, "\x7f", 1},
        {"\xff", 64, "\\ufffd", 1},
        {"\xc3\xa9", 64, "\xc3\xa9", 2},
        {"\xc3", 64, "\\ufffd", 1},                                  /* truncated sequence */
        {"\xc0\xaf", 64, "\\ufffd\\ufffd", 2},                       /* overlong */
        {"\xed\xa0\x80", 64, "\\ufffd\\ufffd\\ufffd", 3},            /* surrogate */
        {"\xf4\x90\x80\x80", 64, "\\ufffd\\ufffd\\ufffd\\ufffd", 4}, /* > U+10FFFF */
        /* cuts: never inside an escape or a character */
        {"abc", 3, "ab", 2},
        {"a\"b", 3, "a", 1},
        {"a\"b", 4, "a\\\"", 2},
        {"\xc3\xa9", 2, "", 0},
        {"x\xc3\xa9", 3, "x", 1},
        {"\x01", 6, "", 0},
        {"\x01", 7, "\\u0001", 1},
        {"abc", 1, "", 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        char out[64];
        memset(out, '#', sizeof(out));
        size_t consumed = 99;
        size_t n =
            patron_json_escape_n(out, cases[i].cap, cases[i].in, strlen(cases[i].in), &consumed);
        cr_assert_str_eq(out, cases[i].out, "case %zu", i);
        cr_assert_eq(n, strlen(cases[i].out), "case %zu", i);
        cr_assert_eq(consumed, cases[i].consumed, "case %zu", i);
        if (cases[i].cap < sizeof(out))
            cr_assert_eq(out[cases[i].cap], '#', "case %zu: wrote beyond cap", i);
    }
    char one = 'z';
    cr_assert_eq(patron_json_escape_n(&one, 0, "abc", 3, NULL), 0);
    cr_assert_eq(one, 'z', "cap 0 writes nothing");
    char out[16];
    cr_assert_eq(patron_json_escape(out, sizeof(out), "a\"b"), 4);
    cr_assert_str_eq(out, "a\\\"b");
    /* bytes after a NUL are input too when a length is given */
    cr_assert_eq(patron_json_escape_n(out, sizeof(out), "a\0b", 3, NULL), 8);
    cr_assert_str_eq(out, "a\\u0000b");
}
