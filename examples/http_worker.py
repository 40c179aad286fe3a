#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""http_worker.py - a prefork HTTP worker for recyclerd that leaks on purpose.

Several copies of this program share the listening sockets recyclerd holds
for their pool (LISTEN_FDS, LISTEN_PID, fds from 3: the sd_listen_fds()
protocol, so it runs under systemd socket activation too). Each answers
HTTP/1.1 GET and HEAD with a small JSON body (its pid, pool, slot and
request count) and keeps --leak bytes per request (and --leak-rate bytes
per second of serving), so recyclerd has a reason to recycle it. It speaks
sd_notify over NOTIFY_SOCKET with nothing but the socket module: READY=1
once it accepts, TASKS=n (requests served, cumulative, at most every
50 ms), WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 when it drains.

Structure: one I/O loop (selectors) owns every socket; complete requests
go to a pool of --threads handler threads (so a slow handler, --delay,
does not hold the others up) and the answers come back to the loop, which
writes them. Idle keep-alive connections cost no thread.

Zero dropped requests while being recycled, on SIGTERM (or SIGINT):
- stop accepting at once: the listening sockets leave the selector and our
  copies are closed. The sockets themselves stay open in recyclerd and the
  other workers, so connections the kernel queued are accepted by them;
- finish every request in flight; its response says `Connection: close`
  and the connection is closed after it (with a lingering close, so a
  response is never cut by a reset);
- a keep-alive connection with no request in flight is kept for
  --drain-idle seconds: a client that just got a response usually sends
  its next request at once, and that one is served (with Connection:
  close) rather than met with a closed connection;
- then exit 0.

Several processes accept on one socket, so the sockets are non-blocking and
EAGAIN on accept() is normal (another worker was faster). O_NONBLOCK is a
flag of the shared open file description, so every worker of the pool sees
it; recyclerd itself never accepts on the sockets.

To play a heavier application (the benchmarks do), --start-delay and
--start-burn make it slow to become ready (sleeping, burning CPU), and
--drain-delay slow to exit after a stop signal, holding its memory.

Run it standalone (without recyclerd) with --bind HOST:PORT.
"""

import argparse
import errno
import json
import os
import queue
import selectors
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

PROG = "http_worker"
SD_LISTEN_FDS_START = 3
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

MAX_HEAD = 64 * 1024		# request line + headers
MAX_BODY = 1 << 20		# a request body we read and discard
MAX_BUFFERED = 4 << 20		# pipelined bytes waiting behind a request
LINGER_S = 2.0			# read-and-discard after our last response
TASKS_PERIOD_S = 0.05		# at most one TASKS= per period
ACCEPT_BATCH = 1		# accept() calls per readable event: one, so
			# a burst is spread over the workers that woke

REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed",
           413: "Content Too Large", 431: "Request Header Fields Too Large",
           501: "Not Implemented", 505: "HTTP Version Not Supported"}


def parse_size(text):
    """'512K', '4M', '1.5G', '4096' -> bytes (binary multiples)."""
    t = text.strip().upper()
    if t.endswith("IB"):
        t = t[:-2]
    unit = t[-1:] if t[-1:] in UNITS and t[-1:] != "" else ""
    number = t[:-1] if unit else t
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} "
                                         "(use e.g. 64K, 4M)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: negative")
    return int(value * UNITS[unit])


def parse_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} "
                                         "(seconds, e.g. 0.5)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: "
                                         "negative")
    return value


def parse_threads(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"invalid thread count {text!r} "
                                         "(1 or more)")
    return n


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Prefork HTTP worker for recyclerd that leaks memory "
                    "per request (example and benchmark helper).")
    p.add_argument("--leak", type=parse_size, default=parse_size("64K"),
                   metavar="SIZE",
                   help="memory kept per request (default 64K)")
    p.add_argument("--leak-rate", type=parse_size, default=0,
                   metavar="SIZE",
                   help="memory kept per second of serving, spread over "
                        "the requests (default 0; adds to --leak)")
    p.add_argument("--start-delay", type=parse_seconds, default=0.0,
                   metavar="SECONDS",
                   help="sleep before ready (default 0)")
    p.add_argument("--start-burn", type=parse_seconds, default=0.0,
                   metavar="SECONDS",
                   help="CPU time burned before ready (default 0)")
    p.add_argument("--drain-delay", type=parse_seconds, default=0.0,
                   metavar="SECONDS",
                   help="after a stop signal, exit no sooner than this, "
                        "holding the memory (default 0)")
    p.add_argument("--threads", type=parse_threads, default=4, metavar="N",
                   help="request handler threads (default 4)")
    p.add_argument("--delay", type=parse_seconds, default=0.0,
                   metavar="SECONDS",
                   help="time each request takes in its handler "
                        "(default 0)")
    p.add_argument("--drain-idle", type=parse_seconds, default=0.5,
                   metavar="SECONDS",
                   help="when draining, how long an idle keep-alive "
                        "connection may still send one last request "
                        "(default 0.5)")
    p.add_argument("--bind", metavar="HOST:PORT",
                   help="listen here when not given sockets through "
                        "LISTEN_FDS (standalone use)")
    return p.parse_args(argv)


def log(msg):
    print(f"{PROG}[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def touch(size):
    """A buffer of size bytes with every page written: resident, private."""
    buf = bytearray(size)
    if size:
        buf[::PAGE_SIZE] = b"\x01" * len(range(0, size, PAGE_SIZE))
    return buf


class Notifier:
    """sd_notify() without libsystemd: one datagram per message."""

    def __init__(self):
        self.addr = os.environ.get("NOTIFY_SOCKET") or None
        self.sock = None
        self.warned = False
        if self.addr is None:
            return
        if self.addr.startswith("@"):
            # Abstract namespace: the name starts with a NUL byte.
            self.addr = "\0" + self.addr[1:]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def send(self, *fields):
        if self.sock is None:
            return
        try:
            self.sock.sendto("\n".join(fields).encode(), self.addr)
        except OSError as e:
            # Like sd_notify(): a supervisor that is gone or busy is no
            # reason to stop serving. Say it once.
            if not self.warned:
                log(f"notify failed: {e}")
                self.warned = True


def listen_fds():
    """sd_listen_fds(): the sockets passed to this very process, as socket
    objects (LISTEN_PID must be our pid: a variable inherited from a parent
    is not for us). The variables are removed so our children never take
    them for theirs."""
    pid = os.environ.pop("LISTEN_PID", "")
    count = os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    try:
        if int(pid) != os.getpid():
            return []
        n = int(count)
    except ValueError:
        return []
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n):
        os.set_inheritable(fd, False)
        s = socket.socket(fileno=fd)
        if s.type != socket.SOCK_STREAM:
            log(f"fd {fd} is not a stream socket; ignored")
            s.detach()
            continue
        socks.append(s)
    return socks


def bind_standalone(spec):
    host, _, port = spec.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM,
                              flags=socket.AI_PASSIVE)[0]
    s = socket.socket(info[0], socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(info[4])
    s.listen(1024)
    return s


class Conn:
    """One client connection, owned by the I/O loop."""

    __slots__ = ("sock", "rbuf", "wbuf", "busy", "keep", "eof", "lingering",
                 "deadline", "events")

    def __init__(self, sock):
        self.sock = sock
        self.rbuf = bytearray()
        self.wbuf = b""
        self.busy = False	# a request is with a handler thread
        self.keep = True	# keep-alive after the current response
        self.eof = False	# the client shut its side down
        self.lingering = False	# our side is shut; discarding until EOF
        self.deadline = 0.0	# lingering: close at this time
        self.events = 0		# what the selector watches

    def idle(self):
        return not (self.busy or self.wbuf or self.rbuf or self.lingering)


class Request:
    __slots__ = ("method", "path", "version", "keep", "number", "leak")


class Server:
    def __init__(self, args, listeners):
        self.args = args
        self.listeners = listeners
        self.sel = selectors.DefaultSelector()
        self.handlers = ThreadPoolExecutor(args.threads,
                                           thread_name_prefix="handler")
        self.answers = queue.SimpleQueue()	# (conn, status, body, head)
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.conns = set()
        self.leaked = []
        self.leaked_lock = threading.Lock()
        self.in_flight = 0	# requests with a handler (loop's count)
        self.busy_mono = 0.0	# busy time counted up to here
        self.busy_s = 0.0	# busy time not leaked for yet
        self.requests = 0	# dispatched
        self.served = 0		# answered (TASKS=)
        self.tasks_sent = 0
        self.tasks_mono = 0.0
        self.stop_signals = 0
        self.draining = False
        self.drain_idle_mono = 0.0
        self.stop_mono = 0.0
        self.notifier = Notifier()
        self.pool = os.environ.get("RECYCLERD_POOL")
        slot = os.environ.get("RECYCLERD_WORKER")
        self.slot = int(slot) if slot and slot.isdigit() else slot
        self.watchdog_s = None
        self.watchdog_mono = 0.0
        usec = os.environ.get("WATCHDOG_USEC", "")
        wpid = os.environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (
                not wpid or wpid.strip() == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6 / 2

    # -- the loop --

    def run(self):
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.on_stop_signal)
        signal.signal(signal.SIGINT, self.on_stop_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        for s in self.listeners:
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, s)
        # The kernel queues connections already: ready to take them.
        names = ", ".join(sockname(s) for s in self.listeners)
        self.notifier.send("READY=1", f"STATUS=serving on {names}")
        self.watchdog_mono = ready_mono = time.monotonic()
        log(f"serving on {names} ({self.args.threads} threads, "
            f"leak {self.args.leak} bytes per request, "
            f"{self.args.leak_rate} per second)")
        while True:
            for key, mask in self.sel.select(self.timeout()):
                obj = key.data
                if obj is None:
                    self.drain_wakeups()
                elif isinstance(obj, Conn):
                    if mask & selectors.EVENT_READ:
                        self.on_readable(obj)
                    if mask & selectors.EVENT_WRITE and obj.sock:
                        self.flush(obj)
                elif not self.stop_signals:
                    self.accept(obj)
            self.collect_answers()
            if self.stop_signals and not self.draining:
                self.start_drain()
            now = time.monotonic()
            self.housekeeping(now)
            if self.draining and not self.conns:
                break
        self.handlers.shutdown(wait=True)
        self.send_tasks(force=True)
        # A slow shutdown (--drain-delay): the memory stays ours meanwhile.
        time.sleep(max(0.0, self.stop_mono + self.args.drain_delay -
                       time.monotonic()))
        rate = self.served / max(self.stop_mono - ready_mono, 1e-3)
        log(f"drained: exiting after {self.served} requests "
            f"({rate:.0f}/s until the stop signal)")
        return 0

    def timeout(self):
        """Seconds until the loop has something to do on its own."""
        now = time.monotonic()
        t = []
        if self.served != self.tasks_sent:
            t.append(self.tasks_mono + TASKS_PERIOD_S - now)
        if self.watchdog_s:
            t.append(self.watchdog_mono + self.watchdog_s - now)
        if self.draining:
            t.append(0.05)
        elif any(c.lingering for c in self.conns):
            t.append(0.25)
        return max(0.0, min(t)) if t else None

    def on_stop_signal(self, signum, frame):
        self.stop_signals += 1
        if self.stop_signals > 1 and signum == signal.SIGINT:
            # A second Ctrl-C: the user does not want to wait.
            os._exit(1)

    def drain_wakeups(self):
        try:
            while self.wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def wake(self):
        """From a handler thread: make the loop look at its answers."""
        try:
            self.wake_w.send(b"a")
        except (BlockingIOError, InterruptedError):
            pass	# a wakeup is pending already

    def housekeeping(self, now):
        self.send_tasks()
        if self.watchdog_s and now >= self.watchdog_mono + self.watchdog_s:
            self.notifier.send("WATCHDOG=1")
            self.watchdog_mono = now
        for c in list(self.conns):
            if c.lingering and now >= c.deadline:
                self.close(c)
            elif (self.draining and now >= self.drain_idle_mono and
                  c.idle()):
                self.close(c)

    def send_tasks(self, force=False):
        now = time.monotonic()
        if self.served == self.tasks_sent:
            return
        if force or now >= self.tasks_mono + TASKS_PERIOD_S:
            self.notifier.send(f"TASKS={self.served}")
            self.tasks_sent = self.served
            self.tasks_mono = now

    # -- accepting and draining --

    def accept(self, lsock):
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return		# another worker took it: normal
            except OSError as e:
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                               errno.ENOMEM):
                    # Leave it queued for a worker that has room.
                    log(f"accept: {e}")
                    return
                raise
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(sock)
            self.conns.add(c)
            self.watch(c, selectors.EVENT_READ)

    def start_drain(self):
        self.draining = True
        self.stop_mono = time.monotonic()
        self.drain_idle_mono = self.stop_mono + self.args.drain_idle
        self.notifier.send("STOPPING=1",
                           f"STATUS=draining {len(self.conns)} connections")
        # Stop accepting at once. Closing our copies is safe: recyclerd
        # and the other workers keep the sockets themselves open.
        for s in self.listeners:
            self.sel.unregister(s)
            s.close()
        self.listeners = []
        log(f"draining: {len(self.conns)} connections, "
            f"{sum(c.busy for c in self.conns)} requests in flight")

    # -- connections --

    def watch(self, c, events):
        if events == c.events:
            return
        if c.events == 0:
            self.sel.register(c.sock, events, c)
        elif events == 0:
            self.sel.unregister(c.sock)
        else:
            self.sel.modify(c.sock, events, c)
        c.events = events

    def close(self, c):
        if c.sock is None:
            return
        self.watch(c, 0)
        c.sock.close()
        c.sock = None
        self.conns.discard(c)

    def finish(self, c):
        """Our last response is out: shut our side and read what the
        client still sends until it closes (a close() with unread data
        would send a reset, which can destroy the response in flight)."""
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(c)
            return
        if c.eof:
            self.close(c)
            return
        c.lingering = True
        c.rbuf = bytearray()
        c.deadline = time.monotonic() + (min(LINGER_S, 0.5)
                                          if self.draining else LINGER_S)
        self.watch(c, selectors.EVENT_READ)

    def on_readable(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(c)
            return
        if not data:
            c.eof = True
            if c.lingering or c.idle():
                self.close(c)
            else:
                # Half-closed: answer what is in flight, then close.
                c.keep = False
                self.watch(c, selectors.EVENT_WRITE if c.wbuf else 0)
                if not c.busy and not c.wbuf:
                    self.dispatch(c)
            return
        if c.lingering:
            return
        c.rbuf += data
        if len(c.rbuf) > MAX_BUFFERED:
            self.close(c)
            return
        self.dispatch(c)

    def dispatch(self, c):
        """Hand the next complete request of c to a handler thread (one at
        a time per connection: pipelined ones wait their turn)."""
        if c.busy or c.wbuf or c.lingering or c.sock is None:
            return
        end = c.rbuf.find(b"\r\n\r\n")
        if end == -1:
            if len(c.rbuf) > MAX_HEAD:
                self.reply_error(c, 431)
            elif c.eof:
                self.close(c)
            return
        try:
            req, body_len = parse_head(bytes(c.rbuf[:end]))
        except HttpError as e:
            self.reply_error(c, e.status)
            return
        if body_len > MAX_BODY:
            self.reply_error(c, 413)
            return
        if len(c.rbuf) < end + 4 + body_len:
            if c.eof:
                self.close(c)
            return		# the rest of the body is on its way
        del c.rbuf[:end + 4 + body_len]
        self.requests += 1
        req.number = self.requests
        req.leak = self.args.leak + self.leak_by_time()
        c.busy = True
        c.keep = req.keep and not c.eof
        self.handlers.submit(self.handle, c, req)

    def handle(self, c, req):
        """In a handler thread: do the work, leak, build the body."""
        try:
            if self.args.delay:
                time.sleep(self.args.delay)
            if req.method not in ("GET", "HEAD"):
                status, body = 405, b""
            else:
                if req.leak:
                    buf = touch(req.leak)
                    with self.leaked_lock:
                        self.leaked.append(buf)
                body = (json.dumps({
                    "pid": os.getpid(), "pool": self.pool, "slot": self.slot,
                    "request": req.number, "path": req.path,
                }) + "\n").encode()
                status = 200
            self.answers.put((c, status, body, req.method == "HEAD"))
        except BaseException as e:	# never leave a connection hanging
            log(f"handler failed: {e!r}")
            self.answers.put((c, 500, b"", False))
        self.wake()

    def count_busy(self, delta):
        """In the loop: a request goes to (+1) or comes back from (-1) the
        handlers; the time with requests in flight adds up in busy_s."""
        now = time.monotonic()
        if self.in_flight:
            self.busy_s += now - self.busy_mono
        self.busy_mono = now
        self.in_flight += delta

    def leak_by_time(self):
        """In the loop, for a request being dispatched: --leak-rate times
        the busy time since the previous one. Whatever the request rate, a
        busy worker grows by --leak-rate per second; an idle one does not
        grow."""
        self.count_busy(+1)
        size = int(self.args.leak_rate * self.busy_s)
        self.busy_s = 0.0
        return size

    def collect_answers(self):
        while True:
            try:
                c, status, body, head_only = self.answers.get_nowait()
            except queue.Empty:
                return
            c.busy = False
            self.count_busy(-1)
            if c.sock is None:
                continue
            self.served += 1
            # Decided now, not when the request came: a drain may have
            # started meanwhile, and then this is the last response.
            if self.draining:
                c.keep = False
            self.respond(c, status, body, head_only)

    def respond(self, c, status, body, head_only=False):
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                f"Server: recyclerd-http-worker\r\n"
                f"Content-Length: {len(body)}\r\n")
        if body:
            head += "Content-Type: application/json\r\n"
        head += ("Connection: keep-alive\r\n\r\n" if c.keep
                 else "Connection: close\r\n\r\n")
        c.wbuf = head.encode() + (b"" if head_only else body)
        self.flush(c)

    def reply_error(self, c, status):
        c.keep = False
        c.rbuf = bytearray()
        self.respond(c, status, b"")

    def flush(self, c):
        try:
            while c.wbuf:
                n = c.sock.send(c.wbuf)
                c.wbuf = c.wbuf[n:]
        except (BlockingIOError, InterruptedError):
            self.watch(c, selectors.EVENT_WRITE |
                       (0 if c.eof else selectors.EVENT_READ))
            return
        except OSError:
            self.close(c)
            return
        if not c.keep:
            self.finish(c)
            return
        self.watch(c, 0 if c.eof else selectors.EVENT_READ)
        self.dispatch(c)	# a pipelined request may be waiting


class HttpError(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


def parse_head(head):
    """Request line and headers -> (Request, body length)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:
        raise HttpError(400)
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha():
        raise HttpError(400)
    req = Request()
    req.method, req.path, req.version = parts
    if req.version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400)
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(501)
    try:
        body_len = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400)
    if body_len < 0:
        raise HttpError(400)
    conn = headers.get("connection", "").lower()
    if req.version == "HTTP/1.1":
        req.keep = "close" not in conn
    else:
        req.keep = "keep-alive" in conn
    return req, body_len


def sockname(s):
    try:
        a = s.getsockname()
    except OSError:
        return "?"
    if isinstance(a, tuple):
        host = f"[{a[0]}]" if ":" in a[0] else a[0]
        return f"{host}:{a[1]}"
    return a if isinstance(a, str) else a.decode(errors="replace")


def start_slowly(args):
    """--start-burn, then --start-delay: a heavy application's start-up
    (imports, warming caches) before it says READY=1."""
    end = time.process_time() + args.start_burn
    while time.process_time() < end:
        pass
    time.sleep(args.start_delay)


def main(argv):
    args = parse_args(argv)
    listeners = listen_fds()
    if not listeners and args.bind:
        try:
            listeners = [bind_standalone(args.bind)]
        except (OSError, ValueError) as e:
            log(f"unable to listen on {args.bind}: {e}")
            return 1
    if not listeners:
        log("no listening socket: LISTEN_FDS is not set for this process "
            "(use --bind HOST:PORT to run without recyclerd)")
        return 2
    start_slowly(args)
    rc = Server(args, listeners).run()
    # Skip the interpreter's teardown: freeing every leaked buffer one by
    # one (from the handler threads' malloc arenas) takes seconds, and the
    # kernel gives all of it back at once anyway. Recycling waits for us.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
