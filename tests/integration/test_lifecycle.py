# SPDX-License-Identifier: MIT
"""Crashes and their handling: exponential restart backoff, its reset
after min_uptime, rapid_fail putting a pool into `failed`, and a recycle
threshold below the program's baseline reported instead of looping."""

import os
import re
import signal

from recyclerd import line_time, parse_duration, py_worker, stays, wait_for

RESTARTING = (r"pool web worker 0 \[pid (\d+)\]: crashed: exited with "
              r"status {status} after (\S+); restarting in (\S+)$")


def _delays(recyclerd, status, n):
    ms = recyclerd.log_all(RESTARTING.format(status=status))
    return [parse_duration(m[3]) for m in ms[:n]]


def test_crash_backoff_doubles_from_restart_backoff(recyclerd):
    recyclerd.write_config(command=py_worker("--exit-code", "1"),
                           restart_backoff="100ms", rapid_fail="0")
    recyclerd.start(wait_ready=False)
    recyclerd.wait_log(RESTARTING.format(status=1), 15, count=4)
    delays = _delays(recyclerd, 1, 4)
    assert abs(delays[0] - 0.1) < 1e-6, delays
    for a, b in zip(delays, delays[1:]):
        assert abs(b - 2 * a) < 1e-6, f"backoff does not double: {delays}"


def test_restart_waits_for_the_backoff(recyclerd):
    recyclerd.write_config(command=py_worker("--exit-code", "1"),
                           restart_backoff="400ms", rapid_fail="0")
    recyclerd.start(wait_ready=False)
    recyclerd.wait_log(r"\]: spawned$", count=2)
    lines = recyclerd.log_lines()
    _, crash = recyclerd.line_index(r"crashed: exited with status 1", lines)
    spawns = [line for line in lines if re.search(r"\]: spawned$", line)]
    assert line_time(spawns[1]) - line_time(crash) >= 0.35


def test_worker_crashing_after_min_uptime_restarts_with_the_first_delay(
        recyclerd):
    # Each worker runs ~0.3s before it exits with status 3, longer than
    # min_uptime: the backoff starts over every time.
    recyclerd.write_config(command=py_worker("--leak", "0", "--interval",
                                             "0.1", "--crash-after", "3"),
                           restart_backoff="100ms", min_uptime="200ms",
                           rapid_fail="0")
    recyclerd.start(wait_ready=False)
    recyclerd.wait_log(RESTARTING.format(status=3), 15, count=3)
    delays = _delays(recyclerd, 3, 3)
    assert all(abs(d - 0.1) < 1e-6 for d in delays), delays


def test_worker_killed_by_a_signal_is_restarted(recyclerd):
    recyclerd.write_config(command=py_worker("--leak", "0"),
                           restart_backoff="100ms")
    recyclerd.start()
    [old] = recyclerd.wait_ready_workers(1).values()
    os.kill(old, signal.SIGKILL)
    m = recyclerd.wait_log(rf"pool web worker 0 \[pid {old}\]: crashed: "
                           r"killed by SIGKILL after \S+; restarting in "
                           r"(\S+)$")
    assert abs(parse_duration(m[1]) - 0.1) < 1e-6
    new = recyclerd.wait_replaced(old)
    recyclerd.wait_log(rf"\[pid {new}\]: ready after")


def test_rapid_failures_put_the_pool_in_failed_and_stop_restarts(
        recyclerd):
    recyclerd.write_config(command=py_worker("--exit-code", "1"),
                           restart_backoff="50ms", rapid_fail="3/60s")
    recyclerd.start(wait_ready=False)
    # The window may be written 60s or 1m.
    m = recyclerd.wait_log(r"pool web: failed: (\d+) failures within (\S+) "
                           r"\(rapid_fail 3/(\S+)\); not restarting until "
                           r"started again", 15)
    assert int(m[1]) == 4
    assert parse_duration(m[2]) == parse_duration(m[3]) == 60
    spawned = recyclerd.log_count(r"\]: spawned$")
    assert spawned == 4
    # Nothing is started any more.
    stays(lambda: recyclerd.log_count(r"\]: spawned$") == spawned
          and not recyclerd.worker_pids(), 1.5,
          what="no spawn after the pool failed")
    assert recyclerd.running()


def test_threshold_below_the_baseline_is_reported_not_looped(recyclerd):
    recyclerd.write_config(command=py_worker("--leak", "0", "--baseline",
                                             "30M"),
                           recycle_memory="20M", memory_metric="pss")
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    recyclerd.wait_log(rf"pool web worker 0 \[pid {pid}\]: configuration "
                       r"error: .* right after becoming ready", 5)
    # The daemon keeps checking, but does not recycle in a loop.
    stays(lambda: recyclerd.log_count(r"\]: spawned$") <= 2, 3,
          what="at most 2 spawns for a baseline above the threshold")
    assert not recyclerd.log_has(r"recycling \(memory\)")


def test_worker_exiting_zero_on_its_own_is_restarted(recyclerd):
    # Exit 0 without STOPPING=1 is still an unexpected exit.
    recyclerd.write_config(command=py_worker("--exit-code", "0"),
                           restart_backoff="100ms", rapid_fail="0")
    recyclerd.start(wait_ready=False)
    recyclerd.wait_log(RESTARTING.format(status=0), 10, count=2)
    wait_for(lambda: recyclerd.log_count(r"\]: spawned$") >= 3, 10)
