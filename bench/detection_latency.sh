#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/detection_latency.sh - how fast the daemon notices a worker crossing
# recycle_memory, event-driven against polling, and what watching idle
# workers costs it in CPU either way.
#
# 1. Detection latency. bench/latency_worker.c (built here) waits, then
#    allocates quickly past recycle_memory, reading the daemon's own figure
#    after each page near the threshold; the CLOCK_MONOTONIC instant its
#    figure first goes over is the crossing ("stdout: crossed USEC" in the
#    daemon's log). The end point is the daemon's "sent SIGTERM at
#    monotonic USECus" (a debug line, hence -v); the worker's own clock at
#    the arrival of SIGTERM ("term USEC") is printed beside it. The pool
#    has overlap = no and recycle_samples = 1, so the drain follows the
#    decision directly; jitter = 0%, so the threshold is exact; max_recycling
#    = workers, so crossings never queue. The daemon recycles the worker,
#    the replacement does it again, until CROSSINGS recycles are logged.
#    Modes:
#      events      memory_metric = cgroup on this host's hierarchy (cgroup
#                  = auto: the v1 usage threshold eventfd here, memory.events
#                  on v2), sample_interval = 10s: polling cannot explain a
#                  fast detection
#      poll-1s     memory_metric = rss, cgroup = none, sample_interval = 1s
#      poll-100ms  the same at 100ms
#    Each worker sleeps SETTLE (default: the sample interval + 300 ms), a
#    random 0..SPREAD ms and a random 0-200 ms before it allocates. SETTLE
#    keeps the crossing clear of READY=1: the daemon samples a worker's
#    baseline when it becomes ready, and a worker already over the limit
#    then is a configuration error, not a recycle. SPREAD (default: what makes
#    SPREAD + 200 a whole number of sample intervals) keeps the workers,
#    all started at once, from crossing at once (on a 2-CPU machine 25
#    workers allocating together keep the daemon waiting for a CPU, and
#    that is what would be measured), and keeps the crossings uniform over
#    the polling phase (a replacement starts just after the sample that
#    recycled its predecessor: a fixed delay would lock the crossings to
#    the samples). SETTLE=0 SPREAD=0 EV_WORKERS=1 gives the pure 0-200 ms
#    design with one worker at a time.
#    Crossings are counted only for workers the daemon logged "recycling
#    (memory)" for.
#
# 2. CPU cost. IDLE_WORKERS (1000) tests/helpers/cworker --leak 0
#    --interval 3600000 (no leak, no TASKS= traffic), recycle_memory far
#    above them: events (cgroup metric, sample_interval 10s) and polled (rss
#    at 1s, cgroup = none). ready_timeout is 10m: the daemon reads READY=1
#    far behind its spawns while it starts a thousand workers, and on a busy
#    host with per-worker v1 cgroups (about 20 spawns/s) the first ones would
#    pass the default 30s unheard. After "ready: all pools are up" and SETTLE_CPU
#    seconds, the daemon's utime+stime (/proc/PID/stat) and its time on CPU
#    (/proc/PID/task/*/schedstat, ns) are read at both ends of a CPU_WINDOW
#    second window.
#
# Everything it starts is stopped on exit (trap), and the v1 cgroups a
# daemon that had to be SIGKILLed left behind are removed. The load average
# is printed: the machine may be shared, and latencies and CPU time of a
# busy machine are upper bounds.
#
# Environment (defaults):
#   RECYCLERD     src/recyclerd of this tree
#   CWORKER       tests/helpers/cworker of this tree
#   CC            gcc                  builds bench/latency_worker.c
#   MODES         "events poll-1s poll-100ms"
#   CROSSINGS     50                   recycles measured per mode
#   THRESHOLD     16M                  recycle_memory of the latency runs
#   EV_WORKERS    25                   workers of the events run
#   POLL_WORKERS  10                   workers of the polling runs
#   SETTLE        (per mode, see 1)    ms before the random part
#   SPREAD        (per mode, see 1)    ms, random, before the 0-200 ms
#   RUN_WAIT      300                  seconds allowed per latency run
#   CPU_RUNS      "events poll-1s"     ("" skips part 2)
#   IDLE_WORKERS  1000
#   CPU_WINDOW    20                   seconds
#   SETTLE_CPU    3                    seconds between ready and the window
#   READY_WAIT    300                  seconds allowed for the idle workers
#   KEEP          unset                set to keep the temp dir (logs)
#
# Exit status: 0 when every run completed (the numbers are not judged
# here), 1 on a failure to run, 2 when a binary is missing.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
RECYCLERD=${RECYCLERD:-$top/src/recyclerd}
CWORKER=${CWORKER:-$top/tests/helpers/cworker}
CC=${CC:-gcc}
MODES=${MODES-events poll-1s poll-100ms}
CROSSINGS=${CROSSINGS:-50}
THRESHOLD=${THRESHOLD:-16M}
EV_WORKERS=${EV_WORKERS:-25}
POLL_WORKERS=${POLL_WORKERS:-10}
RUN_WAIT=${RUN_WAIT:-300}
CPU_RUNS=${CPU_RUNS-events poll-1s}
IDLE_WORKERS=${IDLE_WORKERS:-1000}
CPU_WINDOW=${CPU_WINDOW:-20}
SETTLE_CPU=${SETTLE_CPU:-3}
READY_WAIT=${READY_WAIT:-300}

for b in "$RECYCLERD" "$CWORKER"; do
	[ -x "$b" ] || { echo "detection_latency: $b not found (make it first)" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/detection_latency.XXXXXX)
daemons=""		# pids of daemons still to stop
cg_dirs=""		# cgroup instance directories to check at exit

# stop_daemon PID: SIGTERM, then SIGKILL after 30 s (workers die with it:
# pdeathsig), and reap it.
stop_daemon() {
	local pid=$1 n=300

	kill -TERM "$pid" 2>/dev/null || true
	while [ $n -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
		n=$((n - 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "detection_latency: daemon $pid still running 30 s after SIGTERM, killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	daemons=$(echo "$daemons" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ' || true)
}

# remove_cgroups DIR: what a killed daemon left (an orderly exit leaves
# nothing): kill every process in the tree, then rmdir it bottom-up.
remove_cgroups() {
	local dir=$1 n=50

	[ -d "$dir" ] || return 0
	find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null |
	    xargs -r kill -KILL 2>/dev/null || true
	while [ $n -gt 0 ] && [ -d "$dir" ]; do
		find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
		sleep 0.1
		n=$((n - 1))
	done
	[ -d "$dir" ] && echo "detection_latency: could not remove $dir" >&2
	return 0
}

cleanup() {
	local pid dir

	trap - EXIT INT TERM
	for pid in $daemons; do stop_daemon "$pid"; done
	for dir in $cg_dirs; do remove_cgroups "$dir"; done
	if [ -n "${KEEP:-}" ]; then
		echo "logs kept in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# start_daemon NAME [-v]: run the daemon on $tmp/NAME.conf, log to
# $tmp/NAME.log; sets DPID. Waits for "ready: all pools are up".
start_daemon() {
	local name=$1 wait_s=$2 verbose=${3:-} n dir

	"$RECYCLERD" $verbose -c "$tmp/$name.conf" > "$tmp/$name.log" 2>&1 &
	DPID=$!
	daemons="$daemons $DPID"
	n=$((wait_s * 10))
	while ! grep -q 'ready: all pools are up' "$tmp/$name.log"; do
		if ! kill -0 "$DPID" 2>/dev/null || [ $n -le 0 ]; then
			echo "detection_latency: $name: the daemon did not get ready; its log:" >&2
			tail -n 20 "$tmp/$name.log" >&2
			exit 1
		fi
		sleep 0.1
		n=$((n - 1))
	done
	dir=$(sed -n 's/.* cgroups: \(\/[^:]*\): .*/\1/p' "$tmp/$name.log" | head -n 1)
	[ -n "$dir" ] && cg_dirs="$cg_dirs $dir"
	return 0
}

# ---- build the worker
"$CC" -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -o "$tmp/latency_worker" \
    "$here/latency_worker.c" || exit 1

echo "detection_latency: $(nproc) CPUs, load average $(loadavg) at start"
echo

# ---- 1. detection latency
# percentile FILE P: nearest-rank percentile of the numbers in FILE
percentile() {
	sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 }
	    END { if (NR == 0) { print "-"; exit } i = int((p * NR + 99) / 100);
	    if (i < 1) i = 1; printf "%.3f", v[i] }'
}

declare -A lat_row
for mode in $MODES; do
	case $mode in
	events)	metric=cgroup; cg=auto; interval_ms=10000; workers=$EV_WORKERS ;;
	poll-1s) metric=rss; cg=none; interval_ms=1000; workers=$POLL_WORKERS ;;
	poll-100ms) metric=rss; cg=none; interval_ms=100; workers=$POLL_WORKERS ;;
	*) echo "detection_latency: unknown mode $mode" >&2; exit 1 ;;
	esac
	settle=${SETTLE:-$((interval_ms + 300))}
	spread=${SPREAD:-$(( (200 + interval_ms - 1) / interval_ms * interval_ms - 200 ))}
	cat > "$tmp/$mode.conf" <<EOF
[recyclerd]
control_socket = $tmp/$mode.sock
cgroup = $cg

[pool lat]
command = $tmp/latency_worker --threshold $THRESHOLD --metric $metric --settle $settle --jitter $((spread + 200)) --notify
workers = $workers
ready = notify
memory_metric = $metric
recycle_memory = $THRESHOLD
recycle_samples = 1
sample_interval = ${interval_ms}ms
jitter = 0%
overlap = no
max_recycling = $workers
drain_timeout = 5s
rapid_fail = 0
EOF
	la0=$(loadavg)
	t0=$(date +%s.%N)
	start_daemon "$mode" 60 -v
	log=$tmp/$mode.log
	n=$((RUN_WAIT * 10))
	while [ "$(grep -c 'recycling (memory)' "$log" || true)" -lt "$CROSSINGS" ]; do
		if [ $n -le 0 ] || ! kill -0 "$DPID" 2>/dev/null; then
			echo "detection_latency: $mode: only $(grep -c 'recycling (memory)' "$log" || true) recycles within ${RUN_WAIT}s" >&2
			break
		fi
		sleep 0.2
		n=$((n - 2))
	done
	sleep 0.5		# let the last drains be logged
	stop_daemon "$DPID"
	t1=$(date +%s.%N)
	how=$(sed -n 's/.* cgroups: \(.*\)/\1/p' "$log" | head -n 1)
	# pid -> crossed, sent, term; only pids recycled for memory
	awk -v out="$tmp/$mode" '
	    match($0, /\[pid [0-9]+\]/) { pid = substr($0, RSTART + 5, RLENGTH - 6) }
	    / stdout: crossed [0-9]+$/ { crossed[pid] = $NF }
	    / stdout: term [0-9]+$/ { term[pid] = $NF }
	    / sent SIG[A-Z0-9]+ at monotonic [0-9]+us$/ { s = $NF; sub(/us$/, "", s); sent[pid] = s }
	    / recycling \(memory\): / { mem[pid] = 1 }
	    END {
		for (p in mem) {
			if (!(p in crossed)) continue
			if (p in sent) printf "%.3f\n", (sent[p] - crossed[p]) / 1000 > (out ".sent")
			if (p in term) printf "%.3f\n", (term[p] - crossed[p]) / 1000 > (out ".term")
		}
	    }' "$log"
	touch "$tmp/$mode.sent" "$tmp/$mode.term"
	nsent=$(wc -l < "$tmp/$mode.sent")
	nterm=$(wc -l < "$tmp/$mode.term")
	baseline=$(grep -c 'configuration error' "$log" || true)
	lat_row[$mode]=$(printf '%-11s %-7s %-8s %4s %9s %9s %9s  %4s %9s %9s  %5s  %s' \
	    "$mode" "$metric" "$([ $interval_ms -ge 1000 ] && echo $((interval_ms / 1000))s || echo ${interval_ms}ms)" \
	    "$nsent" "$(percentile "$tmp/$mode.sent" 50)" "$(percentile "$tmp/$mode.sent" 99)" \
	    "$(percentile "$tmp/$mode.sent" 100)" \
	    "$nterm" "$(percentile "$tmp/$mode.term" 50)" "$(percentile "$tmp/$mode.term" 99)" \
	    "$baseline" "$la0")
	echo "$mode: $workers workers, settle ${settle}ms + 0..$((spread + 200))ms, $(awk "BEGIN { printf \"%.0f\", $t1 - $t0 }")s, cgroups: $how"
	[ "$baseline" -eq 0 ] || echo "$mode: $baseline 'configuration error' verdicts (crossings taken for a baseline): $(grep -m 1 'configuration error' "$log" | sed 's/.*: configuration error/configuration error/')"
done

if [ -n "$MODES" ]; then
	echo
	echo "Detection latency, ms: crossing (worker's clock) -> the daemon sends SIGTERM"
	echo "(its 'sent ... at monotonic' line) | -> the worker receives it"
	printf '%-11s %-7s %-8s %4s %9s %9s %9s  %4s %9s %9s  %5s  %s\n' \
	    mode metric interval n median p99 max n median p99 basel "load avg at start"
	for mode in $MODES; do echo "${lat_row[$mode]}"; done
fi

# ---- 2. CPU cost of watching idle workers
[ -n "$CPU_RUNS" ] || exit 0
hz=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
declare -A cpu_row
for run in $CPU_RUNS; do
	case $run in
	events) metric=cgroup; cg=auto; interval=10s ;;
	poll-1s) metric=rss; cg=none; interval=1s ;;
	*) echo "detection_latency: unknown CPU run $run" >&2; exit 1 ;;
	esac
	cat > "$tmp/cpu-$run.conf" <<EOF
[recyclerd]
control_socket = $tmp/cpu-$run.sock
cgroup = $cg

[pool idle]
command = $CWORKER --leak 0 --interval 3600000
workers = $IDLE_WORKERS
ready = notify
ready_timeout = 10m
memory_metric = $metric
recycle_memory = 512M
sample_interval = $interval
rapid_fail = 0
EOF
	t0=$(date +%s.%N)
	start_daemon "cpu-$run" "$READY_WAIT"
	t_ready=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
	sleep "$SETTLE_CPU"
	la0=$(loadavg)
	w0=$(date +%s.%N); c0=$(cpu_ticks "$DPID"); n0=$(cpu_ns "$DPID")
	sleep "$CPU_WINDOW"
	w1=$(date +%s.%N); c1=$(cpu_ticks "$DPID"); n1=$(cpu_ns "$DPID")
	la1=$(loadavg)
	nw=$(grep -c ': ready after ' "$tmp/cpu-$run.log" || true)
	how=$(sed -n 's/.* cgroups: \(.*\)/\1/p' "$tmp/cpu-$run.log" | head -n 1)
	stop_daemon "$DPID"
	cpu_row[$run]=$(awk -v run="$run" -v m="$metric" -v iv="$interval" \
	    -v nw="$nw" -v hz="$hz" -v c="$((c1 - c0))" -v ns="$((n1 - n0))" \
	    -v w="$(awk "BEGIN { print $w1 - $w0 }")" -v la0="$la0" -v la1="$la1" \
	    'BEGIN { ms = c * 1000 / hz; printf "%-8s %-7s %-8s %7d %7.1f %9.2f %8.2f%%  %11.2f  %s -> %s",
		run, m, iv, nw, w, ms / w, ms / w / 10, ns / 1e6 / w, la0, la1 }')
	echo "cpu-$run: $nw workers ready after ${t_ready}s, cgroups: $how"
done
echo
echo "Daemon CPU watching $IDLE_WORKERS idle workers (utime+stime of /proc/PID/stat, ${hz} Hz ticks;"
echo "schedstat: time on CPU in ns, finer)"
printf '%-8s %-7s %-8s %7s %7s %9s %9s  %11s  %s\n' \
    mode metric interval workers window_s "CPU ms/s" "% core" "sched ms/s" "load avg (window start -> end)"
for run in $CPU_RUNS; do echo "${cpu_row[$run]}"; done
exit 0
