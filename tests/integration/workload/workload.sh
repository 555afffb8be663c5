#!/bin/bash
# The kernel-matrix workload: one fixed set of operations whose events
# must be the same on every kernel (tests/integration/workload/check.py
# says which events and which of their fields). Runs as root on the host
# (tests/integration/tests/kernel_matrix.rs) and in each guest
# (tests/integration/vm/guest-test.sh, phase "workload").
#
#   workload.sh DIR NET_WORKLOAD_BINARY PROBE32
#
# PROBE32: the 32-bit probe (tests/integration/ia32/build.sh), whose calls
# go through the i386 ABI (nothing listens on its ports: the refused
# connects are the events).
#
# DIR is emptied first. Needs pamtester and a user mdatp-wl whose password
# is "Wl-passw0rd" (the callers create it).
set -eu

dir=$1
net=$2
probe32=$3
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"

/usr/bin/env true mdatp-wl-exec "two words"
echo data > "$dir/created"
mv "$dir/created" "$dir/renamed"
chmod 0750 "$dir/renamed"
chown 1:1 "$dir/renamed"
ln "$dir/renamed" "$dir/hardlink"
ln -s renamed "$dir/symlink"
mkdir "$dir/subdir"
rm "$dir/hardlink"
cat /etc/shadow > /dev/null
"$net" 47100
"$probe32" "$dir/ia32-made" 47104
echo Wl-passw0rd | pamtester login mdatp-wl authenticate
