"""Two patron-ingest processes share the partitions; one dies mid-stream.

Both join the group `patron-ingest` and split patron.events; one is killed
with SIGKILL while events flow, the survivor takes its partitions over
(a rebalance: revoke, assign, replay from the stored offsets) and every
profile still equals the independent oracle, with 5% of the events resent.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SUBSET, Stack, assert_profiles_exact, expected_profiles, http, metric,  # noqa: E402
                     run_tool, wait_for)

TOPICS = {"patron.events": 8, "patron.catalog": 2, "patron.profile-updates": 8, "patron.dlq": 1}


def main():
    expected = expected_profiles()
    with Stack("ingest-scaleout") as st:
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        env = {"PATRON_BATCH_MAX": "20", "PATRON_INFLIGHT_BATCHES": "2",
               "PATRON_RDKAFKA_SESSION_TIMEOUT_MS": "6000", "PATRON_RDKAFKA_HEARTBEAT_INTERVAL_MS": "500"}
        a = st.start_service("patron-ingest", **env)
        b = st.start_service("patron-ingest", **env)
        # both members own partitions before the events come (the mock
        # coordinator's rounds can take tens of seconds on a loaded machine)
        wait_for("two members with partitions", lambda: "partitions assigned" in open(st.log_path("patron-ingest")).read()
                 and open(st.log_path("patron-ingest")).read().count("partitions assigned") >= 2, timeout=90)
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                                       "--topic", "patron.events", "--file", SUBSET, "--resend-percent", "5",
                                       "--seed", "11"]).strip().splitlines()[-1])
        total = summary["events"] + summary["resent"]
        wait_for("both members well into their partitions",
                 lambda: metric(a.http_port, "patron_ingest_events_total") > 0
                 and metric(b.http_port, "patron_ingest_events_total") >= total // 6, timeout=60, interval=0.02)
        done_by_b = metric(b.http_port, "patron_ingest_events_total")
        b.kill()
        b.wait()
        assert done_by_b < total, "the killed member had already finished: the test proves nothing"

        api = st.start_service("patron-api")
        assert_profiles_exact(api.http_port, expected, " after the takeover")
        assert http(a.http_port, "GET", "/readyz")[0] == 200
        assert st.stop(a) == 0 and st.stop(api) == 0
        print(f"ok: {len(expected)} customers exact after one of two ingest members was killed "
              f"({int(done_by_b)} of {total} events were its)")


if __name__ == "__main__":
    main()
