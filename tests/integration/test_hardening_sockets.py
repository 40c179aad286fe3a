# SPDX-License-Identifier: MIT
"""Hardening of the daemon's sockets and files against local users (see
docs/security.md): a worker's user cannot make the daemon chmod/chown
through a link, two daemons sharing a socket directory keep their own
notify sockets, each pool user's notify socket is reachable by that
user only and datagrams from another uid are dropped before any /proc
work, and a configuration another user could change is refused."""

import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess

import recyclerd as rd
from recyclerd import c_worker, read_environ, run_recyclerd, \
    wait_for

NOBODY = pwd.getpwnam("nobody")


def as_nobody(fn):
    """Run fn() in a forked child whose uid and gid are nobody's; waits and
    asserts it exited 0."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            fn()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child as nobody failed"


def _notify_address(pid):
    addr = read_environ(pid)["NOTIFY_SOCKET"]
    return "\0" + addr[1:] if addr.startswith("@") else addr


def test_link_swapped_for_a_unix_socket_is_never_followed(recyclerd):
    # The documented /run/php setup: the socket's directory is the
    # worker's user's. That user swaps the socket for a link to a root
    # file and waits for a reload.
    os.chmod(recyclerd.dir, 0o711)
    run = recyclerd.dir / "run"
    run.mkdir()
    os.chown(run, NOBODY.pw_uid, NOBODY.pw_gid)
    sock = run / "app.sock"
    victim = recyclerd.dir / "victim"
    victim.write_text("root's secret\n")
    os.chmod(victim, 0o600)
    recyclerd.write_config(listen=f"unix:{sock},mode=0666,owner=nobody")
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == NOBODY.pw_uid

    def swap():
        os.unlink(sock)
        os.symlink(victim, sock)
    as_nobody(swap)
    recyclerd.reload()
    recyclerd.wait_log(rf"listen unix:{sock}.*: {sock} is no longer the "
                       r"socket file recyclerd created \(replaced by a "
                       r"symbolic link, never followed\)")
    st = os.stat(victim)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert recyclerd.running()
    assert recyclerd.workers() == {0: pid}


def test_two_daemons_with_control_sockets_in_one_directory(recyclerd):
    # Both daemons put their control socket in a's directory. Each must
    # keep its own notify socket while the other starts and stops: a's
    # replacement workers must still become ready.
    a = recyclerd
    a.write_config(workers=1, ready_timeout="5s")
    a.start()
    b = rd.Recyclerd(name="rd-b")
    try:
        b.write_config(main={"control_socket": str(a.dir / "b.sock")},
                       workers=1, ready_timeout="5s")
        b.start()
        [bpid] = b.wait_ready_workers(1).values()
        [apid] = a.wait_ready_workers(1).values()
        assert _notify_address(apid) != _notify_address(bpid)
        os.kill(apid, signal.SIGKILL)
        apid = a.wait_replaced(apid)
        a.wait_ready_workers(1)
        b.stop()
        os.kill(apid, signal.SIGKILL)
        apid = a.wait_replaced(apid)
        a.wait_ready_workers(1)
        assert os.path.exists(_notify_address(apid))
        assert not a.log_has(r"ready_timeout|not a worker")
    finally:
        problems = b.cleanup()
    assert not problems, problems


def _status(d):
    r = subprocess.run([rd.RECYCLERCTL_BIN, "-s", str(d.control_path),
                        "--json", "status"], capture_output=True,
                       text=True, timeout=20 * rd.SLOW)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _metric(d, name):
    r = subprocess.run([rd.RECYCLERCTL_BIN, "-s", str(d.control_path),
                        "metrics"], capture_output=True, text=True,
                       timeout=20 * rd.SLOW)
    assert r.returncode == 0, r.stderr
    m = re.search(rf"^{name} (\S+)$", r.stdout, re.M)
    assert m, f"no {name} in the metrics"
    return float(m.group(1))


def test_notify_sockets_only_reachable_by_the_pools_users(recyclerd):
    # The root pool's socket is root's, mode 0600: another local user
    # cannot even send to it, so cannot fill its queue. The nobody pool
    # gets its own socket, nobody's, mode 0600, and its workers report
    # through it. The workers speak sd_notify through libsystemd.
    os.chmod(recyclerd.dir, 0o711)
    recyclerd.write_config(pools={
        "web": {"command": c_worker("--leak", "0"), "ready_timeout": "5s"},
        "app": {"command": c_worker("--leak", "0"), "ready_timeout": "5s",
                "user": "nobody", "directory": "/"},
    })
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    [apid] = recyclerd.wait_ready_workers(1, pool="app").values()
    addr = _notify_address(pid)
    aaddr = _notify_address(apid)
    assert addr != aaddr
    st = os.lstat(addr)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    st = os.lstat(aaddr)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == NOBODY.pw_uid

    def send_to_root():
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(b"READY=1\nRECYCLE=1", addr)
            except PermissionError:
                return
            raise AssertionError("nobody could send to root's socket")
    as_nobody(send_to_root)

    def send_to_own():
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"STATUS=hello", aaddr)
    as_nobody(send_to_own)
    recyclerd.wait_log(r"notify: dropped message from pid \d+: not a "
                       r"worker")
    os.kill(pid, signal.SIGKILL)
    recyclerd.wait_replaced(pid)
    recyclerd.wait_ready_workers(1)
    os.kill(apid, signal.SIGKILL)
    recyclerd.wait_replaced(apid, pool="app")
    recyclerd.wait_ready_workers(1, pool="app")
    assert not recyclerd.log_has(r"recycling|ready_timeout")

    # No pool runs as nobody any more: its socket goes, root's stays.
    recyclerd.write_config(pools={
        "web": {"command": c_worker("--leak", "0"), "ready_timeout": "5s"},
    })
    recyclerd.reload()
    wait_for(lambda: not os.path.lexists(aaddr),
             what="nobody's notify socket removed")
    assert os.path.exists(addr)


def test_notify_datagram_from_another_uid_is_dropped_early(recyclerd):
    # A socket connected by the pool's user keeps working after a setuid:
    # the kernel stamps the sender's uid now, and the daemon drops it
    # before the /proc walk that looks for the sender's worker ("not a
    # worker" is that walk's verdict), counting it in status and metrics.
    os.chmod(recyclerd.dir, 0o711)
    recyclerd.write_config(command=c_worker("--leak", "0"),
                           ready_timeout="5s", user="nobody", directory="/")
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    addr = _notify_address(pid)
    other = pwd.getpwnam("daemon")
    assert _status(recyclerd)["notify_dropped"] == 0

    child = os.fork()
    if child == 0:
        code = 1
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.connect(addr)
            os.setgroups([])
            os.setgid(other.pw_gid)
            os.setuid(other.pw_uid)
            for _ in range(100):
                s.send(b"READY=1\nRECYCLE=1")
            code = 0
        finally:
            os._exit(code)
    _, st = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(st) == 0
    recyclerd.wait_log(r"notify: dropped \d+ datagrams? from users other "
                       rf"than the socket's \(last: uid {other.pw_uid}, "
                       r"pid \d+\)")
    wait_for(lambda: _status(recyclerd)["notify_dropped"] == 100,
             what="100 dropped datagrams in status")
    assert _metric(recyclerd, "recyclerd_notify_dropped_total") == 100
    r = subprocess.run([rd.RECYCLERCTL_BIN, "-s", str(recyclerd.control_path),
                        "status"], capture_output=True, text=True,
                       timeout=20 * rd.SLOW)
    assert "notify: 100 datagrams dropped (sender neither root nor the " \
        "socket's user)" in r.stdout, r.stdout
    assert not recyclerd.log_has(r"not a worker")
    assert not recyclerd.log_has(r"recycling")
    assert recyclerd.workers() == {0: pid}


def test_configuration_writable_by_others_is_refused(recyclerd):
    conf = recyclerd.write_config()
    pool = recyclerd.write_pool_file("extra")
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr     # mkdtemp's 0700, files 0644

    os.chmod(conf, 0o666)
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode != 0
    assert (f"{conf}: writable by its group and others (mode 0666): "
            "refusing a configuration another user could change") in r.stderr
    os.chmod(conf, 0o644)

    os.chown(pool, NOBODY.pw_uid, -1)
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode != 0
    assert f"{pool}: owned by uid {NOBODY.pw_uid}" in r.stderr
    os.chown(pool, 0, -1)

    os.chmod(recyclerd.pools_dir, 0o777)
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode != 0
    assert f"{recyclerd.pools_dir}: writable by its group and others" \
        in r.stderr
    os.chmod(recyclerd.pools_dir, 0o755)

    os.chmod(recyclerd.dir, 0o757)
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode != 0
    assert f"{recyclerd.dir}: writable by others" in r.stderr
    os.chmod(recyclerd.dir, 0o700)
