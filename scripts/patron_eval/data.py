"""The data sets as the evaluation reads them, and the splits of its protocols.

A shop is its kept purchase lines (time order), its refunds (Online Retail
only: the churn section's net spend) and its catalogue. Two readers:

- UCI Online Retail (data/README.md's mapping): a row is kept when it has a
  CustomerID, parses, UnitPrice > 0 and Quantity != 0, with Quantity > 0 in
  a normal invoice (a purchase line) and < 0 in a `C` invoice (a refund
  line). InvoiceDate is Europe/London local time. Category = the first 3
  characters of the StockCode, as patron-replay sends it.
- 84.51 Complete Journey, the transactions sample or the whole data set, in
  the forms load_complete_journey lists: lines with quantity > 0 and
  sales_value > 0 (its README's protocol); a basket is an order; times are
  UTC; products.csv(.gz) gives product_category (the category) and
  product_type (the title).

And a generator, synthetic_shop: a shop of another shape (one item per
order, about 100 orders per customer, no time order worth learning) with
known structure, latent genres.

Two protocols, both counting NEW items only (see temporal_split and
random_holdout).
"""
import collections
import csv
import datetime
import decimal
import gzip
import os
import re
import zlib
from dataclasses import dataclass

import numpy as np

# One kept purchase line. t_ms: UTC epoch milliseconds of its order.
Line = collections.namedtuple("Line", "customer order t_ms item quantity price_cents")
# One kept refund line (Online Retail's C invoices), amount > 0.
Refund = collections.namedtuple("Refund", "customer order t_ms amount_cents")

# The Online Retail mapping's own parsers (data/README.md): the header in
# its forms, InvoiceDate in its forms, CustomerID's float suffix, ids.
from expected_profiles import HEADER as OR_HEADER  # noqa: E402
from expected_profiles import HEADER_II as OR_II_HEADER  # noqa: E402
from expected_profiles import customer_id as or_customer_id  # noqa: E402
from expected_profiles import ID_MAX, INVOICE_MAX, id_ok, london_ms, text_ok  # noqa: E402
CJ_COLUMNS = ("household_id", "basket_id", "product_id", "quantity", "sales_value",
              "transaction_timestamp")


@dataclass
class Item:
    """What patron.catalog says of an item."""
    title: str
    category: str
    price_cents: int
    not_a_product: bool = False


@dataclass
class Shop:
    """A data set: kept purchase lines in time order, refunds, catalogue."""
    name: str                 # for the tables, e.g. "Online Retail (full)"
    kind: str                 # "online-retail", "complete-journey" or "synthetic"
    tz: str                   # the time zone its dates are cut in
    event_prefix: str         # event_id = prefix + order id
    purchases: list
    refunds: list
    items: dict               # item_id -> Item
    skipped_rows: int = 0

    def is_product(self, item):
        """False for postage, fees and the like (data/non_products.txt)."""
        info = self.items.get(item)
        return not (info and info.not_a_product)


@dataclass
class Split:
    """One protocol applied to one shop.

    patron_train: the purchase lines Patron is fed (non-products included,
    as a shop would publish them; the catalogue marks them). train: the
    baselines' training lines (non-products left out). test: customer ->
    the set of new items that count as hits. bought: customer -> the items
    of `train` (excluded from every recommender's answer)."""
    shop: Shop
    protocol: str
    description: str
    patron_train: list
    train: list
    test: dict
    bought: dict


def load_non_products(path):
    """The patterns of data/non_products.txt, compiled to match a whole code."""
    patterns = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            patterns.append(re.compile(line))
    if not patterns:
        raise SystemExit(f"eval: {path}: no pattern")
    return patterns


def matches_any(patterns, code):
    """True when one of the patterns matches the whole code."""
    return any(p.fullmatch(code) for p in patterns)


def cents(text):
    """A decimal amount in currency units to cents, exactly, half away from zero."""
    return int((decimal.Decimal(text) * 100).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


def local_midnight_ms(day, tz):
    """UTC epoch ms of 00:00 local time on `day` ("YYYY-MM-DD") in time zone tz."""
    import zoneinfo
    d = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=zoneinfo.ZoneInfo(tz))
    return int(d.timestamp() * 1000)


def _london_ms_converter():
    """InvoiceDate text (Europe/London, fold=0 as data/README.md says) -> UTC ms, cached;
    ValueError if it is none of the forms."""
    cache = {}

    def convert(text):
        ms = cache.get(text)
        if ms is None:
            ms = cache[text] = london_ms(text)
            if ms is None:
                raise ValueError(f"bad InvoiceDate {text!r}")
        return ms
    return convert


def load_online_retail(path, non_product_patterns, name):
    """Online Retail's kept rows (data/README.md) as purchase and refund lines.

    An order's time is its invoice's first row's time. Titles are an item's
    first non-empty Description, prices the median unit price of its
    purchase lines; an item is not a product when data/non_products.txt says so."""
    to_ms = _london_ms_converter()
    price_cache = {}
    purchases, refunds = [], []
    order_time = {}
    titles, prices = {}, collections.defaultdict(list)
    skipped = 0
    # gzip.open reads a gzip file; a plain CSV is read as it is. Bytes that
    # are not UTF-8 (Latin-1 descriptions in some exports) come through as
    # surrogates and only cost their item its title.
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8", errors="surrogateescape", newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]  # a byte-order mark
        if header is None or header[:7] not in (OR_HEADER[:7], OR_II_HEADER[:7]):
            raise SystemExit(f"eval: {path}: not Online Retail: the header is {header}, not {OR_HEADER} "
                             f"nor {OR_II_HEADER}")
        for row in rows:
            if len(row) != 8:
                skipped += 1
                continue
            invoice, stock, desc, qty, date, price, customer, _country = row
            if not customer:
                continue
            customer = or_customer_id(customer)
            if not (id_ok(invoice, INVOICE_MAX) and id_ok(stock, ID_MAX) and id_ok(customer, ID_MAX)):
                skipped += 1  # as patron-replay: empty, long, not UTF-8 or control bytes
                continue
            try:
                q = int(qty)
                p = price_cache.get(price)
                if p is None:
                    p = price_cache[price] = (decimal.Decimal(price) > 0, cents(price))
                t = to_ms(date)
            except (ValueError, decimal.InvalidOperation):
                skipped += 1
                continue
            positive, pc = p
            if not positive or q == 0:
                continue
            refund = invoice.startswith("C")
            if refund != (q < 0):
                continue
            t = order_time.setdefault((customer, invoice), t)
            if refund:
                refunds.append(Refund(customer, invoice, t, -q * pc))
                continue
            purchases.append(Line(customer, invoice, t, stock, q, pc))
            if desc and stock not in titles and text_ok(desc):  # else no title, as patron-replay
                titles[stock] = desc
            prices[stock].append(pc)
    items = {}
    for stock, ps in prices.items():
        items[stock] = Item(title=titles.get(stock, ""), category=stock[:3],
                            price_cents=int(np.median(ps)),
                            not_a_product=matches_any(non_product_patterns, stock))
    purchases.sort(key=lambda l: l.t_ms)  # stable: file order within a time
    refunds.sort(key=lambda r: r.t_ms)
    return Shop(name=name, kind="online-retail", tz="Europe/London", event_prefix="oi-",
                purchases=purchases, refunds=refunds, items=items, skipped_rows=skipped)


# The transactions file's names in a data set's directory, first found wins:
# the repository's sample, then the whole data set (the CRAN package's
# `transactions`), each gzipped or plain.
CJ_TRANSACTIONS = ("transactions_sample.csv.gz", "transactions_sample.csv",
                   "transactions.csv.gz", "transactions.csv")
CJ_PRODUCTS = ("products.csv.gz", "products.csv")


def _first_file(directory, names):
    """The first of names that is a file in directory, else None."""
    for name in names:
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def complete_journey_paths(path):
    """(transactions, products) from a directory or the transactions file's path;
    products.csv(.gz) sits beside the transactions."""
    if os.path.isdir(path):
        tx = _first_file(path, CJ_TRANSACTIONS)
        if tx is None:
            raise SystemExit(f"eval: --complete-journey {path}: none of {', '.join(CJ_TRANSACTIONS)} there")
    elif os.path.isfile(path):
        tx = path
    else:
        raise SystemExit(f"eval: --complete-journey {path}: no such file or directory")
    products = _first_file(os.path.dirname(tx) or ".", CJ_PRODUCTS)
    if products is None:
        raise SystemExit(f"eval: --complete-journey {path}: products.csv.gz (or products.csv) is "
                         f"missing beside {os.path.basename(tx)}")
    return tx, products


def _open_csv(path):
    """A CSV file, gzipped or plain (told by its first bytes, not its name), as
    text: bytes that are not UTF-8 come through as surrogates; a byte-order
    mark is dropped."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    return opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="")


def _not_na(text):
    """R's missing value (NA, as the CSV writes it) as an empty string."""
    return "" if text in ("NA", None) else text


def cj_time_ms(text):
    """transaction_timestamp -> UTC epoch ms. The sample writes ISO 8601 in UTC
    ("2017-01-28T19:06:53Z"); R's write.csv and spreadsheets write
    "2017-01-28 19:06:53", others add fractions or an offset. A time without
    an offset is UTC (the data set's zone). ValueError if it is none of them."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    d = datetime.datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def _whole(text):
    """A count as its exports write it: "2" or "2.0" (a float column) -> 2;
    ValueError for anything else."""
    v = decimal.Decimal(text)
    if v != v.to_integral_value():
        raise ValueError(f"not a whole quantity {text!r}")
    return int(v)


def _cj_id(text):
    """An id as the exports write it: "2261", or "2261.0" from a float column."""
    return text[:-2] if text.endswith(".0") and text[:-2].isdigit() else text


def load_complete_journey(path):
    """Complete Journey's kept lines (quantity > 0, sales_value > 0): the
    repository's sample or the whole data set, in any of the forms above.

    A basket is an order at its transaction_timestamp (UTC); unit price =
    sales_value / quantity in cents; category = products.csv's
    product_category, title = its product_type (empty when NA). A row whose
    ids are not text Patron accepts (empty, over 64 bytes, control bytes,
    not UTF-8) or whose figures do not parse is skipped and counted."""
    tx_path, products_path = complete_journey_paths(path)
    purchases, prices = [], collections.defaultdict(list)
    skipped = 0
    time_cache = {}
    with _open_csv(tx_path) as f:
        rows = csv.DictReader(f)
        if rows.fieldnames is None or not set(CJ_COLUMNS) <= set(rows.fieldnames):
            raise SystemExit(f"eval: {tx_path}: not the Complete Journey transactions (columns "
                             f"{rows.fieldnames}, not {', '.join(CJ_COLUMNS)})")
        for row in rows:
            try:
                household, basket, product = (_cj_id(row[k] or "") for k in
                                              ("household_id", "basket_id", "product_id"))
                if not (id_ok(household, ID_MAX) and id_ok(basket, INVOICE_MAX) and id_ok(product, ID_MAX)):
                    raise ValueError("id")
                q = _whole(row["quantity"])
                value = decimal.Decimal(row["sales_value"])
                ts = row["transaction_timestamp"]
                t = time_cache.get(ts)
                if t is None:
                    t = time_cache[ts] = cj_time_ms(ts)
            except (ValueError, TypeError, AttributeError, decimal.InvalidOperation):
                skipped += 1
                continue
            if q <= 0 or not value > 0:
                continue
            pc = int((value * 100 / q).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))
            line = Line(household, basket, t, product, q, pc)
            purchases.append(line)
            prices[line.item].append(pc)
    meta = {}
    with _open_csv(products_path) as f:
        for row in csv.DictReader(f):
            pid = _cj_id(row.get("product_id") or "")
            if pid in prices:
                title, category = _not_na(row.get("product_type")), _not_na(row.get("product_category"))
                meta[pid] = (title if text_ok(title) else "", category if text_ok(category) else "")
    items = {}
    for pid, ps in prices.items():
        title, category = meta.get(pid, ("", ""))
        items[pid] = Item(title=title, category=category, price_cents=int(np.median(ps)))
    purchases.sort(key=lambda l: l.t_ms)
    name = "Complete Journey (sample)" if "sample" in os.path.basename(tx_path) else \
        f"Complete Journey ({os.path.basename(tx_path)})"
    return Shop(name=name, kind="complete-journey", tz="UTC", event_prefix="cj-", purchases=purchases,
                refunds=[], items=items, skipped_rows=skipped)


# synthetic_shop's parameters, tuned so that the baselines on its random
# 75/25 holdout land near a held-out benchmark of the same shape (most
# popular 0.231, item-kNN 0.345, SAR 0.334 P@10): docs/eval.md.
SYNTHETIC = {
    "customers": 2000,
    "items": 1500,
    "genres": 30,
    "genre_zipf": 1.6,        # genre g (by rank r) is a favourite with weight 1/r^1.6
    "item_zipf": 1.0,         # within a genre, the item of rank r has weight 1/r
    "taste_shape": 1.3,       # a customer's own liking of each item: Gamma(1.3, 1)
    "popular_share": 0.2,     # share of a customer's orders from the popular-anywhere list
    "popular_zipf": 1.1,      # over every item, rank r has weight 1/r^1.1
    "mean_orders": 100,       # orders per customer: Poisson(100), at least 10
    "min_orders": 10,
    "year": 2020,             # orders uniform over this year (UTC)
}


def synthetic_shop(seed, params=None):
    """A shop with known structure, deterministic from `seed`: latent tastes.

    Items belong to one of `genres` genres (drawn uniformly); within a genre
    their popularity is Zipf-like (rank order at random). Each customer has
    1 to 3 favourite genres, drawn without replacement with weights
    1/rank^genre_zipf, and mixes them with Dirichlet(1) weights; within a
    favourite genre the customer's weight for an item is its Zipf weight
    times a Gamma(taste_shape) liking of their own. A share popular_share
    of the customer's choices comes instead from one popular-anywhere list
    (Zipf over every item). A customer makes max(min_orders,
    Poisson(mean_orders)) orders; each order is ONE line, one item drawn
    from that mixture (so the same item comes back), quantity 1, at the
    item's price; order times are uniform over the year, no trend and no
    time order worth learning. Order ids number the orders in time order.
    Customer ids s00000.., item ids i0000.., categories (genres) g00..;
    no refunds."""
    p = dict(SYNTHETIC, **(params or {}))
    rng = np.random.default_rng([seed, 7])
    n_items, n_genres = p["items"], p["genres"]
    genre = rng.integers(0, n_genres, n_items)
    in_genre = np.zeros(n_items)
    for g in range(n_genres):
        members = rng.permutation(np.flatnonzero(genre == g))
        w = 1.0 / np.arange(1, len(members) + 1) ** p["item_zipf"]
        in_genre[members] = w / w.sum()
    popular = 1.0 / np.arange(1, n_items + 1) ** p["popular_zipf"]
    popular = popular[rng.permutation(n_items)]
    popular /= popular.sum()
    genre_weight = 1.0 / np.arange(1, n_genres + 1) ** p["genre_zipf"]
    genre_weight /= genre_weight.sum()
    price_cents = np.maximum(50, np.round(np.exp(rng.normal(np.log(1500), 0.6, n_items)))).astype(np.int64)
    year_start = int(datetime.datetime(p["year"], 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    year_s = int(datetime.datetime(p["year"] + 1, 1, 1, tzinfo=datetime.timezone.utc).timestamp()) - year_start
    who, what, when = [], [], []
    for c in range(p["customers"]):
        k = int(rng.integers(1, 4))
        favourites = rng.choice(n_genres, size=k, replace=False, p=genre_weight)
        mix = rng.dirichlet(np.ones(k))
        taste = np.zeros(n_items)
        for g, share in zip(favourites, mix):
            q = np.where(genre == g, in_genre, 0.0) * rng.gamma(p["taste_shape"], 1.0, n_items)
            taste += share * q / q.sum()
        taste = (1 - p["popular_share"]) * taste + p["popular_share"] * popular
        n = max(p["min_orders"], int(rng.poisson(p["mean_orders"])))
        who.append(np.full(n, c))
        what.append(rng.choice(n_items, size=n, p=taste / taste.sum()))
        when.append(rng.integers(0, year_s, n))
    who, what, when = np.concatenate(who), np.concatenate(what), np.concatenate(when)
    order = np.lexsort((who, when))  # time order, then customer (stable)
    purchases = [Line(f"s{int(who[n]):05d}", f"{k:07d}", (year_start + int(when[n])) * 1000,
                      f"i{int(what[n]):04d}", 1, int(price_cents[what[n]]))
                 for k, n in enumerate(order.tolist())]
    items = {f"i{j:04d}": Item(title=f"Synthetic item {j:04d} (g{int(genre[j]):02d})",
                               category=f"g{int(genre[j]):02d}", price_cents=int(price_cents[j]))
             for j in range(n_items)}
    return Shop(name="Synthetic (latent tastes)", kind="synthetic", tz="UTC", event_prefix="syn-",
                purchases=purchases, refunds=[], items=items)


def _bought(lines):
    """customer -> set of items over lines."""
    out = collections.defaultdict(set)
    for l in lines:
        out[l.customer].add(l.item)
    return dict(out)


def temporal_split(shop, cut_day, include_non_products=False):
    """Lines before local midnight of cut_day train; for each customer seen in
    training (with a product line), the test set is the products bought on or
    after it that the customer had not bought before and that exist in
    training (the data READMEs' protocol). Non-products are left out of the
    baselines' training and of the test sets unless include_non_products
    (the READMEs' reference figures keep them)."""
    cut = local_midnight_ms(cut_day, shop.tz)
    keep = (lambda l: True) if include_non_products else (lambda l: shop.is_product(l.item))
    patron_train = [l for l in shop.purchases if l.t_ms < cut]
    train = [l for l in patron_train if keep(l)]
    bought = _bought(train)
    universe = {l.item for l in train}
    test = collections.defaultdict(set)
    for l in shop.purchases:
        if (l.t_ms >= cut and keep(l) and l.customer in bought and l.item in universe
                and l.item not in bought[l.customer]):
            test[l.customer].add(l.item)
    desc = (f"purchases before {cut_day} ({shop.tz}) train; test: the new items each "
            f"training customer bought from then on")
    return Split(shop, f"temporal {cut_day}", desc, patron_train, train, dict(test), bought)


def random_holdout(shop, seed, fraction=0.25, min_items=4, include_non_products=False):
    """A per-customer random holdout, no time split.

    A customer qualifies with at least `min_items` distinct products (over
    the whole data set). Of a qualifying customer's n distinct products,
    round(fraction * n) (half up; at least 1) are drawn without replacement
    by numpy's default_rng seeded with [seed, crc32(customer id)] from the
    sorted list (so a customer's draw is the same in the subset and the full
    file). Every purchase line of a held-out (customer, item) leaves
    training; the rest (all the customer's purchases of training items, in
    time order, and everything of customers who do not qualify) trains. The
    test set is the held-out items that exist in training (someone else
    bought them); a customer whose test set is then empty is not tested."""
    keep = (lambda l: True) if include_non_products else (lambda l: shop.is_product(l.item))
    distinct = _bought(l for l in shop.purchases if keep(l))
    held = {}
    for customer in sorted(distinct):
        items = sorted(distinct[customer])
        if len(items) < min_items:
            continue
        k = max(1, int(fraction * len(items) + 0.5))
        rng = np.random.default_rng([seed, zlib.crc32(customer.encode())])
        held[customer] = set(rng.choice(items, size=k, replace=False).tolist())
    patron_train = [l for l in shop.purchases if l.item not in held.get(l.customer, ())]
    train = [l for l in patron_train if keep(l)]
    universe = {l.item for l in train}
    test = {c: items & universe for c, items in held.items() if items & universe}
    desc = (f"per customer with >= {min_items} distinct products, round({fraction:g} n) of them "
            f"held out at random (seed {seed}); everything else trains")
    return Split(shop, f"random {round((1 - fraction) * 100)}/{round(fraction * 100)}", desc,
                 patron_train, train, test, _bought(train))


def orders_of(lines, shop):
    """Lines grouped into orders (customer, order id), in time order:
    [(event_id, customer, t_ms, [Line, ...])]."""
    groups = {}
    for l in lines:
        key = (l.customer, l.order)
        if key not in groups:
            groups[key] = (shop.event_prefix + l.order, l.customer, l.t_ms, [])
        groups[key][3].append(l)
    return sorted(groups.values(), key=lambda o: o[2])
