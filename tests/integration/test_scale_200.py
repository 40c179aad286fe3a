# SPDX-License-Identifier: MIT
"""200 workers of the C example: all start, all are sampled (each one
crosses recycle_memory once and is recycled for it), the daemon stays
responsive to reload and shutdown, and starting that many never makes a
worker that sent READY=1 at once look like it missed ready_timeout."""

import re
import time

import pytest

from recyclerd import CWORKER, SLOW, c_worker, pid_alive, wait_for

N = 200
LEAK_AFTER_MS = int(15000 * SLOW)

pytestmark = pytest.mark.skipif(not CWORKER.exists(),
                                reason=f"no C worker at {CWORKER} "
                                "(built by make check)")


def test_200_workers_all_start_and_are_all_sampled(recyclerd):
    # Each worker leaks 2M once, LEAK_AFTER_MS after it sent READY=1: that
    # crosses recycle_memory, so a `recycling (memory)` line per slot proves
    # every worker is sampled. The leak must come after the daemon took
    # the READY=1 of all 200 (it spawns them one after the other, which
    # takes seconds): a worker over the threshold at its first sample is
    # a baseline error, not a recycle.
    recyclerd.write_config(pools={"big": {
        "workers": N,
        "command": c_worker("--leak", "2M", "--interval", LEAK_AFTER_MS),
        "memory_metric": "pss",
        "recycle_memory": "2M",
        "sample_interval": "100ms",
        "max_recycling": 50,
        "drain_timeout": "2s",
        "shutdown_timeout": "10s",
    }})
    recyclerd.start(timeout=60)
    first = wait_for(lambda: (sorted(recyclerd.workers("big")) ==
                              list(range(N)) and recyclerd.workers("big")),
                     30, what=f"{N} live workers in slots 0..{N - 1}")
    assert len(set(first.values())) == N

    def sampled():
        return {int(m[1]) for m in recyclerd.log_all(
            r"pool big worker (\d+) \[pid \d+\]: recycling \(memory\)")}
    wait_for(lambda: len(sampled()) == N, 60,
             what=lambda: f"all {N} slots recycled for memory "
             f"(missing {sorted(set(range(N)) - sampled())[:20]})")

    # Still responsive: a reload is taken at once...
    t0 = time.monotonic()
    recyclerd.reload()
    assert time.monotonic() - t0 < 5 * SLOW
    # ...and SIGTERM stops all of them within a few seconds.
    pids = recyclerd.worker_pids("big")
    assert len(pids) >= N
    t0 = time.monotonic()
    assert recyclerd.stop(20) == 0
    assert time.monotonic() - t0 < 10 * SLOW
    assert not [p for p in pids if pid_alive(p)]
    assert not re.search(r"\berr\b", "\n".join(
        line[:32] for line in recyclerd.log_lines()))


def test_200_workers_sending_ready_at_once_are_not_killed_by_ready_timeout(
        recyclerd):
    # Each worker sends READY=1 as soon as it runs. However long the daemon
    # takes to start all of them, none has gone ready_timeout without
    # READY=1, so none may be killed for it.
    recyclerd.write_config(pools={"big": {
        "workers": N,
        "command": c_worker("--leak", "0", "--interval", "60000"),
        "ready_timeout": "3s",
        "rapid_fail": "0",
    }})
    def killed():
        return [m[0] for m in recyclerd.log_all(
            r"^.*\]: no READY=1 within ready_timeout.*$")]

    recyclerd.start(wait_ready=False)
    wait_for(lambda: killed() or recyclerd.log_count(r"\]: ready after ")
             >= N, 60, what=f"{N} workers ready")
    assert not killed(), (f"{len(killed())} workers killed for no READY=1; "
                          f"first: {killed()[0]}")
    recyclerd.wait_ready_workers(N, "big", 30)
