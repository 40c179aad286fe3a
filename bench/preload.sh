#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/preload.sh - preloaded pools against exec'd workers and gunicorn
# --preload (issue 12, "Preloaded pools").
#
# The application is bench/heavy_app.py: 80 MiB of read-only bytes objects
# and ~1 s of CPU at import, LEAK per request. WORKERS workers serve it on
# one loopback port, each replaced after MAX_REQUESTS requests (max_tasks;
# gunicorn's --max-requests), under wrk for DURATION s. Rows:
#   exec      recyclerd, spawn = exec: examples/wsgi_preload.py per worker,
#             each importing the application;
#   template  recyclerd, spawn = template: wsgi_preload.py imports it once
#             and forks the workers (skipped with a message while
#             `recyclerd -t` refuses the key);
#   gunicorn  Debian's gunicorn --preload --workers WORKERS (sync workers),
#             when /usr/bin/gunicorn is installed.
# Printed per row:
#   PSS med/peak  the pool's total PSS (sum over every process of the pool:
#                 template and workers, or gunicorn's master and workers),
#                 sampled every SAMPLE s from /proc/PID/smaps_rollup;
#   ready med/p99 a replacement's start to ready: recyclerd's "ready after"
#                 of each worker started during the run; for gunicorn, from
#                 pre_fork in the master to post_worker_init in the worker;
#   idle med      the same for IDLE_ROUNDS replacements once wrk is done,
#                 one at a time, IDLE_GAP s apart (recyclerctl recycle of a
#                 slot; for gunicorn, SIGTERM to one of its workers): what a
#                 replacement costs without the load's competition for the
#                 CPU;
#   req/s, p99    wrk --latency;
#   failed        wrk's non-2xx responses plus socket errors.
#
# Environment (defaults): RECYCLERD, RECYCLERCTL (this tree's, built with
# make when not given), PYTHON (/usr/bin/python3), GUNICORN
# (/usr/bin/gunicorn), DURATION (20), THREADS (2), CONNECTIONS (16),
# WORKERS (4), MAX_REQUESTS (2000), LEAK (64K), SAMPLE (0.5), ROWS ("exec
# template gunicorn"), IDLE_ROUNDS (8), IDLE_GAP (1; 3 for the exec row,
# whose workers take seconds to start), KEEP (set: keep the temp dir).
#
# Exit status: 0 when every row ran or was skipped, 1 on a failure, 2 when
# wrk or a binary is missing. Installs nothing. Not part of make check.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
PYTHON=${PYTHON:-/usr/bin/python3}
GUNICORN=${GUNICORN:-/usr/bin/gunicorn}
DURATION=${DURATION:-20}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-16}
WORKERS=${WORKERS:-4}
MAX_REQUESTS=${MAX_REQUESTS:-2000}
LEAK=${LEAK:-64K}
SAMPLE=${SAMPLE:-0.5}
ROWS=${ROWS:-exec template gunicorn}
IDLE_ROUNDS=${IDLE_ROUNDS:-8}
IDLE_GAP=${IDLE_GAP:-1}
prog=preload

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
	[ -x "$b" ] || { echo "$prog: no executable $b" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/preload.XXXXXX)
root_pid=''
sampler_pid=''
wrk_pid=''

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

cleanup() {
	stop_pid "$wrk_pid" 10
	stop_pid "$sampler_pid" 20
	stop_pid "$root_pid" 150
	if [ -n "${KEEP:-}" ]; then
		echo "$prog: configs and logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat > "$tmp/helper.py" <<'EOF'
import datetime, glob, json, os, re, signal, socket, statistics, sys, time


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
    return 0


def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def sample(root, skip_root, period, out):
    """The pool's PSS: every process under root (without root itself and
    its own helpers, running its executable, if skip_root: the daemon)."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    rexe = exe(root)
    with open(out, "w") as f:
        while not stop and os.path.exists(f"/proc/{root}"):
            t = time.time()
            procs = tree(root)
            if skip_root == "1":
                procs = [p for p in procs if exe(p) != rexe]
            f.write(json.dumps({"t": t, "pss": sum(pss(p) for p in procs),
                                "n": len(procs)}) + "\n")
            f.flush()
            time.sleep(max(0.0, t + period - time.time()))


# The worker's own line ("worker N [pid P]: ready after"), not its
# predecessor's "replacement [pid P] ready after": one figure per worker.
DUR = re.compile(r"\]: ready after (\d+(?:\.\d+)?)(us|ms|s|m)\b")
SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def ready_times(kind, path, t0, t1):
    """Seconds from start to ready of the workers ready between t0 and
    t1."""
    out = []
    for line in open(path, errors="replace"):
        if kind == "gunicorn":
            t, secs = line.split()
            if t0 <= float(t) <= t1:
                out.append(float(secs))
            continue
        m = DUR.search(line)
        if not m or " worker " not in line:
            continue
        stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
        if t0 <= stamp.timestamp() <= t1:
            out.append(float(m.group(1)) * SCALE[m.group(2)])
    return out


def wrk_figures(path):
    text = open(path).read()
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\b", text, re.M)
    if not rps or not p99:
        sys.exit(f"cannot parse wrk output {path}:\n{text}")
    ms = float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3,
                                "m": 6e4}[p99.group(2)]
    failed = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non2xx:
        failed += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), "
                     r"write (\d+), timeout (\d+)", text)
    if sock:
        failed += sum(int(g) for g in sock.groups())
    return float(rps.group(1)), ms, failed


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def analyze(d, kind, t0, t1, t2):
    samples = [json.loads(l) for l in open(f"{d}/samples")]
    win = [s["pss"] for s in samples if t0 <= s["t"] <= t1] or \
        [s["pss"] for s in samples]
    ready = ready_times(kind, f"{d}/ready", t0, t1)
    idle = ready_times(kind, f"{d}/ready", t1, t2)
    rps, p99, failed = wrk_figures(f"{d}/wrk")
    json.dump({"pss_med": statistics.median(win), "pss_peak": max(win),
               "ready_med": statistics.median(ready) if ready else None,
               "ready_p99": pct(ready, 0.99) if ready else None,
               "idle_med": statistics.median(idle) if idle else None,
               "idle_n": len(idle),
               "replacements": len(ready), "rps": rps, "p99": p99,
               "failed": failed}, open(f"{d}/figures", "w"))


def report(tmp, rows):
    def num(v, fmt, scale=1):
        return "-" if v is None else format(v * scale, fmt)
    fmt = "{:<10}{:>9}{:>9}{:>10}{:>10}{:>7}{:>9}{:>9}{:>8}{:>10}"
    print(fmt.format("row", "PSS med", "PSS peak", "ready med", "ready p99",
                     "repl", "req/s", "p99 ms", "failed", "idle med"))
    print(fmt.format("", "MiB", "MiB", "ms", "ms", "", "", "", "", "ms"))
    for name in rows:
        if os.path.exists(f"{tmp}/{name}/skipped"):
            print(f"{name:<10}skipped: " +
                  open(f"{tmp}/{name}/skipped").read().strip())
            continue
        if not os.path.exists(f"{tmp}/{name}/figures"):
            continue
        r = json.load(open(f"{tmp}/{name}/figures"))
        print(fmt.format(name, num(r["pss_med"], ".0f", 2**-20),
                         num(r["pss_peak"], ".0f", 2**-20),
                         num(r["ready_med"], ".1f", 1e3),
                         num(r["ready_p99"], ".1f", 1e3),
                         r["replacements"], num(r["rps"], ".0f"),
                         num(r["p99"], ".1f"), r["failed"],
                         num(r.get("idle_med"), ".1f", 1e3)))


def main(cmd, *a):
    if cmd == "free-port":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    elif cmd == "probe":
        import http.client
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(a[0]), timeout=2)
            c.request("GET", "/")
            return 0 if c.getresponse().status == 200 else 1
        except OSError:
            return 1
    elif cmd == "sample":
        sample(int(a[0]), a[1], float(a[2]), a[3])
    elif cmd == "analyze":
        analyze(a[0], a[1], float(a[2]), float(a[3]), float(a[4]))
    elif cmd == "report":
        report(a[0], a[1].split())
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
EOF
helper() { "$PYTHON" "$tmp/helper.py" "$@"; }

# gunicorn's replacement time: pre_fork in the master stamps the worker
# object, which the fork copies; post_worker_init in the worker writes
# "now seconds-since-fork" to READY_LOG.
cat > "$tmp/gunicorn_hooks.py" <<'EOF'
import os, time

def pre_fork(server, worker):
    worker.bench_fork_t = time.time()

def post_worker_init(worker):
    now = time.time()
    with open(os.environ["READY_LOG"], "a") as f:
        f.write(f"{now} {now - worker.bench_fork_t}\n")
EOF

# $1 = row, $2 = port, $3 = spawn: $tmp/$1/conf (exec: no spawn line, so
# that a daemon without the key runs the row too)
write_config() {
	local spawn="spawn = $3"
	[ "$3" != exec ] || spawn=
	cat > "$tmp/$1/conf" <<EOF
[recyclerd]
control_socket = $tmp/$1/sock
pools_dir = $tmp/pools.d

[pool bench]
command = $PYTHON examples/wsgi_preload.py heavy_app:application
directory = $top
$spawn
workers = $WORKERS
ready = notify
listen = tcp:127.0.0.1:$2
max_tasks = $MAX_REQUESTS
drain_timeout = 10s
ready_timeout = 60s
environment = PYTHONPATH=$top/python:$here LEAK_PER_REQUEST=$LEAK
EOF
}

wait_up() {	# $1 = row, $2 = port, $3 = what to grep as ready
	for _ in $(seq 1 600); do
		kill -0 "$root_pid" 2>/dev/null ||
		    die "$1 exited at start; its log:
$(tail -20 "$tmp/$1/log")"
		if helper probe "$2"; then
			return 0
		fi
		sleep 0.1
	done
	die "$1 not answering after 60s; log: $tmp/$1/log"
}

# Replace one worker at a time, without load; $1 = row.
idle_rounds() {
	local row=$1 gap=$IDLE_GAP i pid
	[ "$row" != exec ] || gap=$(awk "BEGIN { print $IDLE_GAP * 3 }")
	sleep "$gap"
	for i in $(seq 0 $((IDLE_ROUNDS - 1))); do
		if [ "$row" = gunicorn ]; then
			pid=$(pgrep -P "$root_pid" | head -1)
			[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
		else
			"$RECYCLERCTL" -s "$tmp/$row/sock" recycle bench \
			    $((i % WORKERS)) > /dev/null ||
			    die "recyclerctl recycle failed"
		fi
		sleep "$gap"
	done
}

run_row() {
	local row=$1 port t0 t1 t2 skip_root=1
	port=$(helper free-port)
	mkdir -p "$tmp/$row" "$tmp/pools.d"
	case $row in
	exec|template)
		write_config "$row" "$port" "$row"
		if ! "$RECYCLERD" -t -c "$tmp/$row/conf" > "$tmp/$row/check" 2>&1
		then
			grep -q "spawn" "$tmp/$row/check" ||
			    die "configuration of $row refused: $(cat "$tmp/$row/check")"
			echo "recyclerd -t refuses spawn = $row:" \
			    "$(tail -1 "$tmp/$row/check")" > "$tmp/$row/skipped"
			return 0
		fi
		"$RECYCLERD" -c "$tmp/$row/conf" > "$tmp/$row/log" 2>&1 &
		root_pid=$!
		;;
	gunicorn)
		if [ ! -x "$GUNICORN" ]; then
			echo "no $GUNICORN (Debian: apt-get install gunicorn)" \
			    > "$tmp/$row/skipped"
			return 0
		fi
		: > "$tmp/$row/ready"
		READY_LOG=$tmp/$row/ready LEAK_PER_REQUEST=$LEAK \
		    "$GUNICORN" --preload --workers "$WORKERS" \
		    --max-requests "$MAX_REQUESTS" --bind "127.0.0.1:$port" \
		    --chdir "$here" -c "$tmp/gunicorn_hooks.py" \
		    heavy_app:application > "$tmp/$row/log" 2>&1 &
		root_pid=$!
		skip_root=0
		;;
	esac
	wait_up "$row" "$port"
	sleep 1
	"$PYTHON" "$tmp/helper.py" sample "$root_pid" "$skip_root" "$SAMPLE" \
	    "$tmp/$row/samples" > /dev/null 2> "$tmp/$row/sampler.err" &
	sampler_pid=$!
	sleep 0.5
	t0=$(date +%s.%N)
	timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" \
	    -d"${DURATION}s" --timeout 5s --latency "http://127.0.0.1:$port/" \
	    > "$tmp/$row/wrk" 2>&1 &
	wrk_pid=$!
	wait "$wrk_pid" || die "wrk failed: $(cat "$tmp/$row/wrk")"
	wrk_pid=
	t1=$(date +%s.%N)
	idle_rounds "$row"
	t2=$(date +%s.%N)
	stop_pid "$sampler_pid" 20
	sampler_pid=
	stop_pid "$root_pid" 150
	root_pid=
	[ "$row" = gunicorn ] || cp "$tmp/$row/log" "$tmp/$row/ready"
	helper analyze "$tmp/$row" "$row" "$t0" "$t1" "$t2"
}

echo "$prog: $WORKERS workers of bench/heavy_app.py, replaced every" \
    "$MAX_REQUESTS requests, LEAK $LEAK per request; wrk -t$THREADS" \
    "-c$CONNECTIONS for ${DURATION}s per row" >&2
for row in $ROWS; do
	echo "$prog: row $row" >&2
	run_row "$row"
done
helper report "$tmp" "$ROWS"
