"""An erasure is complete whatever partitioner the site uses (issue #12).

The customer's events are produced the way a Python, Go, .NET or kcat
producer does by default (librdkafka's CRC32 partitioner), so their trigger
state, timers and outbox entries live on partition q; DELETE
/v1/customers/{id} publishes the ErasureRequest where murmur2 puts it, a
partition p != q. Ingest publishes the applied erasure's ProfileUpdate to
every partition (the copies fan-out): until that lands, this test produces
the fan-out copies itself (marked `fanout`, with a far-future event time;
with the real fan-out they are one more replay of the erasure, which
deletes nothing more).

Then, for the erased customer: no key under any {tp:*} (state, due entry,
outbox entry, its index), no timer fires (a 20 s cart wait, a birthday),
nothing of theirs is ever sent, even the outbox entry a crash had left;
the fan-out copies moved no partition's stream time; a trigger killed
right after and restarted (reading the erasure again) brings nothing back. A control customer
with the same timers and leftover gets its cart reminder and its leftover
resent: the test would see the erased customer's too.
"""
import datetime as dt
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, campaign_messages, http, metric, proto_modules, wait_for  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

N = 4
TOPICS = {"patron.events": N, "patron.catalog": 1, "patron.profile-updates": N, "patron.dlq": 1,
          "patron.campaign.sms": 1, "patron.campaign.push": 1, "patron.campaign.email": 1,
          "scratch.crc32": N, "scratch.murmur2": N}
CAMPAIGNS = """campaigns:
  - id: cart-wait
    when: { event: cart_add }
    wait: 20s
    channel: push
    template: cart_reminder
  - id: birthday
    when: { birthday: true }
    at: "10:00"
    channel: sms
    template: birthday_gift
"""


def partitions_of(brokers, keys):
    """{key: (crc32 partition, murmur2 partition)}, as librdkafka's two
    partitioners place them (delivery reports on scratch topics)."""
    out = {k: [None, None] for k in keys}
    for i, (topic, part) in enumerate((("scratch.crc32", "consistent_random"), ("scratch.murmur2", "murmur2_random"))):
        p = Producer({"bootstrap.servers": brokers, "partitioner": part})
        for k in keys:
            p.produce(topic, key=k.encode(), value=b"x",
                      on_delivery=lambda err, m, k=k, i=i: out[k].__setitem__(i, m.partition()))
        assert p.flush(20) == 0
    return {k: tuple(v) for k, v in out.items()}


def main():
    with Stack("trigger-erasure") as st:
        pb = proto_modules(st.dir)
        from patron.v1 import campaign_pb2, profile_pb2
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        campaigns = os.path.join(st.dir, "campaigns.yaml")
        with open(campaigns, "w") as f:
            f.write(CAMPAIGNS)
        st.start_service("patron-ingest")
        trig = st.start_service("patron-trigger", PATRON_CAMPAIGNS=campaigns)
        api = st.start_service("patron-api")

        # two customers whose CRC32 and murmur2 partitions differ
        where = partitions_of(brokers, [f"cust-{i}" for i in range(40)])
        picked = [k for k, (c, m) in where.items() if c != m][:2]
        assert len(picked) == 2, where
        erin, carl = picked
        q = {c: where[c][0] for c in picked}   # where their events go
        p_erin = where[erin][1]                # where the API sends erin's erasure

        now = int(time.time() * 1000)
        birthday = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=40)).strftime("%m-%d")
        events = []
        for c in picked:
            e = pb.Event(event_id=f"{c}-profile", customer_id=c, occurred_at_ms=now - 5000)
            e.customer.time_zone, e.customer.birthday, e.customer.locale = "UTC", birthday, "en-GB"
            events.append(e)
            for i, ch in enumerate((pb.PUSH, pb.SMS)):
                e = pb.Event(event_id=f"{c}-consent-{ch}", customer_id=c, occurred_at_ms=now - 4000 + i)
                e.consent.channel, e.consent.granted = ch, True
                events.append(e)
            e = pb.Event(event_id=f"{c}-cart", customer_id=c, occurred_at_ms=now - 3000)
            e.cart_add.item.item_id, e.cart_add.item.quantity, e.cart_add.item.unit_price_cents = "sku-1", 1, 999
            events.append(e)
        prod = Producer({"bootstrap.servers": brokers})  # the default partitioner: CRC32
        for e in events:
            prod.produce("patron.events", key=e.customer_id.encode(), value=e.SerializeToString())
        assert prod.flush(20) == 0

        def due(c):
            return r.zscore("{tp:%d}:due" % q[c], c)
        wait_for("both customers' timers pending", lambda: all(due(c) for c in picked), timeout=60)
        assert r.exists("{tp:%d}:c:%s" % (q[erin], erin))

        # what a trigger killed before Kafka acknowledged leaves: an outbox
        # entry (and its index entry, docs/redis.md), resent by the outbox
        # check once older than 15 s
        leftover = {}
        for c in picked:
            m = campaign_pb2.CampaignMessage(message_id=("%032x" % abs(hash(c)))[:32], customer_id=c,
                                             campaign_id="cart-wait", channel=pb.PUSH,
                                             template="cart_reminder", created_at_ms=now)
            rec = b"%d|" % int(time.time() * 1000) + m.SerializeToString()
            r.hset("{tp:%d}:outbox" % q[c], m.message_id, rec)
            r.zadd("{tp:%d}:outbox-index" % q[c], {c.encode() + b"\0" + m.message_id.encode(): 0})
            leftover[c] = m.message_id
        erased_at = int(time.time() * 1000)
        status, body = http(api.port, "DELETE", f"/v1/customers/{erin}")
        assert status == 202, (status, body)

        # the fan-out ingest will do: a copy on every other partition
        marker = erased_at + 30 * 24 * 3600 * 1000
        copy = profile_pb2.ProfileUpdate(customer_id=erin, event_id=f"{erin}-erasure-copy",
                                         kind=profile_pb2.ERASURE, occurred_at_ms=marker,
                                         partition=p_erin, fanout=True)
        for part in range(N):
            if part != p_erin:
                prod.produce("patron.profile-updates", key=erin.encode(), value=copy.SerializeToString(),
                             partition=part)
        assert prod.flush(20) == 0

        def erin_keys():
            keys = [k for k in r.scan_iter(match="{tp:*}:c:%s" % erin)]
            keys += [p for p in range(N) if r.zscore("{tp:%d}:due" % p, erin) is not None]
            keys += [p for p in range(N) if r.zrangebylex("{tp:%d}:outbox-index" % p,
                                                          b"[" + erin.encode() + b"\0", b"(" + erin.encode() + b"\1")]
            keys += [p for p in range(N) if r.hexists("{tp:%d}:outbox" % p, leftover[erin])]
            return keys
        wait_for("nothing of the erased customer left under {tp:*}", lambda: not erin_keys(), timeout=30)
        assert r.exists("{tp:%d}:c:%s" % (q[carl], carl)) and due(carl), "the other customer was touched"
        # the copies are not part of their partitions' event-time order
        streams = {p: int(r.get("{tp:%d}:stream" % p) or 0) for p in range(N)}
        assert all(s < marker for s in streams.values()), (streams, marker)
        assert metric(trig.port, "patron_trigger_erasures_total", 'copy="fanout"') >= N - 1
        assert metric(trig.port, "patron_trigger_erased_outbox_total") >= 1
        # kill -9 before the consumer commits its offsets: what the new
        # trigger reads again (the erasure, its copies, maybe earlier updates
        # of the customer) brings nothing back and fails nothing
        trig.kill()
        trig.wait()
        trig = st.start_service("patron-trigger", PATRON_CAMPAIGNS=campaigns)
        for part in range(N):  # a marker behind everything on each partition
            mark = profile_pb2.ProfileUpdate(customer_id="zz-marker", event_id=f"mark-{part}",
                                             kind=profile_pb2.VIEW, occurred_at_ms=erased_at, partition=part)
            prod.produce("patron.profile-updates", key=b"m", value=mark.SerializeToString(), partition=part)
        assert prod.flush(20) == 0
        wait_for("the restarted trigger past the markers",
                 lambda: all(r.exists("{tp:%d}:c:zz-marker" % part) for part in range(N)), timeout=60)
        assert not erin_keys(), erin_keys()
        assert metric(trig.port, "patron_trigger_job_failures_total") == 0

        # carl's cart wait fires and his leftover is resent; nothing of erin's, ever
        def carl_done():
            got = campaign_messages(brokers, campaign_pb2)
            ids = {m.message_id for _, m in got if m.customer_id == carl}
            return leftover[carl] in ids and any(m.campaign_id == "cart-wait" and m.message_id != leftover[carl]
                                                 for _, m in got if m.customer_id == carl)
        wait_for("the other customer's reminder and leftover", carl_done, timeout=60, interval=1)
        time.sleep(6)  # one more outbox check
        sent = [(ch, m.campaign_id, m.message_id) for ch, m in campaign_messages(brokers, campaign_pb2)
                if m.customer_id == erin]
        assert not sent, f"sent to the erased customer: {sent}"
        assert not erin_keys()
        print(f"ok: {erin} (events on {q[erin]}, erasure on {p_erin}) left nothing and got nothing; "
              f"{carl} got his reminder and his leftover")


if __name__ == "__main__":
    main()
