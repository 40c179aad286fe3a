# SPDX-License-Identifier: MIT
"""Hardening of the daemon's sockets and files against local users (see
docs/security.md): a worker's user cannot make the daemon chmod/chown
through a link, two daemons sharing a socket directory keep their own
notify sockets, a notify flood from another user is dropped before any
/proc work, and a configuration another user could change is refused."""

import os
import pwd
import signal
import socket
import stat

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


def test_notify_flood_from_another_user_is_dropped_early(recyclerd):
    # The pool runs as root (no user=): nobody runs no pool, so nobody's
    # datagrams are dropped by uid before the /proc walk that looks for
    # the sender's worker ("not a worker" is that walk's verdict). The
    # worker speaks sd_notify through libsystemd.
    os.chmod(recyclerd.dir, 0o711)
    recyclerd.write_config(command=c_worker("--leak", "0"),
                           ready_timeout="5s")
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    addr = _notify_address(pid)

    def flood():
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            for _ in range(2000):
                try:
                    s.sendto(b"READY=1\nRECYCLE=1", addr)
                except BlockingIOError:
                    pass
    as_nobody(flood)
    recyclerd.wait_log(r"notify: dropped \d+ datagrams? from users that run "
                       rf"no pool \(last: uid {NOBODY.pw_uid}, pid \d+\)")
    assert not recyclerd.log_has(r"not a worker")
    assert not recyclerd.log_has(r"recycling")
    os.kill(pid, signal.SIGKILL)
    recyclerd.wait_replaced(pid)
    recyclerd.wait_ready_workers(1)


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
