"""The container image and the Kubernetes manifests, checked offline.

Renders every overlay of k8s/ with `kubectl kustomize`, validates each object
against the Kubernetes and KEDA schemas and checks the properties Patron's
deployment relies on (tests/k8s/check.js); checks the alerts and the Grafana
dashboard (k8s/base/prometheusrule.yaml, grafana-dashboard.yaml) against the
metrics the C sources export and the runbook in docs/operations.md
(tests/k8s/monitoring.js); checks the Dockerfile against the built programs
and Debian's packages (tests/k8s/check_dockerfile.py). Each checker is also
fed deliberately broken input, which it must reject.

The overlays need kubectl, node and npm; the alerts and the dashboard only
node and npm. Installs tests/k8s/node_modules from the committed lock file
(`npm ci`) when it is missing or stale.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("PATRON_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PATRON_BIN_DIR", os.path.join(SRC, "build"))
CHECKER_DIR = os.path.join(SRC, "tests", "k8s")
CHECK_JS = os.path.join(CHECKER_DIR, "check.js")
OVERLAYS = sorted(os.listdir(os.path.join(SRC, "k8s", "overlays")))

sys.path.insert(0, CHECKER_DIR)
import check_dockerfile  # noqa: E402


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def ensure_node_modules():
    modules = os.path.join(CHECKER_DIR, "node_modules")
    lock = os.path.join(CHECKER_DIR, "package-lock.json")
    stamp = os.path.join(modules, ".package-lock.json")  # npm writes it on install
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock):
        return
    p = run(["npm", "ci", "--prefix", CHECKER_DIR, "--no-audit", "--no-fund", "--loglevel=error"])
    if p.returncode != 0:
        raise RuntimeError(f"npm ci failed:\n{p.stdout}{p.stderr}")


def render(k8s_dir, overlay, out_dir):
    p = run(["kubectl", "kustomize", os.path.join(k8s_dir, "overlays", overlay)])
    if p.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay}:\n{p.stderr}")
    out = os.path.join(out_dir, f"{overlay}.yaml")
    with open(out, "w") as f:
        f.write(p.stdout)
    return out


class K8s(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in ("kubectl", "node", "npm") if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"missing tools: {missing}")
        ensure_node_modules()
        cls.tmp = tempfile.mkdtemp(prefix="patron-k8s-")
        cls.rendered = {o: render(os.path.join(SRC, "k8s"), o, cls.tmp) for o in OVERLAYS}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_overlays_are_dev_and_prod(self):
        self.assertEqual(OVERLAYS, ["dev", "prod"])

    def test_every_overlay_passes_the_checks(self):
        p = run(["node", CHECK_JS, *[f"{o}={f}" for o, f in self.rendered.items()]])
        print(p.stdout, end="")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_checker_rejects_each_broken_property(self):
        p = run(["node", CHECK_JS, "--self-test", f"prod={self.rendered['prod']}"])
        print(p.stdout, end="")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_broken_manifest_fails_end_to_end(self):
        # through kustomize, not only in memory: a grace period shorter than
        # the drain in the base breaks both overlays
        broken = os.path.join(self.tmp, "broken")
        shutil.copytree(os.path.join(SRC, "k8s"), broken)
        path = os.path.join(broken, "base", "ingest.yaml")
        with open(path) as f:
            text = f.read()
        self.assertIn("terminationGracePeriodSeconds: 30", text)
        with open(path, "w") as f:
            f.write(text.replace("GracePeriodSeconds: 30", "GracePeriodSeconds: 15"))
        out = render(broken, "prod", broken)
        p = run(["node", CHECK_JS, f"prod={out}"])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("Deployment/patron-ingest: terminationGracePeriodSeconds 15", p.stderr)


class Monitoring(unittest.TestCase):
    """The base's PrometheusRule and dashboard on their own: no kubectl needed."""
    RULE = os.path.join(SRC, "k8s", "base", "prometheusrule.yaml")
    DASHBOARD = os.path.join(SRC, "k8s", "base", "grafana-dashboard.yaml")

    @classmethod
    def setUpClass(cls):
        missing = [t for t in ("node", "npm") if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"missing tools: {missing}")
        ensure_node_modules()
        cls.tmp = tempfile.mkdtemp(prefix="patron-monitoring-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check(self, *args):
        return run(["node", CHECK_JS, *args])

    def test_alerts_and_dashboard_pass(self):
        p = self.check("--monitoring", self.RULE, self.DASHBOARD)
        print(p.stdout, end="")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_checker_rejects_each_break(self):
        p = self.check("--monitoring-self-test", self.RULE, self.DASHBOARD)
        print(p.stdout, end="")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_renamed_metric_fails(self):
        with open(self.RULE) as f:
            text = f.read()
        self.assertIn("patron_trigger_late_updates_total", text)
        broken = os.path.join(self.tmp, "rule.yaml")
        with open(broken, "w") as f:
            f.write(text.replace("patron_trigger_late_updates_total", "patron_trigger_late_total"))
        p = self.check("--monitoring", broken, self.DASHBOARD)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("patron_trigger_late_total, which no service exports", p.stderr)

    def test_a_runbook_section_missing_fails(self):
        with open(os.path.join(SRC, "docs", "operations.md")) as f:
            text = f.read()
        self.assertIn("### PatronOutboxStuck\n", text)
        ops = os.path.join(self.tmp, "operations.md")
        with open(ops, "w") as f:
            f.write(text.replace("### PatronOutboxStuck\n", "### Outbox\n"))
        p = self.check("--monitoring", f"--operations={ops}", self.RULE, self.DASHBOARD)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("#patronoutboxstuck: no section of docs/operations.md", p.stderr)


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.machine = check_dockerfile.Machine(BIN)

        def read(rel):
            with open(os.path.join(SRC, rel)) as f:
                return f.read()
        cls.dockerfile = read("Dockerfile")
        cls.deps = read("scripts/deps.sh")
        cls.ignore = read(".dockerignore")

    def test_programs_are_built(self):
        self.assertIn("patron-ingest", self.machine.direct, f"no programs in {BIN}")
        self.assertIn("patron-api", self.machine.direct)

    def test_dockerfile_passes(self):
        self.assertEqual(check_dockerfile.check(self.dockerfile, self.deps, self.ignore,
                                                self.machine), [])

    def test_checker_rejects_each_break(self):
        first_stage = self.dockerfile[:self.dockerfile.rindex("\nFROM ") + 1]
        # (what, file, text replaced, its replacement, words expected in a finding)
        cases = [
            ("no USER", "Dockerfile", "USER 10001:10001", "", "no USER"),
            ("USER root", "Dockerfile", "USER 10001:10001", "USER 0", "USER 0"),
            ("USER by name", "Dockerfile", "USER 10001:10001", "USER patron", "numeric"),
            ("one stage", "Dockerfile", first_stage, "", "multi-stage"),
            ("a linked library missing", "Dockerfile", "libhiredis0.14 ", "",
             "libhiredis0.14, which the final stage does not install"),
            ("a -dev package at run time", "Dockerfile", "zlib1g ca-certificates",
             "zlib1g zlib1g-dev ca-certificates", "build tools belong"),
            ("a package Debian lacks", "Dockerfile", "libuv1 ", "libuv1 libpatron-nonesuch9 ",
             "no such package"),
            ("shell-form CMD", "Dockerfile", 'CMD ["/usr/local/bin/patron-api"]', "CMD patron-api",
             "exec form"),
            ("sanitizers", "Dockerfile", "-DPATRON_SANITIZE=OFF", "-DPATRON_SANITIZE=ON",
             "sanitizers"),
            ("tests on", "Dockerfile", "-DPATRON_TESTS=OFF", "", "PATRON_TESTS=OFF"),
            ("another base", "Dockerfile", "FROM debian:bookworm-slim\n", "FROM ubuntu:24.04\n",
             "debian:bookworm-slim"),
            ("apt lists kept", "Dockerfile", " \\\n && rm -rf /var/lib/apt/lists/*", "",
             "/var/lib/apt/lists"),
            ("recommends", "Dockerfile", "install -y --no-install-recommends", "install -y",
             "--no-install-recommends"),
            ("a build package deps.sh gained", "deps", "libyaml-dev", "libyaml-dev libfoo-dev",
             "lacks libfoo-dev"),
            ("context without sources", "ignore", "!services/\n", "", "services/core/codec/config.c"),
            ("context with build dirs", "ignore", self.ignore, "build/\n", "build-lead"),
        ]
        sanitized = any(check_dockerfile.SANITIZER.match(p)
                        for pk in self.machine.direct.values() for p in pk)
        if sanitized:  # see check_dockerfile: --as-needed hides unused libraries otherwise
            cases.append(("a library nothing links", "Dockerfile", "libuv1 ", "libuv1 libcurl4 ",
                          "libcurl4, which no program links"))
        for what, which, old, new, want in cases:
            with self.subTest(what):
                texts = {"Dockerfile": self.dockerfile, "deps": self.deps, "ignore": self.ignore}
                self.assertIn(old, texts[which], "the break does not apply")
                texts[which] = texts[which].replace(old, new, 1)
                got = check_dockerfile.check(texts["Dockerfile"], texts["deps"], texts["ignore"],
                                             self.machine)
                self.assertTrue(any(want in x for x in got), f"wanted '{want}' in {got}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
