# SPDX-License-Identifier: MIT
"""recyclerd_worker - the worker's side of recyclerd's protocol, stdlib only.

    notify(msg)               sd_notify(): one datagram to NOTIFY_SOCKET
    listen_fds()              sd_listen_fds(1): the sockets from fd 3
    serve_template(run_worker)
                              a preloaded pool's template loop (spawn =
                              template), or run_worker() itself when the
                              pool execs its workers (spawn = exec)

A preloaded worker script has this shape:

    import gc, sys
    import recyclerd_worker

    gc.disable()            # optional: no collection holes in the template
    app = load_application()    # slow, big: done once, in the template

    def run_worker():
        socks = recyclerd_worker.listen_fds()
        ...serve app on socks, READY=1, TASKS=n, drain on SIGTERM...
        return 0

    sys.exit(recyclerd_worker.serve_template(run_worker))

The protocol is in recyclerd-protocol(7); the guide, with the reasons for
gc.freeze(), in docs/writing-workers.md.
"""

import array
import errno
import gc
import os
import signal
import socket
import sys
import traceback

__all__ = ["notify", "listen_fds", "listen_fds_with_names",
           "serve_template", "TemplateError"]

LISTEN_FDS_START = 3
# A FORK request is a short line; anything longer is refused whole.
MAX_REQUEST = 4096
# Descriptors one request may carry: the cgroup directory (one); more are
# closed and refused.
MAX_FDS = 4

# What listen_fds() took from the environment of this process, so that a
# template that called it before serve_template() still passes the sockets
# on to its workers: (count, names or None).
_listen = None


class TemplateError(Exception):
    """serve_template() cannot run as a template: a bad
    RECYCLERD_TEMPLATE_FD, or READY=1 could not be sent."""


def notify(*fields):
    """Send one sd_notify() datagram to NOTIFY_SOCKET.

    notify("READY=1"), notify("TASKS=12", "STATUS=idle") or
    notify("TASKS=12\\nSTATUS=idle"): the fields are joined by newlines.
    Returns True when sent, False when there is no NOTIFY_SOCKET (not
    supervised: nothing to say). A failure to send raises OSError."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]          # abstract namespace
    elif not addr.startswith("/"):
        raise OSError(errno.EAFNOSUPPORT,
                      f"NOTIFY_SOCKET={addr!r}: not a unix socket path")
    msg = "\n".join(fields)
    with socket.socket(socket.AF_UNIX,
                       socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.sendto(msg.encode(), addr)
    return True


def _take_listen_env():
    """(count, names) passed to this very process, and unset them as
    sd_listen_fds(1) does; None when LISTEN_PID names another process."""
    pid = os.environ.get("LISTEN_PID")
    count = os.environ.get("LISTEN_FDS")
    names = os.environ.get("LISTEN_FDNAMES")
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    if pid != str(os.getpid()) or count is None:
        return None
    try:
        n = int(count)
    except ValueError:
        return None
    if n <= 0:
        return None
    return n, names


def listen_fds_with_names():
    """[(fd, name)] of the sockets passed to this process, fd from 3;
    name is "unknown" where LISTEN_FDNAMES gives none. See listen_fds()."""
    global _listen
    taken = _take_listen_env()
    if taken is None:
        return []
    _listen = taken
    n, names = taken
    split = names.split(":") if names else []
    out = []
    for i in range(n):
        fd = LISTEN_FDS_START + i
        os.set_inheritable(fd, False)   # FD_CLOEXEC: not for our execs
        out.append((fd, split[i] if i < len(split) and split[i]
                    else "unknown"))
    return out


def listen_fds():
    """The descriptors of the sockets passed to this process: [3, 4, ...]
    (LISTEN_FDS of them, if LISTEN_PID is our pid), else [].

    As sd_listen_fds(1): sets FD_CLOEXEC on them and removes LISTEN_PID,
    LISTEN_FDS and LISTEN_FDNAMES from the environment, so that a program
    this one runs does not take them for its own. In a template, the
    workers get them anyway (serve_template() remembers them)."""
    return [fd for fd, _ in listen_fds_with_names()]


def _parse_fork(data):
    """b"FORK slot=N generation=G [key=value...]" -> (slot, generation);
    ValueError with the reason otherwise. Unknown keys are ignored."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("request is not UTF-8")
    words = text.rstrip("\n").split(" ")
    if not words or words[0] != "FORK":
        raise ValueError(f"unknown request {words[0][:32]!r}, "
                         "expected FORK")
    fields = {}
    for w in words[1:]:
        if not w:
            continue
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise ValueError(f"field {w[:32]!r} is not key=value")
        fields[key] = value
    out = []
    for key in ("slot", "generation"):
        value = fields.get(key)
        if value is None:
            raise ValueError(f"no {key}= field")
        if not value.isdigit() or not value.isascii() or len(value) > 18:
            raise ValueError(f"{key}={value[:32]!r} is not a number")
        out.append(int(value))
    return tuple(out)


def _received_fds(ancdata):
    fds = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            n = len(data) // 4
            fds += list(memoryview(data)[:n * 4].cast("i"))
    return fds


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _reply(sock, text):
    sock.send(text.encode("utf-8", "replace")[:MAX_REQUEST])


def _write_zero(name, cgroup_fd):
    fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                 dir_fd=cgroup_fd)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


def _enter_cgroup(cgroup_fd):
    """Move this process into the cgroup whose directory cgroup_fd is.
    On cgroup v1 by its tasks file: that moves the calling thread alone,
    which is all of a process just forked, and spares the wait for an RCU
    grace period that a v1 cgroup.procs write makes (8-20 ms, most of
    what a fork from the template costs). v2 has no tasks file."""
    try:
        _write_zero("tasks", cgroup_fd)
    except OSError:
        _write_zero("cgroup.procs", cgroup_fd)


def _become_worker(report_fd, cgroup_fd, slot, generation):
    """In the spare's future worker, once its request came: session,
    cgroup, descriptors, environment; the pid (or an error) to the
    template through report_fd. Returns False when it could not become a
    worker (the error is reported)."""
    try:
        what = "setsid"
        os.setsid()
        if cgroup_fd is not None:
            what = "cannot enter the cgroup: cgroup.procs"
            _enter_cgroup(cgroup_fd)
    except OSError as e:
        os.write(report_fd, f"ERROR={what}: {e.strerror}".encode())
        return False
    if cgroup_fd is not None:
        os.close(cgroup_fd)
    if _listen is not None:
        os.environ["LISTEN_FDS"] = str(_listen[0])
        if _listen[1] is not None:
            os.environ["LISTEN_FDNAMES"] = _listen[1]
        os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["RECYCLERD_WORKER"] = str(slot)
    os.environ["RECYCLERD_GENERATION"] = str(generation)
    # Only now, in its session and cgroup: the template answers the
    # daemon with what it reads here.
    os.write(report_fd, f"PID={os.getpid()}".encode())
    os.close(report_fd)
    return True


def _run_worker(run_worker, worker_gc):
    """In the worker: run_worker(), then exit with its return value. Never
    returns: unwinding into the template's code would run it twice."""
    rc = 1
    try:
        if worker_gc:
            gc.enable()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        rc = run_worker()
    except SystemExit as e:
        rc = e.code
    except BaseException:
        traceback.print_exc()
        rc = 1
    finally:
        if rc is None:
            rc = 0
        elif not isinstance(rc, int):
            print(rc, file=sys.stderr)
            rc = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc & 0xff)


class _Spare:
    """A worker forked ahead of its FORK request. Its intermediate process
    exited as soon as it had forked it, so it waits already re-parented to
    the daemon (which holds it as the template's orphan, killed with the
    template, until an answer names it). A request then costs no fork
    (the template's page tables copied twice, two new processes to
    schedule on a busy machine) and no exit on the way to PID= (an
    intermediate unmapping the template's pages, the template woken to
    reap it): one wake-up, the spare's."""

    __slots__ = ("inter", "chan")

    def __init__(self, inter, chan):
        self.inter = inter      # the intermediate's pid, None once reaped
        self.chan = chan        # to the future worker: its request, and
        #                         its PID= (or ERROR=) back; EOF: exit

    def reaped(self):
        """The intermediate is gone (a zombie since it forked, its pages
        released): the worker is the daemon's child."""
        if self.inter is not None:
            _reap(self.inter)
            self.inter = None

    def discard(self):
        """No more use for it (the template is leaving, or the spare
        failed): EOF tells the future worker to exit."""
        self.chan.close()
        self.reaped()


def _reap(pid):
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def _wait_request(far, run_worker, worker_gc):
    """In the spare's future worker (the template's socket is closed in
    the intermediate already): wait for "slot generation" (and the cgroup
    directory), become the worker, run it. Never returns."""
    try:
        while True:
            try:
                data, anc, _, _ = far.recvmsg(64, socket.CMSG_SPACE(4))
                break
            except InterruptedError:
                continue
        fds = _received_fds(anc)
        if not data:
            os._exit(0)         # discarded
        slot, generation = (int(x) for x in data.split())
        report = far.detach()
        if _become_worker(report, fds[0] if fds else None, slot,
                          generation):
            _run_worker(run_worker, worker_gc)
    finally:
        os._exit(1)


def _make_spare(sock, run_worker, worker_gc):
    """Fork a spare (both forks; the intermediate exits at once). Raises
    OSError when the first fork fails (a failed second one is an
    intermediate that exits: EOF on the spare's channel)."""
    gc.freeze()     # whatever the template made since: shared, not scanned
    chan, far = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        inter = os.fork()
    except OSError:
        chan.close()
        far.close()
        raise
    if inter == 0:
        # The intermediate: no Python code of the template's runs here.
        try:
            chan.close()
            sock.close()        # the template's alone: its end closes
            #                     with it (and the daemon sees that)
            if os.fork() == 0:
                _wait_request(far, run_worker, worker_gc)
        finally:
            os._exit(0)
    far.close()
    return _Spare(inter, chan)


def _fork_worker(spare, cgroup_fd, slot, generation):
    """Hand the request to the spare, the worker from now on. Returns the
    answer to send, PID=... or ERROR=..., or None when the spare was gone
    before it got the request (a fresh one may try again). The spare is
    used up either way."""
    spare.reaped()      # long since, as a rule; once it has been, the
    #                     worker is re-parented before it reads a byte
    fds = [cgroup_fd] if cgroup_fd is not None else []
    try:
        spare.chan.sendmsg([f"{slot} {generation}".encode()],
                           [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                             array.array("i", fds))] if fds else [])
    except OSError:
        spare.discard()
        return None
    try:
        answer = spare.chan.recv(256).decode(errors="replace")
    except OSError:
        answer = ""
    spare.chan.close()
    if not answer.startswith(("PID=", "ERROR=")):
        return "ERROR=the worker exited before it reported its pid"
    return answer


def serve_template(run_worker, *, worker_gc=True):
    """Be the template of a preloaded pool, or the worker itself.

    Without RECYCLERD_TEMPLATE_FD in the environment (spawn = exec, or run
    by hand), calls run_worker() and returns what it returns.

    Under spawn = template: gc.freeze()s what is loaded, sends READY=1,
    then answers each FORK request of the daemon with a double fork, done
    ahead of the request (a spare worker waits, forked, for its slot); in
    each worker (session, cgroup, RECYCLERD_WORKER, RECYCLERD_GENERATION
    and LISTEN_PID set) calls run_worker() and exits with its return value
    (None is 0; an exception is printed and is 1; atexit handlers do not
    run in workers). Returns 0 in the template when the daemon closes its
    end (the template is retired, or the daemon is gone).

    worker_gc=True re-enables the garbage collector in each worker (for a
    template that ran gc.disable() while loading). Raises TemplateError if
    the descriptor is not a usable socket or READY=1 cannot be sent."""
    text = os.environ.pop("RECYCLERD_TEMPLATE_FD", None)
    if text is None:
        return run_worker()
    global _listen
    if _listen is None:
        _listen = _take_listen_env()
    try:
        fd = int(text)
        if fd < 0:
            raise ValueError
        sock = socket.socket(fileno=fd)
    except (ValueError, OSError) as e:
        raise TemplateError(f"RECYCLERD_TEMPLATE_FD={text!r}: not a socket "
                            f"descriptor ({e})")
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
        sock.detach()
        raise TemplateError(f"RECYCLERD_TEMPLATE_FD={text}: not an AF_UNIX "
                            "SOCK_SEQPACKET socket")
    sock.set_inheritable(False)
    # Everything loaded so far goes to the permanent generation: no
    # collection in a worker writes to those objects' headers, so their
    # pages stay shared with the template (Python's own advice for fork).
    gc.collect()
    gc.freeze()
    fd_space = socket.CMSG_SPACE(MAX_FDS * 4)
    spare = None
    try:
        with sock:
            try:
                spare = _make_spare(sock, run_worker, worker_gc)
            except OSError:
                pass                # forked on demand, or ERROR=fork
            try:
                notify("READY=1", "STATUS=template: waiting for FORK "
                       "requests")
            except OSError as e:
                raise TemplateError("cannot send READY=1 to NOTIFY_SOCKET: "
                                    f"{e}")
            while True:
                if spare is None:
                    # Between requests: the next one costs no fork.
                    try:
                        spare = _make_spare(sock, run_worker, worker_gc)
                    except OSError:
                        pass        # forked on demand, or ERROR=fork
                try:
                    data, anc, flags, _ = sock.recvmsg(MAX_REQUEST,
                                                       fd_space)
                except InterruptedError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    return 0
                fds = _received_fds(anc)
                if not data and not fds:
                    return 0            # the daemon closed its end
                try:
                    answer, spare = _serve_one(sock, data, flags, fds, spare,
                                               run_worker, worker_gc)
                finally:
                    _close_all(fds)
                try:
                    _reply(sock, answer)
                except (BrokenPipeError, ConnectionResetError):
                    return 0
    finally:
        if spare is not None:
            spare.discard()


def _serve_one(sock, data, flags, fds, spare, run_worker, worker_gc):
    """One request -> (the answer, the spare left: None once used)."""
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        return (f"ERROR=request longer than {MAX_REQUEST} bytes or with "
                f"more than {MAX_FDS} descriptors", spare)
    if len(fds) > 1:
        return ("ERROR=more than one descriptor (expected a cgroup "
                "directory)", spare)
    try:
        slot, generation = _parse_fork(data)
    except ValueError as e:
        return f"ERROR=bad request: {e}", spare
    # Twice at most: a spare killed while it waited (the OOM killer, a
    # stray signal) is replaced by a fresh one, not reported.
    for _ in range(2):
        if spare is None:
            try:
                spare = _make_spare(sock, run_worker, worker_gc)
            except OSError as e:
                return f"ERROR=fork: {e.strerror}", None
        answer = _fork_worker(spare, fds[0] if fds else None, slot,
                              generation)
        spare = None
        if answer is not None:
            return answer, None
    return "ERROR=the forked worker was gone, twice", None
