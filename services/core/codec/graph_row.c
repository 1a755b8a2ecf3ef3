/*
 * An item's neighbour list: codec and merge (see graph_row.h).
 *
 * The wire format is protobuf's, written by hand: field 1 (item_ids) one
 * length-delimited record per id, then field 2 (counts) as one packed run
 * of varints. protobuf-c would allocate a string per id on every read, and
 * ingest reads and rewrites hundreds of thousands of rows a second.
 */
#include "patron/graph_row.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

/* Reads a varint at *p (< end); 0 on success, -1 if truncated or over 64 bits. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Skips a field of an unknown number; -1 when it does not fit. */
static int skip_field(const uint8_t **p, const uint8_t *end, unsigned wire)
{
    uint64_t len;
    switch (wire) {
    case WIRE_VARINT:
        return get_varint(p, end, &len);
    case WIRE_I64:
        len = 8;
        break;
    case WIRE_I32:
        len = 4;
        break;
    case WIRE_LEN:
        if (get_varint(p, end, &len))
            return -1;
        break;
    default:
        return -1; /* groups and reserved wire types: not ours */
    }
    if (len > (uint64_t)(end - *p))
        return -1;
    *p += len;
    return 0;
}

/* The end of one occurrence of a repeated varint field: a packed record
 * (as we write them), or a single varint (as proto3 readers must also
 * accept); the caller reads varints from *p up to *stop, at least one. */
static int varint_run(const uint8_t **p, const uint8_t *end, unsigned wire, const uint8_t **stop)
{
    uint64_t flen;
    if (wire == WIRE_VARINT) {
        *stop = end;
        return 0;
    }
    if (get_varint(p, end, &flen) || flen == 0 || flen > (uint64_t)(end - *p))
        return -1;
    *stop = *p + flen;
    return 0;
}

static bool is_varint_field(unsigned wire)
{
    return wire == WIRE_LEN || wire == WIRE_VARINT;
}

int patron_graph_row_decode(const void *value, size_t len, uint64_t *version,
                            struct patron_graph_cell *cells, size_t max, size_t *n,
                            struct patron_graph_marks *marks)
{
    if (!value || len < PATRON_GRAPH_ROW_VERSION_LEN)
        return PATRON_EINVAL;
    const uint8_t *p = value, *end = p + len;
    uint64_t v = 0;
    for (int i = 0; i < PATRON_GRAPH_ROW_VERSION_LEN; i++)
        v = (v << 8) | *p++;
    size_t ids = 0, counts = 0, parts = 0, offsets = 0;
    while (p < end) {
        uint64_t tag, flen, x;
        const uint8_t *stop;
        if (get_varint(&p, end, &tag))
            return PATRON_EINVAL;
        unsigned field = (unsigned)(tag >> 3), wire = (unsigned)(tag & 7);
        if (field == 1 && wire == WIRE_LEN) {
            if (get_varint(&p, end, &flen) || flen > (uint64_t)(end - p))
                return PATRON_EINVAL;
            if (flen == 0 || flen > PATRON_ID_MAX)
                return PATRON_EINVAL;
            if (ids == max)
                return PATRON_ETOOBIG;
            cells[ids].id = (const char *)p;
            cells[ids].id_len = (size_t)flen;
            ids++;
            p += flen;
        } else if (field == 2 && is_varint_field(wire)) {
            if (varint_run(&p, end, wire, &stop))
                return PATRON_EINVAL;
            do {
                if (get_varint(&p, stop, &x) || x == 0)
                    return PATRON_EINVAL;
                if (counts == max)
                    return PATRON_ETOOBIG;
                cells[counts++].count = x;
            } while (wire == WIRE_LEN && p < stop);
        } else if (marks && field == 3 && is_varint_field(wire)) {
            if (varint_run(&p, end, wire, &stop))
                return PATRON_EINVAL;
            do {
                /* ascending and >= 0 (a negative int32 is a 10-byte varint) */
                if (get_varint(&p, stop, &x) || x > INT32_MAX ||
                    (parts && (int64_t)x <= marks->v[parts - 1].partition))
                    return PATRON_EINVAL;
                if (parts == marks->max)
                    return PATRON_ETOOBIG;
                marks->v[parts++].partition = (int32_t)x;
            } while (wire == WIRE_LEN && p < stop);
        } else if (marks && field == 4 && is_varint_field(wire)) {
            if (varint_run(&p, end, wire, &stop))
                return PATRON_EINVAL;
            do {
                if (get_varint(&p, stop, &x) || x > INT64_MAX)
                    return PATRON_EINVAL;
                if (offsets == marks->max)
                    return PATRON_ETOOBIG;
                marks->v[offsets++].offset = (int64_t)x;
            } while (wire == WIRE_LEN && p < stop);
        } else if (field == 0 || skip_field(&p, end, wire)) {
            return PATRON_EINVAL;
        }
    }
    if (ids != counts || parts != offsets)
        return PATRON_EINVAL;
    *version = v;
    *n = ids;
    if (marks)
        marks->n = parts;
    return 0;
}

int64_t patron_graph_marks_get(const struct patron_graph_marks *marks, int32_t partition)
{
    for (size_t i = 0; i < marks->n && marks->v[i].partition <= partition; i++)
        if (marks->v[i].partition == partition)
            return marks->v[i].offset;
    return -1;
}

void patron_graph_marks_raise(struct patron_graph_marks *marks, int32_t partition, int64_t offset)
{
    size_t i = 0;
    while (i < marks->n && marks->v[i].partition < partition)
        i++;
    if (i < marks->n && marks->v[i].partition == partition) {
        if (marks->v[i].offset < offset)
            marks->v[i].offset = offset;
        return;
    }
    if (marks->n == marks->max)
        return;
    memmove(&marks->v[i + 1], &marks->v[i], (marks->n - i) * sizeof(marks->v[0]));
    marks->v[i] = (struct patron_graph_mark){partition, offset};
    marks->n++;
}

/* Strongest first; ties: the greater id first, bytewise, a prefix before
 * its extensions counting as smaller (memcmp order, as Redis sorts members). */
static int cell_before(const struct patron_graph_cell *a, const struct patron_graph_cell *b)
{
    if (a->count != b->count)
        return a->count > b->count;
    size_t m = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, m);
    if (c != 0)
        return c > 0;
    return a->id_len > b->id_len;
}

/* Insertion sort: a merged row is nearly in order (only the cells that grew
 * or arrived move), so this is close to linear. */
static void order_cells(struct patron_graph_cell *cells, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (!cell_before(&cells[i], &cells[i - 1]))
            continue;
        struct patron_graph_cell x = cells[i];
        size_t j = i;
        do {
            cells[j] = cells[j - 1];
            j--;
        } while (j > 0 && cell_before(&x, &cells[j - 1]));
        cells[j] = x;
    }
}

static size_t find_cell(const struct patron_graph_cell *cells, size_t n, const char *id,
                        size_t id_len)
{
    for (size_t i = 0; i < n; i++)
        if (cells[i].id_len == id_len && memcmp(cells[i].id, id, id_len) == 0)
            return i;
    return n;
}

size_t patron_graph_row_merge(struct patron_graph_cell *cells, size_t n, size_t max,
                              const struct patron_graph_cell *inc, size_t n_inc, size_t topk)
{
    for (size_t i = 0; i < n_inc; i++) {
        size_t at = find_cell(cells, n, inc[i].id, inc[i].id_len);
        if (at < n) {
            cells[at].count += inc[i].count;
            continue;
        }
        if (n == max) {
            order_cells(cells, n);
            n = topk; /* max > 2 * topk: the row was over the trim line */
        }
        cells[n++] = inc[i];
    }
    order_cells(cells, n);
    return n > 2 * topk ? topk : n;
}

/* A packed run of varints: tag, length, the varints. */
static size_t packed_size(size_t payload)
{
    return payload ? 1 + varint_size(payload) + payload : 0;
}

/* The payloads of the marks' two packed fields (0 and 0 for none). */
static void marks_payloads(const struct patron_graph_marks *marks, size_t *parts, size_t *offsets)
{
    *parts = *offsets = 0;
    for (size_t i = 0; marks && i < marks->n; i++) {
        *parts += varint_size((uint64_t)marks->v[i].partition);
        *offsets += varint_size((uint64_t)marks->v[i].offset);
    }
}

size_t patron_graph_row_size(const struct patron_graph_cell *cells, size_t n,
                             const struct patron_graph_marks *marks)
{
    size_t size = PATRON_GRAPH_ROW_VERSION_LEN, counts = 0, parts, offsets;
    for (size_t i = 0; i < n; i++) {
        size += 1 + varint_size(cells[i].id_len) + cells[i].id_len;
        counts += varint_size(cells[i].count);
    }
    marks_payloads(marks, &parts, &offsets);
    return size + packed_size(counts) + packed_size(parts) + packed_size(offsets);
}

static uint8_t *put_packed_tag(uint8_t *p, unsigned field, size_t payload)
{
    *p++ = (uint8_t)((field << 3) | WIRE_LEN);
    return put_varint(p, payload);
}

void patron_graph_row_encode(uint64_t version, const struct patron_graph_cell *cells, size_t n,
                             const struct patron_graph_marks *marks, uint8_t *out)
{
    uint8_t *p = out;
    for (int i = PATRON_GRAPH_ROW_VERSION_LEN - 1; i >= 0; i--)
        *p++ = (uint8_t)(version >> (8 * i));
    size_t counts = 0;
    for (size_t i = 0; i < n; i++) {
        *p++ = (1 << 3) | WIRE_LEN;
        p = put_varint(p, cells[i].id_len);
        memcpy(p, cells[i].id, cells[i].id_len);
        p += cells[i].id_len;
        counts += varint_size(cells[i].count);
    }
    if (n) {
        p = put_packed_tag(p, 2, counts);
        for (size_t i = 0; i < n; i++)
            p = put_varint(p, cells[i].count);
    }
    size_t parts, offsets;
    marks_payloads(marks, &parts, &offsets);
    if (!parts)
        return;
    p = put_packed_tag(p, 3, parts);
    for (size_t i = 0; i < marks->n; i++)
        p = put_varint(p, (uint64_t)marks->v[i].partition);
    p = put_packed_tag(p, 4, offsets);
    for (size_t i = 0; i < marks->n; i++)
        p = put_varint(p, (uint64_t)marks->v[i].offset);
}
