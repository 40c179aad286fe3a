# SPDX-License-Identifier: MIT
"""spawn = template: workers forked from a template (issue 12, daemon side).

The template is tests/helpers/template_worker.py, which speaks the protocol
of recyclerd-protocol(7) directly. Each test starts the real daemon.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import recyclerd as rd
from recyclerd import (PYTHON, RECYCLERCTL_BIN, SRCDIR, pid_alive,
                       proc_status, wait_for)

TEMPLATE = SRCDIR / "tests/helpers/template_worker.py"


def tcommand(*args):
    return " ".join([PYTHON, str(TEMPLATE), *args])


def ctl(d, *args):
    return subprocess.run([RECYCLERCTL_BIN, "-s", str(d.control_path),
                           *args], capture_output=True, text=True,
                          timeout=20 * rd.SLOW)


def status(d):
    out = ctl(d, "-j", "status")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def pool(d, name="web"):
    for p in status(d)["pools"]:
        if p["name"] == name:
            return p
    raise AssertionError(f"no pool {name}")


def ready_workers(d, n, name="web", timeout=15):
    """{slot: pid} once n workers are ready."""
    def check():
        p = pool(d, name)
        ws = {w["slot"]: w["pid"] for w in p["workers"]
              if w["state"] == "ready"}
        return ws if len(ws) >= n else None
    return wait_for(check, timeout, what=f"{n} ready workers")


def template_of(d, name="web", ready=True, timeout=15):
    def check():
        t = pool(d, name)["template"]
        if t is None or t["pid"] is None:
            return None
        return t if not ready or t["state"] == "ready" else None
    return wait_for(check, timeout, what="a ready template")


def start(d, *args, main=None, **keys):
    keys.setdefault("command", tcommand(*args))
    keys.setdefault("spawn", "template")
    keys.setdefault("ready_timeout", "5s")
    d.write_config(main=main, **keys)
    d.start(args=("-v",))


def ppid(pid):
    return int(proc_status(pid)["PPid"])


def cgroup_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read()


def test_workers_are_forked_children_of_the_daemon(recyclerd):
    start(recyclerd, workers=2)
    t = template_of(recyclerd)
    ws = ready_workers(recyclerd, 2)
    assert pool(recyclerd)["spawn"] == "template"
    for slot, pid in ws.items():
        assert ppid(pid) == recyclerd.pid
        st = proc_status(pid)
        assert int(st["NSpid"].split()[0]) == pid
        assert os.getsid(pid) == pid
        # Forked, not exec'd: the template's program, and the fork
        # fields in its environment the worker set itself.
        assert "template_worker.py" in open(
            f"/proc/{pid}/cmdline").read()
        assert pid != t["pid"]
    assert ppid(t["pid"]) == recyclerd.pid
    assert pool(recyclerd)["template"]["forks"] >= 2
    recyclerd.wait_log(r"template 1: ready after")
    recyclerd.wait_log(r"worker 0 \[pid \d+\]: forked by the template")
