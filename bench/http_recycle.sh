#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/http_recycle.sh - what recycling costs an HTTP service under load.
#
# Runs recyclerd with 4 examples/http_worker.py workers on one port, every
# request leaking the same amount, and loads it with wrk twice:
#   1. baseline: recycling off (no recycle_memory): the workers just grow;
#   2. recycling: recycle_memory low enough that each worker is recycled
#      every few seconds through its leak.
# and prints for both: requests/s, non-2xx responses and socket errors
# (connect/read/write/timeout), p50 and p99 latency; then the p99 ratio
# (recycling / baseline) and the number of recycles during the run (daemon
# log lines "recycling (").
#
# Both runs leak, so the difference is what recycling costs (starting
# replacements, draining, the daemon's sampling), not what the leak costs
# (touching fresh memory is slow in some VMs). The leak is calibrated by
# short runs (CALIBRATE each): the worker's PSS at rest and its share of
# the rate give the leak that makes a worker cross recycle_memory every
# LIFETIME seconds. Set LEAK to choose it yourself. A baseline that would
# leak more than half of MemAvailable is refused.
#
# Environment (defaults):
#   RECYCLERD       src/recyclerd of this tree
#   PYTHON          /usr/bin/python3     runs the workers and the helpers
#   DURATION        30s                  of each wrk run (wrk syntax: 10s, 1m)
#   THREADS         2                    wrk -t
#   CONNECTIONS     32                   wrk -c
#   WORKERS         4
#   RECYCLE_MEMORY  48M                  recycle_memory of the recycling run
#   LIFETIME        3                    seconds a worker should live
#   LEAK            (calibrated)         --leak of http_worker.py, e.g. 8K
#   CALIBRATE       5s                   each calibration run
#   KEEP            unset                set to keep the temp dir (logs)
#
# Exit status: 0 when both runs completed, 1 on a failure to run (the
# numbers are not judged here), 2 when wrk or the daemon is missing.
# Installs nothing.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
RECYCLERD=${RECYCLERD:-$top/src/recyclerd}
PYTHON=${PYTHON:-/usr/bin/python3}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
WORKERS=${WORKERS:-4}
RECYCLE_MEMORY=${RECYCLE_MEMORY:-48M}
LIFETIME=${LIFETIME:-3}
LEAK=${LEAK:-}
CALIBRATE=${CALIBRATE:-5s}
prog=http_recycle

die() { echo "$prog: $*" >&2; exit 1; }

if ! command -v wrk >/dev/null 2>&1; then
	echo "$prog: wrk not found (Debian: apt-get install wrk)" >&2
	exit 2
fi
if [ ! -x "$RECYCLERD" ]; then
	echo "$prog: no recyclerd at $RECYCLERD (build it, or set RECYCLERD)" >&2
	exit 2
fi
[ -x "$PYTHON" ] || die "no python at $PYTHON (set PYTHON)"

tmp=$(mktemp -d /tmp/http_recycle.XXXXXX)
daemon_pid=

stop_daemon() {
	[ -n "$daemon_pid" ] || return 0
	if kill -TERM "$daemon_pid" 2>/dev/null; then
		# The daemon drains its workers; give it its shutdown time.
		for _ in $(seq 1 200); do
			kill -0 "$daemon_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$daemon_pid" 2>/dev/null; then
			echo "$prog: recyclerd [$daemon_pid] still running 20s" \
			    "after SIGTERM: killing it" >&2
			kill -KILL "$daemon_pid" 2>/dev/null || true
		fi
	fi
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
}

cleanup() {
	stop_daemon
	if [ -n "${KEEP:-}" ]; then
		echo "$prog: logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port: bind port 0, read the port the kernel chose, close. (The
# daemon binds it a moment later; another process taking it in between
# would make the start fail loudly, not give wrong numbers.)
free_port() {
	"$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# $1 = name, $2 = extra pool lines; writes $tmp/$1.conf
write_config() {
	cat > "$tmp/$1.conf" <<EOF
[recyclerd]
control_socket = $tmp/$1.sock
pools_dir = $tmp/pools.d

[pool http]
workers = $WORKERS
directory = $top
ready = notify
listen = tcp:127.0.0.1:$port
memory_metric = pss
drain_signal = SIGTERM
drain_timeout = 10s
sample_interval = 100ms
$2
EOF
}

# Start the daemon on $tmp/$1.conf and wait for every worker to be ready
# and the port to answer.
start_daemon() {
	local n
	"$RECYCLERD" -c "$tmp/$1.conf" > "$tmp/$1.log" 2>&1 &
	daemon_pid=$!
	for _ in $(seq 1 300); do
		kill -0 "$daemon_pid" 2>/dev/null ||
		    die "recyclerd exited at start; its log:
$(cat "$tmp/$1.log")"
		n=$(grep -c 'ready after' "$tmp/$1.log" || true)
		if [ "$n" -ge "$WORKERS" ] && probe; then
			return 0
		fi
		sleep 0.1
	done
	die "workers not ready after 30s; log: $tmp/$1.log"
}

probe() {
	"$PYTHON" - "$port" <<'EOF' 2>/dev/null
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", "/")
sys.exit(0 if c.getresponse().status == 200 else 1)
EOF
}

# Largest PSS (bytes) among the daemon's live children.
worker_pss_max() {
	local pid max=0 kib
	for pid in $(pgrep -P "$daemon_pid" || true); do
		kib=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" \
		    2>/dev/null || echo 0)
		[ "${kib:-0}" -gt "$max" ] && max=$kib
	done
	echo $((max * 1024))
}

# "512K" "48M" "1G" -> bytes
to_bytes() {
	local v=${1%[KkMmGg]} u=${1#"${1%[KkMmGg]}"}
	case $u in
	K|k) echo $((v << 10)) ;;
	M|m) echo $((v << 20)) ;;
	G|g) echo $((v << 30)) ;;
	*) echo "$v" ;;
	esac
}

# wrk's latency ("850.12us", "1.61ms", "1.02s") -> milliseconds
to_ms() {
	awk -v t="$1" 'BEGIN {
		if (t ~ /us$/) { sub(/us$/, "", t); printf "%.3f", t / 1000 }
		else if (t ~ /ms$/) { sub(/ms$/, "", t); printf "%.3f", t }
		else if (t ~ /m$/) { sub(/m$/, "", t); printf "%.3f", t * 60000 }
		else { sub(/s$/, "", t); printf "%.3f", t * 1000 }
	}'
}

# "RPS NON2XX SOCKERR P50_MS P99_MS" from $tmp/$1.wrk (wrk prints the
# error lines only when there are errors).
parse_wrk() {
	local f=$tmp/$1.wrk rps non2xx sock p50 p99
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
	# "Socket errors: connect 0, read 3, write 0, timeout 1"
	sock=$(awk '/Socket errors:/ {
		gsub(",", ""); print $4 + $6 + $8 + $10 }' "$f")
	p50=$(awk '$1 == "50%" { print $2 }' "$f")
	p99=$(awk '$1 == "99%" { print $2 }' "$f")
	if [ -z "$rps" ] || [ -z "$p99" ]; then
		echo "$prog: cannot parse wrk output $f" >&2
		return 1
	fi
	echo "$rps ${non2xx:-0} ${sock:-0} $(to_ms "$p50") $(to_ms "$p99")"
}

# "connect 0, read 3, write 0, timeout 1" of $tmp/$1.wrk
sock_detail() {
	local d
	d=$(awk '/Socket errors:/ { sub(/^ *Socket errors: /, ""); print }' \
	    "$tmp/$1.wrk")
	echo "${d:-connect 0, read 0, write 0, timeout 0}"
}

# A short run ($CALIBRATE) with --leak $1, recycling off: sets c_rps, and
# c_pss to the largest worker PSS at the end.
calibrate() {
	local c
	write_config calibrate "command = $worker --leak $1"
	start_daemon calibrate
	DURATION=$CALIBRATE run_wrk calibrate
	c=$(parse_wrk calibrate) || exit 1
	c_rps=${c%% *}
	c_pss=$(worker_pss_max)
	stop_daemon
	echo "$prog: calibration, --leak $1: $c_rps req/s" >&2
}

# The leak that makes a worker of the pool cross recycle_memory every
# LIFETIME seconds at $1 req/s for the pool: room / (rate per worker *
# lifetime), in KiB (at least 1K).
leak_for() {
	awk -v room=$((limit - rest)) -v rps="$1" -v w="$WORKERS" \
	    -v life="$LIFETIME" 'BEGIN {
		leak = room / (rps / w * life)
		if (leak < 1024) leak = 1024
		printf "%dK", int(leak / 1024)
	}'
}

# wrk durations ("30s", "2m", "1h", "45") -> seconds
to_seconds() {
	case $1 in
	*s) echo "${1%s}" ;;
	*m) echo $((${1%m} * 60)) ;;
	*h) echo $((${1%h} * 3600)) ;;
	*) echo "$1" ;;
	esac
}

run_wrk() {
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
	    "http://127.0.0.1:$port/" > "$tmp/$1.wrk" 2>&1 ||
	    die "wrk failed: $(cat "$tmp/$1.wrk")"
}

mkdir -p "$tmp/pools.d"
port=$(free_port)
worker="$PYTHON examples/http_worker.py"
limit=$(to_bytes "$RECYCLE_MEMORY")
echo "$prog: $WORKERS workers on 127.0.0.1:$port, wrk -t$THREADS" \
    "-c$CONNECTIONS -d$DURATION"

# 0. Calibration: the rate with the leak, the worker's memory at rest.
# Touching fresh memory costs time (a lot in some VMs), so the rate is
# measured with the leak the runs will use.
if [ -z "$LEAK" ]; then
	calibrate 0
	rest=$c_pss
	if [ "$rest" -le 0 ] || [ "$rest" -ge "$limit" ]; then
		die "worker memory at rest ($rest bytes) is not below" \
		    "RECYCLE_MEMORY=$RECYCLE_MEMORY: raise it"
	fi
	# Twice: the leak slows the rate, the rate sets the leak.
	calibrate "$(leak_for "$c_rps")"
	LEAK=$(leak_for "$c_rps")
	echo "$prog: worker at rest $((rest >> 10)) KiB PSS:" \
	    "--leak $LEAK crosses $RECYCLE_MEMORY every ~${LIFETIME}s"
else
	calibrate "$LEAK"
fi

# The baseline leaks too (same work per request) and nothing recycles
# its workers: refuse a run that would eat half of the free memory (the
# rate was measured with a leak no larger than LEAK: an upper bound).
grow=$(awk -v l="$(to_bytes "$LEAK")" -v r="$c_rps" \
    -v d="$(to_seconds "$DURATION")" 'BEGIN { printf "%.0f", l * r * d }')
avail=$(awk '/^MemAvailable:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
if [ "$grow" -gt $((avail / 2)) ]; then
	die "the baseline would leak ~$((grow >> 20)) MiB at $c_rps req/s" \
	    "(--leak $LEAK for $DURATION), over half of the available" \
	    "$((avail >> 20)) MiB: set a shorter DURATION or a smaller LEAK"
fi

# 1. Baseline: the same workers, never recycled.
write_config baseline "command = $worker --leak $LEAK"
start_daemon baseline
run_wrk baseline
stop_daemon
b=$(parse_wrk baseline) || exit 1
read -r b_rps b_non2xx b_sock b_p50 b_p99 <<EOF
$b
EOF

# 2. Recycling.
write_config recycling "command = $worker --leak $LEAK
recycle_memory = $RECYCLE_MEMORY"
start_daemon recycling
before=$(grep -c 'recycling (' "$tmp/recycling.log" || true)
run_wrk recycling
after=$(grep -c 'recycling (' "$tmp/recycling.log" || true)
stop_daemon
r=$(parse_wrk recycling) || exit 1
read -r r_rps r_non2xx r_sock r_p50 r_p99 <<EOF
$r
EOF
recycles=$((after - before))

fmt='%-10s %12s %8s %8s %10s %10s\n'
echo
# shellcheck disable=SC2059 # the format is ours
{
	printf "$fmt" run 'req/s' non-2xx sock.err 'p50 ms' 'p99 ms'
	printf "$fmt" baseline "$b_rps" "$b_non2xx" "$b_sock" "$b_p50" "$b_p99"
	printf "$fmt" recycling "$r_rps" "$r_non2xx" "$r_sock" "$r_p50" \
	    "$r_p99"
}
echo "socket errors: baseline ($(sock_detail baseline));" \
    "recycling ($(sock_detail recycling))"
ratio=$(awk -v a="$r_p99" -v b="$b_p99" \
    'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
echo "p99 ratio (recycling / baseline): $ratio"
echo "recycles during the recycling run: $recycles" \
    "(--leak $LEAK, recycle_memory $RECYCLE_MEMORY)"
