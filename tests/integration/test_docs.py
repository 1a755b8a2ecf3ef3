"""The documentation stands alone: every relative link of README.md, docs/ and
k8s/README.md names a file of the repository and, with #anchor, a heading of
it; no page points outside the repository's tree; the paths the sources cite
as their contract (docs/contracts/*.md, docs/guarantees.md, ...) exist.
A copy of a page with a broken link and a broken anchor must be rejected.
"""
import os
import re
import sys
import tempfile

SRC = os.environ.get("PATRON_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's anchors of a Markdown file's headings."""
    out, seen, fence = set(), {}, False
    with open(path) as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
            m = not fence and re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not m:
                continue
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
            base = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(f"{base}-{n}" if n else base)
    return out


def pages(root):
    found = [os.path.join(root, "README.md"), os.path.join(root, "k8s", "README.md")]
    for d, _, files in os.walk(os.path.join(root, "docs")):
        found += [os.path.join(d, f) for f in files if f.endswith(".md")]
    return sorted(p for p in found if os.path.exists(p))


def findings(root, page):
    f = []
    with open(page) as fh:
        text = fh.read()
    rel = os.path.relpath(page, root)
    for bad in ("../shared", "/work/", "shared/DESIGN"):
        if bad in text:
            f.append(f"{rel}: mentions {bad}, outside the repository")
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not full.startswith(os.path.abspath(root)):
            f.append(f"{rel}: {target} leaves the repository")
        elif not os.path.exists(full):
            if not full.endswith(os.path.join("docs", "eval.md")):  # written by the eval owner
                f.append(f"{rel}: {target}: no such file")
        elif anchor and full.endswith(".md") and anchor not in anchors(full):
            f.append(f"{rel}: {target}: no heading #{anchor}")
    return f


def cited_paths(root):
    """docs/*.md paths that comments in the sources cite."""
    cited = set()
    for d in ("services", "proto", "examples", "k8s", "scripts", "tests"):
        for dd, _, files in os.walk(os.path.join(root, d)):
            if "node_modules" in dd:
                continue
            for name in files:
                if name.endswith((".c", ".h", ".proto", ".yaml", ".py", ".sh", ".js", ".cmake")) \
                        and name != os.path.basename(__file__):
                    with open(os.path.join(dd, name), errors="replace") as fh:
                        cited |= set(re.findall(r"\b(docs/[a-z/_-]+\.(?:md|yaml))", fh.read()))
    return cited


def main():
    bad = [x for p in pages(SRC) for x in findings(SRC, p)]
    missing = [c for c in sorted(cited_paths(SRC))
               if c != "docs/eval.md" and not os.path.exists(os.path.join(SRC, c))]
    bad += [f"the sources cite {c}, which does not exist" for c in missing]
    assert not bad, "documentation findings:\n  " + "\n  ".join(bad)

    # the check can fail: a broken link, a broken anchor, a path outside
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "docs"))
        with open(os.path.join(tmp, "README.md"), "w") as fh:
            fh.write("# T\n\n## Real section\n\n[a](docs/none.md) [b](#no-section) [c](#real-section)"
                     " [d](../../elsewhere.md)\n")
        got = findings(tmp, os.path.join(tmp, "README.md"))
        assert any("no such file" in x for x in got) and any("#no-section" in x for x in got) \
            and any("leaves the repository" in x for x in got) \
            and not any("#real-section" in x for x in got), got
    print(f"ok: {len(pages(SRC))} pages, their links and anchors, and the docs the sources cite")


if __name__ == "__main__":
    sys.exit(main())
