"""Static checks of the Dockerfile, for a machine without a Docker engine.

The image can't be built here, so this reads the Dockerfile and compares it
with what is true on this Debian machine: the build stage installs the build
packages of scripts/deps.sh; the final stage installs exactly the packages
whose libraries the built programs link (readelf NEEDED -> ldd path ->
dpkg -S), and what those libraries load in turn comes with them (dpkg
Depends); every package exists in Debian; the image runs as a numeric
non-root user and starts its program without a shell.

    python3 check_dockerfile.py SOURCE_DIR BIN_DIR    findings, exit 1 if any
"""
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys

IMAGE_UID = 10001  # k8s/ runs the pods as this user
# In every Debian image (Essential or its direct dependencies).
BASE_PACKAGES = {"libc6", "libgcc-s1"}
# Linked by sanitizer builds only; the image is built without them.
SANITIZER = re.compile(r"^lib(asan|ubsan|tsan|lsan)[0-9]+$")
# Final-stage packages no binary links, and why they are there.
EXTRA_RUNTIME = {"ca-certificates": "librdkafka verifies the brokers' TLS certificates with them"}
# deps.sh packages the image's build does not need, and why.
NOT_FOR_IMAGE = {
    "libcriterion-dev": "tests are off (-DPATRON_TESTS=OFF)",
    "protobuf-compiler": "protoc serves the Python tests; the build uses protoc-c",
    "libclang-rt-14-dev": "libFuzzer's runtime, for scripts/fuzz.sh; the image has no fuzz targets",
}
BUILD_TOOLS = {"cmake", "ninja-build", "pkg-config"}
DEBIAN_IMAGE = re.compile(r"(?:docker\.io/(?:library/)?)?debian:([a-z]+)(-slim)?"
                          r"(@sha256:[0-9a-f]{64})?")
PROGRAM_DIR = "/usr/local/bin/"


# ------------------------------------------------------------------ parsing --

def parse(text):
    """Stages of a Dockerfile: [{"from", "name", "ins": [(INSTR, args)]}]."""
    stages = []
    logical = ""
    lines = text.splitlines()
    for raw in lines + [""]:
        line = raw.strip()
        if line.startswith("#"):
            continue  # comments, parser directives, and comments inside continuations
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if not logical.strip():
            logical = ""
            continue
        instr, _, args = logical.strip().partition(" ")
        instr, args = instr.upper(), args.strip()
        logical = ""
        if instr == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append({"from": words[0] if words else "", "name": name, "ins": []})
        elif stages:
            stages[-1]["ins"].append((instr, args))
        else:
            stages.append({"from": "", "name": None, "ins": [(instr, args)]})
    return stages


def run_commands(stage):
    """Each RUN's shell commands, split on && and ;."""
    out = []
    for instr, args in stage["ins"]:
        if instr == "RUN":
            out.append([c.strip() for c in re.split(r"&&|;", args) if c.strip()])
    return out


def apt_installs(stage):
    """(packages, [install commands]) of a stage's apt-get install lines."""
    pkgs, cmds = [], []
    for run in run_commands(stage):
        for c in run:
            words = shlex.split(c)
            if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
                cmds.append(words)
                after = words[words.index("install") + 1:]
                pkgs += [w for w in after if not w.startswith("-")]
    return pkgs, cmds


def deps_sh_packages(text):
    m = re.search(r"PACKAGES=\((.*?)\)", text, re.S)
    if not m:
        return []
    return [w for line in m.group(1).splitlines()
            for w in line.split("#", 1)[0].split()]


def ignored(patterns, path):
    """.dockerignore semantics, enough for this file: the last match wins."""
    result = False
    parts = path.strip("/").split("/")
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.strip("/")
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:i]), pat):
                result = not neg
                break
    return result


# -------------------------------------------------------- the machine's view --

def sh(args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def host_codename():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("VERSION_CODENAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def known_packages(names):
    """The names apt or dpkg knows (a candidate in the lists, or installed)."""
    known = set()
    out = sh(["apt-cache", "policy", *names], check=False)
    current = None
    for line in out.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
        elif current and line.strip().startswith("Candidate:"):
            if line.split(":", 1)[1].strip() != "(none)":
                known.add(current)
    out = sh(["dpkg-query", "-W", "-f=${Package}\t${Status}\n", *names], check=False)
    for line in out.splitlines():
        name, _, status = line.partition("\t")
        if status.endswith("installed") and "not-installed" not in status:
            known.add(name)
    return known


def owners(paths):
    """path -> set of packages shipping it (dpkg -S). On merged-usr the package
    may name /lib/... or /usr/lib/..., the link or its target: ask for each."""
    def variants(x):
        bare = x[4:] if x.startswith("/usr/") else x
        return [bare, "/usr" + bare]
    query = {}
    for p in paths:
        query[p] = variants(p) + variants(os.path.realpath(p))
    out = sh(["dpkg", "-S", *sorted({q for qs in query.values() for q in qs})], check=False)
    by_path = {}
    for line in out.splitlines():
        if line.startswith("diversion "):
            continue
        pk, sep, path = line.partition(": /")
        if not sep:
            continue
        by_path["/" + path] = {x.strip().split(":")[0] for x in pk.split(",")}
    return {p: next((by_path[q] for q in qs if q in by_path), set()) for p, qs in query.items()}


def depends_closure(roots):
    """roots and every installed package they depend on (Depends, Pre-Depends)."""
    out = sh(["dpkg-query", "-W", "-f=${Package}\t${Pre-Depends}\t${Depends}\n"])
    deps = {}
    for line in out.splitlines():
        name, pre, dep = (line.split("\t") + ["", ""])[:3]
        names = set()
        for item in f"{pre},{dep}".split(","):
            for alt in item.split("|"):
                w = alt.strip().split(" ")[0].split(":")[0]
                if w:
                    names.add(w)
        deps.setdefault(name, set()).update(names)
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += deps.get(p, ())
    return seen


def linked_packages(bin_dir):
    """({program: direct packages}, {program: all packages}) of the ELF programs in bin_dir."""
    libs = {}  # program -> (NEEDED sonames, {soname: path} of everything it loads)
    for prog in sorted(os.listdir(bin_dir)):
        path = os.path.join(bin_dir, prog)
        if not (prog.startswith("patron-") and os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        dynamic = sh(["readelf", "-d", path])
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
        resolved = {}
        for line in sh(["ldd", path]).splitlines():
            m = re.match(r"\s*(\S+) => (/\S+)", line)
            if m:
                resolved[m.group(1)] = m.group(2)
            else:
                m = re.match(r"\s*(/\S+) \(", line)  # the loader
                if m:
                    resolved[os.path.basename(m.group(1))] = m.group(1)
        missing = [n for n in needed if n not in resolved]
        if missing:
            raise RuntimeError(f"{prog}: ldd does not resolve {missing}")
        libs[prog] = (needed, resolved)
    own = owners(sorted({p for _, r in libs.values() for p in r.values()}))
    unowned = sorted(p for p, o in own.items() if not o)
    if unowned:
        raise RuntimeError(f"no Debian package ships {unowned}")
    direct = {prog: set().union(*(own[r[n]] for n in needed)) for prog, (needed, r) in libs.items()}
    every = {prog: set().union(*(own[p] for p in r.values())) for prog, (_, r) in libs.items()}
    return direct, every


class Machine:
    """What the checks ask of this machine, asked once."""

    def __init__(self, bin_dir):
        self.codename = host_codename()
        self.direct, self.every = linked_packages(bin_dir) if bin_dir else ({}, {})
        self._known = {}
        self._closure = {}

    def known(self, names):
        ask = [n for n in names if n not in self._known]
        if ask:
            k = known_packages(ask)
            for n in ask:
                self._known[n] = n in k
        return {n for n in names if self._known[n]}

    def closure(self, roots):
        key = frozenset(roots)
        if key not in self._closure:
            self._closure[key] = depends_closure(roots)
        return self._closure[key]


# ------------------------------------------------------------------- checks --

def check(dockerfile, deps_sh, dockerignore, machine):
    f = []
    stages = parse(dockerfile)
    if len(stages) < 2:
        return [f"expected a multi-stage build, found {len(stages)} stage(s)"]
    final = stages[-1]
    builders = {s["name"]: s for s in stages[:-1] if s["name"]}

    codenames = set()
    for s in stages:
        m = DEBIAN_IMAGE.fullmatch(s["from"])
        if not m:
            f.append(f"FROM {s['from']}: expected a Debian image (debian:bookworm-slim)")
        else:
            codenames.add(m.group(1))
    if final["from"].split("@")[0].replace("docker.io/library/", "") != "debian:bookworm-slim":
        f.append(f"final stage FROM {final['from']}: expected debian:bookworm-slim")

    # the user
    users = [a for i, a in final["ins"] if i == "USER"]
    if not users:
        f.append("final stage has no USER: the programs would run as root")
    else:
        uid = users[-1].split(":")[0]
        if not uid.isdigit():
            f.append(f"USER {users[-1]}: must be numeric for Kubernetes' runAsNonRoot")
        elif int(uid) == 0 or int(uid) != IMAGE_UID:
            f.append(f"USER {users[-1]}: must be {IMAGE_UID} (k8s/ runs the pods as it)")

    # how the program starts: exec form, from /usr/local/bin
    starts = [(i, a) for i, a in final["ins"] if i in ("CMD", "ENTRYPOINT")]
    for instr, args in starts:
        try:
            argv = json.loads(args)
        except ValueError:
            argv = None
        exec_form = isinstance(argv, list) and argv
        if not (exec_form and str(argv[0]).startswith(PROGRAM_DIR + "patron-")):
            f.append(f"{instr} {args}: must be exec form (a JSON array) starting "
                     "/usr/local/bin/patron-*: no shell at run time")
    if not starts:
        f.append("final stage has no CMD")

    # the programs come from a build stage into /usr/local/bin
    copies = [a for i, a in final["ins"] if i == "COPY" and "--from=" in a]
    if not any(re.search(r"--from=(\S+)", a).group(1) in builders
               and a.split()[-1].rstrip("/") == "/usr/local/bin" for a in copies):
        f.append("final stage must COPY --from=<build stage> the programs into /usr/local/bin/")
    if any(i == "COPY" and "--from=" not in a for i, a in final["ins"]):
        f.append("final stage copies from the build context: only build output belongs there")

    # the build: Release, no tests, no sanitizers, Ninja
    build_runs = " ".join(" ".join(c) for s in builders.values() for c in run_commands(s))
    for want in ("-DCMAKE_BUILD_TYPE=Release", "-DPATRON_TESTS=OFF", "-G Ninja"):
        if want not in build_runs:
            f.append(f"the build stage's cmake lacks {want}")
    if "-DPATRON_SANITIZE=ON" in build_runs:
        f.append("the image must not be built with sanitizers")

    # apt hygiene in every stage
    for s in stages:
        pkgs, cmds = apt_installs(s)
        for c in cmds:
            if "--no-install-recommends" not in c:
                f.append(f"`{' '.join(c)}`: add --no-install-recommends")
        for run in run_commands(s):
            if any(c.startswith("apt-get update") for c in run) and not any(
                    "rm -rf /var/lib/apt/lists/*" in c for c in run):
                f.append("a RUN with apt-get update must remove /var/lib/apt/lists/* "
                         "in the same layer")

    build_pkgs = set()
    for s in builders.values():
        build_pkgs |= set(apt_installs(s)[0])
    runtime = set(apt_installs(final)[0])

    # the build stage has what scripts/deps.sh has for building
    for p in deps_sh_packages(deps_sh):
        if p in NOT_FOR_IMAGE:
            continue
        for_build = p.endswith("-dev") or p.endswith("-compiler") or p in BUILD_TOOLS
        if for_build and p not in build_pkgs:
            f.append(f"the build stage lacks {p} (scripts/deps.sh)")
    if not build_pkgs & {"gcc", "build-essential", "clang"}:
        f.append("the build stage has no C compiler")

    # the final stage has libraries only
    for p in sorted(runtime):
        if p.endswith("-dev") or p in BUILD_TOOLS | {"gcc", "build-essential", "clang"}:
            f.append(f"the final stage installs {p}: build tools belong in the build stage")

    host = machine.codename
    if codenames != {host}:
        print(f"SKIP package checks: the image is Debian {sorted(codenames)}, "
              f"this machine {host or '?'}", file=sys.stderr)
        return f

    unknown = (build_pkgs | runtime) - machine.known(sorted(build_pkgs | runtime))
    for p in sorted(unknown):
        f.append(f"{p}: no such package in Debian {host} (apt-cache policy)")

    # the final stage's libraries are what the programs link
    if not machine.direct:
        f.append("no patron-* programs in the build directory to compare the libraries with")
        return f
    for prog in ("patron-ingest", "patron-api"):
        if prog not in machine.direct:
            f.append(f"{prog} is not in the build directory")
    needed = set()
    for prog, pk in sorted(machine.direct.items()):
        pk = {p for p in pk if not SANITIZER.match(p)}
        needed |= pk
        for p in sorted(pk - runtime - BASE_PACKAGES):
            f.append(f"{prog} links a library of {p}, which the final stage does not install")
    # Debian's gcc links with --as-needed except under -fsanitize: only a
    # sanitizer build's NEEDED lists every library CMake links.
    sanitized = any(SANITIZER.match(p) for pk in machine.direct.values() for p in pk)
    if sanitized:
        for p in sorted(runtime - needed - set(EXTRA_RUNTIME)):
            f.append(f"the final stage installs {p}, which no program links")
    else:
        print("SKIP unused-package check: the programs were linked --as-needed", file=sys.stderr)
    closure = machine.closure(runtime | BASE_PACKAGES)
    for prog, pk in sorted(machine.every.items()):
        for p in sorted({p for p in pk if not SANITIZER.match(p)} - closure):
            f.append(f"{prog} loads a library of {p}, which nothing in the final stage pulls in")

    # the build context
    patterns = [l.strip() for l in dockerignore.splitlines() if l.strip() and not l.startswith("#")]
    for need in ("CMakeLists.txt", "cmake/check_layers.cmake", "proto/patron/v1/event.proto",
                 "services/core/codec/config.c"):
        if ignored(patterns, need):
            f.append(f".dockerignore leaves {need} out of the build context")
    for out in (".git/config", "build-lead/CMakeCache.txt", "tests/k8s/node_modules/x",
                "data/x.csv.gz"):
        if not ignored(patterns, out):
            f.append(f".dockerignore lets {out} into the build context")
    return f


def check_tree(src, bin_dir, machine=None):
    def read(rel):
        with open(os.path.join(src, rel)) as fh:
            return fh.read()
    machine = machine or Machine(bin_dir)
    return check(read("Dockerfile"), read("scripts/deps.sh"), read(".dockerignore"), machine)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    findings = check_tree(sys.argv[1], sys.argv[2])
    for x in findings:
        print(x, file=sys.stderr)
    print(f"Dockerfile: {len(findings)} findings")
    sys.exit(1 if findings else 0)
