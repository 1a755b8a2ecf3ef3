"""Scale-out (issue #6): two patron-ingest and two patron-trigger processes in
their consumer groups; one of each is SIGKILLed mid-stream and not restarted.
The survivors take over the partitions, their timers and their outbox; the
story's profiles are exact and every expected campaign message arrives
exactly once (the checks of test_trigger.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import test_trigger  # noqa: E402

if __name__ == "__main__":
    test_trigger.main(pods=2)
