# SPDX-License-Identifier: MIT
"""Signals to the daemon: SIGTERM (and SIGINT) drain and exit 0, a second
SIGTERM kills at once, shutdown_timeout bounds the shutdown, and SIGKILL of
the daemon leaves no worker or grandchild behind."""

import signal
import time

from recyclerd import (SLOW, descendants, pid_alive, py_worker, stays,
                       wait_for)


def test_sigterm_drains_all_workers_and_exits_zero(recyclerd):
    recyclerd.write_config(workers=3)
    recyclerd.start()
    pids = list(recyclerd.wait_ready_workers(3).values())
    assert recyclerd.stop(10) == 0
    assert not any(pid_alive(p) for p in pids)
    for pid in pids:
        assert recyclerd.log_has(rf"\[pid {pid}\]: exited with status 0 "
                                 r"\(reason shutdown")


def test_sigint_shuts_down_like_sigterm(recyclerd):
    recyclerd.write_config(workers=2)
    recyclerd.start()
    pids = list(recyclerd.wait_ready_workers(2).values())
    assert recyclerd.stop(10, sig=signal.SIGINT) == 0
    assert not any(pid_alive(p) for p in pids)


def test_second_sigterm_kills_workers_at_once(recyclerd):
    recyclerd.write_config(workers=2, command=py_worker(
        "--leak", "0", "--ignore-term", "--children", "1"),
        drain_timeout="30s", shutdown_timeout="60s")
    recyclerd.start()
    pids = list(recyclerd.wait_ready_workers(2).values())
    tree = pids + [k for p in pids for k in descendants(p)]
    recyclerd.send_signal(signal.SIGTERM)
    # The first SIGTERM drains: the workers ignore it, so all stays up.
    stays(lambda: recyclerd.running() and all(pid_alive(p) for p in pids),
          0.5, what="daemon and workers up while draining")
    t0 = time.monotonic()
    recyclerd.send_signal(signal.SIGTERM)
    recyclerd.wait_exit(5)
    assert time.monotonic() - t0 < 3 * SLOW
    wait_for(lambda: not any(pid_alive(p) for p in tree), 2,
             what=f"workers and children {tree} killed")


def test_shutdown_timeout_bounds_the_shutdown(recyclerd):
    recyclerd.write_config(workers=2, command=py_worker(
        "--leak", "0", "--ignore-term"),
        drain_timeout="30s", shutdown_timeout="1s")
    recyclerd.start()
    pids = list(recyclerd.wait_ready_workers(2).values())
    t0 = time.monotonic()
    assert recyclerd.stop(10) == 0
    assert time.monotonic() - t0 < 4 * SLOW
    assert not any(pid_alive(p) for p in pids)


def test_sigkill_of_the_daemon_leaves_no_process_behind(recyclerd):
    # Workers that ignore SIGTERM, each with two children that do too:
    # only the daemon's own guarantees can stop them.
    recyclerd.write_config(workers=2, command=py_worker(
        "--leak", "0", "--ignore-term", "--children", "2",
        "--child-mem", "1M"))
    recyclerd.start()
    pids = list(recyclerd.wait_ready_workers(2).values())
    wait_for(lambda: all(len(descendants(p)) == 2 for p in pids), 5,
             what="2 children per worker")
    assert len(recyclerd.marked_processes()) >= 6
    recyclerd.send_signal(signal.SIGKILL)
    assert recyclerd.wait_exit(5) == -signal.SIGKILL
    wait_for(lambda: not recyclerd.marked_processes(), 5,
             what="no process of the test left after SIGKILL of the daemon")
