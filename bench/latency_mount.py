"""A read-only FUSE passthrough that adds a delay to every open and read: a stand-in for Google Drive.

    python bench/latency_mount.py ROOT MOUNTPOINT [--delay 0.03]

Runs in the foreground until unmounted (`fusermount -u MOUNTPOINT`). Needs `fusepy` (pip install
fusepy) and /dev/fuse. Each FUSE request is served in its own thread, so delays overlap as a
network file system's do when many reads are in flight.
"""

from __future__ import annotations

import argparse
import errno
import os
import time

from fuse import FUSE, FuseOSError, Operations


class LatencyPassthrough(Operations):
    def __init__(self, root: str, delay: float) -> None:
        self.root = os.path.realpath(root)
        self.delay = delay

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def getattr(self, path, fh=None):
        try:
            status = os.lstat(self._full(path))
        except OSError as error:
            raise FuseOSError(error.errno) from None
        names = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {name: getattr(status, name) for name in names}

    def readdir(self, path, fh):
        return [".", "..", *os.listdir(self._full(path))]

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        time.sleep(self.delay)
        return os.open(self._full(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        time.sleep(self.delay)
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("mountpoint")
    parser.add_argument("--delay", type=float, default=0.03, help="seconds added to each open and read (0.03)")
    args = parser.parse_args()
    FUSE(LatencyPassthrough(args.root, args.delay), args.mountpoint, foreground=True, nothreads=False, ro=True)


if __name__ == "__main__":
    main()
