#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""leaky_worker.py - an example worker that leaks memory on purpose.

It does "tasks" in a loop and keeps a reference to a buffer it touched in
every task, so its private resident memory grows by --leak per task: the
kind of worker recyclerd exists for. It speaks the sd_notify protocol over
NOTIFY_SOCKET with nothing but the socket module (READY=1 once started,
TASKS=n after each task), so it also shows how little a worker needs to do
to cooperate. Run standalone (no NOTIFY_SOCKET) it just leaks.

The other options make it misbehave in the ways the integration tests need:
ignore the drain signal, fork children, crash, exit at once, never become
ready, ask to be recycled, or stop on its own.
"""

import argparse
import os
import select
import signal
import socket
import sys

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


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
                                         "(use e.g. 512K, 4M, 1G)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: negative")
    return int(value * UNITS[unit])


def parse_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} "
                                         "(seconds, e.g. 0.1)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: "
                                         "negative")
    return value


def touch(size):
    """A buffer of size bytes with every page written: resident, private."""
    buf = bytearray(size)
    if size:
        # One non-zero byte per page: the kernel must back each page with
        # a private, dirty frame (zero pages could stay shared).
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
            # Like sd_notify(): a supervisor that is gone or busy is not a
            # reason to stop working. Say it once.
            if not self.warned:
                print(f"leaky_worker: notify failed: {e}", file=sys.stderr,
                      flush=True)
                self.warned = True


def spawn_children(count, child_mem, ignore_term):
    """Fork children that hold child_mem each and sleep until killed."""
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore_term
                              else signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_term
                              else signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                held = [touch(child_mem)]
                while held:
                    signal.pause()
            finally:
                os._exit(0)
        pids.append(pid)
    return pids


def reap_children(pids):
    """Stop our children before we go, as a tidy worker would."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="A worker that leaks memory on purpose (recyclerd "
                    "example and test helper).")
    p.add_argument("--leak", type=parse_size, default=parse_size("1M"),
                   metavar="SIZE", help="memory kept per task (default 1M)")
    p.add_argument("--leak-until", type=parse_size, default=0,
                   metavar="SIZE",
                   help="stop leaking once SIZE was kept in all (a leak "
                        "that levels off; default: never stops)")
    p.add_argument("--interval", type=parse_seconds, default=0.1,
                   metavar="SECONDS",
                   help="pause between tasks (default 0.1)")
    p.add_argument("--baseline", type=parse_size, default=0, metavar="SIZE",
                   help="memory allocated and touched at start, before "
                        "READY=1")
    p.add_argument("--ready-delay", type=parse_seconds, default=0.0,
                   metavar="SECONDS", help="wait this long before READY=1")
    p.add_argument("--no-ready", action="store_true",
                   help="never send READY=1")
    p.add_argument("--ignore-term", action="store_true",
                   help="ignore SIGTERM and SIGINT (the drain signal)")
    p.add_argument("--children", type=int, default=0, metavar="N",
                   help="fork N children that hold --child-mem and sleep")
    p.add_argument("--child-mem", type=parse_size, default=0,
                   metavar="SIZE", help="memory touched by each child")
    p.add_argument("--crash-after", type=int, default=0, metavar="N",
                   help="exit with status 3 after N tasks")
    p.add_argument("--exit-code", type=int, default=None, metavar="C",
                   help="exit with status C at once, before READY=1")
    p.add_argument("--recycle-after", type=int, default=0, metavar="N",
                   help="send RECYCLE=1 after N tasks, then keep working")
    p.add_argument("--stopping-after", type=int, default=0, metavar="N",
                   help="send STOPPING=1 and exit 0 after N tasks")
    p.add_argument("--status", action="store_true",
                   help="send STATUS=done N tasks after each task")
    args = p.parse_args(argv)
    if args.children < 0:
        p.error("--children must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    pid = os.getpid()
    print(f"leaky_worker: pid {pid} pool "
          f"{os.environ.get('RECYCLERD_POOL', '-')} slot "
          f"{os.environ.get('RECYCLERD_WORKER', '-')}", flush=True)
    if args.exit_code is not None:
        print(f"leaky_worker: pid {pid} exiting with status "
              f"{args.exit_code} at once", file=sys.stderr, flush=True)
        return args.exit_code

    # Signals only set a flag (through the wakeup pipe): the current task
    # always completes, as a real worker's request would.
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)
    stop = []

    def on_signal(signum, frame):
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN if args.ignore_term else on_signal)
    signal.set_wakeup_fd(wfd)

    def pause(seconds):
        """Sleep, but wake at once on a signal."""
        if seconds > 0 and not stop:
            select.select([rfd], [], [], seconds)
            try:
                os.read(rfd, 512)
            except BlockingIOError:
                pass

    hold = [touch(args.baseline)]
    children = spawn_children(args.children, args.child_mem,
                              args.ignore_term)
    notify = Notifier()
    pause(args.ready_delay)
    if not args.no_ready and not stop:
        notify.send("READY=1")

    tasks = leaked = 0
    why, status = "signal", 0
    while True:
        pause(args.interval)
        if stop:
            break
        # The task: some work on fresh memory, which is then kept.
        leak = args.leak
        if args.leak_until:
            leak = max(0, min(leak, args.leak_until - leaked))
        leaked += leak
        buf = touch(leak)
        if leak:
            buf[0] = tasks & 0xff
            hold.append(buf)
        tasks += 1
        fields = [f"TASKS={tasks}"]
        if args.status:
            fields.append(f"STATUS=done {tasks} tasks")
        if args.recycle_after and tasks == args.recycle_after:
            fields.append("RECYCLE=1")
        notify.send(*fields)
        if args.stopping_after and tasks >= args.stopping_after:
            notify.send("STOPPING=1")
            why = "stopping on its own"
            break
        if args.crash_after and tasks >= args.crash_after:
            why, status = "crashing on purpose", 3
            break

    reap_children(children)
    held = sum(len(b) for b in hold)
    print(f"leaky_worker: pid {pid} exiting with status {status} "
          f"({why}) after {tasks} tasks, holding {held >> 10}K",
          file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
