# SPDX-License-Identifier: MIT
"""Reload on SIGHUP: a good file is applied by difference (new pools start,
removed pools drain, changed pools recycle one by one, unchanged pools are
left alone); a bad file is refused and the running configuration kept."""

import json
import re
import socket

from recyclerd import pid_alive, py_worker, stays, wait_for


def test_reload_starts_a_new_pool_and_more_workers(recyclerd):
    recyclerd.write_config(pools={"web": {"workers": 1}})
    recyclerd.start()
    recyclerd.wait_ready_workers(1)
    recyclerd.write_config(pools={"web": {"workers": 3},
                                  "api": {"workers": 2}})
    recyclerd.reload()
    web = recyclerd.wait_ready_workers(3, "web")
    api = recyclerd.wait_ready_workers(2, "api")
    assert sorted(web) == [0, 1, 2]
    assert sorted(api) == [0, 1]
    recyclerd.wait_workers(3, "web")
    recyclerd.wait_workers(2, "api")


def test_reload_removing_a_pool_drains_its_workers_only(recyclerd):
    recyclerd.write_config(pools={"web": {"workers": 1},
                                  "api": {"workers": 2}})
    recyclerd.start()
    [web] = recyclerd.wait_ready_workers(1, "web").values()
    api = list(recyclerd.wait_ready_workers(2, "api").values())
    recyclerd.write_config(pools={"web": {"workers": 1}})
    recyclerd.reload()
    recyclerd.wait_workers(0, "api")
    for pid in api:
        recyclerd.wait_log(rf"pool api worker \d \[pid {pid}\]: "
                           r"exited with status 0 \(reason (reload|scale)")
    # The unchanged pool is left alone.
    assert recyclerd.workers("web") == {0: web}
    assert not recyclerd.log_has(r"pool web worker .*recycling")


def test_reload_shrinking_a_pool_drains_the_extra_workers(recyclerd):
    recyclerd.write_config(workers=3)
    recyclerd.start()
    before = recyclerd.wait_ready_workers(3)
    recyclerd.write_config(workers=1)
    recyclerd.reload()
    after = recyclerd.wait_workers(1)
    assert list(after) == [0]
    # A process in the middle of exiting may already be uncountable (its
    # environ unreadable) yet not gone: give the drain its moment.
    for slot in (1, 2):
        wait_for(lambda: not pid_alive(before[slot]), 5,
                 what=f"drained worker of slot {slot} gone")


def test_reload_of_a_changed_command_recycles_workers_one_by_one(recyclerd):
    recyclerd.write_config(workers=2, command=py_worker("--leak", "0"))
    recyclerd.start()
    before = recyclerd.wait_ready_workers(2)
    recyclerd.write_config(workers=2, command=py_worker(
        "--leak", "0", "--interval", "0.2"))
    recyclerd.reload()
    for slot, old in before.items():
        recyclerd.wait_log(rf"pool web worker {slot} \[pid {old}\]: "
                           r"recycling \(reload\)")
        recyclerd.wait_replaced(old, slot)
    after = recyclerd.wait_ready_workers(2)
    assert not set(after.values()) & set(before.values())
    # One by one: never two drains at once (max_recycling = 1).
    draining = set()
    for line in recyclerd.log_lines():
        m = re.search(r"\[pid (\d+)\]: .*draining with SIG", line)
        if m:
            draining.add(m[1])
            assert len(draining) <= 1, f"two drains at once: {draining}"
        m = re.search(r"\[pid (\d+)\]: (exited with|killed by)", line)
        if m:
            draining.discard(m[1])


def test_reload_with_a_bad_file_keeps_the_running_workers(recyclerd):
    recyclerd.write_config(workers=2)
    recyclerd.start()
    before = recyclerd.wait_ready_workers(2)
    conf = recyclerd.write_config(workers=5, raw="recycle_memmory = 10M")
    line = len(conf.read_text().splitlines())
    recyclerd.reload()
    recyclerd.wait_log(r"reload failed, keeping the running configuration")
    lines = recyclerd.log_lines()
    bad, _ = recyclerd.line_index(rf"{re.escape(str(conf))}:{line}:.*"
                                  r"recycle_memmory", lines)
    failed, _ = recyclerd.line_index(r"reload failed", lines)
    assert bad is not None, f"no diagnostic naming {conf}:{line}"
    assert bad < failed
    stays(lambda: recyclerd.workers() == before, 1.0,
          what=f"workers {before} kept after a bad reload")
    # The daemon still takes a good file afterwards.
    recyclerd.write_config(workers=3)
    recyclerd.reload()
    recyclerd.wait_ready_workers(3)
    assert recyclerd.log_count(r"reload failed") == 1


def test_reload_picks_up_pool_files_added_and_removed_in_pools_dir(
        recyclerd):
    recyclerd.write_config(workers=1)
    recyclerd.start()
    recyclerd.wait_ready_workers(1)
    path = recyclerd.write_pool_file("extra", workers=2)
    recyclerd.reload()
    extra = recyclerd.wait_ready_workers(2, "extra")
    path.unlink()
    recyclerd.reload()
    recyclerd.wait_workers(0, "extra")
    wait_for(lambda: not any(pid_alive(p) for p in extra.values()), 5)
    recyclerd.wait_workers(1, "web")


def test_reload_recycles_only_for_keys_that_change_how_workers_start(
        recyclerd):
    """The option table decides: new limits and timeouts keep the running
    workers; no_new_privs changes how they start, so they are recycled and
    the log names the key."""
    recyclerd.write_config(workers=2)
    recyclerd.start()
    before = recyclerd.wait_ready_workers(2)
    limits = {"workers": 2, "recycle_memory": "900M", "max_tasks": 100000,
              "drain_timeout": "3s", "max_overshoot": "50%",
              "sample_interval": "60ms", "rapid_fail": "4/30s"}
    recyclerd.write_config(**limits)
    recyclerd.reload()
    wait_for(lambda: recyclerd.log_count(r"reloaded ") >= 1,
             what="a `reloaded` log line")
    stays(lambda: recyclerd.workers() == before, 1.0,
          what="the workers keep their process")
    assert not recyclerd.log_has(r"configuration changed")
    recyclerd.write_config(no_new_privs="yes", **limits)
    recyclerd.reload()
    recyclerd.wait_log(r"pool web: configuration changed \(no_new_privs\): "
                       r"recycling its workers")
    for slot, old in before.items():
        recyclerd.wait_replaced(old, slot)


def test_scale_survives_a_reload_that_keeps_workers(recyclerd):
    def ask(line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(recyclerd.control_path))
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                assert chunk
                buf += chunk
        return json.loads(buf)

    recyclerd.write_config(pools={"web": {"workers": 1},
                                  "api": {"workers": 1}})
    recyclerd.start()
    recyclerd.wait_ready_workers(1)
    assert ask("scale web 3")["ok"]
    recyclerd.wait_ready_workers(3)
    # Another pool changes, web's `workers` does not: the scale holds.
    recyclerd.write_config(pools={"web": {"workers": 1},
                                  "api": {"workers": 2}})
    recyclerd.reload()
    recyclerd.wait_ready_workers(2, "api")
    stays(lambda: len(recyclerd.workers()) == 3, 1.5, what="3 workers")
    [web] = [p for p in ask("status")["pools"] if p["name"] == "web"]
    assert web["desired"] == 3
    # Its own `workers` changes: the file wins again.
    recyclerd.write_config(pools={"web": {"workers": 2},
                                  "api": {"workers": 2}})
    recyclerd.reload()
    recyclerd.wait_workers(2)
