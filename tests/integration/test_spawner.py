# SPDX-License-Identifier: MIT
"""The spawn server (src/spawner.c): workers are created by a small helper
process with CLONE_PARENT, so they are still the daemon's own children; when
the helper is gone, the daemon forks them itself and nothing is lost."""

import os
import signal

from recyclerd import children_of, proc_status, wait_for


def spawn_server(recyclerd):
    """The daemon's child named recyclerd-spawn, or None."""
    for pid in children_of(recyclerd.pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "recyclerd-spawn":
                    return pid
        except OSError:
            pass
    return None


def ppid(pid):
    return int(proc_status(pid)["PPid"])


def test_workers_are_the_daemons_children(recyclerd):
    recyclerd.write_config(pools={"web": {"workers": 3}})
    recyclerd.start()
    server = spawn_server(recyclerd)
    assert server is not None, "no recyclerd-spawn process"
    recyclerd.wait_ready_workers(3)
    for pid in recyclerd.worker_pids():
        assert ppid(pid) == recyclerd.pid
    # The server keeps only a handful of descriptors, whatever the daemon
    # holds: that is what keeps spawning cheap. (valgrind keeps its own
    # at the top of the range.)
    fds = [int(fd) for fd in os.listdir(f"/proc/{server}/fd")]
    assert len([fd for fd in fds if fd < 1024]) <= 5, fds


def test_spawns_go_on_without_the_server(recyclerd):
    recyclerd.write_config(pools={"web": {"workers": 2}})
    recyclerd.start()
    server = spawn_server(recyclerd)
    assert server is not None
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: spawn_server(recyclerd) is None, 10,
             what="the spawn server reaped")
    old = set(recyclerd.worker_pids())
    for pid in old:
        os.kill(pid, signal.SIGKILL)        # crash them: respawned
    wait_for(lambda: len(set(recyclerd.worker_pids()) - old) >= 2, 20,
             what="two new workers")
    recyclerd.wait_ready_workers(2)
    for pid in recyclerd.worker_pids():
        assert ppid(pid) == recyclerd.pid
    recyclerd.wait_log(r"spawn server \[pid \d+\] .*forking workers from "
                       r"the daemon from now on")


def test_a_clean_stop_takes_its_own_helper_for_no_orphan(recyclerd):
    # At exit the daemon kills whatever children are left as orphans of
    # no known worker; the spawn server is its own, reaped before that.
    recyclerd.write_config(pools={"web": {"workers": 2}})
    recyclerd.start()
    server = spawn_server(recyclerd)
    assert server is not None
    recyclerd.stop()
    assert not recyclerd.log_has(r"killing orphan"), recyclerd.log_text()
    assert not os.path.exists(f"/proc/{server}")
