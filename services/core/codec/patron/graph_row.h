/*
 * An item's neighbour list as stored in Redis ({i:<a>}:co): an 8-byte
 * version, then a patron.v1.ItemNeighbours (profile.proto), strongest
 * neighbour first. Pure: the codec and the merge of a batch's co-occurrence
 * increments, which ingest does itself instead of a ZINCRBY per pair in
 * Redis (the list is read once, merged here, and written back with a
 * compare-and-set of its version).
 *
 * Ownership: a cell's id is borrowed — from the buffer it was decoded from,
 * or from the caller's increments — and lives as long as that does. Nothing
 * here allocates. Safe from any thread.
 */
#ifndef PATRON_GRAPH_ROW_H
#define PATRON_GRAPH_ROW_H

#include "patron/common.h"

/* Cells a row may hold: twice the largest PATRON_GRAPH_TOPK (a row keeps at
 * most 2K between trims). */
#define PATRON_GRAPH_ROW_MAX 2000
#define PATRON_GRAPH_ROW_VERSION_LEN 8

struct patron_graph_cell {
    const char *id; /* borrowed; not NUL-terminated */
    size_t id_len;  /* 1 .. PATRON_ID_MAX */
    uint64_t count; /* > 0 */
};

/* Where a row's counts stand in patron.events: per partition, the offset of
 * the last purchase counted in the row. Merges of one partition's
 * purchases into a row happen in offset order (ingest guarantees it), so a
 * purchase at or before its partition's mark is in the counts already: a
 * replay skips it, and the graph is exactly-once like the profiles. */
#define PATRON_GRAPH_MARKS_MAX 1024

struct patron_graph_mark {
    int32_t partition; /* >= 0 */
    int64_t offset;    /* >= 0 */
};

/* The caller's room for a row's marks: v[0 .. n) ascending by partition,
 * n <= max. */
struct patron_graph_marks {
    struct patron_graph_mark *v;
    size_t n, max;
};

/* Decodes a stored value (version + ItemNeighbours). Writes at most max
 * cells, in stored order, and their number to *n; the version to *version;
 * the marks to *marks, or skips them when marks is NULL (readers that only
 * rank). PATRON_EINVAL when the bytes are not such a value: short, bad wire
 * format, ids and counts not paired, an empty or too long id, a zero count,
 * partitions and offsets not paired, not ascending, or negative;
 * PATRON_ETOOBIG when there are more than max cells or marks->max marks.
 * Unknown fields are skipped, as protobuf readers do. */
int patron_graph_row_decode(const void *value, size_t len, uint64_t *version,
                            struct patron_graph_cell *cells, size_t max, size_t *n,
                            struct patron_graph_marks *marks) PATRON_MUST_USE;

/* The offset marked for a partition, or -1 when none is: nothing of that
 * partition is counted in the row. */
int64_t patron_graph_marks_get(const struct patron_graph_marks *marks, int32_t partition);

/* Marks offset as counted for partition (never lowers a mark). A new
 * partition when the room is full is not marked: its purchases would count
 * again on a replay (at least once), never be lost. */
void patron_graph_marks_raise(struct patron_graph_marks *marks, int32_t partition, int64_t offset);

/* Adds the increments to the row cells[0 .. n) (whose room is max, at least
 * 2 * topk + 1) and returns the new number of cells: an id present gains the
 * count, a new one is added; then the row is ordered strongest first (ties:
 * the greater id, bytewise, first — Redis' ZREVRANGE order), and when it
 * holds more than 2 * topk cells it keeps the topk strongest. Should a
 * batch bring more new ids than the room left, the row is trimmed that way
 * first. topk is 1 .. PATRON_GRAPH_ROW_MAX / 2. */
size_t patron_graph_row_merge(struct patron_graph_cell *cells, size_t n, size_t max,
                              const struct patron_graph_cell *inc, size_t n_inc, size_t topk);

/* The stored value of a row: its size, then the bytes (version first) into
 * out, which has room for patron_graph_row_size(). marks may be NULL (none). */
size_t patron_graph_row_size(const struct patron_graph_cell *cells, size_t n,
                             const struct patron_graph_marks *marks);
void patron_graph_row_encode(uint64_t version, const struct patron_graph_cell *cells, size_t n,
                             const struct patron_graph_marks *marks, uint8_t *out);

#endif
