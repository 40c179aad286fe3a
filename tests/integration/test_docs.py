# SPDX-License-Identifier: MIT
"""test_docs.py - every configuration the documentation shows is accepted.

Checked with `recyclerd -t -c FILE`, one test per snippet:
- every fenced ```ini block of README.md and docs/*.md;
- every example of the man pages (docs/*.[1-8]) that is a configuration:
  an .EX/.EE block whose first line is a [section];
- every file conf/*.conf and conf/pools.d/*.conf, whole.

A snippet is checked where its file lives, so that relative paths mean
what a reader takes them to mean: it is written into a shadow of the
source tree (a temporary directory whose docs/ and conf/ are real
directories and whose other entries are symlinks to the source tree), so
`directory = ..` in docs/x.md or conf/x.conf is the top of the tree there
too, and nothing is written into the source tree.

A snippet without a [recyclerd] section (a pool file, a pool alone) gets
one prepended, with control_socket and pools_dir in the temporary
directory. A snippet whose [recyclerd] does not set pools_dir gets
`pools_dir` pointed at a directory that does not exist, so that pool files
installed on the machine (/etc/recyclerd/pools.d) cannot interfere.
Diagnostics are reported with the snippet's own file and line numbers.

Commands in snippets must exist on a Debian machine (/usr/bin/python3,
/bin/sleep, ...) or be the repository's examples run with `directory =`.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

import recyclerd as rd

SRCDIR = rd.SRCDIR
FENCE_OPEN = re.compile(r"^(?P<indent>\s*)```ini\s*$")
FENCE_CLOSE = re.compile(r"^\s*```\s*$")
# The roff escapes the man pages' examples use, and what they print.
ROFF_ESCAPES = ((r"\-", "-"), (r"\(aq", "'"), (r"\(dq", '"'),
                (r"\(rs", "\\"), (r"\e", "\\"), (r"\&", ""))
DAEMON_HEADER = re.compile(r"^\s*\[\s*recyclerd\s*\]\s*(?:;.*)?$")
POOLS_DIR_KEY = re.compile(r"^pools_dir\s*[=:]")
# Directories that receive snippet files: real directories in the shadow.
WRITTEN_DIRS = ("docs", "conf", "conf/pools.d")


class Snippet:
    """One configuration text and where it comes from."""

    def __init__(self, path, first_line, text):
        self.path = path                # relative to SRCDIR
        self.first_line = first_line    # line of the text's first line
        self.text = text

    @property
    def origin(self):
        return f"{self.path}:{self.first_line}"


def markdown_snippets(md):
    """The ```ini blocks of one markdown file, dedented by their fence."""
    lines = md.read_text(encoding="utf-8").split("\n")
    rel = md.relative_to(SRCDIR).as_posix()
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        i += 1
        if not m:
            continue
        indent, start, body = len(m["indent"]), i + 1, []
        while i < len(lines) and not FENCE_CLOSE.match(lines[i]):
            line = lines[i]
            # A block in a list item is indented like its fence.
            body.append(line[indent:] if not line[:indent].strip() else
                        line.lstrip())
            i += 1
        if i == len(lines):
            raise ValueError(f"{rel}:{start - 1}: ```ini block never "
                             "closed")
        i += 1
        yield Snippet(rel, start, "\n".join(body) + "\n")


def unroff(line):
    for escape, text in ROFF_ESCAPES:
        line = line.replace(escape, text)
    return line


def man_snippets(man):
    """The .EX/.EE blocks of one man page that are configurations."""
    lines = man.read_text(encoding="utf-8").split("\n")
    rel = man.relative_to(SRCDIR).as_posix()
    i = 0
    while i < len(lines):
        i += 1
        if not lines[i - 1].startswith(".EX"):
            continue
        start, body = i + 1, []
        while i < len(lines) and not lines[i].startswith(".EE"):
            body.append(unroff(lines[i]))
            i += 1
        if i == len(lines):
            raise ValueError(f"{rel}:{start - 1}: .EX block never closed")
        first = next((line for line in body if line.strip()), "")
        if first.lstrip().startswith("["):
            yield Snippet(rel, start, "\n".join(body) + "\n")


def collect():
    found = list(markdown_snippets(SRCDIR / "README.md"))
    for md in sorted((SRCDIR / "docs").glob("*.md")):
        found.extend(markdown_snippets(md))
    for man in sorted((SRCDIR / "docs").glob("*.[1-8]")):
        found.extend(man_snippets(man))
    for pattern in ("conf/*.conf", "conf/pools.d/*.conf"):
        for f in sorted(SRCDIR.glob(pattern)):
            found.append(Snippet(f.relative_to(SRCDIR).as_posix(), 1,
                                 f.read_text(encoding="utf-8")))
    return found


SNIPPETS = collect()


@pytest.fixture(scope="module")
def shadow(tmp_path_factory):
    """A temporary copy of the tree's shape: docs/ and conf/ are real
    directories, every other top-level entry links to the source tree."""
    root = tmp_path_factory.mktemp("docs-shadow")
    tree = root / "tree"
    tree.mkdir()
    for entry in SRCDIR.iterdir():
        if entry.name not in ("docs", "conf"):
            (tree / entry.name).symlink_to(entry)
    for d in WRITTEN_DIRS:
        (tree / d).mkdir(parents=True, exist_ok=True)
    return root


def prepare(snippet, root):
    """The text to check, and for each of its lines the snippet's own line
    number (None for lines we added)."""
    lines = snippet.text.rstrip("\n").split("\n")
    numbers = list(range(snippet.first_line,
                         snippet.first_line + len(lines)))
    no_pools = str(root / "no-pools.d")
    if not any(DAEMON_HEADER.match(line) for line in lines):
        head = ["[recyclerd]",
                f"control_socket = {root}/run/control.sock",
                f"pools_dir = {no_pools}"]
        return head + lines, [None] * len(head) + numbers
    if not any(POOLS_DIR_KEY.match(line) for line in lines):
        k = next(i for i, line in enumerate(lines)
                 if DAEMON_HEADER.match(line))
        lines.insert(k + 1, f"pools_dir = {no_pools}")
        numbers.insert(k + 1, None)
    return lines, numbers


def relabel(output, written, snippet, numbers):
    """'FILE:N: ...' of the written file back to the snippet's lines."""
    def sub(m):
        n = int(m["line"])
        orig = numbers[n - 1] if 0 < n <= len(numbers) else None
        where = f"{snippet.path}:{orig}" if orig else \
            f"{snippet.path} (line added by the test)"
        return f"{where}:"
    return re.sub(re.escape(str(written)) + r":(?P<line>\d+):", sub, output)


def test_snippets_found():
    """The guides do show configurations; an empty list means a broken
    fence pattern, not a clean bill of health."""
    assert any(s.path.startswith("docs/") and s.path.endswith(".md")
               for s in SNIPPETS), "no ```ini block found in docs/*.md"
    assert any(s.path == "README.md" for s in SNIPPETS), \
        "no ```ini block found in README.md"
    for page in ("recyclerd.conf.5", "recyclerd-protocol.7"):
        assert any(s.path == f"docs/{page}" for s in SNIPPETS), \
            f"no configuration found in the EXAMPLES of docs/{page}"
    assert any(s.path.startswith("conf/") for s in SNIPPETS), \
        "no conf/*.conf file found"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.origin)
def test_snippet_is_valid(snippet, shadow):
    lines, numbers = prepare(snippet, shadow)
    subdir = shadow / "tree" / Path(snippet.path).parent
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(snippet.path).stem)
    written = subdir / f"{name}-{snippet.first_line}.conf"
    written.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run([rd.RECYCLERD_BIN, "-t", "-c", str(written)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=30 * rd.SLOW,
                          env=dict(os.environ))
    if proc.returncode != 0:
        shown = "\n".join(f"{n if n else '+':>5}  {line}"
                          for n, line in zip(numbers, lines))
        pytest.fail(f"{snippet.origin}: recyclerd -t refused it "
                    f"(exit {proc.returncode}):\n"
                    f"{relabel(proc.stderr, written, snippet, numbers)}\n"
                    f"the snippet as checked:\n{shown}", pytrace=False)
    assert "configuration ok" in proc.stdout
