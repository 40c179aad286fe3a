# SPDX-License-Identifier: MIT
"""test_first_hour.py - what a new user does first, done as they would.

- A `# comment` after a value is an error that says inline comments start
  with `;` (the README's example used to do that).
- The default configuration file is the one `make install` installs: under
  the build's $(sysconfdir), not a fixed /etc.
- The demo (conf/demo.conf) prints the recyclerctl command that reaches it,
  and that command, run as printed, works.
- The daemon runs as an unprivileged user (nobody): no user switching, no
  cgroups (cgroup = auto falls back to /proc), its sockets in a directory
  of that user; recyclerctl as that user talks to it. Needs root to drop
  to nobody (skipped otherwise). The programs and the worker are copied
  into a 0755 directory so that nobody can run them wherever the build is.
"""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import recyclerd as rd
from recyclerd import (PYTHON, RECYCLERCTL_BIN, RECYCLERD_BIN, SLOW, SRCDIR,
                       run_recyclerd)

BUILDDIR = Path(os.environ.get("RECYCLERD_BUILDDIR")
                or Path(RECYCLERD_BIN).resolve().parents[1])


def test_hash_after_a_value_says_inline_comments_start_with_semicolon(
        tmp_path):
    conf = tmp_path / "r.conf"
    conf.write_text(f"[recyclerd]\ncontrol_socket = {tmp_path}/ctl.sock\n"
                    f"pools_dir = {tmp_path}/none\n"
                    "[pool web]\n"
                    "command = /bin/sleep 1000\n"
                    "workers = 2         # two of them\n")
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode == 1, r.stdout
    assert re.search(r"r\.conf:6: \[pool web\] workers = 2 +# two of them: "
                     r"invalid number; note: inline comments start with "
                     r"';', not '#'$", r.stderr, re.M), r.stderr


def build_sysconfdir():
    """$(sysconfdir) of the build directory, expanded by make."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    p = subprocess.run(["make", "-s", "-C", str(BUILDDIR), "-f", "Makefile",
                        "-f", "-", "print-sysconfdir"],
                       input="print-sysconfdir:\n\t@echo '$(sysconfdir)'\n",
                       capture_output=True, text=True, env=env,
                       timeout=60 * SLOW, check=True)
    return p.stdout.strip()


@pytest.mark.skipif(not (BUILDDIR / "Makefile").is_file()
                    or shutil.which("make") is None,
                    reason=f"no configured build directory at {BUILDDIR}")
def test_default_config_is_under_the_builds_sysconfdir():
    want = f"{build_sysconfdir()}/recyclerd/recyclerd.conf"
    r = run_recyclerd("--help")
    assert r.returncode == 0, r.stderr
    assert f"(default {want})" in r.stdout, r.stdout


def demo_config(d):
    """conf/demo.conf, with its two /tmp paths moved into the test's
    directory and `directory = ..` made absolute; nothing else changed."""
    text = (SRCDIR / "conf/demo.conf").read_text()
    subs = ((r"(?m)^control_socket = .*$", f"control_socket = {d.control_path}"),
            (r"(?m)^pools_dir = .*$", f"pools_dir = {d.pools_dir}"),
            (r"(?m)^directory = \.\.$", f"directory = {SRCDIR}"))
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text)
        assert n == 1, f"conf/demo.conf: no line /{pattern}/"
    return text


def test_readme_gives_the_demos_recyclerctl_command():
    """The README's next step after the demo names demo.conf's socket."""
    demo = (SRCDIR / "conf/demo.conf").read_text()
    path = re.search(r"(?m)^control_socket = (.*)$", demo)[1]
    readme = (SRCDIR / "README.md").read_text()
    assert f"\n    src/recyclerctl -s {path} status\n" in readme


def test_demo_prints_the_recyclerctl_command_that_reaches_it(recyclerd):
    recyclerd.conf.write_text(demo_config(recyclerd))
    recyclerd.start()
    m = recyclerd.wait_log(r"to see them: (recyclerctl .*)$", timeout=10)
    argv = shlex.split(m[1])
    assert argv == ["recyclerctl", "-s", str(recyclerd.control_path),
                    "status"], m[0]
    p = subprocess.run([RECYCLERCTL_BIN, *argv[1:]], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^pool demo: running", p.stdout, re.M), p.stdout


# ---- not root ---------------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="dropping to nobody needs root and setpriv (util-linux)")


class Unprivileged(rd.Recyclerd):
    """A Recyclerd whose daemon runs as nobody:nogroup (setpriv), from
    copies of the programs in a 0755 directory."""

    def __init__(self, bindir):
        super().__init__("nobody")
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        self.bindir = bindir
        os.chown(self.dir, self.uid, self.gid)
        os.chown(self.pools_dir, self.uid, self.gid)

    def as_nobody(self, argv):
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups", "--", *map(str, argv)]

    def command(self, *args):
        return self.as_nobody([self.bindir / "recyclerd", *args])


@pytest.fixture
def unprivileged(request):
    bindir = Path(tempfile.mkdtemp(prefix="rd-bin-", dir="/tmp"))
    d = None
    try:
        os.chmod(bindir, 0o755)
        for src in (RECYCLERD_BIN, RECYCLERCTL_BIN,
                    SRCDIR / "examples/leaky_worker.py"):
            shutil.copy(src, bindir)
            os.chmod(bindir / Path(src).name, 0o755)
        d = Unprivileged(bindir)
        request.node._recyclerd = d
        yield d
    finally:
        problems = d.cleanup() if d is not None else []
        shutil.rmtree(bindir, ignore_errors=True)
        if problems:
            pytest.fail("teardown: " + "\n".join(problems), pytrace=False)


@needs_root
def test_daemon_runs_as_an_unprivileged_user(unprivileged):
    d = unprivileged
    d.write_config(
        main={"cgroup": "auto"},
        command=f"{PYTHON} {d.bindir}/leaky_worker.py --leak 0 "
                "--interval 0.1",
        workers=2)
    # The harness's notify socket is root's: wait for the log, not READY=1.
    d.start(wait_ready=False)
    d.wait_log(r"ready: all pools are up$", timeout=20)
    assert d.log_has(r"cgroups: none"), d.log_text()
    assert not d.log_has(r"\b(err|crit)\b"), d.log_text()

    daemon = rd.proc_status(d.pid)
    assert daemon["Uid"].split()[0] == str(d.uid)
    pids = d.worker_pids()
    assert len(pids) == 2
    for pid in pids:
        assert rd.proc_status(pid)["Uid"].split()[0] == str(d.uid)
    sock = os.stat(d.control_path)
    assert (sock.st_uid, sock.st_mode & 0o777) == (d.uid, 0o660)

    # recyclerctl as the same user: status, and a recycle that completes.
    ctl = [d.bindir / "recyclerctl", "-s", d.control_path]
    p = subprocess.run(d.as_nobody([*ctl, "status"]), capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^pool web: running, ready 2/2", p.stdout, re.M), \
        p.stdout
    old = d.workers()[0]
    p = subprocess.run(d.as_nobody([*ctl, "recycle", "web", "0"]),
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 0, p.stderr
    d.wait_replaced(old, slot=0)


def test_unit_documentation_names_the_four_man_pages():
    unit = (SRCDIR / "packaging/systemd/recyclerd.service.in").read_text()
    named = [u for line in re.findall(r"(?m)^Documentation=(.*)$", unit)
             for u in line.split()]
    pages = sorted(f"man:{p.stem}({p.suffix[1:]})"
                   for p in (SRCDIR / "docs").glob("*.[1-8]"))
    assert len(pages) == 4, pages
    assert sorted(named) == pages
