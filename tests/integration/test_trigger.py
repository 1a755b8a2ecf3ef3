"""patron-trigger end to end, with the event clock, over real Kafka and Redis:
one patron-ingest, one patron-trigger and one patron-api; in the middle of
the stream the trigger is killed with SIGKILL and restarted. The story and
its checks (every expected campaign message exactly once, the counters
exact across the crash, suppressions, exits, erasure, broken campaign files
and reloads) are trigger_story.py's, shared with test_trigger_scaleout.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trigger_story  # noqa: E402

if __name__ == "__main__":
    trigger_story.run(pods=1)
