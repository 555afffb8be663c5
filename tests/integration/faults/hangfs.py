#!/usr/bin/python3
"""A FUSE filesystem for the fault tests (faults.rs): files in memory,
served to everyone except one process. Every request made by the pid
written in PID_FILE (the sensor) hangs until the filesystem goes away:
a dead NFS server or a stuck FUSE daemon as the sensor would meet it,
while the test's workload on the same files is served. Each such request
appends a line to PID_FILE.hit, so the test can tell that the sensor
touched the filesystem at all.

usage: hangfs.py MOUNTPOINT PID_FILE PROGRAM  (PROGRAM is served as /prog)
"""
import errno
import stat
import sys
import threading
import time

try:  # Debian's python3-fusepy names the module fusepy, PyPI's fuse.
    from fusepy import FUSE, FuseOSError, Operations, fuse_get_context
except ImportError:
    from fuse import FUSE, FuseOSError, Operations, fuse_get_context


class HangFs(Operations):
    def __init__(self, pid_file, program):
        self.pid_file = pid_file
        with open(program, "rb") as f:
            self.files = {"/f": bytearray(b"data\n"), "/prog": bytearray(f.read())}
        self.now = time.time()

    def _hang_if_sensor(self):
        pid = fuse_get_context()[2]
        try:
            with open(self.pid_file) as f:
                target = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return
        if pid == target:
            with open(self.pid_file + ".hit", "a") as f:
                f.write(f"{pid}\n")
            threading.Event().wait()

    def _file(self, path):
        if path not in self.files:
            raise FuseOSError(errno.ENOENT)
        return self.files[path]

    def getattr(self, path, fh=None):
        self._hang_if_sensor()
        times = dict(st_atime=self.now, st_mtime=self.now, st_ctime=self.now)
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, **times)
        mode = 0o755 if path == "/prog" else 0o666
        return dict(st_mode=stat.S_IFREG | mode, st_nlink=1,
                    st_size=len(self._file(path)), **times)

    def readdir(self, path, fh):
        self._hang_if_sensor()
        return [".", ".."] + [p[1:] for p in self.files]

    def open(self, path, flags):
        self._hang_if_sensor()
        self._file(path)
        return 0

    def create(self, path, mode, fi=None):
        self._hang_if_sensor()
        self.files[path] = bytearray()
        return 0

    def read(self, path, size, offset, fh):
        self._hang_if_sensor()
        return bytes(self._file(path)[offset:offset + size])

    def write(self, path, data, offset, fh):
        self._hang_if_sensor()
        f = self._file(path)
        f[offset:offset + len(data)] = data
        return len(data)

    def truncate(self, path, length, fh=None):
        self._hang_if_sensor()
        f = self._file(path)
        del f[length:]


if __name__ == "__main__":
    mountpoint, pid_file, program = sys.argv[1:4]
    # No attribute or name cache: every lookup is a request.
    FUSE(HangFs(pid_file, program), mountpoint, foreground=True,
         attr_timeout=0, entry_timeout=0, allow_other=True)
