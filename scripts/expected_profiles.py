#!/usr/bin/python3
"""The independent oracle: the profiles a replay of the Online Retail CSV must yield.

    expected_profiles.py FILE.csv[.gz] [--out FILE] [--stats] [--limit N]
    expected_profiles.py --from-events EVENTS.bin [--out FILE] [--stats]

Implements data/README.md's mapping (rows -> events) and docs/contracts/profile.md's profile
semantics from their text, with the standard library only: exact decimals,
Europe/London through zoneinfo. Prints JSON {customer_id: {"orders",
"net_spend_cents", "points", "tier", "last_purchase_ms", "f", "m"}}, keys
sorted. --from-events computes the same from a file of length-prefixed events
(uint32 big-endian length + patron.v1.Event bytes, what `patron-replay ...
--out` writes) with a protobuf decoder of its own, so the C tool's events can
be compared with the CSV. --stats prints counts on stderr.

Identity (data/README.md "Derived identity"): a customer who first came as
an anonymous visitor is one customer all the same: its guest purchase is one
of its orders, as the CSV says. From the CSV nothing changes; from events,
an Identify names the customer of an anonymous id, and every event of that id
(before or after the Identify in the file: a merge takes what came before)
is the customer's. Events of a visitor never identified belong to no
customer and are only counted (--stats).
"""
import argparse
import csv
import datetime
import decimal
import gzip
import io
import json
import re
import struct
import sys
import zoneinfo

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]
# The same columns as UCI's Online Retail II names them (data/README.md, "Other exports").
HEADER_II = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price",
             "Customer ID", "Country"]
# InvoiceDate besides "YYYY-MM-DD HH:MM:SS": ISO without seconds, and a
# spreadsheet's month-first "M/D/YYYY H:MM[:SS]".
ISO_MINUTES = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2})", re.ASCII)
MONTH_FIRST = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?",
                         re.ASCII)
FLOAT_ID = re.compile(r"([0-9]+)\.0", re.ASCII)
LONDON = zoneinfo.ZoneInfo("Europe/London")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ID_MAX = 64               # bytes, PATRON_ID_MAX
INVOICE_MAX = 40          # bytes: leaves room for "dv-" + invoice + "-" + run + "-" + line
PRICE_INT_DIGITS_MAX = 15  # a larger price is malformed

# docs/contracts/profile.md, default thresholds.
TIER_GOLD_CENTS = 100000
TIER_PLATINUM_CENTS = 500000
F_THRESHOLDS = [(20, 5), (10, 4), (5, 3), (2, 2)]
M_THRESHOLDS = [(500000, 5), (100000, 4), (30000, 3), (10000, 2)]


# --- rows -> events ------------------------------------------------------------

def price_cents(text):
    """UnitPrice text -> cents, half away from zero, exact; None if malformed."""
    body = text[1:] if text.startswith("-") else text
    intpart, dot, frac = body.partition(".")
    if not intpart.isdigit() or not intpart.isascii() or (dot and not (frac.isdigit() and frac.isascii())):
        return None
    if len(intpart) > PRICE_INT_DIGITS_MAX:
        return None
    cents = (decimal.Decimal(text) * 100).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP)
    return int(cents)


def parse_quantity(text):
    body = text[1:] if text.startswith("-") else text
    if not body.isdigit() or not body.isascii():
        return None
    q = int(text)
    # INT32_MIN too: a refund line's quantity is -Quantity, which must fit.
    return q if INT32_MIN < q <= INT32_MAX else None


def london_ms(text):
    """An InvoiceDate, Europe/London local -> UTC epoch ms (fold=0); None if malformed.

    'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD HH:MM' or 'M/D/YYYY H:MM[:SS]' (data/README.md)."""
    parts = None
    if len(text) == 19 and text[4] == "-" and text[7] == "-" and text[10] == " " \
            and text[13] == ":" and text[16] == ":":
        parts = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
        if not all(p.isdigit() and p.isascii() for p in parts):
            return None
        parts = tuple(map(int, parts))
    elif m := ISO_MINUTES.fullmatch(text):
        parts = (*map(int, m.groups()), 0)
    elif m := MONTH_FIRST.fullmatch(text):
        mo, d, y, h, mi, se = m.groups()
        parts = (int(y), int(mo), int(d), int(h), int(mi), int(se or 0))
    if parts is None:
        return None
    try:
        local = datetime.datetime(*parts, tzinfo=LONDON)
    except ValueError:
        return None
    return int(local.timestamp()) * 1000


def customer_id(text):
    """'13085.0' (a spreadsheet's float, in Online Retail II's exports) is '13085'."""
    m = FLOAT_ID.fullmatch(text)
    return m.group(1) if m else text


def text_ok(text):
    """UTF-8 (bytes that were not come through as surrogates) without control bytes."""
    try:
        b = text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(c < 0x20 or c == 0x7F for c in b)


def id_ok(text, max_bytes):
    """Ids become protobuf strings and Kafka keys: not empty, bounded, text_ok."""
    return text_ok(text) and 0 < len(text.encode("utf-8")) <= max_bytes


def category_of(stock_code):
    # data/README.md: the first 3 bytes of StockCode.
    return stock_code.encode("utf-8")[:3].decode("utf-8", "ignore")


def open_text(path):
    # bytes that are not UTF-8 (a Latin-1 export) come through as surrogates
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="surrogateescape",
                                newline="")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def csv_events(path, stats, limit=None):
    """Yields event dicts {"id","customer","ms","kind","value"} in file order."""
    with open_text(path) as f:
        reader = csv.reader(f, strict=True)
        header = next(reader, None)
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]  # a byte-order mark
        if header not in (HEADER, HEADER_II):
            raise SystemExit(f"{path}: unexpected header {header!r}")
        runs_of = {}     # InvoiceNo -> runs seen
        run = None       # the open run: dict
        emitted = 0

        def close(r):
            if r is None:
                return None
            n = runs_of.get(r["invoice"], 0) + 1
            runs_of[r["invoice"]] = n
            eid = "oi-" + r["invoice"] + (f"-{n}" if n > 1 else "")
            if n > 1:
                stats["split_runs"] += 1
            kind = "refund" if r["invoice"].startswith("C") else "purchase"
            value = sum(q * c for q, c in r["lines"])
            return {"id": eid, "customer": r["customer"], "ms": r["ms"], "kind": kind,
                    "value": value, "lines": len(r["lines"])}

        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                stats["rows"] += 1
                stats["skipped_malformed"] += 1
                print(f"{path}: line {reader.line_num}: {e}, skipped", file=sys.stderr)
                continue
            stats["rows"] += 1
            if len(row) != 8:
                stats["skipped_malformed"] += 1
                print(f"{path}: line {reader.line_num}: {len(row)} fields, skipped", file=sys.stderr)
                continue
            invoice, stock, _desc, qty_s, date_s, price_s, customer, _country = row
            customer = customer_id(customer)
            if customer == "":
                stats["skipped_no_customer"] += 1
                continue
            qty, cents, ms = parse_quantity(qty_s), price_cents(price_s), london_ms(date_s)
            if qty is None or cents is None or ms is None or not id_ok(invoice, INVOICE_MAX) \
                    or not id_ok(stock, ID_MAX) or not id_ok(customer, ID_MAX):
                stats["skipped_malformed"] += 1
                print(f"{path}: line {reader.line_num}: malformed row, skipped", file=sys.stderr)
                continue
            if decimal.Decimal(price_s) <= 0 or qty == 0:
                stats["skipped_price_or_qty"] += 1
                continue
            cancel = invoice.startswith("C")
            if (qty < 0) != cancel:
                stats["skipped_wrong_sign"] += 1
                continue
            stats["rows_kept"] += 1
            if run is not None and run["invoice"] == invoice and run["customer"] == customer:
                run["lines"].append((abs(qty), cents))
                continue
            ev = close(run)
            if ev is not None:
                yield ev
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
            run = {"invoice": invoice, "customer": customer, "ms": ms, "lines": [(abs(qty), cents)]}
        ev = close(run)
        if ev is not None and (limit is None or emitted < limit):
            yield ev


# --- length-prefixed protobuf events -> events -----------------------------------

def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf):
    """Yields (field number, wire type, value) of one message; raises ValueError."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ValueError("field 0")
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            if i + 8 > len(buf):
                raise ValueError("truncated fixed64")
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated bytes")
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            if i + 4 > len(buf):
                raise ValueError("truncated fixed32")
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def _signed64(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def _message(buf, spec):
    """Decodes into a dict by spec {num: (name, wire type, kind)}; kind str|int|msg|list."""
    out = {}
    for num, wt, v in _fields(buf):
        if num not in spec:
            continue
        name, want_wt, kind = spec[num]
        if wt != want_wt:
            raise ValueError(f"field {num}: wire type {wt}")
        if kind == "str":
            out[name] = v.decode("utf-8")
        elif kind == "int":
            out[name] = _signed64(v)
        elif kind == "list":
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out


LINE = {1: ("item_id", 2, "str"), 2: ("category", 2, "str"), 3: ("quantity", 0, "int"),
        4: ("unit_price_cents", 0, "int")}
EVENT = {1: ("event_id", 2, "str"), 2: ("customer_id", 2, "str"), 3: ("occurred_at_ms", 0, "int"),
         4: ("anonymous_id", 2, "str")}
KINDS = {10: "view", 11: "cart_add", 12: "cart_remove", 13: "purchase", 14: "refund", 15: "review",
         16: "customer", 17: "consent", 18: "erasure", 19: "identify"}


def decode_event(buf):
    ev = _message(buf, EVENT)
    kind = body = None
    for num, wt, v in _fields(buf):
        if num in KINDS:
            if wt != 2:
                raise ValueError("kind not a message")
            kind, body = KINDS[num], v
    # a visitor's event has an anonymous_id instead of a customer_id; an
    # Identify has both the customer and identify.anonymous_id
    if kind is None or not ev.get("event_id") or not (ev.get("customer_id") or ev.get("anonymous_id")) \
            or (kind == "identify" and not ev.get("customer_id")):
        raise ValueError("contract: no kind, event_id or customer_id")
    out = {"id": ev["event_id"], "customer": ev.get("customer_id", ""), "ms": ev.get("occurred_at_ms", 0),
           "kind": kind, "value": 0}
    if not out["customer"]:
        out["anonymous"] = ev["anonymous_id"]
    if kind == "identify":
        out["anonymous"] = _message(body, {1: ("anonymous_id", 2, "str")}).get("anonymous_id", "")
        if not out["anonymous"]:
            raise ValueError("contract: identify without anonymous_id")
    if kind == "purchase":
        p = _message(body, {1: ("order_id", 2, "str"), 2: ("items", 2, "list")})
        lines = [_message(x, LINE) for x in p.get("items", [])]
        out["value"] = sum(line.get("quantity", 0) * line.get("unit_price_cents", 0) for line in lines)
        out["lines"] = len(lines)
    elif kind == "refund":
        r = _message(body, {1: ("order_id", 2, "str"), 2: ("amount_cents", 0, "int"),
                            3: ("items", 2, "list")})
        lines = [_message(x, LINE) for x in r.get("items", [])]
        amount = r.get("amount_cents", 0)
        if amount == 0:  # event.proto: 0 means the lines' value
            amount = sum(line.get("quantity", 0) * line.get("unit_price_cents", 0) for line in lines)
        out["value"] = amount
        out["lines"] = len(lines)
    elif kind == "review":
        out["points"] = 10
    return out


def file_events(path, stats):
    """The file's events, each visitor's given to the customer an Identify
    names for its anonymous id (wherever the Identify is in the file); a
    visitor never identified is left out."""
    events, owner = list(_file_events(path, stats)), {}
    for ev in events:
        if ev["kind"] == "identify":
            owner.setdefault(ev["anonymous"], ev["customer"])  # the first link stands
    for ev in events:
        if ev["kind"] == "identify":
            continue
        if not ev["customer"]:
            if ev["anonymous"] not in owner:
                stats["visitor_events_unidentified"] += 1
                continue
            stats["visitor_events_merged"] += 1
            ev = dict(ev, customer=owner[ev["anonymous"]])
        yield ev


def _file_events(path, stats):
    seen = set()
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if not head:
                return
            if len(head) != 4:
                raise SystemExit(f"{path}: truncated length prefix")
            (n,) = struct.unpack(">I", head)
            buf = f.read(n)
            if len(buf) != n:
                raise SystemExit(f"{path}: truncated record")
            stats["messages"] += 1
            try:
                ev = decode_event(buf)
            except (ValueError, UnicodeDecodeError):
                stats["undecodable"] += 1
                continue
            if ev["id"] in seen:
                stats["duplicates"] += 1
                continue
            seen.add(ev["id"])
            stats["kind_" + ev["kind"]] += 1
            yield ev


# --- events -> profiles --------------------------------------------------------------

def utc_month(ms):
    d = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    return d.year * 12 + d.month - 1


def score(value, thresholds):
    for limit, s in thresholds:
        if value >= limit:
            return s
    return 1


def profiles(events, stats):
    acc = {}
    for ev in events:
        p = acc.setdefault(ev["customer"], {"orders": 0, "net": 0, "points": 0, "last_purchase": 0,
                                            "last_event": None, "months": {}})
        stats["events"] += 1
        if p["last_event"] is None or ev["ms"] > p["last_event"]:
            p["last_event"] = ev["ms"]
        if ev["kind"] == "purchase":
            stats["purchases"] += 1
            v = ev["value"]
            p["orders"] += 1
            p["net"] += v
            p["points"] += v // 100  # floor; v >= 0
            p["last_purchase"] = max(p["last_purchase"], ev["ms"])
            m = utc_month(ev["ms"])
            p["months"][m] = p["months"].get(m, 0) + v
        elif ev["kind"] == "refund":
            stats["refunds"] += 1
            a = ev["value"]
            p["net"] -= a
            p["points"] -= a // 100  # floor(amount / 100) is taken back
            m = utc_month(ev["ms"])
            p["months"][m] = p["months"].get(m, 0) - a
        elif ev["kind"] == "review":
            p["points"] += 10
    out = {}
    for cid in sorted(acc):
        p = acc[cid]
        last_month = utc_month(p["last_event"])
        window = sum(c for m, c in p["months"].items() if last_month - 11 <= m <= last_month)
        tier = "platinum" if window >= TIER_PLATINUM_CENTS else \
            "gold" if window >= TIER_GOLD_CENTS else "silver"
        out[cid] = {"orders": p["orders"], "net_spend_cents": p["net"], "points": p["points"],
                    "tier": tier,
                    # null for a customer who only ever had refunds, as the API says it
                    "last_purchase_ms": p["last_purchase"] or None,
                    "f": score(p["orders"], F_THRESHOLDS), "m": score(p["net"], M_THRESHOLDS)}
        stats["tier_" + tier] += 1
        stats["net_spend_cents"] += p["net"]
    stats["customers"] = len(out)
    return out


class Stats(dict):
    def __missing__(self, key):
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", help="the Online Retail CSV, .gz or not")
    ap.add_argument("--from-events", metavar="FILE", help="length-prefixed events instead of a CSV")
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    ap.add_argument("--stats", action="store_true", help="print counts on stderr")
    ap.add_argument("--limit", type=int, help="only the first N events (CSV only)")
    args = ap.parse_args()
    if (args.csv is None) == (args.from_events is None):
        ap.error("give a CSV file or --from-events FILE")
    if args.limit is not None and (args.limit < 0 or args.from_events):
        ap.error("--limit N needs N >= 0 and a CSV")

    stats = Stats()
    if args.csv:
        events = csv_events(args.csv, stats, args.limit)
    else:
        events = file_events(args.from_events, stats)
    result = profiles(events, stats)
    text = json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.stats:
        print(json.dumps(dict(sorted(stats.items()))), file=sys.stderr)


if __name__ == "__main__":
    main()
