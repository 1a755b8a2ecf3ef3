#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "patron/strmap.h"

Test(strmap, put_get_replace_delete)
{
    struct patron_strmap m;
    patron_strmap_init(&m);
    int a = 1, b = 2;
    cr_assert_null(patron_strmap_get(&m, "x", 1));
    cr_assert_null(patron_strmap_put(&m, "x", 1, &a));
    cr_assert_eq(patron_strmap_get(&m, "x", 1), &a);
    cr_assert_eq(patron_strmap_put(&m, "x", 1, &b), &a);
    cr_assert_eq(patron_strmap_get(&m, "x", 1), &b);
    cr_assert_eq(m.count, 1);
    cr_assert_eq(patron_strmap_del(&m, "x", 1), &b);
    cr_assert_null(patron_strmap_get(&m, "x", 1));
    cr_assert_null(patron_strmap_del(&m, "x", 1));
    cr_assert_eq(m.count, 0);
    patron_strmap_free(&m);
}

/* Many keys with deletions in between: every survivor stays reachable,
 * which is what backward-shift deletion must preserve. */
Test(strmap, many_keys_with_deletions)
{
    enum { N = 5000 };
    static char keys[N][16];
    struct patron_strmap m;
    patron_strmap_init(&m);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        cr_assert_null(patron_strmap_put(&m, keys[i], strlen(keys[i]), keys[i]));
    }
    for (int i = 0; i < N; i += 3)
        cr_assert_eq(patron_strmap_del(&m, keys[i], strlen(keys[i])), keys[i]);
    for (int i = 0; i < N; i++) {
        void *v = patron_strmap_get(&m, keys[i], strlen(keys[i]));
        if (i % 3 == 0)
            cr_assert_null(v, "key %d", i);
        else
            cr_assert_eq(v, keys[i], "key %d", i);
    }
    cr_assert_eq(m.count, N - (N + 2) / 3);
    patron_strmap_free(&m);
}

Test(strmap, keys_are_bytes_not_c_strings)
{
    struct patron_strmap m;
    patron_strmap_init(&m);
    int a = 1, b = 2;
    cr_assert_null(patron_strmap_put(&m, "ab\0c", 4, &a));
    cr_assert_null(patron_strmap_put(&m, "ab\0d", 4, &b));
    cr_assert_eq(patron_strmap_get(&m, "ab\0c", 4), &a);
    cr_assert_eq(patron_strmap_get(&m, "ab\0d", 4), &b);
    cr_assert_null(patron_strmap_get(&m, "ab", 2));
    patron_strmap_free(&m);
}
