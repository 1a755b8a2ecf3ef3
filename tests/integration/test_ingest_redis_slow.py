"""Redis slows down to a fifth of its speed: patron-ingest paces itself and gets through.

Redis is stopped for 40 ms of every 50 (SIGSTOP/SIGCONT), as a starved CPU
or a noisy neighbour would slow it, and patron-ingest's Redis timeout is
250 ms. The whole Online Retail subset fits one batch; at that speed Redis
cannot answer it within the timeout. Without pacing, every replay sent the
same batch again and timed out again: the offsets never moved. With it
(pace.h), each timeout halves the batch and the batches in flight, and
batches answered late halve them before the deadline, so that:
- every event is committed, after at most as many resets as halvings
  take the pace from full to its floor;
- /metrics shows the pace cut, and the log says why;
- every profile equals the independent oracle;
- once Redis is back to speed, quick batches raise the pace back to full.
"""
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SUBSET, Stack, assert_profiles_exact, committed, expected_profiles,  # noqa: E402
                     metric, run_tool, wait_for)

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}
STOPPED_S, RUNNING_S = 0.040, 0.010
# At most one reset per halving from full pace to the floor (pace.h: 1 ->
# 1/1024); a replay that times out again and again makes dozens.
MAX_RESETS = 10


class Slowdown:
    """Stops and continues a process on a duty cycle, in a thread, until closed."""

    def __init__(self, proc):
        self.proc, self.done = proc, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            self.proc.send_signal(signal.SIGSTOP)
            time.sleep(STOPPED_S)
            self.proc.send_signal(signal.SIGCONT)
            time.sleep(RUNNING_S)

    def close(self):
        self.done.set()
        self.thread.join()
        self.proc.send_signal(signal.SIGCONT)


def main():
    expected = expected_profiles()
    with Stack("redis-slow") as st:
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                                       "--topic", "patron.events", "--file", SUBSET]).strip().splitlines()[-1])
        n = summary["events"]

        slow = Slowdown(st.redis)
        try:
            ingest = st.start_service("patron-ingest", PATRON_REDIS_TIMEOUT_MS="250",
                                      PATRON_RDKAFKA_AUTO_COMMIT_INTERVAL_MS="200")
            lowest = [1.0]

            def all_committed():
                lowest[0] = min(lowest[0], metric(ingest.http_port, "patron_ingest_pace"))
                return sum(committed(brokers, TOPICS["patron.events"]).values()) >= n

            t0 = time.monotonic()
            wait_for(f"all {n} events committed through a slow Redis", all_committed, timeout=120, interval=0.5)
            took = time.monotonic() - t0
        finally:
            slow.close()

        resets = metric(ingest.http_port, "patron_ingest_resets_total")
        assert resets <= MAX_RESETS, f"{resets:.0f} resets: the pace did not settle"
        assert lowest[0] < 1.0, f"the pace never went down (lowest {lowest[0]})"
        with open(st.log_path("patron-ingest")) as f:
            log = f.read()
        assert '"msg":"slowing down"' in log, "the log must say why ingest slowed down"
        api = st.start_service("patron-api")
        assert_profiles_exact(api.http_port, expected, " after the slow spell")

        # Redis at full speed again: quick batches raise the pace back to
        # full. A trickle of events (small batches, whatever the pace) keeps
        # them quick even in a sanitizer build.
        cut = metric(ingest.http_port, "patron_ingest_pace")
        run_tool([os.path.join(BIN, "patron-replay"), "synthetic", "--brokers", brokers, "--topic", "patron.events",
                  "--events", "3000", "--customers", "300", "--regulars", "30", "--items", "200", "--rate", "500"])
        wait_for("the pace back to full", lambda: metric(ingest.http_port, "patron_ingest_pace") == 1.0, timeout=60)
        with open(st.log_path("patron-ingest")) as f:
            assert '"msg":"full pace again"' in f.read()
        assert st.stop(ingest) == 0 and st.stop(api) == 0
        print(f"ok: {n} events committed in {took:.1f} s through a Redis at a fifth of its speed, {resets:.0f} "
              f"resets, pace down to {lowest[0]:.3f}, back to full from {cut:.3f}; {len(expected)} customers exact")


if __name__ == "__main__":
    main()
