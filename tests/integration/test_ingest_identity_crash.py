"""The merge of a visitor into a customer stays exact under kill -9 between
its two writes and with two ingests racing on one customer from two
partitions (docs/guarantees.md, "Identity").

1. Crash mid-merge, at many points. Forty visitor/customer pairs: each
   visitor (partition 0) views, fills a cart and buys as a guest; its
   customer (partition 1) buys and identifies it; the visitor then buys
   again (its customer's by then, or while the merge is pending) and its
   guest purchase is resent; every fifth customer is erased at the end.
   patron-ingest runs with PATRON_FAULT_CRASH_AFTER_VISITOR_WRITES=n: it
   aborts (as kill -9 would stop it) right after the n-th batch's visitor
   writes are acknowledged, before its customers' — so a merge is left
   half done (the visitor frozen, the customer without it), or an erasure
   (the visitors erased, the customer not). It is restarted, crashing a
   little further each time, then once without the fault. Every profile is
   then exact: each purchase once, every visitor merged once, the erased
   customers' visitors erased with them.
2. Two ingests, one partition each, both writing the same customers all
   the time: each customer's purchases on partition 1, its merged
   visitor's on partition 0 (applied to the customer by the other
   process). The compare-and-sets race (a lost one resets its pipeline,
   which replays); every purchase counts once, whatever the interleaving.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, consume_all, free_port, http, metric, proto_modules, wait_for  # noqa: E402

TOPICS = {"patron.events": 2, "patron.catalog": 1, "patron.profile-updates": 2, "patron.dlq": 1}
T0 = int(time.time() * 1000) - 3_600_000


class Load:
    """Events and what they must give: per customer, orders and spend."""

    def __init__(self, pb, brokers):
        from confluent_kafka import Producer
        self.pb, self.n = pb, 0
        self.p = Producer({"bootstrap.servers": brokers, "linger.ms": 5,
                           "queue.buffering.max.messages": 1000000})
        self.orders, self.spend, self.owner, self.counted = {}, {}, {}, set()
        self.erased = set()

    def send(self, e, partition):
        key = e.customer_id or e.anonymous_id
        while True:
            try:
                self.p.produce("patron.events", key=key.encode(), value=e.SerializeToString(),
                               partition=partition)
                break
            except BufferError:
                self.p.poll(0.1)
        self.p.poll(0)
        return e

    def event(self, at, customer=None, visitor=None, event_id=None):
        self.n += 1
        e = self.pb.Event(event_id=event_id or f"e{self.n}", occurred_at_ms=T0 + at)
        if customer:
            e.customer_id = customer
        else:
            e.anonymous_id = visitor
        return e

    def purchase(self, at, cents, customer=None, visitor=None, partition=None):
        e = self.event(at, customer, visitor)
        e.purchase.items.add(item_id=f"i{self.n % 50}", category="home", quantity=1, unit_price_cents=cents)
        who = customer or self.owner[visitor]
        if e.event_id not in self.counted:
            self.counted.add(e.event_id)
            self.orders[who] = self.orders.get(who, 0) + 1
            self.spend[who] = self.spend.get(who, 0) + cents
        return self.send(e, partition if partition is not None else (1 if customer else 0))

    def view(self, at, visitor, item):
        e = self.event(at, visitor=visitor)
        e.view.item_id, e.view.category = item, "home"
        return self.send(e, 0)

    def cart(self, at, visitor, item):
        e = self.event(at, visitor=visitor)
        e.cart_add.item.item_id, e.cart_add.item.quantity, e.cart_add.item.unit_price_cents = item, 1, 300
        return self.send(e, 0)

    def identify(self, at, customer, visitor):
        e = self.event(at, customer=customer)
        e.identify.anonymous_id = visitor
        return self.send(e, 1)

    def erase(self, at, customer):
        e = self.event(at, customer=customer)
        e.erasure.SetInParent()
        self.erased.add(customer)
        return self.send(e, 1)

    def flush(self):
        assert self.p.flush(60) == 0


def differences(api, load):
    bad = []
    for c, orders in sorted(load.orders.items()):
        status, body = http(api, "GET", f"/v1/customers/{c}/profile")
        if c in load.erased:
            if status != 404:
                bad.append((c, "not erased", status))
            continue
        if status != 200:
            bad.append((c, "status", status))
            continue
        if (body["orders"], body["net_spend_cents"]) != (orders, load.spend[c]):
            bad.append((c, body["orders"], orders, body["net_spend_cents"], load.spend[c]))
        want = sorted(v for v, o in load.owner.items() if o == c)
        got = sorted(m["anonymous_id"] for m in body["merged_visitors"])
        if got != want:
            bad.append((c, "merged", got, want))
    for v, c in sorted(load.owner.items()):
        status, body = http(api, "GET", f"/v1/visitors/{v}/profile")
        want = 404 if c in load.erased else c
        got = status if status != 200 else body["customer_id"]
        if got != want:
            bad.append((v, "visitor answers for", got, want))
    return bad


def pending_merges(r, profile_pb2):
    """Visitors frozen into a customer that does not list them yet: a merge
    caught between its two writes."""
    n = 0
    for key in r.scan_iter("{v:*}"):
        v = profile_pb2.ProfileState()
        v.ParseFromString(r.get(key)[8:])
        if not v.merged_into:
            continue
        raw = r.get("{c:%s}" % v.merged_into)
        c = profile_pb2.ProfileState()
        if raw:
            c.ParseFromString(raw[8:])
        n += v.anonymous_id not in {a.anonymous_id for a in c.aliases}
    return n


def crash_at_many_points(pb):
    from patron.v1 import profile_pb2
    with Stack("identity-crash") as st:
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        load = Load(pb, brokers)
        pairs = 40
        for k in range(pairs):
            c, v, t = f"c{k}", f"v{k}", 10_000 * k
            load.owner[v] = c
            load.view(t, v, f"i{k}")
            load.cart(t + 10, v, f"i{k + 1}")
            guest = load.purchase(t + 20, 100 + k, visitor=v)
            load.purchase(t + 30, 1000 + k, customer=c)
            load.identify(t + 40, c, v)
            load.purchase(t + 50, 7, visitor=v)
            load.send(guest, 0)  # a resend of the guest purchase
        for k in range(0, pairs, 5):
            load.erase(10_000 * pairs + k, f"c{k}")
        load.flush()

        env = {"PATRON_BATCH_MAX": "4", "PATRON_INFLIGHT_BATCHES": "4",
               "PATRON_RDKAFKA_SESSION_TIMEOUT_MS": "6000", "PATRON_RDKAFKA_HEARTBEAT_INTERVAL_MS": "500"}
        crashes, caught = 0, 0
        for n in (1, 2, 3, 5, 8, 13):
            port = free_port()
            p = st.spawn("patron-ingest", [os.path.join(st.bin, "patron-ingest")],
                         st.service_env(port, PATRON_FAULT_CRASH_AFTER_VISITOR_WRITES=n, **env))
            try:
                p.wait(timeout=60)
            except Exception:
                st.stop(p)  # it read everything before its n-th two-stage batch
                continue
            assert p.returncode == -signal.SIGABRT, f"ingest exited with {p.returncode}"
            crashes += 1
            caught += pending_merges(r, profile_pb2) > 0
        assert crashes >= 3, f"only {crashes} crashes: the fault never struck"
        assert caught >= 1, "no crash left a merge half done: the test proves nothing"

        ingest = st.start_service("patron-ingest", **env)
        api = st.start_service("patron-api").http_port
        try:
            wait_for("every profile exact", lambda: not differences(api, load), timeout=120, interval=1)
        except AssertionError:
            pass
        bad = differences(api, load)
        assert not bad, f"{len(bad)} differ after {crashes} crashes, first: {bad[:5]}"
        assert pending_merges(r, profile_pb2) == 0
        for k in range(0, pairs, 5):
            v = profile_pb2.ProfileState()
            v.ParseFromString(r.get("{v:v%d}" % k)[8:])
            assert v.erased and not v.merged_into, (k, v)
        assert st.stop(ingest) == 0
        print(f"ok: {pairs} merges exact after {crashes} crashes between the two writes "
              f"({caught} left a merge half done)")


def explain(st, r, brokers, pods=()):
    """What a failure needs to be understood: the DLQ, the resets, the
    visitors' and customers' stored ledgers."""
    from patron.v1 import profile_pb2
    for m in consume_all(brokers, "patron.dlq", timeout=5):
        print("dlq:", m.key(), dict(m.headers()).get("error"))
    for name, p in pods:
        print(f"{name}:", {k: metric(p.http_port, "patron_ingest_events_total", f'result="{k}"')
                           for k in ("applied", "replayed", "duplicate", "stale", "refused")})
    for name in ("ingest-a", "ingest-b"):
        with open(st.log_path(name)) as f:
            for line in f:
                if "CONFWARN" not in line and "connected" not in line:
                    print(f"{name}:", line.rstrip()[:300])
    for key in sorted(r.scan_iter("{*}")):
        raw = r.get(key) if r.type(key) == b"string" else None
        if not raw or not (key.startswith(b"{v:") or key.startswith(b"{c:")):
            continue
        s = profile_pb2.ProfileState()
        s.ParseFromString(raw[8:])
        ids = "merged_into=%r aliases=%s" % (s.merged_into, [str(a).replace("\n", " ") for a in s.aliases])
        s.ClearField("counted_events")
        print("state:", key, "version", int.from_bytes(raw[:8], "big"), ids, str(s)[:1500].replace("\n", " "))


def racing_ingests(pb):
    with Stack("identity-race") as st:
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        env = {"PATRON_BATCH_MAX": "8", "PATRON_INFLIGHT_BATCHES": "4",
               "PATRON_RDKAFKA_SESSION_TIMEOUT_MS": "6000", "PATRON_RDKAFKA_HEARTBEAT_INTERVAL_MS": "500"}
        a = st.start_service("patron-ingest", log_name="ingest-a", **env)
        b = st.start_service("patron-ingest", log_name="ingest-b", **env)
        wait_for("two members with a partition each", lambda: all(
            "partitions assigned" in open(st.log_path(n)).read() for n in ("ingest-a", "ingest-b")), timeout=90)
        time.sleep(3)  # the rebalance settles
        load = Load(pb, brokers)
        customers = 6
        for k in range(customers):
            load.owner[f"v{k}"] = f"c{k}"
            load.purchase(k, 100, visitor=f"v{k}")
            load.identify(100 + k, f"c{k}", f"v{k}")
        load.flush()
        api = st.start_service("patron-api").http_port
        wait_for("the merges", lambda: all(
            http(api, "GET", f"/v1/customers/c{k}/profile")[0] == 200
            and http(api, "GET", f"/v1/customers/c{k}/profile")[1]["merged_visitors"]
            for k in range(customers)), timeout=60)
        for i in range(150):  # both partitions write the same six customers all along
            for k in range(customers):
                load.purchase(1000 + 10 * i, 1 + i % 7, customer=f"c{k}")
                load.purchase(1000 + 10 * i + 5, 11 + i % 5, visitor=f"v{k}")
        load.flush()
        try:
            wait_for("every profile exact", lambda: not differences(api, load), timeout=180, interval=1)
        except AssertionError:
            pass
        bad = differences(api, load)
        if bad:
            explain(st, r, brokers, (("ingest-a", a), ("ingest-b", b)))
        assert not bad, f"{len(bad)} differ, first: {bad[:5]}"
        conflicts = sum(metric(p.http_port, "patron_ingest_profile_conflicts_total") for p in (a, b))
        resets = sum(metric(p.http_port, "patron_ingest_resets_total") for p in (a, b))
        redirected = sum(metric(p.http_port, "patron_ingest_redirected_total") for p in (a, b))
        assert redirected >= customers * 150, redirected
        assert a.poll() is None and b.poll() is None
        print(f"ok: {customers} customers written from two partitions by two ingests, exact; "
              f"{conflicts:.0f} compare-and-sets lost, {resets:.0f} resets, {redirected:.0f} redirected")


def main():
    with Stack("identity-proto") as st:
        pb = proto_modules(st.dir)
        crash_at_many_points(pb)
        racing_ingests(pb)


if __name__ == "__main__":
    main()
