#!/usr/bin/env python3
"""Raw HTTP clients for the scenarios curl cannot produce.

    rawclient.py pipeline PORT          three requests in one write, then read until close
    rawclient.py chunked-post PORT PATH  a chunked request body with a trailer field
"""
import socket, sys, time

HOST = "127.0.0.1"


def read_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def pipeline(port):
    reqs = b"".join(
        b"GET %s HTTP/1.1\r\nHost: localhost:%d\r\nUser-Agent: wirebeat-rawclient/1.0\r\n%s\r\n"
        % (path, port, b"Connection: close\r\n" if last else b"")
        for path, last in [(b"/index.html", False), (b"/small.txt?x=1&y=two", False), (b"/nope.html", True)])
    with socket.create_connection((HOST, port)) as s:
        s.sendall(reqs)  # all three requests leave in one segment
        print(len(read_all(s)), "bytes received", file=sys.stderr)


def chunked_post(port, path):
    body = [b"first chunk of the body\n", b"x" * 300 + b"\n", b"last\n"]
    head = (b"POST %s HTTP/1.1\r\nHost: localhost:%d\r\nUser-Agent: wirebeat-rawclient/1.0\r\n"
            b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n"
            b"Connection: close\r\n\r\n" % (path.encode(), port))
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in body)
    tail = b"0\r\nX-Checksum: 4711\r\n\r\n"
    with socket.create_connection((HOST, port)) as s:
        s.sendall(head)
        time.sleep(0.05)
        s.sendall(chunks)
        time.sleep(0.05)
        s.sendall(tail)
        print(len(read_all(s)), "bytes received", file=sys.stderr)


if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "pipeline":
        pipeline(port)
    elif cmd == "chunked-post":
        chunked_post(port, sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)
