#!/usr/bin/env python3
"""SMTP submission benchmark: Postfix's smtp-source sends N messages of ~SIZE
bytes (a) straight to a private upstream Postfix and (b) to mailbridged, which
stores each durably in its outbox before 250 and relays it to the same
Postfix; same run, same machine. Prints messages/s both ways, the ratio, and
the end-to-end latency (our 250 -> upstream 250) p50/p99 from the daemon log.

smtp-source cannot AUTH and both endpoints require it, so both legs go
through the same tiny splice proxy that logs in (EHLO + AUTH PLAIN) and then
passes bytes through.

Usage (root, from the repo; needs the build and scripts/deps.sh --test):
  python3 bench/smtp_submission.py --mailbridged build/mailbridged [-m 1000] [-l 10240] [-s 10]
"""
import argparse
import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from servers import SMTP_SOURCE, Dovecot, Postfix  # noqa: E402


class AuthProxy:
    """Accepts smtp-source connections, logs in to mailbridged, then splices."""

    def __init__(self, port, user, password):
        self.target, self.user, self.password = port, user, password
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _reply(f):
        while True:
            line = f.readline()
            if len(line) < 4 or line[3:4] != b"-":
                return line

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, client):
        up = socket.create_connection(("127.0.0.1", self.target))
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = up.makefile("rb", buffering=0)
        self._reply(f)
        up.sendall(b"EHLO proxy\r\n")
        self._reply(f)
        token = base64.b64encode(b"\0" + self.user.encode() + b"\0" + self.password.encode())
        up.sendall(b"AUTH PLAIN " + token + b"\r\n")
        if not self._reply(f).startswith(b"235"):
            client.close()
            return
        client.sendall(b"220 proxy ready\r\n")

        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pipe, args=(up, client), daemon=True).start()
        pipe(client, up)


def smtp_source(port, n, size, sessions, rcpt):
    t0 = time.monotonic()
    p = subprocess.run([SMTP_SOURCE, "-m", str(n), "-l", str(size), "-s", str(sessions),
                        "-f", "alice@example.test", "-t", rcpt, "-M", "bench.test", "127.0.0.1:%d" % port],
                       capture_output=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError("smtp-source: " + (p.stdout + p.stderr).decode("utf-8", "replace"))
    return time.monotonic() - t0


def latencies(text):
    """Our 250 -> upstream 250 per message, in ms. Log order pairs them: an
    outbox id is reused once the outbox was empty (SQLite rowids)."""
    queued, out = {}, []
    for m in re.finditer(r"^(\S+) info (smtp\.queued|relay\.delivered) .*?outbox_id=(\d+)", text, re.M):
        ts = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        i = int(m.group(3))
        if m.group(2) == "smtp.queued":
            queued[i] = ts
        elif i in queued:
            out.append((ts - queued.pop(i)) * 1000)
    return out


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mailbridged", default=os.environ.get("MAILBRIDGED", "build/mailbridged"))
    ap.add_argument("-m", type=int, default=1000, help="messages per leg")
    ap.add_argument("-l", type=int, default=10240, help="message size in bytes")
    ap.add_argument("-s", type=int, default=10, help="parallel smtp-source sessions")
    a = ap.parse_args()
    harness.MAILBRIDGED = os.path.abspath(a.mailbridged)

    with Dovecot(users={"alice": "alice-pw", "bob": "bob-pw"}) as dc, Postfix(dc) as pf:
        # (a) straight to the upstream (through the same login proxy: Postfix
        # relays only for SASL-authenticated clients); done when Postfix has
        # queued the last one.
        direct = smtp_source(AuthProxy(pf.smtp_port, "alice", "alice-pw").port, a.m, a.l, a.s, "bob@example.test")

        cfg = {"accounts": [{"name": "alice", "address": "alice@example.test", "sent_copy": "none",
                             "smtp": {"host": "127.0.0.1", "port": pf.smtp_port, "security": "starttls",
                                      "username": "alice", "password": "alice-pw", "ca_file": pf.cert}}]}
        d = harness.Daemon(config=cfg, log_level="info")
        try:
            d.start()
            status, body = d.api("GET", "/v1/accounts")
            acct = body["accounts"][0]
            _, creds = d.api("POST", "/v1/accounts/%d/password" % acct["id"])
            port = int(d.listeners["smtp"].rsplit(":", 1)[1])
            proxy = AuthProxy(port, creds["username"], creds["password"])
            # (b) through us; done when the outbox is empty (all accepted upstream).
            t0 = time.monotonic()
            submit = smtp_source(proxy.port, a.m, a.l, a.s, "bob@example.test")
            while True:
                _, ob = d.api("GET", "/v1/outbox")
                if not ob["outbox"]:
                    break
                if time.monotonic() - t0 > 3600:
                    raise RuntimeError("outbox did not drain")
                time.sleep(0.02)
            relayed = time.monotonic() - t0
            log = d.log()
            if os.environ.get("MB_BENCH_KEEP_LOG"):
                with open(os.environ["MB_BENCH_KEEP_LOG"], "w") as f:
                    f.write(log)
        finally:
            d.stop()
            d.cleanup()

    lat = latencies(log)
    direct_rate, ours_rate, submit_rate = a.m / direct, a.m / relayed, a.m / submit
    print("messages: %d x %d bytes, %d smtp-source sessions" % (a.m, a.l, a.s))
    print("direct to Postfix:          %8.1f msg/s (%.2f s)" % (direct_rate, direct))
    print("via mailbridged (relayed):  %8.1f msg/s (%.2f s until the outbox was empty)" % (ours_rate, relayed))
    print("  of which submission only: %8.1f msg/s (%.2f s, durable in the outbox)" % (submit_rate, submit))
    print("ratio (relayed / direct):   %8.2f" % (ours_rate / direct_rate))
    if lat:
        print("end-to-end latency (our 250 -> upstream 250): p50 %.1f ms  p99 %.1f ms  (n=%d)"
              % (pct(lat, 50), pct(lat, 99), len(lat)))


if __name__ == "__main__":
    main()
