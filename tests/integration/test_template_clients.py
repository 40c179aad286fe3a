# SPDX-License-Identifier: MIT
"""test_template_clients.py - the examples built on the client libraries
(examples/wsgi_preload.py on recyclerd_worker, examples/template_worker.c
on librecyclerd-worker) under the real daemon.

With spawn = exec serve_template() is the worker itself. With spawn =
template they check that the workers answering on the pool's socket were forked from the
template: the daemon's children, each in its own session, with their
slot, generation and LISTEN_PID, and a new generation after
`recyclerctl recycle POOL all`.
"""

import json
import os
import signal
import socket
import subprocess

import pytest

import recyclerd as rd

PY_EXAMPLE = rd.SRCDIR / "examples/wsgi_preload.py"
C_EXAMPLE = rd.HELPERS / "template_worker"


def command(kind):
    if kind == "python":
        return f"{rd.PYTHON} {PY_EXAMPLE}"
    if not C_EXAMPLE.exists():
        pytest.skip(f"no {C_EXAMPLE} (make tests/helpers/template_worker)")
    return str(C_EXAMPLE)


def get(path, timeout=10):
    """GET / over the unix socket at path; the JSON body."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(
        b"\r\n")[0], head
    return json.loads(body)


def start_pool(d, kind, spawn, workers=2):
    sock = d.dir / "app.sock"
    keys = {"command": command(kind), "workers": workers,
            "listen": f"unix:{sock}",
            "environment": f"{rd.MARKER}={d.test_id} "
                           f"PYTHONPATH={rd.SRCDIR / 'python'} "
                           f"PYTHONDONTWRITEBYTECODE=1 PRELOAD=4M"}
    if spawn != "exec":
        keys["spawn"] = spawn
    d.write_config(**keys)
    d.start()
    return sock


def answers(sock, n=12):
    return [get(sock) for _ in range(n)]


@pytest.fixture(params=["python", "c"])
def kind(request):
    return request.param


def test_examples_serve_as_exec_workers(recyclerd, kind):
    sock = start_pool(recyclerd, kind, "exec")
    ready = recyclerd.wait_ready_workers(2)
    seen = answers(sock)
    pids = {a["pid"] for a in seen}
    assert pids <= set(ready.values()), (pids, ready)
    for a in seen:
        # serve_template() ran the worker itself: the daemon's child,
        # LISTEN_PID its own, no generation (exec'd workers have none).
        assert a["ppid"] == recyclerd.pid
        assert a["listen_pid"] == str(a["pid"])
        assert a["slot"] in ("0", "1")


def test_examples_fork_workers_from_a_template(recyclerd, kind):
    sock = start_pool(recyclerd, kind, "template")
    recyclerd.wait_log(r"ready after ", count=2, timeout=30)
    seen = rd.wait_for(lambda: (lambda a: a if len({x["slot"] for x in a})
                                == 2 else None)(answers(sock, 20)),
                       timeout=20, what="answers from both slots")
    for a in seen:
        assert a["ppid"] == recyclerd.pid, "not re-parented to the daemon"
        assert a["sid"] == a["pid"], "the worker did not call setsid()"
        assert a["listen_pid"] == str(a["pid"])
        assert a["slot"] in ("0", "1") and a["generation"] != ""
    first = {a["generation"] for a in seen}
    old = {a["pid"] for a in seen}
    # A deploy: a new template, the workers rolled from it.
    subprocess.run([rd.RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                    "recycle", "web", "all"], check=True, timeout=20,
                   capture_output=True)

    def rolled():
        a = answers(sock, 8)
        return a if all(x["pid"] not in old for x in a) else None
    after = rd.wait_for(rolled, timeout=30, what="workers replaced")
    assert {a["generation"] for a in after}.isdisjoint(first) or \
        all(a["pid"] not in old for a in after)


def test_the_spare_is_the_daemons_child_until_named_and_goes_with_its_template(
        recyclerd, kind):
    # The libraries fork the next worker ahead; it waits re-parented to
    # the daemon, held as the template's orphan, becomes a worker when an
    # answer names it, and is killed with its template.
    sock = start_pool(recyclerd, kind, "template", workers=1)
    recyclerd.wait_log(r"ready after ", count=1, timeout=30)

    def template():
        st = json.loads(subprocess.run(
            [rd.RECYCLERCTL_BIN, "-s", str(recyclerd.control_path), "-j",
             "status"], timeout=20, capture_output=True).stdout)
        return st["pools"][0]["template"] or {}
    tpid = rd.wait_for(lambda: template().get("pid"), 10,
                       what="the template's pid")
    worker = answers(sock, 1)[0]["pid"]

    def spare(*known):
        kids = [p for p in rd.children_of(recyclerd.pid)
                if p not in known and not rd.proc_status(p).get(
                    "Name", "").startswith("recyclerd")]
        return kids[0] if len(kids) == 1 else None
    s = rd.wait_for(lambda: spare(tpid, worker), 10,
                    what="the spare, the daemon's child")
    assert os.getsid(s) == tpid, "the spare is in the template's session"
    subprocess.run([rd.RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                    "recycle", "web", "0"], check=True, timeout=20,
                   capture_output=True)
    rd.wait_for(lambda: answers(sock, 1)[0]["pid"] == s, 20,
                what=f"the spare [pid {s}] serving as the worker")
    assert os.getsid(s) == s
    assert not recyclerd.log_has(r"orphan.*reaped")
    # The next spare, then the template killed: the spare goes with it,
    # the worker does not.
    rd.wait_for(lambda: not rd.pid_alive(worker), 20, what="the old worker gone")
    s2 = rd.wait_for(lambda: spare(tpid, s), 10, what="the next spare")
    os.kill(tpid, signal.SIGKILL)
    rd.wait_for(lambda: not rd.pid_alive(s2), 10,
                what=f"the spare [pid {s2}] gone with its template")
    assert answers(sock, 1)[0]["pid"] == s, "the worker died with it"
