# SPDX-License-Identifier: MIT
# /test.sh inside the VM (see run.sh): the cgroup v2 suites in one boot,
# src/cgroup.c alone (/cgtest_v2), then the daemon (/daemon_v2.sh) when
# /recyclerd is in the guest. Its exit status is the VM's: 0 when every
# suite passed. /sys/fs/cgroup is a fresh cgroup2 root with every
# controller.
set -u
CG=/sys/fs/cgroup
echo "controllers: $(cat $CG/cgroup.controllers)"

# What systemd gives a service with Delegate=yes: its own group, memory
# available in it (parent's subtree_control), the service alone inside.
echo "+memory +pids" > $CG/cgroup.subtree_control || exit 1
mkdir $CG/svc || exit 1
sh -c "echo \$\$ > $CG/svc/cgroup.procs && exec /cgtest_v2 $CG/svc"
rc=$?
echo "cgtest_v2 exit status: $rc"
# Nothing of the suite may be left behind but the empty supervisor group.
left=$(find $CG/svc -mindepth 1 -type d | tr '\n' ' ')
if [ "$left" != "$CG/svc/supervisor " ]; then
    echo "FAIL groups left behind: $left"
    rc=1
fi

# The daemon's suite needs /recyclerd, /recyclerctl and /cworker
# (VM_EXTRA; `make check-vm` passes them).
if [ -x /recyclerd ]; then
    sh /daemon_v2.sh
    drc=$?
    echo "daemon_v2 exit status: $drc"
    [ $drc -eq 0 ] || rc=1
else
    echo "daemon_v2: skipped, no /recyclerd in the guest"
fi
exit $rc
