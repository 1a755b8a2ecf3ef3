"""patron-devkafka as a process: bootstrap line and file, topics, --port, clean stop.

kcat plays the Kafka client; the test skips what needs it when it is missing.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import harness  # noqa: E402
from harness import free_port  # noqa: E402

BIN = os.path.join(harness.BIN, "patron-devkafka")
KCAT = shutil.which("kcat")


class DevKafka:
    def __init__(self, *args):
        self.proc = subprocess.Popen([BIN, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.bootstrap = self.proc.stdout.readline().strip()

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, err


def kcat(*args, stdin=None):
    return subprocess.run([KCAT, *args], input=stdin, capture_output=True, text=True,
                          timeout=30, check=True).stdout


class TestDevKafka(unittest.TestCase):
    def test_bootstrap_line_and_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bootstrap")
            dk = DevKafka("--brokers", "3", "--topic", "a:3", "--bootstrap-file", path)
            try:
                self.assertRegex(dk.bootstrap, r"^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}$")
                with open(path) as f:
                    self.assertEqual(f.read(), dk.bootstrap + "\n")
                self.assertFalse(os.path.exists(path + ".tmp"))
            finally:
                rc, err = dk.stop()
            self.assertEqual(rc, 0, err)

    @unittest.skipUnless(KCAT, "kcat not installed")
    def test_topics_exist_and_carry_messages(self):
        dk = DevKafka("--topic", "a:3", "--topic", "b")
        try:
            meta = kcat("-b", dk.bootstrap, "-L")
            self.assertIn('topic "a" with 3 partitions', meta)
            self.assertIn('topic "b" with 4 partitions', meta)
            kcat("-b", dk.bootstrap, "-P", "-t", "a", "-p", "2", "-K", ":", stdin="k1:v1\nk2:v2\n")
            out = kcat("-b", dk.bootstrap, "-C", "-t", "a", "-p", "2", "-o", "beginning", "-e",
                       "-f", "%k=%s\n")
            self.assertEqual(out, "k1=v1\nk2=v2\n")
        finally:
            rc, err = dk.stop(signal.SIGINT)
        self.assertEqual(rc, 0, err)

    @unittest.skipUnless(KCAT, "kcat not installed")
    def test_fixed_port_bootstraps_through_the_proxy(self):
        port = free_port()
        dk = DevKafka("--port", str(port), "--topic", "p:1")
        try:
            self.assertEqual(dk.bootstrap, f"127.0.0.1:{port}")
            kcat("-b", dk.bootstrap, "-P", "-t", "p", stdin="hello\n")
            out = kcat("-b", dk.bootstrap, "-C", "-t", "p", "-o", "beginning", "-e")
            self.assertEqual(out, "hello\n")
        finally:
            rc, err = dk.stop()
        self.assertEqual(rc, 0, err)

    def test_port_in_use_fails(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            p = subprocess.run([BIN, "--port", str(port)], capture_output=True, text=True,
                               timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(p.stdout, "")

    def test_bad_arguments(self):
        cases = [
            ["--brokers", "0"], ["--brokers", "x"], ["--brokers", "99"], ["--port", "70000"],
            ["--port"], ["--topic", ""], ["--topic", ":3"], ["--topic", "a:0"],
            ["--topic", "a:b"], ["--topic", "a" * 300], ["--what", "1"],
        ]
        for args in cases:
            with self.subTest(args=args):
                p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("usage", p.stderr)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=2).result.wasSuccessful() else 1)
