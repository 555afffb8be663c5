#!/usr/bin/env bash
# build-image.sh DISTRO KERNEL_PACKAGE OUTDIR
# A Debian guest (DISTRO debian12: bookworm; debian11: bullseye, with
# glibc 2.31, systemd 247, auditd 3.0, dbus 1.12 and its own 5.10 kernel)
# with systemd, dbus, auditd, AppArmor and pamtester (the kernel
# matrix's login) — and Debian's ansible and puppet in the Debian 12 image
# of its own kernel — built from
# Debian's packages with mmdebstrap (no loop mount: mkfs.ext4 -d fills the
# image from a directory). OUTDIR gets rootfs.img (raw ext4), vmlinuz and
# initrd.img for a direct kernel boot. The guest has no network; the
# package under test and the test script arrive over a 9p share that the
# unit mdatp-vmtest.service mounts and runs at boot.
set -euo pipefail

distro=$1
kernel_pkg=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
mirror=${MDATP_VM_MIRROR:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/mdatp-vm-root.XXXXXX)
trap 'rm -rf "$root"' EXIT

security=${MDATP_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
case "$distro" in
    debian12) suite=bookworm ;;
    # Debian 11 with its security updates (its kernel is 5.10.0-NN there).
    debian11) suite=bullseye ;;
    *) echo "build-image.sh: unknown distro $distro (debian11, debian12)" >&2; exit 2 ;;
esac
sources=("deb $mirror $suite main")
[ "$suite" = bullseye ] && sources+=("deb $security bullseye-security main")
# The kernel matrix also boots other Debian releases' kernels in the
# Debian 12 userland: their suite is added, and bookworm stays the default
# release so only the kernel comes from it.
# The pin is for the build only: the guest has no package lists, and apt
# refuses a Default-Release it cannot find (apt-get purge in the test).
pin=()
if [ "$suite" = bookworm ]; then
    pin=(--aptopt='APT::Default-Release "bookworm"')
    case "$kernel_pkg" in
        linux-image-5.10.*)
            sources+=("deb $mirror bullseye main" "deb $security bullseye-security main") ;;
        *+deb13-*) sources+=("deb $mirror trixie main") ;;
    esac
fi

packages=(systemd-sysv dbus auditd apparmor udev kmod procps iproute2 pamtester "$kernel_pkg" initramfs-tools)
# The automation phase (the Ansible role and the Puppet module, as a fleet
# runs them) boots the Debian 12 image with its own kernel only: the other
# kernels' images stay small. python3-apt: Ansible's apt module needs it
# and installs it itself on a host with a network, which the guest has not.
if [ "$distro" = debian12 ] && [ "$kernel_pkg" = linux-image-amd64 ]; then
    packages+=(ansible puppet python3-apt)
fi
IFS=,
mmdebstrap --variant=minbase --include="${packages[*]}" \
    "${pin[@]}" \
    --customize-hook='echo mdatp-guest > "$1/etc/hostname"' \
    --customize-hook='rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap"' \
    "$suite" "$root" "${sources[@]}" >&2
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
