#!/usr/bin/env python3
"""SMTP submission benchmark: Postfix's smtp-source sends N messages of ~SIZE
bytes (a) straight to a private upstream Postfix and (b) to mailbridged, which
stores each durably in its outbox before 250 and relays it to the same
Postfix; same run, same machine. Prints messages/s both ways, the ratio, and
the end-to-end latency (our 250 -> upstream 250) p50/p99 from the daemon log.

smtp-source cannot AUTH and both endpoints require it, so both legs go
through the same tiny splice proxy that logs in (EHLO + AUTH PLAIN) and then
passes bytes through.

Like for like: our state dir lives on the same medium as Postfix's queue
(servers.tmp_root(): /dev/shm when roomy, or $MB_TEST_TMPDIR, e.g. a dir on
disk to make both pay for real fsyncs); each leg starts with Postfix's queue
empty (so the other leg's LMTP deliveries are not billed to it) and after one
untimed warm-up message through the same path (Postfix's smtpd/cleanup
processes are spawned, and our login cache holds the proxy's login, as it
does for a mail program after its first connection). CPU seconds of each
side are read from /proc for every leg, which the load of a shared machine
changes far less than the rates.

Usage (root, from the repo; needs the build and scripts/deps.sh --test):
  python3 bench/smtp_submission.py --mailbridged build/mailbridged [-m 1000] [-l 10240] [-s 10]
"""
import argparse
import base64
import os
import resource
import shutil
import tempfile
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
from servers import SMTP_SOURCE, Dovecot, Postfix, session_members, tmp_root  # noqa: E402


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


def cpu_seconds(pids):
    """utime+stime of pids (all threads) plus their reaped children's, in s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                data = f.read().decode("ascii", "replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        rest = data[data.rindex(")") + 2:].split()
        total += sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    return total / tick


class CpuMeter:
    """CPU seconds used by the upstream (Postfix + Dovecot), by mailbridged,
    and by this process (the proxy) plus smtp-source, over one leg."""

    def __init__(self, dc, pf, daemon=None):
        self.dc, self.pf, self.daemon = dc, pf, daemon

    def read(self):
        up = cpu_seconds(session_members(self.dc.proc.pid) + session_members(self.pf.proc.pid))
        ours = cpu_seconds([self.daemon.proc.pid]) if self.daemon else 0.0
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        client = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        return [up, ours, client]

    def __enter__(self):
        self.start = self.read()
        return self

    def __exit__(self, *exc):
        self.used = [b - a for a, b in zip(self.start, self.read())]


def queue_empty(pf):
    for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(os.path.join(pf.queue_dir, sub)):
            if files:
                return False
    return True


def wait_queue_empty(pf, limit=600):
    t0 = time.monotonic()
    while not queue_empty(pf):
        if time.monotonic() - t0 > limit:
            raise RuntimeError("Postfix's queue did not drain")
        time.sleep(0.05)


def wait_outbox_empty(d, t0, limit=3600):
    while True:
        _, ob = d.api("GET", "/v1/outbox")
        if not ob["outbox"]:
            return
        if time.monotonic() - t0 > limit:
            raise RuntimeError("outbox did not drain")
        time.sleep(0.02)


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

    state_root = tempfile.mkdtemp(prefix="mb-bench-", dir=tmp_root())
    load = [os.getloadavg()[0]]
    with Dovecot(users={"alice": "alice-pw", "bob": "bob-pw"}) as dc, Postfix(dc) as pf:
        # (a) straight to the upstream (through the same login proxy: Postfix
        # relays only for SASL-authenticated clients); done when Postfix has
        # queued the last one.
        direct_proxy = AuthProxy(pf.smtp_port, "alice", "alice-pw")
        smtp_source(direct_proxy.port, 1, a.l, 1, "bob@example.test")  # warm-up
        wait_queue_empty(pf)
        # CPU is counted until Postfix has also delivered the leg's messages.
        with CpuMeter(dc, pf) as direct_cpu:
            direct = smtp_source(direct_proxy.port, a.m, a.l, a.s, "bob@example.test")
            wait_queue_empty(pf)

        cfg = {"accounts": [{"name": "alice", "address": "alice@example.test", "sent_copy": "none",
                             "smtp": {"host": "127.0.0.1", "port": pf.smtp_port, "security": "starttls",
                                      "username": "alice", "password": "alice-pw", "ca_file": pf.cert}}]}
        d = harness.Daemon(config=cfg, log_level="info", state_dir=os.path.join(state_root, "state"))
        try:
            d.start()
            status, body = d.api("GET", "/v1/accounts")
            acct = body["accounts"][0]
            _, creds = d.api("POST", "/v1/accounts/%d/password" % acct["id"])
            port = int(d.listeners["smtp"].rsplit(":", 1)[1])
            proxy = AuthProxy(port, creds["username"], creds["password"])
            smtp_source(proxy.port, 1, a.l, 1, "bob@example.test")  # warm-up
            wait_outbox_empty(d, time.monotonic())
            wait_queue_empty(pf)
            warm_log = len(d.log())
            # (b) through us; done when the outbox is empty (all accepted upstream).
            with CpuMeter(dc, pf, d) as ours_cpu:
                t0 = time.monotonic()
                submit = smtp_source(proxy.port, a.m, a.l, a.s, "bob@example.test")
                wait_outbox_empty(d, t0)
                relayed = time.monotonic() - t0
                wait_queue_empty(pf)
            log = d.log()[warm_log:]
            if os.environ.get("MB_BENCH_KEEP_LOG"):
                with open(os.environ["MB_BENCH_KEEP_LOG"], "w") as f:
                    f.write(log)
        finally:
            d.stop()
            d.cleanup()
            shutil.rmtree(state_root, ignore_errors=True)
    load.append(os.getloadavg()[0])

    lat = latencies(log)
    direct_rate, ours_rate, submit_rate = a.m / direct, a.m / relayed, a.m / submit
    print("messages: %d x %d bytes, %d smtp-source sessions" % (a.m, a.l, a.s))
    print("direct to Postfix:          %8.1f msg/s (%.2f s)" % (direct_rate, direct))
    print("via mailbridged (relayed):  %8.1f msg/s (%.2f s until the outbox was empty)" % (ours_rate, relayed))
    print("  of which submission only: %8.1f msg/s (%.2f s, durable in the outbox)" % (submit_rate, submit))
    print("ratio (relayed / direct):   %8.2f" % (ours_rate / direct_rate))
    print("CPU ms per message (upstream Postfix+Dovecot / mailbridged / proxy+smtp-source):")
    for name, used in (("direct", direct_cpu.used), ("via mailbridged", ours_cpu.used)):
        print("  %-16s %6.2f / %6.2f / %6.2f  total %6.2f" % ((name,) + tuple(1000.0 * u / a.m for u in used)
                                                             + (1000.0 * sum(used) / a.m,)))
    print("state dir and Postfix queue under %s; load average %.1f at start, %.1f at end"
          % (tmp_root(), load[0], load[1]))
    if lat:
        print("end-to-end latency (our 250 -> upstream 250): p50 %.1f ms  p99 %.1f ms  (n=%d)"
              % (pct(lat, 50), pct(lat, 99), len(lat)))


if __name__ == "__main__":
    main()
