# The automation phase (sourced by guest-test.sh): Debian's own ansible
# and puppet apply the role (contrib/ansible/roles/mdatp) and the module
# (contrib/puppet/mdatp) to this guest, from the examples of the installed
# mdatp-config(8) page, as a fleet would: install, settings in force, a
# second run changes nothing and does not reload, check mode/noop reports
# and changes nothing, a bad value fails naming the key and the sensor
# keeps its settings, a managed key refuses `mdatp config`. The page's
# busctl examples run as printed.

# The example block NAME of mdatp-config(8) as the package installs it
# (read from the package: the role is what installs it), as a reader sees
# it (roff escapes undone).
man_example() { # name
    dpkg-deb --fsys-tarfile /var/tmp/mdatp.deb | tar -xO ./usr/share/man/man8/mdatp-config.8.gz | zcat |
        awk -v n="$1" '$0 == ".\\\" example " n {f=1; next} $0 == ".\\\" end example" {f=0} f && $0 != ".nf" && $0 != ".fi"' |
        sed -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\e/\\/g'
}
reloads() { journalctl -u mdatp -b -o cat | grep -c '^Reloaded' || true; }
setting() { mdatp config get "$1" --output json; }
setting_is() { # key value locked-by
    local j
    j=$(setting "$1") || return 1
    echo "# $j"
    grep -q "\"value\":$2[,}]" <<<"$j" && grep -q "\"locked_by\":\"$3\"" <<<"$j"
}
# After a run with a bad value failed (checked by the caller): it named
# the file and key, the profile on disk and the sensor (process, window)
# are as they were, and the managed key still refuses `mdatp config`.
bad_value_kept() { # log profile sha256-before pid window
    local log=$1 profile=$2 sum=$3 pid=$4 window=$5 rc
    check "the failure names the file and key (the validator's message)" \
        grep -q "$profile: folding.window_ms" "$log"
    check "the profile on disk is unchanged" bash -c "[ \"\$(sha256sum $profile)\" = \"$sum\" ]"
    check "the sensor runs on, same process" \
        bash -c "systemctl is-active --quiet mdatp && [ \"\$(systemctl show -p MainPID --value mdatp)\" = $pid ]"
    check "... and the window in force is still $window" setting_is folding.window_ms "$window" "$profile"
    mdatp config folding.window-ms --value 100 >/tmp/locked.log 2>&1
    rc=$?
    check "mdatp config refuses the managed key (exit 1, Locked, naming the profile)" \
        bash -c "[ $rc = 1 ] && grep -q 'managed by $profile' /tmp/locked.log"
}
recap_changed() { grep -o 'changed=[0-9]*' "$1" | tail -1 | cut -d= -f2; }

run_ansible() { # log extra-args...
    local log=$1
    shift
    # Under emulation every module run costs seconds: no implicit fact
    # gathering (the role asks for the minimum it needs), no interpreter
    # discovery, pipelining — settings fleets use for speed too.
    ANSIBLE_ROLES_PATH=$share/contrib/ansible/roles ANSIBLE_NOCOLOR=1 \
        ANSIBLE_LOCAL_TEMP=/tmp/ansible-local ANSIBLE_REMOTE_TEMP=/tmp/ansible-remote \
        ANSIBLE_GATHERING=explicit ANSIBLE_PIPELINING=1 \
        ansible-playbook -i localhost, -c local -e ansible_become_method=su \
        -e ansible_python_interpreter=/usr/bin/python3 \
        /tmp/site.yml "$@" >"$log" 2>&1
    local rc=$?
    # What failed, then the recap (the whole log is in results/).
    grep -E -m3 '^(fatal|ERROR)' "$log" | cut -c1-600 | sed 's/^/#   ansible: /'
    grep -A1 'PLAY RECAP' "$log" | tail -1 | sed 's/^/#   ansible: /'
    return $rc
}

run_puppet() { # log manifest extra-args...
    local log=$1 manifest=$2
    shift 2
    puppet apply --detailed-exitcodes --color=false --modulepath="$share/contrib/puppet" \
        "$@" "$manifest" >"$log" 2>&1
    local rc=$?
    grep -E -m3 '^Error' "$log" | cut -c1-600 | sed 's/^/#   puppet: /'
    grep -E 'Applied catalog' "$log" | sed 's/^/#   puppet: /'
    return $rc
}

run_automation() {
    local profile=/etc/mdatp/managed/50-ansible.yaml pid sum before rc
    cp "$share/mdatp.deb" /var/tmp/mdatp.deb
    echo "# $(dpkg-query -W -f '${Package} ${Version}, ' ansible-core ansible puppet-agent)"

    # --- Ansible: the playbook of the man page, as printed.
    man_example ansible > /tmp/site.yml
    check "the man page has the Ansible example" grep -q 'role: mdatp' /tmp/site.yml
    check "ansible-playbook installs the sensor and applies the profile" run_ansible "$results"/ansible-1.log
    check "the play reported changes" test "$(recap_changed "$results/ansible-1.log")" -gt 0
    check "the service is active on eBPF" wait_for 60 subsystem_is ebpf
    check "health shows the provider setting of the profile" \
        test "$(field ebpf_supplementary_event_provider)" = enabled
    check "the settings are in force, locked by the role's profile" setting_is folding.window_ms 2000 "$profile"
    check "mdatp config in-force: the whole profile" mdatp config in-force "$profile"
    check "the profile is root's only" test "$(stat -c %a "$profile")" = 600
    check "the sensor is healthy" test "$(field healthy)" = true
    # The control for every "did not reload" check below: a reload must
    # show in the count they compare, or they could never fail.
    before=$(reloads)
    systemctl reload mdatp
    check "a reload shows in the journal's count" wait_for 20 bash -c "[ \$(journalctl -u mdatp -b -o cat | grep -c '^Reloaded') -gt $before ]"
    pid=$(main_pid) before=$(reloads) sum=$(sha256sum "$profile")
    check "the same play again succeeds" run_ansible "$results"/ansible-2.log
    check "the second run reports no change" test "$(recap_changed "$results/ansible-2.log")" = 0
    check "the second run did not reload the service" test "$(reloads)" = "$before"

    # Check mode with a changed variable: reported, nothing changed.
    # This run and the next start at the profile's task: the tasks before
    # it (install, directory) were just shown to change nothing, and each
    # costs half a minute under emulation.
    check "check mode with another window succeeds" \
        run_ansible "$results"/ansible-3.log --check --diff --start-at-task 'Write the managed profile' \
        -e '{"mdatp_folding": {"window_ms": 3000}}'
    check "check mode reports the profile would change" \
        bash -c "grep -q 'changed: \[localhost\]' $results/ansible-3.log && grep -q '+  window_ms: 3000' $results/ansible-3.log"
    check "check mode changed nothing (file, setting, no reload)" \
        bash -c "[ \"\$(sha256sum $profile)\" = \"$sum\" ] && [ \"\$(journalctl -u mdatp -b -o cat | grep -c '^Reloaded')\" = $before ]"
    check "the window in force is still 2000" setting_is folding.window_ms 2000 "$profile"

    # A bad value: the play fails naming the key; the sensor keeps running
    # with its settings.
    run_ansible "$results"/ansible-4.log --start-at-task 'Write the managed profile' \
        -e '{"mdatp_folding": {"window_ms": "later"}}'
    rc=$?
    grep -m2 'configuration problem\|window_ms' $results/ansible-4.log | cut -c1-300 | sed 's/^/#   /'
    check "a bad value fails the play" test "$rc" -ne 0
    bad_value_kept "$results/ansible-4.log" "$profile" "$sum" "$pid" 2000

    # The next tool starts from a tree without this profile. (A run of the
    # role with no settings removes it the same way: not run here, each
    # run costs two minutes under emulation.)
    rm -f "$profile"
    systemctl reload mdatp

    # --- Puppet: the manifest of the man page, as printed.
    profile=/etc/mdatp/managed/50-puppet.yaml
    man_example puppet > /tmp/site.pp
    check "the man page has the Puppet example" grep -q "class { 'mdatp'" /tmp/site.pp
    run_puppet $results/puppet-1.log /tmp/site.pp
    rc=$?
    check "puppet apply applies the profile (exit 2: changes)" test "$rc" = 2
    check "the settings are in force, locked by the module's profile" setting_is folding.window_ms 2500 "$profile"
    check "the exclusion is in force" bash -c "mdatp config get exclude.paths | grep -q /var/cache/backup"
    check "the sensor is healthy after puppet" test "$(field healthy)" = true
    pid=$(main_pid) before=$(reloads) sum=$(sha256sum "$profile")
    run_puppet $results/puppet-2.log /tmp/site.pp
    rc=$?
    check "the same manifest again: no change (exit 0)" test "$rc" = 0
    check "the second apply did not reload the service" test "$(reloads)" = "$before"

    sed 's/2500/3500/' /tmp/site.pp > /tmp/site-3500.pp
    run_puppet $results/puppet-3.log /tmp/site-3500.pp --noop
    rc=$?
    check "noop with another window: reported, not failed" \
        bash -c "{ [ $rc = 0 ] || [ $rc = 2 ]; } && grep -q '50-puppet.yaml.*(noop)' $results/puppet-3.log"
    check "noop changed nothing (file, setting, no reload)" \
        bash -c "[ \"\$(sha256sum $profile)\" = \"$sum\" ] && [ \"\$(journalctl -u mdatp -b -o cat | grep -c '^Reloaded')\" = $before ]"

    sed "s/'window_ms' => 2500/'window_ms' => 'later'/" /tmp/site.pp > /tmp/site-bad.pp
    run_puppet $results/puppet-4.log /tmp/site-bad.pp
    rc=$?
    grep -m2 'window_ms' $results/puppet-4.log | cut -c1-300 | sed 's/^/#   /'
    check "a bad value fails the apply (exit 4 or 6)" bash -c "[ $rc = 4 ] || [ $rc = 6 ]"
    bad_value_kept "$results/puppet-4.log" "$profile" "$sum" "$pid" 2500

    # --- busctl: the page's examples, each as printed.
    local n=0 line
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        n=$((n + 1))
        echo "# \$ $line"
        out=$(bash -c "$line" 2>&1)
        rc=$?
        echo "$out" | head -3 | sed 's/^/#   /'
        check "busctl example $n exits 0" test "$rc" = 0
        case "$line" in
            *" Healthy") check "Healthy is true" test "$out" = "b true" ;;
            *DescribeConfig*) check "DescribeConfig names the value and the lock" \
                bash -c "grep -q '\"2500\"' <<<'$out' && grep -q '$profile' <<<'$out'" ;;
            *NotInForce*) check "NotInForce: the puppet profile is all in force" test "$out" = "a{ss} 0" ;;
        esac
    done < <(man_example busctl)
    check "the page has five busctl examples" test "$n" = 5

    # Under the unit's sandbox (ProtectSystem=strict: /tmp is read-only to
    # the daemon), the dry run and the change of an unmanaged key work.
    check "mdatp config --check under the sandbox: would change (exit 0)" \
        mdatp config folding.enabled --value false --check
    check "mdatp config under the sandbox: changed (exit 0), then unchanged (exit 3)" \
        bash -c 'mdatp config folding.enabled --value false && { mdatp config folding.enabled --value false; [ $? = 3 ]; }'
    check "... and in force" bash -c 'mdatp config get folding.enabled | grep -q "= false (/var/lib/mdatp/local.yaml)"'
}
