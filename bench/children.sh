#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/children.sh - gunicorn recycled by recyclerd (recycle_scope =
# children) against gunicorn's own --max-requests, in the same run.
#
# The same leaking WSGI application (tests/integration/apps/leak_wsgi.py,
# LEAK_KB per request) under `gunicorn --preload --workers 4`, loaded by
# wrk for DURATION, twice, one after the other:
#   1. recyclerd: the master is a pool's one worker with recycle_scope =
#      children and recycle_memory = LIMIT (PSS); gunicorn recycles nothing;
#   2. max-requests: gunicorn alone with --max-requests MAX_REQUESTS and
#      --max-requests-jitter MAX_REQUESTS/10, MAX_REQUESTS calibrated so
#      that a child reaches about LIMIT (PSS) when it is recycled.
# For each it prints: requests/s, failed requests (non-2xx responses and
# socket errors), p50 and p99 latency, the pool's PSS (master and
# children, sampled every 100 ms: mean and max), the recycled children
# (count, and their peak PSS / LIMIT: median and max, the highest the
# same sampler saw; for recyclerd also as its events record them, the
# figure of its last sample before the drain).
#
# Environment (defaults):
#   RECYCLERD       src/recyclerd of this tree
#   RECYCLERCTL     src/recyclerctl of this tree
#   GUNICORN        /usr/bin/gunicorn
#   DURATION        30s        of each wrk run (wrk syntax)
#   THREADS         2          wrk -t
#   CONNECTIONS     8          wrk -c
#   WORKERS         4          gunicorn --workers
#   LEAK_KB         64         leaked per request, KiB
#   LIMIT           64M        recycle_memory (PSS), and the target of
#                              MAX_REQUESTS
#   MAX_REQUESTS    (calibrated) gunicorn --max-requests
#   KEEP            unset      keep the temp dir (logs)
#
# Ports: picked free by the kernel (port 0), then passed on. Exit status 0
# when both runs completed, 1 on a failure to run, 2 when a program is
# missing. Not part of make check; numbers are printed, not judged.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
RECYCLERD=${RECYCLERD:-$top/src/recyclerd}
RECYCLERCTL=${RECYCLERCTL:-$top/src/recyclerctl}
GUNICORN=${GUNICORN:-/usr/bin/gunicorn}
PYTHON=/usr/bin/python3
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-8}
WORKERS=${WORKERS:-4}
LEAK_KB=${LEAK_KB:-64}
LIMIT=${LIMIT:-64M}
APPS=$top/tests/integration/apps

for p in "$RECYCLERD" "$RECYCLERCTL" "$GUNICORN" "$(command -v wrk || true)"; do
	if [ -z "$p" ] || [ ! -x "$p" ]; then
		echo "children.sh: missing ${p:-wrk}" >&2
		exit 2
	fi
done

tmp=$(mktemp -d /tmp/bench-children.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	sleep 1
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	if [ -z "${KEEP:-}" ]; then
		rm -rf "$tmp"
	else
		echo "kept $tmp"
	fi
}
trap cleanup EXIT

limit_bytes=$($PYTHON -c "
import sys
t = sys.argv[1]
print(int(float(t[:-1]) * {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}[t[-1]]))
" "$LIMIT")

free_port() {
	$PYTHON -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# The sampler: PSS of ROOT's tree every 100 ms until SIGTERM; the children
# of ROOT that vanished, with the highest PSS seen (their peak, at 100 ms).
cat > "$tmp/sampler.py" <<'EOF'
import json, os, signal, sys, time

root, out = int(sys.argv[1]), sys.argv[2]
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def kids(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
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


def tree(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += pss(p)
        todo += kids(p)
    return total


totals, last, gone = [], {}, []
while not stop:
    now = {k: tree(k) for k in kids(root)}
    for k, v in last.items():
        if k not in now:
            gone.append(v)
    for k, v in now.items():
        last[k] = max(v, last.get(k, 0))
    last = {k: v for k, v in last.items() if k in now}
    totals.append(pss(root) + sum(now.values()))
    time.sleep(0.1)
json.dump({"totals": totals, "gone": gone}, open(out, "w"))
EOF

# Run wrk against port $1 into $2, with the sampler on root pid $3.
load() {
	local port=$1 name=$2 root=$3 sp
	$PYTHON "$tmp/sampler.py" "$root" "$tmp/$name.sample" &
	sp=$!
	wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency \
	    "http://127.0.0.1:$port/" > "$tmp/$name.wrk" 2>&1 || true
	kill -TERM "$sp"
	wait "$sp" || true
}

# One line of figures from wrk's output and the sampler's.
report() {
	local name=$1 extra=${2:-}
	$PYTHON - "$tmp/$name.wrk" "$tmp/$name.sample" "$limit_bytes" \
	    "$name" "$extra" <<'EOF'
import json, re, statistics, sys
wrk, sample, limit, name, extra = sys.argv[1:6]
text = open(wrk).read()
s = json.load(open(sample))
limit = int(limit)


def lat(q):
    m = re.search(rf"^\s*{q}%\s+(\S+)", text, re.M)
    return m.group(1) if m else "?"


rps = re.search(r"Requests/sec:\s+(\S+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                 r"timeout (\d+)", text)
failed = (int(non2xx.group(1)) if non2xx else 0) + \
    (sum(map(int, sock.groups())) if sock else 0)
t = s["totals"] or [0]
g = sorted(v / limit for v in s["gone"])
print(f"{name:13} req/s {rps.group(1) if rps else '?':>9}  failed {failed}"
      f"  p50 {lat(50)}  p99 {lat(99)}  pool PSS mean "
      f"{statistics.mean(t) / 2**20:.1f}M max {max(t) / 2**20:.1f}M  "
      f"recycled {len(g)}, peak/limit median "
      f"{statistics.median(g) if g else 0:.2f} max {max(g) if g else 0:.2f}"
      f"{extra}")
EOF
}

# Calibration: a child's PSS at rest after --preload, and so the requests
# that take one to LIMIT.
if [ -z "${MAX_REQUESTS:-}" ]; then
	port=$(free_port)
	LEAK_KB=$LEAK_KB "$GUNICORN" --workers 1 --preload --chdir "$APPS" \
	    --bind "127.0.0.1:$port" leak_wsgi:application \
	    > "$tmp/calibrate.log" 2>&1 &
	g=$!
	pids+=("$g")
	sleep 3
	kid=$(cat "/proc/$g/task/$g/children" | awk '{print $1}')
	base=$(awk '/^Pss:/ {print $2 * 1024}' "/proc/$kid/smaps_rollup")
	kill -TERM "$g"
	wait "$g" || true
	MAX_REQUESTS=$(( (limit_bytes - base) / (LEAK_KB * 1024) ))
	echo "calibration: a child's PSS at rest $((base / 1024))K;" \
	    "max-requests $MAX_REQUESTS reaches about $LIMIT"
fi

echo "load: wrk -t $THREADS -c $CONNECTIONS -d $DURATION, gunicorn" \
    "--preload --workers $WORKERS, $LEAK_KB KiB leaked per request," \
    "limit $LIMIT PSS; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. recyclerd, recycle_scope = children.
port=$(free_port)
mkdir -p "$tmp/pools.d"
cat > "$tmp/recyclerd.conf" <<EOF
[recyclerd]
control_socket = $tmp/ctl.sock
pools_dir = $tmp/pools.d
cgroup = none
log_level = info

[pool web]
command = $GUNICORN --workers $WORKERS --preload --chdir $APPS
    --graceful-timeout 10 leak_wsgi:application
environment = LEAK_KB=$LEAK_KB
listen = tcp:127.0.0.1:$port
ready = notify
recycle_scope = children
child_drain_signal = SIGTERM
recycle_memory = $LIMIT
drain_timeout = 15s
sample_interval = 100ms
EOF
"$RECYCLERD" -c "$tmp/recyclerd.conf" > "$tmp/recyclerd.log" 2>&1 &
d=$!
pids+=("$d")
master=
for _ in $(seq 100); do
	master=$("$RECYCLERCTL" -s "$tmp/ctl.sock" --json status 2>/dev/null |
	    $PYTHON -c 'import json, sys
w = json.load(sys.stdin)["pools"][0]["workers"]
print(w[0]["pid"] if w and w[0]["state"] == "ready" else "")' 2>/dev/null ||
	    true)
	[ -n "$master" ] && break
	sleep 0.1
done
if [ -z "$master" ]; then
	echo "children.sh: recyclerd's gunicorn did not become ready" >&2
	exit 1
fi
sleep 2
load "$port" recyclerd "$master"
events=$("$RECYCLERCTL" -s "$tmp/ctl.sock" --json events 1024 |
    $PYTHON -c "import json, statistics, sys
e = [x for x in json.load(sys.stdin)['events']
     if x.get('child') and x['kind'] == 'recycle']
r = sorted(x['peak'] / $limit_bytes for x in e if x['peak'])
print(f'; events: {len(e)} recycles, peak/limit median '
      f'{statistics.median(r) if r else 0:.2f} max {max(r) if r else 0:.2f}')")
restarted=$("$RECYCLERCTL" -s "$tmp/ctl.sock" --json status |
    $PYTHON -c "import json, sys
w = json.load(sys.stdin)['pools'][0]['workers']
print('' if [x['pid'] for x in w] == [$master] else ' MASTER RESTARTED')")
kill -TERM "$d"
wait "$d" || true

# 2. gunicorn alone, --max-requests.
port=$(free_port)
LEAK_KB=$LEAK_KB "$GUNICORN" --workers "$WORKERS" --preload --chdir "$APPS" \
    --bind "127.0.0.1:$port" --max-requests "$MAX_REQUESTS" \
    --max-requests-jitter $((MAX_REQUESTS / 10)) --graceful-timeout 10 \
    leak_wsgi:application > "$tmp/gunicorn.log" 2>&1 &
g=$!
pids+=("$g")
sleep 3
load "$port" max-requests "$g"
kill -TERM "$g"
wait "$g" || true

report recyclerd "$events$restarted"
report max-requests
