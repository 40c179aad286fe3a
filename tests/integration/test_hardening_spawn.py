# SPDX-License-Identifier: MIT
"""Spawning under pressure and with reduced privileges: a failed fork is
retried and counted, the parent-death signal survives user=, the guard is
restarted when it dies, user= workers get a clean environment, reserved
names are refused, no_new_privs and the capability bounding set."""

import json
import os
import pwd
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import recyclerd as rd
from recyclerd import (RECYCLERCTL_BIN, pid_alive, proc_status,
                       run_recyclerd, wait_for)

PIDS_ROOT = Path("/sys/fs/cgroup/pids")
# The worker runs as nobody: "/" is a directory it can enter, and the
# notify socket in the test's private directory is out of its reach.
NOBODY = {"user": "nobody", "directory": "/", "ready": "spawn"}


def status(d, pool="web"):
    r = subprocess.run([RECYCLERCTL_BIN, "-s", str(d.control_path),
                        "--json", "status"], capture_output=True,
                       text=True, timeout=20 * rd.SLOW)
    assert r.returncode == 0, r.stderr
    return next(p for p in json.loads(r.stdout)["pools"]
                if p["name"] == pool)


def guard_pids(d):
    """Live children of the daemon named recyclerd-guard."""
    out = []
    for pid in rd.children_of(d.pid):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "recyclerd-guard":
            out.append(pid)
    return out


def raw_environ(pid):
    """NAME=VALUE strings of pid's environment, duplicates kept."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return [x.decode(errors="replace") for x in raw.split(b"\0") if x]


def exec_done(pid):
    """Wait until pid runs its command: before exec, its environment and
    status are still the daemon's."""
    def check():
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() not in (
                "recyclerd", "")
        except OSError:
            return False
    wait_for(check, 10, what=f"pid {pid} exec'd")
    return pid


def all_dead(pids):
    return not any(pid_alive(p) for p in pids)


@pytest.mark.skipif(rd.VALGRIND, reason="valgrind's own tasks take the "
                    "pids.max room left for the daemon and its guard")
def test_failed_fork_is_retried_and_counted(recyclerd):
    """pids.max leaves room for the daemon and its guard only: the
    workers' forks fail with EAGAIN. Once the limit is lifted the pool
    must reach `workers`, and status/metrics count the failures."""
    if not (PIDS_ROOT / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids controller")
    group = PIDS_ROOT / f"rdtest-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    try:
        (group / "pids.max").write_text("2\n")
        recyclerd.write_config(workers=2, restart_backoff="200ms")
        inner = recyclerd.command

        def command(*args):
            return ["/bin/sh", "-c",
                    f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh",
                    *inner(*args)]
        recyclerd.command = command
        recyclerd.start(wait_ready=False)
        recyclerd.wait_log(r"unable to fork", timeout=10 * rd.SLOW)
        assert recyclerd.workers() == {}
        time.sleep(0.5)
        (group / "pids.max").write_text("max\n")
        recyclerd.wait_ready_workers(2, timeout=20)
        recyclerd.wait_notify("READY=1")
        pool = status(recyclerd)
        assert pool["spawn_failures"] >= 2
        assert pool["ready"] == 2
        r = subprocess.run([RECYCLERCTL_BIN, "-s",
                            str(recyclerd.control_path), "metrics"],
                           capture_output=True, text=True,
                           timeout=20 * rd.SLOW)
        line = next(x for x in r.stdout.splitlines() if x.startswith(
            'recyclerd_spawn_failures_total{pool="web"}'))
        assert int(line.split()[-1]) == pool["spawn_failures"]
    finally:
        try:
            (group / "pids.max").write_text("max\n")
        except OSError:
            pass
        # Everything back into the root group, then the group goes.
        for _ in range(50):
            try:
                procs = (group / "cgroup.procs").read_text().split()
            except OSError:
                break
            for pid in procs:
                try:
                    (PIDS_ROOT / "cgroup.procs").write_text(pid + "\n")
                except OSError:
                    pass
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_user_worker_dies_with_daemon_and_guard(recyclerd):
    """With the guard gone and the daemon SIGKILLed, only the parent-death
    signal is left to kill a user= worker: it must survive setuid."""
    # sleep writes nothing: a closed output pipe cannot kill it.
    recyclerd.write_config(workers=1, command="/bin/sleep 1000", **NOBODY)
    recyclerd.start()
    recyclerd.wait_workers(1)
    worker = exec_done(recyclerd.worker_pids()[0])
    assert proc_status(worker)["Uid"].split()[0] == str(
        pwd.getpwnam("nobody").pw_uid)
    guards = guard_pids(recyclerd)
    assert len(guards) == 1
    # Stopped, the daemon cannot start a new guard before it dies.
    recyclerd.send_signal(signal.SIGSTOP)
    os.kill(guards[0], signal.SIGKILL)
    wait_for(lambda: not pid_alive(guards[0]), 5, what="guard gone")
    recyclerd.send_signal(signal.SIGKILL)
    recyclerd.proc.wait(10)
    wait_for(lambda: not pid_alive(worker), 5,
             what="user= worker killed by its parent-death signal")


def test_guard_is_restarted(recyclerd):
    """A guard killed while the daemon runs is replaced, and the new one
    still kills the workers when the daemon is SIGKILLed."""
    # The background sleep has no parent-death signal: once the daemon
    # is gone, only a guard can kill it, by session (cgroup = none: not
    # by cgroup).
    recyclerd.write_config(workers=2, ready="spawn",
                           command='/bin/sh -c "sleep 1000 & exec sleep 1001"',
                           main={"cgroup": "none"})
    recyclerd.start()
    recyclerd.wait_workers(2)
    old = guard_pids(recyclerd)
    assert len(old) == 1
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: guard_pids(recyclerd) and
             guard_pids(recyclerd) != old, 10, what="a new guard")
    recyclerd.wait_log(r"started a new guard process")
    workers = recyclerd.worker_pids()
    wait_for(lambda: all(rd.descendants(w) for w in workers), 10,
             what="the workers' background sleeps")
    sessions = [pid for w in workers for pid in [w, *rd.descendants(w)]]
    recyclerd.send_signal(signal.SIGKILL)
    recyclerd.proc.wait(10)
    wait_for(lambda: all_dead(sessions), 10, what="workers and their "
             "children killed")


def test_guard_restart_covers_new_workers(recyclerd):
    """The new guard knows the workers started before it (told again) and
    after it."""
    recyclerd.write_config(workers=1, ready="spawn",
                           command='/bin/sh -c "sleep 1000 & exec sleep 1001"',
                           main={"cgroup": "none"})
    recyclerd.start()
    recyclerd.wait_workers(1)
    old = guard_pids(recyclerd)
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: guard_pids(recyclerd) and
             guard_pids(recyclerd) != old, 10, what="a new guard")
    first = recyclerd.worker_pids()
    subprocess.run([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                    "scale", "web", "2"], check=True, capture_output=True,
                   timeout=20 * rd.SLOW)
    recyclerd.wait_workers(2)
    workers = recyclerd.worker_pids()
    assert set(first) <= set(workers)
    wait_for(lambda: all(rd.descendants(w) for w in workers), 10,
             what="the workers' background sleeps")
    sessions = [pid for w in workers for pid in [w, *rd.descendants(w)]]
    new_guard = guard_pids(recyclerd)[0]
    recyclerd.send_signal(signal.SIGKILL)
    recyclerd.proc.wait(10)
    wait_for(lambda: all_dead(sessions), 10, what="workers killed")
    # It swept and exited, as the first guard would have.
    wait_for(lambda: not pid_alive(new_guard), 10, what="guard exited")


@pytest.mark.skipif(rd.VALGRIND, reason="valgrind opens its log file at "
                    "the lowest free descriptor, before the daemon runs")
def test_closed_stdio_gets_dev_null(recyclerd):
    """Started with 0 and 1 closed, the daemon must not hand them to the
    first files it opens."""
    recyclerd.write_config(workers=1)
    inner = recyclerd.command

    def command(*args):
        return ["/bin/sh", "-c", 'exec "$@" <&- >&-', "sh", *inner(*args)]
    recyclerd.command = command
    recyclerd.start()
    recyclerd.wait_ready_workers(1)
    for fd in (0, 1):
        assert os.readlink(f"/proc/{recyclerd.pid}/fd/{fd}") == "/dev/null"


def test_user_worker_environment_is_clean(recyclerd, monkeypatch):
    nobody = pwd.getpwnam("nobody")
    inner = recyclerd.env

    def env():
        e = inner()
        e["HOME"] = "/root"
        e["DAEMON_ONLY_SECRET"] = "x"
        e["LC_TIME"] = "C"
        return e
    recyclerd.env = env
    recyclerd.write_config(pools={
        "web": {"listen": f"unix:{recyclerd.dir}/w.sock",
                "environment": f"{rd.MARKER}={recyclerd.test_id} "
                               "SHELL=/bin/false", **NOBODY},
        "root": {},
    })
    recyclerd.start()
    recyclerd.wait_workers(1)
    # A root pool keeps the daemon's environment, as before.
    root = exec_done(recyclerd.wait_workers(1, pool="root")[0])
    env = dict(x.partition("=")[::2] for x in raw_environ(root))
    assert env["DAEMON_ONLY_SECRET"] == "x" and env["HOME"] == "/root"
    worker = exec_done(recyclerd.worker_pids()[0])
    items = raw_environ(worker)
    names = [x.partition("=")[0] for x in items]
    assert len(names) == len(set(names)), items
    env = dict(x.partition("=")[::2] for x in items)
    assert env["HOME"] == nobody.pw_dir
    assert env["USER"] == env["LOGNAME"] == "nobody"
    assert env["SHELL"] == "/bin/false"	 # environment= wins
    assert env["LC_TIME"] == "C"
    assert "PATH" in env
    assert "DAEMON_ONLY_SECRET" not in env
    assert env["RECYCLERD_POOL"] == "web"
    assert env["LISTEN_FDS"] == "1"
    assert env["LISTEN_PID"] == str(worker)


@pytest.mark.parametrize("value", [
    "NOTIFY_SOCKET=/tmp/x", "LISTEN_FDS=3", "WATCHDOG_USEC=1",
    "RECYCLERD_POOL=other"])
def test_reserved_environment_refused(recyclerd, value):
    conf = recyclerd.write_config(environment=value)
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode != 0
    line = next(i for i, x in enumerate(conf.read_text().splitlines(), 1)
                if x.startswith("environment"))
    assert f"{conf}:{line}: [pool web] environment" in r.stderr
    assert "set by recyclerd itself" in r.stderr


@pytest.mark.parametrize("key, value, why", [
    ("capabilities", "CAP_BOGUS", "unknown capability CAP_BOGUS"),
    ("capabilities", "none CAP_KILL", "unknown capability none"),
    ("no_new_privs", "maybe", "invalid boolean"),
])
def test_privilege_keys_refused(recyclerd, key, value, why):
    conf = recyclerd.write_config(**{key: value})
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode != 0
    assert f"[pool web] {key}" in r.stderr and why in r.stderr


def test_user_worker_has_no_new_privs_and_no_capabilities(recyclerd):
    recyclerd.write_config(pools={
        "web": dict(NOBODY),
        "root": {},
        "bind": {"capabilities": "CAP_NET_BIND_SERVICE kill",
                 "no_new_privs": "yes"},
    })
    recyclerd.start()
    recyclerd.wait_workers(1)
    recyclerd.wait_ready_workers(1, pool="root")
    recyclerd.wait_ready_workers(1, pool="bind")
    st = proc_status(exec_done(recyclerd.worker_pids()[0]))
    assert st["NoNewPrivs"] == "1"
    assert int(st["CapBnd"], 16) == 0
    daemon = proc_status(recyclerd.pid)
    st = proc_status(recyclerd.worker_pids("root")[0])
    assert st["NoNewPrivs"] == "0"
    assert st["CapBnd"] == daemon["CapBnd"]
    st = proc_status(recyclerd.worker_pids("bind")[0])
    assert st["NoNewPrivs"] == "1"
    assert int(st["CapBnd"], 16) == (1 << 10) | (1 << 5)
