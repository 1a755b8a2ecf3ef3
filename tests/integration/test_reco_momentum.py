"""Momentum through the real stack: ingest counts sales, the API fits the shop.

A year of a shop of 40 items, each sold 12 times: 20 steady ones (a sale a
month) and 20 winter ones (all 12 in the last ten days). ingest keeps each
item's all-time purchase lines in {items}:sold, exactly once (a resent
purchase counts nothing); patron-api samples {items}:trend and {items}:sold,
fits the momentum prior (trend.h) and shows it as patron_reco_momentum_alpha.
Then alice, whose one item was bought with a steady item and a winter item
alike (same co-buyers, same buyers), gets the winter item first; with
PATRON_RECO_MOMENTUM=0 the two tie and the steady one comes first by id.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, http, metric, produce, proto_modules, purchase_event, wait_for  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}
DAY = 86_400_000
T0 = 1_600_000_000_000  # the shop's first day
EVENTS = "patron_ingest_events_total"


def shop(pb):
    events = []
    for k in range(20):
        for m in range(12):
            # steady: one sale a month; winter: 12 in days 350..361
            events.append(purchase_event(pb, f"s{k}-{m}", f"cs{k}-{m}", T0 + (30 * m + k % 7) * DAY, [f"s{k:02d}"]))
            events.append(purchase_event(pb, f"w{k}-{m}", f"cw{k}-{m}", T0 + (350 + m) * DAY + k, [f"w{k:02d}"]))
    # h was bought with s00 by three customers and with w00 by three others,
    # on the same old day; alice bought h alone
    for j in range(3):
        events.append(purchase_event(pb, f"hs{j}", f"hs{j}", T0 + 100 * DAY, ["h", "s00"]))
        events.append(purchase_event(pb, f"hw{j}", f"hw{j}", T0 + 100 * DAY, ["h", "w00"]))
    events.append(purchase_event(pb, "alice-1", "alice", T0 + 100 * DAY, ["h"]))
    return events


def top(port, customer):
    status, body = http(port, "GET", f"/v1/customers/{customer}/recommendations?limit=10")
    assert status == 200, body
    return body


def main():
    with Stack("reco_momentum") as st:
        pb = proto_modules(st.dir)
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest")
        events = shop(pb)
        produce(brokers, events)
        wait_for("every sale counted", lambda: sum(int(v) for v in st.r.hvals("{items}:sold")) == 12 * 40 + 6 + 6 + 1,
                 timeout=60)
        sold = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in st.r.hgetall("{items}:sold").items()}
        assert sold["s00"] == 15 and sold["w00"] == 15 and sold["h"] == 7 and sold["w07"] == 12, sold

        # a purchase resent (Kafka's at-least-once) counts nothing
        produce(brokers, [events[0], events[1]])
        wait_for("the resend applied (as a duplicate)",
                 lambda: metric(ingest.http_port, EVENTS, 'result="duplicate"') >= 2, timeout=30)
        assert int(st.r.hget("{items}:sold", "s00")) == 15 and int(st.r.hget("{items}:sold", "w00")) == 15

        api = st.start_service("patron-api", PATRON_CLOCK="event", PATRON_RECO_LIST_MAX_AGE_MS="500",
                               PATRON_RECO_MAX_AGE_MS="500")
        off = st.start_service("patron-api", log_name="patron-api-off", PATRON_CLOCK="event",
                               PATRON_RECO_MOMENTUM="0")

        def fitted():
            top(api.http_port, "alice")  # a request starts the fit
            return metric(api.http_port, "patron_reco_momentum_alpha") > 0
        wait_for("the momentum fit", fitted, timeout=30, interval=0.2)
        alpha = metric(api.http_port, "patron_reco_momentum_alpha")
        assert metric(api.http_port, "patron_reco_momentum_items") == 41, "40 items and h"
        assert 0 < alpha < 10, alpha

        def winter_first():
            body = top(api.http_port, "alice")
            got = [it["item_id"] for it in body["items"]]
            return body if got[:2] == ["w00", "s00"] else None
        body = wait_for("the winter item first", winter_first, timeout=10, interval=0.2)
        scores = {it["item_id"]: it["score"] for it in body["items"]}
        # the same popularity term (15 buyers each); the CF term (3 co-buyers
        # of 33: 0.09) weighed by momentum: near all of it for w00, a
        # seventh for s00
        assert scores["w00"] - scores["s00"] > 0.06, scores

        body = top(off.http_port, "alice")
        got = [it["item_id"] for it in body["items"]]
        assert got[:2] == ["s00", "w00"], body
        assert abs(body["items"][0]["score"] - body["items"][1]["score"]) < 1e-9, body
        print(f"momentum: alpha {alpha:.3f}; alice's top two {list(scores)[:2]}: ok")


if __name__ == "__main__":
    main()
