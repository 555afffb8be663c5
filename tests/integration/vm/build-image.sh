#!/usr/bin/env bash
# build-image.sh KERNEL_PACKAGE OUTDIR
# A Debian 12 guest with systemd, dbus, auditd, AppArmor and pamtester
# (the kernel matrix's login), built from
# Debian's packages with mmdebstrap (no loop mount: mkfs.ext4 -d fills the
# image from a directory). OUTDIR gets rootfs.img (raw ext4), vmlinuz and
# initrd.img for a direct kernel boot. The guest has no network; the
# package under test and the test script arrive over a 9p share that the
# unit mdatp-vmtest.service mounts and runs at boot.
set -euo pipefail

kernel_pkg=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
mirror=${MDATP_VM_MIRROR:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/mdatp-vm-root.XXXXXX)
trap 'rm -rf "$root"' EXIT

# The kernel matrix boots other Debian releases' kernels in the same
# Debian 12 userland: their suite is added, and bookworm stays the default
# release so only the kernel comes from it.
# The pin is for the build only: the guest has no package lists, and apt
# refuses a Default-Release it cannot find (apt-get purge in the test).
sources=("deb $mirror bookworm main")
case "$kernel_pkg" in
    linux-image-5.10.*)
        sources+=("deb $mirror bullseye main"
                  "deb ${MDATP_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bullseye-security main") ;;
    *+deb13-*) sources+=("deb $mirror trixie main") ;;
esac

packages=(systemd-sysv dbus auditd apparmor udev kmod procps iproute2 pamtester "$kernel_pkg" initramfs-tools)
IFS=,
mmdebstrap --variant=minbase --include="${packages[*]}" \
    --aptopt='APT::Default-Release "bookworm"' \
    --customize-hook='echo mdatp-guest > "$1/etc/hostname"' \
    --customize-hook='rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap"' \
    bookworm "$root" "${sources[@]}" >&2
unset IFS

cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda  /          ext4  defaults,errors=remount-ro  0 1
host      /mnt/host  9p    trans=virtio,version=9p2000.L,msize=262144,nofail  0 0
FSTAB
mkdir -p "$root/mnt/host"
printf '9p\n9pnet_virtio\n' > "$root/etc/modules-load.d/9p.conf"
install -m 0644 "$here/mdatp-vmtest.service" "$root/etc/systemd/system/mdatp-vmtest.service"
ln -sf /etc/systemd/system/mdatp-vmtest.service "$root/etc/systemd/system/multi-user.target.wants/mdatp-vmtest.service"
# Quiet, fast boots: no getty on the console the harness reads.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"

mkdir -p "$out"
cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"
rm -f "$out/rootfs.img"
mkfs.ext4 -q -F -L root -d "$root" "$out/rootfs.img" 3G
