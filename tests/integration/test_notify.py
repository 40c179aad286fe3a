# SPDX-License-Identifier: MIT
"""The notify protocol: messages from workers are acted on, messages from
any other process are dropped, and the daemon itself speaks sd_notify to
its own service manager (READY=1, STATUS=, RELOADING=1)."""

import os
import socket

from recyclerd import py_worker, read_environ, stays, wait_for


def _notify_address(pid):
    addr = read_environ(pid)["NOTIFY_SOCKET"]
    return "\0" + addr[1:] if addr.startswith("@") else addr


def test_notify_from_a_foreign_process_is_dropped(recyclerd):
    recyclerd.write_config(command=py_worker("--leak", "0"))
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1\nRECYCLE=1", _notify_address(pid))
        s.sendto(b"STOPPING=1", _notify_address(pid))
    recyclerd.wait_log(rf"notify: dropped message from pid {os.getpid()}: "
                       r"not a worker")
    stays(lambda: recyclerd.workers() == {0: pid}, 1.0,
          what=f"worker {pid} not recycled by a foreign RECYCLE=1")
    assert not recyclerd.log_has(r"recycling")


def test_worker_messages_are_accepted(recyclerd):
    # TASKS= drives max_tasks; STATUS= goes along in the same datagrams.
    recyclerd.write_config(command=py_worker("--leak", "0", "--interval",
                                             "0.05", "--status"),
                           max_tasks=5, jitter="0")
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    recyclerd.wait_log(rf"\[pid {pid}\]: recycling \(tasks\): tasks \d+ "
                       r">= 5\b")
    assert not recyclerd.log_has(r"notify: dropped")


def test_daemon_tells_its_service_manager_ready_and_status(recyclerd):
    recyclerd.write_config(workers=2)
    recyclerd.start()
    assert recyclerd.notified("READY=1")
    wait_for(lambda: recyclerd.notify_lines("STATUS="), 5,
             what="a STATUS= message from the daemon")


def test_daemon_sends_reloading_then_ready_on_reload(recyclerd):
    recyclerd.write_config(workers=1)
    recyclerd.start()
    recyclerd.wait_ready_workers(1)
    recyclerd.reload()
    reloading = wait_for(lambda: recyclerd.notify_lines("RELOADING=1"), 5,
                         what="RELOADING=1 from the daemon")
    first = reloading[0][0]
    wait_for(lambda: [i for i, _ in recyclerd.notify_lines("READY=1")
                      if i > first], 5,
             what="READY=1 after RELOADING=1")
