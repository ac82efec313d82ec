#!/usr/bin/python3
# hostile_peer - a peer that sends what the addon must refuse.
#   /usr/bin/python3 hostile_peer.py SOCK MODE FILE
# Python because it can put several descriptors in one record (socket.send_fds),
# which the addon's own send() deliberately cannot.
#   two-fds     one record, 2 descriptors                 -> ESLUICE_MULTIFD
#   nine-fds    one record, 9 descriptors                 -> ESLUICE_MULTIFD
#   many-fds    one record, 40 descriptors (> control buf) -> ESLUICE_CTRUNC
#   big         100 bytes + 1 descriptor (reader allows 10) -> ESLUICE_TRUNC
#   creds       hands over a socket with SO_PASSCRED set, then sends on its
#               other end one record with an fd and one without; the kernel
#               adds SCM_CREDENTIALS to both                 -> ESLUICE_CMSG
#   pidfd       the same with SO_PASSPIDFD: the kernel installs a pidfd
#               (SCM_PIDFD) in the receiver                  -> ESLUICE_CMSG
# Each mode ends with one good record ('good' + 1 fd). Every record is queued
# before this process exits; the test reads them afterwards.
import os
import socket
import sys

SO_PASSPIDFD = 76  # Linux 6.5; Python 3.11 has no name for it

sock_path, mode, file_path = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sock_path)
fds = lambda n: [os.open(file_path, os.O_RDONLY) for _ in range(n)]

if mode == 'two-fds':
    socket.send_fds(s, [b'two'], fds(2))
elif mode == 'nine-fds':
    socket.send_fds(s, [b'nine'], fds(9))
elif mode == 'many-fds':
    socket.send_fds(s, [b'many'], fds(40))
elif mode == 'big':
    socket.send_fds(s, [b'B' * 100], fds(1))
elif mode in ('creds', 'pidfd'):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if mode == 'creds':
        a.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    else:
        a.setsockopt(socket.SOL_SOCKET, SO_PASSPIDFD, 1)
    socket.send_fds(s, [b'here'], [a.fileno()])
    socket.send_fds(b, [b'with-fd'], fds(1))
    b.send(b'no-fd')
else:
    sys.exit('hostile_peer.py: unknown mode ' + mode)
# After the bad record, a good one: the receiver must keep serving.
socket.send_fds(s, [b'good'], fds(1))
print('sent', flush=True)
