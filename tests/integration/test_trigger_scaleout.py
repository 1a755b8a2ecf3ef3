"""Scale-out (issue #6): two patron-ingest and two patron-trigger processes in
their consumer groups; one of each is SIGKILLed mid-stream and not restarted.
The survivors take over the partitions, their timers and their outbox; the
story's profiles are exact and every expected campaign message arrives
exactly once (the story and its checks: trigger_story.py, shared with
test_trigger.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trigger_story  # noqa: E402

if __name__ == "__main__":
    trigger_story.run(pods=2)
