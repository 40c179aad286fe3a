#!/bin/sh
# SPDX-License-Identifier: MIT
# Run a test payload in a throwaway VM that has a real cgroup v2 memory
# controller (our hosts have only the v1 one), and exit with its status.
#
#   tests/vm/run.sh [PAYLOAD]       PAYLOAD: shell script run as /test.sh
#                                   (default tests/vm/payload.sh)
#
# The daemon's suite (`make check-vm` runs it this way):
#   VM_EXTRA="src/recyclerd=/recyclerd src/recyclerctl=/recyclerctl \
#       tests/helpers/cworker=/cworker" tests/vm/run.sh
# Environment:
#   VM_EXTRA="SRC[=DEST] ..."  more files or directories for the guest, at
#                              DEST (default: SRC's absolute path on the
#                              host); the shared libraries of dynamic ELF
#                              files are added too
#   WITH_PYTHON=1              add Debian's python3 and its stdlib
#   ACCEL=auto|tcg|kvm  MEM=512  SMP=1  TIMEOUT=300  KPKG=linux-image-...
#
# The guest boots Debian's cloud kernel (cached with busybox under
# tests/vm/cache/, git-ignored), mounts cgroup2 on /sys/fs/cgroup with v1
# disabled, runs /test.sh and powers off. Its console goes to
# tests/vm/build/console.log, the part between the markers to stdout; guest
# /dev/ttyS1 lands in tests/vm/build/ttyS1.out. Built-in test programs:
# /cgtest_v2 (tests/vm/cgtest_v2.c + src/cgroup.c, static); scripts:
# /daemon_v2.sh (the daemon's suite, which payload.sh runs when /recyclerd
# is in the guest).
# Exit: the payload's status; 77 (skip) without qemu-system-x86_64 or when
# the kernel cannot be fetched; 99 when the guest gave no result.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
CACHE=${VM_CACHE:-$HERE/cache}
B=$HERE/build
PAYLOAD=${1:-${PAYLOAD:-$HERE/payload.sh}}
MEM=${MEM:-512}
SMP=${SMP:-1}
TIMEOUT=${TIMEOUT:-300}
CC=${CC:-gcc}

skip() { echo "SKIP: $*" >&2; exit 77; }

command -v qemu-system-x86_64 >/dev/null 2>&1 ||
    skip "qemu-system-x86_64 not found (apt-get install --no-install-recommends qemu-system-x86)"
[ -f "$PAYLOAD" ] || { echo "payload $PAYLOAD not found" >&2; exit 2; }
mkdir -p "$CACHE/debs"

# fetch PKG DIR: download the .deb once and extract it, host untouched
fetch() {
    [ -f "$2/.got" ] && return 0
    rm -rf "$2"
    ( cd "$CACHE/debs" && apt-get download "$1" >/dev/null 2>&1 ) || return 1
    mkdir -p "$2"
    dpkg-deb -x "$CACHE/debs/$1"_*.deb "$2" || return 1
    rm -f "$CACHE/debs/$1"_*.deb
    touch "$2/.got"
}

# 1. kernel and busybox, cached. The versioned kernel package changes with
# every ABI bump: resolve it through the metapackage unless KPKG is given.
VMLINUZ=$CACHE/vmlinuz-cloud
if [ ! -f "$VMLINUZ" ]; then
    KPKG=${KPKG:-$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-/ { print $2; exit }')}
    [ -n "$KPKG" ] || skip "cannot resolve linux-image-cloud-amd64 (apt-get update?)"
    fetch "$KPKG" "$CACHE/x-kernel" || skip "cannot fetch $KPKG"
    cp "$CACHE"/x-kernel/boot/vmlinuz-* "$VMLINUZ"
    rm -rf "$CACHE/x-kernel"    # 90 MB of modules the guest does not need
fi
BUSYBOX=$CACHE/busybox
if [ ! -f "$BUSYBOX" ]; then
    fetch busybox-static "$CACHE/x-busybox" || skip "cannot fetch busybox-static"
    cp "$CACHE/x-busybox/bin/busybox" "$BUSYBOX"
    rm -rf "$CACHE/x-busybox"
fi

# 2. built-in test programs, static: no libraries to carry
rm -rf "$B"
mkdir -p "$B"
$CC -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
    -I"$TOP/src" -static -o "$B/cgtest_v2" \
    "$HERE/cgtest_v2.c" "$TOP/src/cgroup.c" "$TOP/src/util.c"

# 3. root tree
R=$B/root
mkdir -p "$R/bin" "$R/sbin" "$R/dev" "$R/proc" "$R/sys" "$R/tmp" "$R/run" \
    "$R/lib64" "$R/lib/x86_64-linux-gnu" "$R/usr/bin" "$R/usr/lib"
cp "$BUSYBOX" "$R/bin/busybox"
cp "$B/cgtest_v2" "$R/cgtest_v2"
cp "$PAYLOAD" "$R/test.sh"
cp "$HERE/daemon_v2.sh" "$R/daemon_v2.sh"

# copy_libs FILE: the shared objects a dynamic ELF file needs, from the host
copy_libs() {
    ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/lib64\// { print $1 }' |
    while read -r so; do
        mkdir -p "$R$(dirname "$so")"
        [ -e "$R$so" ] || cp -L "$so" "$R$so"
    done
}

# add SRC DEST: a file (with its libraries) or a directory tree
add() {
    mkdir -p "$R$(dirname "$2")"
    if [ -d "$1" ]; then
        mkdir -p "$R$2"
        ( cd "$1" && tar cf - . ) | ( cd "$R$2" && tar xf - )
    else
        cp -L "$1" "$R$2"
        case $(head -c 4 "$1" | od -An -c | tr -d ' ') in
        177ELF) copy_libs "$1" ;;
        esac
    fi
}

for item in ${VM_EXTRA:-}; do
    src=${item%%=*}
    case $item in *=*) dest=${item#*=} ;; *) dest=$(cd "$(dirname "$src")" && pwd)/$(basename "$src") ;; esac
    [ -e "$src" ] || { echo "VM_EXTRA: $src not found" >&2; exit 2; }
    add "$src" "$dest"
done

if [ "${WITH_PYTHON:-0}" = 1 ]; then
    PYV=$(readlink -f /usr/bin/python3)
    PYV=$(basename "$PYV")
    cp "/usr/bin/$PYV" "$R/usr/bin/$PYV"
    ln -sf "$PYV" "$R/usr/bin/python3"
    copy_libs "/usr/bin/$PYV"
    # the stdlib without caches, tests, tk, idle, docs
    ( cd /usr/lib && tar cf - --exclude=__pycache__ --exclude='config-3*' \
        --exclude=test --exclude=idlelib --exclude=tkinter --exclude=turtledemo \
        --exclude=ensurepip --exclude=lib2to3 --exclude=pydoc_data \
        --exclude=site-packages --exclude=dist-packages "$PYV" ) |
      ( cd "$R/usr/lib" && tar xf - )
    # extension modules link more libraries (libssl, libffi, ...)
    find "$R/usr/lib/$PYV/lib-dynload" -name '*.so' | while read -r so; do copy_libs "$so"; done
fi

cat > "$R/init" <<'EOF'
#!/bin/busybox sh
# PID 1. An unprivileged cpio has no /dev/console: devtmpfs first.
/bin/busybox mount -t devtmpfs dev /dev
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin:/sbin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
# The initramfs root is writable already; no tmpfs over /tmp, which
# would hide VM_EXTRA files placed there.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || echo "VMTEST: cgroup2 mount FAILED"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
echo "===VMTEST-BEGIN==="
echo "kernel $(uname -r), init at $(cut -d' ' -f1 /proc/uptime)s"
rc=0
sh /test.sh || rc=$?
echo "===VMTEST-END rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)s==="
sync
poweroff -f
EOF
chmod 755 "$R/init" "$R/test.sh"
chmod 1777 "$R/tmp"

# 4. initramfs with busybox's cpio; owners forced to root, no root needed
( cd "$R" && find . | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null ) |
    gzip -1 > "$B/initrd.cpio.gz"

# 5. boot. KVM only when the CPU really has it (a bare /dev/kvm can hang).
ACCEL=${ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
    ACCEL=tcg
    if [ -w /dev/kvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; fi
fi
case $ACCEL in kvm) CPU=host ;; *) CPU=max ;; esac
LOG=$B/console.log
start=$(date +%s.%N)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -m "$MEM" \
    -smp "$SMP" -machine pc -nographic -no-reboot -nodefaults \
    -serial stdio -serial file:"$B/ttyS1.out" -display none \
    -kernel "$VMLINUZ" -initrd "$B/initrd.cpio.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 cgroup_no_v1=all" \
    > "$LOG" 2>&1 < /dev/null
qrc=$?
set -e
end=$(date +%s.%N)
# SeaBIOS escape sequences before the marker, \r after every line
tr -d '\r' < "$LOG" | sed -n 's/.*===VMTEST-BEGIN===/===VMTEST-BEGIN===/; /===VMTEST-BEGIN===/,/===VMTEST-END/p'
echo "vm: accel=$ACCEL qemu_rc=$qrc initramfs=$(du -k "$B/initrd.cpio.gz" | cut -f1)KiB wall=$(awk "BEGIN { printf \"%.1f\", $end - $start }")s"
rc=$(tr -d '\r' < "$LOG" | sed -n 's/.*===VMTEST-END rc=\([0-9]*\).*/\1/p')
[ -n "$rc" ] || { echo "vm: no result marker (qemu_rc=$qrc); see $LOG" >&2; exit 99; }
exit "$rc"
