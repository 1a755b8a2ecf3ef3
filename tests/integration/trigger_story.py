"""patron-trigger end to end, with the event clock, over real Kafka and Redis:
the story and the checks that test_trigger.py (one pod of each service, the
trigger SIGKILLed and restarted) and test_trigger_scaleout.py (two pods of
each, one of each SIGKILLed) run.

A hand-made story of a few customers walks the example campaigns
(examples/campaigns.yaml) through their fire, exit and suppression paths,
mixed into the Online Retail subset replayed as background traffic. In the
middle of the stream a patron-trigger is killed with SIGKILL. The run then
checks, against ids computed here from their definition
(campaign_ids.py):
- every message the story expects arrived, exactly once, with its variant,
  channel and decision time; nothing else was sent to the story's customers;
- no message id appears twice on any campaign topic, and every campaign's
  "sent" statistic equals the messages on its topic (nothing lost, nothing
  doubled, the counters exact across the crash);
- the story's suppressions, exits and conversions are counted;
- an erasure removes the customer's trigger state and timers;
- a broken campaigns file stops the service with the line and the reason,
  and a broken reload (SIGHUP) keeps the running campaigns.
"""
import datetime as dt
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import campaign_ids as ids  # noqa: E402  (beside this file, as the tests that import it are)
from harness import (BIN, SRC, SUBSET, Stack, campaign_messages, consume_all, free_port, http, metric,  # noqa: E402
                     produce, proto_modules, run_tool, trigger_stats, wait_for)

from confluent_kafka import Producer  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1,
          "patron.campaign.sms": 2, "patron.campaign.push": 2, "patron.campaign.email": 2}
CAMPAIGNS = os.path.join(SRC, "examples", "campaigns.yaml")
H = 3600_000
D = 24 * H


def ms(*args):
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp() * 1000)


class Story:
    """Events of the story, and the messages they must produce."""

    def __init__(self, pb):
        self.pb, self.events, self.expected = pb, [], []

    def ev(self, eid, cust, at):
        e = self.pb.Event(event_id=eid, customer_id=cust, occurred_at_ms=at)
        self.events.append(e)
        return e

    def profile(self, cust, at, tz="Europe/London", birthday=""):
        e = self.ev(f"{cust}-profile", cust, at)
        e.customer.time_zone = tz
        e.customer.birthday = birthday
        e.customer.locale = "en-GB"

    def consent(self, cust, at, channel, granted=True):
        e = self.ev(f"{cust}-consent-{channel}-{at}", cust, at)
        e.consent.channel = {"sms": self.pb.SMS, "push": self.pb.PUSH, "email": self.pb.EMAIL}[channel]
        e.consent.granted = granted

    def purchase(self, eid, cust, at, cents, item="85123A"):
        e = self.ev(eid, cust, at)
        e.purchase.order_id = eid
        e.purchase.items.add(item_id=item, category="home", quantity=1, unit_price_cents=cents)

    def cart(self, eid, cust, at, item="22423"):
        e = self.ev(eid, cust, at)
        e.cart_add.item.item_id = item
        e.cart_add.item.quantity = 1
        e.cart_add.item.unit_price_cents = 1000

    def view(self, eid, cust, at, item="21232"):
        e = self.ev(eid, cust, at)
        e.view.item_id = item
        e.view.category = "home"

    def expect(self, campaign, cust, channel, at, event_id="", variant=""):
        self.expected.append({"campaign": campaign, "customer": cust, "channel": channel, "at": at,
                              "variant": variant, "id": ids.message_id(campaign, cust, event_id, at)})


def story(pb):
    s = Story(pb)
    T = ms(2011, 3, 1, 12)  # a Tuesday, GMT in London
    # anna: cross-sell twice, cart abandonment (A/B), birthday, win-back; her
    # review request is capped (two e-mails in 7 days already).
    s.profile("anna", T, birthday="03-10")
    for i, ch in enumerate(("sms", "push", "email")):
        s.consent("anna", T + 1000 * (i + 1), ch)
    s.purchase("a-p1", "anna", T + H, 5000)
    s.expect("cross-sell", "anna", "email", T + H, "a-p1")
    s.cart("a-cart", "anna", T + 2 * H)
    s.expect("cart-abandonment", "anna", "push", T + 3 * H, "a-cart",
             ids.variant("cart-abandonment", "anna", [("A", 50), ("B", 50)]))
    s.purchase("a-p2", "anna", T + 5 * H, 2500)  # converts cross-sell and cart
    s.expect("cross-sell", "anna", "email", T + 5 * H, "a-p2")
    s.expect("birthday", "anna", "sms", ms(2011, 3, 10, 10))
    s.expect("winback-60d", "anna", "sms", T + 5 * H + 60 * D, "a-p2")
    # ben: browse exited by a cart add, cart exited by a purchase; no e-mail
    # or sms consent, so cross-sell, review and win-back are suppressed.
    s.profile("ben", T)
    s.consent("ben", T + 1000, "push")
    s.view("b-view", "ben", T + 10 * 60_000)
    s.cart("b-cart", "ben", T + H)
    s.purchase("b-p1", "ben", T + H + 30 * 60_000, 1200)
    # cleo: never bought, so not in the cart campaign's audience
    s.profile("cleo", T)
    s.consent("cleo", T + 1000, "push")
    s.cart("c-cart", "cleo", T + H)
    # dora: revokes push while her browse abandonment waits
    s.profile("dora", T)
    s.consent("dora", T + 1000, "push")
    s.view("d-view", "dora", T + H)
    s.consent("dora", T + 2 * H, "push", granted=False)
    # finn in New York: the browse reminder falls in quiet hours (21:30
    # local) and waits for 09:00 local, 14:00 UTC
    s.profile("finn", T, tz="America/New_York")
    s.consent("finn", T + 1000, "push")
    s.view("f-view", "finn", ms(2011, 3, 2, 0, 30))
    s.expect("browse-abandonment", "finn", "push", ms(2011, 3, 2, 14), "f-view")
    # gus: silver -> gold on his second purchase: the tier upgrade ignores caps
    s.profile("gus", T)
    s.consent("gus", T + 1000, "push")
    s.purchase("g-p1", "gus", T + 2 * H, 60000)
    s.purchase("g-p2", "gus", T + D, 50000)
    s.expect("tier-upgrade", "gus", "push", T + D, "g-p2")
    # hana: five orders in January, then silence: 91 days after her last
    # purchase recency alone makes her at_risk, with no event to say so
    s.profile("hana", ms(2011, 1, 4, 12))
    for d in range(5):
        s.purchase(f"h-p{d}", "hana", ms(2011, 1, 5 + d, 12), 1000)
    s.consent("hana", ms(2011, 4, 1, 12), "email")
    s.expect("at-risk", "hana", "email", ms(2011, 1, 9, 12) + 91 * D)
    # the control group: a customer in the 5 % holdout is never messaged
    ctl = next(f"ctl-{i}" for i in range(10000) if ids.in_control(f"ctl-{i}", 500))
    s.profile(ctl, T)
    s.consent(ctl, T + 1000, "email")
    s.purchase("x-p1", ctl, T + H, 3000)
    s.purchase("x-p2", ctl, T + 2 * D, 3000)  # converts the control's "would have sent"
    # zed: erased at the end: his timers and state go
    s.profile("zed", T)
    s.purchase("z-p1", "zed", T + H, 1000)
    s.ev("z-erase", "zed", ms(2011, 5, 1)).erasure.SetInParent()
    # the clock: a heartbeat customer every hour up to late May
    for i, at in enumerate(range(ms(2011, 1, 1), ms(2011, 5, 25), H)):
        s.view(f"tick-{i}", "zz-clock", at)
    for c in ("anna", "ben", "cleo", "dora", "finn", "gus", "hana", ctl, "zed"):
        assert not ids.in_control(c, 500) or c == ctl, c
    s.events.sort(key=lambda e: e.occurred_at_ms)
    return s, ctl


def background(st, pb):
    """The shop's first half-year (with derived browsing, consents, time
    zones and birthdays), as events in time order."""
    out = os.path.join(st.dir, "retail.bin")
    run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--file", SUBSET, "--out", out,
              "--derive-browse", "--derive-profile", "--until", "2011-06-01"])
    events, data = [], open(out, "rb").read()
    i = 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        e = pb.Event()
        e.ParseFromString(data[i + 4:i + 4 + n])
        events.append(e)
        i += 4 + n
    return events


def stat(st, campaign, counter):
    return sum(v for (c, _, k), v in st.items() if c == campaign and k == counter)


def check_bad_campaigns(st):
    bad = os.path.join(st.dir, "bad.yaml")
    with open(bad, "w") as f:
        f.write("campaigns:\n  - id: x\n    when: { event: cart_add }\n    chanel: push\n    template: t\n")
    env = st.service_env(free_port(), PATRON_CAMPAIGNS=bad)
    r = subprocess.run([os.path.join(BIN, "patron-trigger")], env={**os.environ, **env},
                       capture_output=True, timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err)
    assert "line 4" in err and "chanel" in err, err


def without_model_campaigns(text):
    """The example campaigns but those deciding with the fitted models
    (churn_risk_above, audience clusters): patron-api refits those while the
    story runs, so their messages, and the caps they take, are not the
    story's to predict. test_trigger_backtest.py runs them on fixed models."""
    import yaml  # Debian's python3-yaml
    doc = yaml.safe_load(text)
    doc["campaigns"] = [c for c in doc["campaigns"] if "churn_risk_above" not in c["when"]
                        and "clusters" not in c.get("audience", {})]
    return yaml.safe_dump(doc, sort_keys=False)


def check_reloads(st, trig, campaigns, good):
    """A reload that fails keeps the running campaigns; a good one is taken."""
    log = st.log_path("patron-trigger")
    with open(campaigns, "w") as f:
        f.write("defaults: {oops\n")
    trig.send_signal(signal.SIGHUP)
    wait_for("the failed reload logged", lambda: b"reload failed" in open(log, "rb").read(), timeout=10)
    with open(campaigns, "w") as f:
        f.write(good)
    trig.send_signal(signal.SIGHUP)  # taken between jobs
    wait_for("the reload taken", lambda: b"campaigns reloaded" in open(log, "rb").read(), timeout=30)


def run(pods):
    """pods=1: one of each service, the trigger SIGKILLed and restarted.
    pods=2: two patron-ingest and two patron-trigger in their groups; one of
    each SIGKILLed mid-stream and not restarted: the survivors take over the
    partitions, their timers and the outbox (issue #6's scale-out test)."""
    with Stack("trigger" if pods == 1 else "trigger-scaleout") as st:
        pb = proto_modules(st.dir)
        from patron.v1 import campaign_pb2
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        check_bad_campaigns(st)
        s, ctl = story(pb)

        # the story merged, in event time, into the shop's traffic: every
        # partition is in time order, as a live site's would be
        events = sorted(background(st, pb) + s.events, key=lambda e: e.occurred_at_ms)
        campaigns = os.path.join(st.dir, "campaigns.yaml")
        good = without_model_campaigns(open(CAMPAIGNS).read())
        with open(campaigns, "w") as f:
            f.write(good)
        env = {"PATRON_CLOCK": "event", "PATRON_CAMPAIGNS": campaigns,
               "PATRON_RDKAFKA_SESSION_TIMEOUT_MS": "6000", "PATRON_RDKAFKA_HEARTBEAT_INTERVAL_MS": "500"}
        ingests = [st.start_service("patron-ingest", **env) for _ in range(pods)]
        triggers = [st.start_service("patron-trigger", **env) for _ in range(pods)]
        api = st.start_service("patron-api", PATRON_CLOCK="event")
        trig = triggers[0]
        # garbage on the trigger's own input: dead-lettered, never a stop
        g = Producer({"bootstrap.servers": brokers})
        g.produce("patron.profile-updates", key=b"garbage", value=b"\xff\x00not a protobuf\x07" * 10)
        g.produce("patron.profile-updates", key=b"nobody", value=pb.Event(event_id="x").SerializeToString())
        assert g.flush(10) == 0
        produce(brokers, events)

        # kill -9 while messages flow, then start again (or let the other pod take over)
        wait_for("some campaign messages", lambda: metric(trig.http_port, "patron_trigger_messages_total") >= 30,
                 timeout=180, interval=0.02)
        trig.kill()
        trig.wait()
        if pods == 1:
            trig = st.start_service("patron-trigger", **env)
        else:
            ingests[0].kill()
            ingests[0].wait()
            trig = triggers[1]  # the settling below waits for it to finish everything

        if pods == 1:
            check_reloads(st, trig, campaigns, good)

        # settled: every update consumed, the clock at the end, the outbox empty
        want_ids = {e["id"] for e in s.expected}

        def settled():
            outbox = sum(r.hlen("{tp:%d}:outbox" % p) for p in range(4))
            if outbox or metric(trig.http_port, "patron_trigger_buffered_updates"):
                return False
            got_ids = {m.message_id for _, m in campaign_messages(brokers, campaign_pb2)}
            return want_ids <= got_ids
        try:
            wait_for("the story's messages and an empty outbox", settled, timeout=240, interval=2)
        except AssertionError:
            got_ids = {m.message_id for _, m in campaign_messages(brokers, campaign_pb2)}
            print("missing:", [e for e in s.expected if e["id"] not in got_ids],
                  "outbox:", [r.hlen("{tp:%d}:outbox" % p) for p in range(4)],
                  "buffered:", metric(trig.http_port, "patron_trigger_buffered_updates"), file=sys.stderr)
            # what a timer's firing waits for (trigger_timers.c, fire_bound): the event
            # clock and its idle flags, and each partition's earliest timers
            print("clock:", r.hgetall("{clock}"),
                  "due:", [r.zrange("{tp:%d}:due" % p, 0, 4, withscores=True) for p in range(4)],
                  "stream:", [r.get("{tp:%d}:stream" % p) for p in range(4)],
                  "offset:", [r.get("{tp:%d}:offset" % p) for p in range(4)], file=sys.stderr)
            text = http(trig.http_port, "GET", "/metrics")[1]
            print("metrics:", [ln for ln in str(text).splitlines()
                               if not ln.startswith("#") and ("lag" in ln or "clock" in ln)], file=sys.stderr)
            # decided but suppressed (e.g. "consent": the timer fired before an
            # earlier update of the customer was applied), or never decided
            sv = trigger_stats(r)
            print("stats of the missing campaigns:",
                  {(c, k): v for (c, _, k), v in sv.items()
                   if c in {e["campaign"] for e in s.expected if e["id"] not in got_ids}}, file=sys.stderr)
            raise
        # every update consumed: the committed offsets reach the end
        wait_for("trigger caught up", lambda: metric(trig.http_port, "patron_trigger_updates_total") > 0
                 and metric(trig.http_port, "patron_trigger_buffered_updates") == 0, timeout=60)
        time.sleep(4)  # idle partitions release the last timers (IDLE_MS)

        msgs = campaign_messages(brokers, campaign_pb2)
        seen = {}
        for ch, m in msgs:
            seen.setdefault(m.message_id, []).append((ch, m))
        dups = {k: len(v) for k, v in seen.items() if len(v) > 1}
        assert not dups, f"duplicated messages: {list(dups.items())[:5]}"

        # the story, exactly
        story_customers = {"anna", "ben", "cleo", "dora", "finn", "gus", "hana", ctl, "zed"}
        got = {m.message_id: (ch, m) for ch, m in msgs if m.customer_id in story_customers}
        want = {e["id"]: e for e in s.expected}
        missing = [want[k] for k in want.keys() - got.keys()]
        extra = [(ch, m.campaign_id, m.customer_id, m.created_at_ms) for k, (ch, m) in got.items()
                 if k not in want]
        assert not missing and not extra, f"missing {missing}\nextra {extra}"
        for k, e in want.items():
            ch, m = got[k]
            assert (ch, m.campaign_id, m.customer_id, m.created_at_ms, m.variant) == \
                (e["channel"], e["campaign"], e["customer"], e["at"], e["variant"]), (m, e)
        cross = [m for ch, m in got.values() if m.campaign_id == "cross-sell"]
        assert all(m.template == "you_may_also_like" and len(m.items) > 0 for m in cross), cross
        assert all(i.item_id != "85123A" for m in cross for i in m.items), "bought item recommended"
        win = [m for ch, m in got.values() if m.campaign_id == "winback-60d"]
        assert win and win[0].params["coupon"] == "COMEBACK10", win

        # counters: exact against the topics, and the story's paths counted
        sv = trigger_stats(r)
        for c in ("cart-abandonment", "browse-abandonment", "cross-sell", "review-request",
                  "winback-60d", "at-risk", "tier-upgrade", "birthday"):
            on_topic = sum(1 for _, m in msgs if m.campaign_id == c)
            assert stat(sv, c, "sent") == on_topic, (c, stat(sv, c, "sent"), on_topic)
        assert stat(sv, "browse-abandonment", "exited") >= 1   # ben's cart add
        assert stat(sv, "cart-abandonment", "exited") >= 1     # ben's purchase
        assert stat(sv, "cart-abandonment", "audience") >= 1   # cleo
        assert stat(sv, "browse-abandonment", "consent") >= 1  # dora's revocation
        assert stat(sv, "review-request", "frequency_cap") >= 1  # anna
        assert stat(sv, "cross-sell", "control_group") >= 1    # the holdout
        assert stat(sv, "cross-sell", "control_conversions") >= 1
        assert stat(sv, "cross-sell", "conversions") >= 1      # anna's second purchase
        assert stat(sv, "cross-sell", "revenue_cents") >= 2500

        dead = [m for m in consume_all(brokers, "patron.dlq")
                if dict(m.headers() or []).get("source.topic") == b"patron.profile-updates"]
        # at least once, like every DLQ (README): a restart before the offset
        # was committed sends an entry again, with the same source position
        sources = {(dict(m.headers())["source.partition"], dict(m.headers())["source.offset"], m.key())
                   for m in dead}
        assert len(sources) == 2, [(m.key(), m.headers()) for m in dead]
        assert all(dict(m.headers())["error"] for m in dead)
        assert {m.key() for m in dead} == {b"garbage", b"nobody"}

        # the erased customer left nothing behind
        assert not [k for k in r.scan_iter(match="{tp:*}:c:zed")], "zed's trigger state survived"
        assert all(r.zscore("{tp:%d}:due" % p, "zed") is None for p in range(4))
        assert metric(trig.http_port, "patron_trigger_outbox_resent_total") >= 0
        # the story's profiles are exact (ingest killed too with two pods)
        for cust, orders, spend in (("anna", 2, 7500), ("gus", 2, 110000), ("hana", 5, 5000), (ctl, 2, 6000),
                                    ("ben", 1, 1200)):
            status, prof = http(api.http_port, "GET", f"/v1/customers/{cust}/profile")
            assert status == 200 and (prof["orders"], prof["net_spend_cents"]) == (orders, spend), (cust, prof)
        if pods == 1:  # its ingest was never killed: nothing made it start over
            assert metric(ingests[0].http_port, "patron_ingest_resets_total") == 0
        what = "a kill -9 and a restart" if pods == 1 else "two pods of each, one of each kill -9'd"
        print(f"ok: {len(msgs)} messages, {len(want)} of the story, no duplicates across {what}")
