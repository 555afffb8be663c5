# Sourced by the project's scripts: apt_install PACKAGE... installs the
# Debian packages that are not installed yet (apt-get update first, once).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "$(basename "$0"): installing ${missing[*]}" >&2
        # One of our installs at a time: the test command builds the guest
        # images in the background while it installs the packagers, and
        # apt refuses a second process at once instead of waiting.
        (
            flock 8
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        ) 8>/var/lib/apt/mdatp-install.lock
    fi
}

# apt_install_quiet PACKAGE...: the same, without starting the services
# the packages ship (rsyslog, nats-server: the tests run their own
# instances and the host's logging must not change under them).
apt_install_quiet() {
    local policy=/usr/sbin/policy-rc.d had=0
    [ -e "$policy" ] && had=1
    [ "$had" = 1 ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; }
    apt_install "$@" || { [ "$had" = 1 ] || rm -f "$policy"; return 1; }
    [ "$had" = 1 ] || rm -f "$policy"
}
