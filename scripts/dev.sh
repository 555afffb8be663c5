#!/usr/bin/env bash
# The README's two Quick start commands, as root on Debian 12:
#   scripts/dev.sh run   set up, build, run the sensor in the foreground
#   scripts/dev.sh test  set up, then fmt check, clippy, build, all tests,
#                        the OCSF schema check of their events, the
#                        packages, and the installed-package test in a VM
#   scripts/dev.sh package   build the .deb, the .rpm's and the SELinux module
#   scripts/dev.sh vm-test [--distro D] [--kernel PKG]   package, then the VM test alone
#   scripts/dev.sh compat-test   the host's file/net/exclusion/ia32 tests
#                        against the compat build (5.8-5.14 kernels' programs)
#   scripts/dev.sh kernels-doc   rewrite docs/KERNELS.md from the last test
#                        run's kernel matrix (target/kernel-matrix)
#   scripts/dev.sh bench [mdatp-bench run flags]   the benchmark (not run by CI)
#   scripts/dev.sh fuzz [RUNS]   every fuzz target (fuzz/), RUNS inputs each
#                        (default 1,000,000), with the counts (not run by CI;
#                        CI replays the targets' committed inputs and 10,000
#                        generated ones each: tests/fuzz-replay)
#   scripts/dev.sh soak [mdatp-bench soak flags]   the load tests, numbers
#                        printed (docs/RELIABILITY.md; not run by CI)
# Set-up installs missing Debian packages and mounts bpffs/tracefs where
# they are not mounted yet (as systemd does at boot).
set -euo pipefail

cd "$(dirname "$0")/.."

APT_PACKAGES=(clang-19 llvm-19 libclang-19-dev libbpf-dev bpftool build-essential pkg-config auditd pamtester dbus-daemon systemd util-linux python3-fusepy)
MIN_RUST=1.95
# The kernel matrix's other kernels: Debian 13's, booted in the Debian 12
# guest; Debian 12's own (6.1) runs the whole VM test, and Debian 11's
# (5.10) runs in a Debian 11 guest (the VM test's distro phase).
MATRIX_KERNELS="linux-image-6.12.117+deb13-amd64"

die() { echo "dev.sh: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root: loading eBPF programs needs CAP_BPF/CAP_SYS_ADMIN"
}

. scripts/apt.sh
# The delivery tests' receivers: installed without starting their
# services (the tests run private instances).
QUIET_PACKAGES=(rsyslog rsyslog-gnutls nats-server openssl)
install_packages() { apt_install "${APT_PACKAGES[@]}"; apt_install_quiet "${QUIET_PACKAGES[@]}"; }

check_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust >= $MIN_RUST with rustup (Debian 12's rustc is too old)"
    local v
    v=$(rustc --version | awk '{print $2}')
    [ "$(printf '%s\n%s\n' "$MIN_RUST" "$v" | sort -V | head -1)" = "$MIN_RUST" ] \
        || die "rustc $v is older than $MIN_RUST; update with rustup"
}

# need_disk DIR GIB WHAT: stops with the cause when the file system of DIR
# has less than GIB GiB free (a full disk shows up later as a linker's
# SIGBUS or a truncated guest image, naming nothing).
need_disk() {
    local dir=$1 want=$2 what=$3 free
    mkdir -p "$dir"
    free=$(df -Pk "$dir" | awk 'NR==2 {print int($4 / 1048576)}')
    [ "$free" -ge "$want" ] || die "only $free GiB free on the file system of $dir; $what needs about $want GiB (free space there, or set CARGO_TARGET_DIR / MDATP_VM_CACHE elsewhere)"
}

mount_fs() { # type target
    mountpoint -q "$2" || { mkdir -p "$2"; mount -t "$1" "$1" "$2"; echo "dev.sh: mounted $1 at $2" >&2; }
}

setup() {
    need_root
    install_packages
    check_rust
    [ -e /sys/kernel/btf/vmlinux ] || die "this kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE programs cannot load"
    mount_fs bpf /sys/fs/bpf
    mount_fs tracefs /sys/kernel/tracing
}

# Compares the matrix's rows and checks or, with --write, rewrites
# docs/KERNELS.md.
matrix_compare() {
    local rows=(target/kernel-matrix/debian11-linux-image-amd64.json
                target/kernel-matrix/linux-image-amd64.json target/kernel-matrix/host.json) k
    for k in $MATRIX_KERNELS; do rows+=("target/kernel-matrix/$k.json"); done
    python3 tests/integration/workload/matrix.py compare "${rows[@]}" --doc docs/KERNELS.md "$@"
}

# Every guest image the test command boots, built in the background
# (images_start) into the cache; images_wait stops the command with the
# build's log when one failed. An exit before that stops the build.
IMAGES_LOG=target/vm-images.log
images_start() {
    mkdir -p target
    setsid bash -c "set -e
        tests/integration/vm/run.sh --image-only
        tests/integration/vm/run.sh --distro debian11 --image-only
        for k in $MATRIX_KERNELS; do tests/integration/vm/run.sh --kernel \$k --image-only; done" \
        > "$IMAGES_LOG" 2>&1 &
    IMAGES_PID=$!
    trap 'kill -- -$IMAGES_PID 2>/dev/null || true' EXIT
}
images_wait() {
    wait "$IMAGES_PID" || { tail -30 "$IMAGES_LOG" >&2; die "building the guest images failed (whole log: $IMAGES_LOG)"; }
    trap - EXIT
    echo "dev.sh: guest images ready ($(grep -c 'building the' "$IMAGES_LOG") built, the rest cached)" >&2
}

case "${1:-}" in
run)
    shift
    setup
    cargo build --release -p mdatpd
    echo "dev.sh: starting mdatpd in the foreground; events are JSON Lines on stdout, Ctrl-C stops" >&2
    exec target/release/mdatpd --foreground "$@"
    ;;
test)
    setup
    # A fresh clone gains nothing from incremental builds, and they double
    # the target directory.
    export CARGO_INCREMENTAL=0
    need_disk "${CARGO_TARGET_DIR:-target}" 5 "the build, the tests and the packages"
    need_disk "${MDATP_VM_CACHE:-/var/cache/mdatp-vm}" 4 "the guest images (3 GiB each, sparse) and their run copies"
    # The guest images (downloads and dpkg in a chroot, a few minutes
    # each when not cached) build while the code compiles and packages,
    # and are done before the host tests start: nothing runs beside those.
    images_start
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo build --workspace
    scripts/package.sh
    images_wait
    # Every test daemon's events are kept for the OCSF schema check.
    export MDATP_TEST_EVENT_ARCHIVE=$PWD/target/test-events
    rm -rf "$MDATP_TEST_EVENT_ARCHIVE"
    cargo test --workspace
    # The compat build of the syscall exit programs (what 5.8-5.14 kernels
    # load) runs for real in the Debian 11 guest below (its 5.10 kernel:
    # the workload, the 32-bit probe and the bypass matrix). The same
    # host tests against it, forced, are `scripts/dev.sh compat-test`.
    scripts/ocsf-validate.sh
    # Debian 12, two boots: main and immutable, then (the reboot)
    # after-immutable and automation (Ansible and Puppet).
    tests/integration/vm/run.sh
    # Debian 11 (glibc 2.31, systemd 247, dbus 1.12) with its own 5.10
    # kernel: install with apt, events, a provider switch, purge.
    tests/integration/vm/run.sh --distro debian11
    # The kernel matrix: the workload phase on Debian 13's kernel too,
    # then every kernel's events compared field by field
    # (host row: the kernel_matrix test above) and docs/KERNELS.md checked.
    for k in $MATRIX_KERNELS; do
        tests/integration/vm/run.sh --kernel "$k" --phases workload
    done
    matrix_compare
    ;;
compat-test)
    # The file, network, exclusion and 32-bit tests against the compat
    # build of the syscall exit programs, forced on this kernel.
    setup
    cargo build --workspace
    MDATP_TEST_SYSCALL_VARIANT=compat exec cargo test -p mdatp-integration-tests \
        --test file_events --test net_events --test exclusions --test ia32
    ;;
kernels-doc)
    # Rewrites docs/KERNELS.md from the last test run's matrix.
    matrix_compare --write
    ;;
package)
    need_root
    check_rust
    exec scripts/package.sh
    ;;
vm-test)
    shift
    setup
    scripts/package.sh
    exec tests/integration/vm/run.sh "$@"
    ;;
bench)
    shift
    setup
    apt_install bpftrace
    cargo build --release -p mdatpd -p mdatp-bench
    target/release/mdatp-bench run "$@"
    target/release/mdatp-bench ceiling
    target/release/mdatp-bench kernel-cost
    ;;
fuzz)
    shift
    setup
    scripts/fuzz.sh "${1:-1000000}"
    ;;
soak)
    shift
    setup
    cargo build --release -p mdatpd -p mdatp-bench
    target/release/mdatp-bench soak "$@"
    ;;
*)
    die "usage: scripts/dev.sh run [mdatpd flags] | test | package | vm-test [--distro D] [--kernel PKG] | compat-test | kernels-doc | bench [flags] | fuzz [RUNS] | soak [flags]"
    ;;
esac
