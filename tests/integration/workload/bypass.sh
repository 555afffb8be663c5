#!/bin/bash
# The exclusion bypass matrix against an installed, running sensor (the VM
# test's main phase; the host runs the same cases through
# tests/integration/tests/exclusions.rs). The caller has excluded DIR/X
# (a path) and DIR/Y/tool (an executable) and made DIR/Y/tool and
# DIR/Y/impostor two copies of a shell before reloading the sensor;
# tests/integration/workload/bypass.py checks the events.
#
#   bypass.sh DIR IO_URING_WORKLOAD TEST_HELPER
set -eu
dir=$1
uring=$2
helper=$3
X=$dir/X
Y=$dir/Y
for f in a b c d e h i-src k; do echo x > "$Y/$f"; done
echo x > "$X/moved-out"
mkdir -p "$Y/sub"
echo x > "$Y/m"
for f in n o p-read; do echo x > "$Y/sub/$f"; done
ln -sfn "$Y/sub" "$X/l"
echo x > "$X/i-dst"

# From inside the excluded directory, acting outside it.
cd "$X"
rm "$Y/a"
chmod 4755 "$Y/b"
mv "$Y/c" "$Y/c2"
rm ../Y/d
ln "$Y/e" "$Y/e2"
ln -s /etc/passwd "$Y/f"
mkdir "$Y/g"
chown 1:1 "$Y/h"
mv "$Y/i-src" "$X/i-dst2"
mv moved-out "$Y/moved-in"
rm l/../m
# Through a symlink inside the excluded directory leading out of it.
rm "$X/l/n"
chmod 600 "$X/l/o"
cat "$X/l/p-read" > /dev/null
# A name relative to a directory fd of the watched directory.
"$helper" unlinkat "$Y" k

# 68 components whose kept tail reads like the excluded directory.
deep=$Y/a
IFS=/ read -ra parts <<<"${X#/}"
for p in "${parts[@]}"; do deep=$deep/$p; done
for i in $(seq 0 59); do deep=$deep/d$i; done
mkdir -p "$deep"
echo x > "$deep/deepfile"

# io_uring inside the excluded directory: never excluded by path.
"$uring" "$X" 47997 > /dev/null

# The excluded executable itself: its file stays unreported. An impostor
# bind-mounted at its path in a private mount namespace: reported.
"$Y/tool" -c "echo > $Y/by-tool; sleep 1"
unshare -m --propagation private sh -c \
    "mount --bind $Y/impostor $Y/tool && $Y/tool -c 'echo > $Y/by-impostor; sleep 1'"

# What is really excluded stays excluded.
rm "$X/i-dst"
touch "$X/inside"
cd /
echo x > "$Y/last"
