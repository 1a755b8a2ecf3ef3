"""patron-trigger and what it cannot apply (issue #12): a bad record never
stalls it, a failure of Redis or Kafka never loses one.

Updates are produced straight to patron.profile-updates (a broken or hostile
producer can write there too), one partition at a time so that they share
jobs:
- records that cannot be applied (garbage, 1,001 items, an id with a NUL,
  an id over 64 bytes) and customers whose stored state cannot be used (not
  a TriggerState, a hash, 300 KB, another customer's) go to patron.dlq with
  their reason; the corrupt values are kept byte for byte, counted and
  logged; the job's other customers get their messages; a sweep drops a
  corrupt customer's due entry and fires the timer behind it; an erasure
  deletes a corrupt state all the same;
- a key of a partition of another type ({tp:1}:due a string) or not an
  integer ({tp:3}:stream) stops that partition alone, /readyz stays 200;
  once the operator fixes it, everything sent meanwhile is applied;
- Redis down (stopped and started again from its AOF) and Kafka down
  (patron-devkafka SIGSTOPped past the producer's 10 s delivery timeout)
  while updates and dead letters flow: every update applied, every dead
  letter in the DLQ, no message twice.
"""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, campaign_messages, consume_all, http, metric, proto_modules, wait_for  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

TOPICS = {"patron.profile-updates": 4, "patron.dlq": 1,
          "patron.campaign.sms": 1, "patron.campaign.push": 1, "patron.campaign.email": 1}
CAMPAIGNS = """campaigns:
  - id: thanks
    when: { event: purchase }
    channel: push
    template: thanks
  - id: cart-wait
    when: { event: cart_add }
    wait: 1s
    channel: push
    template: cart_reminder
"""


class Rig:
    def __init__(self, st, pb, brokers):
        from patron.v1 import profile_pb2
        self.st, self.pb, self.ppb = st, pb, profile_pb2
        self.prod = Producer({"bootstrap.servers": brokers, "linger.ms": 50})
        self.n = 0

    def update(self, cust, kind="PURCHASE", items=(), at=None):
        self.n += 1
        return self.ppb.ProfileUpdate(customer_id=cust, event_id=f"ev-{self.n}", kind=getattr(self.ppb, kind),
                                      occurred_at_ms=at or int(time.time() * 1000), consent_push=True,
                                      item_ids=list(items), segment="new", tier="bronze").SerializeToString()

    def send(self, partition, values):
        for v in values:
            self.prod.produce("patron.profile-updates", key=b"k", value=v, partition=partition)
        assert self.prod.flush(30) == 0


def sent_to(brokers, campaign_pb2):
    return [m.customer_id for _, m in campaign_messages(brokers, campaign_pb2)]


def dead_letters(brokers):
    """{(partition, offset): error} of the trigger's dead letters."""
    out = {}
    for m in consume_all(brokers, "patron.dlq"):
        h = dict(m.headers() or [])
        if h.get("source.topic") == b"patron.profile-updates":
            out[(int(h["source.partition"]), int(h["source.offset"]))] = h["error"].decode()
    return out


def check_records_and_states(st, rig, r, brokers, trig, campaign_pb2, trigger_pb2):
    corrupt = {
        "bad-bytes": b"\xff\xfe not a TriggerState",
        "bad-big": b"\x0a" * (300 * 1024),
        "bad-other": trigger_pb2.TriggerState(customer_id="someone-else").SerializeToString(),
    }
    for c, v in corrupt.items():
        r.set("{tp:0}:c:%s" % c, v)
    r.hset("{tp:0}:c:bad-type", "written", "by another tool")
    before = {c: r.dump("{tp:0}:c:%s" % c) for c in list(corrupt) + ["bad-type"]}
    rig.send(0, [rig.update("bad-bytes"), rig.update("good-1"), rig.update("bad-type"), b"\xff\x00garbage" * 9,
                 rig.update("good-2"), rig.update("bad-other"), rig.update("many", items=["i"] * 1001),
                 rig.update("x\0y"), rig.update("l" * 65), rig.update("bad-big"), rig.update("good-3")])
    wait_for("the good customers' messages", lambda: {"good-1", "good-2", "good-3"} <= set(sent_to(brokers, campaign_pb2)),
             timeout=30)
    want = {"stored trigger state unreadable", "stored trigger state of another Redis type",
            "stored trigger state of another customer", "stored trigger state too big", "not a ProfileUpdate",
            "too many item_ids", "a string holds a NUL byte", "customer_id too long"}
    wait_for("a dead letter for each", lambda: set(dead_letters(brokers).values()) >= want, timeout=30)
    got = set(sent_to(brokers, campaign_pb2))
    assert not got & {"bad-bytes", "bad-type", "bad-other", "bad-big", "x", "many"}, got
    for c, d in before.items():
        assert r.dump("{tp:0}:c:%s" % c) == d, f"{c}'s stored value was changed"
    for reason in ("unreadable", "wrong_type", "too_big", "other_customer"):
        assert metric(trig.port, "patron_trigger_bad_state_total", f'reason="{reason}"') >= 1, reason
    assert b"stored trigger state cannot be used" in open(st.log_path("patron-trigger"), "rb").read()

    # a sweep: the corrupt customer's due entry goes, the timer behind it fires
    r.zadd("{tp:0}:due", {"bad-bytes": 1})
    rig.send(0, [rig.update("waiting", kind="CART_ADD")])
    wait_for("the timer behind a corrupt customer fires", lambda: "waiting" in sent_to(brokers, campaign_pb2),
             timeout=30)
    wait_for("the corrupt customer's due entry dropped", lambda: r.zscore("{tp:0}:due", "bad-bytes") is None)
    assert r.dump("{tp:0}:c:bad-bytes") == before["bad-bytes"]
    # an erasure deletes a corrupt state all the same
    rig.send(0, [rig.update("bad-type", kind="ERASURE")])
    wait_for("the erasure deletes the corrupt state", lambda: not r.exists("{tp:0}:c:bad-type"), timeout=30)


def check_partition_keys(st, rig, r, brokers, trig, campaign_pb2):
    """{tp:1}:due a string stops partition 1; {tp:3}:stream "abc" stops
    partition 3 at its take (set before the trigger started)."""
    r.set("{tp:1}:due", "not a sorted set")
    rig.send(1, [rig.update("p1-a")])
    wait_for("partition 1 stopped", lambda: metric(trig.port, "patron_trigger_partitions_stopped") == 2, timeout=30)
    rig.send(1, [rig.update("p1-b"), rig.update("p1-c")])
    rig.send(2, [rig.update("p2-a")])
    wait_for("the other partitions go on", lambda: "p2-a" in sent_to(brokers, campaign_pb2), timeout=30)
    assert http(trig.port, "GET", "/readyz")[0] == 200
    log = open(st.log_path("patron-trigger"), "rb").read()
    assert b"partition stopped" in log and b"{tp:1}:due" in log and b"{tp:3}:stream" in log
    time.sleep(6)  # a look at the keys finds them still bad
    got = set(sent_to(brokers, campaign_pb2))
    assert not got & {"p1-a", "p1-b", "p1-c", "p3-a"}, got
    assert r.get("{tp:1}:due") == b"not a sorted set" and r.get("{tp:3}:stream") == b"abc"
    # the operator's fix: everything sent meanwhile is applied, once
    r.delete("{tp:1}:due")
    r.set("{tp:3}:stream", "0")
    wait_for("the stopped partitions' updates applied",
             lambda: {"p1-a", "p1-b", "p1-c", "p3-a"} <= set(sent_to(brokers, campaign_pb2)), timeout=40)
    assert metric(trig.port, "patron_trigger_partitions_stopped") == 0


def check_outages(st, rig, r, brokers, trig, campaign_pb2):
    """Redis down, then Kafka down, while good updates and garbage flow to
    partition 2: nothing lost, nothing doubled."""
    goods, pills = [], []
    stop = threading.Event()

    def flow():
        i = 0
        while not stop.is_set():
            goods.append(f"flow-{i}")
            rig.prod.produce("patron.profile-updates", key=b"k", value=rig.update(f"flow-{i}"), partition=2)
            rig.prod.produce("patron.profile-updates", key=b"k", value=b"\xff\x01pill-%d" % i, partition=2,
                             on_delivery=lambda err, m: pills.append(m.offset()) if not err else None)
            rig.prod.poll(0)
            i += 1
            time.sleep(0.05)
    t = threading.Thread(target=flow)
    t.start()
    try:
        time.sleep(2)
        st.stop(st.redis)  # AOF: it comes back with its data
        time.sleep(3)
        st.start_redis(extra=["--appendonly", "yes", "--appendfsync", "always"], port=st.redis_port)
        time.sleep(3)
        os.kill(st.kafka.pid, signal.SIGSTOP)
        time.sleep(12)  # past the trigger producer's message.timeout.ms
        os.kill(st.kafka.pid, signal.SIGCONT)
        time.sleep(3)
    finally:
        stop.set()
        t.join()
    assert rig.prod.flush(60) == 0
    wait_for("every update of the flow applied", lambda: set(goods) <= set(sent_to(brokers, campaign_pb2)),
             timeout=90, interval=2)
    wait_for("every pill dead-lettered", lambda: {(2, o) for o in pills} <= set(dead_letters(brokers)),
             timeout=60, interval=2)
    sent = [c for c in sent_to(brokers, campaign_pb2) if c.startswith("flow-")]
    assert len(sent) == len(set(sent)), "a message sent twice"
    assert metric(trig.port, "patron_trigger_job_failures_total") >= 1, "no job was redone: no outage seen"
    return len(goods), len(pills)


def main():
    with Stack("trigger-poison") as st:
        pb = proto_modules(st.dir)
        from patron.v1 import campaign_pb2, trigger_pb2
        r = st.start_redis(extra=["--appendonly", "yes", "--appendfsync", "always"])
        brokers = st.start_kafka(TOPICS)
        r.set("{tp:3}:stream", "abc")
        campaigns = os.path.join(st.dir, "campaigns.yaml")
        with open(campaigns, "w") as f:
            f.write(CAMPAIGNS)
        trig = st.start_service("patron-trigger", PATRON_CAMPAIGNS=campaigns)
        rig = Rig(st, pb, brokers)
        rig.send(3, [rig.update("p3-a")])
        check_records_and_states(st, rig, r, brokers, trig, campaign_pb2, trigger_pb2)
        check_partition_keys(st, rig, r, brokers, trig, campaign_pb2)
        goods, pills = check_outages(st, rig, st.r, brokers, trig, campaign_pb2)
        print(f"ok: bad records and states dead-lettered, bad keys stop only their partition, "
              f"{goods} updates and {pills} pills through a Redis and a Kafka outage")


if __name__ == "__main__":
    main()
