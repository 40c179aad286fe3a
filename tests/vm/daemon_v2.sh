# SPDX-License-Identifier: MIT
# /daemon_v2.sh inside the VM (see run.sh, payload.sh): the daemon's cgroup
# v2 suite. It starts the real /recyclerd in a fresh delegated group with a
# configuration written to /tmp, drives it with /cworker and /recyclerctl
# and prints one "ok"/"FAIL" line per check; the exit status is 1 when any
# check failed. busybox sh only.
#
# Checks, in order: a stale ROOT/web/worker-9-9 with a sleeper in it (made
# before the start) is killed and removed; the daemon moves itself to the
# leaf ROOT/supervisor and enables +memory; every worker is in its own
# POOL/worker-SLOT-GEN group, with the kernel limits of its pool; a
# replacement starts with fork() made impossible in the daemon's group, so
# through clone3(CLONE_INTO_CGROUP) only; cgroup.kill ends a tree that
# ignores SIGTERM; memory_max OOM kills are logged and recorded as "oom";
# memory_metric = cgroup recycles on a memory.events notification; at
# SIGTERM the daemon exits 0 and leaves nothing but its own empty leaf.
#
# Pools of the one daemon run, side by side so the slow parts overlap:
#   web   two idle workers: groups, placement, stale group of an earlier run
#   ev    memory_metric = cgroup, sample_interval 10s, the worker leaks 17M
#         at 12 s: only a memory.events notification can recycle it before
#         the sample at 20 s
#   oom   memory_max 48M (pool_memory_max 64M), the worker leaks 16M a
#         second: kernel OOM kill
#   tree  a worker with 2 children, all ignoring SIGTERM, drain_timeout 1s:
#         recycled by recyclerctl with fork() made impossible in the
#         daemon's own group (pids.max), so the replacement can only come
#         from clone3(CLONE_INTO_CGROUP); the old tree dies by cgroup.kill
# The guest runs about 10x slower than a host: every wait is generous. It
# takes about 18 s, most of it waiting for the ev worker's leak.
set -u
CG=/sys/fs/cgroup
T=/t1			# the delegated group, as systemd's Delegate=yes gives
ROOT=$CG$T
LOG=/tmp/rd.log
SOCK=/tmp/rd.sock
CONF=/tmp/rd.conf
failures=0
start=$(cut -d' ' -f1 /proc/uptime)

check() {	# check OK|FAIL TEXT...
	if [ "$1" = ok ]; then
		echo "ok   $2"
	else
		echo "FAIL $2"
		failures=$((failures + 1))
	fi
}
ok_if() {	# ok_if CONDITION-STATUS TEXT: check from the last status
	if [ "$1" -eq 0 ]; then check ok "$2"; else check FAIL "$2"; fi
}

# alive PID: running (a zombie counts as gone)
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	case $(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) in
	Z|X|"") return 1 ;;
	esac
	return 0
}

# wait_log PATTERN SECONDS: until a log line matches (grep -E)
wait_log() {
	n=$(($2 * 10))
	while [ $n -gt 0 ]; do
		grep -qE "$1" $LOG && return 0
		alive "$DPID" || { grep -qE "$1" $LOG; return; }
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# wait_gone SECONDS PID...: until none of them is alive
wait_gone() {
	n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		left=
		for p in "$@"; do alive "$p" && left="$left $p"; done
		[ -z "$left" ] && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# spawned_pid POOL SLOT [NTH]: pid of the NTH (default 1st) worker spawned
spawned_pid() {
	sed -n "s/.* pool $1 worker $2 \[pid \([0-9]*\)\]: spawned\$/\1/p" $LOG |
	    sed -n "${3:-1}p"
}

# cg_of PID: its cgroup v2 path ("/t1/web/worker-0-1")
cg_of() {
	sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null
}

dump_log() {
	echo "---- recyclerd log (last 60 lines) ----"
	tail -n 60 $LOG
	echo "----"
}

for f in /recyclerd /recyclerctl /cworker /template_worker; do
	[ -x $f ] || { echo "FAIL $f missing in the guest"; exit 1; }
done

# ---- set-up: the delegated group and a stale worker group of "an
# earlier run", with a process in it
mkdir $ROOT || exit 1
mkdir -p $ROOT/web/worker-9-9
sh -c "echo \$\$ > $ROOT/web/worker-9-9/cgroup.procs && exec sleep 1000" &
STALE=$!
n=50
while [ $n -gt 0 ] && [ "$(cg_of $STALE)" != "$T/web/worker-9-9" ]; do
	sleep 0.1
	n=$((n - 1))
done
[ "$(cg_of $STALE)" = "$T/web/worker-9-9" ]
ok_if $? "stale: sleeper $STALE placed in web/worker-9-9 before the start"

cat > $CONF <<EOF
[recyclerd]
control_socket = $SOCK
cgroup = v2
shutdown_timeout = 5s
jitter = 0%

[pool web]
command = /cworker --leak 0 --interval 1000
workers = 2
ready = notify

[pool ev]
command = /cworker --leak 17M --interval 12000
ready = notify
memory_metric = cgroup
recycle_memory = 16M
recycle_samples = 1
sample_interval = 10s

[pool oom]
command = /cworker --leak 16M --interval 1000
ready = notify
memory_metric = rss
memory_max = 48M
pool_memory_max = 64M

[pool tree]
command = /cworker --leak 0 --interval 1000 --children 2 --ignore-term
ready = notify
drain_timeout = 1s
shutdown_timeout = 2s

[pool tpl]
command = /template_worker
spawn = template
listen = unix:/tmp/tpl.sock
environment = PRELOAD=4M
ready = notify
workers = 2
EOF

# ---- start: as a service manager would, the daemon alone in ROOT
sh -c "echo \$\$ > $ROOT/cgroup.procs && exec /recyclerd -c $CONF" \
    > $LOG 2>&1 &
DPID=$!
if ! wait_log 'ready: all pools are up' 60; then
	if alive $DPID; then
		check FAIL "start: no 'ready: all pools are up' within 60 s"
		kill -9 $DPID 2>/dev/null
	else
		wait $DPID
		check FAIL "start: the daemon exited with status $? before 'ready: all pools are up'"
	fi
	dump_log
	exit 1
fi
check ok "start: pools up after $(awk "BEGIN { print $(cut -d' ' -f1 /proc/uptime) - $start }")s"

grep -q "info    cgroups: $ROOT: " $LOG
ok_if $? "start: $(sed -n 's/.*info    \(cgroups: .*\)/\1/p' $LOG | cut -c1-72)"
[ "$(cg_of $DPID)" = "$T/supervisor" ]
ok_if $? "supervisor: daemon $DPID moved itself to $(cg_of $DPID)"
# Its guard process (a child that outlives it only to kill its workers)
# may share the leaf; nothing else may.
others=
for p in $(cat $ROOT/supervisor/cgroup.procs); do
	[ "$p" = "$DPID" ] && continue
	[ "$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status)" = "$DPID" ] ||
	    others="$others $p"
done
grep -qx "$DPID" $ROOT/supervisor/cgroup.procs && [ -z "$others" ]
ok_if $? "supervisor: only the daemon and its own children in it${others:+ (others:$others)}"
grep -qw memory $ROOT/cgroup.subtree_control
ok_if $? "supervisor: +memory in ROOT subtree_control"

# ---- stale group of an earlier run: killed and removed at start-up
wait_gone 10 $STALE
ok_if $? "stale: sleeper $STALE killed"
wait $STALE 2>/dev/null
[ ! -d $ROOT/web/worker-9-9 ]
ok_if $? "stale: web/worker-9-9 removed"

# ---- per-worker groups, workers inside from their very start
for pw in web:0 web:1 ev:0 oom:0 tree:0; do
	pool=${pw%:*}
	slot=${pw#*:}
	pid=$(spawned_pid $pool $slot)
	if [ -z "$pid" ]; then
		check FAIL "groups: no spawned worker in $pool slot $slot"
		continue
	fi
	g=$(cg_of $pid)
	case $g in
	"$T/$pool/worker-$slot-"[0-9]*)
		grep -qx "$pid" "$CG$g/cgroup.procs"
		ok_if $? "groups: $pool worker $slot [pid $pid] in $g" ;;
	*)
		check FAIL "groups: $pool worker $slot [pid $pid] in '$g'" ;;
	esac
done
# ---- spawn = template: the template in POOL/template-G, each worker it
# forked moved into its own POOL/worker-N-G through the descriptor it got
for slot in 0 1; do
	pid=
	n=100
	while [ -z "$pid" ] && [ $n -gt 0 ]; do
		pid=$(sed -n "s/.* pool tpl worker $slot \[pid \([0-9]*\)\]: forked by the template.*/\1/p" $LOG | head -n 1)
		[ -n "$pid" ] || sleep 0.1
		n=$((n - 1))
	done
	g=$(cg_of "$pid")
	case $g in
	"$T/tpl/worker-$slot-"[0-9]*)
		grep -qx "$pid" "$CG$g/cgroup.procs" &&
		    [ "$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$pid/status)" = "$DPID" ]
		ok_if $? "template: tpl worker $slot [pid $pid] in $g, a child of the daemon" ;;
	*)
		check FAIL "template: tpl worker $slot [pid '$pid'] in '$g'" ;;
	esac
done
ls -d $ROOT/tpl/template-* >/dev/null 2>&1
ok_if $? "template: its group $(ls -d $ROOT/tpl/template-* 2>/dev/null | sed "s|$CG||" | head -n 1)"

g=$(cg_of "$(spawned_pid oom 0)")
[ -n "$g" ] && [ "$(cat $CG$g/memory.max 2>/dev/null)" = 50331648 ] &&
    [ "$(cat $CG$g/memory.oom.group 2>/dev/null)" = 1 ]
ok_if $? "limits: oom worker group has memory.max 48M and memory.oom.group 1"
[ "$(cat $ROOT/oom/memory.max 2>/dev/null)" = 67108864 ]
ok_if $? "limits: oom pool group has memory.max 64M (pool_memory_max)"
g=$(cg_of "$(spawned_pid ev 0)")
[ -n "$g" ] && [ "$(cat $CG$g/memory.high 2>/dev/null)" = 16777216 ]
ok_if $? "limits: ev worker group has memory.high 16M, armed at recycle_memory (cgroup metric)"
! grep -q 'cgroup placement' $LOG
ok_if $? "placement: no 'cgroup placement' error in the log"

# ---- tree: fork() impossible in the daemon's group, then a recycle. The
# replacement can only start through clone3(CLONE_INTO_CGROUP), charged to
# its worker group; the old tree ignores SIGTERM and dies by cgroup.kill.
OLD=$(spawned_pid tree 0)
TG=$(cg_of "$OLD")
n=100
while [ $n -gt 0 ] && [ "$(wc -l < $CG$TG/cgroup.procs)" -lt 3 ]; do
	sleep 0.1
	n=$((n - 1))
done
TREE=$(cat $CG$TG/cgroup.procs | tr '\n' ' ')
set -- $TREE
[ $# -eq 3 ]
ok_if $? "kill: tree worker group $TG holds 3 pids ($TREE)"
echo +pids > $ROOT/cgroup.subtree_control
# Control: a process in a group at its pids.max cannot fork.
mkdir $ROOT/pidtest
# (A subshell that is not the last command: ash must fork for it.)
sh -c "echo \$\$ > $ROOT/pidtest/cgroup.procs && echo 1 > $ROOT/pidtest/pids.max && ( exit 0 ); exit 0" 2>/dev/null
[ $? -ne 0 ]
ok_if $? "placement: control: fork fails in a group at pids.max"
rmdir $ROOT/pidtest
cur=$(cat $ROOT/supervisor/pids.current)
echo "$cur" > $ROOT/supervisor/pids.max
[ "$(cat $ROOT/supervisor/pids.max)" = "$cur" ]
ok_if $? "placement: daemon's group at pids.max = pids.current $cur (fork() would fail)"
/recyclerctl -s $SOCK recycle tree > /tmp/ctl.out 2>&1
ok_if $? "kill: recyclerctl recycle tree ($(head -n 1 /tmp/ctl.out))"
NEW=
n=300
while [ $n -gt 0 ] && [ -z "$NEW" ]; do
	NEW=$(spawned_pid tree 0 2)
	grep -q 'unable to fork' $LOG && break
	sleep 0.1
	n=$((n - 1))
done
[ -n "$NEW" ] && ! grep -q 'unable to fork\|cgroup placement' $LOG
ok_if $? "placement: replacement [pid ${NEW:-none}] started with fork() impossible: clone3(CLONE_INTO_CGROUP)"
[ -n "$NEW" ] && case $(cg_of "$NEW") in "$T/tree/worker-0-"[0-9]*) [ "$(cg_of "$NEW")" != "$TG" ] ;; *) false ;; esac
ok_if $? "placement: replacement in its own group $(cg_of "${NEW:-0}")"
echo max > $ROOT/supervisor/pids.max
wait_log "pool tree worker 0 \[pid $OLD\]: still running .* killing its process tree" 30
ok_if $? "kill: SIGTERM ignored, tree killed after drain_timeout 1s"
wait_gone 20 $TREE
ok_if $? "kill: all three pids gone ($TREE)"
n=50
while [ $n -gt 0 ] && [ -d $CG$TG ]; do sleep 0.1; n=$((n - 1)); done
[ ! -d $CG$TG ]
ok_if $? "kill: old worker group $TG removed"

# ---- memory_max: the kernel OOM killer, recorded as oom
wait_log 'pool oom worker 0 \[pid [0-9]+\]: killed by the kernel OOM killer \(memory_max 48M\)' 60
ok_if $? "oom: $(sed -n 's/.*pool oom worker 0 \[pid [0-9]*\]: \(killed by the kernel OOM killer ([^)]*)\).*/\1/p' $LOG | head -n 1)"
/recyclerctl -s $SOCK --json events > /tmp/events.json 2>&1
grep -q '"kind": *"oom"' /tmp/events.json
ok_if $? "oom: recorded as an event of kind oom"

# ---- memory.events: memory_metric = cgroup recycles within ~1-2 s of
# crossing, although the pool samples only every 10 s. The worker leaks
# 12 s after it sent READY=1; the pool's samples come 10 s apart from its
# start. (The daemon's first sample of a worker must come before the
# crossing, or it calls the crossing a baseline error: hence not longer.)
if wait_log 'pool ev worker 0 \[pid [0-9]+\]: recycling \(memory\): cgroup ' 60; then
	line=$(grep -m 1 'pool ev worker 0 \[pid [0-9]*\]: recycling (memory): cgroup ' $LOG)
	check ok "ev: ${line#*: }"
	# log times in seconds of the day: pool start, ready, recycle
	times=$(awk '
	    function t(l) { split(substr(l, 12, 12), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
	    / pool ev: starting / && !s { s = t($0) }
	    / pool ev worker 0 \[pid [0-9]+\]: ready after / && !r { r = t($0) }
	    / pool ev worker 0 \[pid [0-9]+\]: recycling \(memory\)/ && !c { c = t($0) }
	    END { printf "%.3f %.3f\n", c - (r + 12), (c - s) - 10 * int((c - s) / 10) }' $LOG)
	late=${times% *}
	since=${times#* }
	awk "BEGIN { exit !($late > -0.5 && $late < 2.5) }"
	ok_if $? "ev: recycled ${late}s after the leak (12 s after READY=1)"
	awk "BEGIN { exit !($since >= 1) }"
	ok_if $? "ev: recycled ${since}s after the pool's last 10 s sample: a memory.events notification"
else
	check FAIL "ev: no 'recycling (memory): cgroup' within 60 s"
fi
grep -q 'configuration error' $LOG && check FAIL "log: $(grep -m 1 'configuration error' $LOG)"

# ---- exit: SIGTERM, every group the daemon made is removed
PIDS=$(sed -n 's/.* \[pid \([0-9]*\)\]: spawned$/\1/p' $LOG | tr '\n' ' ')
kill -TERM $DPID
n=400
while [ $n -gt 0 ] && alive $DPID; do sleep 0.1; n=$((n - 1)); done
if alive $DPID; then
	check FAIL "exit: still running 40 s after SIGTERM"
	kill -9 $DPID
fi
wait $DPID
st=$?
[ $st -eq 0 ]
ok_if $? "exit: daemon exit status $st (0 expected)"
left=
for p in $PIDS; do alive $p && left="$left $p"; done
[ -z "$left" ]
ok_if $? "exit: no worker left${left:+ (alive:$left)}"
left=$(cd $ROOT && find . -mindepth 1 -type d | sort | tr '\n' ' ')
[ "$left" = "./supervisor " ]
ok_if $? "exit: only the daemon's own leaf left in ROOT ($left)"
[ -z "$(cat $ROOT/supervisor/cgroup.procs)" ] && rmdir $ROOT/supervisor $ROOT
ok_if $? "exit: ROOT/supervisor empty, ROOT removed"

[ $failures -eq 0 ] || dump_log
echo "daemon_v2: $failures failure(s), $(awk "BEGIN { print $(cut -d' ' -f1 /proc/uptime) - $start }")s"
[ $failures -eq 0 ]
