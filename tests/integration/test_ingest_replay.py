"""The Online Retail subset through the real path, with trouble on the way.

Kafka (embedded) -> patron-ingest -> Redis -> patron-api, with 5% of the
events resent, 50 garbage messages mixed in, and patron-ingest killed with
SIGKILL halfway and restarted. Every customer's orders, net spend, points,
tier, last purchase and RFM f/m must equal what scripts/expected_profiles.py
computes independently from the CSV; every garbage message must be in the
DLQ; a ProfileUpdate must exist for every applied event.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SUBSET, Stack, assert_profiles_exact, consume_all, expected_profiles, http,  # noqa: E402
                     metric, run_tool, wait_for)

TOPICS = {"patron.events": 8, "patron.catalog": 2, "patron.profile-updates": 8, "patron.dlq": 2}


def main():
    expected = expected_profiles()
    assert len(expected) > 100, "the subset should hold a few hundred customers"
    with Stack("ingest-replay") as st:
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                                       "--topic", "patron.events", "--file", SUBSET, "--resend-percent", "5",
                                       "--garbage", "50", "--seed", "7"]).strip().splitlines()[-1])
        assert summary["garbage"] == 50 and summary["resent"] > 0, summary
        total = summary["events"] + summary["resent"] + summary["garbage"]

        # Small batches so that the kill lands mid-stream; a short session so
        # that the group notices the killed member in seconds, not 45.
        env = {"PATRON_BATCH_MAX": "20", "PATRON_INFLIGHT_BATCHES": "2",
               "PATRON_RDKAFKA_SESSION_TIMEOUT_MS": "6000", "PATRON_RDKAFKA_HEARTBEAT_INTERVAL_MS": "500"}
        ingest = st.start_service("patron-ingest", **env)
        wait_for("ingest halfway", lambda: metric(ingest.http_port, "patron_ingest_events_total") >= total // 2,
                 timeout=120, interval=0.02)
        ingest.kill()
        ingest.wait()
        before = int(r.dbsize())
        assert before > 0, "the first run wrote nothing before the kill"

        ingest = st.start_service("patron-ingest", **env)
        api = st.start_service("patron-api")
        wait_for("ingest ready", lambda: http(ingest.http_port, "GET", "/readyz")[0] == 200, timeout=30)

        assert_profiles_exact(api.http_port, expected, timeout=180)

        # The DLQ is at least once: a batch replayed after the kill sends its
        # entries again, with the same source coordinates to dedupe by.
        dlq = consume_all(brokers, "patron.dlq")
        sources, keys = set(), set()
        for m in dlq:
            headers = dict(m.headers() or [])
            for h in ("error", "source.topic", "source.partition", "source.offset"):
                assert h in headers, f"DLQ message without header {h}: {headers}"
            assert headers["source.topic"] == b"patron.events"
            assert headers["error"], "a DLQ entry must say why"
            sources.add((headers["source.partition"], headers["source.offset"]))
            keys.add(m.key())
        assert keys == {b"garbage-%d" % i for i in range(50)}, f"DLQ keys: {sorted(keys)[:10]}..."
        assert len(sources) == 50, f"{len(sources)} distinct garbage messages in the DLQ, expected 50"

        updates = consume_all(brokers, "patron.profile-updates")
        assert len(updates) >= summary["events"], \
            f"{len(updates)} profile updates for {summary['events']} events: some were lost"

        assert st.stop(ingest) == 0, "patron-ingest did not exit cleanly on SIGTERM"
        assert st.stop(api) == 0, "patron-api did not exit cleanly on SIGTERM"
        print(f"ok: {len(expected)} customers exact; {total} messages ({summary['resent']} resent, "
              f"50 garbage); {len(updates)} profile updates")


if __name__ == "__main__":
    main()
