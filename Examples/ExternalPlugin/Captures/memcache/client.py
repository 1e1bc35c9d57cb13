#!/usr/bin/env python3
"""Scripted memcached text-protocol client used by record.sh: one scenario per capture.

Each step is sent with TCP_NODELAY and a short pause, so requests, data blocks and replies
land in separate segments where the scenario says so (the captures then exercise data blocks
that span segments). Replies are read until their terminator before the next step, except in
the pipelined scenario.
"""
import socket
import sys
import time

HOST, PORT = "127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 11211
PAUSE = 0.02


class Client:
    def __init__(self):
        self.s = socket.create_connection((HOST, PORT), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, *chunks):
        """Sends each chunk in its own write (its own segment, thanks to the pauses)."""
        for c in chunks:
            self.s.sendall(c.encode() if isinstance(c, str) else c)
            time.sleep(PAUSE)

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise EOFError("server closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def _exact(self, n):
        while len(self.buf) < n:
            self.buf += self.s.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def reply(self):
        """Reads one reply: a single line, or VALUE/STAT lines up to END."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if line.startswith("VALUE "):
                size = int(line.split()[3])
                lines.append(self._exact(size + 2)[:-2].decode())
                continue
            if line.startswith("STAT ") or line.startswith("ITEM "):
                continue
            return lines

    def ask(self, *chunks):
        self.send(*chunks)
        r = self.reply()
        time.sleep(PAUSE)
        return r

    def close(self):
        self.s.close()


def set_get_delete():
    c = Client()
    c.ask("set greeting 0 0 11\r\n", "hello world\r\n")          # command line, then data block
    c.ask("get greeting\r\n")
    c.ask("set page 5 3600 35\r\n", "<html><body>", "memcached</body></html>", "\r\n")  # data in 3 segments
    c.ask("gets page\r\n")
    c.ask("add greeting 0 0 3\r\nhey\r\n")                      # exists: NOT_STORED
    c.ask("replace nothing 0 0 2\r\nno\r\n")                     # missing: NOT_STORED
    c.ask("append greeting 0 0 1\r\n!\r\n")
    c.ask("prepend greeting 0 0 2\r\n>>\r\n")
    c.ask("get greeting\r\n")
    cas = int(c.ask("gets greeting\r\n")[0].split()[4])
    c.ask("cas greeting 0 0 3 %d\r\nbye\r\n" % (cas + 1000))      # stale cas: EXISTS
    c.ask("cas greeting 0 0 3 %d\r\n" % cas, "bye\r\n")           # right cas: STORED
    c.ask("touch greeting 60\r\n")
    c.ask("delete greeting\r\n")
    c.ask("delete greeting\r\n")                                  # NOT_FOUND
    c.ask("get greeting\r\n")                                     # miss: END
    c.ask("set big 0 0 3000\r\n" + "x" * 3000 + "\r\n")
    c.ask("get big\r\n")
    c.send("quit\r\n")                                            # server closes
    time.sleep(0.1)
    c.close()


def multi_get():
    c = Client()
    c.ask("set alpha 1 0 5\r\nfirst\r\n")
    c.ask("set beta 2 0 6\r\nsecond\r\n")
    c.ask("set gamma 3 0 0\r\n\r\n")                              # empty value
    c.ask("get alpha missing beta gamma nope\r\n")
    c.ask("gets alpha beta\r\n")
    c.ask("get nope nada zilch\r\n")                              # all misses
    c.ask("get alpha alpha\r\n")                                  # same key twice
    c.close()                                                     # client closes first


def pipelined():
    a = Client()
    b = Client()
    # Client a pipelines everything in one write; noreply requests get no answer.
    a.send("set p1 0 0 3 noreply\r\none\r\n"
           "set p2 0 0 3\r\ntwo\r\n"
           "get p1 p2\r\n"
           "incr counter 1\r\n"
           "add p1 0 0 1 noreply\r\nx\r\n"
           "delete p1 noreply\r\n"
           "get p1\r\n"
           "flush_all noreply\r\n"
           "version\r\n")
    for _ in range(5):
        a.reply()
    # Client b interleaves on its own connection, pipelining two writes.
    b.send("set q 0 0 4 noreply\r\nfour\r\nget q\r\n", "touch q 10 noreply\r\ndelete q\r\n")
    b.reply(); b.reply()
    # Client a again: a request cut across two segments, then a reply split by nothing.
    a.send("get p", "2\r\n")
    a.reply()
    a.send("quit\r\n")
    time.sleep(0.1)
    b.close()
    a.close()


def counters_stats():
    c = Client()
    c.ask("set hits 0 0 2\r\n10\r\n")
    c.ask("incr hits 5\r\n")
    c.ask("decr hits 20\r\n")                                     # floors at 0
    c.ask("incr nothing 1\r\n")                                   # NOT_FOUND
    c.ask("set word 0 0 3\r\nabc\r\n")
    c.ask("incr word 1\r\n")                                      # CLIENT_ERROR
    c.ask("version\r\n")
    c.ask("verbosity 1\r\n")
    c.ask("stats\r\n")
    c.ask("stats slabs\r\n")
    c.ask("bogus command\r\n")                                    # ERROR
    c.ask("flush_all\r\n")
    c.send("quit\r\n")
    time.sleep(0.1)
    c.close()


if __name__ == "__main__":
    {"set-get-delete": set_get_delete, "multi-get": multi_get, "pipelined": pipelined,
     "counters-stats": counters_stats}[sys.argv[1]]()
