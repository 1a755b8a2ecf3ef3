"""Test harness for Patron's integration tests: real processes on loopback.

Starts a real redis-server and the embedded Kafka (patron-devkafka) in a
temporary directory, runs the services with their environment, and cleans
everything up however the test ends. Standard library plus Debian's
python3-redis and python3-confluent-kafka.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("PATRON_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRC = os.environ.get("PATRON_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=60.0, interval=0.1):
    """Polls predicate until it returns a truthy value; fails the test after timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the thing polled may not be up yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Stack:
    """Processes started by a test; `close()` (or the context manager) ends them all."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"patron-{name}-")
        self.procs = []
        self.redis_port = None
        self.brokers = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(keep=exc[0] is not None)

    def log_path(self, name):
        return os.path.join(self.dir, f"{name}.log")

    def spawn(self, name, argv, env=None, stdout=None):
        log = open(self.log_path(name), "ab")
        # the test's own PATRON_* variables would only make the services warn
        full_env = {k: v for k, v in os.environ.items() if k not in ("PATRON_BIN_DIR", "PATRON_SOURCE_DIR")}
        full_env.update(env or {})
        p = subprocess.Popen(argv, stdout=stdout or log, stderr=log, env=full_env, cwd=self.dir)
        p.patron_name = name
        self.procs.append(p)
        return p

    def start_redis(self, extra=()):
        self.redis_port = free_port()
        self.redis = self.spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                          "--save", "", "--appendonly", "no", "--dir", self.dir, *extra])
        import redis
        self.r = redis.Redis(port=self.redis_port)
        wait_for("redis", lambda: self.r.ping(), timeout=10)
        return self.r

    def start_kafka(self, topics):
        """topics: {"patron.events": 8, ...}; returns the bootstrap list."""
        bootstrap_file = os.path.join(self.dir, "bootstrap")
        argv = [os.path.join(BIN, "patron-devkafka"), "--bootstrap-file", bootstrap_file]
        for t, n in topics.items():
            argv += ["--topic", f"{t}:{n}"]
        self.kafka = self.spawn("devkafka", argv)
        self.brokers = wait_for("devkafka bootstrap", lambda: open(bootstrap_file).read().strip(), timeout=20)
        return self.brokers

    def service_env(self, http_port, **extra):
        env = {
            "PATRON_KAFKA_BROKERS": self.brokers,
            "PATRON_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "PATRON_HTTP_ADDR": f"127.0.0.1:{http_port}",
            "PATRON_LOG_LEVEL": "info",
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start_service(self, name, http_port=None, **env):
        http_port = http_port or free_port()
        p = self.spawn(name, [os.path.join(BIN, name)], self.service_env(http_port, **env))
        p.http_port = http_port
        wait_for(f"{name} /healthz", lambda: http(http_port, "GET", "/healthz")[0] == 200, timeout=20)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=30):
        p.send_signal(sig)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError(f"{p.patron_name} did not stop within {timeout}s after {sig}")

    def close(self, keep=False):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        if keep or os.environ.get("PATRON_KEEP_LOGS"):
            print(f"logs kept in {self.dir}", file=sys.stderr)
            for f in sorted(os.listdir(self.dir)):
                if f.endswith(".log"):
                    with open(os.path.join(self.dir, f), "rb") as fh:
                        tail = fh.read()[-3000:].decode(errors="replace")
                    print(f"--- {f} (tail) ---\n{tail}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def http(port, method, path, body=None, headers=None, timeout=10):
    """Returns (status, parsed JSON or raw text)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def metric(port, name, labels=""):
    """Sum of a Prometheus metric's samples whose label text contains `labels`."""
    status, text = http(port, "GET", "/metrics")
    total = 0.0
    for line in str(text).splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def consume_all(brokers, topic, timeout=20.0):
    """Every message of a topic from the beginning (a throwaway group)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"check-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10).topics[topic]
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    out, pos = [], {p: 0 for p in ends}
    deadline = time.time() + timeout
    while any(pos[p] < e for p, e in ends.items()) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append(m)
        pos[m.partition()] = m.offset() + 1
    c.close()
    return out


def run_tool(argv, timeout=300):
    r = subprocess.run(argv, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')[-2000:]}")
    return r.stdout.decode()


# ---- the Online Retail oracle ------------------------------------------------

SUBSET = os.path.join(SRC, "data", "online-retail-subset.csv.gz")
FIELDS = ("orders", "net_spend_cents", "points", "tier", "last_purchase_ms")


def expected_profiles(path=None):
    """What scripts/expected_profiles.py computes from the CSV, independently of the C code."""
    out = run_tool(["/usr/bin/python3", os.path.join(SRC, "scripts", "expected_profiles.py"), path or SUBSET])
    return json.loads(out)


def mismatches(api_port, expected):
    """The fields where the API's profiles differ from the oracle's."""
    bad = []
    for cid, exp in expected.items():
        status, body = http(api_port, "GET", f"/v1/customers/{cid}/profile")
        if status != 200:
            bad.append((cid, "status", status))
            continue
        for f in FIELDS:
            if body.get(f) != exp[f]:
                bad.append((cid, f, body.get(f), exp[f]))
        for f in ("f", "m"):
            if body["rfm"][f] != exp[f]:
                bad.append((cid, "rfm." + f, body["rfm"][f], exp[f]))
    return bad


def assert_profiles_exact(api_port, expected, after="", timeout=120):
    """Waits until every profile the API serves equals the oracle's, then
    asserts it, saying what differs (`after`: when, for the message)."""
    try:
        wait_for("profiles to match the oracle", lambda: not mismatches(api_port, expected),
                 timeout=timeout, interval=1.0)
    except AssertionError:
        pass  # the assertion below says what differs
    bad = mismatches(api_port, expected)
    assert bad == [], f"{len(bad)} mismatches{after}, first: {bad[:5]}"


def trigger_stats(r):
    """{(campaign, variant, counter): n} summed over the trigger's partitions."""
    total = {}
    for p in r.smembers("{trigger}:partitions"):
        for f, v in r.hgetall("{tp:%s}:stats" % p.decode()).items():
            c, var, k = f.decode().split("|")
            total[(c, var, k)] = total.get((c, var, k), 0) + int(v)
    return total
