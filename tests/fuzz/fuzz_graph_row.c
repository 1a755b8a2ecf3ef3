/*
 * An item's stored neighbour list (version + ItemNeighbours) through
 * patron_graph_row_decode, then the merge and the marks that ingest runs on
 * what it read.
 *
 * Properties: an accepted row has paired, non-empty ids of at most
 * PATRON_ID_MAX bytes inside the value, counts > 0, and ascending
 * non-negative marks; decoding without marks gives the same cells; the
 * re-encoded row decodes to the same cells, marks and version and encodes
 * to the same bytes; a merge of the row's own ids keeps every id once, at
 * most 2 * topk cells after a trim, strongest first; raising marks keeps
 * them ascending and never lowers one.
 */
#include "fuzz.h"
#include "patron/graph_row.h"

static struct patron_graph_cell cells[PATRON_GRAPH_ROW_MAX], cells2[PATRON_GRAPH_ROW_MAX];
static struct patron_graph_cell merged[PATRON_GRAPH_ROW_MAX];
static struct patron_graph_mark mark_room[PATRON_GRAPH_MARKS_MAX],
    mark_room2[PATRON_GRAPH_MARKS_MAX];

static bool strictly_before(const struct patron_graph_cell *a, const struct patron_graph_cell *b)
{
    if (a->count != b->count)
        return a->count > b->count;
    size_t m = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, m);
    return c != 0 ? c > 0 : a->id_len > b->id_len;
}

static void check_marks(const struct patron_graph_marks *m)
{
    FUZZ_CHECK(m->n <= m->max, "%zu marks, room %zu", m->n, m->max);
    for (size_t i = 0; i < m->n; i++) {
        FUZZ_CHECK(m->v[i].partition >= 0 && m->v[i].offset >= 0, "mark %zu negative", i);
        FUZZ_CHECK(i == 0 || m->v[i - 1].partition < m->v[i].partition, "marks not ascending");
    }
}

static void merge_own_ids(size_t n, uint64_t version)
{
    size_t topk = 1 + (size_t)(version % (PATRON_GRAPH_ROW_MAX / 2 - 1));
    memcpy(merged, cells, n * sizeof(*merged));
    /* increments: the row's ids backwards, count 1 (counts stay far from wrapping) */
    static struct patron_graph_cell inc[PATRON_GRAPH_ROW_MAX];
    for (size_t i = 0; i < n; i++)
        inc[i] = (struct patron_graph_cell){cells[n - 1 - i].id, cells[n - 1 - i].id_len, 1};
    size_t m = patron_graph_row_merge(merged, n, PATRON_GRAPH_ROW_MAX, inc, n, topk);
    FUZZ_CHECK(m <= n && m <= PATRON_GRAPH_ROW_MAX, "merge made %zu cells of %zu", m, n);
    FUZZ_CHECK(n > 2 * topk || m == n, "merge of known ids changed the size %zu -> %zu", n, m);
    for (size_t i = 1; i < m; i++)
        FUZZ_CHECK(!strictly_before(&merged[i], &merged[i - 1]), "merged row out of order at %zu",
                   i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct patron_graph_marks marks = {mark_room, 0, PATRON_GRAPH_MARKS_MAX};
    uint64_t version = 0;
    size_t n = 0;
    int rc = patron_graph_row_decode(data, size, &version, cells, PATRON_GRAPH_ROW_MAX, &n, &marks);
    uint64_t v_nomarks = 0;
    size_t n_nomarks = 0;
    int rc_nomarks = patron_graph_row_decode(data, size, &v_nomarks, cells2, PATRON_GRAPH_ROW_MAX,
                                             &n_nomarks, NULL);
    if (rc != 0) {
        FUZZ_CHECK(rc == PATRON_EINVAL || rc == PATRON_ETOOBIG, "decode returned %d", rc);
        return 0;
    }
    /* without marks, fields 3 and 4 are skipped as unknown: never stricter */
    FUZZ_CHECK(rc_nomarks == 0 && v_nomarks == version && n_nomarks == n &&
                   memcmp(cells, cells2, n * sizeof(*cells)) == 0,
               "decoding without marks gave another row (%d)", rc_nomarks);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(cells[i].id_len >= 1 && cells[i].id_len <= PATRON_ID_MAX, "id_len %zu",
                   cells[i].id_len);
        FUZZ_CHECK((const uint8_t *)cells[i].id >= data &&
                       (const uint8_t *)cells[i].id + cells[i].id_len <= data + size,
                   "id outside the value");
        FUZZ_CHECK(cells[i].count > 0, "zero count");
    }
    check_marks(&marks);

    size_t len = patron_graph_row_size(cells, n, &marks);
    uint8_t *first = malloc(len), *second = malloc(len);
    FUZZ_CHECK(first && second, "out of memory");
    patron_graph_row_encode(version, cells, n, &marks, first);
    struct patron_graph_marks marks2 = {mark_room2, 0, PATRON_GRAPH_MARKS_MAX};
    uint64_t version2 = 0;
    size_t n2 = 0;
    rc = patron_graph_row_decode(first, len, &version2, cells2, PATRON_GRAPH_ROW_MAX, &n2, &marks2);
    FUZZ_CHECK(rc == 0 && version2 == version && n2 == n && marks2.n == marks.n,
               "the re-encoded row decodes otherwise (%d)", rc);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(cells2[i].id_len == cells[i].id_len && cells2[i].count == cells[i].count &&
                       memcmp(cells2[i].id, cells[i].id, cells[i].id_len) == 0,
                   "cell %zu changed in the round trip", i);
    FUZZ_CHECK(memcmp(mark_room, mark_room2, marks.n * sizeof(*mark_room)) == 0,
               "marks changed in the round trip");
    FUZZ_CHECK(patron_graph_row_size(cells2, n2, &marks2) == len, "size changed");
    patron_graph_row_encode(version2, cells2, n2, &marks2, second);
    FUZZ_CHECK(memcmp(first, second, len) == 0, "round trip not stable");
    free(first);
    free(second);

    merge_own_ids(n, version);

    /* raise marks from the ids' bytes: partitions and offsets the row suggests */
    for (size_t i = 0; i < n && i < 64; i++) {
        int32_t part = (int32_t)((uint8_t)cells[i].id[0] % 128);
        int64_t off = (int64_t)(cells[i].count & INT64_MAX);
        int64_t before = patron_graph_marks_get(&marks, part);
        patron_graph_marks_raise(&marks, part, off);
        int64_t after = patron_graph_marks_get(&marks, part);
        FUZZ_CHECK(after >= before, "mark of %d lowered", (int)part);
        FUZZ_CHECK(after == -1 ? marks.n == marks.max : after >= off, "mark of %d not raised",
                   (int)part);
        check_marks(&marks);
    }
    return 0;
}
