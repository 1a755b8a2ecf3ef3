#!/usr/bin/python3
"""Makes data/online-retail-subset.csv.gz from the full UCI Online Retail CSV.

    make_subset.py SRC.csv[.gz] DST.csv.gz [--modulus 7]

Keeps the header and every row whose CustomerID is a multiple of the modulus,
byte for byte and in file order (an invoice belongs to one customer, so whole
invoices come along). The output is deterministic: gzip level 9 without a
timestamp or file name, so the same input gives the same bytes.
"""
import argparse
import csv
import gzip
import io
import sys

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def open_text(path):
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def records(f):
    """Yields (raw text, fields) per CSV record; a quoted field may span lines."""
    pending = ""
    for line in f:
        pending += line
        if pending.count('"') % 2:
            continue  # inside quotes: the record goes on
        fields = next(csv.reader([pending]))
        yield pending, fields
        pending = ""
    if pending:
        raise SystemExit("unterminated quoted field at end of file")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--modulus", type=int, default=7)
    args = ap.parse_args()
    if args.modulus < 1:
        ap.error("--modulus must be >= 1")

    out = io.BytesIO()
    rows = 0
    customers = set()
    with open_text(args.src) as f:
        it = records(f)
        raw, fields = next(it)
        if raw.rstrip("\r\n") != HEADER:
            raise SystemExit(f"unexpected header: {raw!r}")
        out.write(raw.encode("utf-8"))
        for raw, fields in it:
            if len(fields) != 8:
                raise SystemExit(f"record {rows + 2}: {len(fields)} fields")
            cid = fields[6]
            if not cid.isdigit() or int(cid) % args.modulus:
                continue
            out.write(raw.encode("utf-8"))
            rows += 1
            customers.add(cid)

    data = gzip.compress(out.getvalue(), compresslevel=9, mtime=0)
    with open(args.dst, "wb") as g:
        g.write(data)
    print(f"{args.dst}: {rows} rows, {len(customers)} customers, {len(data)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
