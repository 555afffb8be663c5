#!/usr/bin/env bash
# The installed-package test: boots a Debian 12 guest with systemd under
# qemu (software emulation: /dev/kvm on these machines does not boot stock
# kernels), installs target/packages/mdatp_*.deb in it and runs
# guest-test.sh there, in three boots:
#   main             install, provider, events, D-Bus switch and audit
#                    rules, broken reload, watchdog, diagnostics, purge
#   immutable        auditctl -e 2 with our rules loaded: health and remedy
#   after-immutable  the reboot cleared our rules; purge
#   automation       the Ansible role and the Puppet module applied to the
#                    guest by Debian's ansible and puppet (automation.sh)
#   workload         install, the kernel matrix's workload only (main
#                    runs it too); its events are checked on the host by
#                    tests/integration/workload/matrix.py into
#                    target/kernel-matrix/<kernel package>.json
# Results come back over a 9p share; the console of each boot is kept in
# target/vm/console-<phase>.log.
#
#   tests/integration/vm/run.sh [--distro debian12|debian11] [--kernel PACKAGE]
#                               [--deb FILE] [--phases "main,immutable ..."]
#                               [--image-only]
#
# --distro is the guest's userland: debian12 (bookworm, the default) or
# debian11 (bullseye: glibc 2.31, systemd 247, dbus 1.12, auditd 3.0).
# --kernel is a Debian kernel package (default linux-image-amd64: 6.1 on
# debian12, 5.10 on debian11), so the same suite can run on several
# kernels. Guest
# images are cached in $MDATP_VM_CACHE (default /var/cache/mdatp-vm), one
# per kernel and image recipe; each run boots a fresh sparse copy.
# --image-only builds the image when it is not cached, and stops (the test
# command builds every image while the code compiles).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
distro=debian12
kernel=linux-image-amd64
deb=
phases=
image_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --distro) distro=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --deb) deb=$2; shift 2 ;;
        --phases) phases=$2; shift 2 ;;
        --image-only) image_only=1; shift ;;
        *) echo "usage: $0 [--distro debian12|debian11] [--kernel PACKAGE] [--deb FILE] [--phases LIST] [--image-only]" >&2; exit 2 ;;
    esac
done

die() { echo "vm-test: $*" >&2; exit 1; }
case "$distro" in
    debian12) phases=${phases:-main,immutable after-immutable,automation} ;;
    debian11) phases=${phases:-distro} ;;
    *) die "unknown --distro $distro (debian12, debian11)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "run as root (the guest image is built with mmdebstrap)"

. "$repo/scripts/apt.sh"
. "$repo/scripts/zig.sh"
# No qemu-img: this machine kind ships qemu-utils from bookworm-backports,
# which Breaks bookworm's qemu-system-common, so installing
# qemu-system-x86 removes it. Each run works on a sparse copy of the
# cached raw image instead of a qcow2 overlay.
apt_install qemu-system-x86 mmdebstrap e2fsprogs

# The guest image: rebuilt when the recipe or the kernel changes.
cache=${MDATP_VM_CACHE:-/var/cache/mdatp-vm}
key=$( (cat "$here/build-image.sh" "$here/mdatp-vmtest.service"; echo "$distro $kernel") | sha256sum | cut -c1-16)
image=$cache/$distro-$kernel-$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$image/rootfs.img" ]; then
    echo "vm-test: building the $distro guest image for $kernel (a few minutes)" >&2
    rm -rf "$image.tmp" "$cache/$distro-$kernel"-* "$cache/$kernel"-*
    "$here/build-image.sh" "$distro" "$kernel" "$image.tmp"
    mv "$image.tmp" "$image"
fi
flock -u 9
[ "$image_only" = 1 ] && exit 0

if [ -z "$deb" ]; then
    deb=$(ls -t "$repo"/target/packages/mdatp_*_amd64.deb 2>/dev/null | head -1 || true)
    [ -n "$deb" ] || die "no package in target/packages: run scripts/dev.sh package first"
fi

# MDATP_VM_WORK: a run of its own beside another (by hand: CI runs the
# guests one after another, docs/PACKAGING.md says why).
work=${MDATP_VM_WORK:-$repo/target/vm}
case "$work" in /*) ;; *) work=$repo/$work ;; esac
rm -rf "$work"
mkdir -p "$work/share"
cp "$deb" "$work/share/mdatp.deb"
cp "$here/guest-test.sh" "$here/automation.sh" "$work/share/"
cp -r "$repo/contrib" "$work/share/contrib"
cp -r "$repo/tests/integration/workload" "$work/share/workload"
# The guest's helper programs are linked for glibc $GLIBC_FLOOR like the
# package, so they run in every guest userland.
zig_setup
cargo zigbuild --quiet -p mdatp-integration-tests --bins --target "$ZIG_TARGET" \
    --manifest-path "$repo/Cargo.toml"
helpers=$repo/target/$SHIP_TRIPLE/debug
for h in mdatp-net-workload mdatp-io-uring-workload mdatp-test-helper; do
    cp "$helpers/$h" "$work/share/"
done
"$repo/tests/integration/ia32/build.sh" "$work/share"
cp --sparse=always "$image/rootfs.img" "$work/disk.img"

# Multi-threaded TCG. Debian 11's 5.10 guest has locked up under it twice
# in about ten runs (both vCPUs at syscall_exit_to_user_mode+0xb3 right
# as the sensor attached its raw sys_exit program: docs/PACKAGING.md);
# single-threaded TCG was tried for it and hung idle in boot twice in a
# row (before anything of ours ran), so it is not used.
tcg=multi

# One run of the guest for a phase. Returns 3 when it never reached its
# test: under emulation a guest has hung in early boot (a Debian 12 guest
# stopped at "Switched to clocksource hpet" for the whole phase limit),
# before anything of ours ran, so the boot is worth one more try.
# Returns 4 when the guest's kernel reported a fault (kernel_fault) and
# its test then wrote nothing for FAULT_STALL seconds: the emulator's
# lockups (docs/PACKAGING.md) would otherwise hold the whole limit.
BOOT_WATCH=${MDATP_VM_BOOT_WATCH:-600}
FAULT_STALL=240
KERNEL_FAULT='BUG: soft lockup|self-detected stall|detected stalls on CPUs|Oops:|Kernel panic'
kernel_fault() { # phase: prints the console's fault lines, false when none
    grep -aE -m3 "$KERNEL_FAULT" "$work/console-$1.log" 2>/dev/null
}
run_guest() { # phase limit
    local phase=$1 limit=$2 console=$work/console-$1.log waited=0
    local log=$work/share/results/$1.log size last=-1 still=0
    rm -f "$console"
    timeout "$limit" qemu-system-x86_64 \
        -accel "tcg,thread=$tcg" -cpu max -smp 2 -m 2048 \
        -display none -monitor none -no-reboot \
        -serial "file:$console" \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 panic=-1 mdatp.phase=$phase" \
        -drive "file=$work/disk.img,if=virtio,format=raw" \
        -virtfs "local,path=$work/share,mount_tag=host,security_model=none,id=host" \
        -nic none &
    local qemu=$!
    # The test unit prints "# phase <name> on <kernel>" first.
    while kill -0 "$qemu" 2>/dev/null && ! grep -aq "# phase $phase on" "$console" 2>/dev/null; do
        if [ "$waited" -ge "$BOOT_WATCH" ]; then
            echo "vm-test: the guest did not reach its test in $BOOT_WATCH s (hung at boot); the console ends:" >&2
            tail -5 "$console" >&2
            kill "$qemu" 2>/dev/null
            wait "$qemu" 2>/dev/null
            return 3
        fi
        sleep 5
        waited=$((waited + 5))
    done
    while kill -0 "$qemu" 2>/dev/null; do
        sleep 5
        kernel_fault "$phase" >/dev/null || continue
        size=$(stat -c %s "$log" 2>/dev/null || echo 0)
        if [ "$size" != "$last" ]; then last=$size; still=0; continue; fi
        still=$((still + 5))
        if [ "$still" -ge "$FAULT_STALL" ]; then
            echo "vm-test: the guest's kernel reported a fault and its test wrote nothing for $FAULT_STALL s; stopping this boot" >&2
            kill "$qemu" 2>/dev/null
            wait "$qemu" 2>/dev/null
            return 4
        fi
    done
    wait "$qemu" || echo "vm-test: qemu exited with $? in phase $phase" >&2
}

boot() { # phases, joined by commas
    local phase=$1 start=$SECONDS limit=0 p rc=0
    local results=$work/share/results
    # Each phase's allowance, about three times what it takes on this
    # project's machines (an emulated guest's speed varies with the host):
    # main about 6 minutes, Ansible and Puppet start slowly under
    # emulation (one to two minutes a run, eight runs).
    for p in ${phase//,/ }; do
        case "$p" in
            main) limit=$((limit + 1200)) ;;
            automation) limit=$((limit + 1800)) ;;
            *) limit=$((limit + 600)) ;;
        esac
    done
    echo "vm-test: boot '$phase' ($kernel)" >&2
    # A second try starts from the disk as this boot found it.
    cp --sparse=always "$work/disk.img" "$work/disk-before.img"
    run_guest "$phase" "$limit" || rc=$?
    # One more boot when the guest hung before its test, or when the test
    # did not pass and the guest's kernel reported a fault: each seen
    # under emulation with nothing of ours on the stack (PACKAGING.md).
    # Said here, with the fault, so a retry is never silent; a fault of
    # ours comes back in the second boot and fails it.
    if [ "$rc" = 3 ] || { [ "$(cat "$results/$phase.status" 2>/dev/null)" != PASS ] \
            && kernel_fault "$phase" | sed 's/^/vm-test: guest kernel: /' >&2; }; then
        echo "vm-test: booting '$phase' once more, from the disk as it was before (first console: console-$phase-1.log)" >&2
        mv "$work/console-$phase.log" "$work/console-$phase-1.log"
        cp --sparse=always "$work/disk-before.img" "$work/disk.img"
        rm -f "$results/$phase.log" "$results/$phase.status"
        run_guest "$phase" "$limit" || true
    fi
    rm -f "$work/disk-before.img"
    echo "vm-test: phase '$phase' took $((SECONDS - start)) s" >&2
    local log=$results/$phase.log
    if [ -f "$log" ]; then
        cat "$log"
    else
        echo "vm-test: no results from phase $phase; the console said:" >&2
        tail -40 "$work/console-$phase.log" >&2
    fi
    [ "$(cat "$results/$phase.status" 2>/dev/null)" = PASS ]
}

failed=()
for phase in $phases; do
    boot "$phase" || failed+=("$phase")
done
# The kernel matrix's row of this kernel, when a phase ran the workload
# (named by the kernel package, prefixed by the distro but for Debian 12).
row=$kernel
[ "$distro" = debian12 ] || row=$distro-$kernel
if [ -f "$work/share/results/workload-events.jsonl" ]; then
    mkdir -p "$repo/target/kernel-matrix"
    python3 "$repo/tests/integration/workload/matrix.py" check \
        --name "$row" --kernel "$(cat "$work/share/results/workload-kernel")" \
        --events "$work/share/results/workload-events.jsonl" \
        --health "$work/share/results/workload-health.json" \
        --out "$repo/target/kernel-matrix/$row.json" || failed+=("workload events")
fi
# The exclusion bypass matrix, when the main phase ran it.
if [ -f "$work/share/results/bypass-events.jsonl" ]; then
    python3 "$repo/tests/integration/workload/bypass.py" \
        "$(cat "$work/share/results/bypass-dir")" \
        "$work/share/results/bypass-events.jsonl" \
        "$work/share/results/workload-health.json" || failed+=("bypass matrix")
fi
if [ "${#failed[@]}" -gt 0 ]; then
    die "failed phase(s): ${failed[*]} (consoles: $work/console-*.log)"
fi
echo "vm-test: all phases passed on $distro, $kernel" >&2
