# SPDX-License-Identifier: MIT
"""Processes that leave their worker's session and are re-parented to
recyclerd (a subreaper), without cgroups: they belong to their worker
(measured and killed with it), and none outlives the daemon, whether it
stops cleanly or is killed (then its guard kills them).

The worker below starts an intermediate process, which starts the
"grandchild" in a new session (optionally with an empty environment, so
that the harness's marker cannot find it and only the tree walks can
attribute it) and exits: the grandchild is re-parented to recyclerd. Its
pid goes to a file, and every test kills it at the end whatever happened.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import recyclerd as rd
from recyclerd import RECYCLERCTL_BIN, PYTHON, pid_alive, proc_status, wait_for

WORKER = r'''
import os, socket, subprocess, sys, time

pidfile, mb, empty_env, hold = sys.argv[1], int(sys.argv[2]), \
    sys.argv[3] == "1", float(sys.argv[4])

GRANDCHILD = (
    "import sys, time\n"
    "b = b'\\1' * (int(sys.argv[1]) << 20)\n"
    "time.sleep(1000)\n")

INTERMEDIATE = (
    "import os, subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2],"
    " sys.argv[3]], start_new_session=True,"
    " env={} if sys.argv[4] == '1' else None,"
    " stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)\n"
    "with open(sys.argv[3] + '.tmp', 'w') as f:\n"
    "    f.write(str(p.pid))\n"
    "os.rename(sys.argv[3] + '.tmp', sys.argv[3])\n"
    "time.sleep(float(sys.argv[5]))\n"
    "os._exit(0)\n")


def notify(msg):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), addr)
    s.close()


notify("READY=1")
# Started once ready: only ready workers are sampled (and walked).
inter = subprocess.Popen([sys.executable, "-c", INTERMEDIATE, GRANDCHILD,
                          str(mb), pidfile, "1" if empty_env else "0",
                          str(hold)])
inter.wait()
while True:
    time.sleep(1)
'''


class Orphaner:
    """The worker script and the grandchild's pid file, in the test's
    directory; kill() removes the grandchild if it is still there."""

    def __init__(self, d):
        self.d = d
        self.script = d.dir / "orphaner.py"
        self.script.write_text(WORKER)
        self.pidfile = d.dir / "grandchild.pid"
        self.pid = None

    def command(self, mb=0, empty_env=False, hold=0.0):
        return " ".join([PYTHON, str(self.script), str(self.pidfile),
                         str(mb), "1" if empty_env else "0", str(hold)])

    def wait_grandchild(self):
        """Its pid, once it was re-parented to the daemon."""
        self.pid = int(wait_for(lambda: self.pidfile.exists() and
                                self.pidfile.read_text(), 10,
                                what="the grandchild's pid file"))
        wait_for(lambda: proc_status(self.pid).get("PPid") ==
                 str(self.d.pid), 10,
                 what="the grandchild re-parented to recyclerd")
        return self.pid

    def adopted_pattern(self, how=None):
        if how is not None:
            return rf"\[pid {self.pid}\]: adopted orphan \(by {how}\)"
        return (rf"(\[pid {self.pid}\]: adopted orphan|adopted orphan "
                rf"\[pid {self.pid}\] of no known worker)")

    def wait_adopted(self):
        """Until the daemon says it found it (-v): a synchronisation, not
        an assertion, so that a daemon that never adopts orphans fails on
        what happens to the grandchild."""
        try:
            self.d.wait_log(self.adopted_pattern(), timeout=5)
        except AssertionError:
            pass

    def alive(self):
        return self.pid is not None and pid_alive(self.pid) and \
            str(self.pidfile).encode() in self.cmdline()

    def cmdline(self):
        try:
            return Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return b""

    def wait_gone(self, what):
        wait_for(lambda: not self.alive(), 10, what=what)

    def kill(self):
        if self.pid is None and self.pidfile.exists():
            try:
                self.pid = int(self.pidfile.read_text())
            except ValueError:
                return
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)


@pytest.fixture
def orphaner(recyclerd):
    o = Orphaner(recyclerd)
    yield o
    o.kill()


def start(d, o, **keys):
    keys.setdefault("command", o.command())
    # Without cgroups: the case where sessions were all the daemon knew.
    d.write_config(main={"cgroup": "none"}, **keys)
    d.start(args=("-v",))
    # Not d.wait_ready_workers(): a grandchild re-parented to the daemon
    # carries the pool's environment, and its pid is the newer one.
    wait_for(lambda: [w for w in status(d)["pools"][0]["workers"]
                      if w["state"] == "ready"], 15, what="a ready worker")
    return o.wait_grandchild()


def status(d):
    out = subprocess.run([RECYCLERCTL_BIN, "-s", str(d.control_path), "-j",
                          "status"], capture_output=True, text=True,
                         timeout=20 * rd.SLOW, check=True).stdout
    return json.loads(out)


def test_orphan_found_by_tree_walk_dies_with_recycle(recyclerd, orphaner):
    # An empty environment and a new session: only the walks of the
    # worker's tree (while the intermediate lived) can tell whose it is.
    start(recyclerd, orphaner,
          command=orphaner.command(empty_env=True, hold=2.0))
    orphaner.wait_adopted()
    # Not workers(): a grandchild with the pool's environment is a
    # child of the daemon too.
    [old] = [w["pid"] for w in status(recyclerd)["pools"][0]["workers"]]
    subprocess.run([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                    "recycle", "web", "all"], check=True,
                   timeout=20 * rd.SLOW, capture_output=True)
    recyclerd.wait_replaced(old)
    orphaner.wait_gone("the orphan killed with its recycled worker")
    assert recyclerd.log_has(orphaner.adopted_pattern("its worker's tree"))


def test_orphan_found_by_environment_dies_with_worker_kill(recyclerd,
                                                           orphaner):
    # The intermediate exits at once: no walk may have seen the
    # grandchild, but its environment names the pool and slot.
    start(recyclerd, orphaner, command=orphaner.command(hold=0.0),
          drain_signal="SIGCONT", drain_timeout="300ms")
    orphaner.wait_adopted()
    # Not workers(): a grandchild with the pool's environment is a
    # child of the daemon too.
    [old] = [w["pid"] for w in status(recyclerd)["pools"][0]["workers"]]
    subprocess.run([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                    "recycle", "web", "0"], check=True,
                   timeout=20 * rd.SLOW, capture_output=True)
    # It ignores its drain signal: killed at drain_timeout, tree and all.
    recyclerd.wait_replaced(old)
    orphaner.wait_gone("the orphan killed with its worker at drain_timeout")


@pytest.mark.parametrize("empty_env", [False, True],
                         ids=["attributed", "unknown"])
def test_orphan_killed_at_clean_shutdown(recyclerd, orphaner, empty_env):
    start(recyclerd, orphaner, command=orphaner.command(empty_env=empty_env))
    orphaner.wait_adopted()
    assert recyclerd.stop() == 0
    orphaner.wait_gone("the orphan killed at shutdown")


def test_guard_kills_orphan_when_daemon_is_killed(recyclerd, orphaner):
    start(recyclerd, orphaner, command=orphaner.command(empty_env=True))
    orphaner.wait_adopted()
    recyclerd.stop(sig=signal.SIGKILL)
    orphaner.wait_gone("the orphan killed by the guard")


def test_orphan_memory_counts_toward_its_worker(recyclerd, orphaner):
    start(recyclerd, orphaner,
          command=orphaner.command(mb=50),
          memory_metric="rss")
    wait_for(lambda: rd.rss_bytes(orphaner.pid) >= 50 << 20, 10,
             what="the grandchild's 50 MB")

    def counted():
        [w] = status(recyclerd)["pools"][0]["workers"]
        return w if w["rss"] >= 50 << 20 and w["memory"] >= 50 << 20 \
            else None
    w = wait_for(counted, 10, what="the orphan's memory in its worker's")
    assert w["pid"] != orphaner.pid
