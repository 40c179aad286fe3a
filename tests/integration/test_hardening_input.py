# SPDX-License-Identifier: MIT
"""Input the daemon takes from workers, clients and the configuration,
made harmless: a status answer of megabytes reaches a client that reads
it, notify counts are digits only, STATUS= texts are valid UTF-8 in the
answers, a flood of bad notify lines makes a bounded number of log lines,
worker output cannot put escape bytes in the log, and a numeric user id
past the range of uid_t is refused rather than wrapped to root."""

import json
import shutil
import socket

import pytest

import recyclerd as rd
from recyclerd import PYTHON, run_recyclerd, wait_for

SYSTEMD_NOTIFY = shutil.which("systemd-notify")

# A worker that sends datagrams (hex, or "file:PATH"), pauses ("sleep:S") and writes to
# its stdout ("out:HEX") in the order given, then waits to be stopped.
SENDER = r'''
import os, socket, sys, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for arg in sys.argv[1:]:
    if arg.startswith("sleep:"):
        time.sleep(float(arg[6:]))
    elif arg.startswith("out:"):
        os.write(1, bytes.fromhex(arg[4:]))
    elif arg.startswith("file:"):
        with open(arg[5:], "rb") as f:
            s.sendto(f.read(), addr)
    else:
        s.sendto(bytes.fromhex(arg), addr)
while True:
    time.sleep(60)
'''


def sender(recyclerd, *items):
    script = recyclerd.dir / "sender.py"
    script.write_text(SENDER)
    args = [i if isinstance(i, str) else i.hex() for i in items]
    return " ".join([PYTHON, str(script), *args])


def raw_answer(recyclerd, line, timeout=30):
    """One answer line as bytes, read as fast as it comes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout * rd.SLOW)
        s.connect(str(recyclerd.control_path))
        s.sendall(line.encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(1 << 20)
            assert chunk, "connection closed before the whole answer"
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                return b"".join(chunks)[:-1]


def strict_json(raw):
    """What a strict client does: UTF-8 or nothing, then JSON."""
    return json.loads(raw.decode("utf-8", errors="strict"))


def status_worker(recyclerd, pool="web", slot=0):
    ans = strict_json(raw_answer(recyclerd, f"status {pool}"))
    for w in ans["pools"][0]["workers"]:
        if w["slot"] == slot:
            return w
    return None


# --- item 8: long answers --------------------------------------------------

@pytest.mark.skipif(SYSTEMD_NOTIFY is None, reason="no systemd-notify")
def test_status_answer_over_4mib_reaches_a_prompt_reader(recyclerd):
    # 560 workers with a STATUS= of 4000 '"' each: 8 KB each once JSON
    # escapes them, 4.7 MB in all, more than the 4 MiB a client may leave
    # unread. The old daemon built it whole and hung up at once.
    n = 560
    text = recyclerd.dir / "status.txt"
    text.write_text('"' * 4000)
    script = recyclerd.dir / "w.sh"
    script.write_text(f'{SYSTEMD_NOTIFY} --status="$(cat {text})"\n'
                      'exec sleep 600\n')
    recyclerd.write_config(workers=n, ready="spawn",
                           command=f"/bin/sh {script}",
                           shutdown_timeout="10s")
    recyclerd.start(timeout=60)

    def texts():
        raw = raw_answer(recyclerd, "status")
        ws = strict_json(raw)["pools"][0]["workers"]
        return (raw, [w for w in ws if w["status_text"]])
    # Each status of 560 workers costs the daemon a smaps read apiece:
    # ask seldom.
    raw, ws = wait_for(lambda: (lambda r: r if len(r[1]) == n else None)(
        texts()), 40, interval=2.0,
        what=f"{n} workers with their STATUS= text")
    assert len(raw) > 4 << 20
    assert all(w["status_text"] == '"' * 4000 for w in ws)
    assert raw.count(b"\n") == 0
    # recyclerctl reads it too.
    r = recyclerd_ctl(recyclerd, "--json", "status")
    assert r.returncode == 0, r.stderr[-500:]
    assert len(json.loads(r.stdout)["pools"][0]["workers"]) == n
    # Requests queued behind a streamed answer come next, whole, in order.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30 * rd.SLOW)
        s.connect(str(recyclerd.control_path))
        s.sendall(b"status\nversion\nmetrics\n")
        buf = b""
        while buf.count(b"\n") < 3:
            chunk = s.recv(1 << 20)
            assert chunk, "connection closed before three answers"
            buf += chunk
    lines = [strict_json(x) for x in buf.split(b"\n")[:3]]
    assert len(lines[0]["pools"][0]["workers"]) == n
    assert sorted(lines[1]) == ["ok", "version"]
    assert "recyclerd_" in lines[2]["metrics"]
    assert not recyclerd.log_has("does not read its answers")


def recyclerd_ctl(recyclerd, *args):
    import subprocess
    return subprocess.run([str(rd.RECYCLERCTL_BIN), "-s",
                           str(recyclerd.control_path), *args],
                          capture_output=True, text=True, timeout=60)


# --- item 9: notify fields -------------------------------------------------

def test_tasks_with_sign_or_space_is_ignored_with_a_warning(recyclerd):
    recyclerd.write_config(command=sender(
        recyclerd, b"READY=1", b"TASKS=3", b"TASKS= -1", b"TASKS=+7",
        b"TASKS=0x10"))
    recyclerd.start()
    recyclerd.wait_log(r"ignored TASKS=0x10", 10)
    assert recyclerd.log_has(r"ignored TASKS= -1 ")
    assert recyclerd.log_has(r"ignored TASKS=\+7 ")
    assert status_worker(recyclerd)["tasks"] == 3


def test_invalid_utf8_in_status_gives_valid_json(recyclerd):
    recyclerd.write_config(command=sender(
        recyclerd, b"READY=1",
        b"STATUS=ok \xff\xfe \xc0\x80 \xed\xa0\x80 \x1b[31m \xc2\x85 \xe2\x82"))
    recyclerd.start()
    w = wait_for(lambda: (lambda w: w if w and w["status_text"] else None)(
        status_worker(recyclerd)), 10, what="a STATUS= text")
    assert w["status_text"] == ("ok \ufffd\ufffd \ufffd\ufffd "
                                "\ufffd\ufffd\ufffd \ufffd[31m \ufffd "
                                "\ufffd\ufffd")
    # The metrics text and recyclerctl's JSON are valid as well.
    strict_json(raw_answer(recyclerd, "metrics"))
    r = recyclerd_ctl(recyclerd, "--json", "status")
    assert r.returncode == 0, r.stderr


# --- item 9: log flooding and escapes -------------------------------------

def test_a_flood_of_bad_lines_makes_few_log_lines(recyclerd):
    # 2000 malformed lines in one datagram; then, after the bucket has
    # refilled a little, one more: it carries the count of those held back.
    flood = recyclerd.dir / "flood"
    flood.write_bytes(b"x\n" * 2000)
    recyclerd.write_config(command=sender(
        recyclerd, b"READY=1", f"file:{flood}", "sleep:1.5", b"y"))
    recyclerd.start()
    recyclerd.wait_log(r"messages suppressed", 10)
    recyclerd.wait_log(r'ignored malformed line "y"', 10)
    n = recyclerd.log_count(r"ignored malformed line")
    assert 1 <= n <= 20, n
    assert recyclerd.log_has(r"notify: 19\d\d messages suppressed")


def test_escape_bytes_in_worker_output_are_escaped_in_the_log(recyclerd):
    recyclerd.write_config(command=sender(
        recyclerd, b"READY=1", "out:" + b"\x1b[2Jred\x07 bell\n".hex(),
        b"STATUS=x", b"BAD\x1b]0;title\x07"))
    recyclerd.start()
    recyclerd.wait_log(r"stdout: \\x1b\[2Jred\\x07 bell", 10)
    recyclerd.wait_log(r"ignored unknown BAD\\x1b\]0;title\\x07=|"
                       r'malformed line "BAD\\x1b', 10)
    assert b"\x1b" not in recyclerd.log_path.read_bytes()
    assert b"\x07" not in recyclerd.log_path.read_bytes()


# --- item 9: ids ------------------------------------------------------------

@pytest.mark.parametrize("key", ["user", "group"])
def test_numeric_id_past_uid_t_is_refused(recyclerd, key):
    for value in ("4294967296", "4294967295", "18446744073709551616"):
        conf = recyclerd.write_config(**{key: value})
        r = run_recyclerd("-t", "-c", str(conf))
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert f"{key} id out of range" in out, out


def test_control_group_id_past_gid_t_is_refused(recyclerd):
    conf = recyclerd.write_config(main={"control_group": "4294967296"})
    r = run_recyclerd("-t", "-c", str(conf))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "group id out of range" in out, out
