"""Redis stalls mid-stream (SIGSTOP): patron-ingest times out, says so, and resumes without loss.

A stopped Redis keeps its connections open and answers nothing, as a stuck
fork or a long script does. patron-ingest's commands carry a deadline
(PATRON_REDIS_TIMEOUT_MS, 5 s by default): when it passes, the connection is
dropped and every pending reply fails, which must take ingest down its
existing Redis-failure path — /readyz 503, /healthz 200, offsets frozen, a
reset. After SIGCONT, Redis also runs whatever the dropped connection had
already sent, so batches ingest counted as failed may be half applied: once
it reconnects and replays from the stored offsets, every profile must still
equal the independent oracle.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SUBSET, Stack, assert_profiles_exact, committed, expected_profiles, http,  # noqa: E402
                     metric, run_tool, wait_for)

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}


def main():
    expected = expected_profiles()
    with Stack("redis-stall") as st:
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                                       "--topic", "patron.events", "--file", SUBSET]).strip().splitlines()[-1])
        env = {"PATRON_BATCH_MAX": "10", "PATRON_INFLIGHT_BATCHES": "2",
               "PATRON_RDKAFKA_AUTO_COMMIT_INTERVAL_MS": "200"}
        ingest = st.start_service("patron-ingest", **env)
        wait_for("a third of the events", lambda: metric(ingest.http_port, "patron_ingest_events_total")
                 >= summary["events"] // 3, timeout=60, interval=0.01)

        st.redis.send_signal(signal.SIGSTOP)  # batches in flight wait for replies that do not come
        try:
            t0 = time.monotonic()
            wait_for("/readyz to say not ready", lambda: http(ingest.http_port, "GET", "/readyz")[0] == 503,
                     timeout=10, interval=0.1)
            seen_after = time.monotonic() - t0
            time.sleep(1.0)  # let any commit in flight land
            frozen = committed(brokers, TOPICS["patron.events"])
            time.sleep(3.0)
            assert http(ingest.http_port, "GET", "/healthz")[0] == 200, "ingest must stay alive"
            assert http(ingest.http_port, "GET", "/readyz")[0] == 503
            assert committed(brokers, TOPICS["patron.events"]) == frozen, "offsets moved while Redis was stalled"
            assert ingest.poll() is None, "ingest exited on a stalled Redis"
        finally:
            st.redis.send_signal(signal.SIGCONT)
        wait_for("/readyz ready again", lambda: http(ingest.http_port, "GET", "/readyz")[0] == 200, timeout=30)
        assert metric(ingest.http_port, "patron_ingest_resets_total") >= 1

        api = st.start_service("patron-api")
        assert_profiles_exact(api.http_port, expected, " after the stall")
        assert st.stop(ingest) == 0 and st.stop(api) == 0
        print(f"ok: not ready {seen_after:.1f} s into a Redis stall; {len(expected)} customers exact after it; "
              "offsets frozen while it lasted")


if __name__ == "__main__":
    main()
