# SPDX-License-Identifier: MIT
"""Recycling under pressure (issue 11): a recycle place is released when
the replacement is ready; waiting recycles go most urgent first; a worker
that keeps growing while it waits is drained at once past max_overshoot;
prespawn starts the replacement before a steady grower crosses its limit
and recycles it at the crossing, or drains the standby when it never comes;
and a condemned worker is no longer read through smaps_rollup."""

import json
import re
import time

import pytest
import socket

from recyclerd import PYTHON, PY_WORKER, wait_for

MiB = 1 << 20


def ask(d, text):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.control_path))
    s.sendall(text.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf


def status(d):
    return json.loads(ask(d, "status"))["pools"][0]


def metric(d, name):
    text = json.loads(ask(d, "metrics"))["metrics"]
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"no {name} in metrics"
    return float(m.group(1))


def slow_replacements(tmp, fast_args, slow_args):
    """A command whose first process in each slot starts with fast_args and
    every later one (the replacements) with slow_args: a flag file per
    slot tells them apart."""
    flag = f"{tmp}/started.$RECYCLERD_WORKER"
    py = f"{PYTHON} {PY_WORKER}"
    script = tmp / "worker.sh"
    script.write_text(f'if [ -e {flag} ]; then exec {py} {slow_args}; '
                      f'else : > {flag}; exec {py} {fast_args}; fi\n')
    return f"/bin/sh {script}"


def test_a_recycle_place_is_released_when_the_replacement_is_ready(
        recyclerd):
    # Old workers ignore the drain signal for drain_timeout: with the place
    # held until they are reaped, only one would drain at a time.
    recyclerd.write_config(
        workers=3, ready="notify", max_recycling=1, drain_timeout="5s",
        command=f"{PYTHON} {PY_WORKER} --leak 0 --ignore-term")
    recyclerd.start()
    recyclerd.wait_ready_workers(3)
    assert b'"ok":true' in ask(recyclerd, "recycle web all").replace(b" ", b"")
    wait_for(lambda: status(recyclerd)["draining"] == 3, 4,
             what="three old workers draining at once")
    st = status(recyclerd)
    assert st["max_recycling"] == 1 and st["recycling"] <= 1


def test_waiting_recycles_go_most_urgent_first(recyclerd, tmp_path):
    # Three workers of 10M, 30M and 50M (plus the interpreter); every
    # replacement takes 1.5 s to be ready, max_recycling 1. A manual
    # recycle of all three starts the largest first, then the next.
    fast = "--leak 0 --baseline $(( (RECYCLERD_WORKER * 20 + 10) ))M"
    slow = fast + " --ready-delay 1.5"
    recyclerd.write_config(
        workers=3, ready="notify", max_recycling=1, prespawn="no",
        recycle_memory="500M", sample_interval="100ms",
        command=slow_replacements(tmp_path, fast, slow))
    recyclerd.start()
    recyclerd.wait_ready_workers(3)
    wait_for(lambda: all(w["memory"] for w in status(recyclerd)["workers"]),
             5, what="every worker sampled")
    ask(recyclerd, "recycle web all")

    def queue():
        ws = status(recyclerd)["workers"]
        q = {w["slot"]: w["queue_position"] for w in ws
             if w["queue_position"] is not None}
        return q if len(q) == 2 else None
    assert wait_for(queue, 3, what="two recycles waiting") == {1: 1, 0: 2}
    recyclerd.wait_log(r"worker 0 \[pid \d+\]: spawned", count=2,
                       timeout=15)
    spawned = [int(m) for m in re.findall(
        r"worker (\d) \[pid \d+\]: spawned", recyclerd.log_text())[3:]]
    assert spawned == [2, 1, 0], spawned


def test_max_overshoot_drains_a_grower_that_waits(recyclerd, tmp_path):
    # 20 MB/s; the replacement needs 4 s: without max_overshoot the old
    # worker would reach ~120M waiting for it.
    fast = "--leak 1M --interval 0.05"
    recyclerd.write_config(
        workers=1, ready="notify", memory_metric="rss", prespawn="no",
        recycle_memory="40M", recycle_samples=1, max_overshoot="25%",
        jitter="0",
        sample_interval="50ms", drain_timeout="2s",
        command=slow_replacements(tmp_path, fast,
                                  fast + " --ready-delay 4"))
    recyclerd.start()
    recyclerd.wait_log(r"over max_overshoot: rss \S+( \+ \S+ by the next "
                       r"sample)? > 50M while waiting "
                       r"for its replacement, draining at once", timeout=15)
    st = status(recyclerd)
    assert st["overshoot_drains"] == 1
    assert metric(recyclerd, 'recyclerd_overshoot_drains_total{pool="web"}') \
        == 1
    # The replacement goes on starting and takes over.
    recyclerd.wait_ready_workers(1, timeout=15)
    # The old worker's exit is an event of its own kind of recycle.

    def flagged():
        evs = json.loads(ask(recyclerd, "events"))["events"]
        return [e for e in evs if e["kind"] == "recycle" and e["overshoot"]]
    [e] = wait_for(flagged, 10, what="an overshoot recycle event")[:1]
    assert "drained at once past max_overshoot 50M" in e["detail"], e


def test_max_overshoot_bounds_every_worker_that_crosses_together(
        recyclerd, tmp_path):
    # Two growers whose replacements need 4 s: both cross the bound while
    # waiting, and both drain at once, although the pool then has no
    # ready worker until the replacements are: the bound is the
    # operator's, the socket's backlog holds the connections.
    fast = "--leak 1M --interval 0.05"
    recyclerd.write_config(
        workers=2, ready="notify", memory_metric="rss", prespawn="no",
        max_recycling=2, recycle_memory="40M", recycle_samples=1,
        max_overshoot="25%", jitter="0", sample_interval="50ms",
        drain_timeout="2s",
        command=slow_replacements(tmp_path, fast,
                                  fast + " --ready-delay 4"))
    recyclerd.start()
    wait_for(lambda: status(recyclerd)["overshoot_drains"] >= 2, 20,
             what="both workers drained past max_overshoot")
    recyclerd.wait_ready_workers(2, timeout=15)

    def flagged():
        evs = json.loads(ask(recyclerd, "events"))["events"]
        return [e for e in evs if e["kind"] == "recycle" and e["overshoot"]]
    evs = wait_for(lambda: len(flagged()) >= 2 and flagged(), 10,
                   what="two overshoot recycle events")
    # Drained at the bound (or a sample before it), not after it: at
    # 20 MB/s and 50 ms a sample is 1M; the slack is for a late sweep.
    for e in evs[:2]:
        assert e["memory"] <= 55 * MiB, e


def events(d):
    return json.loads(ask(d, "events"))["events"]


@pytest.mark.parametrize("metric_name", ["rss", "pss"])
def test_prespawn_replaces_a_steady_grower_at_its_crossing(recyclerd,
                                                          metric_name):
    # 20 MB/s, replacements ready in ~0.6 s: the replacement is started
    # when the worker is ~0.7 s from 100M, not after it crossed; it stands
    # by, and the worker drains when it crosses, not before. With pss the
    # sampler must read smaps_rollup below the limit to predict it.
    recyclerd.write_config(
        workers=1, ready="notify", memory_metric=metric_name,
        recycle_memory="100M", recycle_samples=1, sample_interval="100ms",
        prespawn="yes", jitter="0",
        command=f"{PYTHON} {PY_WORKER} --leak 1M --interval 0.05 "
                "--ready-delay 0.5")
    recyclerd.start()
    line = recyclerd.wait_log(r"starting its replacement ahead \(prespawn\): "
                              r"%s \S+ predicted to cross 100M in \S+s"
                              % metric_name, timeout=20)
    # "~": rss minus the shared part a recent smaps read measured.
    m = re.search(r"%s ~?(\d+(?:\.\d+)?)M predicted to cross 100M in "
                  r"(\d+\.\d+)s" % metric_name, line.group(0))
    assert m and float(m.group(1)) < 100, line
    # A start time (0.5 s and more) ahead, not a sample or two before.
    assert float(m.group(2)) >= 0.4, line
    recyclerd.wait_log(r"standing by until it crosses recycle_memory 100M",
                       timeout=10)
    recyclerd.wait_log(r"recycling \(memory\): %s \S+ > 100M" % metric_name,
                       timeout=10)
    recyclerd.wait_log(r"replacement \[pid \d+\] ready after \S+, draining "
                       r"with SIGTERM \(it stood by for", timeout=5)
    wait_for(lambda: any(e["kind"] == "recycle" for e in events(recyclerd)),
             10, what="the recycle event")
    e = next(e for e in events(recyclerd) if e["kind"] == "recycle")
    # Recycled at its limit: over it (the limit's promise), by a sample
    # or so (1 MB at 20 MB/s; the slack is for a late sweep).
    assert e["reason"] == "memory", e
    assert 100 * MiB <= e["memory"] <= 110 * MiB, e
    assert "replacement started ahead" in e["detail"], e
    st = status(recyclerd)
    assert st["prespawns"] >= 1 and st["prespawn_misses"] == 0, st
    assert metric(recyclerd, 'recyclerd_prespawns_total{pool="web"}') >= 1
    assert st["start_horizon"] > 0.4


def test_a_prespawn_whose_crossing_never_comes_drains_the_standby(
        recyclerd):
    # Grows at 20 MB/s to about 95M and levels off below 100M: the
    # replacement started ahead stands by in vain. The worker is kept (it
    # never crossed its limit), the standby drains, counted as a miss,
    # and the worker is not predicted again.
    recyclerd.write_config(
        workers=1, ready="notify", memory_metric="rss",
        recycle_memory="100M", recycle_samples=1, sample_interval="100ms",
        prespawn="yes", jitter="0",
        command=f"{PYTHON} {PY_WORKER} --leak 1M --interval 0.05 "
                "--leak-until 84M --ready-delay 0.3")
    recyclerd.start()
    recyclerd.wait_log(r"starting its replacement ahead \(prespawn\)",
                       timeout=20)
    recyclerd.wait_log(r"prespawn missed: rss \S+ still below 100M after "
                       r"its replacement \[pid (\d+)\] stood by", timeout=20)
    wait_for(lambda: status(recyclerd)["prespawn_misses"] == 1, 5,
             what="the miss counted")
    assert metric(recyclerd,
                  'recyclerd_prespawn_misses_total{pool="web"}') == 1
    wait_for(lambda: len(status(recyclerd)["workers"]) == 1, 10,
             what="the standby gone")
    first = status(recyclerd)["workers"][0]
    assert first["recycle_reason"] is None and first["prespawn"] is None
    # Not recycled, and not predicted again: one worker, the same one.
    assert not [e for e in events(recyclerd) if e["kind"] == "recycle"]
    time.sleep(1.5)
    st = status(recyclerd)
    assert [w["pid"] for w in st["workers"]] == [first["pid"]], st
    assert st["prespawns"] == 1, st


def test_a_condemned_worker_is_not_read_through_smaps(recyclerd, tmp_path):
    # Both workers cross 30M (pss) at about the same time, 5 MB/s; one
    # waits for a place, the other for a replacement that needs 8 s.
    # Meanwhile they stay under the overshoot bound (60M): statm only.
    fast = "--leak 512K --interval 0.1 --baseline 14M"
    recyclerd.write_config(
        workers=2, ready="notify", memory_metric="pss", prespawn="no",
        recycle_memory="30M", recycle_samples=1, max_overshoot="100%",
        max_recycling=1, sample_interval="100ms", jitter="0",
        command=slow_replacements(tmp_path, fast,
                                  fast + " --ready-delay 8"))
    recyclerd.start()

    def condemned():
        ws = status(recyclerd)["workers"]
        return sum(1 for w in ws if w["recycle_reason"] == "memory") == 2
    wait_for(condemned, 20, what="both workers recycled for memory")
    smaps = metric(recyclerd, 'recyclerd_probe_reads_total{kind="smaps"}')
    statm = metric(recyclerd, 'recyclerd_probe_reads_total{kind="statm"}')
    wait_for(lambda: metric(recyclerd, 'recyclerd_probe_reads_total'
                            '{kind="statm"}') >= statm + 20, 5,
             what="20 more statm reads")
    assert metric(recyclerd, 'recyclerd_probe_reads_total{kind="smaps"}') \
        == smaps
    ws = status(recyclerd)["workers"]
    assert all(w["memory"] < 60 * MiB for w in ws
               if w["recycle_reason"] == "memory"), ws


def test_a_crossing_is_confirmed_without_reading_smaps_again(recyclerd):
    # Over 30M (pss) and growing to 40M, then level: recycle_samples = 30
    # holds the recycle for 30 samples. The crossing's read measured the
    # rss - pss gap; rss minus it confirms the samples after (statm only):
    # a few reads on the way to the crossing, not one per sample after it.
    recyclerd.write_config(
        workers=1, ready="notify", memory_metric="pss", prespawn="no",
        recycle_memory="30M", recycle_samples=30, max_overshoot="100%",
        sample_interval="100ms", jitter="0",
        command=f"{PYTHON} {PY_WORKER} --leak 1M --interval 0.1 "
                "--baseline 14M --leak-until 40M")
    recyclerd.start()
    recyclerd.wait_log(r"recycling \(memory\): pss .* for 30 samples",
                       timeout=20)
    smaps = metric(recyclerd, 'recyclerd_probe_reads_total{kind="smaps"}')
    statm = metric(recyclerd, 'recyclerd_probe_reads_total{kind="statm"}')
    assert statm >= 30 and smaps <= 10, (smaps, statm)
