#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/recycle_pressure.sh - recycling when every worker crosses its limit
# within seconds of the others (issue 11, "Recycling under pressure").
#
# WORKERS examples/http_worker.py workers on one held TCP port (loopback),
# each leaking LEAK_RATE per second while it serves (--leak-rate: by time,
# so the leak does not depend on the request rate wrk reaches), taking
# START_DELAY s to become ready and DRAIN_DELAY s to exit after SIGTERM,
# like a preloaded gunicorn. memory_metric = pss, recycle_memory =
# RECYCLE_MEMORY, sample_interval = 100ms, everything else default. wrk
# loads the port for DURATION s in three runs of the real daemon:
#   baseline  recycle_memory = 0: nothing is recycled (the p99 reference);
#   old       max_recycling = 1, overlap = yes, max_overshoot = 0 (off),
#             prespawn = no: the behaviour before issue 11;
#   new       the defaults (max_recycling, max_overshoot, prespawn unset:
#             yes since prespawn waits for the crossing);
#   noprespawn the defaults and prespawn = no: what the prediction buys.
# A build whose parser does not know max_overshoot (before issue 11) runs
# "old" without the keys it lacks (which is that behaviour) and prints
# "n/a" for "new".
#
# Measured during the wrk window, from outside the daemon where it can be:
#   peak/limit  every worker recycled during the run (events of kind
#               recycle or kill, pool http): its highest memory, the
#               largest of the event's peak and memory fields and the PSS
#               this script read itself (/proc/PID/smaps_rollup, every
#               SAMPLE s: the daemon may stop measuring a condemned
#               worker), over recycle_memory; median and max;
#   PSS med     the pool's total PSS (sum over its worker processes),
#               median of the samples;
#   min rdy     fewest ready workers (recyclerd_workers{state="ready"}
#               through the control socket's metrics, which measure
#               nothing: status would read every smaps_rollup and bill
#               the daemon for this script's curiosity);
#   ovsh        recycles whose event says "overshoot" (max_overshoot
#               drains, which may dip below WORKERS ready);
#   failed      wrk's non-2xx responses plus socket errors;
#   p99         wrk --latency, and its ratio to the baseline's;
#   CPU %       the daemon's own CPU (its threads and the spawn server,
#               not the workers: /proc/PID/task/*/schedstat) over the
#               window, in % of one core. (This script's own sampling,
#               smaps_rollup of every worker, is printed below the table:
#               it competes with the workers, not with the daemon. So is
#               how often the daemon itself read smaps_rollup, its costly
#               read: recyclerd_probe_reads_total{kind="smaps"} over the
#               window, and per recycle.)
# Then the targets of the issue for "new" and whether they were met.
#
# Environment (defaults):
#   RECYCLERD, RECYCLERCTL  src/recyclerd, src/recyclerctl of this tree
#                           (built with make when not given)
#   PYTHON          /usr/bin/python3    runs the workers and the helpers
#   DURATION        20      seconds of each wrk run
#   THREADS         2       wrk -t
#   CONNECTIONS     16      wrk -c
#   WORKERS         4
#   RECYCLE_MEMORY  128M
#   LEAK_RATE       60M     per worker per second of serving
#   START_DELAY     0.5     seconds before READY=1 (--start-delay)
#   START_BURN      0       CPU seconds burned before READY=1 (--start-burn)
#   DRAIN_DELAY     0.7     seconds from SIGTERM to exit (--drain-delay)
#   SAMPLE          0.2     seconds between two samples
#   WRK_TIMEOUT     5s      wrk --timeout: a request unanswered this long
#                           counts as failed (a starved machine, not a
#                           dropped connection, is what wrk's 2s catches)
#   RUNS            "baseline old new noprespawn"  (baseline is needed for
#                   p99 ratios)
#   KEEP            unset   set to keep the temp dir (configs, logs)
#
# Exit status: 0 when every run completed (the verdict is printed, not
# judged), 1 on a failure to run, 2 when wrk or a binary is missing.
# Installs nothing. Takes about RUNS x (DURATION + 10) seconds.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
PYTHON=${PYTHON:-/usr/bin/python3}
DURATION=${DURATION:-20}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-16}
WORKERS=${WORKERS:-4}
RECYCLE_MEMORY=${RECYCLE_MEMORY:-128M}
LEAK_RATE=${LEAK_RATE:-60M}
START_DELAY=${START_DELAY:-0.5}
START_BURN=${START_BURN:-0}
DRAIN_DELAY=${DRAIN_DELAY:-0.7}
SAMPLE=${SAMPLE:-0.2}
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
RUNS=${RUNS:-baseline old new noprespawn}
prog=recycle_pressure

die() { echo "$prog: $*" >&2; exit 1; }

if ! command -v wrk >/dev/null 2>&1; then
	echo "$prog: wrk not found (Debian: apt-get install wrk)" >&2
	exit 2
fi
[ -x "$PYTHON" ] || die "no python at $PYTHON (set PYTHON)"
if [ -z "${RECYCLERD:-}" ] || [ -z "${RECYCLERCTL:-}" ]; then
	make -s -C "$top" src/recyclerd src/recyclerctl >&2 ||
	    die "building src/recyclerd src/recyclerctl failed"
fi
RECYCLERD=${RECYCLERD:-$top/src/recyclerd}
RECYCLERCTL=${RECYCLERCTL:-$top/src/recyclerctl}
for b in "$RECYCLERD" "$RECYCLERCTL"; do
	if [ ! -x "$b" ]; then
		echo "$prog: no executable $b" >&2
		exit 2
	fi
done

tmp=$(mktemp -d /tmp/recycle_pressure.XXXXXX)
daemon_pid=''
sampler_pid=''
wrk_pid=''

# Stop a process we started: SIGTERM, up to $2 tenths of a second, then
# SIGKILL.
stop_pid() {
	local pid=$1 tenths=$2
	[ -n "$pid" ] || return 0
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 1 "$tenths"); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# The daemon drains its workers (DRAIN_DELAY each, in parallel); a daemon
# killed anyway takes them along (PR_SET_PDEATHSIG).
stop_daemon() {
	stop_pid "$daemon_pid" 150
	daemon_pid=
}

cleanup() {
	stop_pid "$wrk_pid" 10
	stop_pid "$sampler_pid" 20
	stop_daemon
	if [ -n "${KEEP:-}" ]; then
		echo "$prog: configs and logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The helpers in Python: sampling, waiting, parsing, the table.
cat > "$tmp/helper.py" <<'EOF'
import glob, json, os, re, signal, socket, statistics, sys, time

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def to_bytes(text):
    t = text.strip().upper()
    return int(float(t[:-1]) * UNITS[t[-1]]) if t[-1:] in UNITS else int(t)


def children(pid):
    kids = []
    for f in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            kids += [int(k) for k in open(f).read().split()]
        except OSError:
            pass
    return kids


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_ns(pid):
    """CPU time of the process's own threads, ns (not of its children)."""
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            total += int(open(f).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    if total:
        return total
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 10**9 // \
            os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0


def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.buf = b""

    def ask(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise OSError("control socket closed")
            self.buf += data
        answer, self.buf = self.buf.split(b"\n", 1)
        return json.loads(answer)


def ready_and_reads(ctl, pool):
    """Ready workers of the pool and the daemon's smaps_rollup reads so
    far (None when this build does not count them)."""
    text = ctl.ask("metrics").get("metrics", "")
    ready = reads = None
    for line in text.splitlines():
        if (line.startswith("recyclerd_workers{") and
                f'pool="{pool}"' in line and 'state="ready"' in line):
            ready = int(float(line.rsplit(None, 1)[1]))
        elif line.startswith('recyclerd_probe_reads_total{kind="smaps"}'):
            reads = int(float(line.rsplit(None, 1)[1]))
    return ready, reads


def sample(daemon, sockpath, pool, period, out):
    """One JSON line per sample until SIGTERM: time, the daemon's CPU ns
    (itself and the helpers it forked without exec, the spawn server:
    children running its own executable when we start), ready workers,
    PSS by worker pid (each over its process tree)."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    dexe = exe(daemon)
    helpers = [k for k in children(daemon) if exe(k) == dexe]
    ctl = Control(sockpath)
    with open(out, "w") as f:
        while not stop and os.path.exists(f"/proc/{daemon}"):
            t = time.time()
            cpu = sum(cpu_ns(p) for p in [daemon] + helpers)
            try:
                ready, reads = ready_and_reads(ctl, pool)
            except (OSError, ValueError):
                ready = reads = None
            mem = {}
            for w in children(daemon):
                if w in helpers:
                    continue
                vals = [pss(p) for p in tree(w)]
                if vals and vals[0] is not None:
                    mem[w] = sum(v for v in vals if v)
            f.write(json.dumps({"t": t, "cpu": cpu, "ready": ready,
                                "smaps": reads, "pss": mem,
                                "self": time.process_time()}) + "\n")
            f.flush()
            time.sleep(max(0.0, t + period - time.time()))


def settled(status_file, pool):
    """Exit 0 when no worker of the pool is starting, draining or being
    recycled."""
    s = json.load(open(status_file))
    for p in s.get("pools", []):
        if p["name"] != pool:
            continue
        if p.get("starting") or p.get("draining"):
            return 1
        if any(w.get("recycle_reason") for w in p.get("workers", [])):
            return 1
    return 0


def wrk_figures(path):
    text = open(path).read()
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\b", text, re.M)
    if not rps or not p99:
        sys.exit(f"cannot parse wrk output {path}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), "
                     r"write (\d+), timeout (\d+)", text)
    failed = int(non2xx.group(1)) if non2xx else 0
    detail = f"non-2xx {failed}"
    if sock:
        failed += sum(int(g) for g in sock.groups())
        detail += ", connect {}, read {}, write {}, timeout {}".format(
            *sock.groups())
    return float(rps.group(1)), float(p99.group(1)) * scale, failed, detail


def overshoot_counters(obj):
    """Counters of max_overshoot drains in a pool's status: integer
    fields whose name says overshoot (max_overshoot, the setting, is
    not one), at any depth."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if ("overshoot" in k and not k.startswith("max_") and
                    isinstance(v, int) and not isinstance(v, bool)):
                found.append(v)
            else:
                found += overshoot_counters(v)
    elif isinstance(obj, list):
        for v in obj:
            found += overshoot_counters(v)
    return found


def count_overshoot(d, pool, events):
    """max_overshoot drains, however this build shows them: events that
    mention overshoot, a counter in status, daemon log lines about an
    overshoot drain. The largest of the three."""
    n_events = sum(1 for e in events if e.get("overshoot") is True or
                   (e.get("overshoot") is None and
                    "overshoot" in json.dumps(e)))
    n_status = 0
    try:
        for p in json.load(open(f"{d}/status")).get("pools", []):
            if p.get("name") == pool:
                p = dict(p, workers=None)
                n_status = max(overshoot_counters(p) or [0])
    except (OSError, ValueError):
        pass
    n_log = sum(1 for line in open(f"{d}/log", errors="replace")
                if "overshoot" in line and "drain" in line.lower() and
                "stderr:" not in line)
    return max(n_events, n_status, n_log)


def analyze(d, pool, limit, t0, t1, workers):
    """The figures of one run, as JSON."""
    samples = [json.loads(l) for l in open(f"{d}/samples")]
    win = [s for s in samples if t0 <= s["t"] <= t1] or samples
    seen = {}
    for s in samples:
        for pid, v in s["pss"].items():
            seen[int(pid)] = max(seen.get(int(pid), 0), v)
    events = json.load(open(f"{d}/events")).get("events", [])
    ratios = []
    for e in events:
        if e.get("pool") != pool or e.get("kind") not in ("recycle",
                                                         "kill"):
            continue
        if e.get("reason") in ("shutdown", "scale", "reload"):
            continue
        peak = max(e.get("peak") or 0, e.get("memory") or 0,
                   seen.get(e.get("pid"), 0))
        ratios.append(peak / limit)
    overshoot = count_overshoot(d, pool,
                                [e for e in events if e.get("pool") == pool])
    ready = [s["ready"] for s in win if s["ready"] is not None]
    totals = [sum(s["pss"].values()) for s in win]
    cpu_s = (win[-1]["cpu"] - win[0]["cpu"]) / 1e9
    wall = win[-1]["t"] - win[0]["t"]
    self_s = win[-1].get("self", 0) - win[0].get("self", 0)
    rps, p99, failed, detail = wrk_figures(f"{d}/wrk")
    reads = [s.get("smaps") for s in win if s.get("smaps") is not None]
    return {
        "smaps_reads": reads[-1] - reads[0] if len(reads) > 1 else None,
        "recycles": len(ratios),
        "peak_med": statistics.median(ratios) if ratios else None,
        "peak_max": max(ratios) if ratios else None,
        "pss_med": statistics.median(totals) if totals else None,
        "min_ready": min(ready) if ready else None,
        "short": (sum(1 for r in ready if r < workers) / len(ready)
                  if ready else None),
        "overshoot": overshoot,
        "failed": failed, "failed_detail": detail, "rps": rps, "p99": p99,
        "cpu": 100 * cpu_s / wall if wall > 0 else None,
        "sampler_cpu": 100 * self_s / wall if wall > 0 else None,
        "samples": len(win),
    }


def report(tmp, runs, workers, limit_text):
    rows = {}
    for name in runs:
        f = f"{tmp}/{name}/figures"
        if os.path.exists(f):
            rows[name] = json.load(open(f))
        elif os.path.exists(f"{tmp}/{name}/na"):
            rows[name] = open(f"{tmp}/{name}/na").read().strip()
    base = rows.get("baseline")
    base_p99 = base["p99"] if isinstance(base, dict) else None

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    fmt = "{:<11}{:>6}{:>9}{:>9}{:>9}{:>5}{:>6}{:>7}{:>8}{:>9}{:>6}{:>7}"
    print(fmt.format("run", "recyc", "peak/lim", "peak/lim", "PSS med",
                     "min", "ovsh", "failed", "req/s", "p99 ms", "p99",
                     "CPU %"))
    print(fmt.format("", "", "median", "max", "MiB", "rdy", "", "", "",
                     "", "x base", "core"))
    for name in runs:
        r = rows.get(name)
        if r is None:
            continue
        if isinstance(r, str):
            print(f"{name:<9}{r}")
            continue
        ratio = (r["p99"] / base_p99) if base_p99 else None
        print(fmt.format(
            name, r["recycles"], num(r["peak_med"], ".2f"),
            num(r["peak_max"], ".2f"),
            num(r["pss_med"] and r["pss_med"] / 2**20, ".0f"),
            num(r["min_ready"], "d"), r["overshoot"], r["failed"],
            num(r["rps"], ".0f"), num(r["p99"], ".1f"),
            num(ratio, ".2f"), num(r["cpu"], ".2f")))
    for name in runs:
        r = rows.get(name)
        if isinstance(r, dict):
            short = num(r["short"] and 100 * r["short"], ".0f")
            print(f"{name}: failed = {r['failed_detail']}; fewer than "
                  f"{workers} ready in {short} % of the samples; 1-min "
                  f"load average {r['load']} when wrk started; this "
                  f"script's sampler used "
                  f"{num(r.get('sampler_cpu'), '.1f')} % of a core; the "
                  f"daemon read smaps_rollup {num(r.get('smaps_reads'), 'd')}"
                  f" times" + (f" ({r['smaps_reads'] / r['recycles']:.1f} "
                               f"per recycle)" if r.get("smaps_reads")
                               and r["recycles"] else ""))
    print(f"target (new defaults): peak/limit median <= 1.10 and max <= "
          f"1.30 of recycle_memory {limit_text}, 0 failed, min ready >= "
          f"{workers} (less only with counted overshoot drains), daemon "
          f"CPU < 2 % of a core")
    r = rows.get("new")
    if not isinstance(r, dict):
        print("verdict: n/a (no new-defaults run)")
        return
    missed = []
    if r["peak_med"] is None:
        missed.append("no recycle happened")
    else:
        if r["peak_med"] > 1.10:
            missed.append(f"median {r['peak_med']:.2f} > 1.10")
        if r["peak_max"] > 1.30:
            missed.append(f"max {r['peak_max']:.2f} > 1.30")
    if r["failed"]:
        missed.append(f"{r['failed']} failed requests")
    if r["min_ready"] is None or (r["min_ready"] < workers and
                                  not r["overshoot"]):
        missed.append(f"min ready {r['min_ready']} < {workers} without "
                      f"overshoot drains")
    if r["cpu"] is None or r["cpu"] >= 2.0:
        missed.append(f"daemon CPU {num(r['cpu'], '.2f')} % >= 2 %")
    print("verdict: " + ("met" if not missed else
                         "not met: " + "; ".join(missed)))


def main(cmd, *a):
    if cmd == "free-port":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    elif cmd == "probe":
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", int(a[0]), timeout=2)
        c.request("GET", "/")
        return 0 if c.getresponse().status == 200 else 1
    elif cmd == "bytes":
        print(to_bytes(a[0]))
    elif cmd == "sample":
        sample(int(a[0]), a[1], a[2], float(a[3]), a[4])
    elif cmd == "settled":
        return settled(a[0], a[1])
    elif cmd == "analyze":
        d = a[0]
        fig = analyze(d, a[1], to_bytes(a[2]), float(a[3]), float(a[4]),
                      int(a[6]))
        fig["load"] = a[5]
        json.dump(fig, open(f"{d}/figures", "w"))
    elif cmd == "report":
        report(a[0], a[1].split(), int(a[2]), a[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
EOF
helper() { "$PYTHON" "$tmp/helper.py" "$@"; }

worker="$PYTHON examples/http_worker.py --leak 0 --leak-rate $LEAK_RATE"
worker="$worker --start-delay $START_DELAY --start-burn $START_BURN"
worker="$worker --drain-delay $DRAIN_DELAY"

# The baseline recycles nothing: its workers grow for the whole run.
grow=$(( $(helper bytes "$LEAK_RATE") * WORKERS * DURATION ))
avail=$(awk '/^MemAvailable:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
case " $RUNS " in
*" baseline "*)
	[ "$grow" -le $((avail / 2)) ] ||
	    die "the baseline would leak ~$((grow >> 20)) MiB, over half of" \
	    "the available $((avail >> 20)) MiB: set a shorter DURATION"
esac

# $1 = run name, $2 = port, $3 = extra pool lines: $tmp/$1/conf
write_config() {
	mkdir -p "$tmp/$1" "$tmp/pools.d"
	cat > "$tmp/$1/conf" <<EOF
[recyclerd]
control_socket = $tmp/$1/sock
pools_dir = $tmp/pools.d

[pool http]
workers = $WORKERS
directory = $top
command = $worker
ready = notify
listen = tcp:127.0.0.1:$2
memory_metric = pss
drain_signal = SIGTERM
sample_interval = 100ms
$3
EOF
}

# Does this build's parser know pool key $1 (with value $2)?
knows_key() {
	write_config keycheck 1 "$1 = $2"
	"$RECYCLERD" -t -c "$tmp/keycheck/conf" > "$tmp/keycheck/out" 2>&1 &&
	    return 0
	grep -q "$1" "$tmp/keycheck/out" ||
	    die "recyclerd -t refuses the configuration, not for $1:" \
	    "$(cat "$tmp/keycheck/out")"
	return 1
}

# Start the daemon on $tmp/$1/conf; wait for every worker to be ready and
# the port ($2) to answer.
start_daemon() {
	"$RECYCLERD" -t -c "$tmp/$1/conf" > "$tmp/$1/check" 2>&1 ||
	    die "configuration of run $1 refused: $(cat "$tmp/$1/check")"
	"$RECYCLERD" -c "$tmp/$1/conf" > "$tmp/$1/log" 2>&1 &
	daemon_pid=$!
	for _ in $(seq 1 200); do
		kill -0 "$daemon_pid" 2>/dev/null ||
		    die "recyclerd exited at start; its log:
$(cat "$tmp/$1/log")"
		if [ "$(grep -c 'ready after' "$tmp/$1/log" || true)" -ge \
		    "$WORKERS" ] && helper probe "$2" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "workers not ready after 20s; log: $tmp/$1/log"
}

ctl() { "$RECYCLERCTL" -s "$tmp/$run/sock" --json "$@"; }

# One run: $1 = name, $2 = extra pool lines.
run_one() {
	local port t0 t1
	run=$1
	port=$(helper free-port)
	write_config "$run" "$port" "$2"
	start_daemon "$run" "$port"
	# Not through helper(): $! must be python's pid, not a subshell's.
	"$PYTHON" "$tmp/helper.py" sample "$daemon_pid" "$tmp/$run/sock" \
	    http "$SAMPLE" "$tmp/$run/samples" > /dev/null \
	    2> "$tmp/$run/sampler.err" &
	sampler_pid=$!
	sleep 0.5
	t0=$(date +%s.%N)
	load=$(cut -d' ' -f1 /proc/loadavg)
	timeout $((DURATION + 20)) wrk -t"$THREADS" -c"$CONNECTIONS" \
	    -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
	    "http://127.0.0.1:$port/" \
	    > "$tmp/$run/wrk" 2>&1 &
	wrk_pid=$!
	wait "$wrk_pid" || die "wrk failed: $(cat "$tmp/$run/wrk")"
	wrk_pid=
	t1=$(date +%s.%N)
	# Let the recycles under way finish (their events come at the old
	# worker's exit), sampling on: their peaks are still being read.
	for _ in $(seq 1 50); do
		ctl status http > "$tmp/$run/status" 2>/dev/null &&
		    helper settled "$tmp/$run/status" http && break
		sleep 0.2
	done
	stop_pid "$sampler_pid" 20
	sampler_pid=
	ctl events 1024 > "$tmp/$run/events" ||
	    die "recyclerctl events failed"
	stop_daemon
	helper analyze "$tmp/$run" http "$RECYCLE_MEMORY" "$t0" "$t1" \
	    "$load" "$WORKERS" ||
	    die "analysis of run $run failed (KEEP=1 keeps $tmp)"
	echo "$prog: $run done" >&2
}

old_keys="max_recycling = 1
overlap = yes"
new_ok=yes
lacks=''
if knows_key max_overshoot 0; then
	old_keys="$old_keys
max_overshoot = 0"
else
	new_ok=
	lacks=max_overshoot
fi
if knows_key prespawn no; then
	old_keys="$old_keys
prespawn = no"
else
	lacks="${lacks:+$lacks, }prespawn"
fi

echo "$prog: $WORKERS workers, leak $LEAK_RATE/s each while serving," \
    "ready after ${START_DELAY}s (+${START_BURN}s CPU), exit ${DRAIN_DELAY}s" \
    "after SIGTERM; recycle_memory $RECYCLE_MEMORY, pss;" \
    "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s" >&2
for r in $RUNS; do
	case $r in
	baseline)
		run_one baseline "recycle_memory = 0" ;;
	old)
		run_one old "recycle_memory = $RECYCLE_MEMORY
$old_keys" ;;
	new)
		if [ -n "$new_ok" ]; then
			run_one new "recycle_memory = $RECYCLE_MEMORY"
		else
			mkdir -p "$tmp/new"
			echo "n/a (this build has no max_overshoot)" \
			    > "$tmp/new/na"
		fi ;;
	noprespawn)
		run_one noprespawn "recycle_memory = $RECYCLE_MEMORY
prespawn = no" ;;
	*)
		die "unknown run $r (RUNS: baseline old new noprespawn)" ;;
	esac
done

echo
helper report "$tmp" "$RUNS" "$WORKERS" "$RECYCLE_MEMORY"
case " $RUNS " in
*" old "*)
	[ -z "$lacks" ] ||
	    echo "old: this build has no $lacks: run without (what they" \
	    "turn off is not there)"
esac
