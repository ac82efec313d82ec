#!/usr/bin/python3
# NAME
#   mutator.py - rewrite a file while a stage copies it
#
# SYNOPSIS
#   /usr/bin/python3 mutator.py flip   FILE A B
#   /usr/bin/python3 mutator.py grow   FILE A
#   /usr/bin/python3 mutator.py shrink FILE A
#
# DESCRIPTION
#   FILE is opened O_RDWR: the writable descriptor a compromised stage keeps
#   for itself after handing over a read-only one. A and B are files whose
#   contents it writes.
#
#   flip    pwrite(A) at 0, pwrite(B) at 0, ... in a tight loop, until
#           killed (A and B have one length): the content keeps alternating
#           between an allowed and a forbidden one.
#   grow    on each line "go" from stdin: sleep 3 ms, append 64 KiB past
#           len(A) and leave it so; on "reset": truncate back to len(A).
#   shrink  on "go": sleep 3 ms, truncate to len(A)/2; on "reset": write
#           A's second half back.
#   In grow and shrink the bytes the file holds up to its current length
#   are always A's: only the length moves. The test sends "go" right after
#   the record, so the change lands while the stage copies (a copy of
#   16 MiB takes well over 3 ms), never before the stage checked the size.
#   Prints "ok" once ready, and "ok" after each command.
import os
import sys
import time

mode, target = sys.argv[1], sys.argv[2]
a = open(sys.argv[3], 'rb').read()
b = open(sys.argv[4], 'rb').read() if mode == 'flip' else b''
fd = os.open(target, os.O_RDWR)
n = len(a)
half = n // 2
def ok():
    sys.stdout.write('ok\n')
    sys.stdout.flush()


ok()
if mode == 'flip':
    assert len(b) == n
    while True:
        os.pwrite(fd, a, 0)
        os.pwrite(fd, b, 0)
elif mode in ('grow', 'shrink'):
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == 'go':
            time.sleep(0.003)
            if mode == 'grow':
                os.pwrite(fd, b'+' * 65536, n)
            else:
                os.ftruncate(fd, half)
        elif cmd == 'reset':
            if mode == 'grow':
                os.ftruncate(fd, n)
            else:
                os.pwrite(fd, a[half:], half)
        ok()
else:
    sys.exit('mutator.py: unknown mode ' + mode)
