"""Redis goes away mid-stream: patron-ingest stops, says so, and resumes without loss.

Redis runs with appendfsync always, so what it acknowledged survives its
SIGKILL. patron-ingest must then: stop consuming (its offsets do not move
while Redis is down), answer 503 on /readyz, keep answering /healthz, retry
with backoff, and once Redis is back resume from the stored offsets so that
every profile still equals the independent oracle.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SUBSET, Stack, assert_profiles_exact, committed, expected_profiles, http,  # noqa: E402
                     metric, run_tool, wait_for)

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}


def main():
    expected = expected_profiles()
    with Stack("redis-outage") as st:
        durable = ["--appendonly", "yes", "--appendfsync", "always"]
        st.start_redis(durable)
        brokers = st.start_kafka(TOPICS)
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                                       "--topic", "patron.events", "--file", SUBSET]).strip().splitlines()[-1])
        env = {"PATRON_BATCH_MAX": "10", "PATRON_INFLIGHT_BATCHES": "2",
               "PATRON_RDKAFKA_AUTO_COMMIT_INTERVAL_MS": "200"}
        ingest = st.start_service("patron-ingest", **env)
        wait_for("a third of the events", lambda: metric(ingest.http_port, "patron_ingest_events_total")
                 >= summary["events"] // 3, timeout=60, interval=0.01)

        st.redis.kill()  # SIGKILL: in-flight batches lose their replies
        st.redis.wait()
        wait_for("/readyz to say not ready", lambda: http(ingest.http_port, "GET", "/readyz")[0] == 503, timeout=10)
        time.sleep(1.0)  # let any commit in flight land
        frozen = committed(brokers, TOPICS["patron.events"])
        time.sleep(3.0)
        assert http(ingest.http_port, "GET", "/healthz")[0] == 200, "ingest must stay alive without Redis"
        assert http(ingest.http_port, "GET", "/readyz")[0] == 503
        assert committed(brokers, TOPICS["patron.events"]) == frozen, "offsets moved while Redis was down"
        assert ingest.poll() is None, "ingest exited without Redis"

        # Back on the same port, with what it had acknowledged.
        st.redis = st.spawn("redis2", ["redis-server", "--port", str(st.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", *durable, "--dir", st.dir])
        wait_for("redis back", lambda: st.r.ping(), timeout=10)
        wait_for("/readyz ready again", lambda: http(ingest.http_port, "GET", "/readyz")[0] == 200, timeout=30)
        assert metric(ingest.http_port, "patron_ingest_resets_total") >= 1

        api = st.start_service("patron-api")
        assert_profiles_exact(api.http_port, expected, " after the outage")
        assert st.stop(ingest) == 0 and st.stop(api) == 0
        print(f"ok: {len(expected)} customers exact across a Redis SIGKILL; offsets frozen while it was down")


if __name__ == "__main__":
    main()
