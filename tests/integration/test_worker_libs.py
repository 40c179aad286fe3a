# SPDX-License-Identifier: MIT
"""test_worker_libs.py - the client libraries of the protocol: the Python
module recyclerd_worker (python/) and the C library librecyclerd-worker
(lib/), each through a probe program built on it (template_probe.py,
tests/helpers/template_probe), against a daemon played by the test
(fake_template.py): notify, listen_fds, and the template loop of
spawn = template (READY=1, FORK -> double fork -> PID=, the worker's
session, cgroup, environment and descriptors, ERROR= for bad requests,
exit at EOF). The real daemon runs them in test_template_clients.py.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import recyclerd as rd
from fake_template import WRAP, FakeDaemon, live_children, spawn, wait_exit

HERE = Path(__file__).resolve().parent
PY_PROBE = HERE / "template_probe.py"
C_PROBE = rd.HELPERS / "template_probe"
PYTHONPATH = str(rd.SRCDIR / "python")


def probe_argv(kind):
    if kind == "python":
        return [rd.PYTHON, str(PY_PROBE)]
    if not os.access(C_PROBE, os.X_OK):
        pytest.skip(f"no {C_PROBE} (make tests/helpers/template_probe)")
    return [str(C_PROBE)]


def probe_env(**extra):
    path = os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": PYTHONPATH + (":" + path if path else ""),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra)
    return env


@pytest.fixture(params=["python", "c"])
def kind(request):
    return request.param


@pytest.fixture
def fake(tmp_path):
    d = FakeDaemon(tmp_path)
    yield d
    d.cleanup()


def run_probe(kind, *args, env=None, fds=None, wrap=True, tmp=None):
    """Run the probe to completion with args (under WRAP: LISTEN_PID its
    own pid), fds {target: source} dup2'ed; its stdout."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("LISTEN_", "NOTIFY_", "RECYCLERD_TEMPLATE"))}
    e.update(probe_env(**(env or {})))
    out = Path(tmp) / "probe.out"
    out.unlink(missing_ok=True)
    pid = spawn((WRAP if wrap else []) + probe_argv(kind) + list(args), e,
                fds or {}, str(out))
    assert wait_exit(pid, 30) == 0, out.read_text()
    return out.read_text().strip()


# ---- notify -----------------------------------------------------------

def test_notify_path_socket(kind, tmp_path):
    path = tmp_path / "n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(10)
        out = run_probe(kind, "notify", "READY=1\nSTATUS=hi",
                        env={"NOTIFY_SOCKET": str(path)}, tmp=tmp_path)
        assert out in ("1", "True")
        assert s.recv(4096) == b"READY=1\nSTATUS=hi"


def test_notify_abstract_socket(kind, tmp_path):
    name = f"recyclerd-test-{os.getpid()}-{kind}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(10)
        out = run_probe(kind, "notify", "WATCHDOG=1",
                        env={"NOTIFY_SOCKET": "@" + name}, tmp=tmp_path)
        assert out in ("1", "True")
        assert s.recv(4096) == b"WATCHDOG=1"


def test_notify_without_socket_does_nothing(kind, tmp_path):
    assert run_probe(kind, "notify", "READY=1", tmp=tmp_path) in \
        ("0", "False")


# ---- listen_fds -------------------------------------------------------

def test_listen_fds_takes_ours_and_unsets_env(kind, tmp_path):
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        out = run_probe(kind, "listen_fds", env={"LISTEN_FDS": "1"},
                        fds={3: ls.fileno()}, tmp=tmp_path)
    # n, LISTEN_PID and LISTEN_FDS after the call, FD_CLOEXEC on fd 3.
    assert out == "1 unset unset 1"


def test_listen_fds_of_another_process_are_not_ours(kind, tmp_path):
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        out = run_probe(kind, "listen_fds", fds={3: ls.fileno()},
                        env={"LISTEN_FDS": "1", "LISTEN_PID": "1"},
                        wrap=False, tmp=tmp_path)
    assert out == "0 unset unset -1"


# ---- the template loop --------------------------------------------------

def test_without_template_fd_runs_the_worker_itself(kind, fake):
    pid = fake.start(probe_argv(kind), probe_env(PROBE_EXIT="7"),
                     template=False)
    r = fake.report(pid)
    assert r["pid"] == pid
    assert r["listen_fds"] == 1 and r["listen_pid"] == str(pid)
    assert r["worker"] == "" and r["generation"] == ""
    assert wait_exit(pid, 10) == 7


def test_fork_gives_a_worker_set_up_as_the_protocol_says(kind, fake):
    tpl = fake.start(probe_argv(kind), probe_env())
    ready = fake.wait_ready()
    assert "READY=1" in ready.split("\n")
    pid = fake.fork(2, 5, extra=" future=field")
    r = fake.report(pid)
    assert r["pid"] == pid != tpl
    # Double fork: re-parented to the subreaper (us), not the template's.
    assert r["ppid"] == os.getpid()
    assert rd.proc_status(pid)["PPid"] == str(os.getpid())
    assert r["sid"] == pid, "the worker did not call setsid()"
    assert os.getsid(tpl) != pid
    assert (r["worker"], r["generation"]) == ("2", "5")
    assert r["listen_pid"] == str(pid) and r["listen_fds"] == 1
    assert r["listen_env_left"] == 0
    assert r["template_fd_env"] == ""
    assert r["template_fd_open"] == 0, "the template's fd is open in " \
        "the worker"
    if kind == "python":
        assert r["gc_frozen"] > 0, "gc.freeze() was not called"
        assert r["gc_enabled"], "gc not enabled again in the worker"
    # The template keeps serving: a second worker, its own pid.
    pid2 = fake.fork(3, 5)
    assert pid2 != pid and fake.report(pid2)["worker"] == "3"
    assert rd.pid_alive(tpl)


def test_sockets_taken_in_the_template_reach_the_workers(kind, fake):
    fake.start(probe_argv(kind), probe_env(PROBE_LISTEN_IN_TEMPLATE="1"))
    fake.wait_ready()
    pid = fake.fork(0, 1)
    r = fake.report(pid)
    assert r["listen_fds"] == 1 and r["listen_pid"] == str(pid)


def test_worker_enters_the_cgroup_passed_as_fd(kind, fake, tmp_path):
    cg = tmp_path / "cg"
    cg.mkdir()
    procs = cg / "cgroup.procs"
    procs.write_text("")
    fake.start(probe_argv(kind), probe_env())
    fake.wait_ready()
    pid = fake.fork(1, 1, cgroup_dir=cg)
    # Written before the template answered: no waiting here.
    assert procs.read_text() == "0"
    assert fake.report(pid)["worker"] == "1"


def test_worker_enters_a_v1_cgroup_by_its_tasks_file(kind, fake, tmp_path):
    # v1 has tasks: the forked worker, single-threaded, moves itself by
    # it and spares cgroup.procs's wait for an RCU grace period.
    cg = tmp_path / "cg-v1"
    cg.mkdir()
    (cg / "cgroup.procs").write_text("")
    (cg / "tasks").write_text("")
    fake.start(probe_argv(kind), probe_env())
    fake.wait_ready()
    pid = fake.fork(2, 1, cgroup_dir=cg)
    assert (cg / "tasks").read_text() == "0"
    assert (cg / "cgroup.procs").read_text() == ""
    assert fake.report(pid)["worker"] == "2"


def test_cgroup_not_enterable_is_an_error(kind, fake, tmp_path):
    cg = tmp_path / "cg-empty"
    cg.mkdir()          # no cgroup.procs: openat fails
    fake.start(probe_argv(kind), probe_env())
    fake.wait_ready()
    fd = os.open(cg, os.O_PATH | os.O_DIRECTORY)
    try:
        answer = fake.request("FORK slot=0 generation=1", [fd])
    finally:
        os.close(fd)
    assert answer.startswith("ERROR=") and "cgroup" in answer, answer
    # Still serving.
    assert fake.report(fake.fork(0, 2))["generation"] == "2"


BAD = [
    (b"HELLO", "unknown request"),
    (b"FORK", "no slot"),
    (b"FORK slot=1", "no generation"),
    (b"FORK generation=1", "no slot"),
    (b"FORK slot=x generation=1", "not a number"),
    (b"FORK slot=-1 generation=1", "not a number"),
    (b"FORK slot=1 generation=99999999999999999999999", "not a number"),
    (b"FORK slot=1 generation=2 junk", "not key=value"),
    (b"FORK slot=1 generation=2 =x", "not key=value"),
    (b"\xff\xfe FORK", ""),
    (b"FORK slot=1\0 generation=2", ""),
    (b"FORK slot=1 generation=2 " + b"x=y " * 2000, "longer"),
]


def test_bad_requests_get_error_and_the_loop_goes_on(kind, fake, tmp_path):
    fake.start(probe_argv(kind), probe_env())
    fake.wait_ready()
    for data, why in BAD:
        answer = fake.request(data)
        assert answer is not None, f"no answer to {data[:40]!r}"
        assert answer.startswith("ERROR="), (data[:40], answer)
        assert why in answer, (data[:40], answer)
    # Two descriptors where one is expected.
    fds = [os.open(tmp_path, os.O_PATH), os.open(tmp_path, os.O_PATH)]
    try:
        answer = fake.request("FORK slot=0 generation=1", fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert answer.startswith("ERROR=") and "descriptor" in answer, answer
    assert not fake.workers
    # None of it hurt: the next good request gets a worker.
    assert fake.report(fake.fork(4, 9))["worker"] == "4"


def test_worker_exit_status_is_run_workers_return(kind, fake):
    fake.start(probe_argv(kind), probe_env(PROBE_EXIT="5"))
    fake.wait_ready()
    pid = fake.fork(0, 1)
    assert wait_exit(pid, 10) == 5
    fake.workers.discard(pid)


def test_template_exits_at_eof_and_workers_stay(kind, fake):
    tpl = fake.start(probe_argv(kind), probe_env())
    fake.wait_ready()
    pid = fake.fork(0, 1)
    fake.report(pid)
    fake.close()
    assert wait_exit(tpl, 10) == 0, "template did not exit at EOF"
    fake.template = None
    assert rd.pid_alive(pid), "the worker died with its template"


def test_bad_template_fd_is_an_error(kind, tmp_path):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("LISTEN_", "NOTIFY_"))}
    e.update(probe_env(RECYCLERD_TEMPLATE_FD="0"))     # /dev/null
    p = subprocess.run(probe_argv(kind), env=e, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "template" in p.stderr.lower(), p.stderr



@pytest.mark.parametrize("example", ["wsgi_preload.py", "template_worker"])
def test_examples_serve_from_forked_workers(example, fake):
    """The examples as templates: their workers answer on the socket."""
    if example.endswith(".py"):
        argv = [rd.PYTHON, str(rd.SRCDIR / "examples" / example)]
    else:
        argv = [str(rd.HELPERS / example)]
        if not os.access(argv[0], os.X_OK):
            pytest.skip(f"no {argv[0]}")
    fake.start(argv, probe_env(PRELOAD="1M"))
    fake.wait_ready()
    pid = fake.fork(1, 3)
    port = fake.listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], data
    a = json.loads(body)
    assert a["pid"] == pid and a["sid"] == pid
    assert (a["slot"], a["generation"]) == ("1", "3")
    assert a["listen_pid"] == str(pid)


def wait_no_children_but(keep, timeout=10):
    deadline = time.monotonic() + timeout
    while (left := live_children() - keep) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


@pytest.mark.parametrize("end", ["eof", "sigkill"])
def test_the_worker_forked_ahead_never_outlives_its_template(kind, fake,
                                                             end):
    """The libraries keep one worker forked ahead of the next request.
    When the template goes (the daemon closes its end, or the template is
    killed), that spare goes too: it never reaches the daemon as a
    process nobody asked for."""
    tpl = fake.start(probe_argv(kind), probe_env())
    fake.wait_ready()
    pid = fake.fork(0, 1)
    fake.report(pid)
    if end == "eof":
        fake.close()
        assert wait_exit(tpl, 10) == 0, "template did not exit at EOF"
    else:
        os.kill(tpl, signal.SIGKILL)
        assert wait_exit(tpl, 10) == -signal.SIGKILL
    fake.template = None
    assert not wait_no_children_but({pid}), \
        f"left behind: {wait_no_children_but({pid}, 0)}"
    assert rd.pid_alive(pid), "the worker died with its template"


def test_the_spare_waits_as_our_child_and_a_killed_one_costs_no_error(
        kind, fake):
    """The spare, forked ahead of the next request, waits already
    re-parented to the daemon (its intermediate exited at once: a request
    wakes only the spare). Killed meanwhile, it costs no error: the
    request is still answered PID= by a fresh spare, and the template
    lives on."""
    tpl = fake.start(probe_argv(kind), probe_env())
    fake.wait_ready()
    sid = os.getsid(tpl)

    def spares():
        out = []
        for p in rd.children_of(os.getpid()):
            try:
                if p != tpl and os.getsid(p) == sid:
                    out.append(p)
            except ProcessLookupError:
                pass
        return out

    [spare] = rd.wait_for(spares, 10, what="the spare, our child")
    assert rd.children_of(tpl) == [], "the intermediate is still there"
    os.kill(spare, signal.SIGKILL)
    os.waitpid(spare, 0)
    worker = fake.fork(0, 1)
    assert worker != spare
    r = fake.report(worker)
    assert (r["worker"], r["ppid"]) == ("0", os.getpid())
    assert rd.pid_alive(tpl), f"the template died:\n{fake.log_text()}"
    assert fake.fork(1, 1) != worker


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
