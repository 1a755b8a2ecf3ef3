#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "patron/graph_row.h"
#include "patron/v1/profile.pb-c.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(graph_row);

#define ROOM (PATRON_GRAPH_ROW_MAX + 1)

/* Parses "a:3,b:1" into cells (ids borrowed from a copy kept in buf). */
static size_t cells_of(const char *spec, char *buf, size_t cap, struct patron_graph_cell *cells)
{
    size_t n = 0;
    snprintf(buf, cap, "%s", spec);
    for (char *p = buf; *p;) {
        char *colon = strchr(p, ':');
        cr_assert(colon);
        char *end;
        unsigned long long c = strtoull(colon + 1, &end, 10);
        cells[n++] = (struct patron_graph_cell){p, (size_t)(colon - p), c};
        p = *end ? end + 1 : end;
    }
    return n;
}

/* Renders cells as "a:3,b:1". */
static void render(const struct patron_graph_cell *cells, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, cap - used, "%s%.*s:%llu", i ? "," : "", (int)cells[i].id_len,
                         cells[i].id, (unsigned long long)cells[i].count);
        cr_assert(w > 0 && (size_t)w < cap - used);
        used += (size_t)w;
    }
}

static const struct {
    const char *name;
    const char *row, *inc;
    size_t topk;
    const char *expect;
} MERGES[] = {
    {"into an empty row", "", "b:1,a:2", 3, "a:2,b:1"},
    {"an existing id gains the count", "a:5,b:4", "b:2", 3, "b:6,a:5"},
    {"a new id goes after stronger ones", "a:5,b:4", "c:4", 3, "a:5,c:4,b:4"},
    {"ties: the greater id first", "", "a:1,c:1,b:1", 3, "c:1,b:1,a:1"},
    {"ties: a prefix after its extension", "", "ab:1,a:1,abc:1", 3, "abc:1,ab:1,a:1"},
    {"repeated increments add up", "", "a:1,a:1,b:1", 3, "a:2,b:1"},
    {"at 2K exactly, no trim", "a:4,b:3,c:2", "d:1", 2, "a:4,b:3,c:2,d:1"},
    {"over 2K, the K strongest stay", "a:4,b:3,c:2,d:1", "e:5", 2, "e:5,a:4"},
    {"a grown cell moves up", "a:4,b:3,c:2,d:1", "d:9", 2, "d:10,a:4,b:3,c:2"},
    {"a grown cell survives the trim", "a:4,b:3,c:2,d:1", "d:9,e:1", 2, "d:10,a:4"},
    {"no increments: order only", "a:1,b:2", "", 3, "b:2,a:1"},
};

Test(graph_row, merge_table)
{
    static struct patron_graph_cell cells[ROOM], inc[64];
    char rb[512], ib[512], got[512];
    for (size_t t = 0; t < sizeof(MERGES) / sizeof(MERGES[0]); t++) {
        size_t n = cells_of(MERGES[t].row, rb, sizeof(rb), cells);
        size_t ni = cells_of(MERGES[t].inc, ib, sizeof(ib), inc);
        n = patron_graph_row_merge(cells, n, ROOM, inc, ni, MERGES[t].topk);
        render(cells, n, got, sizeof(got));
        cr_expect_str_eq(got, MERGES[t].expect, "%s", MERGES[t].name);
    }
}

/* More new ids in one merge than the room: the row is trimmed on the way,
 * never overrun, and ends within 2K. */
Test(graph_row, merge_more_new_ids_than_room)
{
    enum { K = 2, ROOM_SMALL = 2 * K + 1, N_INC = 40 };
    struct patron_graph_cell cells[ROOM_SMALL], inc[N_INC];
    char ids[N_INC][8];
    for (size_t i = 0; i < N_INC; i++) {
        snprintf(ids[i], sizeof(ids[i]), "i%02zu", i);
        inc[i] = (struct patron_graph_cell){ids[i], strlen(ids[i]), i == 7 ? 100 : 1};
    }
    size_t n = patron_graph_row_merge(cells, 0, ROOM_SMALL, inc, N_INC, K);
    cr_assert_leq(n, 2 * K);
    cr_assert_geq(n, 1);
    /* the strong one survives every trim on the way */
    cr_expect_eq(cells[0].count, 100);
    cr_expect_eq(cells[0].id_len, 3);
    cr_expect_eq(memcmp(cells[0].id, "i07", 3), 0);
}

Test(graph_row, round_trip)
{
    static struct patron_graph_cell cells[ROOM], back[ROOM];
    char rb[512], got[512];
    size_t n = cells_of("b:300,a:1,ccc:1", rb, sizeof(rb), cells);
    size_t len = patron_graph_row_size(cells, n, NULL);
    uint8_t buf[256];
    cr_assert_leq(len, sizeof(buf));
    patron_graph_row_encode(0x0102030405060708ull, cells, n, NULL, buf);
    uint64_t version = 0;
    size_t m = 0;
    cr_assert_eq(patron_graph_row_decode(buf, len, &version, back, ROOM, &m, NULL), 0);
    cr_expect_eq(version, 0x0102030405060708ull);
    render(back, m, got, sizeof(got));
    cr_expect_str_eq(got, "b:300,a:1,ccc:1");

    /* an empty row is just its version */
    cr_assert_eq(patron_graph_row_size(cells, 0, NULL), PATRON_GRAPH_ROW_VERSION_LEN);
    patron_graph_row_encode(7, cells, 0, NULL, buf);
    cr_assert_eq(patron_graph_row_decode(buf, 8, &version, back, ROOM, &m, NULL), 0);
    cr_expect_eq(version, 7);
    cr_expect_eq(m, 0);
}

/* What we write is a patron.v1.ItemNeighbours for protobuf-c, and what
 * protobuf-c writes (packed or not) we read. */
Test(graph_row, protobuf_compatible)
{
    static struct patron_graph_cell cells[ROOM], back[ROOM];
    char rb[512], got[512];
    size_t n = cells_of("x:70000,y:2", rb, sizeof(rb), cells);
    uint8_t buf[128];
    size_t len = patron_graph_row_size(cells, n, NULL);
    patron_graph_row_encode(1, cells, n, NULL, buf);
    Patron__V1__ItemNeighbours *m = patron__v1__item_neighbours__unpack(NULL, len - 8, buf + 8);
    cr_assert_not_null(m);
    cr_assert_eq(m->n_item_ids, 2);
    cr_assert_eq(m->n_counts, 2);
    cr_expect_str_eq(m->item_ids[0], "x");
    cr_expect_eq(m->counts[0], 70000);
    cr_expect_str_eq(m->item_ids[1], "y");
    cr_expect_eq(m->counts[1], 2);
    patron__v1__item_neighbours__free_unpacked(m, NULL);

    Patron__V1__ItemNeighbours w = PATRON__V1__ITEM_NEIGHBOURS__INIT;
    char *ids[] = {"p", "q"};
    uint64_t counts[] = {5, 3};
    w.n_item_ids = 2;
    w.item_ids = ids;
    w.n_counts = 2;
    w.counts = counts;
    uint8_t pb[64] = {0, 0, 0, 0, 0, 0, 0, 9};
    size_t plen = patron__v1__item_neighbours__pack(&w, pb + 8);
    uint64_t version;
    size_t got_n;
    cr_assert_eq(patron_graph_row_decode(pb, 8 + plen, &version, back, ROOM, &got_n, NULL), 0);
    render(back, got_n, got, sizeof(got));
    cr_expect_str_eq(got, "p:5,q:3");
    cr_expect_eq(version, 9);
}

static const struct {
    const char *name;
    const char *bytes; /* after the 8-byte version */
    size_t len;
    int expect;
} BAD[] = {
    {"ids without counts",
     "\x0a\x01"
     "a",
     3, PATRON_EINVAL},
    {"counts without ids", "\x12\x01\x05", 3, PATRON_EINVAL},
    {"zero count",
     "\x0a\x01"
     "a"
     "\x12\x01\x00",
     6, PATRON_EINVAL},
    {"empty id",
     "\x0a\x00"
     "\x12\x01\x01",
     5, PATRON_EINVAL},
    {"id longer than the bytes",
     "\x0a\x09"
     "a"
     "\x12\x01\x01",
     6, PATRON_EINVAL},
    {"truncated varint",
     "\x0a\x01"
     "a"
     "\x12\x02\x81",
     6, PATRON_EINVAL},
    {"packed length past the end",
     "\x0a\x01"
     "a"
     "\x12\x05\x01",
     6, PATRON_EINVAL},
    {"field number 0", "\x02\x00", 2, PATRON_EINVAL},
    {"a group wire type", "\x0b", 1, PATRON_EINVAL},
    {"garbage", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11, PATRON_EINVAL},
    {"unknown fields are skipped",
     "\x28\x05"
     "\x0a\x01"
     "a"
     "\x32\x02zz"
     "\x12\x01\x02"
     "\x39"
     "12345678"
     "\x45"
     "1234",
     26, 0},
};

Test(graph_row, bad_bytes)
{
    static struct patron_graph_cell cells[ROOM];
    uint8_t buf[128];
    for (size_t t = 0; t < sizeof(BAD) / sizeof(BAD[0]); t++) {
        memset(buf, 0, 8);
        memcpy(buf + 8, BAD[t].bytes, BAD[t].len);
        uint64_t version = 42;
        size_t n = 99;
        int rc = patron_graph_row_decode(buf, 8 + BAD[t].len, &version, cells, ROOM, &n, NULL);
        cr_expect_eq(rc, BAD[t].expect, "%s: %d", BAD[t].name, rc);
        if (BAD[t].expect == 0) {
            cr_expect_eq(n, 1, "%s", BAD[t].name);
            cr_expect_eq(cells[0].count, 2, "%s", BAD[t].name);
        } else {
            cr_expect_eq(version, 42, "%s: outputs untouched on error", BAD[t].name);
        }
    }
    uint64_t version;
    size_t n;
    cr_expect_eq(patron_graph_row_decode(buf, 7, &version, cells, ROOM, &n, NULL), PATRON_EINVAL,
                 "shorter than a version");
    cr_expect_eq(patron_graph_row_decode(NULL, 0, &version, cells, ROOM, &n, NULL), PATRON_EINVAL);
}

Test(graph_row, too_many_cells_and_long_ids)
{
    static struct patron_graph_cell cells[ROOM];
    static char ids[4][PATRON_ID_MAX + 2];
    struct patron_graph_cell in[3];
    for (size_t i = 0; i < 3; i++) {
        snprintf(ids[i], sizeof(ids[i]), "id%zu", i);
        in[i] = (struct patron_graph_cell){ids[i], strlen(ids[i]), 1};
    }
    uint8_t buf[512];
    size_t len = patron_graph_row_size(in, 3, NULL);
    patron_graph_row_encode(1, in, 3, NULL, buf);
    uint64_t version;
    size_t n;
    cr_expect_eq(patron_graph_row_decode(buf, len, &version, cells, 2, &n, NULL), PATRON_ETOOBIG);
    cr_expect_eq(patron_graph_row_decode(buf, len, &version, cells, 3, &n, NULL), 0);

    /* an id of PATRON_ID_MAX bytes is fine, one more is not */
    memset(ids[3], 'x', PATRON_ID_MAX + 1);
    struct patron_graph_cell longest = {ids[3], PATRON_ID_MAX, 1};
    len = patron_graph_row_size(&longest, 1, NULL);
    cr_assert_leq(len, sizeof(buf));
    patron_graph_row_encode(1, &longest, 1, NULL, buf);
    cr_expect_eq(patron_graph_row_decode(buf, len, &version, cells, ROOM, &n, NULL), 0);
    longest.id_len = PATRON_ID_MAX + 1;
    len = patron_graph_row_size(&longest, 1, NULL);
    cr_assert_leq(len, sizeof(buf));
    patron_graph_row_encode(1, &longest, 1, NULL, buf);
    cr_expect_eq(patron_graph_row_decode(buf, len, &version, cells, ROOM, &n, NULL), PATRON_EINVAL);
}

/* ---- marks: where a row's counts stand in patron.events ----------------- */

#define MARKS_ROOM 8

/* Renders marks as "p@o,p@o". */
static void render_marks(const struct patron_graph_marks *m, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < m->n; i++) {
        int w = snprintf(out + used, cap - used, "%s%d@%lld", i ? "," : "", m->v[i].partition,
                         (long long)m->v[i].offset);
        cr_assert(w > 0 && (size_t)w < cap - used);
        used += (size_t)w;
    }
}

static const struct {
    const char *name;
    size_t room;
    struct {
        int32_t partition;
        int64_t offset;
    } raises[6];
    size_t n_raises;
    const char *expect;
} RAISES[] = {
    {"into none", 4, {{3, 10}}, 1, "3@10"},
    {"ascending by partition", 4, {{5, 1}, {0, 7}, {3, 2}}, 3, "0@7,3@2,5@1"},
    {"a mark only rises", 4, {{1, 9}, {1, 4}, {1, 12}}, 3, "1@12"},
    {"offset 0 is a mark", 4, {{2, 0}}, 1, "2@0"},
    {"room full: a new partition is not marked, known ones still rise",
     2,
     {{1, 1}, {4, 1}, {2, 5}, {4, 8}},
     4,
     "1@1,4@8"},
};

Test(graph_row, marks_raise_and_get)
{
    struct patron_graph_mark v[MARKS_ROOM];
    char got[256];
    for (size_t t = 0; t < sizeof(RAISES) / sizeof(RAISES[0]); t++) {
        struct patron_graph_marks m = {v, 0, RAISES[t].room};
        for (size_t i = 0; i < RAISES[t].n_raises; i++)
            patron_graph_marks_raise(&m, RAISES[t].raises[i].partition, RAISES[t].raises[i].offset);
        render_marks(&m, got, sizeof(got));
        cr_expect_str_eq(got, RAISES[t].expect, "%s", RAISES[t].name);
    }
    struct patron_graph_marks m = {v, 0, MARKS_ROOM};
    cr_expect_eq(patron_graph_marks_get(&m, 0), -1, "nothing counted");
    patron_graph_marks_raise(&m, 2, 40);
    patron_graph_marks_raise(&m, 7, 0);
    cr_expect_eq(patron_graph_marks_get(&m, 2), 40);
    cr_expect_eq(patron_graph_marks_get(&m, 7), 0);
    cr_expect_eq(patron_graph_marks_get(&m, 1), -1, "before the first");
    cr_expect_eq(patron_graph_marks_get(&m, 5), -1, "between two");
    cr_expect_eq(patron_graph_marks_get(&m, 9), -1, "after the last");
}

/* Marks survive the round trip, and are packed fields 3 and 4 of
 * ItemNeighbours for protobuf-c; a reader without room skips them. */
Test(graph_row, marks_round_trip_and_protobuf)
{
    static struct patron_graph_cell cells[ROOM], back[ROOM];
    char rb[64], got[256];
    size_t n = cells_of("a:2,b:1", rb, sizeof(rb), cells);
    struct patron_graph_mark v[MARKS_ROOM], w[MARKS_ROOM];
    struct patron_graph_marks m = {v, 0, MARKS_ROOM}, mb = {w, 0, MARKS_ROOM};
    patron_graph_marks_raise(&m, 0, 5);
    patron_graph_marks_raise(&m, 200, (int64_t)1 << 40);
    uint8_t buf[256];
    size_t len = patron_graph_row_size(cells, n, &m);
    cr_assert_leq(len, sizeof(buf));
    patron_graph_row_encode(3, cells, n, &m, buf);
    cr_assert_gt(len, patron_graph_row_size(cells, n, NULL));

    uint64_t version;
    size_t got_n;
    cr_assert_eq(patron_graph_row_decode(buf, len, &version, back, ROOM, &got_n, &mb), 0);
    render_marks(&mb, got, sizeof(got));
    cr_expect_str_eq(got, "0@5,200@1099511627776");
    cr_expect_eq(got_n, 2);
    cr_assert_eq(patron_graph_row_decode(buf, len, &version, back, ROOM, &got_n, NULL), 0);
    cr_expect_eq(got_n, 2, "marks skipped");

    Patron__V1__ItemNeighbours *pb = patron__v1__item_neighbours__unpack(NULL, len - 8, buf + 8);
    cr_assert_not_null(pb);
    cr_assert_eq(pb->n_partitions, 2);
    cr_assert_eq(pb->n_offsets, 2);
    cr_expect_eq(pb->partitions[1], 200);
    cr_expect_eq(pb->offsets[1], (int64_t)1 << 40);
    patron__v1__item_neighbours__free_unpacked(pb, NULL);

    /* no marks: nothing written for them, an empty set read back */
    len = patron_graph_row_size(cells, n, &mb);
    mb.n = 0;
    cr_expect_eq(patron_graph_row_size(cells, n, &mb), patron_graph_row_size(cells, n, NULL));
    patron_graph_row_encode(3, cells, n, &mb, buf);
    mb.n = 9;
    cr_assert_eq(patron_graph_row_decode(buf, patron_graph_row_size(cells, n, NULL), &version, back,
                                         ROOM, &got_n, &mb),
                 0);
    cr_expect_eq(mb.n, 0);
}

static const struct {
    const char *name;
    const char *bytes; /* after the 8-byte version */
    size_t len;
    size_t room;
    int expect;
    const char *marks; /* when expect == 0 */
} BAD_MARKS[] = {
    {"unpacked, one per record", "\x18\x01\x20\x07\x18\x02\x20\x09", 8, 4, 0, "1@7,2@9"},
    {"partitions without offsets", "\x1a\x01\x01", 3, 4, PATRON_EINVAL, NULL},
    {"offsets without partitions", "\x22\x01\x01", 3, 4, PATRON_EINVAL, NULL},
    {"partitions not ascending", "\x1a\x02\x02\x01\x22\x02\x01\x01", 8, 4, PATRON_EINVAL, NULL},
    {"a partition twice", "\x1a\x02\x02\x02\x22\x02\x01\x01", 8, 4, PATRON_EINVAL, NULL},
    {"a negative partition", "\x1a\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x22\x01\x01", 15, 4,
     PATRON_EINVAL, NULL},
    {"a negative offset", "\x1a\x01\x01\x22\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 15, 4,
     PATRON_EINVAL, NULL},
    {"an empty packed run", "\x1a\x00\x22\x00", 4, 4, PATRON_EINVAL, NULL},
    {"packed run past the end", "\x1a\x05\x01", 3, 4, PATRON_EINVAL, NULL},
    {"more marks than the room", "\x1a\x03\x01\x02\x03\x22\x03\x01\x01\x01", 10, 2, PATRON_ETOOBIG,
     NULL},
};

Test(graph_row, marks_bad_bytes)
{
    static struct patron_graph_cell cells[ROOM];
    struct patron_graph_mark v[MARKS_ROOM];
    uint8_t buf[64];
    char got[128];
    for (size_t t = 0; t < sizeof(BAD_MARKS) / sizeof(BAD_MARKS[0]); t++) {
        memset(buf, 0, 8);
        memcpy(buf + 8, BAD_MARKS[t].bytes, BAD_MARKS[t].len);
        struct patron_graph_marks m = {v, 0, BAD_MARKS[t].room};
        uint64_t version;
        size_t n;
        int rc = patron_graph_row_decode(buf, 8 + BAD_MARKS[t].len, &version, cells, ROOM, &n, &m);
        cr_expect_eq(rc, BAD_MARKS[t].expect, "%s: %d", BAD_MARKS[t].name, rc);
        if (rc == 0) {
            render_marks(&m, got, sizeof(got));
            cr_expect_str_eq(got, BAD_MARKS[t].marks, "%s", BAD_MARKS[t].name);
        }
        /* a reader that does not want the marks skips even bad ones, as long
         * as the wire format holds */
        if (BAD_MARKS[t].expect != PATRON_EINVAL || strstr(BAD_MARKS[t].name, "past the end"))
            continue;
        cr_expect_eq(
            patron_graph_row_decode(buf, 8 + BAD_MARKS[t].len, &version, cells, ROOM, &n, NULL), 0,
            "%s: skipped without room", BAD_MARKS[t].name);
    }
}
