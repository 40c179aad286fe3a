#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""template_worker.py - a spawn = template test program, stdlib only.

It speaks recyclerd's template protocol directly (no client library):
reads RECYCLERD_TEMPLATE_FD, sends READY=1 on NOTIFY_SOCKET, then answers
each "FORK slot=N generation=G" datagram (the worker's cgroup directory in
SCM_RIGHTS when cgroups are in use) by a double fork and one datagram,
PID=<pid> or ERROR=<text>. The worker (the grandchild) calls setsid(),
writes 0 to cgroup.procs below the descriptor, closes the template's,
sets LISTEN_PID, RECYCLERD_WORKER and RECYCLERD_GENERATION, sends READY=1
and serves: each connection on fd 3 (if LISTEN_FDS) gets one line
"slot pid generation\\n"; every --interval it leaks --leak MiB and adds
--tasks to TASKS=.

Misbehaviour, for the error tests (--template MODE, --worker MODE):
  template: never-ready, error (ERROR= to every FORK), no-answer, close
            (closes its end at the first FORK), crash (exits at the first
            FORK), bad-pid (answers PID=1)
  worker:   never-ready, exit (exits at once, before READY=1)
--delay-answer SECONDS: answer PID= late, after the worker ran.
--linger-intermediate SECONDS: the intermediate process exits late, so the
worker sends READY=1 while it is still below the template.
--grow-per-fork MIB: the template allocates that much after each fork.
--once FILE: misbehave only if FILE does not exist (and create it), so the
next template (or worker) behaves.
"""

import argparse
import array
import os
import signal
import socket
import sys
import time


def notify(msg):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(msg.encode(), path)
    finally:
        s.close()


def misbehave(args):
    if not args.once:
        return True
    try:
        fd = os.open(args.once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def parse_fork(text):
    words = text.split()
    if not words or words[0] != "FORK":
        return None
    fields = {}
    for w in words[1:]:
        k, _, v = w.partition("=")
        fields[k] = v
    return fields


def enter_cgroup(dirfd):
    fd = os.open("cgroup.procs", os.O_WRONLY, dir_fd=dirfd)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


def worker_main(args, tfd, dirfd, fields):
    os.setsid()
    if dirfd is not None:
        enter_cgroup(dirfd)
        os.close(dirfd)
    os.close(tfd)
    pid = os.getpid()
    os.environ.pop("RECYCLERD_TEMPLATE_FD", None)
    if "LISTEN_FDS" in os.environ:
        os.environ["LISTEN_PID"] = str(pid)
    os.environ["RECYCLERD_WORKER"] = fields.get("slot", "")
    os.environ["RECYCLERD_GENERATION"] = fields.get("generation", "")
    # Drain: finish the connection in hand, then exit.
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    if args.worker == "exit" and misbehave(args):
        os._exit(3)
    if not (args.worker == "never-ready" and misbehave(args)):
        notify("READY=1")
    listener = None
    if int(os.environ.get("LISTEN_FDS", "0")) > 0:
        listener = socket.socket(fileno=3)
        listener.settimeout(args.interval)
    leaked = []
    tasks = 0
    line = f"{fields.get('slot')} {pid} {fields.get('generation')}\n"
    next_tick = time.monotonic() + args.interval
    while not stopping:
        if listener is not None:
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(line.encode())
            except (socket.timeout, OSError):
                pass
        else:
            time.sleep(args.interval)
        if time.monotonic() < next_tick:
            continue
        next_tick += args.interval
        if args.leak > 0:
            leaked.append(b"x" * int(args.leak * 1048576))
        if args.tasks > 0:
            tasks += args.tasks
            notify(f"TASKS={tasks}")
    os._exit(0)


def answer(tfd, text):
    os.write(tfd, text.encode())


def serve_template(args, tfd):
    grown = []  # the template's own memory, after the forks
    sock = socket.socket(fileno=os.dup(tfd))
    while True:
        fds = array.array("i")
        try:
            msg, anc, _, _ = sock.recvmsg(512, socket.CMSG_SPACE(
                4 * fds.itemsize))
        except InterruptedError:
            continue
        if not msg:
            os._exit(0)  # the daemon closed its end: nothing to do
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        dirfd = fds[0] if fds else None
        for extra in fds[1:]:
            os.close(extra)
        fields = parse_fork(msg.decode(errors="replace"))
        if fields is None:
            answer(tfd, "ERROR=not a FORK")
            continue
        if args.template in ("error", "no-answer", "close", "crash",
                             "bad-pid") and misbehave(args):
            if dirfd is not None:
                os.close(dirfd)
            if args.template == "error":
                answer(tfd, "ERROR=refusing to fork for the test")
            elif args.template == "close":
                sock.close()
                os.close(tfd)
                while True:
                    time.sleep(1)
            elif args.template == "crash":
                os._exit(7)
            elif args.template == "bad-pid":
                answer(tfd, "PID=1")
            continue
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            sock.close()
            grandchild = os.fork()
            if grandchild == 0:
                os.close(w)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                try:
                    worker_main(args, tfd, dirfd, fields)
                finally:
                    os._exit(1)
            os.write(w, str(grandchild).encode())
            if args.linger_intermediate > 0:
                # The worker runs (READY=1) while its parent is still
                # this process below the template, not recyclerd.
                time.sleep(args.linger_intermediate)
            os._exit(0)
        os.close(w)
        got = b""
        while True:
            chunk = os.read(r, 32)
            if not chunk:
                break
            got += chunk
        os.close(r)
        os.waitpid(child, 0)
        if dirfd is not None:
            os.close(dirfd)
        if args.delay_answer > 0:
            # The worker runs (READY=1, or its exit) before the daemon
            # knows its pid.
            time.sleep(args.delay_answer)
        answer(tfd, f"PID={got.decode()}" if got else "ERROR=fork failed")
        if args.grow_per_fork > 0:
            grown.append(b"g" * int(args.grow_per_fork * 1048576))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preload", type=float, default=0,
                    help="MiB the template allocates before forking")
    ap.add_argument("--leak", type=float, default=0)
    ap.add_argument("--tasks", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--template", default="ok")
    ap.add_argument("--worker", default="ok")
    ap.add_argument("--once")
    ap.add_argument("--grow-per-fork", type=float, default=0,
                    help="MiB the template allocates after each fork")
    ap.add_argument("--delay-answer", type=float, default=0,
                    help="seconds between the fork and the PID= answer")
    ap.add_argument("--linger-intermediate", type=float, default=0,
                    help="seconds the intermediate process lives on "
                    "after the second fork")
    args = ap.parse_args()

    tfd = int(os.environ["RECYCLERD_TEMPLATE_FD"])
    preload = b"t" * int(args.preload * 1048576)  # shared copy-on-write
    if args.template == "never-ready" and misbehave(args):
        while True:
            time.sleep(1)
    notify("READY=1\nSTATUS=template loaded %d bytes" % len(preload))
    serve_template(args, tfd)


if __name__ == "__main__":
    sys.exit(main())
