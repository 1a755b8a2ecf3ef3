"""Item statistics of another type in Redis: the API answers without them.

The {items}:* keys are shared by every item; a key of another type there
(a hand-made SET, a tool writing the wrong key) makes Redis refuse every
read of it with WRONGTYPE. Before, every recommendation then failed with
503 "redis unavailable" until an operator found and deleted the key. Now
patron-api answers from what it can still read (the customer's profile
and the neighbour lists), counts each refusal in
patron_reco_stored_faults_total and says so in its log; nothing stalls.
Deleting the keys brings the facts back without a restart. A customer's
own key of another type fails that customer's answer alone, with 500 as a
corrupt profile does (it was 503, as if Redis were away).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, http, metric, produce, proto_modules, purchase_event, wait_for  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}
T0 = 1_300_000_000_000
STATS = ["{items}:pop", "{items}:trend", "{items}:sold", "{items}:cat", "{items}:oos", "{items}:np"]


def main():
    with Stack("reco_stored_faults") as st:
        pb = proto_modules(st.dir)
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        st.start_service("patron-ingest")
        produce(brokers, [purchase_event(pb, f"p{i}", f"u{i}", T0 + i, ["a", "b", "c"]) for i in range(3)] +
                [purchase_event(pb, "carol-1", "carol", T0 + 10, ["a"])])
        wait_for("the item graph", lambda: st.r.exists("{i:a}:co") and st.r.exists("{c:carol}"), timeout=30)
        wait_for("the statistics", lambda: int(st.r.hget("{items}:sold", "a") or 0) == 4, timeout=30)
        kept = {k: st.r.dump(k) for k in STATS if st.r.exists(k)}

        # every shared statistic becomes a string
        for k in STATS:
            st.r.delete(k)
            st.r.set(k, "not a hash, set or sorted set")
        api = st.start_service("patron-api", PATRON_CLOCK="event", PATRON_RECO_MAX_AGE_MS="300",
                               PATRON_RECO_LIST_MAX_AGE_MS="300")
        port = api.http_port
        for _ in range(3):
            status, body = http(port, "GET", "/v1/customers/carol/recommendations?limit=10")
            assert status == 200, (status, body)
            got = [it["item_id"] for it in body["items"]]
            assert got[:2] == ["b", "c"] or got[:2] == ["c", "b"], body
        status, body = http(port, "GET", "/v1/customers/nobody/recommendations")
        assert status == 200 and body["items"] == [], body  # no trending snapshot to give
        status, body = http(port, "GET", "/v1/items/a/similar")
        assert status == 200 and {it["item_id"] for it in body["items"]} == {"b", "c"}, body
        # one customer's profile key of another type: that answer fails as a
        # corrupt profile's does (500), the others go on
        st.r.hset("{c:zed}", "x", "y")
        status, body = http(port, "GET", "/v1/customers/zed/recommendations")
        assert status == 500 and body["error"] == "internal", (status, body)
        status, body = http(port, "GET", "/v1/customers/zed/profile")
        assert status == 500 and body["message"] == "stored profile of another type", (status, body)
        status, body = http(port, "GET", "/v1/customers/carol/recommendations")
        assert status == 200 and body["items"], (status, body)
        faults = metric(port, "patron_reco_stored_faults_total")
        assert faults >= 4, faults
        with open(st.log_path("patron-api")) as f:
            log = f.read()
        assert log.count("item statistics unreadable") == 1, "logged once a minute, not per read"
        assert "WRONGTYPE" in log, log[-2000:]

        # the keys put back: the facts return without a restart
        for k in STATS:
            st.r.delete(k)
        for k, v in kept.items():
            st.r.restore(k, 0, v)

        def healed():
            before = metric(port, "patron_reco_stored_faults_total")
            s, b = http(port, "GET", "/v1/customers/nobody/recommendations")
            return s == 200 and b["items"] and metric(port, "patron_reco_stored_faults_total") == before and b
        body = wait_for("the statistics read again", healed, timeout=10, interval=0.3)
        assert {it["item_id"] for it in body["items"]} == {"a", "b", "c"}, body
        print(f"stored faults: {faults:.0f} refusals counted, carol answered throughout: ok")


if __name__ == "__main__":
    main()
