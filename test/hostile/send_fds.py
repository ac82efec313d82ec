#!/usr/bin/python3
# NAME
#   send_fds.py - one record with several descriptors, as a compromised stage
#
# SYNOPSIS
#   /usr/bin/python3 send_fds.py SOCK HEX_RECORD WAIT_MS [FILE...]
#   /usr/bin/python3 send_fds.py SOCK - WAIT_MS          (connect, send nothing)
#
# DESCRIPTION
#   Connects to SOCK (AF_UNIX SOCK_SEQPACKET), sends the record HEX_RECORD
#   with a read-only descriptor of each FILE in one SCM_RIGHTS message
#   (socket.send_fds: the Sluice native addon deliberately cannot send more
#   than one), then waits up to WAIT_MS for one record back and prints it
#   as hex ("eof" when the stage closed, "none" when nothing came).
#   The test reads the stage's log to see what it made of the record.
#   With "-" as the record it sends nothing at all: a connection that
#   never speaks, held open for WAIT_MS. WAIT_MS "stdin" waits instead
#   until stdin is closed (the test decides when the connection goes,
#   whatever the machine's speed); it prints "none" then, unless the stage
#   spoke or closed first.
import os
import select
import socket
import sys

sock_path, hex_record, wait_ms = sys.argv[1:4]
files = sys.argv[4:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sock_path)
if hex_record != '-':
    fds = [os.open(f, os.O_RDONLY) for f in files]
    socket.send_fds(s, [bytes.fromhex(hex_record)], fds)
    for fd in fds:
        os.close(fd)
if wait_ms == 'stdin':
    ready, _, _ = select.select([s, sys.stdin], [], [])
    ready = [r for r in ready if r is s]
else:
    ready, _, _ = select.select([s], [], [], int(wait_ms) / 1000)
if not ready:
    print('none')
else:
    data = s.recv(1 << 20)
    print(data.hex() if data else 'eof')
s.close()
