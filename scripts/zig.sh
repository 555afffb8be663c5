# Sourced by package.sh and the VM test: zig_setup makes `cargo zigbuild`
# available, which links against glibc $GLIBC_FLOOR's symbol versions
# (zig carries every glibc's ABI list), so what ships runs on RHEL 7's
# glibc 2.17 and newer whatever the build host's glibc is.
# Needs apt.sh sourced first.
ZIGLANG_VERSION=0.17.1          # PyPI's ziglang: zig as a Python package
CARGO_ZIGBUILD_VERSION=0.24.1
GLIBC_FLOOR=2.17
SHIP_TRIPLE=x86_64-unknown-linux-gnu
# cargo-zigbuild's target: the triple with the glibc version appended.
ZIG_TARGET=$SHIP_TRIPLE.$GLIBC_FLOOR

zig_setup() {
    local venv=${MDATP_ZIG_VENV:-/var/cache/mdatp-build/ziglang-$ZIGLANG_VERSION}
    apt_install python3-venv
    if [ "$("$venv/bin/python" -m ziglang version 2>/dev/null)" != "$ZIGLANG_VERSION" ]; then
        echo "$(basename "$0"): installing ziglang $ZIGLANG_VERSION into $venv" >&2
        rm -rf "$venv"
        mkdir -p "$(dirname "$venv")"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIGLANG_VERSION"
    fi
    # cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH.
    export PATH="$venv/bin:$PATH"
    if ! cargo install --list | grep -qx "cargo-zigbuild v$CARGO_ZIGBUILD_VERSION:"; then
        echo "$(basename "$0"): installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION" >&2
        cargo install --locked --quiet cargo-zigbuild --version "$CARGO_ZIGBUILD_VERSION"
    fi
}
