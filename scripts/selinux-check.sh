#!/usr/bin/env bash
# Checks the compiled SELinux module (target/selinux/mdatp.pp) against a
# real distribution policy: links it with the base module of Debian's
# selinux-policy-default (refpolicy; downloaded, not installed), expands
# the result into a kernel policy and asks sesearch for the rules the
# sensor cannot run without. A module that compiles can still miss a
# rule (auditctl under NoNewPrivileges fails with EPERM without
# nnp_transition): this catches it without booting an SELinux system.
# Called by scripts/package.sh; needs setools (sesearch) and semodule-utils.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "selinux-check.sh: $*" >&2; exit 1; }

work=target/selinux/check
rm -rf "$work" && mkdir -p "$work/deb"
( cd "$work" && apt-get download -q -o APT::Sandbox::User=root selinux-policy-default >/dev/null ) \
    || die "cannot download selinux-policy-default"
dpkg-deb -x "$work"/selinux-policy-default_*.deb "$work/deb"
bunzip2 -c "$work/deb/usr/share/selinux/default/base.pp.bz2" > "$work/base.pp"
semodule_link -o "$work/linked.lnk" "$work/base.pp" target/selinux/mdatp.pp >/dev/null \
    || die "mdatp.pp does not link with the distribution's base policy"
semodule_expand "$work/linked.lnk" "$work/policy.bin" \
    || die "the linked policy does not expand (unsatisfied requirements?)"

# Each: the sesearch query, and the rule its output must contain.
fail=0
expect() { # description, expected line, sesearch args...
    local what=$1 want=$2; shift 2
    local found
    # Read whole before matching: `sesearch | grep -q` under pipefail
    # fails when grep exits at the match while sesearch still writes
    # (SIGPIPE) — the check once failed on a rule that was there.
    found=$(sesearch "$@" "$work/policy.bin")
    if grep -qF "$want" <<<"$found"; then
        echo "selinux-check.sh: ok: $what" >&2
    else
        echo "selinux-check.sh: MISSING: $what: $want" >&2
        fail=1
    fi
}
expect "auditctl runs in its own domain" \
    "allow mdatpd_t auditctl_t:process transition;" -A -s mdatpd_t -t auditctl_t -c process
expect "the transition is allowed under NoNewPrivileges" \
    "nnp_transition" -A -s mdatpd_t -t auditctl_t -c process2
expect "auditctl_t is entered from the auditctl executable" \
    "type_transition mdatpd_t auditctl_exec_t:process auditctl_t;" -T -s mdatpd_t -t auditctl_exec_t
expect "the process connector socket (net_admin)" \
    "net_admin" -A -s mdatpd_t -t mdatpd_t -c capability
expect "BPF programs and maps" "prog_load" -A -s mdatpd_t -t mdatpd_t -c bpf
# The rules in optional blocks (for older policies) are live on this one.
expect "CAP_BPF and CAP_PERFMON" "perfmon" -A -s mdatpd_t -t mdatpd_t -c capability2
expect "tracepoint ids in tracefs" "read" -A -s mdatpd_t -t tracefs_t -c file
# Network outputs: connecting to collectors only under the boolean.
expect "TCP connects to collectors behind mdatpd_network_outputs" \
    "allow mdatpd_t port_type:tcp_socket name_connect; [ mdatpd_network_outputs ]:True" \
    -A -s mdatpd_t -c tcp_socket -p name_connect
[ "$fail" = 0 ] || die "the module lacks rules the sensor needs (above)"
