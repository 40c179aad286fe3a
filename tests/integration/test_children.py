# SPDX-License-Identifier: MIT
"""recycle_scope = children against the real prefork servers from Debian
(issue 13): gunicorn, uWSGI, PHP-FPM. The pool's worker is the server's
master; the daemon measures each of its children and drains the one that
crosses recycle_memory with child_drain_signal; the master replaces it.

Each test drives requests in a loop through a unix socket in the test's
directory, and checks: children recycled near the threshold (the memory
the events record), the master never restarted (same pid throughout, no
worker event), the server back at its number of children, and the failed
requests (none for gunicorn and PHP-FPM; uWSGI's are reported).
A test whose server is not installed is skipped.
"""

import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import recyclerd as rd
from recyclerd import children_of, pid_alive, wait_for

APPS = Path(__file__).resolve().parent / "apps"
GUNICORN = "/usr/bin/gunicorn"
UWSGI = "/usr/bin/uwsgi"
UWSGI_PLUGINS = "/usr/lib/uwsgi/plugins"
PHP_FPM = "/usr/sbin/php-fpm8.2"

MiB = 1 << 20


# --- helpers -------------------------------------------------------------

def ask(d, text):
    """One control request, its JSON answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * rd.SLOW)
    try:
        s.connect(str(d.control_path))
        s.sendall(text.encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    answer = json.loads(buf.partition(b"\n")[0])
    assert answer["ok"], f"{text}: {answer}"
    return answer


def child_events(d):
    return [e for e in ask(d, "events 1000")["events"]
            if e.get("child") is not None]


def worker_events(d):
    """Events about a worker itself (none is expected: the master stays)."""
    return [e for e in ask(d, "events 1000")["events"]
            if e.get("child") is None]


def status_worker(d, pool="web"):
    pools = ask(d, f"status {pool}")["pools"]
    (w,) = pools[0]["workers"]
    return w


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def http_get(path):
    """GET / over the unix socket at path: (status, body)."""
    c = UnixHTTP(str(path), 10 * rd.SLOW)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def fcgi_get(path, script):
    """A FastCGI GET of script over the unix socket at path (PHP-FPM):
    (status, body). A minimal client: one request, FCGI_RESPONDER."""
    def record(kind, content, req=1):
        return struct.pack("!BBHHBx", 1, kind, req, len(content), 0) + \
            content

    def pair(k, v):
        k, v = k.encode(), v.encode()
        out = b""
        for n in (len(k), len(v)):
            out += bytes([n]) if n < 128 else struct.pack("!I", n | 1 << 31)
        return out + k + v

    params = b"".join(pair(k, v) for k, v in {
        "SCRIPT_FILENAME": str(script), "SCRIPT_NAME": "/" + script.name,
        "REQUEST_METHOD": "GET", "QUERY_STRING": "", "SERVER_PROTOCOL":
        "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_ADDR":
        "127.0.0.1", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
        "CONTENT_LENGTH": "0"}.items())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * rd.SLOW)
    try:
        s.connect(str(path))
        s.sendall(record(1, struct.pack("!HB5x", 1, 0))  # BEGIN_REQUEST
                  + record(4, params) + record(4, b"")     # PARAMS
                  + record(5, b""))                        # STDIN
        buf, out, ended = b"", b"", False
        while not ended:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                _, kind, _, clen, plen = struct.unpack("!BBHHB", buf[:7])
                if len(buf) < 8 + clen + plen:
                    break
                content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
                if kind == 6:
                    out += content
                elif kind == 3:
                    ended = True
    finally:
        s.close()
    if not ended:
        raise ConnectionError("no FCGI_END_REQUEST")
    head, _, body = out.partition(b"\r\n\r\n")
    status = 200
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"status:"):
            status = int(line.split()[1])
    return status, body


class Load:
    """Requests in a loop from a thread: counts, failures, serving pids."""

    def __init__(self, get, pause=0.01):
        self.get = get
        self.pause = pause
        self.ok = 0
        self.failures = []
        self.pids = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                status, body = self.get()
                if status != 200:
                    self.failures.append(f"status {status}: {body[:200]}")
                else:
                    self.ok += 1
                    words = body.split()
                    if len(words) >= 2 and words[0] == b"pid":
                        self.pids.add(int(words[1]))
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.failures.append(repr(e))
            time.sleep(self.pause)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


@pytest.fixture
def seen():
    """Pids a test saw (masters, children). Torn down after `recyclerd`
    (request it first): PHP-FPM writes its process titles over its
    environment, where the harness looks for the test's marker, so
    leftovers are checked here too, killed, and fail the test."""
    pids = set()
    yield pids
    left = [p for p in pids if pid_alive(p)]
    for p in left:
        try:
            os.kill(p, 9)
        except ProcessLookupError:
            pass
    assert left == [], f"processes left behind: {left}"


def ready_master(d):
    """The pid of the pool's one worker once ready, from status (the
    harness finds workers by their environment, which PHP-FPM
    overwrites)."""
    def ready():
        pools = ask(d, "status web")["pools"]
        ws = pools[0]["workers"]
        return len(ws) == 1 and ws[0]["state"] == "ready" and ws[0]["pid"]
    return wait_for(ready, timeout=20, what="the master ready")


def run_children_case(d, seen, get, nchildren, limit, recycles=4,
                      timeout=60):
    """Common part: load until `recycles` child recycles, then check them
    and the master. Returns (load, events)."""
    d.start()
    master = ready_master(d)
    seen.add(master)
    wait_for(lambda: len(children_of(master)) == nchildren, timeout=20,
             what=f"{nchildren} children of the master")
    seen.update(children_of(master))
    with Load(get) as load:
        wait_for(lambda: len([e for e in child_events(d)
                              if e["kind"] == "recycle"]) >= recycles,
                 timeout=timeout, interval=0.2,
                 what=lambda: f"{recycles} child recycles "
                 f"(events: {child_events(d)}, served {load.ok}, "
                 f"failures {load.failures[:3]})")
    events = child_events(d)
    recycled = [e for e in events if e["kind"] == "recycle"]
    for e in recycled:
        assert e["reason"] == "memory", e
        assert e["pid"] == master, e
        assert e["child"] != master, e
        # Near the threshold: at or above its jittered value (jitter 5%)
        # and not far past it (two samples 50 ms apart).
        assert limit * 0.95 <= e["memory"] <= limit * 1.35, e
    # Each recycled child is gone; the master is the same process, never
    # recycled or restarted by the daemon.
    for e in recycled:
        wait_for(lambda: not pid_alive(e["child"]), timeout=10,
                 what=f"child {e['child']} gone")
    seen.update(load.pids)
    seen.update(children_of(master))
    assert pid_alive(master)
    assert [w["pid"] for w in ask(d, "status web")["pools"][0]["workers"]] \
        == [master]
    assert worker_events(d) == []
    w = status_worker(d)
    assert w["pid"] == master and w["state"] == "ready", w
    # The server keeps its number of children, and status lists them.
    wait_for(lambda: len(children_of(master)) == nchildren, timeout=20,
             what=f"{nchildren} children again")
    wait_for(lambda: len([c for c in status_worker(d)["children"]
                          if c["state"] == "serving"]) == nchildren,
             timeout=10, what="status listing the children")
    for c in status_worker(d)["children"]:
        assert c["threshold"] is not None and \
            limit * 0.95 <= c["threshold"] <= limit, c
        assert c["rss"] is not None and c["uptime"] >= 0, c
    pool = ask(d, "status web")["pools"][0]
    assert pool["recycle_scope"] == "children"
    assert pool["child_recycles"]["memory"] >= len(recycled), pool
    assert pool["recycles_total"] == 0 and pool["crashes"] == 0, pool
    assert metric_value(d, "recyclerd_child_recycles_total", pool="web",
                        reason="memory") >= len(recycled)
    # recyclerctl's table: one "child" row per child, under the master.
    out = subprocess.run([rd.RECYCLERCTL_BIN, "-s", str(d.control_path),
                          "status"], capture_output=True, text=True,
                         timeout=10 * rd.SLOW).stdout
    rows = [line.split() for line in out.splitlines()]
    assert len([r for r in rows if r and r[0] == "child"]) == nchildren, out
    return load, events


def metric_value(d, name, **labels):
    text = ask(d, "metrics")["metrics"]
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and want in line:
            return float(line.rsplit(" ", 1)[1])
    return None


# --- gunicorn -------------------------------------------------------------

@pytest.mark.skipif(not os.access(GUNICORN, os.X_OK),
                    reason=f"{GUNICORN} not installed")
def test_gunicorn_children_recycled_master_kept(seen, recyclerd):
    d = recyclerd
    limit = 48 * MiB
    sock = d.dir / "web.sock"
    d.write_config(
        command=f"{GUNICORN} --workers 3 --preload --chdir {APPS} "
                "--graceful-timeout 5 leak_wsgi:application",
        listen=f"unix:{sock}",
        ready="notify",
        recycle_scope="children",
        child_drain_signal="SIGTERM",
        recycle_memory="48M",
        drain_timeout="10s",
        environment=f"{rd.MARKER}={d.test_id} LEAK_KB=256")
    load, events = run_children_case(d, seen, lambda: http_get(sock), 3,
                                     limit)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 0
    # Children other than the first three served requests: the master
    # replaced the recycled ones.
    assert len(load.pids) > 3, load.pids


def gunicorn_pool(d, **keys):
    sock = d.dir / "web.sock"
    d.write_config(**{
        "command": f"{GUNICORN} --workers 3 --preload --chdir {APPS} "
                   "--graceful-timeout 5 leak_wsgi:application",
        "listen": f"unix:{sock}",
        "ready": "notify",
        "recycle_scope": "children",
        "recycle_memory": "48M",
        "environment": f"{rd.MARKER}={d.test_id} LEAK_KB=256",
        **keys})
    return sock


@pytest.mark.skipif(not os.access(GUNICORN, os.X_OK),
                    reason=f"{GUNICORN} not installed")
def test_child_ignoring_its_drain_signal_is_killed(seen, recyclerd):
    """gunicorn's workers ignore SIGWINCH: a child sent it as its
    child_drain_signal has its tree killed after drain_timeout, and the
    master replaces it."""
    d = recyclerd
    sock = gunicorn_pool(d, child_drain_signal="SIGWINCH",
                         drain_timeout="1s")
    d.start()
    master = ready_master(d)
    seen.add(master)
    wait_for(lambda: len(children_of(master)) == 3, timeout=20)
    seen.update(children_of(master))
    with Load(lambda: http_get(sock)) as load:
        wait_for(lambda: [e for e in child_events(d)
                          if e["kind"] == "recycle"], timeout=60,
                 interval=0.2, what="a child recycle")
    (e, *_) = [e for e in child_events(d) if e["kind"] == "recycle"]
    seen.update(load.pids)
    assert e["detail"].endswith("killed after drain_timeout"), e
    assert not pid_alive(e["child"])
    assert d.log_has(f"child {e['child']} still running")
    wait_for(lambda: len(children_of(master)) == 3, timeout=20)
    seen.update(children_of(master))
    assert pid_alive(master) and worker_events(d) == []


@pytest.mark.skipif(not os.access(GUNICORN, os.X_OK),
                    reason=f"{GUNICORN} not installed")
def test_child_over_the_limit_at_its_first_sample_is_a_config_error(
        seen, recyclerd):
    """recycle_memory below what a new child takes: one config event per
    child, no recycle, the children keep running (no loop)."""
    d = recyclerd
    gunicorn_pool(d, recycle_memory="1M")
    d.start()
    master = ready_master(d)
    seen.add(master)
    wait_for(lambda: len(children_of(master)) == 3, timeout=20)
    kids = sorted(children_of(master))
    seen.update(kids)
    wait_for(lambda: len(child_events(d)) >= 3, timeout=10,
             what="three config events")
    time.sleep(1)
    events = child_events(d)
    assert sorted(e["child"] for e in events) == kids, events
    assert {e["kind"] for e in events} == {"config"}, events
    assert all("below the baseline" in e["detail"] for e in events)
    assert sorted(children_of(master)) == kids
    assert all(c["baseline_error"] for c in status_worker(d)["children"])
    assert d.log_count("configuration error: child") == 3


def test_cgroup_metric_refused_with_children(recyclerd):
    """-t names the key and why: a cgroup counter has no figure per
    child."""
    d = recyclerd
    conf = d.write_config(recycle_scope="children", memory_metric="cgroup",
                          command="/bin/sleep 100")
    r = subprocess.run([rd.RECYCLERD_BIN, "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1, r
    assert "memory_metric = cgroup: a cgroup counter covers the master and " \
        "all its children at once" in r.stderr, r.stderr


# --- uWSGI ----------------------------------------------------------------

@pytest.mark.skipif(not os.access(UWSGI, os.X_OK) or not os.path.exists(
    f"{UWSGI_PLUGINS}/python3_plugin.so"),
    reason=f"{UWSGI} or its python3 plugin not installed")
def test_uwsgi_children_recycled_master_kept(seen, recyclerd):
    d = recyclerd
    limit = 48 * MiB
    sock = d.dir / "web.sock"
    ini = d.dir / "uwsgi.ini"
    # An ini file: a pool's line is too short for uWSGI's options.
    ini.write_text(f"""[uwsgi]
plugin-dir = {UWSGI_PLUGINS}
plugin = python3
master = true
processes = 3
http-socket = {sock}
chdir = {APPS}
module = leak_wsgi:application
need-app = true
die-on-term = true
""")
    d.write_config(
        command=f"{UWSGI} --ini {ini}",
        ready="notify",              # uWSGI sends READY=1
        recycle_scope="children",
        child_drain_signal="SIGHUP",  # a worker's graceful reload
        recycle_memory="48M",
        drain_timeout="10s",
        environment=f"{rd.MARKER}={d.test_id} LEAK_KB=256")
    load, events = run_children_case(d, seen, lambda: http_get(sock), 3,
                                     limit)
    # Reported, not asserted: uWSGI respawns a worker about a second
    # after it exits (its master's cycle); requests queue on the socket
    # meanwhile. Measured here: none failed.
    print(f"uWSGI: {load.ok} requests served, {len(load.failures)} failed "
          f"{load.failures[:3]}")
    assert load.ok > 0
    assert len(load.pids) > 3, load.pids


# --- PHP-FPM --------------------------------------------------------------

@pytest.mark.skipif(not os.access(PHP_FPM, os.X_OK),
                    reason=f"{PHP_FPM} not installed")
def test_php_fpm_children_recycled_master_kept(seen, recyclerd):
    d = recyclerd
    limit = 40 * MiB
    sock = d.dir / "fpm.sock"
    conf = d.dir / "php-fpm.conf"
    script = d.dir / "leak.php"
    shutil.copy(APPS / "leak.php", script)
    # A static pool of 3 children on a unix socket; ffi.enable for the
    # script's persistent leak; -R: the tests run as root.
    conf.write_text(f"""[global]
error_log = /proc/self/fd/2
daemonize = no
[www]
listen = {sock}
pm = static
pm.max_children = 3
php_admin_value[ffi.enable] = true
""")
    d.write_config(
        command=f"{PHP_FPM} -F -R -y {conf}",
        ready="notify",               # Debian's php-fpm sends READY=1
        recycle_scope="children",
        child_drain_signal="SIGQUIT",  # a child finishes its request
        recycle_memory="40M",
        drain_timeout="10s",
        environment=f"{rd.MARKER}={d.test_id} LEAK_KB=512")
    load, events = run_children_case(d, seen,
                                     lambda: fcgi_get(sock, script), 3,
                                     limit)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 0
    assert len(load.pids) > 3, load.pids
