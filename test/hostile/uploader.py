#!/usr/bin/python3
# NAME
#   uploader.py - a hostile uploader racing ingress in the inbox
#
# SYNOPSIS
#   /usr/bin/python3 uploader.py swap-link DIR NAME SECRET N
#   /usr/bin/python3 uploader.py replace   DIR NAME N
#   /usr/bin/python3 uploader.py rewrite   DIR NAME N
#
# DESCRIPTION
#   Each mode writes N versions under DIR/NAME, as fast as the filesystem
#   allows (1-2 ms apart), then exits; version k's bytes are
#   version(k) = ("version %06d\n" % k) * 512, so any output can be traced
#   to exactly one version, and a torn copy (two versions mixed) shows.
#   swap-link  rename() a regular file (version k) and then a symlink to
#              SECRET over NAME, alternately; the last one is a regular file.
#   replace    rename() a new regular file (version k) over NAME each time:
#              "a file replaced after pickup", and during it.
#   rewrite    open NAME for writing in place (no truncation, no rename) and
#              pwrite version k over it, close, again: the same inode
#              rewritten while ingress may be copying it (after ingress
#              took and removed it, the next version is a new upload).
#   Temporary names start with a dot, which ingress ignores. Prints "done".
import os
import sys
import time

mode, d, name = sys.argv[1], sys.argv[2], sys.argv[3]
target = os.path.join(d, name)


def version(k):
    return (b'version %06d\n' % k) * 512


def put(k):
    tmp = os.path.join(d, '.uploader-%d-%d' % (os.getpid(), k))
    with open(tmp, 'wb') as f:
        f.write(version(k))
    os.rename(tmp, target)


if mode == 'swap-link':
    secret, n = sys.argv[4], int(sys.argv[5])
    for k in range(n):
        put(k)
        time.sleep(0.001)
        lnk = os.path.join(d, '.uploader-link-%d' % os.getpid())
        os.symlink(secret, lnk)
        os.rename(lnk, target)
        time.sleep(0.001)
    put(n)
elif mode == 'replace':
    n = int(sys.argv[4])
    for k in range(n):
        put(k)
        time.sleep(0.002)
elif mode == 'rewrite':
    n = int(sys.argv[4])
    put(0)
    for k in range(1, n):
        try:
            fd = os.open(target, os.O_WRONLY)
        except FileNotFoundError:
            put(k)  # ingress took the last version and removed it: upload anew
        else:
            os.pwrite(fd, version(k), 0)
            os.close(fd)
        time.sleep(0.002)
else:
    sys.exit('uploader.py: unknown mode ' + mode)
print('done', flush=True)
