"""The evaluation's Complete Journey reader on the data set's other forms.

The repository's figures use the 84.51 Complete Journey sample as the CRAN
package `completejourney` decodes it (transactions_sample.csv.gz, ISO 8601
times in UTC). The same data circulates as the whole data set
(`transactions`), as plain CSV, and through R's write.csv or a spreadsheet
("2017-01-28 19:06:53", ids and quantities as floats, a byte-order mark).
scripts/patron_eval/data.py reads every one of them into the same shop:
- each form gives the same purchase lines and catalogue, byte for byte;
- rows that cannot be events (bad ids, figures or times) are skipped and
  counted, and a refund or a free line is left out, as in the sample;
- a directory without transactions, transactions without products.csv and
  a file of another data set stop with a message naming what is wrong.
No stack: the reader is pure Python over files written here.
"""
import csv
import gzip
import io
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import SRC  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "scripts"))
from patron_eval import data as eval_data  # noqa: E402

TX_HEADER = ["household_id", "store_id", "basket_id", "product_id", "quantity", "sales_value",
             "retail_disc", "coupon_disc", "coupon_match_disc", "week", "transaction_timestamp"]
PRODUCT_HEADER = ["product_id", "manufacturer_id", "department", "brand", "product_category",
                  "product_type", "package_size"]

# (household, basket, product, quantity, sales_value, time): the sample's form
GOOD = [
    ("2261", "31625220889", "940996", "1", "3.86", "2017-01-28T19:06:53Z"),
    ("2261", "31625220889", "873902", "2", "3.18", "2017-01-28T19:06:53Z"),
    ("2131", "32053127496", "873902", "1", "1.59", "2017-03-01T03:31:57Z"),
    ("2131", "33094127500", "1029743", "3", "7.47", "2017-10-02T12:00:00Z"),
    ("1001", "34000000001", "940996", "1", "3.99", "2017-11-30T23:59:59Z"),
    ("1001", "34000000001", "25671", "1", "2.50", "2017-11-30T23:59:59Z"),
]
LEFT_OUT = [  # parse, and are not purchases (the sample's protocol)
    ("2261", "31625220890", "940996", "0", "0", "2017-02-01T10:00:00Z"),
    ("2261", "31625220891", "940996", "-1", "-3.86", "2017-02-02T10:00:00Z"),
]
HOSTILE = [  # cannot be events: skipped and counted
    ("22\x0161", "31625220892", "940996", "1", "3.86", "2017-02-03T10:00:00Z"),
    ("2261", "31625220893", "", "1", "3.86", "2017-02-03T10:00:00Z"),
    ("2261", "31625220894", "9" * 65, "1", "3.86", "2017-02-03T10:00:00Z"),
    ("2261", "31625220895", "940996", "one", "3.86", "2017-02-03T10:00:00Z"),
    ("2261", "31625220896", "940996", "1.5", "3.86", "2017-02-03T10:00:00Z"),
    ("2261", "31625220897", "940996", "1", "3,86", "2017-02-03T10:00:00Z"),
    ("2261", "31625220898", "940996", "1", "3.86", "28/01/2017 19:06"),
    ("2261", "31625220899", "940996", "1", "3.86", ""),
]
PRODUCTS = [
    ("940996", "69", "GROCERY", "National", "BAKED BREAD/BUNS/ROLLS", "FLUFFY WHITE", "20 OZ"),
    ("873902", "2", "DRUG GM", "Private", "NA", "NA", "NA"),
    ("1029743", "7", "GROCERY", "National", "FLUID MILK PRODUCTS", "FLUID MILK WHITE ONLY", "1 GA"),
    ("25671", "2", "GROCERY", "National", "FRZN ICE", "ICE - CRUSHED/CUBED", "22 LB"),
    ("99999", "2", "GROCERY", "National", "NEVER SOLD", "NEVER SOLD", "1 LB"),
]


def tx_row(household, basket, product, quantity, value, time_):
    return [household, "309", basket, product, quantity, value, "0.43", "0", "0", "5", time_]


def write(path, header, rows, gz, bom=False):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC if gz else csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    text = ("\ufeff" if bom else "") + buf.getvalue()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(text.encode("utf-8", errors="surrogateescape"))


def r_form(row):
    """As R's write.csv or a spreadsheet writes a row: a space for the T and
    no Z, ids and quantity as floats."""
    household, basket, product, quantity, value, time_ = row
    return (household + ".0", basket + ".0", product + ".0", quantity + ".0", value,
            time_.replace("T", " ").removesuffix("Z"))


def iso_form(row):
    """Fractions of a second and an explicit offset."""
    *rest, time_ = row
    return (*rest, time_.removesuffix("Z") + ".000+00:00")


def make(d, name, rows, form=lambda r: r, gz=True, bom=False, products="products.csv.gz"):
    os.makedirs(d, exist_ok=True)
    tx = os.path.join(d, name)
    write(tx, TX_HEADER, [tx_row(*form(r)) for r in rows], gz=name.endswith(".gz"), bom=bom)
    if products:
        write(os.path.join(d, products), PRODUCT_HEADER, PRODUCTS, gz=products.endswith(".gz"))
    return tx


def shop_key(shop):
    return (shop.purchases, sorted(shop.items.items()))


def refused(path):
    try:
        eval_data.load_complete_journey(path)
    except SystemExit as e:
        return str(e)
    raise AssertionError(f"{path} was read")


def main():
    rows = GOOD + LEFT_OUT
    with tempfile.TemporaryDirectory() as root:
        base_tx = make(os.path.join(root, "sample"), "transactions_sample.csv.gz", rows)
        base = eval_data.load_complete_journey(os.path.dirname(base_tx))
        assert base.name == "Complete Journey (sample)", base.name
        assert base.skipped_rows == 0, base.skipped_rows
        assert len(base.purchases) == len(GOOD), base.purchases
        first = base.purchases[0]
        assert first == eval_data.Line("2261", "31625220889", 1485630413000, "940996", 1, 386), first
        second = [l for l in base.purchases if l.item == "873902" and l.customer == "2261"][0]
        assert second.price_cents == 159, second  # 3.18 for 2, per unit
        assert base.items["940996"] == eval_data.Item("FLUFFY WHITE", "BAKED BREAD/BUNS/ROLLS", 392)
        assert base.items["873902"] == eval_data.Item("", "", 159), base.items["873902"]  # NA
        assert "99999" not in base.items  # never sold
        assert eval_data.load_complete_journey(base_tx).purchases == base.purchases  # the file itself

        forms = {
            "the whole data set, gzipped": make(os.path.join(root, "full"), "transactions.csv.gz", rows),
            "plain CSV, plain products": make(os.path.join(root, "plain"), "transactions.csv", rows,
                                              products="products.csv"),
            "R's write.csv": make(os.path.join(root, "r"), "transactions.csv", rows, form=r_form),
            "fractions and an offset": make(os.path.join(root, "iso"), "transactions.csv", rows, form=iso_form),
            "a byte-order mark": make(os.path.join(root, "bom"), "transactions_sample.csv", rows, bom=True),
        }
        for form, tx in forms.items():
            for path in (tx, os.path.dirname(tx)):
                shop = eval_data.load_complete_journey(path)
                assert shop_key(shop) == shop_key(base), f"{form} ({path}): {shop.purchases} {shop.items}"
                assert shop.skipped_rows == 0, (form, shop.skipped_rows)
        full = eval_data.load_complete_journey(os.path.join(root, "full"))
        assert full.name == "Complete Journey (transactions.csv.gz)", full.name

        # hostile rows among good ones: each skipped and counted, the rest kept
        tx = make(os.path.join(root, "hostile"), "transactions.csv", GOOD + HOSTILE + LEFT_OUT)
        shop = eval_data.load_complete_journey(tx)
        assert shop_key(shop) == shop_key(base), shop.purchases
        assert shop.skipped_rows == len(HOSTILE), shop.skipped_rows

        # clear refusals
        empty = os.path.join(root, "empty")
        os.makedirs(empty)
        why = refused(empty)
        assert "transactions_sample.csv.gz" in why and "transactions.csv" in why, why
        lonely = make(os.path.join(root, "lonely"), "transactions.csv.gz", rows, products=None)
        why = refused(lonely)
        assert "products.csv" in why, why
        why = refused(os.path.join(root, "nowhere"))
        assert "no such file" in why, why
        foreign = os.path.join(root, "foreign")
        os.makedirs(foreign)
        write(os.path.join(foreign, "transactions.csv"), ["InvoiceNo", "StockCode"], [["1", "2"]], gz=False)
        write(os.path.join(foreign, "products.csv"), PRODUCT_HEADER, PRODUCTS, gz=False)
        why = refused(foreign)
        assert "not the Complete Journey transactions" in why and "InvoiceNo" in why, why
    print("eval reads Complete Journey's forms: ok")


if __name__ == "__main__":
    main()
