/*
 * Makes a leak fail a Criterion test. Criterion ignores LeakSanitizer's
 * report at a worker's exit, so each suite checks after every test, in its
 * fini, and crashes the worker on a leak — which fails the run.
 *
 * Usage, once per suite name of a test file:  PATRON_LEAK_CHECKED_SUITE(profile);
 */
#ifndef PATRON_TEST_LEAK_CHECK_H
#define PATRON_TEST_LEAK_CHECK_H

#include <criterion/criterion.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
static inline void patron_test_leak_check(void)
{
    if (__lsan_do_recoverable_leak_check())
        abort();
}
#else
static inline void patron_test_leak_check(void) {}
#endif

#define PATRON_LEAK_CHECKED_SUITE(name) TestSuite(name, .fini = patron_test_leak_check)

#endif
