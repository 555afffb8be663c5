#!/bin/sh
# Regenerates bpf/include/vmlinux.h from the running kernel's BTF.
# The header is committed so that builds do not depend on the build host's
# kernel; CO-RE relocations adapt the programs to the target kernel at load.
set -eu
here=$(dirname "$0")
bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$here/../include/vmlinux.h"
echo "wrote $here/../include/vmlinux.h ($(uname -r))"
