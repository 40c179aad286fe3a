#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/soak.sh - does the daemon keep its own memory and descriptors flat
# over many recycles? WORKERS fast-leaking workers (tests/helpers/cworker
# --leak LEAK --interval INTERVAL: LEAK more resident memory every INTERVAL
# ms) in one pool with a low recycle_memory, a short sample_interval and
# recycle_samples = 1, so that every worker is recycled a fraction of a
# second after it is ready, over and over, until RECYCLES recycles.
#
# Every STEP recycles (the pool's memory recycles in `recyclerctl --json
# status`) it stops the pool (recyclerctl stop), waits until no worker is
# left, prints the daemon's VmRSS and RssAnon (/proc/PID/status; RssAnon is
# its heap and stacks, where a leak shows, the rest of VmRSS is library
# pages, which grow a little as code paths are first run), its open
# descriptors (/proc/PID/fd), its CPU so far and the recycle rate, and
# starts the pool again: with no worker alive, two checkpoints compare (a
# live worker holds descriptors and memory of the daemon). At the end, the
# growth of RSS, anon and fds from the first checkpoint to the last.
# Target: under 1 % from 1,000 to 10,000 recycles. Before about 1,000
# recycles the RSS grows as the event ring (EVENTS_MAX = 1024 events,
# allocated at start, touched as it fills) gets its pages: a smaller STEP
# shows that, not a leak.
#
# --valgrind: a shorter soak (RECYCLES 300, WORKERS 4, slower leak) with the
# daemon under valgrind --leak-check=full; after an orderly stop (SIGTERM)
# it prints valgrind's heap, leak and error summaries. "definitely lost"
# and "indirectly lost" must be 0 and there must be no error; "still
# reachable" at exit is shown, not judged.
#
# Everything started is stopped on exit (trap). The load average is printed:
# on a shared machine the recycle rate is a lower bound.
#
# Environment (defaults; --valgrind's in brackets):
#   RECYCLERD      src/recyclerd of this tree
#   RECYCLERCTL    src/recyclerctl of this tree
#   CWORKER        tests/helpers/cworker of this tree (make check builds it;
#                  or: make tests/helpers/cworker)
#   RECYCLES       10000 [300]
#   STEP           1000 [100]       recycles between two checkpoints
#   WORKERS        16 [4]
#   LEAK           1M               per task
#   INTERVAL       2 [20]           ms between two tasks
#   RECYCLE_MEMORY 12M              recycle_memory (rss)
#   SAMPLE         20ms [50ms]      sample_interval
#   TIME_LIMIT     1800             seconds allowed for the whole soak
#   CGROUP         none             cgroup = of [recyclerd]
#   KEEP           unset            set to keep the temp dir (config, logs)
#
# Exit status: 0 when the soak ran to the end (and, with --valgrind,
# valgrind found no error and no definite or indirect leak), 1 otherwise,
# 2 when a binary is missing.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
valgrind=
case ${1:-} in
--valgrind) valgrind=1 ;;
"") ;;
*) echo "usage: $0 [--valgrind]" >&2; exit 2 ;;
esac
RECYCLERD=${RECYCLERD:-$top/src/recyclerd}
RECYCLERCTL=${RECYCLERCTL:-$top/src/recyclerctl}
CWORKER=${CWORKER:-$top/tests/helpers/cworker}
RECYCLES=${RECYCLES:-${valgrind:+300}}
RECYCLES=${RECYCLES:-10000}
STEP=${STEP:-${valgrind:+100}}
STEP=${STEP:-1000}
WORKERS=${WORKERS:-${valgrind:+4}}
WORKERS=${WORKERS:-16}
LEAK=${LEAK:-1M}
INTERVAL=${INTERVAL:-${valgrind:+20}}
INTERVAL=${INTERVAL:-2}
RECYCLE_MEMORY=${RECYCLE_MEMORY:-12M}
SAMPLE=${SAMPLE:-${valgrind:+50ms}}
SAMPLE=${SAMPLE:-20ms}
TIME_LIMIT=${TIME_LIMIT:-1800}
CGROUP=${CGROUP:-none}
PYTHON3=${PYTHON3:-$(command -v /usr/bin/python3 || command -v python3)}

for b in "$RECYCLERD" "$RECYCLERCTL" "$CWORKER"; do
	[ -x "$b" ] || { echo "soak: $b not found (make it first)" >&2; exit 2; }
done
if [ -n "$valgrind" ] && ! command -v valgrind >/dev/null; then
	echo "soak: valgrind not found" >&2
	exit 2
fi

tmp=$(mktemp -d /tmp/soak.XXXXXX)
DPID=

cleanup() {
	local n=600

	trap - EXIT INT TERM
	if [ -n "$DPID" ]; then
		kill -TERM "$DPID" 2>/dev/null || true
		while [ $n -gt 0 ] && kill -0 "$DPID" 2>/dev/null; do
			sleep 0.1
			n=$((n - 1))
		done
		kill -KILL "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
	if [ -n "${KEEP:-}" ]; then
		echo "logs kept in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
hz=$(getconf CLK_TCK)
now() { date +%s.%N; }

mkdir "$tmp/pools.d"
cat > "$tmp/soak.conf" <<EOF
[recyclerd]
control_socket = $tmp/control.sock
pools_dir = $tmp/pools.d
cgroup = $CGROUP

[pool soak]
command = $CWORKER --leak $LEAK --interval $INTERVAL
workers = $WORKERS
ready = notify
memory_metric = rss
recycle_memory = $RECYCLE_MEMORY
recycle_samples = 1
sample_interval = $SAMPLE
jitter = 0%
max_recycling = $WORKERS
drain_timeout = 5s
rapid_fail = 0
EOF

# pool FIELD: a number of the pool's status (recycles: its memory
# recycles), or nothing if the daemon does not answer (yet).
pool() {
	"$RECYCLERCTL" -s "$tmp/control.sock" --json status soak 2>/dev/null |
	    "$PYTHON3" -c 'import json, sys
p = json.load(sys.stdin)["pools"][0]
print(p["recycles"]["memory"] if sys.argv[1] == "recycles" else p[sys.argv[1]])' \
	    "$1" 2>/dev/null || true
}
ctl() { "$RECYCLERCTL" -s "$tmp/control.sock" "$@" >/dev/null; }

# checkpoint: stop the pool, wait for its last worker to go, read the
# daemon's RSS and fds (with no worker, so that the figures of two
# checkpoints compare: a live worker holds descriptors), start it again.
checkpoint() {
	local n=600

	ctl stop soak
	while [ "$(pool size)" != 0 ]; do
		[ $n -gt 0 ] || { echo "soak: the pool did not stop" >&2; exit 1; }
		sleep 0.1
		n=$((n - 1))
	done
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status")
	anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$DPID/status")
	fds=$(ls "/proc/$DPID/fd" | wc -l)
	ticks=$(sed 's/.*) //' "/proc/$DPID/stat" | awk '{ print $12 + $13 }')
	ctl start soak
}

echo "soak: $WORKERS workers leaking $LEAK every ${INTERVAL}ms, recycle_memory $RECYCLE_MEMORY (rss)," \
    "sample_interval $SAMPLE, cgroup = $CGROUP, $RECYCLES recycles${valgrind:+, under valgrind}"
echo "soak: $(nproc) CPUs, load average $(loadavg)"
if [ -n "$valgrind" ]; then
	valgrind --leak-check=full --show-leak-kinds=definite,indirect \
	    --errors-for-leak-kinds=definite,indirect \
	    --child-silent-after-fork=yes --log-file="$tmp/valgrind.log" \
	    "$RECYCLERD" -c "$tmp/soak.conf" > "$tmp/daemon.log" 2>&1 &
else
	"$RECYCLERD" -c "$tmp/soak.conf" > "$tmp/daemon.log" 2>&1 &
fi
DPID=$!
t0=$(now)

printf '%9s %8s %9s %9s %5s %8s %10s  %s\n' recycles "time s" "RSS KiB" "anon KiB" fds "CPU s" "recycles/s" "load avg"
next=$STEP
first_rss= first_anon= first_fds= last_rss= last_anon= last_fds=
while :; do
	if ! kill -0 "$DPID" 2>/dev/null; then
		echo "soak: the daemon exited; its log:" >&2
		tail -n 20 "$tmp/daemon.log" >&2
		exit 1
	fi
	if awk -v a="$t0" -v b="$(now)" -v l="$TIME_LIMIT" 'BEGIN { exit !(b - a > l) }'; then
		echo "soak: only $(pool recycles) recycles within ${TIME_LIMIT}s" >&2
		exit 1
	fi
	n=$(pool recycles)
	if [ -n "$n" ] && [ "$n" -ge "$next" ]; then
		checkpoint
		t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
		printf '%9s %8s %9s %9s %5s %8s %10s  %s\n' "$n" "$t" "$rss" "$anon" "$fds" \
		    "$(awk -v c="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", c / hz }')" \
		    "$(awk -v n="$n" -v t="$t" 'BEGIN { printf "%.1f", n / t }')" "$(loadavg)"
		[ -n "$first_rss" ] || { first_rss=$rss; first_anon=$anon; first_fds=$fds; }
		last_rss=$rss last_anon=$anon last_fds=$fds
		[ "$n" -lt "$RECYCLES" ] || break
		while [ "$next" -le "$n" ]; do next=$((next + STEP)); done
		[ "$next" -le "$RECYCLES" ] || next=$RECYCLES
	fi
	sleep 0.2
done

echo
awk -v r0="$first_rss" -v r1="$last_rss" -v a0="$first_anon" -v a1="$last_anon" \
    -v f0="$first_fds" -v f1="$last_fds" -v s="$STEP" -v n="$n" 'BEGIN {
	printf "growth from %d to %d recycles: RSS %+.2f%% (%d -> %d KiB), anon %+.2f%% (%d -> %d KiB), fds %+.2f%% (%d -> %d)\n",
	    s, n, (r1 - r0) * 100 / r0, r0, r1, (a1 - a0) * 100 / a0, a0, a1,
	    (f1 - f0) * 100 / f0, f0, f1 }'
[ -z "$valgrind" ] || echo "(under valgrind the RSS and fds are valgrind's too: read the leak check below)"
grep -q 'recycling (memory)' "$tmp/daemon.log" ||
    echo "soak: warning: no 'recycling (memory)' line in the daemon's log" >&2

[ -n "$valgrind" ] || exit 0

# An orderly stop, so that valgrind's leak check runs at exit.
kill -TERM "$DPID"
rc=0
wait "$DPID" || rc=$?
DPID=
echo "daemon exit status under valgrind: $rc"
echo "valgrind:"
sed -n 's/^==[0-9]*== //p' "$tmp/valgrind.log" |
    sed -n '/^HEAP SUMMARY/,$p' | sed 's/^/  /'
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$tmp/valgrind.log" | tail -n 1)
lost=$(awk '/definitely lost:|indirectly lost:/ { gsub(",", "", $4); s += $4 } END { print s + 0 }' \
    "$tmp/valgrind.log")
if [ "${errors:-1}" -ne 0 ] || [ "$lost" -ne 0 ]; then
	echo "soak: valgrind: ${errors:-?} errors, $lost bytes definitely or indirectly lost" >&2
	sed -n 's/^==[0-9]*== //p' "$tmp/valgrind.log" | sed -n '1,/^HEAP SUMMARY/p' | head -n 120 >&2
	exit 1
fi
echo "soak: valgrind: no error, no definite or indirect leak"
exit "$rc"
