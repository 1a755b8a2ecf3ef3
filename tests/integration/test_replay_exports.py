"""Online Retail as its other exports write it: the same events, the same profiles.

The data set circulates in more forms than the repository's: UCI's Online
Retail II names the columns differently and, exported through pandas, writes
CustomerID as a float ("17850.0"); spreadsheet exports write InvoiceDate
month first ("12/1/2010 8:26") and their descriptions in Latin-1; some files
begin with a byte-order mark. data/README.md ("Other exports") maps them all
onto the same rows. Rewritten from the subset's first rows into each form:
- patron-replay sends byte for byte the events it sends for the original;
- scripts/expected_profiles.py (the independent oracle) gives the same
  profiles;
- the evaluation's reader (scripts/patron_eval/data.py) keeps the same
  purchase lines, and the item whose description is not UTF-8 loses only
  its title;
- a header of another data set is refused with a clear error.
"""
import csv
import gzip
import io
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import BIN, SRC, SUBSET  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "scripts"))
from patron_eval import data as eval_data  # noqa: E402

ROWS = 4000
OR_II = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]


def month_first(iso):
    """'2010-12-01 08:26:00' -> '12/1/2010 8:26' (the data's seconds are all 00)."""
    day, time_ = iso.split(" ")
    y, m, d = day.split("-")
    h, mi, s = time_.split(":")
    assert s == "00", iso
    return f"{int(m)}/{int(d)}/{y} {int(h)}:{mi}"


def write(path, header, rows, encoding="utf-8", bom=False, gz=False):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    data = (("\ufeff" if bom else "") + buf.getvalue()).encode(encoding)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)


def replay(path, out):
    r = subprocess.run([os.path.join(BIN, "patron-replay"), "online-retail", "--file", path, "--out", out],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, f"patron-replay on {path}: {r.stderr.decode(errors='replace')[-1000:]}"
    with open(out, "rb") as f:
        return f.read()


def oracle(path):
    r = subprocess.run([sys.executable, os.path.join(SRC, "scripts", "expected_profiles.py"), path],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, f"expected_profiles.py on {path}: {r.stderr.decode(errors='replace')[-1000:]}"
    return r.stdout


def main():
    with gzip.open(SUBSET, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:ROWS + 1]
    assert header == eval_data.OR_HEADER
    # the first item with a description gets a pound sign in every row:
    # Latin-1 in one export, UTF-8 in the others
    latin_item = next(r[1] for r in rows if r[2] and r[6])
    rows = [r[:2] + [r[2] + " \u00a3"] + r[3:] if r[1] == latin_item and r[2] else r for r in rows]

    with tempfile.TemporaryDirectory() as d:
        forms = {
            "original": dict(header=header, rows=rows, gz=True),
            "online retail II, float ids": dict(
                header=OR_II, rows=[r[:6] + [r[6] + ".0" if r[6] else ""] + r[7:] for r in rows], gz=True),
            "ISO without seconds, BOM": dict(
                header=header, rows=[r[:4] + [r[4][:16]] + r[5:] for r in rows], bom=True),
            "month first, Latin-1": dict(
                header=header, rows=[r[:4] + [month_first(r[4])] + r[5:] for r in rows], encoding="latin-1"),
        }
        events, profiles, lines, titles = {}, {}, {}, {}
        for name, form in forms.items():
            path = os.path.join(d, name.replace(" ", "_").replace(",", "") + (".csv.gz" if form.get("gz") else ".csv"))
            write(path, form["header"], form["rows"], encoding=form.get("encoding", "utf-8"),
                  bom=form.get("bom", False), gz=form.get("gz", False))
            events[name] = replay(path, os.path.join(d, "out.bin"))
            profiles[name] = oracle(path)
            shop = eval_data.load_online_retail(path, [], name)
            lines[name] = [tuple(x) for x in shop.purchases]
            titles[name] = {k: v.title for k, v in shop.items.items()}
        base = "original"
        assert events[base] and lines[base], "the original gave nothing"
        for name in forms:
            assert events[name] == events[base], f"{name}: patron-replay's events differ from the original's"
            assert profiles[name] == profiles[base], f"{name}: the oracle's profiles differ"
            assert lines[name] == lines[base], f"{name}: the evaluation's purchase lines differ"
        assert titles["month first, Latin-1"][latin_item] == "", "a title that is not UTF-8 must be dropped"
        assert titles["original"][latin_item].endswith("\u00a3")
        others = {k: v for k, v in titles["month first, Latin-1"].items() if k != latin_item}
        assert others == {k: v for k, v in titles["original"].items() if k != latin_item}

        # another data set's header: a clear error, from all three
        bad = os.path.join(d, "other.csv")
        write(bad, ["order_id", "sku", "qty"], [["1", "a", "2"]])
        r = subprocess.run([os.path.join(BIN, "patron-replay"), "online-retail", "--file", bad,
                            "--out", os.path.join(d, "x.bin")], capture_output=True, timeout=60)
        assert r.returncode != 0 and b"header" in r.stderr, r.stderr
        r = subprocess.run([sys.executable, os.path.join(SRC, "scripts", "expected_profiles.py"), bad],
                           capture_output=True, timeout=60)
        assert r.returncode != 0 and b"header" in r.stderr, r.stderr
        try:
            eval_data.load_online_retail(bad, [], "other")
            raise AssertionError("the evaluation read another data set's header")
        except SystemExit as e:
            assert "header" in str(e), e
    print(f"ok: {len(forms)} exports of {ROWS} rows give the same {len(lines[base])} purchase lines, "
          f"events and profiles; another header is refused")


if __name__ == "__main__":
    main()
