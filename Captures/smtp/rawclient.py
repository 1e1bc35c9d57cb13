#!/usr/bin/env python3
"""Tiny raw-socket SMTP client used by record.sh for the scenarios swaks can't do.

Usage: rawclient.py <scenario> <port>

Everything is deterministic (fixed addresses, subjects, Message-IDs, Date headers)
so re-recordings are comparable. The client waits for each reply before sending
the next command, and after QUIT waits for the server to close first, so the
capture ends with a clean FIN teardown.
"""
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"
EHLO_NAME = "client.wirebeat.test"
DATE = "Thu, 01 Jan 2026 00:00:00 +0000"


class Client:
    def __init__(self, port, mss=None):
        if mss:
            # Clamp the MSS (announced in our SYN, so the server uses it too) so a
            # large message spans many Ethernet-sized segments even on loopback.
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
            self.sock.settimeout(15)
            self.sock.connect((HOST, port))
        else:
            self.sock = socket.create_connection((HOST, port), timeout=15)
        self.buf = b""
        self.reply()  # banner

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            print("S: " + line)
            if len(line) < 4 or line[3] == " ":
                break
        return int(lines[-1][:3]), lines

    def cmd(self, text, expect=None):
        print("C: " + text)
        self.sock.sendall(text.encode("latin-1") + b"\r\n")
        code, lines = self.reply()
        if expect is not None and code not in expect:
            raise SystemExit(f"unexpected reply {code} to {text!r}")
        return code, lines

    def data(self, message, chunk=None):
        """DATA phase with dot-stuffing; message is str with \n line ends."""
        self.cmd("DATA", expect=[354])
        self.send_body(message, chunk)
        print("C: .")
        self.sock.sendall(b".\r\n")
        return self.reply()

    def send_body(self, message, chunk=None):
        out = []
        if message.endswith("\n"):
            message = message[:-1]
        for line in message.split("\n"):
            if line.startswith("."):
                line = "." + line  # dot-stuffing (RFC 5321 4.5.2)
            out.append(line + "\r\n")
        payload = "".join(out).encode("latin-1")
        print(f"C: <{len(payload)} bytes of message data>")
        if chunk:
            # Write in fixed-size pieces with a short pause so every piece becomes
            # its own TCP segment (loopback would otherwise use 64 KB GSO packets).
            # Pieces are not line-aligned, so lines straddle segment boundaries.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(payload), chunk):
                self.sock.sendall(payload[i:i + chunk])
                time.sleep(0.003)
        else:
            self.sock.sendall(payload)

    def quit(self):
        self.cmd("QUIT", expect=[221])
        # Let the server close first, then close our side.
        try:
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        if isinstance(self.sock, ssl.SSLSocket):
            # Server sent close_notify; answer it, then wait for the TCP FIN.
            try:
                raw = self.sock.unwrap()
            except (OSError, ssl.SSLError):
                raw = self.sock
            try:
                while raw.recv(4096):
                    pass
            except OSError:
                pass
            raw.close()
            return
        self.sock.close()

    def starttls(self):
        self.cmd("STARTTLS", expect=[220])
        assert not self.buf, "data after STARTTLS reply"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # throwaway self-signed test cert
        self.sock = ctx.wrap_socket(self.sock, server_hostname="mx.wirebeat.test")
        print(f"-- TLS established: {self.sock.version()} {self.sock.cipher()[0]}")


def message(frm, to, subject, msgid, body):
    return (
        f"From: {frm}\n"
        f"To: {to}\n"
        f"Subject: {subject}\n"
        f"Date: {DATE}\n"
        f"Message-ID: <{msgid}>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        f"{body}"
    )


def bdat_chunking(c):
    _, lines = c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    if not any("CHUNKING" in l for l in lines):
        raise SystemExit("server does not advertise CHUNKING")
    c.cmd("MAIL FROM:<alice@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<bob@wirebeat.test>", expect=[250])
    msg = message("alice@wirebeat.test", "bob@wirebeat.test",
                  "Wirebeat BDAT chunking test", "bdat-chunking@wirebeat.test",
                  "First line of a message sent with BDAT.\n"
                  ".This line starts with a dot and is NOT stuffed in BDAT.\n"
                  "Last line.\n")
    raw = msg.replace("\n", "\r\n").encode("ascii")
    cut1, cut2 = 120, 220
    chunks = [raw[:cut1], raw[cut1:cut2], raw[cut2:]]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        hdr = f"BDAT {len(chunk)}" + (" LAST" if last else "")
        print("C: " + hdr + f"  (+{len(chunk)} bytes)")
        c.sock.sendall(hdr.encode("ascii") + b"\r\n")
        c.sock.sendall(chunk)
        code, _ = c.reply()
        if code != 250:
            raise SystemExit(f"BDAT chunk {i} got {code}")
    c.quit()


def lowercase_commands(c):
    c.cmd(f"ehlo {EHLO_NAME}", expect=[250])
    c.cmd("mail from:<alice@wirebeat.test>", expect=[250])
    c.cmd("rcpt to:<bob@wirebeat.test>", expect=[250])
    print("C: data")
    c.sock.sendall(b"data\r\n")
    code, _ = c.reply()
    if code != 354:
        raise SystemExit("data not accepted")
    c.send_body(message("alice@wirebeat.test", "bob@wirebeat.test",
                        "Wirebeat lowercase commands test",
                        "lowercase-commands@wirebeat.test",
                        "All commands in this session were sent in lower case.\n"))
    c.sock.sendall(b".\r\n")
    code, _ = c.reply()
    if code != 250:
        raise SystemExit("message not accepted")
    print("C: quit")
    c.sock.sendall(b"quit\r\n")
    c.reply()
    while c.sock.recv(4096):
        pass
    c.sock.close()


def two_mails_one_session(c):
    c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    c.cmd("MAIL FROM:<alice@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<bob@wirebeat.test>", expect=[250])
    code, _ = c.data(message("alice@wirebeat.test", "bob@wirebeat.test",
                             "Wirebeat two mails: first", "two-mails-1@wirebeat.test",
                             "First message of the session.\n"))
    assert code == 250
    c.cmd("MAIL FROM:<carol@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<dave@wirebeat.test>", expect=[250])
    code, _ = c.data(message("carol@wirebeat.test", "dave@wirebeat.test",
                             "Wirebeat two mails: second", "two-mails-2@wirebeat.test",
                             "Second message of the session.\n"))
    assert code == 250
    c.quit()


def rset_mid_transaction(c):
    c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    c.cmd("MAIL FROM:<alice@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<bob@wirebeat.test>", expect=[250])
    c.cmd("RSET", expect=[250])
    c.cmd("MAIL FROM:<carol@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<dave@wirebeat.test>", expect=[250])
    code, _ = c.data(message("carol@wirebeat.test", "dave@wirebeat.test",
                             "Wirebeat RSET test", "rset-mid-transaction@wirebeat.test",
                             "Sent after an RSET aborted the first transaction.\n"))
    assert code == 250
    c.quit()


def multiline_reply(c):
    c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    c.cmd("HELP", expect=[214])
    c.cmd("MAIL FROM:<alice@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<nosuchuser@wirebeat.test>", expect=[550])  # multi-line 550
    c.cmd("RCPT TO:<bob@wirebeat.test>", expect=[250])
    code, _ = c.data(message("alice@wirebeat.test", "bob@wirebeat.test",
                             "Wirebeat multi-line reply test", "multiline-reply@wirebeat.test",
                             "EHLO, HELP and one RCPT got multi-line replies.\n"))
    assert code == 250
    c.quit()


def vrfy_noop_help_unknown(c):
    c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    c.cmd("NOOP", expect=[250])
    c.cmd("VRFY alice@wirebeat.test")
    c.cmd("HELP", expect=[214])
    c.cmd("XFOO bar", expect=[500, 502])
    c.quit()


def large_message(c):
    c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    c.cmd("MAIL FROM:<alice@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<bob@wirebeat.test>", expect=[250])
    lines = []
    n = 0
    while sum(len(l) + 2 for l in lines) < 100 * 1024:
        n += 1
        if n % 50 == 0:
            lines.append(f".dot-line {n:05d}: this line starts with a dot and must be dot-stuffed")
        elif n % 97 == 0:
            lines.append(".")  # a lone dot in the body (would end DATA if not stuffed)
        else:
            lines.append(f"line {n:05d}: the quick brown fox jumps over the lazy dog 0123456789")
    body = "\n".join(lines) + "\n"
    code, _ = c.data(message("alice@wirebeat.test", "bob@wirebeat.test",
                             "Wirebeat large message test", "large-message@wirebeat.test",
                             body), chunk=1400)
    assert code == 250
    c.quit()


def starttls(c):
    _, lines = c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    if not any("STARTTLS" in l for l in lines):
        raise SystemExit("server does not advertise STARTTLS")
    c.starttls()
    c.cmd(f"EHLO {EHLO_NAME}", expect=[250])
    c.cmd("MAIL FROM:<alice@wirebeat.test>", expect=[250])
    c.cmd("RCPT TO:<bob@wirebeat.test>", expect=[250])
    code, _ = c.data(message("alice@wirebeat.test", "bob@wirebeat.test",
                             "Wirebeat STARTTLS test", "starttls@wirebeat.test",
                             "Sent inside TLS after STARTTLS.\n"))
    assert code == 250
    c.quit()


SCENARIOS = {
    "starttls": starttls,
    "bdat-chunking": bdat_chunking,
    "lowercase-commands": lowercase_commands,
    "two-mails-one-session": two_mails_one_session,
    "rset-mid-transaction": rset_mid_transaction,
    "multiline-reply": multiline_reply,
    "vrfy-noop-help-unknown": vrfy_noop_help_unknown,
    "large-message": large_message,
}

if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    SCENARIOS[name](Client(port, mss=1460 if name == "large-message" else None))
