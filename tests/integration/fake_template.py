# SPDX-License-Identifier: MIT
"""fake_template.py - the daemon's side of the template protocol, played by
a test, to check the client libraries (python/recyclerd_worker.py,
lib/recyclerd-worker.c) without the daemon.

FakeDaemon starts a template program the way recyclerd does: a listening
socket at fd 3 (LISTEN_FDS=1, LISTEN_PID its pid), one end of an AF_UNIX
SOCK_SEQPACKET pair at fd 4 (RECYCLERD_TEMPLATE_FD=4), NOTIFY_SOCKET bound
here. While it runs this process is a child subreaper (PR_SET_CHILD_SUBREAPER),
as recyclerd is, so the workers the template double-forks become our
children; cleanup() kills and reaps them and the template, and turns the
subreaper flag off again.
"""

import ctypes
import json
import os
import signal
import socket
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
LIBC = ctypes.CDLL(None, use_errno=True)
# LISTEN_PID must be the template's pid: a shell sets it, then execs.
WRAP = ["/bin/sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', "sh"]


def set_subreaper(on):
    if LIBC.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def spawn(argv, env, fds, log):
    """posix_spawn argv with env; fds {target: source} dup2'ed; stdout and
    stderr to the file log. Returns the pid."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, out, 1),
                   (os.POSIX_SPAWN_DUP2, out, 2)]
        actions += [(os.POSIX_SPAWN_DUP2, src, dst)
                    for dst, src in fds.items()]
        # Default dispositions, as the daemon gives its children (ours
        # has SIGPIPE ignored, which exec would pass on).
        return os.posix_spawn(argv[0], argv, env, file_actions=actions,
                              setsigdef=(signal.SIGPIPE,))
    finally:
        os.close(out)


def wait_exit(pid, timeout):
    """The exit status of our child pid (as os.waitstatus_to_exitcode), or
    None if it is still running after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def live_children():
    """Our children that have not exited (zombies left out): we are the
    subreaper, so whatever a template leaves behind lands here."""
    me, kids = os.getpid(), set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == me and state != "Z":
            kids.add(int(d))
    return kids



class FakeDaemon:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.log = self.dir / "template.log"
        self.notify_path = self.dir / "notify"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.sock, self.tpl_end = socket.socketpair(socket.AF_UNIX,
                                                    socket.SOCK_SEQPACKET)
        self.template = None
        self.workers = set()
        set_subreaper(True)

    def start(self, argv, env=None, template=True, listen=True):
        """Start argv as a template (or, template=False, as an exec'd
        worker: no RECYCLERD_TEMPLATE_FD). Returns its pid."""
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("LISTEN_", "RECYCLERD_", "NOTIFY_"))}
        e["NOTIFY_SOCKET"] = str(self.notify_path)
        e["PROBE_DIR"] = str(self.dir)
        fds = {}
        if listen:
            e["LISTEN_FDS"] = "1"
            fds[3] = self.listener.fileno()
        if template:
            e["RECYCLERD_TEMPLATE_FD"] = "4"
            fds[4] = self.tpl_end.fileno()
        e.update(env or {})
        self.template = spawn(WRAP + list(argv), e, fds, self.log)
        self.tpl_end.close()
        return self.template

    def messages(self, timeout=10):
        """The next notify datagram (text), or None after timeout."""
        self.notify.settimeout(timeout)
        try:
            return self.notify.recv(4096).decode()
        except socket.timeout:
            return None

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.messages(max(0.01, deadline - time.monotonic()))
            if msg is not None and "READY=1" in msg.split("\n"):
                return msg
        raise AssertionError(f"no READY=1 from the template within "
                             f"{timeout}s; its log:\n{self.log_text()}")

    def request(self, data, fds=(), timeout=10):
        """Send one datagram (bytes or str), with fds in SCM_RIGHTS; the
        answer as text (None if none came within timeout)."""
        if isinstance(data, str):
            data = data.encode()
        anc = []
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                    b"".join(fd.to_bytes(4, "little", signed=True)
                             for fd in fds))]
        self.sock.sendmsg([data], anc)
        self.sock.settimeout(timeout)
        try:
            answer = self.sock.recv(4096).decode(errors="replace")
        except socket.timeout:
            return None
        if answer.startswith("PID="):
            self.workers.add(int(answer[4:]))
        return answer

    def fork(self, slot, generation, cgroup_dir=None, extra=""):
        """FORK slot=... generation=...; the worker's pid (asserts PID=)."""
        fds = []
        if cgroup_dir is not None:
            fds = [os.open(cgroup_dir, os.O_PATH | os.O_DIRECTORY |
                           os.O_CLOEXEC)]
        try:
            answer = self.request(f"FORK slot={slot} generation={generation}"
                                  f"{extra}", fds)
        finally:
            for fd in fds:
                os.close(fd)
        assert answer and answer.startswith("PID="), \
            f"answer {answer!r}; template log:\n{self.log_text()}"
        return int(answer[4:])

    def report(self, pid, timeout=10):
        """What worker pid wrote about itself (its JSON line)."""
        path = self.dir / f"worker-{pid}.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {pid} wrote no report; "
                                     f"template log:\n{self.log_text()}")
            time.sleep(0.02)
        return json.loads(path.read_text())

    def close(self):
        """The daemon's end closed, as when it retires the template."""
        self.sock.close()

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self):
        for pid in list(self.workers) + ([self.template] if self.template
                                         else []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_exit(pid, 5)
        # Anything else the template forked and we inherited.
        for pid in live_children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_exit(pid, 5)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        set_subreaper(False)
        for s in (self.sock, self.tpl_end, self.notify, self.listener):
            s.close()
