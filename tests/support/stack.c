/* See stack.h. */
#include "stack.h"

#include "patron/num.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- ports and time ---------------------------------------------------------- */

static struct sockaddr_in loopback(int port)
{
    return (struct sockaddr_in){.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

static bool can_bind(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = loopback(port);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int stack_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = loopback(0);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof a;
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

int stack_free_port_pair(int offset)
{
    for (int tries = 0; tries < 1000; tries++) {
        int port = stack_free_port();
        if (port + offset <= 65535 && can_bind(port + offset))
            return port;
    }
    cr_assert_fail("no free port p with p + %d free too", offset);
    return 0;
}

bool stack_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = loopback(port);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

void stack_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t stack_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the loop -------------------------------------------------------------------- */

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

bool stack_run_until(uv_loop_t *loop, stack_pred_fn pred, void *ud, int timeout_ms)
{
    uv_timer_t tick;
    cr_assert_eq(uv_timer_init(loop, &tick), 0);
    cr_assert_eq(uv_timer_start(&tick, tick_cb, 5, 5), 0);
    uint64_t end = uv_now(loop) + (uint64_t)timeout_ms;
    while (!pred(ud) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return pred(ud);
}

static bool flag_set(void *ud)
{
    return *(const bool *)ud;
}

bool stack_run_until_flag(uv_loop_t *loop, const bool *flag, int timeout_ms)
{
    return stack_run_until(loop, flag_set, (void *)flag, timeout_ms);
}

static bool never(void *ud)
{
    (void)ud;
    return false;
}

void stack_run_for(uv_loop_t *loop, int ms)
{
    (void)stack_run_until(loop, never, NULL, ms);
}

/* ---- redis-server ---------------------------------------------------------------- */

#define REDIS_EXTRA_MAX 16

void stack_redis_start(struct stack_redis *s, const char *const *extra)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/patron-redis-XXXXXX");
        cr_assert(mkdtemp(s->dir) != NULL, "mkdtemp: %s", strerror(errno));
        s->own_dir = true;
    }
    if (!s->port)
        s->port = stack_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[14 + REDIS_EXTRA_MAX] = {
        "redis-server", "--port", port,    "--bind", "127.0.0.1",  "--save", "",
        "--appendonly", "no",     "--dir", s->dir,   "--loglevel", "warning"};
    int argc = 13;
    for (int i = 0; extra && extra[i]; i++) {
        cr_assert(i < REDIS_EXTRA_MAX, "more than %d extra redis-server arguments",
                  REDIS_EXTRA_MAX);
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    s->pid = fork();
    cr_assert(s->pid >= 0, "fork: %s", strerror(errno));
    if (s->pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 500 && !stack_port_open(s->port); i++)
        stack_sleep_ms(10);
    cr_assert(stack_port_open(s->port), "redis-server did not start on port %d", s->port);
}

void stack_redis_kill(struct stack_redis *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

void stack_redis_cleanup(struct stack_redis *s)
{
    stack_redis_kill(s);
    if (s->own_dir && s->dir[0] && !stack_remove_tree(s->dir))
        fprintf(stderr, "could not remove %s\n", s->dir);
    s->dir[0] = '\0';
    s->own_dir = false;
}

void stack_redis_cli(char *out, size_t cap, const char *fmt, ...)
{
    char args[1024], cmd[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof args, "redis-cli arguments too long");
    snprintf(cmd, sizeof cmd, "redis-cli %s 2>&1", args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen: %s", strerror(errno));
    size_t got = fread(out, 1, cap - 1, p);
    out[got] = '\0';
    pclose(p);
}

int64_t stack_leading_int(const char *text)
{
    size_t len = text[0] == '-' ? 1 : 0;
    while (text[len] >= '0' && text[len] <= '9')
        len++;
    int64_t v = 0;
    cr_assert_eq(patron_parse_i64(text, len, INT64_MIN, INT64_MAX, &v), 0, "not an integer: '%s'",
                 text);
    return v;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

bool stack_remove_tree(const char *dir)
{
    /* depth first (children before their directory), not following links */
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0;
}
