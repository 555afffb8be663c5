#!/bin/sh
# Builds the 32-bit probe (probe32.S) into OUT_DIR/probe32 with binutils
# (`as --32`, `ld -m elf_i386`; no 32-bit libc needed). Used by the ia32
# and kernel-matrix tests and by the VM test, which runs it in the guests.
#
#   build.sh OUT_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
as --32 -o "$out/probe32.o" "$here/probe32.S"
ld -m elf_i386 -o "$out/probe32" "$out/probe32.o"
rm -f "$out/probe32.o"
