#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""wsgi_preload.py - a WSGI application loaded once, served by forked workers.

    wsgi_preload.py [MODULE:CALLABLE]

Under a pool with spawn = template, this process is the template: it
imports the application (MODULE:CALLABLE, e.g. myproject.wsgi:application;
by default a small built-in one), then recyclerd_worker.serve_template()
forks a worker per FORK request. Each worker serves the application with
the standard library's wsgiref on the pool's socket (fd 3, the listen key),
one request at a time, and shares the loaded pages with the template.
Under spawn = exec (or run by hand with LISTEN_FDS) every worker imports
the application itself: the same script, a full start-up per worker.

The built-in application answers a JSON line naming the worker that
answered, and keeps LEAK_PER_REQUEST bytes (K, M suffixes; default 0) per
request, for recycling to contain. SIGTERM drains: the request in hand is
answered, then the worker exits 0. TASKS=n is reported at most every
REPORT_EVERY seconds (10 ms) while requests come, and when they stop: each
datagram wakes the daemon, and at thousands of requests a second one per
request cost it ~9 % of a core (max_tasks is then reached up to 10 ms late).
"""

import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import recyclerd_worker as rw

gc.disable()    # while loading: no collection leaves holes in shared pages

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
REPORT_EVERY = 0.010
leaked = []


def parse_size(text):
    t = text.strip().upper()
    return int(float(t[:-1]) * UNITS[t[-1]]) if t[-1:] in UNITS else int(t)


LEAK = parse_size(os.environ.get("LEAK_PER_REQUEST") or "0")


def hello(environ, start_response):
    """The built-in application: who answered, and a leak if asked."""
    if LEAK:
        buf = bytearray(LEAK)
        buf[::4096] = b"\1" * len(range(0, LEAK, 4096))   # resident
        leaked.append(buf)
    body = (json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0),
        "slot": os.environ.get("RECYCLERD_WORKER", ""),
        "generation": os.environ.get("RECYCLERD_GENERATION", ""),
        "listen_pid": os.environ.get("PRELOAD_LISTEN_PID", ""),
        "path": environ.get("PATH_INFO", ""),
    }) + "\n").encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def load(spec):
    """'package.module:callable' -> the callable (imported here, once)."""
    module, _, name = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    obj = importlib.import_module(module)
    for part in (name or "application").split("."):
        obj = getattr(obj, part)
    return obj


class Handler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass            # one line per request is not what a pool wants


class InheritedServer(WSGIServer):
    """A WSGIServer on an inherited, listening socket."""

    def __init__(self, fd, app):
        super().__init__(None, Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = socket.socket(fileno=fd)
        # Every worker accepts on this socket: never block in accept().
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        if isinstance(self.server_address, tuple):
            self.server_name, self.server_port = self.server_address[:2]
        else:                               # listen = unix:PATH
            self.server_name, self.server_port = "localhost", 0
        self.setup_environ()
        self.set_app(app)
        self.tasks = 0
        self.reported = 0
        self.reported_at = 0.0

    def report(self, now):
        """TASKS= for what was served since the last report."""
        if self.reported != self.tasks:
            rw.notify(f"TASKS={self.tasks}")
            self.reported, self.reported_at = self.tasks, now

    def get_request(self):
        conn, addr = self.socket.accept()   # BlockingIOError: not ours
        conn.setblocking(True)
        # A unix socket's peer has no address: REMOTE_ADDR needs one.
        return conn, addr if isinstance(addr, tuple) else ("unix", 0)

    def handle_error(self, request, client_address):
        pass            # a client gone mid-request is not our error

    def finish_request(self, request, client_address):
        super().finish_request(request, client_address)
        self.tasks += 1
        now = time.monotonic()
        if now - self.reported_at >= REPORT_EVERY:
            self.report(now)


def serve_one(server):
    """Accept one connection, if another worker has not, and answer it."""
    try:
        conn, addr = server.get_request()
    except OSError:         # BlockingIOError: it went to another worker
        return
    try:
        server.process_request(conn, addr)
    except Exception:
        server.handle_error(conn, addr)
        server.shutdown_request(conn)


APP = load(sys.argv[1]) if len(sys.argv) > 1 else hello


def run_worker():
    draining = []
    signal.signal(signal.SIGTERM, lambda *a: draining.append(1))
    os.environ["PRELOAD_LISTEN_PID"] = os.environ.get("LISTEN_PID", "")
    fds = rw.listen_fds()
    if not fds:
        print("wsgi_preload: no listening socket (the pool needs a listen "
              "key)", file=sys.stderr)
        return 2
    server = InheritedServer(fds[0], APP)
    # Not handle_request(): it waits as long as the socket's timeout, and
    # a non-blocking socket's is 0, so an idle worker would spin.
    with selectors.DefaultSelector() as sel:
        sel.register(server.socket, selectors.EVENT_READ)
        rw.notify("READY=1")
        while not draining:
            # Then SIGTERM is seen; sooner while a count waits to be told.
            pending = server.reported != server.tasks
            if sel.select(timeout=REPORT_EVERY if pending else 0.5):
                serve_one(server)
            elif pending:
                server.report(time.monotonic())
    server.socket.close()
    return 0


if __name__ == "__main__":
    sys.exit(rw.serve_template(run_worker))
