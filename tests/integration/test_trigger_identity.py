"""Campaigns see the merged customer (docs/guarantees.md, "Identity").

patron-ingest, patron-trigger and patron-api on the event clock, the
example campaigns (examples/campaigns.yaml). Customers who browsed as
visitors (their events keyed by the anonymous id, on other partitions than
theirs) and then logged in. The story goes in three steps, each produced
once the one before is applied: the browsing, the logins, what came after —
so that each login finds its visitor's cart as a live shop's would (two
partitions replayed at their own pace could apply a visitor's later events
before its login):
- kim filled a cart as a visitor and logged in: exactly one
  cart-abandonment message, an hour after the login, to kim (under kim's
  push consent, with the Identify's deterministic message id); a later
  purchase made under the visitor's anonymous id converts it;
- lee did the same without push consent: suppressed (consent), no message;
- mia logged in and bought within the hour: the wait ended (exited);
- nia's visitor only looked: no cart message;
- a visitor who never logged in filled a cart: nothing at all (a visitor
  cannot be messaged, the trigger keeps no state for it).
"""
import datetime as dt
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import campaign_ids as ids  # noqa: E402
from harness import (SRC, Stack, campaign_messages, consume_all, http, metric, produce, proto_modules,  # noqa: E402
                     trigger_stats, wait_for)

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1,
          "patron.campaign.sms": 1, "patron.campaign.push": 1, "patron.campaign.email": 1}
CAMPAIGNS = os.path.join(SRC, "examples", "campaigns.yaml")
MIN, H = 60_000, 3_600_000
T = int(dt.datetime(2011, 3, 1, 12, tzinfo=dt.timezone.utc).timestamp() * 1000)


def stat(sv, campaign, counter):
    return sum(v for (c, _, k), v in sv.items() if c == campaign and k == counter)


def main():
    with Stack("trigger-identity") as st:
        pb = proto_modules(st.dir)
        from patron.v1 import campaign_pb2
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        events, n = [], [0]

        def ev(at, customer="", visitor="", event_id=None):
            n[0] += 1
            e = pb.Event(event_id=event_id or f"e{n[0]}", occurred_at_ms=at, customer_id=customer,
                         anonymous_id=visitor)
            events.append(e)
            return e

        def known(c, push):
            e = ev(T - 50 * MIN, c)
            e.customer.time_zone, e.customer.locale = "Europe/London", "en-GB"
            e = ev(T - 40 * MIN, c)
            e.consent.channel, e.consent.granted = pb.PUSH, push
            e = ev(T - 30 * MIN, c)  # one order: segment "new", in the cart campaign's audience
            e.purchase.items.add(item_id="first", category="home", quantity=1, unit_price_cents=2000)

        def browse(v, at, cart=True):
            e = ev(at, visitor=v)
            e.view.item_id, e.view.category = "22423", "home"
            if cart:
                e = ev(at + MIN, visitor=v)
                e.cart_add.item.item_id, e.cart_add.item.quantity = "22423", 1
                e.cart_add.item.unit_price_cents = 1000

        def identify(c, v, at):
            e = ev(at, c, event_id=f"id-{c}")
            e.identify.anonymous_id = v

        people = ("kim", "lee", "mia", "nia")
        assert not any(ids.in_control(c, 500) for c in people), "a customer in the holdout"
        for c in people:
            known(c, push=c != "lee")
            browse(f"anon-{c}", T + H, cart=c != "nia")
            identify(c, f"anon-{c}", T + 2 * H)
        e = ev(T + 2 * H + 30 * MIN, "mia")  # bought within the hour: exited
        e.purchase.items.add(item_id="22423", category="home", quantity=1, unit_price_cents=1000)
        e = ev(T + 5 * H, visitor="anon-kim")  # kim, still under the cookie: converts
        e.purchase.items.add(item_id="22423", category="home", quantity=1, unit_price_cents=1000)
        browse("anon-stranger", T + H)  # never logs in
        for i, at in enumerate(range(T - H, T + 12 * H, 10 * MIN)):  # the event clock
            e = ev(at, "zz-clock", event_id=f"tick-{i}")
            e.view.item_id = "tick"
        events.sort(key=lambda e: e.occurred_at_ms)

        env = {"PATRON_CLOCK": "event", "PATRON_CAMPAIGNS": CAMPAIGNS}
        st.start_service("patron-ingest", **env)
        trig = st.start_service("patron-trigger", **env)
        api = st.start_service("patron-api").http_port

        def body(path):
            status, b = http(api, "GET", path)
            return b if status == 200 else {}
        steps = [(T + 2 * H, lambda: all(len(body(f"/v1/visitors/anon-{c}/profile").get("cart", [])) == (c != "nia")
                                          for c in people)),
                 (T + 2 * H + MIN, lambda: all(body(f"/v1/customers/{c}/profile").get("merged_visitors")
                                               for c in people)),
                 (None, None)]
        for until, applied in steps:
            now = [e for e in events if until is None or e.occurred_at_ms < until]
            events = events[len(now):]
            produce(brokers, now)
            if applied:
                wait_for(f"the events before {until - T} ms applied", applied, timeout=60, interval=0.5)
        want = ids.message_id("cart-abandonment", "kim", "id-kim", T + 3 * H)

        def kims():
            return [m for ch, m in campaign_messages(brokers, campaign_pb2)
                    if m.campaign_id == "cart-abandonment"]
        try:
            wait_for("kim's cart reminder", lambda: any(m.message_id == want for m in kims()), timeout=120,
                     interval=1)
        except AssertionError:
            print("cart messages:", [(m.customer_id, m.created_at_ms) for m in kims()],
                  "stats:", trigger_stats(r), "clock:", r.hgetall("{clock}"),
                  "due:", [r.zrange("{tp:%d}:due" % p, 0, 4, withscores=True) for p in range(4)],
                  file=sys.stderr)
            from patron.v1 import profile_pb2
            for m in consume_all(brokers, "patron.profile-updates"):
                u = profile_pb2.ProfileUpdate()
                u.ParseFromString(m.value())
                if u.customer_id in ("kim", "lee"):
                    print(m.partition(), m.offset(), u.customer_id, u.kind, u.occurred_at_ms - T,
                          list(u.item_ids), u.anonymous_id, u.segment, file=sys.stderr)
            raise
        wait_for("the conversion", lambda: stat(trigger_stats(r), "cart-abandonment", "conversions") >= 1,
                 timeout=60, interval=1)
        wait_for("trigger caught up", lambda: metric(trig.http_port, "patron_trigger_buffered_updates") == 0,
                 timeout=60)
        time.sleep(3)

        msgs = campaign_messages(brokers, campaign_pb2)
        carts = [m for _, m in msgs if m.campaign_id == "cart-abandonment"]
        assert [(m.customer_id, m.message_id, m.created_at_ms, m.trigger_event_id) for m in carts] == \
            [("kim", want, T + 3 * H, "id-kim")], carts
        assert carts[0].variant == ids.variant("cart-abandonment", "kim", [("A", 50), ("B", 50)])
        assert not [m for _, m in msgs if m.customer_id.startswith("anon-")], "a visitor was messaged"
        assert not [m for _, m in msgs if m.customer_id in ("lee", "mia", "nia")
                    and m.campaign_id in ("cart-abandonment", "browse-abandonment")]
        sv = trigger_stats(r)
        assert stat(sv, "cart-abandonment", "consent") >= 1, sv    # lee
        assert stat(sv, "cart-abandonment", "exited") >= 1, sv     # mia
        assert stat(sv, "cart-abandonment", "conversions") == 1, sv  # kim, as a visitor still
        keys = [k.decode() for k in r.scan_iter("{tp:*}:c:*")]
        assert not [k for k in keys if ":c:anon-" in k], f"trigger state of a visitor: {keys}"
        print(f"ok: one cart reminder for kim after her login ({want}), lee suppressed, mia exited, "
              f"nia and the stranger left alone, kim's purchase as a visitor converted it")


if __name__ == "__main__":
    main()
