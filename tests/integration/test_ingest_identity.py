"""Anonymous visitors and Identify through the real stack (docs/guarantees.md, "Identity").

One redis-server, patron-devkafka (patron.events in 4 partitions), one
patron-ingest and patron-api. Each visitor's events are produced to one
partition and its customer's (and the Identify) to another, as two keys
hashing apart would be:

1. a visitor browses, fills a cart and buys as a guest; its customer buys
   too; the Identify merges them exactly once: counters added, the guest
   purchase one of the customer's orders, the cart the customer's, the
   visitor's key an alias; later events of the anonymous id, a resend of the
   guest purchase and of the Identify, all counted once; the visitor
   endpoints answer for the customer, an unmerged visitor for itself, a
   stranger 404;
2. no ProfileUpdate for a visitor's own events; the Identify's is an
   IDENTIFY on the customer's partition with the merged cart; the events of
   the merged visitor are published as the customer's, on its partition;
3. an Identify of the same anonymous id by another customer goes to the DLQ
   as identify_conflict and changes nothing; past 16 anonymous ids,
   identify_limit;
4. erasing the customer (DELETE /v1/customers/{id}) erases the visitors
   merged into it: their keys become tombstones (no alias), the visitor
   endpoints 404, and a later event of the anonymous id starts a fresh
   visitor, not linked to anyone.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, consume_all, http, metric, proto_modules, wait_for  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}
VISITOR_P, CUSTOMER_P = 0, 2
T0 = int(time.time() * 1000) - 3_600_000


class Events:
    """Builds and produces events, each to the partition its key's owner uses."""

    def __init__(self, pb, brokers):
        from confluent_kafka import Producer
        self.pb, self.n = pb, 0
        self.p = Producer({"bootstrap.servers": brokers, "linger.ms": 5})

    def ev(self, who, at, anonymous=False, event_id=None):
        self.n += 1
        e = self.pb.Event(event_id=event_id or f"e{self.n}", occurred_at_ms=T0 + at)
        if anonymous:
            e.anonymous_id = who
        else:
            e.customer_id = who
        return e

    def send(self, e, partition=None):
        key = e.customer_id or e.anonymous_id
        part = partition if partition is not None else (CUSTOMER_P if e.customer_id else VISITOR_P)
        self.p.produce("patron.events", key=key.encode(), value=e.SerializeToString(), partition=part)
        self.p.poll(0)
        return e

    def view(self, who, at, item, anonymous=True):
        e = self.ev(who, at, anonymous)
        e.view.item_id, e.view.category = item, "home"
        return self.send(e)

    def cart(self, who, at, item, anonymous=True):
        e = self.ev(who, at, anonymous)
        e.cart_add.item.item_id, e.cart_add.item.category = item, "home"
        e.cart_add.item.quantity, e.cart_add.item.unit_price_cents = 1, 700
        return self.send(e)

    def purchase(self, who, at, item, cents, anonymous=False, event_id=None):
        e = self.ev(who, at, anonymous, event_id)
        e.purchase.items.add(item_id=item, category="home", quantity=1, unit_price_cents=cents)
        return self.send(e)

    def identify(self, customer, anonymous_id, at):
        e = self.ev(customer, at)
        e.identify.anonymous_id = anonymous_id
        return self.send(e)

    def flush(self):
        assert self.p.flush(30) == 0


def profile(api, path):
    status, body = http(api, "GET", path)
    return body if status == 200 else status


def updates_of(brokers, pb):
    from patron.v1 import profile_pb2
    out = []
    for m in consume_all(brokers, "patron.profile-updates"):
        u = profile_pb2.ProfileUpdate()
        u.ParseFromString(m.value())
        out.append((m.partition(), m.key().decode(), u))
    return out, profile_pb2


def main():
    with Stack("ingest-identity") as st:
        pb = proto_modules(st.dir)
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_BATCH_MAX="50")
        api = st.start_service("patron-api").http_port
        ev = Events(pb, brokers)

        # ---- 1. a visitor, merged once ----------------------------------------------------
        ev.view("a1", 0, "i1")
        ev.view("a1", 1000, "i2")
        ev.cart("a1", 2000, "i3")
        guest = ev.purchase("a1", 3000, "i4", 1500, anonymous=True, event_id="guest-1")
        ev.purchase("c1", 4000, "i5", 2500)
        ev.view("a2", 4500, "i9")  # a visitor never identified
        ev.cart("a1", 5000, "i6")  # after the guest purchase: in the merged cart
        ev.flush()
        wait_for("the visitor's events", lambda: isinstance(profile(api, "/v1/visitors/a1/profile"), dict)
                 and profile(api, "/v1/visitors/a1/profile")["orders"] == 1, timeout=30)
        v = profile(api, "/v1/visitors/a1/profile")
        assert v["customer_id"] is None and v["anonymous_id"] == "a1" and v["cart"][0]["item_id"] == "i6", v
        before = profile(api, "/v1/customers/c1/profile")
        assert before["orders"] == 1 and before["merged_visitors"] == [], before

        ident = ev.identify("c1", "a1", 6000)
        ev.flush()
        wait_for("the merge", lambda: profile(api, "/v1/customers/c1/profile")["orders"] == 2, timeout=30)
        c = profile(api, "/v1/customers/c1/profile")
        assert c["net_spend_cents"] == 4000 and c["points"] == 40, c
        assert [ln["item_id"] for ln in c["cart"]] == ["i6"], c["cart"]
        assert set(c["recent_items"]["viewed"]) == {"i1", "i2"} and set(c["recent_items"]["bought"]) == {"i4", "i5"}, c
        mv = c["merged_visitors"]
        assert len(mv) == 1 and mv[0]["anonymous_id"] == "a1" and mv[0]["orders"] == 1 \
            and mv[0]["cart_lines"] == 1 and mv[0]["viewed"] == 2 and mv[0]["merged_at_ms"] == T0 + 6000, mv
        va = profile(api, "/v1/visitors/a1/profile")
        assert va["anonymous_id"] == "a1" and all(va[k] == c[k] for k in (
            "customer_id", "orders", "net_spend_cents", "cart", "recent_items", "merged_visitors")), va
        wait_for("the visitor's key cut down to its alias", lambda: len(r.get("{v:a1}")) < 40, timeout=20)
        assert metric(ingest.http_port, "patron_ingest_visitors_compacted_total") >= 1

        # later events of a1 are c1's; resends of the guest purchase and of the Identify count once
        ev.purchase("a1", 7000, "i7", 1000, anonymous=True)
        ev.send(guest)
        ev.send(ident)
        ev.identify("c1", "a1", 8000)  # another Identify of the same pair
        ev.view("a1", 8500, "i8")
        ev.flush()
        wait_for("the later events", lambda: profile(api, "/v1/customers/c1/profile")["orders"] == 3
                 and "i8" in profile(api, "/v1/customers/c1/profile")["recent_items"]["viewed"], timeout=30)
        time.sleep(1)
        c = profile(api, "/v1/customers/c1/profile")
        assert c["orders"] == 3 and c["net_spend_cents"] == 5000 and len(c["merged_visitors"]) == 1, c
        assert profile(api, "/v1/visitors/a2/profile")["customer_id"] is None
        assert profile(api, "/v1/visitors/nobody/profile") == 404
        assert profile(api, "/v1/visitors/" + "x" * 65 + "/profile") == 400
        rec = profile(api, "/v1/visitors/a1/recommendations?limit=3")
        assert rec["anonymous_id"] == "a1" and rec["customer_id"] == "c1", rec
        rec = profile(api, "/v1/visitors/a2/recommendations")
        assert rec["customer_id"] is None, rec
        rec = profile(api, "/v1/visitors/nobody/recommendations")
        assert rec["customer_id"] is None and rec["strategy"] == "popular", rec

        # ---- 2. what is published ----------------------------------------------------------
        ups, profile_pb2 = updates_of(brokers, pb)
        kinds = profile_pb2.EventKind
        assert all(key != "a1" and key != "a2" for _, key, _ in ups), "a visitor's update"
        ids = [u for _, key, u in ups if u.kind == kinds.Value("IDENTIFY")]
        first = [u for u in ids if not u.replayed]
        assert len(first) == 1 and first[0].customer_id == "c1" and first[0].anonymous_id == "a1" \
            and list(first[0].item_ids) == ["i6"] and first[0].orders == 2, ids
        merged = [(p, u) for p, key, u in ups if u.anonymous_id == "a1" and u.kind != kinds.Value("IDENTIFY")]
        assert merged and all(p == CUSTOMER_P and u.customer_id == "c1" for p, u in merged), merged
        assert all(not (u.kind == kinds.Value("PURCHASE") and u.event_id == "guest-1") for _, _, u in ups)

        # ---- 3. conflict and limit -------------------------------------------------------------
        ev.purchase("c2", 9000, "i1", 100)
        ev.identify("c2", "a1", 9500)
        for k in range(17):
            ev.identify("c3", f"d{k}", 10_000 + k)
        ev.flush()
        wait_for("the conflict and the limit in the DLQ",
                 lambda: metric(ingest.http_port, "patron_ingest_identify_total", 'result="conflict"') >= 1
                 and metric(ingest.http_port, "patron_ingest_identify_total", 'result="limit"') >= 1, timeout=30)
        def dlq():
            return {dict(m.headers())["error"].decode() for m in consume_all(brokers, "patron.dlq", timeout=5)}
        wait_for("both in patron.dlq", lambda: {"identify_conflict", "identify_limit"} <= dlq(), timeout=30)
        assert profile(api, "/v1/customers/c2/profile")["merged_visitors"] == []
        assert len(profile(api, "/v1/customers/c3/profile")["merged_visitors"]) == 16
        assert profile(api, "/v1/visitors/a1/profile")["customer_id"] == "c1"
        assert profile(api, "/v1/visitors/d16/profile") == 404

        # ---- 4. erasure of the customer erases its visitors ---------------------------------------
        assert http(api, "DELETE", "/v1/customers/c1")[0] == 202
        wait_for("c1 erased", lambda: profile(api, "/v1/customers/c1/profile") == 404, timeout=30)
        assert profile(api, "/v1/visitors/a1/profile") == 404
        from patron.v1 import profile_pb2 as ppb
        state = ppb.ProfileState()
        state.ParseFromString(r.get("{v:a1}")[8:])
        assert state.erased and not state.merged_into and state.anonymous_id == "a1", state
        assert r.ttl("{v:a1}") > 0, "a visitor's tombstone expires as a customer's does"
        ev.view("a1", int(time.time() * 1000) - T0, "i3")  # after the erasure: a fresh visitor
        ev.flush()
        wait_for("a fresh visitor", lambda: isinstance(profile(api, "/v1/visitors/a1/profile"), dict), timeout=30)
        v = profile(api, "/v1/visitors/a1/profile")
        assert v["customer_id"] is None and v["orders"] == 0 and v["recent_items"]["viewed"] == ["i3"], v
        assert metric(ingest.http_port, "patron_ingest_visitors_erased_total") >= 1

        assert metric(ingest.http_port, "patron_ingest_resets_total") == 0
        print(f"ok: a visitor merged once ({int(metric(ingest.http_port, 'patron_ingest_redirected_total'))} "
              f"events redirected), conflict and limit dead-lettered, erasure reached the visitor")


if __name__ == "__main__":
    main()
