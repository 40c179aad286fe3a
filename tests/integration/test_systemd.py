# SPDX-License-Identifier: MIT
"""What the daemon tells its service manager (READY=1, STATUS=,
RELOADING=1, STOPPING=1, WATCHDOG=1), and the watchdog it keeps on its
workers (WATCHDOG_USEC/WATCHDOG_PID, silence, WATCHDOG=trigger). The test's
own datagram socket plays systemd's part."""

from recyclerd import stays, wait_for

# A worker that speaks the watchdog protocol with the socket module: mode
# "ping" pings for ever, "hang" stops pinging after 1 s, "trigger" asks
# for the watchdog action after 0.5 s.
WATCHDOG_WORKER = r'''
import os, socket, sys, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def send(msg):
    sock.sendto(msg.encode(), addr)
usec = int(os.environ["WATCHDOG_USEC"])
if int(os.environ["WATCHDOG_PID"]) != os.getpid():
    sys.exit(9)
mode = sys.argv[1]
send("READY=1")
start = time.monotonic()
while True:
    up = time.monotonic() - start
    if mode == "ping" or (mode == "hang" and up < 1.0):
        send("WATCHDOG=1")
    if mode == "trigger" and up > 0.5:
        send("WATCHDOG=trigger")
    time.sleep(min(usec / 4e6, 0.1))
'''


def watchdog_pool(recyclerd, mode, period="600ms"):
    script = recyclerd.dir / "watchdog_worker.py"
    script.write_text(WATCHDOG_WORKER)
    return {"command": "/usr/bin/python3 "
                       f"{script} {mode}",
            "watchdog": period}


def test_daemon_reports_ready_status_reloading_and_stopping(recyclerd):
    recyclerd.write_config(workers=2)
    recyclerd.start()
    ready = recyclerd.notified("READY=1")[0].split("\n")
    status = [line for line in ready if line.startswith("STATUS=")]
    assert status and "2/2 workers ready" in status[0], ready

    before = len(recyclerd.notified("READY=1"))
    recyclerd.reload()
    wait_for(lambda: len(recyclerd.notified("READY=1")) > before, 10,
             what="READY=1 after the reload")
    reloading = recyclerd.notified("RELOADING=1")
    assert reloading, "no RELOADING=1"
    assert any(line.startswith("MONOTONIC_USEC=")
               for line in reloading[0].split("\n"))
    # RELOADING=1 comes before the READY=1 that ends the reload.
    rel = [i for i, line in recyclerd.notify_lines("RELOADING=1")]
    rdy = [i for i, line in recyclerd.notify_lines("READY=1")]
    assert rel[-1] < rdy[-1]

    assert recyclerd.stop() == 0
    assert recyclerd.notified("STOPPING=1")


def test_daemon_pings_its_own_watchdog_at_half_the_period(recyclerd):
    base_env = recyclerd.env
    recyclerd.env = lambda: {**base_env(), "WATCHDOG_USEC": "400000"}
    recyclerd.write_config()
    recyclerd.start()
    wait_for(lambda: len(recyclerd.notified("WATCHDOG=1")) >= 4, 5,
             what="four WATCHDOG=1 at a 200 ms pace")


def test_a_worker_that_stops_pinging_is_killed_and_replaced(recyclerd):
    recyclerd.write_config(**watchdog_pool(recyclerd, "hang"))
    recyclerd.start()
    [old] = recyclerd.worker_pids()
    recyclerd.wait_log(rf"worker 0 \[pid {old}\]: recycling \(watchdog\): "
                       r"no WATCHDOG=1 for 600ms, killing it", timeout=10)
    recyclerd.wait_replaced(old, 0)
    recyclerd.wait_log(rf"\[pid {old}\]: killed by SIGKILL \(reason "
                       r"watchdog")


def test_a_worker_that_pings_is_left_alone(recyclerd):
    recyclerd.write_config(**watchdog_pool(recyclerd, "ping"))
    recyclerd.start()
    [pid] = recyclerd.worker_pids()
    stays(lambda: recyclerd.worker_pids() == [pid], 2.5,
          what="the pinging worker keeps running")
    assert not recyclerd.log_has(r"recycling \(watchdog\)")


def test_watchdog_trigger_kills_the_worker_at_once(recyclerd):
    recyclerd.write_config(**watchdog_pool(recyclerd, "trigger", "30s"))
    recyclerd.start()
    [old] = recyclerd.worker_pids()
    recyclerd.wait_log(rf"\[pid {old}\]: recycling \(watchdog\): worker "
                       r"sent WATCHDOG=trigger", timeout=5)
    recyclerd.wait_replaced(old, 0)
