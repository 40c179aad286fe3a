# SPDX-License-Identifier: MIT
"""Listening sockets: what workers inherit (LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES, fds from 3), requests served through them, sockets passed
by systemd (`listen = systemd:NAME` under systemd-socket-activate), a bind
error refusing the start, and no failed request while workers are recycled
on memory or the configuration is reloaded: the socket is the daemon's and
outlives every worker."""

import http.client
import json
import os
import shutil
import socket
import threading
import time

import pytest

from recyclerd import (MARKER, PYTHON, SRCDIR, DaemonError, daemon_command,
                       read_environ, wait_for)

HTTP_WORKER = SRCDIR / "examples/http_worker.py"


def http_worker(*args):
    """The `command` value that runs the example HTTP worker."""
    return " ".join([PYTHON, str(HTTP_WORKER), *map(str, args)])


def free_port():
    """A port nobody listens on right now (bind 0, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/", timeout=10.0):
    """One GET on a new connection: (status, decoded JSON body or None)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, None
    finally:
        c.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def socket_inode(pid, fd):
    """'socket:[123]' -> 123 for /proc/PID/fd/FD, or None."""
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None
    if not link.startswith("socket:["):
        return None
    return int(link[len("socket:["):-1])


def daemon_socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        ino = socket_inode(pid, fd)
        if ino is not None:
            out.add(ino)
    return out


class Load:
    """Client threads sending GETs until stopped, on keep-alive connections
    (http.client reconnects after a `Connection: close` response) or on a
    new connection per request. Every outcome is kept: a test asserts that
    each one is a 200."""

    def __init__(self, port, threads=4, keepalive=True, limit=None,
                 delay=0.0):
        self.port = port
        self.keepalive = keepalive
        self.limit = limit
        self.delay = delay
        self.lock = threading.Lock()
        self.results = []	# (status or exception text, pid or None)
        self.taken = 0
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _take(self):
        with self.lock:
            if self.stop_event.is_set() or (
                    self.limit is not None and self.taken >= self.limit):
                return False
            self.taken += 1
            return True

    def _record(self, outcome, pid):
        with self.lock:
            self.results.append((outcome, pid))

    def _run(self):
        conn = None
        while self._take():
            if conn is None or not self.keepalive:
                conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                  timeout=10)
            try:
                conn.request("GET", "/", headers={} if self.keepalive
                             else {"Connection": "close"})
                r = conn.getresponse()
                body = r.read()
                pid = json.loads(body)["pid"] if r.status == 200 else None
                self._record(r.status, pid)
            except Exception as e:	# noqa: BLE001 - every failure counts
                self._record(f"{type(e).__name__}: {e}", None)
                conn.close()
                conn = None
            if not self.keepalive and conn is not None:
                conn.close()
            if self.delay:
                time.sleep(self.delay)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)
        return self.results

    def wait(self):
        for t in self.threads:
            t.join(60)
        return self.results


def failures(results):
    return [r for r in results if r[0] != 200]


# --- what workers get ----------------------------------------------------

def test_workers_inherit_the_sockets_in_order_and_serve(recyclerd):
    port = free_port()
    path = recyclerd.dir / "app.sock"
    recyclerd.write_config(
        workers=2, command=http_worker("--leak", "0"),
        listen=f"tcp:127.0.0.1:{port} unix:{path},mode=0660,name=admin")
    recyclerd.start()
    workers = recyclerd.wait_ready_workers(2)
    daemon_inodes = daemon_socket_inodes(recyclerd.pid)
    for slot, pid in workers.items():
        env = read_environ(pid)
        assert env.get("LISTEN_PID") == str(pid), env
        assert env.get("LISTEN_FDS") == "2", env
        assert env.get("LISTEN_FDNAMES") == "web:admin", env
        assert env.get("RECYCLERD_WORKER") == str(slot)
        # fd 3 and 4 are the daemon's sockets, not copies bound anew.
        for fd in (3, 4):
            ino = socket_inode(pid, fd)
            assert ino is not None, f"worker {pid} fd {fd} is no socket"
            assert ino in daemon_inodes
        # Nothing past the passed sockets leaks into the worker (the
        # daemon's own descriptors are close-on-exec).
        assert socket_inode(pid, 5) is None or \
            socket_inode(pid, 5) not in daemon_inodes
    assert oct(path.stat().st_mode & 0o777) == oct(0o660)

    status, body = get(port)
    assert status == 200
    assert body["pid"] in workers.values()
    assert body["pool"] == "web"

    c = UnixHTTPConnection(str(path))
    c.request("GET", "/unix", headers={"Connection": "close"})
    r = c.getresponse()
    assert r.status == 200
    assert json.loads(r.read())["pid"] in workers.values()
    c.close()


def test_listening_socket_is_held_by_the_daemon(recyclerd):
    """Between the start and the first ready worker, and while a worker
    is replaced, connections queue on the daemon's socket: none is
    refused."""
    port = free_port()
    recyclerd.write_config(workers=1, command=http_worker("--leak", "0"),
                           listen=f"tcp:127.0.0.1:{port}")
    recyclerd.start()
    (pid,) = recyclerd.wait_ready_workers(1).values()
    # Kill the only worker: until its respawn is ready nobody accepts,
    # but the socket is there, so this request waits instead of failing.
    os.kill(pid, 9)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}/fd/3"), 5,
             what="the killed worker to go")
    status, body = get(port, timeout=20)
    assert status == 200
    assert body["pid"] != pid


# --- systemd socket activation -------------------------------------------

@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="no systemd-socket-activate")
def test_socket_activation_reaches_the_workers(recyclerd):
    port = free_port()
    recyclerd.write_config(workers=2, command=http_worker("--leak", "0"),
                           listen="systemd:web")

    # systemd-socket-activate binds the port, waits for a connection and
    # then execs recyclerd in its own process (LISTEN_PID matches) with
    # the socket at fd 3 named "web". It passes only the variables named
    # with -E: the harness's notify socket and the cleanup marker.
    def command(*args):
        return ["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                "--fdname=web", "-E", "NOTIFY_SOCKET", "-E", MARKER,
                *daemon_command(args, recyclerd.valgrind_log)]
    recyclerd.command = command
    recyclerd.start(wait_ready=False)

    # The first connection starts the daemon; it is answered once a
    # worker accepts it from the socket systemd-socket-activate bound.
    def first():
        try:
            return get(port, timeout=20)
        except ConnectionRefusedError:
            return None
    status, body = wait_for(first, 10, interval=0.05,
                            what="systemd-socket-activate to listen")
    assert status == 200
    recyclerd.wait_notify("READY=1")
    workers = recyclerd.wait_ready_workers(2)
    assert body["pid"] in workers.values()
    assert body["pool"] == "web"
    for pid in workers.values():
        env = read_environ(pid)
        assert env.get("LISTEN_PID") == str(pid)
        assert env.get("LISTEN_FDS") == "1"
        assert env.get("LISTEN_FDNAMES") == "web"
    # The daemon did not pass its own LISTEN_* on: the workers' come
    # from recyclerd (LISTEN_PID is each worker's pid, checked above).
    assert recyclerd.log_has(r"adopted 1 socket passed by systemd: web")


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="no systemd-socket-activate")
def test_unknown_systemd_name_refuses_to_start(recyclerd):
    port = free_port()
    recyclerd.write_config(workers=1, command=http_worker("--leak", "0"),
                           listen="systemd:api")

    def command(*args):
        return ["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                "--fdname=web", "-E", "NOTIFY_SOCKET", "-E", MARKER,
                *daemon_command(args, recyclerd.valgrind_log)]
    recyclerd.command = command
    recyclerd.start(wait_ready=False)
    # Trigger the exec; the connection itself is never answered.
    wait_for(lambda: _connect(port), 10, what="systemd-socket-activate")
    assert recyclerd.wait_exit() != 0
    assert recyclerd.log_has(
        r"pool web: listen systemd:api: no socket of that name was passed "
        r"by systemd \(have: web\)"), recyclerd.log_text()


def _connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


# --- errors --------------------------------------------------------------

def test_port_in_use_refuses_to_start(recyclerd):
    # Our own listener, without SO_REUSEADDR: the daemon cannot bind.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        recyclerd.write_config(workers=2, command=http_worker("--leak", "0"),
                               listen=f"tcp:127.0.0.1:{port}")
        with pytest.raises(DaemonError):
            recyclerd.start(timeout=10)
        assert recyclerd.wait_exit() != 0
        want = (f"pool web: listen tcp:127.0.0.1:{port}: "
                f"{os.strerror(98)}")	# EADDRINUSE
        assert want in recyclerd.log_text(), recyclerd.log_text()
        assert not recyclerd.log_has(r"spawned")
    finally:
        busy.close()


# --- no failed request ---------------------------------------------------

def test_no_failed_request_while_workers_recycle_on_memory(recyclerd):
    """~300 requests, sequential then concurrent on keep-alive connections,
    while every worker is recycled on memory several times: each one is a
    200. A Python worker is ~13 MiB at rest; at 1 MiB per request it
    crosses 28 MiB after ~15 requests."""
    port = free_port()
    recyclerd.write_config(
        workers=3, command=http_worker("--leak", "1M", "--delay", "0.005"),
        listen=f"tcp:127.0.0.1:{port}", recycle_memory="28M",
        memory_metric="rss", jitter="0%", max_recycling=3, overlap="yes",
        sample_interval="20ms", recycle_samples=1, drain_timeout="5s")
    recyclerd.start()
    first = recyclerd.wait_ready_workers(3)
    inode = socket_inode(next(iter(first.values())), 3)
    recycles_before = recyclerd.log_count(r"recycling \(")

    # Sequential, a new connection per request.
    seq = Load(port, threads=1, keepalive=False, limit=100,
               delay=0.002).start().wait()
    # Concurrent, keep-alive: responses with `Connection: close` from a
    # draining worker make the client reconnect.
    con = Load(port, threads=4, keepalive=True, limit=200,
               delay=0.002).start().wait()

    results = seq + con
    assert len(results) == 300
    assert failures(results) == [], failures(results)[:10]
    recycles = recyclerd.log_count(r"recycling \(") - recycles_before
    assert recycles >= 3, f"only {recycles} recycles during the requests"
    served_by = {pid for _, pid in results}
    assert len(served_by) > 3
    # Every worker, old and new, has the same socket at fd 3.
    now = recyclerd.wait_ready_workers(3)
    for pid in now.values():
        assert socket_inode(pid, 3) == inode


def test_reload_keeps_the_socket_and_drops_nothing(recyclerd):
    """A reload that changes the workers' command replaces every worker;
    the new ones get the very socket the old ones had, and a client
    running through the reload sees only 200s."""
    port = free_port()
    listen = f"tcp:127.0.0.1:{port}"
    recyclerd.write_config(workers=2, command=http_worker("--leak", "0"),
                           listen=listen)
    recyclerd.start()
    old = recyclerd.wait_ready_workers(2)
    inode = socket_inode(next(iter(old.values())), 3)

    load = Load(port, threads=2, keepalive=True, delay=0.005).start()
    try:
        time.sleep(0.3)
        recyclerd.write_config(workers=2, listen=listen, command=http_worker(
            "--leak", "0", "--threads", "2"))
        recyclerd.reload()

        def replaced():
            w = recyclerd.workers()
            return (len(w) == 2 and not set(w.values()) & set(old.values())
                    and all(recyclerd.worker_is_ready("web", s, p)
                            for s, p in w.items()))
        wait_for(replaced, 20, what="both workers replaced after reload")
        time.sleep(0.3)
    finally:
        results = load.stop()
    assert len(results) > 50
    assert failures(results) == [], failures(results)[:10]
    for pid in recyclerd.workers().values():
        assert socket_inode(pid, 3) == inode
    # And only the one listening socket for the port exists.
    assert not recyclerd.log_has(r"listen tcp:127\.0\.0\.1:\d+: Address "
                                 r"already in use")
