# SPDX-License-Identifier: MIT
"""The control socket and recyclerctl: every command through a raw socket
and through recyclerctl (--json and tables), the peer check, and the bounds
on hostile clients (count, line length, unread output, malformed input);
the socket file's life: mode, stale file replaced, one daemon per path."""

import calendar
import grp
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

import recyclerd as rd
from recyclerd import (RECYCLERCTL_BIN, pid_alive, py_worker, wait_for)

CLIENTS_MAX = 64
LINE_MAX = 4096
COMMANDS = ("status, recycle, scale, stop, start, reload, events, logs, "
            "config, metrics, version")
SETPRIV = shutil.which("setpriv")


# --- helpers -------------------------------------------------------------

class Client:
    """One raw connection: send lines, read JSON answer lines."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout * rd.SLOW)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        """The next answer line, raw (bytes, no newline); b"" at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def answer(self):
        raw = self.line()
        assert raw, "connection closed without an answer"
        obj = json.loads(raw)
        assert isinstance(obj, dict) and isinstance(obj.get("ok"), bool), raw
        if not obj["ok"]:
            assert isinstance(obj.get("error"), str) and obj["error"], raw
        return obj

    def request(self, text):
        self.send(text + "\n")
        return self.answer()

    def close(self):
        self.sock.close()


def hung_up(c):
    """True when the daemon closed c (EOF, or a reset)."""
    try:
        return c.line() == b""
    except ConnectionResetError:
        return True


def ask(d, text):
    c = Client(d.control_path)
    try:
        return c.request(text)
    finally:
        c.close()


def ok(d, text):
    a = ask(d, text)
    assert a["ok"], f"{text}: {a}"
    return a


def ctl(d, *args, user=None, timeout=20):
    """Run recyclerctl -s SOCKET ARGS (as `nobody` with user="nobody" and
    the groups of setpriv_args); returns the CompletedProcess."""
    cmd = [RECYCLERCTL_BIN, "-s", str(d.control_path), *args]
    if user is not None:
        cmd = [SETPRIV, *user, *cmd]
    env = dict(os.environ)
    env.pop("RECYCLERD_SOCKET", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=timeout * rd.SLOW)


def as_nobody(*groups):
    """setpriv arguments: uid nobody, gid nogroup, these supplementary
    groups (none if empty)."""
    g = (["--groups=" + ",".join(str(x) for x in groups)] if groups
         else ["--clear-groups"])
    return ["--reuid=nobody", "--regid=nogroup", *g]


def other_group():
    """A group `nobody` is not in (name, gid)."""
    for name in ("daemon", "bin", "sys", "adm"):
        try:
            return name, grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    pytest.skip("no group other than nogroup to test with")


def start(d, **keys):
    keys.setdefault("workers", 2)
    d.write_config(**keys)
    d.start()
    d.wait_ready_workers(keys["workers"])
    return d


needs_root = pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                                reason="needs root and setpriv")


# --- every command, raw --------------------------------------------------

def test_status_reports_pools_and_workers(recyclerd):
    start(recyclerd, recycle_memory="500M", max_tasks=100000)
    pids = recyclerd.workers()
    a = ok(recyclerd, "status --exact")
    assert a["pid"] == recyclerd.pid
    assert re.match(r"^\d+\.\d+\.\d+", a["version"])
    assert a["uptime"] > 0
    [pool] = a["pools"]
    assert pool["name"] == "web"
    assert pool["state"] == "running"
    assert pool["desired"] == 2 and pool["ready"] == 2
    assert pool["metric"] == "pss"
    assert pool["recycle_memory"] == 500 << 20
    assert pool["crashes"] == 0 and pool["recycles_total"] == 0
    assert set(pool["recycles"]) >= {"memory", "tasks", "lifetime",
                                     "manual", "reload"}
    assert "crash" not in pool["recycles"]
    workers = pool["workers"]
    assert {w["slot"]: w["pid"] for w in workers} == pids
    for w in workers:
        assert w["state"] == "ready"
        assert w["uptime"] > 0
        # --exact: read with smaps_rollup, and uss <= pss <= rss.
        assert 0 < w["uss"] <= w["pss"] <= w["rss"], w
        assert w["memory"] == w["pss"]
        assert w["metric"] == "pss"
        # The jitter (5% by default) lowers the limits in force.
        assert 0.94 * (500 << 20) <= w["threshold"] <= 500 << 20
        assert 0 < w["max_tasks"] <= 100000
        assert w["recycle_reason"] is None
        assert "growth_bytes_per_s" in w and "growth_bytes_per_task" in w
        assert w["peak"] >= w["memory"]
    # Without --exact, the sampler's figures: under the prefilter (rss
    # far below 500M) it did not read smaps_rollup.
    for w in ok(recyclerd, "status")["pools"][0]["workers"]:
        assert w["pss"] is None and w["uss"] is None, w
        assert w["memory"] == w["rss"] and w["memory_exact"] is False, w


def probe_reads(d):
    s, _ = parse_metrics(ok(d, "metrics")["metrics"])
    return {k: metric(s, "recyclerd_probe_reads_total", kind=k)
            for k in ("statm", "smaps", "cgroup")}


def test_status_reads_state_and_changes_none(recyclerd):
    """50 status (and metrics) requests in a row change no worker's
    samples, growth or figures and read nothing from /proc (issue 10)."""
    # No sampling during the test but the one at READY=1 (the baseline);
    # a worker that grows, so that any sample would move its figures.
    start(recyclerd, command=py_worker("--leak", "100K", "--interval",
                                       "0.05"),
          sample_interval="1h", recycle_memory="500M")

    def figures():
        return {w["pid"]: (w["samples"], w["growth_bytes_per_s"],
                           w["growth_bytes_per_task"], w["rss"], w["pss"],
                           w["memory"], w["peak"])
                for w in ok(recyclerd, "status")["pools"][0]["workers"]}
    before = wait_for(lambda: (lambda f: f if all(v[0] == 1 for v in
                                                  f.values()) else None)(
        figures()), 10, what="the baseline sample at READY=1")
    reads = probe_reads(recyclerd)
    time.sleep(0.2)  # the workers grow meanwhile
    for _ in range(50):
        assert figures() == before
        ok(recyclerd, "metrics")  # reads state too, changes none
    assert probe_reads(recyclerd) == reads

    # --exact reads smaps_rollup, at most once a second per worker, into
    # the answer only.
    a = ok(recyclerd, "status --exact")["pools"][0]["workers"]
    b = ok(recyclerd, "status --exact")["pools"][0]["workers"]
    after = probe_reads(recyclerd)
    assert after["smaps"] - reads["smaps"] == len(before)
    assert after["cgroup"] == reads["cgroup"]
    assert [w["pss"] for w in a] == [w["pss"] for w in b]
    assert all(w["pss"] and w["rss"] > before[w["pid"]][3] for w in a)
    assert figures() == before


def test_status_shows_growth_and_status_text(recyclerd):
    start(recyclerd, workers=1,
          command=py_worker("--leak", "200K", "--interval", "0.05",
                            "--status"))

    def grown():
        w = ok(recyclerd, "status")["pools"][0]["workers"][0]
        # Per task needs samples with different task counts: under load
        # the first ones may all see the same.
        return w if (w["growth_bytes_per_s"] and w["growth_bytes_per_task"]
                     and w["status_text"]) else None
    w = wait_for(grown, 10, what="growth and STATUS= in status")
    assert w["growth_bytes_per_s"] > 100_000
    assert w["growth_bytes_per_task"] > 50_000
    assert w["tasks"] > 0


def test_status_of_one_pool_and_of_an_unknown_pool(recyclerd):
    recyclerd.write_config(pools={"web": {}, "api": {}})
    recyclerd.start()
    assert [p["name"] for p in ok(recyclerd, "status api")["pools"]] \
        == ["api"]
    assert sorted(p["name"] for p in ok(recyclerd, "status")["pools"]) \
        == ["api", "web"]
    a = ask(recyclerd, "status nope")
    assert a == {"ok": False, "error": "no such pool: nope"}


def test_recycle_one_worker_then_all(recyclerd):
    start(recyclerd)
    old = recyclerd.workers()
    a = ok(recyclerd, "recycle web 1")
    assert a["recycling"] == 1 and a["pool"] == "web"
    recyclerd.wait_replaced(old[1], slot=1)
    assert pid_alive(old[0])
    recyclerd.wait_log(r"control: uid 0: recycle web 1$")

    recyclerd.wait_ready_workers(2)
    now = recyclerd.workers()
    assert ok(recyclerd, "recycle web all")["recycling"] == 2
    for slot, pid in now.items():
        recyclerd.wait_replaced(pid, slot=slot, timeout=15)

    recyclerd.wait_ready_workers(2)
    wait_for(lambda: all(w["recycle_reason"] is None for w in ok(
        recyclerd, "status")["pools"][0]["workers"]), 10)
    assert ok(recyclerd, "recycle web")["recycling"] == 2
    pool = wait_for(lambda: (lambda p: p if p["recycles"]["manual"] >= 5
                             else None)(ok(recyclerd, "status")["pools"][0]),
                    15, what="5 manual recycles counted")
    assert pool["recycles_total"] >= 5


def test_recycle_errors(recyclerd):
    start(recyclerd)
    assert ask(recyclerd, "recycle nope") == {
        "ok": False, "error": "no such pool: nope"}
    assert ask(recyclerd, "recycle web 7")["error"] == \
        "pool web has no worker 7"
    assert "invalid worker" in ask(recyclerd, "recycle web one")["error"]
    assert ask(recyclerd, "recycle")["error"] == \
        "usage: recycle POOL [WORKER|all]"
    recyclerd.wait_log(r"control: uid 0: recycle web 7 refused: pool web "
                       r"has no worker 7")


def test_scale_stop_start(recyclerd):
    start(recyclerd)
    a = ok(recyclerd, "scale web 3")
    assert a == {"ok": True, "pool": "web", "state": "running",
                 "desired": 3}
    recyclerd.wait_ready_workers(3)
    assert ok(recyclerd, "scale web 1")["desired"] == 1
    recyclerd.wait_workers(1)
    a = ok(recyclerd, "stop web")
    assert a["state"] == "stopped"
    recyclerd.wait_workers(0)
    assert ok(recyclerd, "status web")["pools"][0]["state"] == "stopped"
    a = ok(recyclerd, "start web")
    assert a["state"] == "running"
    recyclerd.wait_ready_workers(1)
    for bad in ("scale web 10001", "scale web -1", "scale web many"):
        assert ask(recyclerd, bad)["error"].startswith(
            "scale: invalid count"), bad
    assert ask(recyclerd, "stop nope")["error"] == "no such pool: nope"
    assert ask(recyclerd, "start nope")["error"] == "no such pool: nope"
    for line in ("scale web 3", "stop web", "start web"):
        recyclerd.wait_log(rf"control: uid 0: {line}$")


def test_start_revives_a_failed_pool(recyclerd):
    recyclerd.write_config(command="/bin/false", rapid_fail="2/30s",
                           restart_backoff="50ms")
    recyclerd.start(wait_ready=False)
    wait_for(lambda: os.path.exists(recyclerd.control_path), 10,
             what="the control socket")
    wait_for(lambda: ask(recyclerd, "status")["pools"][0]["state"]
             == "failed", 15, what="pool failed")
    pool = ok(recyclerd, "status")["pools"][0]
    assert pool["crashes"] >= 3 and pool["failed_starts"] >= 3
    a = ok(recyclerd, "start web")
    assert a["pool"] == "web" and a["state"] == "running"
    recyclerd.wait_log(r"restarting after failure")


def test_reload_ok_and_refused(recyclerd):
    start(recyclerd)
    assert ok(recyclerd, "reload") == {"ok": True}
    recyclerd.write_config(workers=2, raw="wrokers = 3")
    a = ask(recyclerd, "reload")
    assert not a["ok"]
    assert "wrokers" in a["error"]
    assert str(recyclerd.conf) in a["error"]
    # The running configuration is kept.
    assert ok(recyclerd, "status")["pools"][0]["desired"] == 2
    r = ctl(recyclerd, "reload")
    assert r.returncode == 1
    assert r.stderr.startswith("recyclerctl: ") and "wrokers" in r.stderr


def test_reload_is_applied_whole_or_not_at_all(recyclerd):
    # A new pool whose port is taken makes the whole reload fail: the
    # other pool's new worker count must not have been applied meanwhile.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        start(recyclerd, workers=1)
        recyclerd.write_config(pools={
            "web": {"workers": 3},
            "new": {"workers": 1, "listen": f"tcp:127.0.0.1:{port}"},
        })
        a = ask(recyclerd, "reload")
        assert not a["ok"]
        assert f"pool new: listen tcp:127.0.0.1:{port}" in a["error"]
        recyclerd.wait_log(r"reload refused, keeping the running "
                           r"configuration")
        st = ok(recyclerd, "status")
        assert [p["name"] for p in st["pools"]] == ["web"]
        assert st["pools"][0]["desired"] == 1
        assert not recyclerd.log_has(r"pool new: starting|pool web: scaling")
        assert len(recyclerd.workers()) == 1
        # Once the port is free, the same file applies whole.
        busy.close()
        assert ok(recyclerd, "reload") == {"ok": True}
        recyclerd.wait_ready_workers(3)
        recyclerd.wait_ready_workers(1, pool="new")
    finally:
        busy.close()


def test_events_after_a_recycle(recyclerd):
    start(recyclerd, workers=1)
    [old] = recyclerd.workers().values()
    assert ok(recyclerd, "events")["events"] == []
    ok(recyclerd, "recycle web 0")
    recyclerd.wait_replaced(old)

    def recycled():
        evs = ok(recyclerd, "events")["events"]
        return [e for e in evs if e["kind"] == "recycle"] or None
    [e] = wait_for(recycled, 10, what="a recycle event")
    assert e["pool"] == "web" and e["slot"] == 0 and e["pid"] == old
    assert e["reason"] == "manual"
    assert e["status"] == {"exit": 0}
    assert e["uptime"] > 0 and e["seq"] >= 1
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["time"])
    assert abs(calendar.timegm(time.strptime(e["time"][:19],
                                             "%Y-%m-%dT%H:%M:%S"))
               - time.time()) < 60
    assert e["detail"]
    assert len(ok(recyclerd, "events 1")["events"]) == 1
    assert ok(recyclerd, "events 0")["events"] == []
    assert ok(recyclerd, "events 1024")["ok"]
    assert ask(recyclerd, "events 1025")["error"].startswith(
        "events: invalid count 1025")


def test_events_record_a_crash_with_its_signal(recyclerd):
    start(recyclerd, workers=1)
    [pid] = recyclerd.workers().values()
    os.kill(pid, signal.SIGKILL)

    def crashed():
        return [e for e in ok(recyclerd, "events")["events"]
                if e["kind"] == "crash"] or None
    [e] = wait_for(crashed, 10, what="a crash event")
    assert e["status"] == {"signal": "SIGKILL"}
    assert e["reason"] == "crash"
    assert ok(recyclerd, "status")["pools"][0]["crashes"] == 1


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? '
                    r'(-?[0-9][0-9.e+-]*)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')


def parse_metrics(text):
    """{(name, frozenset(labels)): value}; asserts the exposition format:
    HELP and TYPE before each family's samples, families not split."""
    assert text.endswith("\n")
    out, typed, seen, current = {}, {}, set(), None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in seen, f"family {name} split"
            seen.add(name)
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current and kind in ("gauge", "counter",
                                                 "histogram")
            typed[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        family = m[1]
        if typed.get(current) == "histogram":
            # name_bucket{...,le="x"}, name_sum, name_count
            family = re.sub(r"_(bucket|sum|count)$", "", m[1])
            assert family != m[1], line
        assert family == current and family in typed, line
        labels = {}
        if m[2]:
            pos = 0
            while pos < len(m[2]):
                lm = LABEL.match(m[2], pos)
                assert lm, f"bad labels: {m[2]!r}"
                labels[lm[1]] = lm[2]
                pos = lm.end()
        key = (m[1], frozenset(labels.items()))
        assert key not in out, f"duplicate sample {line}"
        out[key] = float(m[3])
    return out, typed


def metric(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_metrics_exposition(recyclerd):
    start(recyclerd, recycle_memory="500M")
    pids = recyclerd.workers()

    def sampled():
        # Right after READY=1 a worker may not have been sampled yet.
        s, typed = parse_metrics(ok(recyclerd, "metrics")["metrics"])
        have = {dict(k[1]).get("slot") for k in s
                if k[0] == "recyclerd_worker_memory_bytes"}
        return (s, typed) if have >= {str(k) for k in pids} else None
    s, typed = wait_for(sampled, 5, what="every worker sampled")
    assert typed["recyclerd_worker_exits_total"] == "counter"
    assert typed["recyclerd_workers"] == "gauge"
    for reason in ("memory", "kill_memory", "tasks", "lifetime", "manual",
                   "reload", "scale", "shutdown", "crash", "oom",
                   "failed_start"):
        assert metric(s, "recyclerd_worker_exits_total", pool="web",
                      reason=reason) == 0
    assert metric(s, "recyclerd_workers", pool="web", state="ready") == 2
    for state in ("starting", "draining", "killed"):
        assert metric(s, "recyclerd_workers", pool="web", state=state) == 0
    assert metric(s, "recyclerd_pool_state", pool="web",
                  state="running") == 1
    assert metric(s, "recyclerd_pool_state", pool="web",
                  state="failed") == 0
    assert metric(s, "recyclerd_pool_desired_workers", pool="web") == 2
    assert metric(s, "recyclerd_pool_info", pool="web",
                  memory_metric="pss") == 1
    assert metric(s, "process_resident_memory_bytes") > 0
    assert metric(s, "process_open_fds") > 0
    assert typed["process_cpu_seconds_total"] == "counter"
    assert abs(metric(s, "process_start_time_seconds")
               - (time.time() - ok(recyclerd, "status")["uptime"])) < 5
    assert metric(s, "recyclerd_events_total") == 0
    names = {k[0] for k in s}
    for old in ("recyclerd_recycles_total", "recyclerd_crashes_total",
                "recyclerd_failed_starts_total", "recyclerd_oom_kills_total",
                "recyclerd_daemon_rss_bytes", "recyclerd_uptime_seconds",
                "recyclerd_worker_tasks", "recyclerd_worker_uptime_seconds"):
        assert old not in names
    for slot, pid in pids.items():
        lab = {"pool": "web", "slot": str(slot)}
        assert metric(s, "recyclerd_worker_info", pid=str(pid),
                      state="ready", **lab) == 1
        assert metric(s, "recyclerd_worker_memory_bytes", metric="rss",
                      **lab) > 0
        assert ("recyclerd_worker_memory_bytes",
                frozenset(dict(lab, metric="memory").items())) not in s
        start_t = metric(s, "recyclerd_worker_start_time_seconds", **lab)
        assert time.time() - 60 < start_t <= time.time()
        assert metric(s, "recyclerd_worker_tasks_total", **lab) >= 0
    # No per-worker series but _info carries the pid.
    for (name, labels) in s:
        if name.startswith("recyclerd_worker_") and \
                name != "recyclerd_worker_info":
            assert "pid" not in dict(labels), name


def test_metrics_count_recycles_and_crashes(recyclerd):
    start(recyclerd, workers=1)
    [pid] = recyclerd.workers().values()
    ok(recyclerd, "recycle web")
    new = recyclerd.wait_replaced(pid)
    recyclerd.wait_ready_workers(1)
    os.kill(new, signal.SIGKILL)

    def counted():
        s, _ = parse_metrics(ok(recyclerd, "metrics")["metrics"])
        return s if metric(s, "recyclerd_worker_exits_total", pool="web",
                           reason="crash") == 1 \
            and metric(s, "recyclerd_worker_exits_total", pool="web",
                       reason="manual") == 1 else None
    s = wait_for(counted, 10, what="a recycle and a crash in the metrics")
    assert metric(s, "recyclerd_events_total") >= 2
    # Every exit counted once: the reasons add up to the processes gone.
    exits = sum(v for (n, _), v in s.items()
                if n == "recyclerd_worker_exits_total")
    assert exits == 2
    # The slot keeps its series across the recycle and the crash.
    recyclerd.wait_ready_workers(1)
    s, _ = parse_metrics(ok(recyclerd, "metrics")["metrics"])
    assert metric(s, "recyclerd_worker_info", pool="web", slot="0",
                  pid=str(recyclerd.workers()[0]), state="ready") == 1


def test_metrics_pass_a_prometheus_parser(recyclerd):
    """The exposition read by the Python client's own parser (Debian's
    python3-prometheus-client): names, types, labels and samples valid,
    no duplicate series, counters named _total."""
    parser = pytest.importorskip("prometheus_client.parser")
    start(recyclerd, recycle_memory="500M", workers=2)
    ok(recyclerd, "recycle web")
    recyclerd.wait_ready_workers(2)
    text = ok(recyclerd, "metrics")["metrics"]
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    seen = set()
    for fam in fams.values():
        assert fam.type in ("gauge", "counter", "histogram"), fam.name
        assert fam.documentation, fam.name
        for smp in fam.samples:
            key = (smp.name, tuple(sorted(smp.labels.items())))
            assert key not in seen, f"duplicate series {key}"
            seen.add(key)
            if fam.type == "counter":
                assert smp.name.endswith("_total"), smp.name
    # The client strips _total from a counter's family name.
    assert fams["recyclerd_worker_exits"].type == "counter"
    assert fams["recyclerd_worker_tasks"].type == "counter"
    assert fams["process_cpu_seconds"].type == "counter"
    assert fams["recyclerd_recycle_overshoot_ratio"].type == "histogram"
    for name in ("process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds", "recyclerd_worker_info",
                 "recyclerd_worker_start_time_seconds"):
        assert fams[name].type == "gauge", name


def test_version(recyclerd):
    start(recyclerd, workers=1)
    a = ok(recyclerd, "version")
    assert set(a) == {"ok", "version"}
    assert a["version"] == ok(recyclerd, "status")["version"]


# --- the protocol --------------------------------------------------------

def test_malformed_requests_get_errors_and_the_connection_stays(recyclerd):
    start(recyclerd, workers=1)
    c = Client(recyclerd.control_path)
    cases = [
        (b"", "empty request"),
        (b"   \t ", "empty request"),
        (b"frobnicate", f"unknown command: frobnicate (commands: "
         f"{COMMANDS})"),
        (b"STATUS", "unknown command: STATUS"),
        (b"status a b", "usage: status [--exact] [POOL]"),
        (b"status --exact a b", "usage: status [--exact] [POOL]"),
        (b"status -x", "usage: status [--exact] [POOL]"),
        (b"scale web", "usage: scale POOL N"),
        (b"version please", "usage: version"),
        (b"status\x01", "request contains a control character"),
        (b"sta\x00tus", "request contains a control character"),
        (b"status \xff\xfe", "request is not valid UTF-8"),
        (b"a b c d e f g h i", "request has too many words"),
        (b"scale web lots", "scale: invalid count lots"),
        (b"{\"cmd\": \"status\"}", "unknown command"),
    ]
    for raw, needle in cases:
        c.send(raw + b"\n")
        a = c.answer()
        assert not a["ok"] and needle in a["error"], (raw, a)
    # CRLF is accepted, and the connection still works.
    c.send(b"version\r\n")
    assert c.answer()["ok"]
    assert recyclerd.running()
    c.close()


def test_pipelined_requests_are_answered_in_order(recyclerd):
    start(recyclerd, workers=1)
    c = Client(recyclerd.control_path)
    c.send("version\nstatus\nnope\nevents 1\n")
    a = [c.answer() for _ in range(4)]
    assert "version" in a[0] and set(a[0]) == {"ok", "version"}
    assert "pools" in a[1]
    assert a[2]["error"].startswith("unknown command: nope")
    assert "events" in a[3]
    c.close()


def test_half_closed_client_gets_its_answer(recyclerd):
    start(recyclerd, workers=1)
    c = Client(recyclerd.control_path)
    c.send("version")			# no newline: EOF ends the line
    c.sock.shutdown(socket.SHUT_WR)
    assert c.answer()["ok"]
    assert c.line() == b""		# then it hangs up
    c.close()


def test_a_long_line_is_refused_and_the_connection_stays(recyclerd):
    start(recyclerd, workers=1)
    c = Client(recyclerd.control_path)
    # Exactly LINE_MAX bytes is still a request (a bad one here).
    c.send(b"x" * LINE_MAX + b"\n")
    assert c.answer()["error"].startswith("unknown command: xxx")
    c.send(b"x" * (LINE_MAX + 1) + b"\n")
    assert c.answer() == {"ok": False, "error":
                          f"request line longer than {LINE_MAX} bytes"}
    assert c.request("version")["ok"]
    c.close()


def test_a_megabyte_without_newline_gets_one_error(recyclerd):
    start(recyclerd, workers=1)
    hog = Client(recyclerd.control_path)
    other = Client(recyclerd.control_path)
    hog.send(b"y" * (1 << 20))
    a = hog.answer()
    assert a == {"ok": False,
                 "error": f"request line longer than {LINE_MAX} bytes"}
    # Others are served meanwhile; more of the same line is discarded.
    t0 = time.monotonic()
    assert other.request("version")["ok"]
    assert time.monotonic() - t0 < 1 * rd.SLOW
    hog.send(b"z" * 100000)
    hog.send(b"\nversion\n")
    assert hog.answer()["ok"]		# nothing in between
    hog.close()
    other.close()


def test_a_client_that_never_reads_is_dropped(recyclerd):
    start(recyclerd, workers=1)
    hog = Client(recyclerd.control_path)
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    other = Client(recyclerd.control_path)
    worst = 0.0
    dropped = False
    deadline = time.monotonic() + 60 * rd.SLOW
    sent = 0
    while time.monotonic() < deadline:
        try:
            hog.send(b"status\n" * 100)
            sent += 100
        except (BrokenPipeError, ConnectionResetError):
            dropped = True
            break
        if sent % 1000 == 0:
            t0 = time.monotonic()
            assert other.request("version")["ok"]
            worst = max(worst, time.monotonic() - t0)
    print(f"worst latency {worst:.3f}s after {sent} requests")
    assert dropped, f"still connected after {sent} unread requests"
    assert worst < 1.0 * rd.SLOW, f"another client waited {worst:.2f}s"
    recyclerd.wait_log(r"control: uid 0 pid \d+: disconnecting a client "
                       r"that does not read its answers")
    assert other.request("version")["ok"]
    other.close()
    hog.close()


def test_clients_beyond_64_are_refused_then_served_again(recyclerd):
    """All 100 connect before any is answered: the first 64 are served,
    the other 36 get one "too many clients" line and are hung up on."""
    start(recyclerd, workers=1)
    clients = [Client(recyclerd.control_path) for _ in range(100)]
    answers = []
    for c in clients:
        try:
            c.send("version\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    for c in clients:
        try:
            answers.append(c.answer())
        except ConnectionResetError:
            answers.append(None)
    served = [a for a in answers if a and a["ok"]]
    refused = [a for a in answers if a and not a["ok"]]
    assert len(served) == CLIENTS_MAX
    assert len(refused) == 100 - CLIENTS_MAX
    assert all(a == {"ok": False, "error": "too many clients"}
               for a in refused)
    # The refused ones were hung up on (a reset if our request was still
    # unread when the daemon closed).
    for c, a in zip(clients, answers):
        if a and not a["ok"]:
            assert hung_up(c)
    recyclerd.wait_log(r"control: refusing clients: 64 connected already")
    for c in clients:
        c.close()
    # Their slots are free again.
    wait_for(lambda: ask(recyclerd, "version")["ok"], 5)
    more = [Client(recyclerd.control_path) for _ in range(CLIENTS_MAX - 1)]
    assert all(c.request("version")["ok"] for c in more)
    for c in more:
        c.close()


# --- who may connect -----------------------------------------------------

def open_dir_to_all(d):
    """The harness's temp dir is 0700: let other users reach the socket."""
    os.chmod(d.dir, 0o755)


def test_socket_is_0660_owned_by_root(recyclerd):
    start(recyclerd, workers=1)
    st = os.stat(recyclerd.control_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == os.geteuid()


@needs_root
def test_without_control_group_others_cannot_connect(recyclerd):
    start(recyclerd, workers=1)
    open_dir_to_all(recyclerd)
    r = ctl(recyclerd, "status", user=as_nobody())
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"recyclerctl: cannot connect to "
                               f"{recyclerd.control_path}: Permission "
                               f"denied"), r.stderr
    # Past the file mode, the daemon still says no.
    os.chmod(recyclerd.control_path, 0o666)
    r = ctl(recyclerd, "--json", "version", user=as_nobody())
    assert r.returncode == 1, r
    assert json.loads(r.stdout) == {
        "ok": False, "error": "permission denied: uid 65534 is not root "
        "(no control_group is set)"}


@needs_root
def test_non_member_of_control_group_is_refused(recyclerd):
    name, gid = other_group()
    start(recyclerd, workers=1, main={"control_group": name})
    st = os.stat(recyclerd.control_path)
    assert st.st_gid == gid and stat.S_IMODE(st.st_mode) == 0o660
    open_dir_to_all(recyclerd)
    # Not in the group: the file mode stops it first...
    r = ctl(recyclerd, "status", user=as_nobody())
    assert r.returncode == 2 and "Permission denied" in r.stderr, r
    # ...and with the mode opened up, the daemon refuses every command.
    os.chmod(recyclerd.control_path, 0o666)
    expected = (f"permission denied: uid 65534 is not root or a member of "
                f"group {name}")
    for args in (["version"], ["status"], ["recycle", "web"], ["reload"]):
        r = ctl(recyclerd, "--json", *args, user=as_nobody())
        assert r.returncode == 1, (args, r)
        assert json.loads(r.stdout) == {"ok": False, "error": expected}
        assert r.stderr == f"recyclerctl: {expected}\n"
    r = ctl(recyclerd, "status", user=as_nobody())
    assert r.returncode == 1 and r.stdout == ""
    # Raw, from a process that is nobody through and through.
    code = ("import socket,sys; s=socket.socket(socket.AF_UNIX); "
            "s.connect(sys.argv[1]); s.sendall(b'status\\nversion\\n'); "
            "f=s.makefile('rb'); print(f.readline().decode(), end=''); "
            "print(f.readline().decode(), end='')")
    r = subprocess.run([SETPRIV, *as_nobody(), "/usr/bin/python3", "-c",
                        code, str(recyclerd.control_path)],
                       capture_output=True, text=True, timeout=20)
    lines = r.stdout.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"ok": False, "error": expected}] * 2, r
    recyclerd.wait_log(r"control: uid 65534 pid \d+: refused: not root or "
                       rf"a member of control_group {name}")
    assert recyclerd.workers()			# nothing was done
    assert not recyclerd.log_has(r"control: uid 65534: ")


@needs_root
def test_members_of_control_group_may_use_every_command(recyclerd):
    name, gid = other_group()
    start(recyclerd, workers=1, main={"control_group": name})
    open_dir_to_all(recyclerd)
    # A supplementary group is enough, and so is the primary group.
    for user in (as_nobody(gid),
                 ["--reuid=nobody", f"--regid={gid}", "--clear-groups"]):
        r = ctl(recyclerd, "--json", "status", user=user)
        assert r.returncode == 0, r
        assert json.loads(r.stdout)["pools"][0]["name"] == "web"
    [old] = recyclerd.workers().values()
    r = ctl(recyclerd, "recycle", "web", user=as_nobody(gid))
    assert r.returncode == 0, r
    recyclerd.wait_replaced(old)
    recyclerd.wait_log(r"control: uid 65534: recycle web$")


# --- the socket file -----------------------------------------------------

def test_a_stale_socket_file_is_replaced(recyclerd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(recyclerd.control_path))
    s.close()				# the file stays, nobody listens
    assert stat.S_ISSOCK(os.stat(recyclerd.control_path).st_mode)
    start(recyclerd, workers=1)
    assert ok(recyclerd, "version")
    recyclerd.wait_log(r"replacing a stale socket")


def test_a_second_daemon_on_the_same_socket_refuses_to_start(recyclerd):
    start(recyclerd, workers=1)
    pids = recyclerd.worker_pids()
    second = rd.Recyclerd("rd2")
    try:
        second.write_config(main={"control_socket":
                                  str(recyclerd.control_path)})
        second.start(wait_ready=False)
        rc = second.wait_exit(20)
        assert rc != 0
        path = re.escape(str(recyclerd.control_path))
        second.wait_log(rf"control socket {path} is in use by a running "
                        r"daemon")
        assert second.marked_processes() == []
    finally:
        problems = second.cleanup()
    assert problems == []
    # The first one is untouched: same workers, still answering.
    assert ok(recyclerd, "version")
    assert recyclerd.worker_pids() == pids
    assert os.path.exists(recyclerd.control_path)


def test_the_socket_file_is_removed_at_exit(recyclerd):
    start(recyclerd, workers=1)
    assert os.path.exists(recyclerd.control_path)
    assert recyclerd.stop() == 0
    assert not os.path.exists(recyclerd.control_path)


# --- recyclerctl ---------------------------------------------------------

def test_recyclerctl_json_prints_the_raw_answer(recyclerd):
    start(recyclerd)
    for args in (["status"], ["status", "web"], ["events"], ["events", "3"],
                 ["metrics"], ["version"], ["scale", "web", "2"],
                 ["recycle", "web", "0"], ["stop", "web"], ["start", "web"],
                 ["reload"]):
        r = ctl(recyclerd, "--json", *args)
        assert r.returncode == 0, (args, r)
        assert r.stdout.count("\n") == 1, args
        a = json.loads(r.stdout)
        assert a["ok"] is True, (args, a)
    r = ctl(recyclerd, "--json", "status", "nope")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"ok": False,
                                    "error": "no such pool: nope"}
    assert r.stderr == "recyclerctl: no such pool: nope\n"


def test_recyclerctl_status_table(recyclerd):
    start(recyclerd, command=py_worker("--leak", "100K", "--interval",
                                       "0.05", "--status"),
          recycle_memory="300M")
    pids = recyclerd.workers()
    r = ctl(recyclerd, "status", "--exact")  # PSS and USS read now
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert re.match(rf"^recyclerd \d+\.\d+\.\d+, pid {recyclerd.pid}, up ",
                    lines[0])
    [head] = [x for x in lines if x.startswith("pool web:")]
    assert re.match(r"^pool web: running, ready 2/2, recycles 0, "
                    r"crashes 0$", head), head
    cols = ["SLOT", "PID", "STATE", "UPTIME", "TASKS", "RSS", "PSS", "USS",
            "THRESHOLD", "GROWTH/S", "GROWTH/TASK", "CPU%", "RESTARTS",
            "STATUS"]
    [header] = [x for x in lines if x.lstrip().startswith("SLOT")]
    assert header.split() == cols
    rows = lines[lines.index(header) + 1:]
    assert len(rows) == 2
    for row, (slot, pid) in zip(rows, sorted(pids.items())):
        f = row.split()
        assert f[0] == str(slot) and f[1] == str(pid) and f[2] == "ready"
        for size in f[5:9]:
            rd.parse_size(size)
        assert re.match(r"^\d+(\.\d)?s$|^\d+m\d*s?$", f[3]), f[3]
        # One answer: no CPU % yet; no restart in a slot started once.
        assert f[11] == "-" and f[12] == "0"
    # Columns line up: every PID ends where the header's PID ends.
    end = header.index("PID") + 3
    for row in rows:
        assert row[end - 1].isdigit() and row[end] == " "
    r = ctl(recyclerd, "status", "web")
    assert r.returncode == 0 and "pool web:" in r.stdout
    r = ctl(recyclerd, "status", "--exact", "web")
    assert r.returncode == 0 and "pool web:" in r.stdout


def test_recyclerctl_masks_control_characters_from_workers(recyclerd):
    # A worker's STATUS= text must not reach the terminal raw.
    script = recyclerd.dir / "evil.py"
    script.write_text(
        "import os, socket, time\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "a = os.environ['NOTIFY_SOCKET']\n"
        "s.sendto(b'READY=1\\nSTATUS=\\x1b[2Jowned\\x07', a)\n"
        "time.sleep(3600)\n")
    start(recyclerd, workers=1, command=f"{rd.PYTHON} {script}")
    wait_for(lambda: ok(recyclerd, "status")["pools"][0]["workers"][0]
             ["status_text"], 5, what="STATUS= text")
    r = ctl(recyclerd, "status")
    assert r.returncode == 0
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    # The daemon replaced them at receipt (U+FFFD); recyclerctl masks
    # whatever control characters would still come.
    assert "\ufffd[2Jowned\ufffd" in r.stdout


def test_recyclerctl_short_answers_and_events(recyclerd):
    start(recyclerd, workers=1)
    [old] = recyclerd.workers().values()
    r = ctl(recyclerd, "recycle", "web")
    assert (r.returncode, r.stdout) == (0, "ok: recycling 1 worker of web\n")
    recyclerd.wait_replaced(old)
    r = ctl(recyclerd, "scale", "web", "2")
    assert (r.returncode, r.stdout) == (
        0, "ok: pool web: running, 2 workers wanted\n")
    r = ctl(recyclerd, "stop", "web")
    assert r.stdout == "ok: pool web: stopped, 2 workers wanted\n"
    r = ctl(recyclerd, "start", "web")
    assert r.stdout == "ok: pool web: running, 2 workers wanted\n"
    r = ctl(recyclerd, "reload")
    assert (r.returncode, r.stdout) == (0, "ok: configuration reloaded\n")
    r = ctl(recyclerd, "version")
    assert re.match(r"^recyclerd \d+\.\d+\.\d+\n$", r.stdout)

    def recycle_line():
        out = ctl(recyclerd, "events").stdout
        return [x for x in out.splitlines() if " recycle " in x] or None
    [line] = wait_for(recycle_line, 10, what="a recycle event line")
    assert re.match(rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z  web/0 "
                    rf"\[pid {old}\]  recycle \(manual\)  exit 0  uptime ",
                    line), line
    r = ctl(recyclerd, "metrics")
    assert r.returncode == 0
    parse_metrics(r.stdout)			# printed raw


def test_recyclerctl_exit_codes(recyclerd):
    start(recyclerd, workers=1)
    r = ctl(recyclerd)
    assert r.returncode == 64 and "no command" in r.stderr
    r = ctl(recyclerd, "frobnicate")
    assert r.returncode == 64 and "unknown command: frobnicate" in r.stderr
    r = ctl(recyclerd, "scale", "web")
    assert r.returncode == 64 and "usage: scale POOL N" in r.stderr
    r = ctl(recyclerd, "status", "two words")
    assert r.returncode == 64
    r = ctl(recyclerd, "--bogus", "status")
    assert r.returncode == 64
    r = ctl(recyclerd, "scale", "web", "99999")
    assert r.returncode == 1 and r.stderr.startswith(
        "recyclerctl: scale: invalid count 99999")
    r = subprocess.run([RECYCLERCTL_BIN, "-s", str(recyclerd.dir / "nope"),
                        "status"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == (f"recyclerctl: cannot connect to "
                        f"{recyclerd.dir / 'nope'}: No such file or "
                        f"directory; is recyclerd running? (set -s or "
                        f"RECYCLERD_SOCKET)\n")
    r = subprocess.run([RECYCLERCTL_BIN, "-h"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "usage: recyclerctl" in r.stdout
    r = subprocess.run([RECYCLERCTL_BIN, "-V"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith("recyclerctl ")


def test_recyclerctl_finds_the_socket_in_the_environment(recyclerd):
    start(recyclerd, workers=1)
    env = dict(os.environ, RECYCLERD_SOCKET=str(recyclerd.control_path))
    r = subprocess.run([RECYCLERCTL_BIN, "version"], capture_output=True,
                       text=True, env=env, timeout=20)
    assert r.returncode == 0, r
    # -s wins over the environment.
    env["RECYCLERD_SOCKET"] = "/nonexistent/control.sock"
    r = subprocess.run([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                        "version"], capture_output=True, text=True, env=env,
                       timeout=20)
    assert r.returncode == 0, r


def test_recyclerctl_times_out_on_a_silent_daemon():
    tmp = tempfile.mkdtemp(prefix="rdctl-", dir="/tmp")
    path = os.path.join(tmp, "silent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)			# accepts (backlog), never answers
    try:
        t0 = time.monotonic()
        r = subprocess.run([RECYCLERCTL_BIN, "-s", str(path), "status"],
                           capture_output=True, text=True, timeout=30)
        took = time.monotonic() - t0
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    assert r.returncode == 2
    assert r.stderr == f"recyclerctl: {path}: no answer within 10s\n"
    assert 9.5 < took < 15


@pytest.mark.parametrize("args", [["top"], ["status", "-w0.2"],
                                  ["status", "--watch=0.2", "web"],
                                  ["status", "web", "-w0.2"],
                                  ["status", "-w", "web"]])
def test_recyclerctl_refreshes_until_interrupted(recyclerd, args):
    start(recyclerd, workers=1)
    p = subprocess.Popen([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                          *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.5 * rd.SLOW)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    frames = out.split("\x1b[H\x1b[2J")[1:]
    assert len(frames) >= 2
    for frame in frames:
        assert "(Ctrl-C to quit)" in frame
    assert "pool web:" in frames[-1] and "SLOT" in frames[-1]


def test_recyclerctl_keeps_refreshing_while_the_daemon_is_away(recyclerd):
    p = subprocess.Popen([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                          "status", "-w0.2"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        start(recyclerd, workers=1)
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    assert "cannot connect to" in out
    assert "pool web:" in out.split("\x1b[H\x1b[2J")[-1]


def test_status_exits_3_when_a_pool_is_stopped_or_failed(recyclerd):
    start(recyclerd, workers=1)
    assert ctl(recyclerd, "status").returncode == 0
    ok(recyclerd, "stop web")
    r = ctl(recyclerd, "status")
    assert r.returncode == 3, r.stderr
    assert "pool web: stopped" in r.stdout
    assert ctl(recyclerd, "status", "web", "--json").returncode == 3
    ok(recyclerd, "start web")
    recyclerd.wait_ready_workers(1)
    assert ctl(recyclerd, "status", "web").returncode == 0


def test_recyclerctl_options_after_the_command(recyclerd):
    start(recyclerd, workers=1)
    r = subprocess.run([RECYCLERCTL_BIN, "status", "web", "--json", "-s",
                        str(recyclerd.control_path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["ok"] and [p["name"] for p in a["pools"]] == ["web"]
    r = ctl(recyclerd, "events", "-j")
    assert json.loads(r.stdout)["ok"]
    # -w takes its interval as its own value only, and not elsewhere.
    r = ctl(recyclerd, "events", "-w2")
    assert r.returncode == 64
    r = ctl(recyclerd, "status", "-wsoon")
    assert r.returncode == 64 and "invalid interval" in r.stderr


def test_events_filters_by_pool_and_reason(recyclerd):
    start(recyclerd, workers=1)
    [pid] = recyclerd.workers().values()
    ok(recyclerd, "recycle web")
    new = recyclerd.wait_replaced(pid)
    recyclerd.wait_ready_workers(1)
    os.kill(new, signal.SIGKILL)
    wait_for(lambda: len(ok(recyclerd, "events")["events"]) >= 2, 10,
             what="two events")
    evs = ok(recyclerd, "events reason=manual")["events"]
    assert [e["reason"] for e in evs] == ["manual"]
    assert ok(recyclerd, "events pool=other")["events"] == []
    assert len(ok(recyclerd, "events 1 pool=web")["events"]) == 1
    r = ctl(recyclerd, "events", "--reason", "crash", "--pool", "web")
    assert r.returncode == 0, r.stderr
    assert "(crash)" in r.stdout and "(manual)" not in r.stdout
    r = ctl(recyclerd, "events", "--reason", "bogus")
    assert r.returncode == 1 and "unknown reason bogus" in r.stderr


def test_events_follow_prints_each_new_event(recyclerd):
    start(recyclerd, workers=1)
    [pid] = recyclerd.workers().values()
    p = subprocess.Popen([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                          "events", "0", "-f", "--reason", "manual"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    j = subprocess.Popen([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                          "--json", "events", "-f"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(0.5)
        ok(recyclerd, "recycle web")
        new = recyclerd.wait_replaced(pid)
        recyclerd.wait_ready_workers(1)
        line = p.stdout.readline()
        assert "web/0" in line and "recycle (manual)" in line, line
        os.kill(new, signal.SIGKILL)
        assert json.loads(j.stdout.readline())["ok"]	# the head
        first = json.loads(j.stdout.readline())
        assert first["reason"] == "manual" and first["pid"] == pid
        second = json.loads(j.stdout.readline())
        assert second["kind"] == "crash" and second["pid"] == new
        for proc in (p, j):
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
        assert "(crash)" not in out
    finally:
        for proc in (p, j):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # The daemon dropped both followers and serves others.
    assert ok(recyclerd, "version")


def test_logs_keeps_worker_output_by_pool_and_slot(recyclerd):
    start(recyclerd, workers=2)
    pids = recyclerd.workers()
    want = {slot: f"leaky_worker: pid {pid} pool web slot {slot}"
            for slot, pid in pids.items()}
    wait_for(lambda: len(ok(recyclerd, "logs")["lines"]) >= 2, 10,
             what="both workers' first line")
    lines = ok(recyclerd, "logs web 1")["lines"]
    assert [(x["slot"], x["pid"], x["stream"]) for x in lines] == \
        [(1, pids[1], "stdout")]
    assert lines[0]["text"] == want[1]
    r = ctl(recyclerd, "logs", "web", "0")
    assert r.returncode == 0, r.stderr
    assert want[0] in r.stdout and want[1] not in r.stdout
    assert f"web/0 [pid {pids[0]}] stdout: {want[0]}" in r.stdout
    assert ok(recyclerd, "logs lines=1")["lines"][0]["seq"] == 2
    r = ctl(recyclerd, "logs", "nosuch")
    assert r.returncode == 1 and "no such pool: nosuch" in r.stderr
    # The log (and the journal, when in use) still gets every line.
    recyclerd.wait_log(re.escape(want[1]))


def test_logs_of_a_quiet_pool_survive_a_chatty_one(recyclerd, tmp_path):
    # A ring per pool: "chatty" keeps only its last 1024 lines, whatever
    # it prints, and the one line of "quiet" stays.
    chatty = tmp_path / "chatty.sh"
    chatty.write_text("i=0; while [ $i -lt 3000 ]; do echo line $i; "
                      "i=$((i+1)); done; exec sleep 1000\n")
    quiet = tmp_path / "quiet.sh"
    quiet.write_text("echo quiet one; exec sleep 1000\n")
    recyclerd.write_config(pools={
        "quiet": {"workers": 1, "ready": "spawn",
                  "command": f"/bin/sh {quiet}"},
        "chatty": {"workers": 1, "ready": "spawn",
                   "command": f"/bin/sh {chatty}"}})
    recyclerd.start()
    wait_for(lambda: any(x["text"] == "line 2999" for x in
                         ok(recyclerd, "logs chatty lines=1")["lines"]),
             20, what="the chatty pool's last line")
    assert [x["text"] for x in ok(recyclerd, "logs quiet")["lines"]] == \
        ["quiet one"]
    lines = ok(recyclerd, "logs chatty lines=4096")["lines"]
    assert len(lines) == 1024
    assert lines[0]["text"] == "line 1976" and \
        lines[-1]["text"] == "line 2999"


def test_logs_follow_receives_a_workers_line(recyclerd):
    start(recyclerd, workers=1)
    [pid] = recyclerd.workers().values()
    p = subprocess.Popen([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                          "logs", "web", "-f", "-n", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(0.5)
        ok(recyclerd, "recycle web")
        new = recyclerd.wait_replaced(pid)
        seen = []
        while not any(f"pid {new} pool web" in x for x in seen):
            seen.append(p.stdout.readline())
            assert seen[-1], "follower ended"
        assert f"web/0 [pid {new}] stdout: leaky_worker: pid {new}" \
            in seen[-1]
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=10)
        assert p.returncode == 0, err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_config_dump_round_trips_through_recyclerd_t(recyclerd, tmp_path):
    recyclerd.write_config(pools={
        "web": {"workers": 2, "recycle_memory": "300M", "jitter": "2.5%",
                "environment": "A=1 'B=two words'",
                "rapid_fail": "3/30s", "drain_signal": "SIGINT"},
        "api": {"workers": 1}})
    recyclerd.start()
    recyclerd.wait_ready_workers(2)
    r = ctl(recyclerd, "config")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "[pool web]\n" in text and "[pool api]\n" in text
    assert "\nworkers = 2\n" in text
    assert "\nrecycle_memory = 314572800\n" in text
    assert "\nmax_overshoot = 25%  ; default\n" in text
    assert "\ndrain_signal = SIGINT\n" in text
    assert '\nenvironment = "B=two words"\n' in text
    assert "\nrapid_fail = 3/30s\n" in text
    assert "\nwatchdog = 0  ; default\n" in text
    assert "\njitter = 2.5%\n" in text
    # recyclerd -t reads it back.
    f = tmp_path / "dump.conf"
    f.write_text(text)
    f.chmod(0o600)
    t = subprocess.run([rd.RECYCLERD_BIN, "-t", "-c", str(f)],
                       capture_output=True, text=True, timeout=30)
    assert t.returncode == 0, t.stderr + t.stdout
    # Only [pool api]: no daemon section.
    one = ctl(recyclerd, "config", "api").stdout
    assert "[recyclerd]" not in one and "[pool web]" not in one
    assert "[pool api]" in one
    r = ctl(recyclerd, "config", "nosuch")
    assert r.returncode == 1 and "no such pool: nosuch" in r.stderr


def test_status_cpu_and_restarts_per_slot(recyclerd):
    start(recyclerd, workers=2)
    pids = recyclerd.workers()
    os.kill(pids[1], signal.SIGKILL)
    recyclerd.wait_replaced(pids[1], slot=1)
    recyclerd.wait_ready_workers(2)
    ws = {w["slot"]: w for w in ok(recyclerd, "status")["pools"][0]["workers"]}
    assert ws[0]["restarts"] == 0 and ws[1]["restarts"] == 1
    assert ws[0]["cpu_seconds"] >= 0
    # From its second frame on, status -w (and top) gives a CPU %.
    p = subprocess.Popen([RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                          "status", "-w0.5"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2 * rd.SLOW)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    frames = out.split("\x1b[H\x1b[2J")[1:]
    assert len(frames) >= 2, err
    head, *rows = [x for x in frames[-1].splitlines() if x.strip()
                   and (x.lstrip().startswith("SLOT") or
                        re.match(r"^\s*\d+\s+\d+\s+ready", x))]
    cols = head.split()
    assert "CPU%" in cols and "RESTARTS" in cols
    byslot = {r.split()[0]: r.split() for r in rows}
    assert byslot["1"][cols.index("RESTARTS")] == "1"
    assert re.match(r"^\d+\.\d$", byslot["0"][cols.index("CPU%")])


def test_reload_moves_the_socket_to_the_new_control_group(recyclerd):
    name, gid = other_group()
    start(recyclerd, workers=1)
    assert os.stat(recyclerd.control_path).st_gid == 0
    recyclerd.write_config(workers=1, main={"control_group": name})
    recyclerd.reload()
    wait_for(lambda: os.stat(recyclerd.control_path).st_gid == gid, 5,
             what=f"socket group {name} after the reload")
    assert stat.S_IMODE(os.stat(recyclerd.control_path).st_mode) == 0o660
    recyclerd.write_config(workers=1)
    recyclerd.reload()
    wait_for(lambda: os.stat(recyclerd.control_path).st_gid == 0, 5,
             what="socket group root once control_group is unset")
