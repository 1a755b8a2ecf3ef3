"""patron-api's profile and erasure endpoints over the real stack.

Events are produced to the embedded Kafka, applied by patron-ingest, read
back through patron-api; every 4xx path answers JSON with the right status;
an erasure through the API removes the profile and every key of the customer
(while a tombstone keeps the old events from bringing it back on a replay).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, http, produce, proto_modules, wait_for  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}


def main():
    with Stack("api-profile") as st:
        pb = proto_modules(st.dir)
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        token = "s3cret-token-0123456789"  # at least 16 bytes
        ingest = st.start_service("patron-ingest")
        # the event clock: "now" is the time of the events applied, not 2026
        api = st.start_service("patron-api", PATRON_API_TOKEN=token, PATRON_CLOCK="event")
        auth = {"Authorization": f"Bearer {token}"}

        t0 = 1_300_000_000_000
        evs = []
        e = pb.Event(event_id="e1", customer_id="alice", occurred_at_ms=t0)
        e.purchase.order_id = "o1"
        li = e.purchase.items.add(item_id="sku-1", category="home", quantity=2, unit_price_cents=12_345)
        evs.append(e)
        e = pb.Event(event_id="e2", customer_id="alice", occurred_at_ms=t0 + 1000)
        e.consent.channel = pb.EMAIL
        e.consent.granted = True
        evs.append(e)
        e = pb.Event(event_id="e3", customer_id="alice", occurred_at_ms=t0 + 2000)
        e.customer.time_zone = "Europe/London"
        e.customer.birthday = "05-14"
        e.customer.locale = "en-GB"
        evs.append(e)
        e = pb.Event(event_id="e4", customer_id="alice", occurred_at_ms=t0 + 3000)
        e.cart_add.item.item_id = "sku-2"
        e.cart_add.item.quantity = 3
        evs.append(e)
        e = pb.Event(event_id="e1", customer_id="alice", occurred_at_ms=t0)  # a resend of e1
        e.purchase.order_id = "o1"
        e.purchase.items.add(item_id="sku-1", category="home", quantity=2, unit_price_cents=12_345)
        evs.append(e)
        produce(brokers, evs)

        def profile():
            s, body = http(api.http_port, "GET", "/v1/customers/alice/profile", headers=auth)
            return body if s == 200 and body.get("cart") else None

        p = wait_for("alice's profile", profile, timeout=30)
        assert p["customer_id"] == "alice"
        assert p["orders"] == 1, p  # the resend counted once
        assert p["net_spend_cents"] == 24_690 and p["points"] == 246, p
        assert p["tier"] == "silver" and p["segment"] == "new", p
        assert p["consent"] == {"sms": False, "push": False, "email": True}, p
        assert p["time_zone"] == "Europe/London" and p["birthday"] == "05-14" and p["locale"] == "en-GB"
        assert p["cart"] == [{"item_id": "sku-2", "quantity": 3}], p
        assert p["recent_items"]["bought"] == ["sku-1"], p
        assert p["top_categories"][0]["category"] == "home", p

        # Every 4xx path: JSON, the right status, never a crash.
        cases = [
            ("GET", "/v1/customers/alice/profile", {}, 401),
            ("GET", "/v1/customers/alice/profile", {"Authorization": "Bearer wrong"}, 401),
            ("GET", "/v1/customers/alice/profile", {"Authorization": "Basic xyz"}, 401),
            ("GET", "/v1/customers/nobody/profile", auth, 404),
            ("GET", "/v1/customers/" + "x" * 65 + "/profile", auth, 400),
            ("GET", "/v1/customers/a%00b/profile", auth, 400),
            ("GET", "/v1/customers//profile", auth, 400),
            ("POST", "/v1/customers/alice/profile", auth, 405),
            ("GET", "/v1/customers/alice", auth, 405),
            ("DELETE", "/v1/customers/alice", {}, 401),
            ("GET", "/v1/nothing", auth, 404),
            ("GET", "/v1/customers/alice/unknown", auth, 404),
        ]
        for method, path, headers, want in cases:
            status, body = http(api.http_port, method, path, headers=headers)
            assert status == want, f"{method} {path}: {status} {body}, want {want}"
            assert isinstance(body, dict) and "error" in body, f"{method} {path}: not a JSON error: {body!r}"

        # An erasure removes the profile (the trigger's state of the customer
        # is erased by patron-trigger itself: tests/integration/test_trigger.py).
        status, body = http(api.http_port, "DELETE", "/v1/customers/alice", headers=auth)
        assert status == 202, (status, body)
        wait_for("alice erased", lambda: http(api.http_port, "GET", "/v1/customers/alice/profile",
                                              headers=auth)[0] == 404, timeout=30)
        assert [k for k in r.scan_iter(match="{c:alice}*") if k != b"{c:alice}"] == [], \
            "the erasure left a key of the customer"
        assert r.ttl("{c:alice}") > 0, "the tombstone should expire"

        # /healthz, /readyz and /metrics on both services.
        for svc in (ingest, api):
            assert http(svc.http_port, "GET", "/healthz")[0] == 200
            assert http(svc.http_port, "GET", "/readyz")[0] == 200
            status, text = http(svc.http_port, "GET", "/metrics")
            assert status == 200 and "# TYPE" in text
        assert st.stop(ingest) == 0 and st.stop(api) == 0

        # PATRON_HTTP_WORKERS: processes sharing one port; SIGTERM to the first
        # stops them all
        multi = st.start_service("patron-api", PATRON_HTTP_WORKERS="3", PATRON_API_TOKEN=token)
        children = wait_for("two workers forked", lambda: [
            int(t) for t in open(f"/proc/{multi.pid}/task/{multi.pid}/children").read().split()
            if len(open(f"/proc/{multi.pid}/task/{multi.pid}/children").read().split()) == 2], timeout=10)
        for _ in range(60):  # every answer right, whichever process took it
            status, body = http(multi.http_port, "GET", "/v1/customers/zoe/recommendations", headers=auth)
            assert status == 200 and body["customer_id"] == "zoe", (status, body)
            assert http(multi.http_port, "GET", "/v1/customers/alice/profile", headers=auth)[0] == 404
        assert st.stop(multi) == 0
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}") or \
                open(f"/proc/{pid}/stat").read().split()[2] == "Z", f"worker {pid} outlived the parent"
        print("ok: profile, 4xx paths, erasure, health, workers")


if __name__ == "__main__":
    main()
