"""Patron measured through the real pipeline.

A fresh stack per measurement (tests/support/harness.py's Stack): a
real redis-server, the embedded Kafka (patron-devkafka), patron-ingest and
patron-api, both on the event clock (PATRON_CLOCK=event: the API's "now" is
the last event time ingest applied). Training orders become
patron.v1.Event purchases written with Python protobuf (the .proto files
compiled by protoc at run time) into a file of length-prefixed records that
`patron-replay file` produces to patron.events; the catalogue goes to
patron.catalog as ItemUpdates. Then the API is asked over one keep-alive
HTTP connection.
"""
import collections
import http.client
import json
import os
import struct
import subprocess
import sys
import time
import urllib.parse

TOPICS = {"patron.events": 8, "patron.catalog": 3, "patron.profile-updates": 8, "patron.dlq": 1}
CLOCK_SETTLE_S = 1.5  # the API's event clock follows ingest's within 250 ms; idle marks within 1 s


def compile_protos(src_dir, out_dir):
    """(event_pb2, catalog_pb2) from proto/patron/v1/*.proto, compiled into out_dir."""
    proto_dir = os.path.join(src_dir, "proto")
    v1 = os.path.join(proto_dir, "patron", "v1")
    protos = sorted(os.path.join(v1, f) for f in os.listdir(v1) if f.endswith(".proto"))
    subprocess.run(["protoc", f"--python_out={out_dir}", "-I", proto_dir, *protos], check=True)
    sys.path.insert(0, out_dir)
    from patron.v1 import catalog_pb2, event_pb2
    return event_pb2, catalog_pb2


def write_events(path, orders, shop, event_pb2):
    """Each order as one Purchase event keyed (by patron-replay) by its
    customer, as uint32 big-endian length + Event bytes. Returns the count."""
    currency = "GBP" if shop.kind == "online-retail" else "USD"
    with open(path, "wb") as f:
        for event_id, customer, t_ms, lines in orders:
            ev = event_pb2.Event(event_id=event_id, customer_id=customer, occurred_at_ms=t_ms)
            ev.purchase.order_id = lines[0].order
            ev.purchase.currency = currency
            for l in lines:
                ev.purchase.items.add(item_id=l.item, category=shop.items[l.item].category,
                                      quantity=l.quantity, unit_price_cents=l.price_cents)
            data = ev.SerializeToString()
            f.write(struct.pack(">I", len(data)))
            f.write(data)
    return len(orders)


def catalog_updates(shop, catalog_pb2):
    """[(item_id, ItemUpdate bytes)] for every item of the shop: title,
    category, price, in stock, and not_a_product for non-products."""
    fields = catalog_pb2.ItemUpdate.DESCRIPTOR.fields_by_name
    if "not_a_product" not in fields or fields["not_a_product"].number != 6:
        raise SystemExit("eval: proto/patron/v1/catalog.proto lacks `bool not_a_product = 6`")
    out = []
    for item_id, info in sorted(shop.items.items()):
        u = catalog_pb2.ItemUpdate(item_id=item_id, category=info.category, price_cents=info.price_cents,
                                   in_stock=True, title=info.title[:512],
                                   not_a_product=info.not_a_product)
        out.append((item_id, u.SerializeToString()))
    return out


class Patron:
    """One fresh stack; use as a context manager."""

    def __init__(self, name, bin_dir, api_env=None):
        import harness  # PATRON_BIN_DIR is set by the caller before the first import
        self.harness = harness
        self.bin_dir = bin_dir
        self.stack = harness.Stack(name)
        self.api_env = api_env or {}
        self.timings = {}

    def __enter__(self):
        self.stack.__enter__()
        try:
            t0 = time.time()
            self.stack.start_redis()
            self.brokers = self.stack.start_kafka(TOPICS)
            self.ingest = self.stack.start_service("patron-ingest", PATRON_CLOCK="event")
            self.api = self.stack.start_service("patron-api", PATRON_CLOCK="event", **self.api_env)
            self.timings["start"] = time.time() - t0
        except BaseException:
            self.stack.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            ok = self.stack.stop(self.ingest) == 0 and self.stack.stop(self.api) == 0
            if not ok:
                raise SystemExit("eval: patron-ingest or patron-api did not stop cleanly")
        self.stack.__exit__(*exc)

    def _replay(self, argv):
        """Runs patron-replay; returns its summary's event count."""
        out = self.harness.run_tool([os.path.join(self.bin_dir, "patron-replay"), *argv,
                                     "--brokers", self.brokers, "--topic", "patron.events"], timeout=900)
        return json.loads(out.strip().splitlines()[-1])["events"]

    def produce_catalog(self, updates):
        """ItemUpdates to patron.catalog, keyed by item."""
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.brokers, "linger.ms": 20, "acks": "all"})
        failed = []
        for key, value in updates:
            while True:
                try:
                    p.produce("patron.catalog", value=value, key=key,
                              on_delivery=lambda err, _m: err and failed.append(err))
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        if p.flush(120) or failed:
            raise SystemExit(f"eval: catalog not delivered: {failed[:3]}")
        return len(updates)

    def feed_orders(self, orders, shop, event_pb2, catalog_pb2, tmp_dir):
        """The catalogue, then the orders (patron-replay file); waits until applied."""
        t0 = time.time()
        n_catalog = self.produce_catalog(catalog_updates(shop, catalog_pb2))
        path = os.path.join(tmp_dir, "events.bin")
        write_events(path, orders, shop, event_pb2)
        events = self._replay(["file", "--in", path])
        self.timings["produce"] = time.time() - t0
        self.wait_applied(events, n_catalog)
        self.wait_clock(max((o[2] for o in orders), default=0))
        return events

    def wait_clock(self, last_event_ms, slack_ms=3_600_000):
        """Until the API's event clock (as_of_ms) has reached the training's
        last event, within slack_ms (the clock follows ingest's marks, not
        each event). On a CPU-starved machine the first mark came 50 s after
        the counters settled, and an API asked before then answered 1,101 of
        1,753 Online Retail customers with popularity only (P@10 0.059
        instead of 0.083): ingest's Redis commands timed out there and it
        replayed its batches, looking settled between two replays
        (docs/eval.md); the API's clock moved only once they were over."""
        if last_event_ms <= 0:
            return
        t0 = time.time()
        self.harness.wait_for("the API's event clock to reach the last training event",
                              lambda: (self.now_ms() or 0) >= last_event_ms - slack_ms,
                              timeout=180, interval=0.25)
        self.timings["clock"] = time.time() - t0

    def replay_online_retail(self, csv_path, until):
        """patron-replay's own Online Retail mapping (purchases and refunds,
        data/README.md) up to `until`; waits until applied."""
        t0 = time.time()
        events = self._replay(["online-retail", "--file", csv_path, "--until", until])
        self.timings["produce"] = time.time() - t0
        self.wait_applied(events, 0)
        return events

    def wait_applied(self, events, catalog):
        """Until ingest has read every event and catalog update (applied, or
        dead-lettered) and has no batch in flight, twice in a row a second
        apart with nothing counted in between; then lets the clock settle.
        The counters count an event again when ingest replays it after a
        pipeline reset (a Redis timeout under load), so reaching the totals
        alone does not mean the end: the replay may still be going, and
        between two batches nothing is in flight."""
        t0 = time.time()
        h, port = self.harness, self.ingest.http_port
        prev = [None]

        def settled():
            read = h.metric(port, "patron_ingest_events_total") + h.metric(port, "patron_ingest_dlq_total")
            cat = h.metric(port, "patron_ingest_catalog_updates_total")
            snap = (read, cat, h.metric(port, "patron_ingest_inflight_batches") == 0)
            ok = snap[2] and read + cat >= events + catalog and snap == prev[0]
            prev[0] = snap
            return ok
        h.wait_for("ingest to apply the training events", settled, timeout=900, interval=1.0)
        self.dlq = int(h.metric(port, "patron_ingest_dlq_total"))
        time.sleep(CLOCK_SETTLE_S)
        self.timings["apply"] = time.time() - t0

    def _get_all(self, paths):
        """(status, parsed JSON) per path, over one keep-alive connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.api.http_port, timeout=10)
        out, latencies = [], []
        for path in paths:
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            latencies.append(time.perf_counter() - t0)
            out.append((resp.status, json.loads(body) if resp.status == 200 else body[:200]))
        conn.close()
        latencies.sort()
        self.latency_ms = {"p50": latencies[len(latencies) // 2] * 1e3,
                           "p99": latencies[int(len(latencies) * 0.99)] * 1e3} if latencies else {}
        return out

    def recommendations(self, customers, limit=10):
        """customer -> item ids, and the strategies the API named."""
        t0 = time.time()
        paths = [f"/v1/customers/{urllib.parse.quote(c, safe='')}/recommendations?limit={limit}"
                 for c in customers]
        answers, strategies = {}, collections.Counter()
        for c, path, (status, doc) in zip(customers, paths, self._get_all(paths)):
            if status != 200:
                raise SystemExit(f"eval: {path}: HTTP {status} {doc!r}")
            answers[c] = [it["item_id"] for it in doc["items"]]
            strategies[doc.get("strategy", "?")] += 1
        self.timings["ask"] = time.time() - t0
        return answers, strategies

    def profiles(self, customers):
        """customer -> the profile JSON (None when the API answers 404)."""
        t0 = time.time()
        paths = [f"/v1/customers/{urllib.parse.quote(c, safe='')}/profile" for c in customers]
        out = {}
        for c, path, (status, doc) in zip(customers, paths, self._get_all(paths)):
            if status not in (200, 404):
                raise SystemExit(f"eval: {path}: HTTP {status} {doc!r}")
            out[c] = doc if status == 200 else None
        self.timings["ask"] = time.time() - t0
        return out

    def wait_models(self, timeout=300):
        """Until GET /v1/model shows a snapshot taken at the API's current
        now (after the replay) and models fitted on the same customers and
        orders (the API refits when those change; the parameters do not
        depend on the few hours of clock a later snapshot may add). With
        PATRON_CLV_MODEL only the clusters are waited for. Returns /v1/model's
        answer."""
        t0 = time.time()
        now = self.now_ms()

        def fitted():
            status, m = self.harness.http(self.api.http_port, "GET", "/v1/model")
            if status != 200 or not m.get("snapshot") or m["snapshot"]["as_of_ms"] < now:
                return None
            snap, clv, cl = m["snapshot"], m["clv"], m["clusters"]
            clv_ok = clv["source"] == "override" or (
                clv["source"] == "fitted" and clv["customers"] == snap["customers"]
                and clv["orders"] == snap["orders"])
            return m if clv_ok and cl and cl["customers"] == snap["customers"] else None
        model = self.harness.wait_for("the API's models fitted after the replay", fitted, timeout=timeout,
                                      interval=0.5)
        self.timings["fit"] = time.time() - t0
        return model

    def now_ms(self):
        """The API's clock (`as_of_ms` of /v1/campaigns/stats), or None."""
        status, doc = self.harness.http(self.api.http_port, "GET", "/v1/campaigns/stats")
        return doc.get("as_of_ms") if status == 200 and isinstance(doc, dict) else None
