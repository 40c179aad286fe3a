# SPDX-License-Identifier: MIT
"""recyclerd.py - the harness: run the real daemon and watch it from outside.

A Recyclerd object owns one test's temporary directory, its configuration,
the daemon process and the notify socket the harness binds in the role of a
service manager (so start() waits for the daemon's READY=1 instead of
polling). Workers are found through /proc (children of the daemon whose
environment names the pool), the log is read from the daemon's stderr file,
and cleanup() leaves nothing behind: every process that carries this test's
RECYCLERD_TEST_ID in its environment is killed, and the test is failed if
there was one to kill.

Nothing here knows what a test expects; assertions live in the tests.
"""

import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

SRCDIR = Path(os.environ.get("RECYCLERD_SRCDIR")
              or Path(__file__).resolve().parents[2])
RECYCLERD_BIN = (os.environ.get("RECYCLERD_BIN")
                 or str(SRCDIR / "src/recyclerd"))
RECYCLERCTL_BIN = (os.environ.get("RECYCLERCTL_BIN")
                   or str(SRCDIR / "src/recyclerctl"))
HELPERS = Path(os.environ.get("RECYCLERD_HELPERS") or SRCDIR / "tests/helpers")
CWORKER = HELPERS / "cworker"
# The interpreter running the tests also runs the Python workers: it is an
# absolute path, as `command` requires.
PYTHON = sys.executable
PY_WORKER = SRCDIR / "examples/leaky_worker.py"

VALGRIND = bool(os.environ.get("VALGRIND"))
# Everything is slower under valgrind: stretch every deadline.
SLOW = float(os.environ.get("RECYCLERD_TEST_SLOW") or (4 if VALGRIND else 1))
MARKER = "RECYCLERD_TEST_ID"
# RECYCLERD_TEST_KEEP=1 keeps each test's directory (config, log) for a look.
KEEP = bool(os.environ.get("RECYCLERD_TEST_KEEP"))

# Log line: "2024-05-01 12:00:00.123 info    pool web worker 0 [pid 42]: msg"
LOG_LINE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<level>\w+)\s+"
    r"(?:pool (?P<pool>\S+)(?: worker (?P<slot>\d+))?"
    r"(?: \[pid (?P<pid>\d+)\])?: )?(?P<msg>.*)$")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)")
DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:us|ms|s|m|h|d))+$")
VALGRIND_ERRORS = re.compile(r"ERROR SUMMARY: [1-9]")
SIZE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[KMGT]?)(?:i?B)?$")


def py_worker(*args):
    """The `command` value that runs the Python leaky worker."""
    return " ".join([PYTHON, str(PY_WORKER), *map(str, args)])


def c_worker(*args):
    """The `command` value that runs the C leaky worker (cworker)."""
    return " ".join([str(CWORKER), *map(str, args)])


def parse_duration(text):
    """'0.1s', '250ms', '2m', '1m20s' -> seconds (float)."""
    if not DURATION.match(text):
        raise ValueError(f"not a duration: {text!r}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600,
             "d": 86400}
    return sum(float(n) * scale[unit]
               for n, unit in DURATION_PART.findall(text))


def parse_size(text):
    """'212M', '1.5G', '512K', '100B' -> bytes (binary multiples)."""
    m = SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(float(m["n"]) * {"": 1, "K": 1 << 10, "M": 1 << 20,
                                "G": 1 << 30, "T": 1 << 40}[m["unit"]])


def line_time(line):
    """The timestamp of a log line, in seconds (float, local time)."""
    m = LOG_LINE.match(line)
    if not m:
        raise ValueError(f"not a log line: {line!r}")
    stamp = datetime.datetime.strptime(m["date"], "%Y-%m-%d %H:%M:%S.%f")
    return stamp.timestamp()


def wait_for(pred, timeout=10.0, interval=0.03, what=None):
    """Poll pred() until it returns something true; return that value.

    Raises AssertionError naming `what` (or pred) after timeout seconds
    (stretched under valgrind)."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            if callable(what):
                what = what()
            raise AssertionError(f"timed out after {timeout * SLOW:.1f}s "
                                 f"waiting for {what or pred}")
        time.sleep(interval)


def stays(pred, duration, interval=0.03, what=None):
    """Assert pred() stays true for the whole of duration seconds."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not pred():
            raise AssertionError(f"condition stopped holding: "
                                 f"{what or pred}")
        time.sleep(interval)


# --- /proc ---------------------------------------------------------------

def read_environ(pid):
    """The environment pid was exec'd with, as a dict; {} if unreadable
    (gone, zombie, kernel thread)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def proc_status(pid):
    """/proc/PID/status as a dict, {} if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    st = proc_status(pid)
    return bool(st) and not st.get("State", "").startswith(("Z", "X"))


def pid_exists(pid):
    """True while pid has a /proc entry (zombies included: not reaped)."""
    return os.path.exists(f"/proc/{pid}")


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(ppid):
    """Live (non-zombie) processes whose parent is ppid."""
    out = []
    for pid in all_pids():
        st = proc_status(pid)
        if st.get("PPid") == str(ppid) and not st.get(
                "State", "").startswith(("Z", "X")):
            out.append(pid)
    return out


def descendants(root):
    """Live descendants of root (not root itself)."""
    parent = {}
    for pid in all_pids():
        st = proc_status(pid)
        if st and not st.get("State", "").startswith(("Z", "X")):
            parent[pid] = int(st.get("PPid", "0"))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        todo.extend(kids)
    return out


def rss_bytes(pid):
    st = proc_status(pid)
    return int(st.get("VmRSS", "0 kB").split()[0]) * 1024


# --- the daemon ----------------------------------------------------------

class DaemonError(Exception):
    pass


class Recyclerd:
    """One daemon, its configuration and its temporary directory."""

    def __init__(self, name="rd"):
        # Unix socket paths must stay under ~108 bytes: keep them in /tmp.
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
        self.test_id = uuid.uuid4().hex
        self.conf = self.dir / "recyclerd.conf"
        self.pools_dir = self.dir / "pools.d"
        self.pools_dir.mkdir()
        self.log_path = self.dir / "recyclerd.log"
        # %p: the guard process the daemon forks reports on its own.
        self.valgrind_log = self.dir / "valgrind.%p.log"
        self.notify_path = self.dir / "notify"
        self.control_path = self.dir / "ctl.sock"
        self.proc = None
        self.notify_sock = None
        self.notify_thread = None
        self.notify_messages = []  # (monotonic time, text) from the daemon
        self.notify_lock = threading.Lock()
        self.saved_log = None
        self.saved_valgrind = None
        self.pools = {}

    # -- configuration --

    def pool_defaults(self, name):
        """Keys every test pool gets unless the test overrides them: short
        intervals so tests run in seconds, and the marker in the
        environment so cleanup can find every process of this test."""
        return {
            "command": py_worker("--leak", "0", "--interval", "0.1"),
            "workers": 1,
            "ready": "notify",
            "sample_interval": "50ms",
            "drain_timeout": "2s",
            "shutdown_timeout": "3s",
            "restart_backoff": "100ms",
            "environment": f"{MARKER}={self.test_id}",
        }

    def main_defaults(self):
        d = {
            "control_socket": str(self.control_path),
            "pools_dir": str(self.pools_dir),
        }
        cg = os.environ.get("RECYCLERD_TEST_CGROUP")
        if cg:
            d["cgroup"] = cg
        return d

    def config_text(self, pools, main=None, raw_main="", raw=""):
        """The text of a main file with these pools: {name: {key: value}};
        a value of None drops a default key."""
        keys = {**self.main_defaults(), **(main or {})}
        out = ["# written by tests/integration/recyclerd.py", "[recyclerd]"]
        out += [f"{k} = {v}" for k, v in keys.items() if v is not None]
        if raw_main:
            out.append(raw_main.rstrip("\n"))
        for name, pool in pools.items():
            out += ["", f"[pool {name}]"]
            merged = {**self.pool_defaults(name), **pool}
            out += [f"{k} = {v}" for k, v in merged.items() if v is not None]
        if raw:
            out.append(raw.rstrip("\n"))
        return "\n".join(out) + "\n"

    def write_config(self, pools=None, main=None, raw_main="", raw="",
                     **pool):
        """Write the main file. Either pools={name: keys} or, for the
        common case of one pool named "web", its keys as arguments."""
        if pools is None:
            pools = {"web": pool}
        self.pools = pools
        self.conf.write_text(self.config_text(pools, main, raw_main, raw))
        return self.conf

    def write_pool_file(self, name, **keys):
        """A [pool NAME] in pools_dir/NAME.conf (with the usual defaults)."""
        path = self.pools_dir / f"{name}.conf"
        merged = {**self.pool_defaults(name), **keys}
        path.write_text(f"[pool {name}]\n" + "".join(
            f"{k} = {v}\n" for k, v in merged.items() if v is not None))
        return path

    # -- the process --

    def command(self, *args):
        return daemon_command(args, self.valgrind_log)

    def env(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        env.pop("JOURNAL_STREAM", None)  # log as text to our file
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        # The daemon carries the marker too, so cleanup also finds any
        # helper process it forks (and workers if it passes its own
        # environment on).
        env[MARKER] = self.test_id
        # After every reconciliation the daemon recounts what it keeps
        # counted (workers by state, recycles under way, settled slots)
        # and aborts on a difference: a bookkeeping slip fails the test.
        env["RECYCLERD_CHECK_INVARIANTS"] = "1"
        return env

    def start(self, wait_ready=True, timeout=20, args=()):
        """Start the daemon in the foreground; with wait_ready, return once
        it sent READY=1 (raise DaemonError if it exits or times out)."""
        assert self.proc is None, "daemon already started"
        self.notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_sock.bind(str(self.notify_path))
        self.notify_sock.settimeout(0.1)
        self.notify_thread = threading.Thread(target=self._read_notify,
                                              daemon=True)
        self.notify_thread.start()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command("-c", str(self.conf), *args), env=self.env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.dir)
        finally:
            log.close()
        if wait_ready:
            self.wait_notify("READY=1", timeout)
        return self

    def _read_notify(self):
        sock = self.notify_sock
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.notify_lock:
                self.notify_messages.append(
                    (time.monotonic(), data.decode(errors="replace")))

    def notified(self, field):
        """Messages from the daemon that contain the line `field`."""
        with self.notify_lock:
            return [m for _, m in self.notify_messages
                    if field in m.split("\n")]

    def notify_lines(self, prefix):
        """(message index, line) of every line starting with prefix in
        the messages from the daemon, in arrival order."""
        with self.notify_lock:
            return [(i, line) for i, (_, m) in
                    enumerate(self.notify_messages)
                    for line in m.split("\n") if line.startswith(prefix)]

    def wait_notify(self, field, timeout=20):
        deadline = time.monotonic() + timeout * SLOW
        while not self.notified(field):
            if self.proc.poll() is not None:
                raise DaemonError(f"recyclerd exited with "
                                  f"{self.proc.returncode} before sending "
                                  f"{field}")
            if time.monotonic() > deadline:
                raise DaemonError(f"recyclerd sent no {field} within "
                                  f"{timeout * SLOW:.0f}s")
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, wait=True):
        """SIGHUP; with wait, return once the log shows one more
        `reloading` line than before."""
        before = self.log_count(r"reloading ")
        self.send_signal(signal.SIGHUP)
        if wait:
            wait_for(lambda: self.log_count(r"reloading ") > before, 10,
                     what="a `reloading` log line")

    def stop(self, timeout=15, sig=signal.SIGTERM):
        """Send sig and wait for the exit; return the exit status (negative
        for a signal). Raises AssertionError if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"recyclerd still running {timeout * SLOW}s "
                                 f"after {signal.Signals(sig).name}")

    def wait_exit(self, timeout=15):
        try:
            return self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"recyclerd did not exit within "
                                 f"{timeout * SLOW}s")

    # -- workers --

    def workers(self, pool="web"):
        """{slot: pid} of the live workers of pool (all, whatever their
        state: starting, ready or draining). A slot with two processes
        (a replacement and a draining worker) keeps the newest pid; use
        worker_pids() to see both."""
        out = {}
        for pid, slot in self._workers(pool):
            if slot not in out or pid > out[slot]:
                out[slot] = pid
        return out

    def worker_pids(self, pool="web"):
        """Sorted pids of every live worker process of pool."""
        return sorted(pid for pid, _ in self._workers(pool))

    def _workers(self, pool):
        if self.proc is None:
            return []
        daemon = str(self.proc.pid)
        found = []
        for pid in all_pids():
            st = proc_status(pid)
            if st.get("PPid") != daemon or st.get(
                    "State", "").startswith(("Z", "X")):
                continue
            env = read_environ(pid)
            if env.get("RECYCLERD_POOL") != pool:
                continue
            try:
                slot = int(env.get("RECYCLERD_WORKER", "-1"))
            except ValueError:
                slot = -1
            found.append((pid, slot))
        return found

    def wait_workers(self, n, pool="web", timeout=15):
        """Wait until pool has exactly n live worker processes, one per
        slot; returns {slot: pid}."""
        def check():
            found = self._workers(pool)
            if len(found) != n or len({s for _, s in found}) != n:
                return None
            return {"workers": {s: p for p, s in found}}
        return wait_for(check, timeout,
                        what=f"{n} workers in pool {pool}")["workers"]

    def wait_ready_workers(self, n, pool="web", timeout=15):
        """Wait until n distinct slots each have a live worker that logged
        `ready after`; returns {slot: pid} of those."""
        def ready():
            w = self.workers(pool)
            ok = {s: p for s, p in w.items()
                  if self.worker_is_ready(pool, s, p)}
            return ok if len(ok) >= n else None
        return wait_for(ready, timeout, what=f"{n} ready workers in {pool}")

    def wait_replaced(self, old, slot=0, pool="web", timeout=10):
        """Wait until worker old is gone and another process serves its
        slot; returns the new pid."""
        def check():
            if pid_alive(old):
                return None
            w = self.workers(pool)
            return w.get(slot) if w.get(slot) not in (None, old) else None
        return wait_for(check, timeout, what=f"worker {old} of {pool} "
                        f"slot {slot} replaced by a new process")

    def worker_is_ready(self, pool, slot, pid):
        return self.log_has(
            rf"pool {re.escape(pool)} worker {slot} \[pid {pid}\]: "
            r"ready after ")

    def marked_processes(self):
        """Live processes (except ourselves) with this test's marker."""
        needle = f"{MARKER}={self.test_id}".encode()
        me = os.getpid()
        out = []
        for pid in all_pids():
            if pid == me:
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            if needle in raw.split(b"\0") and pid_alive(pid):
                out.append(pid)
        return out

    # -- the log --

    def log_text(self):
        if self.saved_log is not None:
            return self.saved_log
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def log_has(self, pattern):
        """First match of pattern (re.M) in the log, or None."""
        return re.search(pattern, self.log_text(), re.M)

    def log_all(self, pattern):
        return list(re.finditer(pattern, self.log_text(), re.M))

    def line_index(self, pattern, lines=None):
        """(index, line) of the first log line matching pattern, or
        (None, None)."""
        rx = re.compile(pattern)
        for i, line in enumerate(lines if lines is not None
                                 else self.log_lines()):
            if rx.search(line):
                return i, line
        return None, None

    def log_count(self, pattern):
        return len(self.log_all(pattern))

    def wait_log(self, pattern, timeout=10, count=1):
        """Wait until pattern matched count times; return the last match."""
        def found():
            m = self.log_all(pattern)
            return m[count - 1] if len(m) >= count else None
        return wait_for(found, timeout, what=f"log line /{pattern}/"
                        + (f" x{count}" if count > 1 else ""))

    def parsed_log(self):
        """The log as a list of dicts (date, level, pool, slot, pid, msg);
        lines that do not parse are skipped."""
        out = []
        for line in self.log_lines():
            m = LOG_LINE.match(line)
            if m:
                d = m.groupdict()
                d["slot"] = int(d["slot"]) if d["slot"] else None
                d["pid"] = int(d["pid"]) if d["pid"] else None
                out.append(d)
        return out

    def valgrind_text(self):
        if self.saved_valgrind is not None:
            return self.saved_valgrind
        return read_valgrind_logs(self.dir)

    # -- teardown --

    def cleanup(self):
        """Stop the daemon and everything of this test. Returns a list of
        problems (empty if the test left nothing behind)."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(20 * SLOW)
                if rc != 0:
                    problems.append(f"recyclerd exited with {rc} after "
                                    f"SIGTERM at teardown")
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("recyclerd did not exit within "
                                f"{20 * SLOW}s of SIGTERM at teardown: "
                                "killed")
        if VALGRIND and VALGRIND_ERRORS.search(self.valgrind_text()):
            problems.append("valgrind reported errors:\n"
                            + self.valgrind_text())
        # Whatever is left was not stopped by the daemon: kill it, and
        # fail the test. Give the kernel a moment: processes killed by
        # the daemon's last act may still be exiting.
        left = []
        deadline = time.monotonic() + 2 * SLOW
        while True:
            left = self.marked_processes()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if left:
            desc = []
            for pid in left:
                st = proc_status(pid)
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(
                        b"\0", b" ").decode(errors="replace")
                except OSError:
                    cmd = "?"
                desc.append(f"pid {pid} ppid {st.get('PPid')} "
                            f"state {st.get('State')}: {cmd}")
            problems.append("processes left behind:\n  " + "\n  ".join(desc))
            for _ in range(3):
                for pid in self.marked_processes():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
        if self.notify_sock is not None:
            self.notify_sock.close()
        if self.notify_thread is not None:
            self.notify_thread.join(1)
        self.saved_log = self.log_text()
        self.saved_valgrind = self.valgrind_text()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems


def daemon_command(args, valgrind_log):
    """argv running the daemon with args (under valgrind with VALGRIND=1,
    its report going to valgrind_log)."""
    cmd = [RECYCLERD_BIN, *args]
    if VALGRIND:
        cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite",
               f"--log-file={valgrind_log}", *cmd]
    return cmd


def read_valgrind_logs(directory):
    """The valgrind reports in directory that found errors (one file per
    process: the daemon, its guard, and every child between fork and
    exec, which have nothing to say)."""
    out = []
    for path in sorted(Path(directory).glob("valgrind.*.log")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if VALGRIND_ERRORS.search(text):
            out.append(f"== {path.name}\n{text}")
    return "\n".join(out)


def run_recyclerd(*args, timeout=20):
    """Run the binary to completion (for -t, --version, --help); returns
    the CompletedProcess (text stdout and stderr). Under VALGRIND=1, any
    valgrind error raises AssertionError."""
    with tempfile.TemporaryDirectory(prefix="rd-") as d:
        cmd = daemon_command(args, Path(d) / "valgrind.%p.log")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        res = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True,
                             timeout=timeout * SLOW)
        if VALGRIND:
            text = read_valgrind_logs(d)
            if res.returncode == 99 or VALGRIND_ERRORS.search(text):
                raise AssertionError(f"valgrind reported errors for "
                                     f"recyclerd {' '.join(args)}:\n{text}")
        return res
