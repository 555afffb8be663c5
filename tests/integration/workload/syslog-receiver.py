#!/usr/bin/env python3
"""A minimal syslog collector for the VM test: accepts TCP connections on
127.0.0.1:PORT and appends each octet-counted record (RFC 6587) to FILE,
one per line. Stands in for rsyslog, which the cached guest image lacks;
the host tests run the real rsyslogd."""
import socket
import sys
import threading

port, path = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()


def serve(conn):
    buf = b""
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while True:
                sp = buf.find(b" ")
                if sp < 0:
                    break
                n = int(buf[:sp])
                if len(buf) < sp + 1 + n:
                    break
                rec, buf = buf[sp + 1 : sp + 1 + n], buf[sp + 1 + n :]
                with lock, open(path, "ab") as f:
                    f.write(rec + b"\n")


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
