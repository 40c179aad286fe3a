#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""template_probe.py - a template built on the recyclerd_worker module whose
workers report what they were given (the C twin is template_probe.c, whose
comment says what is reported). Reports also whether gc.freeze() ran.

"notify MSG" and "listen_fds" as arguments run the two functions alone and
print the result."""

import gc
import json
import os
import signal
import sys

import recyclerd_worker as rw


def run_worker():
    fd = os.environ.get("PROBE_TEMPLATE_FD")
    try:        # first: a file opened below may take the number
        fd_open = bool(fd) and os.fstat(int(fd)) is not None
    except OSError:
        fd_open = False
    listen_pid = os.environ.get("LISTEN_PID", "")
    n = len(rw.listen_fds())
    try:
        with open("/proc/self/cgroup") as f:
            cg = f.readline().strip()
    except OSError:
        cg = ""
    report = {
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0),
        "worker": os.environ.get("RECYCLERD_WORKER", ""),
        "generation": os.environ.get("RECYCLERD_GENERATION", ""),
        "listen_pid": listen_pid, "listen_fds": n,
        "listen_env_left": int("LISTEN_FDS" in os.environ),
        "template_fd_env": os.environ.get("RECYCLERD_TEMPLATE_FD", ""),
        "template_fd_open": int(fd_open), "cgroup": cg,
        "gc_frozen": gc.get_freeze_count(), "gc_enabled": gc.isenabled(),
    }
    path = f"{os.environ.get('PROBE_DIR', '.')}/worker-{os.getpid()}.json"
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(report) + "\n")
    os.rename(path + ".tmp", path)
    if "PROBE_EXIT" in os.environ:
        return int(os.environ["PROBE_EXIT"])
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    signal.sigwait([signal.SIGTERM])
    return 0


def main(argv):
    if len(argv) == 2 and argv[0] == "notify":
        print(rw.notify(argv[1]))
        return 0
    if argv == ["listen_fds"]:
        fds = rw.listen_fds()
        print(len(fds), "set" if "LISTEN_PID" in os.environ else "unset",
              "set" if "LISTEN_FDS" in os.environ else "unset",
              int(not os.get_inheritable(fds[0])) if fds else -1)
        return 0
    os.environ["PROBE_TEMPLATE_FD"] = os.environ.get(
        "RECYCLERD_TEMPLATE_FD", "")
    if "PROBE_LISTEN_IN_TEMPLATE" in os.environ:
        rw.listen_fds()
    gc.disable()
    return rw.serve_template(run_worker)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
