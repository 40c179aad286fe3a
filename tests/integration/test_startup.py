# SPDX-License-Identifier: MIT
"""Start-up: command line, configuration check, readiness, what a worker
gets in its environment, and worker output in the log."""

import re

from recyclerd import (MARKER, py_worker, read_environ, run_recyclerd,
                       stays, wait_for)


def test_version_prints_the_version():
    r = run_recyclerd("--version")
    assert r.returncode == 0, r.stderr
    assert re.search(r"recyclerd\b.*\d+\.\d+\.\d+", r.stdout + r.stderr)


def test_help_prints_usage_and_exits_zero():
    r = run_recyclerd("--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"usage", out, re.I)
    assert "-c" in out and "-t" in out


def test_unknown_option_is_an_error():
    r = run_recyclerd("--no-such-option")
    assert r.returncode != 0
    assert r.stderr.strip()


def test_check_mode_accepts_a_good_file(recyclerd):
    conf = recyclerd.write_config(workers=2, recycle_memory="100M")
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_mode_rejects_a_bad_file_naming_file_and_line(recyclerd):
    # The bad key is the last line of the file: its number is known.
    conf = recyclerd.write_config(raw="recycle_memmory = 100M")
    line = len(conf.read_text().splitlines())
    r = run_recyclerd("-t", "-c", str(conf))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"{conf}:{line}" in out, out
    assert "recycle_memmory" in out


def test_check_mode_rejects_a_bad_value(recyclerd):
    conf = recyclerd.write_config(recycle_memory="lots")
    r = run_recyclerd("-t", "-c", str(conf))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(rf"{re.escape(str(conf))}:\d+", out), out
    assert "recycle_memory" in out


def test_check_mode_does_not_start_workers(recyclerd):
    conf = recyclerd.write_config(workers=2)
    r = run_recyclerd("-t", "-c", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert recyclerd.marked_processes() == []


def test_missing_config_file_is_an_error(recyclerd):
    r = run_recyclerd("-t", "-c", str(recyclerd.dir / "nope.conf"))
    assert r.returncode != 0
    assert "nope.conf" in r.stdout + r.stderr


def test_daemon_sends_ready_once_all_workers_are_up(recyclerd):
    recyclerd.write_config(workers=3)
    recyclerd.start()
    workers = recyclerd.wait_ready_workers(3)
    assert sorted(workers) == [0, 1, 2]
    assert len(set(workers.values())) == 3
    assert recyclerd.log_count(r"pool web worker \d \[pid \d+\]: spawned") \
        == 3


def test_worker_gets_pool_slot_notify_socket_and_environment(recyclerd):
    recyclerd.write_config(workers=2, environment=(
        f"{MARKER}={recyclerd.test_id} GREETING=hello"))
    recyclerd.start()
    workers = recyclerd.wait_ready_workers(2)
    for slot, pid in workers.items():
        env = read_environ(pid)
        assert env["RECYCLERD_POOL"] == "web"
        assert env["RECYCLERD_WORKER"] == str(slot)
        assert env["GREETING"] == "hello"
        assert env[MARKER] == recyclerd.test_id
        # The daemon's own socket, not the one the harness gave it.
        assert env["NOTIFY_SOCKET"]
        assert env["NOTIFY_SOCKET"] != str(recyclerd.notify_path)


def test_worker_stdout_and_stderr_are_logged_with_pool_and_slot(recyclerd):
    recyclerd.write_config(command=py_worker("--leak", "0", "--interval",
                                             "0.05", "--crash-after", "1"),
                           restart_backoff="5s")
    recyclerd.start(wait_ready=False)
    m = recyclerd.wait_log(r"pool web worker 0 \[pid (\d+)\]: stdout: "
                           r"leaky_worker: pid (\d+) pool web slot 0$")
    assert m[1] == m[2]
    recyclerd.wait_log(rf"pool web worker 0 \[pid {m[1]}\]: stderr: "
                       r"leaky_worker: pid \d+ exiting with status 3")


def test_ready_notify_waits_for_ready_message(recyclerd):
    recyclerd.write_config(command=py_worker("--leak", "0",
                                             "--ready-delay", "0.6"))
    recyclerd.start()
    m = recyclerd.wait_log(r"pool web worker 0 \[pid \d+\]: "
                           r"ready after (\d+\.\d+)s")
    assert float(m[1]) >= 0.55


def test_ready_spawn_is_ready_without_a_message(recyclerd):
    recyclerd.write_config(ready="spawn", ready_timeout="500ms",
                           command=py_worker("--leak", "0", "--no-ready"))
    recyclerd.start()
    [pid] = recyclerd.wait_ready_workers(1).values()
    # Not mistaken for a worker that never became ready.
    stays(lambda: recyclerd.worker_pids() == [pid], 1.0,
          what=f"worker {pid} kept past ready_timeout")
    assert not recyclerd.log_has(r"ready_timeout")


def test_worker_that_never_sends_ready_is_killed_at_ready_timeout(recyclerd):
    recyclerd.write_config(ready="notify", ready_timeout="500ms",
                           command=py_worker("--leak", "0", "--no-ready"),
                           rapid_fail="0")
    recyclerd.start(wait_ready=False)
    [first] = recyclerd.wait_workers(1).values()
    wait_for(lambda: first not in recyclerd.worker_pids(), 10,
             what=f"worker {first} killed at ready_timeout")
    recyclerd.wait_log(rf"\[pid {first}\]: .*ready_timeout")
    # It is started again (a failed start, with backoff).
    wait_for(lambda: [p for p in recyclerd.worker_pids() if p != first], 10,
             what="a new worker after the failed start")


def test_daemon_without_pools_starts_and_stops(recyclerd):
    recyclerd.write_config(pools={})
    recyclerd.start()
    assert recyclerd.stop() == 0
