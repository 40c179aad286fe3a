#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/scale.sh - what the daemon costs as the pool grows: 100, 1000 and
# 10,000 workers of one pool, started from nothing.
#
# For each worker kind and size the daemon (src/recyclerd of this tree) runs
# a generated configuration in a temp dir, with NOTIFY_SOCKET pointing at a
# small python3 listener of ours that plays systemd: when the daemon's
# READY=1 arrives (sent once every worker is ready), the listener takes the
# time and reads the daemon's CPU at once (utime+stime of /proc/PID/stat,
# and the finer time on CPU of /proc/PID/task/*/schedstat, in ns). Then,
# after SETTLE seconds, the daemon's CPU over a REST second window (workers
# idle, the daemon sampling their memory every SAMPLE_INTERVAL), its VmRSS
# (/proc/PID/status) and its open descriptors (/proc/PID/fd).
#
# Kinds:
#   spawn   /bin/sleep 1000000, ready = spawn (started is ready)
#   notify  bench/notify_worker.c (built here with $CC, plain libc): sends
#           READY=1 to its NOTIFY_SOCKET and waits, ready = notify
#
# Columns: wall s and CPU s to READY; us/worker, the daemon's CPU (schedstat)
# to READY divided by the workers: the per-event cost (a spawn, a reaped
# start-up, a READY=1); CPU ms/s at rest; RSS; fds. Below the table, for
# each kind, the ratio of us/worker at the largest size that finished to
# that at the smallest: flat is 1.0. The target: 10,000 workers ready with
# under 2 s of daemon CPU, and that ratio near 1.
#
# A size that is not READY within TIME_LIMIT seconds prints "timeout" with
# the workers ready by then (": ready after" lines of the daemon's log) and
# the CPU spent; the daemon is stopped and the next size runs. Everything
# started is stopped on exit (trap). The load average is printed: on a shared machine wall
# times are upper bounds.
#
# Environment (defaults):
#   RECYCLERD        src/recyclerd of this tree
#   CC               cc
#   SIZES            "100 1000 10000"
#   KINDS            "spawn notify"
#   TIME_LIMIT       120     seconds allowed per size to READY
#   SETTLE           2       seconds between READY and the rest window
#   REST             10      seconds of the rest window
#   SAMPLE_INTERVAL  1s      sample_interval of the pool (memory_metric rss,
#                            recycle_memory 1G: sampled, never recycled)
#   CGROUP           none    cgroup = of [recyclerd] (auto: one group per
#                            worker, as in production, where it can)
#   KEEP             unset   set to keep the temp dir (configs, logs)
#
# Exit status: 0 when every size ran (timeouts included: they are figures),
# 1 on a failure to run, 2 when a binary is missing.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
RECYCLERD=${RECYCLERD:-$top/src/recyclerd}
CC=${CC:-cc}
SIZES=${SIZES:-100 1000 10000}
KINDS=${KINDS:-spawn notify}
TIME_LIMIT=${TIME_LIMIT:-120}
SETTLE=${SETTLE:-2}
REST=${REST:-10}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-1s}
CGROUP=${CGROUP:-none}
PYTHON3=${PYTHON3:-$(command -v /usr/bin/python3 || command -v python3)}

for b in "$RECYCLERD"; do
	[ -x "$b" ] || { echo "scale: $b not found (make it first)" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/scale.XXXXXX)
DPID=
LPID=

# stop PID SECONDS: SIGTERM, SIGKILL after SECONDS (the workers die with the
# daemon: pdeathsig), and reap it.
stop() {
	local pid=$1 n=$(($2 * 10))

	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while [ $n -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
		n=$((n - 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "scale: $pid still running after SIGTERM, killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	trap - EXIT INT TERM
	stop "$DPID" 60
	stop "$LPID" 5
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
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
now_ns() { date +%s%N; }

# The fd limit: a few descriptors per worker (pipes of its output, its
# process descriptor) and more for the daemon's own.
max=0
for n in $SIZES; do [ "$n" -gt "$max" ] && max=$n; done
want=$((max * 6 + 1024))
if [ "$(ulimit -n)" -lt "$want" ]; then
	ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if [ "$(ulimit -n)" -lt "$want" ]; then
	echo "scale: warning: the fd limit is $(ulimit -n) (raising it needs CAP_SYS_RESOURCE)," \
	    "below the $want that $max workers may need: spawns past about" \
	    "$(( ($(ulimit -n) - 100) / 5 )) workers will fail" >&2
fi
if [ "$max" -gt $(( $(cat /proc/sys/kernel/pid_max) - 2000 )) ]; then
	echo "scale: kernel.pid_max $(cat /proc/sys/kernel/pid_max) is too low for $max workers" >&2
	exit 1
fi

case " $KINDS " in
*" notify "*)
	"$CC" -std=gnu11 -O2 -Wall -Wextra -o "$tmp/notify_worker" \
	    "$here/notify_worker.c" || exit 1 ;;
esac
mkdir "$tmp/pools.d"

# The systemd side: print "ready WALL_NS TICKS SCHED_NS" on the first READY=1
# of the sender, whose pid comes with the message (SO_PASSCRED).
cat > "$tmp/listener.py" <<'EOF'
import os, socket, struct, sys, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
open(out + ".bound", "w").close()
done = False
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    t = time.time_ns()
    if done or b"READY=1" not in msg.split(b"\n"):
        continue
    pid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    ns = 0
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
            ns += int(f.read().split()[0])
    with open(out, "w") as f:
        f.write("ready %d %d %d\n" % (t, int(st[11]) + int(st[12]), ns))
    done = True
EOF

# run KIND SIZE: one daemon, one row.
run() {
	local kind=$1 n=$2 name=$1-$2 cmd ready t0 t_end line nready
	local wall cpu_s us c0 c1 n0 n1 rss fds la

	case $kind in
	spawn) cmd="/bin/sleep 1000000"; ready=spawn ;;
	notify) cmd="$tmp/notify_worker"; ready=notify ;;
	*) echo "scale: unknown kind $kind" >&2; exit 1 ;;
	esac
	cat > "$tmp/$name.conf" <<EOF
[recyclerd]
control_socket = $tmp/$name.sock
pools_dir = $tmp/pools.d
cgroup = $CGROUP

[pool bench]
command = $cmd
workers = $n
ready = $ready
ready_timeout = ${TIME_LIMIT}s
memory_metric = rss
recycle_memory = 1G
sample_interval = $SAMPLE_INTERVAL
rapid_fail = 0
EOF
	rm -f "$tmp/sd.sock" "$tmp/$name.ready" "$tmp/$name.ready.bound"
	"$PYTHON3" "$tmp/listener.py" "$tmp/sd.sock" "$tmp/$name.ready" &
	LPID=$!
	while [ ! -e "$tmp/$name.ready.bound" ]; do
		kill -0 "$LPID" 2>/dev/null || { echo "scale: the listener failed" >&2; exit 1; }
		sleep 0.05
	done
	la=$(loadavg)
	t0=$(now_ns)
	NOTIFY_SOCKET=$tmp/sd.sock "$RECYCLERD" -c "$tmp/$name.conf" \
	    > "$tmp/$name.log" 2>&1 &
	DPID=$!
	t_end=$((t0 + TIME_LIMIT * 1000000000))
	while [ ! -s "$tmp/$name.ready" ]; do
		if ! kill -0 "$DPID" 2>/dev/null; then
			echo "scale: $name: the daemon exited; its log:" >&2
			tail -n 20 "$tmp/$name.log" >&2
			exit 1
		fi
		[ "$(now_ns)" -lt "$t_end" ] || break
		sleep 0.05
	done
	if [ -s "$tmp/$name.ready" ]; then
		read -r _ t1 ticks ns < "$tmp/$name.ready"
		wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
		cpu_s=$(awk -v t="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')
		us=$(awk -v ns="$ns" -v n="$n" 'BEGIN { printf "%.1f", ns / 1e3 / n }')
		echo "$kind $n $us" >> "$tmp/per_worker"
		sleep "$SETTLE"
		c0=$(cpu_ticks "$DPID"); n0=$(cpu_ns "$DPID"); w0=$(now_ns)
		sleep "$REST"
		c1=$(cpu_ticks "$DPID"); n1=$(cpu_ns "$DPID"); w1=$(now_ns)
		rest=$(awk -v ns="$((n1 - n0))" -v w="$((w1 - w0))" \
		    'BEGIN { printf "%.2f", ns / 1e6 / (w / 1e9) }')
		rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$DPID/status")
		fds=$(ls "/proc/$DPID/fd" | wc -l)
		line=$(printf '%-7s %6s %8s %8s %10s %12s %9s %7s' "$kind" "$n" \
		    "$wall" "$cpu_s" "$us" "$rest" "$rss" "$fds")
	else
		ticks=$(cpu_ticks "$DPID")
		# The log, not the control socket: a daemon this far behind may
		# not answer in recyclerctl's 10 s.
		nready=$(grep -c ': ready after ' "$tmp/$name.log" || true)
		line=$(printf '%-7s %6s %8s %8s  (%s/%s ready after %ss)' "$kind" "$n" \
		    timeout "$(awk -v t="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')" \
		    "$nready" "$n" "$TIME_LIMIT")
	fi
	rows+=("$line  $la")
	echo "$line"
	stop "$DPID" 120
	DPID=
	stop "$LPID" 5
	LPID=
}

echo "scale: $(nproc) CPUs, cgroup = $CGROUP, sample_interval = $SAMPLE_INTERVAL, fd limit $(ulimit -n), load average $(loadavg)"
rows=()
: > "$tmp/per_worker"
for kind in $KINDS; do
	for n in $SIZES; do
		run "$kind" "$n"
	done
done

echo
echo "Daemon cost by pool size: wall and CPU (utime+stime) from start to READY=1,"
echo "us/worker = CPU to READY (schedstat) per worker, CPU at rest over ${REST}s (schedstat),"
echo "VmRSS and open fds at rest"
printf '%-7s %6s %8s %8s %10s %12s %9s %7s  %s\n' kind workers "wall s" "CPU s" \
    us/worker "rest ms/s" "RSS MiB" fds "load avg at start"
printf '%s\n' "${rows[@]}"
echo
for kind in $KINDS; do
	awk -v k="$kind" '$1 == k { if (lo == "") { lo = $3; nlo = $2 } hi = $3; nhi = $2 }
	    END { if (lo == "" || nlo == nhi) printf "%s: per-worker ratio: n/a (fewer than two sizes finished)\n", k;
		else printf "%s: per-worker CPU ratio %s/%s workers: %.2f (%s us / %s us)\n",
		    k, nhi, nlo, (lo > 0 ? hi / lo : 0), hi, lo }' "$tmp/per_worker"
done
