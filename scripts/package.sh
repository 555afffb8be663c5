#!/usr/bin/env bash
# Builds everything that ships, into target/packages/:
#   mdatp_<version>_amd64.deb      (cargo-deb; checked by lintian: no errors)
#   mdatp-<version>-1.x86_64.rpm   (rpmbuild, packaging/rpm/mdatp.spec)
#   mdatp-selinux-<version>-1.noarch.rpm (the prebuilt SELinux module)
# and checks the AppArmor profile with apparmor_parser (no kernel load).
# Run as root on Debian 12 (installs what it needs): scripts/dev.sh package
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
PACKAGING_APT=(rpm rpmlint lintian selinux-policy-dev checkpolicy semodule-utils setools apparmor)
OUT=target/packages

die() { echo "package.sh: $*" >&2; exit 1; }

. scripts/apt.sh
. scripts/zig.sh
apt_install "${PACKAGING_APT[@]}"
zig_setup
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "package.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi

version=$(cargo metadata --no-deps --format-version 1 \
    | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="mdatpd"))')

echo "package.sh: building mdatp $version" >&2
# What ships is linked for glibc $GLIBC_FLOOR (RHEL 7) with zig, into
# target/$SHIP_TRIPLE/release; the man page generator runs here.
cargo zigbuild --release -p mdatpd -p mdatp --target "$ZIG_TARGET"
# (a debug build: the test command has built it already)
cargo build -p mdatp-man
ship=target/$SHIP_TRIPLE/release
rm -rf "$ship/man" "$OUT"
target/debug/mdatp-man "$ship/man"
gzip -9n "$ship"/man/*
scripts/glibc-check.sh "$GLIBC_FLOOR" "$ship/mdatpd" "$ship/mdatp"
mkdir -p "$OUT"

echo "package.sh: the unit on older systemd" >&2
scripts/unit-compat.py --mdatpd "$ship/mdatpd"

echo "package.sh: AppArmor profile" >&2
apparmor_parser --skip-kernel-load --skip-cache apparmor/usr.sbin.mdatpd >/dev/null \
    || die "apparmor/usr.sbin.mdatpd does not parse"

echo "package.sh: SELinux module" >&2
rm -rf target/selinux && mkdir -p target/selinux
cp selinux/mdatp.te selinux/mdatp.fc selinux/mdatp.if target/selinux/
make -s -C target/selinux -f /usr/share/selinux/devel/Makefile mdatp.pp >/dev/null \
    || die "the SELinux module does not compile"
scripts/selinux-check.sh

echo "package.sh: Debian package" >&2
cargo deb -p mdatpd --target "$SHIP_TRIPLE" --no-build --strip --no-separate-debug-symbols --output "$OUT/"
deb=$(ls "$OUT"/mdatp_*.deb)
# The libc6 dependency from the binaries' own symbol versions: Debian 12's
# libc6 symbols file raises sysconf's minimum to 2.34 (for sysconf names
# these binaries never ask), so dpkg-shlibdeps' answer would make apt
# refuse the package on every older Debian and Ubuntu.
libc_min=$(scripts/glibc-check.sh --newest "$ship/mdatpd" "$ship/mdatp")
rm -rf target/deb-root
dpkg-deb -R "$deb" target/deb-root
sed -i -E "s/^(Depends:.*)libc6 \(>= [0-9.]+\)/\1libc6 (>= $libc_min)/" target/deb-root/DEBIAN/control
grep -q "^Depends:.*libc6 (>= $libc_min)" target/deb-root/DEBIAN/control \
    || die "no libc6 dependency to set in $(grep ^Depends: target/deb-root/DEBIAN/control)"
dpkg-deb --root-owner-group -Zxz -b target/deb-root "$deb" >/dev/null
rm -rf target/deb-root
echo "package.sh: $(dpkg-deb -f "$deb" Depends | sed 's/^/Depends: /')" >&2
# Errors fail the build; warnings we accept are overridden with a reason
# in packaging/deb/lintian-overrides (installed with the package).
lintian --fail-on error,warning "$deb"

echo "package.sh: RPM packages" >&2
rpm_args=(--define "_topdir $PWD/target/rpmbuild" --define "srcroot $PWD" --define "pkgversion $version"
          --define "shipdir $PWD/$ship"
          --define "_rpmdir $PWD/$OUT" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm")
rpmbuild -bb --target x86_64 "${rpm_args[@]}" packaging/rpm/mdatp.spec >target/rpmbuild.log 2>&1 \
    || { tail -30 target/rpmbuild.log >&2; die "rpmbuild failed (log: target/rpmbuild.log)"; }

# rpmlint clean (intended findings are filtered, each with its reason),
# and every Requires met by what RHEL 8 ships (a recorded list: no RPM
# distribution boots here).
rpmlint -r packaging/rpm/mdatp.rpmlintrc "$OUT"/*.rpm >target/rpmlint.log 2>&1 \
    || { cat target/rpmlint.log >&2; die "rpmlint found problems"; }
grep -q " 0 errors, 0 warnings" target/rpmlint.log || { cat target/rpmlint.log >&2; die "rpmlint is not clean"; }
scripts/rpm-deps-check.py packaging/distros/rhel8.txt "$OUT"/*.rpm

# What must ship, in every package that carries it.
expect_files() { # package-description listing-command...
    local what=$1; shift
    local listing
    listing=$("$@")
    for f in /usr/sbin/mdatpd /usr/bin/mdatp /etc/mdatp/mdatp.yaml \
             /usr/share/dbus-1/system.d/org.mdatp.Sensor1.conf \
             /usr/share/dbus-1/interfaces/org.mdatp.Sensor1.xml \
             /etc/apparmor.d/usr.sbin.mdatpd \
             /usr/share/man/man8/mdatp.8.gz /usr/share/man/man8/mdatp-health.8.gz \
             /usr/share/man/man8/mdatp-config.8.gz /usr/share/man/man8/mdatp-diagnostic.8.gz \
             /usr/share/man/man8/mdatpd.8.gz /usr/share/man/man5/mdatp.yaml.5.gz; do
        grep -q "^\.\?$f\$" <<<"$listing" || die "$what lacks $f"
    done
    grep -q "systemd/system/mdatp.service\$" <<<"$listing" || die "$what lacks mdatp.service"
    grep -q "/lib/systemd/system-generators/mdatp-systemd-compat\$" <<<"$listing" \
        || die "$what lacks the systemd generator"
}
expect_files "$deb" bash -c "dpkg-deb -c '$deb' | awk '{print \$6}'"
rpm_main=$(ls "$OUT"/mdatp-[0-9]*.x86_64.rpm)
expect_files "$rpm_main" rpm -qlp "$rpm_main"
# grep reads the whole list (no -q): an early exit would SIGPIPE rpm,
# which pipefail reports as a failure.
rpm -qlp "$OUT"/mdatp-selinux-*.rpm | grep '/usr/share/selinux/packages/mdatp.pp$' >/dev/null \
    || die "the mdatp-selinux package lacks mdatp.pp"
for pkg in "$OUT"/*; do
    echo "--- $(basename "$pkg")"
    case "$pkg" in
        *.deb) dpkg-deb -c "$pkg" | awk '{print $6}' | grep -v '/$' ;;
        *.rpm) rpm -qlp "$pkg" | grep -v '^/usr/lib/.build-id' ;;
    esac
done
echo "package.sh: packages in $OUT/"
