#!/usr/bin/python3
"""Patron's stack on loopback: the one way the tests, the benchmarks, the eval
and the demo start it.

As a library (the Python integration tests, scripts/bench_trigger.py,
scripts/eval.py): `Stack` starts a real redis-server (or a Redis Cluster), the
embedded Kafka (patron-devkafka) and the services in a directory of their
own, and ends them however the caller ends; next to it the helpers the tests
share (HTTP, /metrics, Kafka, the contracts compiled for Python, the Online
Retail oracle).

As a command (scripts/demo.sh, scripts/bench_lib.sh):

    harness.py up --dir DIR [--redis] [--redis-cluster MASTERS] [--kafka]
                  [--topic NAME:PARTITIONS]... [--service NAME[:PORT]]...
                  [--env [SERVICE:]NAME=VALUE]...
    harness.py down --dir DIR [NAME...]

`up` starts what it is asked for in the background (their logs DIR/NAME.log),
waits until each answers, and writes DIR/stack.json and DIR/stack.env (ports,
pids, brokers; `. DIR/stack.env` in a shell). It adds to what DIR already
holds: a later `up --service ingest` uses the Redis and the Kafka of an
earlier one. `down` stops them (or only NAME: a process's name or its kind,
redis, kafka or service) with SIGTERM, newest first, and SIGKILLs what has
not stopped after --timeout seconds (exit status 1 then).

The build tree with the programs: PATRON_BIN_DIR (ctest sets it), --bin, or
the Release tree build/ of scripts/lib.sh. Standard library plus Debian's
python3-redis and python3-confluent-kafka.
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("PATRON_BIN_DIR", os.path.join(HERE, "..", "..", "build"))
SRC = os.environ.get("PATRON_SOURCE_DIR", os.path.join(HERE, "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair(offset=10000):
    """A free port p whose p + offset is free too (a cluster node's bus port)."""
    for _ in range(1000):
        p = free_port()
        if p + offset > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + offset))
            except OSError:
                continue
        return p
    raise AssertionError(f"no free port p with p + {offset} free too")


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
    """Processes started by a test; `close()` (or the context manager) ends them all.

    dir: where they run and log (default: a new temporary directory, removed
    by close() unless a test failed or PATRON_KEEP_LOGS is set; a given one
    is never removed). detach: the processes get a session of their own and
    outlive this Python process (harness.py up)."""

    def __init__(self, name, dir=None, bin_dir=None, detach=False):
        self.own_dir = dir is None
        self.dir = tempfile.mkdtemp(prefix=f"patron-{name}-") if dir is None else dir
        os.makedirs(self.dir, exist_ok=True)
        self.bin = os.path.abspath(bin_dir or BIN)
        self.detach = detach
        self.procs = []
        self.redis_port = None
        self.redis_cluster = None  # the seeds "host:port,...", when the services use a cluster
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
        p = subprocess.Popen(argv, stdout=stdout or log, stderr=log, env=full_env, cwd=self.dir,
                             stdin=subprocess.DEVNULL if self.detach else None, start_new_session=self.detach)
        log.close()  # the child holds its own copy
        p.patron_name = name
        self.procs.append(p)
        return p

    def redis_argv(self, port, extra=()):
        return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, *extra]

    def start_redis(self, extra=(), port=None, name="redis"):
        """One redis-server without persistence; the services started after use it."""
        port = port or free_port()
        proc = self.spawn(name, self.redis_argv(port, extra))
        proc.port = port
        import redis
        r = redis.Redis(port=port)
        wait_for(f"{name} on :{port}", lambda: proc.poll() is None and r.ping(), timeout=10)
        self.redis, self.r, self.redis_port, self.redis_cluster = proc, r, port, None
        return r

    def start_redis_cluster(self, masters=3, replicas=1, node_timeout_ms=2000, name="redis"):
        """masters * (1 + replicas) nodes joined by redis-cli --cluster create; the
        services started after use it (PATRON_REDIS_CLUSTER)."""
        cl = Cluster(self, masters, replicas, node_timeout_ms, name)
        self.cluster, self.redis_port, self.redis_cluster = cl, None, cl.seeds()
        return cl

    def start_kafka(self, topics, port=None):
        """topics: {"patron.events": 8, ...}; returns the bootstrap list. port: the
        fixed port of patron-devkafka's proxy (default: the mock cluster's own)."""
        bootstrap_file = os.path.join(self.dir, "bootstrap")
        if os.path.exists(bootstrap_file):
            os.unlink(bootstrap_file)  # an earlier Kafka's
        argv = [os.path.join(self.bin, "patron-devkafka"), "--bootstrap-file", bootstrap_file]
        if port:
            argv += ["--port", str(port)]
        for t, n in topics.items():
            argv += ["--topic", f"{t}:{n}"]
        self.kafka = self.spawn("kafka", argv)
        self.kafka.port = port

        def bootstrap():
            assert self.kafka.poll() is None, "patron-devkafka exited"
            return open(bootstrap_file).read().strip()
        self.brokers = wait_for("devkafka bootstrap", bootstrap, timeout=20)
        return self.brokers

    def service_env(self, http_port, **extra):
        env = {
            "PATRON_KAFKA_BROKERS": self.brokers or "",
            "PATRON_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}" if self.redis_port else "",
            "PATRON_HTTP_ADDR": f"127.0.0.1:{http_port}",
            "PATRON_LOG_LEVEL": "info",
        }
        if self.redis_cluster:
            env["PATRON_REDIS_CLUSTER"] = self.redis_cluster
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start_service(self, name, http_port=None, log_name=None, **env):
        """Starts the program `name` of the build tree and waits for its /healthz."""
        http_port = http_port or free_port()
        p = self.spawn(log_name or name, [os.path.join(self.bin, name)], self.service_env(http_port, **env))
        p.http_port = p.port = http_port

        def healthy():
            assert p.poll() is None, f"{name} exited with {p.returncode}"
            return http(http_port, "GET", "/healthz")[0] == 200
        wait_for(f"{name} /healthz", healthy, timeout=20)
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
        if keep or os.environ.get("PATRON_KEEP_LOGS") or not self.own_dir:
            if keep or os.environ.get("PATRON_KEEP_LOGS"):
                print(f"logs kept in {self.dir}", file=sys.stderr)
                print_log_tails(self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def print_log_tails(d, names=None):
    for f in sorted(os.listdir(d)):
        if f.endswith(".log") and (names is None or f[:-4] in names):
            with open(os.path.join(d, f), "rb") as fh:
                tail = fh.read()[-3000:].decode(errors="replace")
            print(f"--- {f} (tail) ---\n{tail}", file=sys.stderr)


# ---- a Redis Cluster ---------------------------------------------------------

def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot_of(key):
    k = key.encode()
    i = k.find(b"{")
    if i >= 0:
        j = k.find(b"}", i + 1)
        if j > i + 1:
            k = k[i + 1:j]
    return crc16(k) % 16384


class Cluster:
    """redis-server processes of a Stack, joined into masters (+ replicas each)."""

    def __init__(self, st, masters=3, replicas=1, node_timeout_ms=2000, name="redis"):
        self.st = st
        n = masters * (1 + replicas)
        self.ports = []
        while len(self.ports) < n:  # neither a node's port nor its bus port taken twice
            p = free_port_pair()
            if all(abs(p - q) not in (0, 10000) for q in self.ports):
                self.ports.append(p)
        self.procs = {}
        for p in self.ports:
            self.procs[p] = st.spawn(f"{name}-{p}", st.redis_argv(p, [
                "--cluster-enabled", "yes", "--cluster-node-timeout", str(node_timeout_ms),
                # a master waits 5 s by default before streaming a replica its
                # first copy, as long as the replica waits for an answer to
                # PSYNC: when the replica gives up first, it stays unsynced,
                # and an unsynced replica refuses to fail over
                "--repl-diskless-sync-delay", "0",
                "--cluster-config-file", os.path.join(st.dir, f"nodes-{p}.conf")]))
            self.procs[p].port = p
        for p in self.ports:
            wait_for(f"redis {p}", lambda p=p: self.node(p).ping(), timeout=10)
        out = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                              "--cluster-replicas", str(replicas), "--cluster-yes"], capture_output=True, timeout=60)
        assert b"All 16384 slots covered" in out.stdout, out.stdout.decode() + out.stderr.decode()
        wait_for("cluster ok on every node", lambda: all(self.state_ok(p) for p in self.ports), timeout=30)
        # replicas attached and their link up (a copy received), so that a
        # failover has someone to promote: Redis refuses to promote a replica
        # that never synced ("Disconnected from master for longer than allowed")
        wanted = masters * replicas
        wait_for(f"{wanted} replicas in sync", lambda: len(self.replicas()) == wanted
                 and all(self.link_up(p) for p in self.replicas()), timeout=30)

    def node(self, port):
        import redis
        r = redis.Redis(port=port, socket_timeout=5)
        for c in ("CLUSTER INFO", "CLUSTER NODES"):  # the text, not redis-py's parse of it
            r.set_response_callback(c, lambda resp, **kw: resp.decode() if isinstance(resp, bytes) else resp)
        return r

    def link_up(self, port):
        return self.node(port).info("replication").get("master_link_status") == "up"

    def state_ok(self, port):
        return "cluster_state:ok" in self.node(port).execute_command("CLUSTER INFO")

    def nodes(self, via):
        """[(id, port, flags, master_id, slots text)] as `via` sees them."""
        out = []
        for line in self.node(via).execute_command("CLUSTER NODES").splitlines():
            f = line.split()
            port = int(f[1].split("@")[0].rsplit(":", 1)[1])
            out.append((f[0], port, f[2].split(","), f[3], f[8:]))
        return out

    def alive(self):
        return [p for p in self.ports if self.procs[p].poll() is None]

    def masters(self):
        return [port for _, port, flags, _, _ in self.nodes(self.alive()[0]) if "master" in flags
                and "fail" not in flags and self.procs[port].poll() is None]

    def replicas(self):
        return [port for _, port, flags, _, _ in self.nodes(self.alive()[0]) if "slave" in flags]

    def master_of(self, key):
        s = slot_of(key)
        for _, port, flags, _, slots in self.nodes(self.alive()[0]):
            if "master" not in flags:
                continue
            for r in slots:
                if r.startswith("["):
                    continue
                lo, _, hi = r.partition("-")
                if int(lo) <= s <= int(hi or lo):
                    return port
        raise AssertionError(f"no master for {key}")

    def seeds(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def client(self):
        from redis.cluster import RedisCluster
        return RedisCluster(host="127.0.0.1", port=self.alive()[0])


# ---- HTTP, /metrics, Kafka, the contracts --------------------------------------

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


def proto_modules(build_dir):
    """The contracts compiled for Python (protoc --python_out) into build_dir/py,
    importable from then on as patron.v1.*_pb2; returns event_pb2."""
    out = os.path.join(build_dir, "py")
    os.makedirs(out, exist_ok=True)
    protos = [os.path.join("patron", "v1", f) for f in sorted(os.listdir(os.path.join(SRC, "proto", "patron", "v1")))]
    subprocess.run(["protoc", f"--python_out={out}", "-I", os.path.join(SRC, "proto"), *protos], check=True)
    sys.path.insert(0, out)
    from patron.v1 import event_pb2
    return event_pb2


def purchase_event(pb, event_id, customer, t_ms, items, category="c"):
    """A purchase Event of one unit of each item at 1.00, order id = event id;
    category: one for every line, or a dict item -> category."""
    e = pb.Event(event_id=event_id, customer_id=customer, occurred_at_ms=t_ms)
    e.purchase.order_id = event_id
    for it in items:
        cat = category[it] if isinstance(category, dict) else category
        e.purchase.items.add(item_id=it, category=cat, quantity=1, unit_price_cents=100)
    return e


def produce(brokers, events, topic="patron.events", timeout=60):
    """Events (event_pb2.Event) keyed by their customer (a visitor's by its
    anonymous id), every one delivered."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "queue.buffering.max.messages": 1000000})
    for e in events:
        p.produce(topic, key=(e.customer_id or e.anonymous_id).encode(), value=e.SerializeToString())
        p.poll(0)
    assert p.flush(timeout) == 0


def campaign_messages(brokers, campaign_pb2):
    """[(channel, CampaignMessage)] of every campaign topic, each keyed by its customer."""
    out = []
    for ch in ("sms", "push", "email"):
        for m in consume_all(brokers, f"patron.campaign.{ch}", timeout=30):
            msg = campaign_pb2.CampaignMessage()
            msg.ParseFromString(m.value())
            assert m.key().decode() == msg.customer_id
            out.append((ch, msg))
    return out



def committed(brokers, partitions, topic="patron.events", group="patron-ingest"):
    """{partition: offset} the consumer group has committed on the topic."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    parts = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    c.close()
    return {tp.partition: tp.offset for tp in parts}

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


# ---- the command: harness.py up / down ------------------------------------------
#
# DIR/stack.json holds what runs: {"processes": [{"name", "kind", "group",
# "pid", "start", "port"}...] in start order (group: the cluster a Redis node
# belongs to, else its name), "redis": {"port"} or {"cluster":
# seeds} (what services started next use), "brokers"}. "start" is the
# process's start time (/proc/PID/stat): `down` signals a pid only while it
# still names the process `up` started.

STATE = "stack.json"
SERVICES = ("ingest", "trigger", "api")


def proc_start(pid):
    """The start time of a process in clock ticks since boot; None if gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def running(rec):
    return proc_start(rec["pid"]) == rec["start"]


def load_state(d):
    try:
        with open(os.path.join(d, STATE)) as f:
            state = json.load(f)
    except FileNotFoundError:
        state = {"processes": [], "redis": None, "brokers": None}
    state["processes"] = [r for r in state["processes"] if running(r)]
    return state


def env_name(name):
    return "".join(c if c.isalnum() else "_" for c in name.upper())


def write_state(d, state):
    """stack.json, and stack.env: NAME_PID and NAME_PORT of each process, then
    what a script needs whatever it started: REDIS_PORT and REDIS_PID (the
    Redis services use), REDIS_PIDS (every redis-server), PATRON_REDIS_URL or
    PATRON_REDIS_CLUSTER, BROKERS (= PATRON_KAFKA_BROKERS) and KAFKA_PID."""
    procs = state["processes"]
    redis_procs = [r for r in procs if r["kind"] == "redis"]
    if not redis_procs:
        state["redis"] = None
    if not any(r["kind"] == "kafka" for r in procs):
        state["brokers"] = None
    tmp = os.path.join(d, STATE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, os.path.join(d, STATE))
    env = {"PATRON_STACK_DIR": os.path.abspath(d)}
    for r in procs:
        env[env_name(r["name"]) + "_PID"] = r["pid"]
        if r.get("port"):
            env[env_name(r["name"]) + "_PORT"] = r["port"]
    redis = state["redis"] or {}
    single = [r for r in redis_procs if r.get("port") == redis.get("port")]
    env.update({
        "REDIS_PORT": redis.get("port") or "",
        "REDIS_PID": single[0]["pid"] if single else "",
        "REDIS_PIDS": " ".join(str(r["pid"]) for r in redis_procs),
        "PATRON_REDIS_URL": f"redis://127.0.0.1:{redis['port']}" if redis.get("port") else "",
        "PATRON_REDIS_CLUSTER": redis.get("cluster") or "",
        "BROKERS": state["brokers"] or "",
        "PATRON_KAFKA_BROKERS": state["brokers"] or "",
        "KAFKA_PID": next((r["pid"] for r in procs if r["kind"] == "kafka"), ""),
    })
    tmp = os.path.join(d, "stack.env.tmp")
    with open(tmp, "w") as f:
        f.write("# written by tests/support/harness.py; source it: . stack.env\n")
        for k, v in env.items():
            f.write(f"{k}={shlex.quote(str(v))}\n")
    os.replace(tmp, os.path.join(d, "stack.env"))


def parse_service(text):
    """"ingest", "patron-ingest:8081" -> ("ingest", 8081 or None)."""
    name, _, port = text.partition(":")
    name = name.removeprefix("patron-")
    if name not in SERVICES:
        raise SystemExit(f"harness: unknown service {name!r} (one of {', '.join(SERVICES)})")
    return name, int(port) if port else None


def parse_env(items):
    """["A=1", "api:B=2"] -> ({"A": "1"}, {"api": {"B": "2"}})."""
    common, per = {}, {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"harness: --env {item!r}: NAME=VALUE")
        svc, colon, key = key.rpartition(":")
        if colon:
            per.setdefault(svc.removeprefix("patron-"), {})[key] = value
        else:
            common[key] = value
    return common, per


def up(args):
    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    state = load_state(d)
    names = {r[k] for r in state["processes"] for k in ("name", "group")}
    st = Stack("up", dir=d, bin_dir=args.bin, detach=True)
    st.brokers = state["brokers"]
    redis = state["redis"] or {}
    st.redis_port, st.redis_cluster = redis.get("port"), redis.get("cluster")
    services = [parse_service(s) for s in args.service]
    common, per = parse_env(args.env)
    topics = {}
    for t in args.topic:
        name, _, n = t.rpartition(":")
        if not name or not n.isdigit():
            raise SystemExit(f"harness: --topic {t!r}: NAME:PARTITIONS")
        topics[name] = int(n)
    taken = [n for n in [args.redis_name if args.redis or args.redis_cluster else None,
                         "kafka" if args.kafka or topics else None, *[s for s, _ in services]]
             if n in names]
    if taken:
        raise SystemExit(f"harness: already running in {d}: {', '.join(taken)} (harness.py down first)")

    def record(p, kind, group=None):
        state["processes"].append({"name": p.patron_name, "kind": kind, "group": group or p.patron_name,
                                   "pid": p.pid, "start": proc_start(p.pid), "port": getattr(p, "port", None)})
    try:
        if args.redis_cluster:
            cl = st.start_redis_cluster(args.redis_cluster, args.cluster_replicas, name=args.redis_name)
            for p in cl.ports:
                record(cl.procs[p], "redis", args.redis_name)
            state["redis"] = {"cluster": cl.seeds()}
        elif args.redis:
            st.start_redis(args.redis_arg, port=args.redis_port, name=args.redis_name)
            record(st.redis, "redis")
            state["redis"] = {"port": st.redis_port}
        if args.kafka or topics:
            state["brokers"] = st.start_kafka(topics, port=args.kafka_port)
            record(st.kafka, "kafka")
        for name, port in services:
            env = dict(common, **per.get(name, {}))
            if not (st.redis_port or st.redis_cluster) or not (st.brokers or "PATRON_KAFKA_BROKERS" in env):
                raise SystemExit(f"harness: patron-{name} needs a Redis and a Kafka in {d}: --redis (or "
                                 "--redis-cluster) and --kafka, now or in an earlier up")
            record(st.start_service(f"patron-{name}", http_port=port, log_name=name, **env), "service")
    except BaseException as e:
        # what this call started goes; what ran before stays
        for p in reversed(st.procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        state["processes"] = [r for r in state["processes"] if running(r)]
        write_state(d, state)
        if isinstance(e, SystemExit):
            raise
        print(f"harness: up failed: {e}", file=sys.stderr)
        print_log_tails(d, [p.patron_name for p in st.procs])
        return 1
    write_state(d, state)
    return 0


def down(args):
    d = os.path.abspath(args.dir)
    state = load_state(d)
    want = set(args.names)
    targets = [r for r in state["processes"] if not want or want & {r["name"], r["kind"], r["group"]}]
    unclean = []
    for r in reversed(targets):  # newest first: services, then Kafka, then Redis
        if not running(r):
            continue
        os.kill(r["pid"], signal.SIGTERM)
        deadline = time.time() + args.timeout
        while running(r) and time.time() < deadline:
            time.sleep(0.05)
        if running(r):
            print(f"harness: {r['name']} (pid {r['pid']}) did not stop within {args.timeout:g}s "
                  "of SIGTERM, killing it", file=sys.stderr)
            os.kill(r["pid"], signal.SIGKILL)
            unclean.append(r["name"])
    stopped = {id(r) for r in targets}
    state["processes"] = [r for r in state["processes"] if id(r) not in stopped and running(r)]
    if os.path.isdir(d):
        write_state(d, state)
    return 1 if unclean else 0


def main(argv):
    ap = argparse.ArgumentParser(prog="harness.py", description="Patron's stack on loopback, in the "
                                 "background: up starts it, down stops it (see the module's docstring).")
    sub = ap.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="start redis-server, patron-devkafka, services")
    u.add_argument("--dir", required=True, help="where they run and log; stack.json and stack.env go there")
    u.add_argument("--bin", default=None, help="the build tree with the programs (default: PATRON_BIN_DIR, or build/)")
    u.add_argument("--redis", action="store_true", help="a redis-server without persistence")
    u.add_argument("--redis-name", default="redis", help="its name (and log's): redis")
    u.add_argument("--redis-port", type=int, help="its port (default: a free one)")
    u.add_argument("--redis-arg", action="append", default=[], metavar="ARG",
                   help="one more redis-server argument (--redis-arg=--maxmemory)")
    u.add_argument("--redis-cluster", type=int, metavar="MASTERS", help="a Redis Cluster instead")
    u.add_argument("--cluster-replicas", type=int, default=0, metavar="N", help="replicas per master: 0")
    u.add_argument("--kafka", action="store_true", help="patron-devkafka")
    u.add_argument("--kafka-port", type=int, help="its fixed bootstrap port (default: any)")
    u.add_argument("--topic", action="append", default=[], metavar="NAME:PARTITIONS")
    u.add_argument("--service", action="append", default=[], metavar="NAME[:PORT]",
                   help="ingest, trigger or api (its HTTP port: default a free one)")
    u.add_argument("--env", action="append", default=[], metavar="[SERVICE:]NAME=VALUE",
                   help="for every service started now, or for SERVICE only")
    dn = sub.add_parser("down", help="stop them, newest first")
    dn.add_argument("--dir", required=True)
    dn.add_argument("--timeout", type=float, default=30.0, help="seconds after SIGTERM before SIGKILL: 30")
    dn.add_argument("names", nargs="*", help="only these: names (redis, kafka, ingest...), a cluster's "
                    "name, or kinds (redis, kafka, service)")
    args = ap.parse_args(argv)
    return up(args) if args.command == "up" else down(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
