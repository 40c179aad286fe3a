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
    out = ctl(d, "-j", "status")  # exits 3 when a pool failed
    assert out.stdout, out.stderr
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
    recyclerd.wait_log(r"template 1: ready: forking workers")
    recyclerd.wait_log(r"worker 0 \[pid \d+\]: forked by the template")
    # Each in its own group, the template in template-1 (v1 on the host,
    # v2 in make check-vm), when the daemon has cgroups at all.
    if recyclerd.log_has(r"cgroups: .*cgroup v[12]"):
        assert re.search(r"/template-1$", cgroup_of(t["pid"]), re.M)
        for slot, pid in ws.items():
            assert re.search(rf"/worker-{slot}-\d+$", cgroup_of(pid), re.M)


def test_without_cgroups_no_descriptor_is_passed(recyclerd):
    start(recyclerd, workers=2, main={"cgroup": "none"})
    ws = ready_workers(recyclerd, 2)
    t = template_of(recyclerd)
    for pid in ws.values():
        assert ppid(pid) == recyclerd.pid
        assert cgroup_of(pid) == cgroup_of(t["pid"])


def smaps_rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":"):
                out[parts[0][:-1]] = int(parts[1]) * 1024
    return out


def test_workers_share_the_template_pages(recyclerd):
    start(recyclerd, "--preload", "64", workers=3, memory_metric="pss")
    ws = ready_workers(recyclerd, 3)
    t = template_of(recyclerd)
    for pid in [t["pid"], *ws.values()]:
        m = smaps_rollup(pid)
        assert m["Rss"] >= 64 << 20, m
        # Four processes map the 64 MiB: each is charged about a quarter.
        assert m["Pss"] < m["Rss"] * 0.6, (pid, m)
    # The template is measured and shown as the shared baseline.
    wait_for(lambda: (pool(recyclerd)["template"].get("rss") or 0)
             >= 64 << 20, 10, what="the template's rss in status")


def probe_reads(d, kind):
    text = ctl(d, "metrics").stdout
    m = re.search(rf'^recyclerd_probe_reads_total{{kind="{kind}"}} (\S+)$',
                  text, re.M)
    assert m, text
    return float(m.group(1))


def test_rss_over_the_limit_by_shared_pages_is_not_read_each_sample(
        recyclerd):
    # Each worker maps the template's 64 MiB: rss ~70M over recycle_memory,
    # pss ~25M under it. The rss - pss gap of one smaps_rollup read stands
    # for the figure for a second; every sample reading it would be 10 a
    # second per worker.
    start(recyclerd, "--preload", "64", workers=2, memory_metric="pss",
          recycle_memory="48M", sample_interval="100ms", jitter="0",
          prespawn="no")
    ws = ready_workers(recyclerd, 2)
    for pid in ws.values():
        m = smaps_rollup(pid)
        assert m["Rss"] > 48 << 20 > m["Pss"], m
    smaps, statm = probe_reads(recyclerd, "smaps"), probe_reads(recyclerd,
                                                                "statm")
    wait_for(lambda: probe_reads(recyclerd, "statm") >= statm + 60, 20,
             what="60 more statm reads")
    statm_n = probe_reads(recyclerd, "statm") - statm
    smaps_n = probe_reads(recyclerd, "smaps") - smaps
    assert smaps_n <= statm_n / 4, (smaps_n, statm_n)
    # Still measured exactly, and not recycled on rss.
    p = pool(recyclerd)
    assert {w["slot"]: w["pid"] for w in p["workers"]} == ws
    assert all(w["memory"] < 48 << 20 for w in p["workers"]), p["workers"]


def test_workers_inherit_the_sockets(recyclerd):
    path = recyclerd.dir / "web.sock"
    start(recyclerd, workers=2, listen=f"unix:{path}")
    ws = ready_workers(recyclerd, 2)
    t = template_of(recyclerd)
    # The daemon's listening socket, at fd 3 of the template and, through
    # the fork, of every worker.
    want = os.readlink(f"/proc/{t['pid']}/fd/3")
    assert want.startswith("socket:")
    for pid in ws.values():
        assert os.readlink(f"/proc/{pid}/fd/3") == want
    for _ in range(4):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(path))
            slot, pid, _gen = s.makefile().readline().split()
            assert ws[int(slot)] == int(pid)


def test_recycled_by_memory(recyclerd):
    start(recyclerd, "--leak", "4", workers=1, memory_metric="rss",
          recycle_memory="60M", recycle_samples=1)
    first = ready_workers(recyclerd, 1)[0]
    recyclerd.wait_log(rf"worker 0 \[pid {first}\]: .*reason memory",
                       timeout=30)
    second = wait_for(lambda: ready_workers(recyclerd, 1)[0] != first and
                      ready_workers(recyclerd, 1)[0], 15,
                      what="a replacement")
    assert ppid(second) == recyclerd.pid
    assert recyclerd.log_has(rf"worker 0 \[pid {second}\]: forked by the "
                             r"template")


def test_recycled_by_tasks(recyclerd):
    start(recyclerd, "--tasks", "1", workers=1, max_tasks=5, jitter="0")
    first = ready_workers(recyclerd, 1)[0]
    recyclerd.wait_log(rf"worker 0 \[pid {first}\]: .*reason tasks",
                       timeout=30)
    second = ready_workers(recyclerd, 1)[0]
    assert second != first
    assert recyclerd.log_has(rf"worker 0 \[pid {second}\]: forked by the "
                             r"template")


def test_template_crash_leaves_workers_running(recyclerd):
    start(recyclerd, workers=2)
    ws = ready_workers(recyclerd, 2)
    t1 = template_of(recyclerd)
    os.kill(t1["pid"], signal.SIGKILL)
    recyclerd.wait_log(r"template 1: failed: killed by SIGKILL .*a new "
                       r"template in")
    t2 = wait_for(lambda: (lambda t: t if t["generation"] == 2 and
                           t["state"] == "ready" else None)(
                               template_of(recyclerd)), 15,
                  what="template 2 ready")
    assert t2["pid"] != t1["pid"]
    assert pool(recyclerd)["template"]["failures"] == 1
    text = ctl(recyclerd, "status").stdout
    assert re.search(rf"^  template 2 \[pid {t2['pid']}\]: ready, up .*"
                     r"forks \d+, failures 1$", text, re.M), text
    assert re.search(r"^  template last error: template 1 killed by "
                     r"SIGKILL after", text, re.M), text
    for pid in ws.values():
        assert pid_alive(pid)
    assert ready_workers(recyclerd, 2) == ws
    # Later forks come from the new template.
    assert ctl(recyclerd, "recycle", "web", "0").returncode == 0
    new = wait_for(lambda: (lambda w: w if w.get(0) not in (None, ws[0])
                            else None)(ready_workers(recyclerd, 2)), 15,
                   what="slot 0 replaced")[0]
    assert ppid(new) == recyclerd.pid
    assert pid_alive(ws[1])


def test_recycle_all_deploys_a_new_template_without_a_gap(recyclerd):
    path = recyclerd.dir / "web.sock"
    start(recyclerd, workers=2, listen=f"unix:{path}", max_recycling=1)
    old = ready_workers(recyclerd, 2)
    t1 = template_of(recyclerd)
    failures, served, stop = [], set(), threading.Event()

    def load():
        while not stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(5)
                    s.connect(str(path))
                    line = s.makefile().readline()
                    if not line:
                        failures.append("empty answer")
                    else:
                        served.add(int(line.split()[1]))
            except OSError as e:
                failures.append(str(e))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        fewer = []
        assert ctl(recyclerd, "recycle", "web", "all").returncode == 0

        def rolled():
            p = pool(recyclerd)
            ready = [w for w in p["workers"] if w["state"] == "ready"]
            if len(ready) < 2:
                fewer.append(len(ready))
            pids = {w["pid"] for w in ready}
            t = p["template"]
            return (t["generation"] == 2 and t["old"] == 0 and
                    len(pids) == 2 and not pids & set(old.values()))
        wait_for(rolled, 30, interval=0.01, what="workers rolled onto "
                 "template 2 and template 1 retired")
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures[:5]
    assert not fewer, "a moment with fewer than 2 ready workers"
    assert not pid_alive(t1["pid"])
    new = ready_workers(recyclerd, 2)
    assert served & set(new.values())
    recyclerd.wait_log(r"template 1: retired, draining")
    # Forked after template 2 was ready, so from it.
    i_ready = recyclerd.line_index(r"template 2: ready")[0]
    for slot, pid in new.items():
        assert recyclerd.line_index(
            rf"worker {slot} \[pid {pid}\]: forked")[0] > i_ready


def test_reload_that_changes_the_command_deploys_a_new_template(recyclerd):
    start(recyclerd, workers=1)
    old = ready_workers(recyclerd, 1)[0]
    t1 = template_of(recyclerd)
    recyclerd.write_config(workers=1, spawn="template", ready_timeout="5s",
                           command=tcommand("--interval", "0.2"))
    recyclerd.reload()
    wait_for(lambda: template_of(recyclerd)["generation"] == 2 and
             ready_workers(recyclerd, 1)[0] != old, 15,
             what="new template and worker")
    wait_for(lambda: not pid_alive(t1["pid"]), 10, what="template 1 gone")


def test_ready_before_the_pid_answer_counts(recyclerd):
    # The worker sends READY=1 (and is our child, found by the orphan
    # sweep every 50 ms) half a second before the template names it.
    start(recyclerd, "--delay-answer", "0.5", workers=2, ready_timeout="3s")
    ws = ready_workers(recyclerd, 2)
    for pid in ws.values():
        assert ppid(pid) == recyclerd.pid
        assert not recyclerd.log_has(rf"orphan \[pid {pid}\]")
    assert not recyclerd.log_has(r"notify: dropped message")
    assert not recyclerd.log_has(r"no READY=1 within")


def test_ready_sent_below_the_template_is_the_workers(recyclerd):
    # READY=1 comes while the worker's parent is still the intermediate
    # process below the template: it is the worker's, not the template's
    # (it was once taken as the template's and lost; the worker was
    # killed at ready_timeout).
    start(recyclerd, "--linger-intermediate", "0.5", workers=2,
          ready_timeout="4s")
    ws = ready_workers(recyclerd, 2, timeout=10)
    for pid in ws.values():
        assert ppid(pid) == recyclerd.pid
    assert not recyclerd.log_has(r"no READY=1 within")
    assert not recyclerd.log_has(r"notify: dropped message")


def test_exit_before_the_pid_answer_is_recorded(recyclerd):
    once = recyclerd.dir / "once"
    start(recyclerd, "--delay-answer", "0.5", "--worker", "exit", "--once",
          str(once), workers=1, ready_timeout="3s")
    recyclerd.wait_log(r"worker 0 \[pid \d+\]: forked by template 1, and "
                       r"gone before its PID= was read")
    recyclerd.wait_log(r"worker 0 \[pid \d+\]: crashed: exited with "
                       r"status 3")
    assert pool(recyclerd)["failed_starts"] == 1
    ready_workers(recyclerd, 1)


def test_kill_memory_applies_to_the_template(recyclerd):
    start(recyclerd, "--grow-per-fork", "80", workers=1,
          memory_metric="rss", kill_memory="60M")
    w = ready_workers(recyclerd, 1)[0]
    recyclerd.wait_log(r"template 1: \S+ over kill_memory 60M, killing it")
    t2 = wait_for(lambda: (lambda t: t if t["generation"] == 2 and
                           t["state"] == "ready" else None)(
                               template_of(recyclerd)), 15,
                  what="template 2 ready")
    assert "kill_memory" in t2["last_error"]
    # Its worker was forked before it grew: untouched.
    assert pid_alive(w) and ready_workers(recyclerd, 1)[0] == w


def test_fork_owed_by_a_retired_template_is_replaced(recyclerd):
    start(recyclerd, "--delay-answer", "1", workers=1, ready_timeout="5s")
    first = ready_workers(recyclerd, 1)[0]
    assert ctl(recyclerd, "recycle", "web", "0").returncode == 0
    recyclerd.wait_log(rf"worker 0 \[pid {first}\]: .*recycl", timeout=5)
    assert ctl(recyclerd, "recycle", "web", "all").returncode == 0
    recyclerd.wait_log(r"forked by a template retired while it was "
                       r"starting", timeout=15)

    def on_template_2():
        ws = ready_workers(recyclerd, 1)
        i = recyclerd.line_index(r"template 2: ready")[0]
        j = recyclerd.line_index(rf"worker 0 \[pid {ws[0]}\]: forked")[0]
        return i is not None and j is not None and j > i and ws[0]
    last = wait_for(on_template_2, 20, what="a worker forked by template 2")
    assert last != first
    wait_for(lambda: template_of(recyclerd)["old"] == 0, 10,
             what="template 1 retired")


def test_stop_and_start_stop_and_restart_the_template(recyclerd):
    start(recyclerd, workers=2)
    ws = ready_workers(recyclerd, 2)
    t1 = template_of(recyclerd)
    assert ctl(recyclerd, "stop", "web").returncode == 0
    wait_for(lambda: not pid_alive(t1["pid"]) and
             not any(pid_alive(p) for p in ws.values()), 15,
             what="template and workers stopped")
    assert pool(recyclerd)["template"]["pid"] is None
    assert ctl(recyclerd, "start", "web").returncode == 0
    t2 = template_of(recyclerd)
    assert t2["generation"] == 2
    ready_workers(recyclerd, 2)
    # A stopped template is no failure.
    assert pool(recyclerd)["template"]["failures"] == 0


def test_shutdown_while_a_fork_is_owed_leaves_nothing(recyclerd):
    # The daemon stops while the template has forked a worker it has not
    # named yet: the teardown fails the test on any process left.
    start(recyclerd, "--delay-answer", "3", workers=1, ready_timeout="10s")
    ready_workers(recyclerd, 1)
    assert ctl(recyclerd, "recycle", "web", "0").returncode == 0
    wait_for(lambda: pool(recyclerd)["template"]["forking"] == 1, 10,
             what="a fork owed")
    time.sleep(0.3)
    recyclerd.stop()
    assert recyclerd.proc.returncode == 0


def test_reload_from_template_to_exec_and_back(recyclerd):
    start(recyclerd, workers=1)
    forked = ready_workers(recyclerd, 1)[0]
    t1 = template_of(recyclerd)
    recyclerd.write_config(workers=1, spawn="exec")
    recyclerd.reload()
    wait_for(lambda: not pid_alive(t1["pid"]) and not pid_alive(forked) and
             pool(recyclerd)["template"] is None, 15,
             what="template and forked worker gone")
    exec_pid = ready_workers(recyclerd, 1)[0]
    assert "RECYCLERD_TEMPLATE_FD" not in rd.read_environ(exec_pid)
    recyclerd.write_config(workers=1, spawn="template", command=tcommand())
    recyclerd.reload()
    wait_for(lambda: ready_workers(recyclerd, 1)[0] != exec_pid, 15,
             what="a forked worker again")
    assert template_of(recyclerd)["generation"] == 2
    wait_for(lambda: not pid_alive(exec_pid), 10, what="exec'd worker gone")


# --- errors: each named in the log and status, and never a hung pool ---

ERRORS = [
    ("never-ready", r"template 1: no READY=1 within ready_timeout 1s; "
     r"killing it"),
    ("error", r"worker 0: template 1 could not fork it: "
     r"ERROR=refusing to fork for the test"),
    ("no-answer", r"template 1: no answer to FORK within ready_timeout "
     r"1s; killing it"),
    ("close", r"template 1: closed its end of RECYCLERD_TEMPLATE_FD; "
     r"killing it"),
    ("crash", r"template 1: failed: exited with status 7"),
    ("bad-pid", r"template 1: answered PID=1, which is not a child of "
     r"recyclerd"),
]


@pytest.mark.parametrize("mode,line", ERRORS, ids=[e[0] for e in ERRORS])
def test_template_error_is_named_and_recovered(recyclerd, mode, line):
    once = recyclerd.dir / "once"
    start(recyclerd, "--template", mode, "--once", str(once), workers=2,
          ready_timeout="1s")
    recyclerd.wait_log(line, timeout=15)
    ws = ready_workers(recyclerd, 2, timeout=20)
    for pid in ws.values():
        assert ppid(pid) == recyclerd.pid
    t = pool(recyclerd)["template"]
    assert t["last_error"], t
    if mode != "error":
        assert t["failures"] >= 1 and t["generation"] >= 2


@pytest.mark.parametrize("mode,line", [
    ("never-ready", r"worker 0 \[pid \d+\]: no READY=1 within "
     r"ready_timeout 1s"),
    ("exit", r"worker 0 \[pid \d+\]: crashed: exited with status 3"),
], ids=["never-ready", "exit"])
def test_forked_worker_error_is_named_and_recovered(recyclerd, mode, line):
    once = recyclerd.dir / "once"
    start(recyclerd, "--worker", mode, "--once", str(once), workers=1,
          ready_timeout="1s")
    recyclerd.wait_log(line, timeout=15)
    pid = ready_workers(recyclerd, 1, timeout=20)[0]
    assert ppid(pid) == recyclerd.pid


def test_template_that_always_fails_fails_the_pool(recyclerd):
    start(recyclerd, "--template", "crash", workers=1, rapid_fail="2/60s",
          restart_backoff="50ms")
    wait_for(lambda: pool(recyclerd)["state"] == "failed", 30,
             what="pool failed by rapid_fail")
    t = pool(recyclerd)["template"]
    assert "exited with status 7" in t["last_error"]
