#!/bin/bash
# Runs inside the guest, as root, at boot (mdatp-vmtest.service), from the
# host's 9p share at /mnt/host. The phases come from the kernel command
# line (mdatp.phase=main,immutable: one or several, run in that order in
# this boot). Output is TAP-like; results/<phases>.status gets PASS or
# FAIL and the guest powers off. See tests/integration/vm/run.sh.
set -u

phase=$(sed -n 's/.*mdatp\.phase=\([a-z,-]*\).*/\1/p' /proc/cmdline)
share=/mnt/host
results=$share/results
mkdir -p "$results"
exec > >(tee "$results/$phase.log") 2>&1

fails=0
ok() { echo "ok - $*"; }
not_ok() {
    echo "not ok - $*"
    fails=$((fails + 1))
    # What the sensor said just before (the whole journal is in results/).
    journalctl -u mdatp -b --no-pager -o cat -n 8 2>/dev/null | sed 's/^/#   journal: /'
}
check() { # description command...
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
wait_for() { # seconds command...
    local n=$1
    shift
    for _ in $(seq "$n"); do
        "$@" && return 0
        sleep 1
    done
    "$@"
}
finish() {
    # The sensor's journal of this boot goes back with the results: a
    # failure is diagnosed from what the daemon said, not inferred.
    journalctl -b -u mdatp --no-pager -o short-monotonic > "$results/$phase-journal.log" 2>&1
    echo "# phase $phase: $fails failure(s)"
    if [ "$fails" -eq 0 ]; then echo PASS; else echo FAIL; fi > "$results/$phase.status"
    sync
    systemctl --no-block poweroff
    exit 0
}

field() { mdatp health --field "$1" 2>/dev/null; }
subsystem_is() { [ "$(field supplementary_events_subsystem)" = "$1" ]; }
main_pid() { systemctl show -p MainPID --value mdatp; }
active() { systemctl is-active --quiet mdatp; }
our_rules() { auditctl -l | grep -c 'key=mdatp$' || true; }
# Every rule line that is not ours, exactly as auditctl prints it.
foreign_rules() { auditctl -l | grep -v 'key=mdatp$' | grep -v '^No rules$' || true; }
same_foreign() { [ "$(foreign_rules)" = "$FOREIGN" ]; }
set_provider() { # enabled|disabled
    busctl call org.mdatp.Sensor1 /org/mdatp/Sensor1 org.mdatp.Sensor1 \
        SetConfig sv ebpf_supplementary_event_provider s "$1"
}
install_deb() {
    # apt, as an admin would: it checks the package's dependencies
    # (libc6, dbus) against this distribution's.
    check "apt-get install of the .deb succeeds" apt-get install -y -q "$share/mdatp.deb"
    check "the service becomes active" wait_for 180 active
    check "health reports the eBPF provider" wait_for 30 subsystem_is ebpf
}
# An exec whose argv carries a marker; succeeds when an exec event with
# that marker, this pid and the given provider is in the event file.
exec_seen() { # provider
    local marker pid line
    marker="vm-marker-$RANDOM$RANDOM"
    pid=$(sh -c 'echo $$; exec /usr/bin/env true '"$marker")
    wait_for 30 grep -q -- "$marker" /var/log/mdatp/events.jsonl || return 1
    line=$(grep -- "$marker" /var/log/mdatp/events.jsonl | grep '"class_uid":1007' | grep '"activity_id":1' | head -1)
    echo "# exec event: ${line:0:300}"
    grep -q "\"pid\":$pid[,}]" <<<"$line" && grep -q "\"provider\":\"$1\"" <<<"$line"
}

# This systemd parsed every line of the unit: no directive it does not
# know, no value it ignored (docs/PACKAGING.md lists them per version).
unit_understood() {
    local warnings
    warnings=$(journalctl -b -o cat | grep 'mdatp\.service' | grep -iE 'unknown|ignoring|failed to parse|invalid' || true)
    [ -z "$warnings" ] || { echo "$warnings" | sed 's/^/#   /'; return 1; }
}
# The D-Bus policy on this dbus: health for every user, changes for root.
dbus_policy_holds() {
    useradd -M -s /usr/sbin/nologin mdatp-dbus 2>/dev/null || true
    runuser -u mdatp-dbus -- busctl call org.mdatp.Sensor1 /org/mdatp/Sensor1 org.mdatp.Sensor1 Health >/dev/null \
        || { echo "# an unprivileged user cannot read health"; return 1; }
    local out
    out=$(runuser -u mdatp-dbus -- busctl call org.mdatp.Sensor1 /org/mdatp/Sensor1 org.mdatp.Sensor1 \
        SetConfig sv ebpf_supplementary_event_provider s disabled 2>&1) \
        && { echo "# an unprivileged user changed the provider"; return 1; }
    echo "# unprivileged SetConfig: $out"
    grep -qi 'rejected\|denied\|not allowed' <<<"$out"
}

# NoNewPrivs set, and the capability bounding set lacks what the unit
# leaves out (CAP_NET_RAW = 13, CAP_SYS_MODULE = 16) but keeps CAP_BPF
# (39), and no CAP_SYS_ADMIN (21): the Debian guests' systemd knows
# CAP_BPF and their kernels have it, and perf_event_paranoid 3 needs
# nothing more of raw tracepoints.
hardened() { # pid
    local bnd
    bnd=$((16#$(awk '/^CapBnd/{print $2}' "/proc/$1/status")))
    grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$1/status" \
        && (( (bnd >> 13 & 1) == 0 && (bnd >> 16 & 1) == 0 && (bnd >> 21 & 1) == 0 && (bnd >> 39 & 1) == 1 ))
}

# The kernel matrix's workload (tests/integration/workload/): its events
# and health go back to the host, which checks and compares them
# (matrix.py, called by run.sh).
run_workload() {
    useradd -M -s /usr/sbin/nologin mdatp-wl 2>/dev/null || true
    echo 'mdatp-wl:Wl-passw0rd' | chpasswd
    check "the kernel-matrix workload runs" \
        bash "$share/workload/workload.sh" /tmp/mdatp-wl "$share/mdatp-net-workload" \
        "$share/probe32"
    # The login is the workload's last step.
    check "the workload's login event is written" wait_for 60 bash -c \
        'grep "\"class_uid\":3002" /var/log/mdatp/events.jsonl | grep -q "\"mdatp-wl\""'
    sleep 2
    mdatp health --output json > "$results/workload-health.json"
    cp /var/log/mdatp/events.jsonl "$results/workload-events.jsonl"
    uname -r > "$results/workload-kernel"
}

# The exclusion bypass matrix (tests/integration/workload/bypass.sh)
# against the installed sensor: exclusions in a drop-in, reloaded live;
# its events go back to the host, which checks them (bypass.py, run.sh).
run_bypass() {
    local d=/tmp/mdatp-bp
    rm -rf "$d"
    mkdir -p "$d/X" "$d/Y"
    cp /bin/sh "$d/Y/tool"
    cp /bin/sh "$d/Y/impostor"
    printf 'exclude:\n  paths: [%s/X]\n  processes: [%s/Y/tool]\n' "$d" "$d" \
        > /etc/mdatp/conf.d/90-vmtest-bypass.yaml
    check "a reload takes the bypass matrix's exclusions" systemctl reload mdatp
    sleep 2
    check "the bypass matrix runs" \
        bash "$share/workload/bypass.sh" "$d" "$share/mdatp-io-uring-workload" \
        "$share/mdatp-test-helper"
    check "the bypass matrix's last event is written" \
        wait_for 30 grep -q "\"$d/Y/last\"" /var/log/mdatp/events.jsonl
    cp /var/log/mdatp/events.jsonl "$results/bypass-events.jsonl"
    echo "$d" > "$results/bypass-dir"
    rm -f /etc/mdatp/conf.d/90-vmtest-bypass.yaml
    check "a reload drops them again" systemctl reload mdatp
}

# The unit's IP sandbox with a network output (docs/OUTPUTS.md): closed
# until the configuration names a collector; `daemon-reload` runs the
# package's generator, which opens it to that address only.
run_network_output() {
    local port=16514 recv=/tmp/mdatp-syslog-recv rpid
    rm -f "$recv"
    perl "$share/workload/syslog-receiver.pl" "$port" "$recv" &
    rpid=$!
    check "the unit allows no IP address by default" \
        bash -c '[ -z "$(systemctl show -p IPAddressAllow --value mdatp)" ]'
    printf 'output:\n  syslog:\n    enabled: true\n    transport: tcp\n    address: 127.0.0.1:%s\n' "$port" \
        > /etc/mdatp/conf.d/90-vmtest-syslog.yaml
    check "a reload takes the syslog output" systemctl reload mdatp
    check "before daemon-reload the sandbox refuses the collector, and health says how to open it" \
        wait_for 30 bash -c 'mdatp health --field outputs | grep -q "IP sandbox"'
    systemctl daemon-reload
    check "daemon-reload writes the drop-in for that address only" \
        grep -qx 'IPAddressAllow=127.0.0.1' /run/systemd/generator/mdatp.service.d/60-network-outputs.conf
    systemctl restart mdatp
    wait_for 60 subsystem_is ebpf
    /bin/true mdatp-vm-syslog-marker
    check "an exec reaches the collector on the guest's loopback over TCP" \
        wait_for 30 grep -q mdatp-vm-syslog-marker "$recv"
    check "health: the syslog output is ok" \
        wait_for 20 bash -c 'mdatp health --field outputs | grep -q "ok: tcp:127.0.0.1"'
    rm -f /etc/mdatp/conf.d/90-vmtest-syslog.yaml
    systemctl daemon-reload
    check "without a network output the drop-in is gone" \
        test ! -e /run/systemd/generator/mdatp.service.d/60-network-outputs.conf
    systemctl restart mdatp
    wait_for 60 subsystem_is ebpf
    kill "$rpid"
}

# shellcheck source=automation.sh
. "$share/automation.sh"

echo "# phase $phase on $(uname -r)"

run_phase() { # phase
case "$1" in
main)
    # Rules of another tool, which the sensor must never touch.
    auditctl -a always,exit -F arch=b64 -S sethostname -F key=vmtest-foreign
    auditctl -w /etc/hosts -p wa -k vmtest-watch
    FOREIGN=$(foreign_rules)
    echo "# foreign rules:"; echo "$FOREIGN" | sed 's/^/#   /'

    install_deb
    mdatp health | sed 's/^/#   /'
    check "systemd understood every line of the unit" unit_understood
    check "the D-Bus policy holds (health open, changes root only)" dbus_policy_holds
    check "an exec in the guest appears as an eBPF event with its pid and argv" exec_seen ebpf
    run_workload
    run_bypass
    pid=$(main_pid)
    echo "# AppArmor: enabled=$(cat /sys/module/apparmor/parameters/enabled 2>&1) label=$(cat "/proc/$pid/attr/current" 2>&1)"
    aa-status 2>&1 | grep -i -m3 'mdatp\|profiles are loaded' | sed 's/^/#   /'
    check "the daemon runs under its AppArmor profile (complain mode)" \
        grep -q '^mdatpd (complain)' "/proc/$pid/attr/current"
    check "the unit's hardening is in effect (NoNewPrivs, bounded capabilities)" hardened "$pid"

    # An upgrade (the same package again: postinst configure with the old
    # version) restarts the service on the new binary.
    pid=$(main_pid)
    check "reinstalling (upgrade path) succeeds" dpkg -i "$share/mdatp.deb"
    check "the upgrade restarted the service" wait_for 120 bash -c \
        "p=\$(systemctl show -p MainPID --value mdatp); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ] && systemctl is-active --quiet mdatp"
    check "health reports eBPF after the upgrade" wait_for 60 subsystem_is ebpf

    # Switch to the audit subsystem over D-Bus, and back.
    check "busctl SetConfig switches to auditd" set_provider disabled
    check "health reports auditd" wait_for 60 subsystem_is auditd
    check "our rules are loaded, keyed mdatp" test "$(our_rules)" -gt 0
    check "auditctl -l shows only our rules plus the foreign ones" same_foreign
    check "the rules file is written" test -f /etc/audit/rules.d/mdatp.rules
    check "an exec appears as an auditd event with its pid" exec_seen auditd
    check "busctl SetConfig switches back to ebpf" set_provider enabled
    check "health reports ebpf again" wait_for 60 subsystem_is ebpf
    check "switching back clears our rules" test "$(our_rules)" -eq 0
    check "the foreign rules are untouched" same_foreign
    check "the rules file is gone" test ! -e /etc/audit/rules.d/mdatp.rules

    # Stopping (and disabling) the service takes its rules and rules file
    # with it: nothing of ours is left for augenrules at the next boot.
    set_provider disabled
    check "auditd provider before disable" wait_for 60 subsystem_is auditd
    check "rules and rules file before disable" bash -c "[ \"\$(auditctl -l | grep -c 'key=mdatp\$')\" -gt 0 ] && test -f /etc/audit/rules.d/mdatp.rules"
    check "systemctl disable --now mdatp" systemctl disable --now mdatp
    check "disable --now removed our rules" test "$(our_rules)" -eq 0
    check "disable --now removed the rules file" test ! -e /etc/audit/rules.d/mdatp.rules
    check "disable --now left the foreign rules" same_foreign
    check "systemctl enable --now mdatp" systemctl enable --now mdatp
    check "back on auditd after enable (the setting persists)" wait_for 120 subsystem_is auditd
    set_provider enabled
    check "back on ebpf" wait_for 60 subsystem_is ebpf

    # A broken drop-in: reload is refused and the sensor keeps running.
    pid=$(main_pid)
    echo 'folding: [oops' > /etc/mdatp/conf.d/99-broken.yaml
    check "systemctl reload with a broken drop-in fails" bash -c '! systemctl reload mdatp'
    check "the service is still active, same process" bash -c "systemctl is-active --quiet mdatp && [ \"\$(systemctl show -p MainPID --value mdatp)\" = $pid ]"
    kill -HUP "$pid"
    check "a SIGHUP with the broken drop-in is refused and reported" \
        wait_for 20 bash -c 'mdatp health --field config_errors | grep -q 99-broken.yaml'
    check "events still flow after the refused reload" exec_seen ebpf
    rm -f /etc/mdatp/conf.d/99-broken.yaml
    check "systemctl reload succeeds once the drop-in is fixed" systemctl reload mdatp
    check "config errors clear" wait_for 20 bash -c '[ -z "$(mdatp health --field config_errors | tr -d "[] \n")" ]'
    check "mdatp diagnostic create writes an archive" \
        bash -c 'f=$(mdatp diagnostic create) && tar -tzf "$f" | grep -q health.json'

    # The watchdog: a hung (stopped) daemon is killed and restarted.
    mkdir -p /run/systemd/system/mdatp.service.d
    printf '[Service]\nWatchdogSec=5s\nTimeoutAbortSec=5s\n' > /run/systemd/system/mdatp.service.d/vmtest-watchdog.conf
    systemctl daemon-reload
    systemctl restart mdatp
    check "the service restarts with a 5 s watchdog" wait_for 120 active
    wait_for 30 subsystem_is ebpf
    lines_before=$(wc -l < /var/log/mdatp/events.jsonl)
    pid=$(main_pid)
    restarts=$(systemctl show -p NRestarts --value mdatp)
    kill -STOP "$pid"
    check "the watchdog restarts the hung daemon" wait_for 120 bash -c \
        "p=\$(systemctl show -p MainPID --value mdatp); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ] && systemctl is-active --quiet mdatp"
    check "systemd counted the restart" test "$(systemctl show -p NRestarts --value mdatp)" -gt "$restarts"
    check "the journal names the watchdog" bash -c 'journalctl -u mdatp -b | grep -qi watchdog'
    check "events written before the restart are kept" test "$(wc -l < /var/log/mdatp/events.jsonl)" -ge "$lines_before"
    rm -f /run/systemd/system/mdatp.service.d/vmtest-watchdog.conf
    systemctl daemon-reload
    systemctl restart mdatp
    wait_for 120 active

    # The unit's sandbox (syscall filter, read-only paths, capabilities)
    # must not have refused the daemon anything along the way.
    journalctl -u mdatp -b -o cat | grep -i 'not permitted\|permission denied\|read-only file system' | head -5 | sed 's/^/#   /'
    check "the sandbox refused the daemon nothing (journal)" \
        bash -c "! journalctl -u mdatp -b -o cat | grep -qi 'not permitted\|permission denied\|read-only file system'"
    # After that check: the sandbox's refusal of the collector is logged.
    run_network_output

    # Purge while the audit provider has rules loaded.
    set_provider disabled
    check "auditd provider before purge" wait_for 60 subsystem_is auditd
    check "rules loaded before purge" test "$(our_rules)" -gt 0
    check "apt-get purge mdatp succeeds" apt-get purge -y -q mdatp
    check "purge leaves no rule keyed mdatp" test "$(our_rules)" -eq 0
    check "purge leaves the foreign rules" same_foreign
    check "purge removes the rules file, state, logs and configuration" \
        bash -c '! test -e /etc/audit/rules.d/mdatp.rules && ! test -e /var/lib/mdatp && ! test -e /var/log/mdatp && ! test -e /etc/mdatp'
    check "no mdatpd process is left" bash -c '! pidof mdatpd'
    ;;
distro)
    # Another distribution's userland (Debian 11: glibc 2.31, systemd 247,
    # dbus 1.12, auditd 3.0) with its own kernel: the package installs
    # with apt, runs, reports, switches providers and purges cleanly.
    auditctl -a always,exit -F arch=b64 -S sethostname -F key=vmtest-foreign
    FOREIGN=$(foreign_rules)
    echo "# $(. /etc/os-release; echo "$PRETTY_NAME"), $(systemctl --version | head -1), $(ldd --version | head -1), dbus $(dbus-daemon --version | head -1 | awk '{print $NF}')"
    install_deb
    mdatp health | sed 's/^/#   /'
    check "systemd understood every line of the unit" unit_understood
    check "an exec appears as an event with its pid and argv" exec_seen ebpf
    check "the D-Bus policy holds on this dbus (health open, changes root only)" dbus_policy_holds
    check "the unit's hardening is in effect (NoNewPrivs, bounded capabilities)" hardened "$(main_pid)"
    run_workload
    # The kernel's own compat build of the syscall programs (5.8-5.14)
    # against the ways around the exclusions.
    run_bypass
    # The generator must run on this systemd (247, built for a split /usr:
    # generators only from /lib): the network drop-in, as on Debian 12.
    run_network_output
    check "busctl SetConfig switches to auditd" set_provider disabled
    check "health reports auditd" wait_for 60 subsystem_is auditd
    check "our rules are loaded, keyed mdatp" test "$(our_rules)" -gt 0
    check "an exec appears as an auditd event with its pid" exec_seen auditd
    check "busctl SetConfig switches back to ebpf" set_provider enabled
    check "health reports ebpf again" wait_for 60 subsystem_is ebpf
    check "switching back clears our rules" test "$(our_rules)" -eq 0
    check "the foreign rules are untouched" same_foreign
    check "the sandbox refused the daemon nothing (journal)" \
        bash -c "! journalctl -u mdatp -b -o cat | grep -qi 'not permitted\|permission denied\|read-only file system'"
    set_provider disabled
    check "auditd provider before purge" wait_for 60 subsystem_is auditd
    check "apt-get purge mdatp succeeds" apt-get purge -y -q mdatp
    check "purge leaves no rule keyed mdatp" test "$(our_rules)" -eq 0
    check "purge leaves the foreign rules" same_foreign
    check "purge removes the rules file, state, logs and configuration" \
        bash -c '! test -e /etc/audit/rules.d/mdatp.rules && ! test -e /var/lib/mdatp && ! test -e /var/log/mdatp && ! test -e /etc/mdatp'
    check "no mdatpd process is left" bash -c '! pidof mdatpd'
    ;;
workload)
    # Another kernel of the matrix: whatever the sources, every expected
    # event must come (the host checks which source served each kind).
    check "dpkg -i installs the package" dpkg -i "$share/mdatp.deb"
    check "the service becomes active" wait_for 180 active
    mdatp health | sed 's/^/#   /'
    run_workload
    ;;
immutable)
    install_deb
    # After main in the same boot, the foreign rule is there already.
    auditctl -l | grep -q 'key=vmtest-foreign$' \
        || auditctl -a always,exit -F arch=b64 -S sethostname -F key=vmtest-foreign
    FOREIGN=$(foreign_rules)
    set_provider disabled
    check "auditd provider with our rules" wait_for 60 subsystem_is auditd
    check "our rules are loaded" test "$(our_rules)" -gt 0
    auditctl -e 2 >/dev/null
    check "audit is immutable now" bash -c 'auditctl -s | grep -q "^enabled 2"'
    check "the switch to ebpf still happens" bash -c 'busctl call org.mdatp.Sensor1 /org/mdatp/Sensor1 org.mdatp.Sensor1 SetConfig sv ebpf_supplementary_event_provider s enabled'
    check "health reports ebpf" wait_for 60 subsystem_is ebpf
    check "health reports audit immutable" test "$(field audit_immutable)" = true
    echo "# health_issues: $(field health_issues)"
    check "health names the issue and the remedy (reboot)" bash -c 'mdatp health --field health_issues | grep -qi "immutable" && mdatp health --field health_issues | grep -qi "reboot"'
    check "our rules stay loaded (immutable)" bash -c "[ \"\$(auditctl -l | grep -c 'key=mdatp\$')\" -gt 0 ]" 
    check "the foreign rules are untouched" same_foreign
    check "the rules file is removed so a reboot clears our rules" test ! -e /etc/audit/rules.d/mdatp.rules
    check "the service is still active" active
    check "an exec is seen by eBPF under immutable audit" exec_seen ebpf
    check "systemctl stop works under immutable audit" timeout 60 systemctl stop mdatp
    check "systemctl start works again" systemctl start mdatp
    check "active after start" wait_for 120 active
    # Disabled with our rules still loaded (immutable): the reboot that
    # follows must not bring any back.
    check "systemctl disable --now mdatp under immutable audit" timeout 60 systemctl disable --now mdatp
    check "no rules file for augenrules to load at boot" test ! -e /etc/audit/rules.d/mdatp.rules
    ;;
after-immutable)
    check "the reboot ended immutable mode" bash -c '! auditctl -s | grep -q "^enabled 2"'
    check "no rule keyed mdatp survived the reboot" test "$(our_rules)" -eq 0
    check "the disabled service did not start at boot" bash -c '! systemctl is-active --quiet mdatp && ! systemctl is-enabled --quiet mdatp'
    check "systemctl enable --now mdatp" systemctl enable --now mdatp
    check "the sensor is back on eBPF" wait_for 180 bash -c 'systemctl is-active --quiet mdatp && [ "$(mdatp health --field supplementary_events_subsystem)" = ebpf ]'
    check "an exec appears after the reboot" exec_seen ebpf
    check "apt-get purge mdatp succeeds" apt-get purge -y -q mdatp
    ;;
automation)
    run_automation
    check "apt-get purge mdatp after the automation" apt-get purge -y -q mdatp
    # The profile is the configuration tool's file, not the package's.
    check "purge removes state and logs and leaves the fleet tool's profile" \
        bash -c '! test -e /var/lib/mdatp && ! test -e /var/log/mdatp && test -f /etc/mdatp/managed/50-puppet.yaml'
    check "no mdatpd process is left" bash -c '! pidof mdatpd'
    ;;
*)
    not_ok "unknown phase '$1'"
    ;;
esac
}

for part in ${phase//,/ }; do
    echo "# part $part"
    run_phase "$part"
done
finish
