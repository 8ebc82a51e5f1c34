#!/usr/bin/env python3
"""IMAP benchmark: mailbridged's local IMAP server against a private Dovecot
2.3 (Debian) on loopback, in the same run, with the same generated mailbox.

Both servers get the same N seeded messages in INBOX (Dovecot by writing
maildir files and force-resync, mailbridged by pipelined IMAP APPEND), then one
raw-socket client times the same commands against each, alternating between
the servers on every repetition, and prints a table with the ratio
(Dovecot's time / ours: above 1 means mailbridge is faster) and peak RSS.

    sudo python3 bench/imap_bench.py              # 100,000 messages
    sudo python3 bench/imap_bench.py --quick      # 5,000 messages, smoke run
    sudo python3 bench/imap_bench.py --dovecot-only
    sudo python3 bench/imap_bench.py --mailbridged build-imap/mailbridged

Needs root (Dovecot's mail processes run as an unprivileged uid) and
dovecot-imapd (scripts/deps.sh --test). mailbridged is --mailbridged, else
$MAILBRIDGED, else the repo's build/mailbridged.
Python 3 standard library only.
"""
import argparse
import base64
import email.utils
import os
import platform
import random
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import servers  # noqa: E402

NEEDLE = "needle-4f2c"   # X-Bench-Tag value carried by ~1% of the messages
USER = "bench"
ROW_LOAD = "load INBOX, %(k)d msgs"
ROW_APPEND = "APPEND first %(k)d msgs, 1 conn"


# ------------------------------------------------------------------ corpus

_WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which "
          "but have an they you were her she there one all we their can has more when will would "
          "meeting report budget quarter invoice schedule project review draft contract delivery "
          "update attached please find regards thanks team customer release server network backup "
          "migration deadline tomorrow friday agenda minutes summary proposal estimate approval "
          "shipping order payment account balance ticket issue fixed version planning office travel "
          "hotel flight conference slides feedback question answer reminder calendar weekly monthly").split()
_FIRST = ["Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
          "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yolanda",
          "Jürgen", "Zoë", "François", "Åsa", "Ελένη", "Søren", "José", "Łukasz", "太郎", "Дмитрий"]
_LAST = ["Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Thomas", "Roberts", "Walker", "Wright",
         "Müller", "Öberg", "Dubois", "García", "Nowak", "山田", "Иванов", "Παπαδόπουλος", "Kowalski", "Rossi"]
_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com", "corp.example", "lists.example.org"]
_UNI_WORDS = ["Rückmeldung", "réunion", "Angebot für Größe", "見積もりの件", "счёт", "Προσφορά", "zażółć",
              "café crème", "Besprechung", "Überweisung", "naïve résumé"]
_ATTACH = [("application/pdf", "pdf"), ("image/jpeg", "jpg"), ("application/zip", "zip"),
           ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
           ("image/png", "png")]


def _encoded_words(text):
    """RFC 2047 B encoding in folded chunks of whole characters."""
    if all(ord(c) < 128 for c in text):
        return text
    words, cur = [], ""
    for ch in text:
        if len((cur + ch).encode()) > 45:
            words.append(cur)
            cur = ""
        cur += ch
    words.append(cur)
    return "\r\n ".join("=?UTF-8?B?%s?=" % base64.b64encode(w.encode()).decode() for w in words)


class Corpus:
    """N deterministic messages: message(i) depends only on (seed, i).

    Sizes: 60% 2-10 KB (text/plain or multipart/alternative), 30% 10-100 KB
    (multipart/mixed with one base64 attachment), 10% 100 KB-1 MB (multipart/
    mixed with 1-3 attachments); log-uniform within each band. CRLF line ends.
    Text and base64 come from seeded pools sliced at random line offsets, so a
    100k corpus (~5 GB) generates at memcpy speed."""

    def __init__(self, count, seed=1):
        self.count, self.seed = count, seed
        rng = random.Random(seed)
        lines, line, n = [], [], 0
        for w in rng.choices(_WORDS, k=600_000):
            if n + len(w) > 72:
                lines.append(" ".join(line))
                if rng.random() < 0.12:
                    lines.append("")
                line, n = [], 0
            line.append(w)
            n += len(w) + 1
        self.text = ("\r\n".join(lines) + "\r\n").encode()
        raw = rng.randbytes(12 << 20)
        self.b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")   # 76 chars + CRLF per line
        self.base_date = 1672531200  # 2023-01-01

    def _text(self, rng, size):
        start = self.text.find(b"\r\n", rng.randrange(len(self.text) - size - 200)) + 2
        end = self.text.find(b"\r\n", start + max(size, 1))
        return self.text[start:end + 2]

    def _b64(self, rng, size):
        nlines = max(1, size // 78)
        start = rng.randrange(len(self.b64) // 78 - nlines) * 78
        return self.b64[start:start + nlines * 78]

    @staticmethod
    def _person(rng):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        addr = "%s.%s%d@%s" % (first.encode("ascii", "ignore").decode().lower() or "user",
                               last.encode("ascii", "ignore").decode().lower() or "x",
                               rng.randrange(100), rng.choice(_DOMAINS))
        name = "%s %s" % (first, last)
        if all(ord(c) < 128 for c in name):
            return '"%s" <%s>' % (name, addr)
        return "%s <%s>" % (_encoded_words(name), addr)

    def kind(self, i):
        """(is a needle, size class) from the first draws of message i's rng."""
        rng = random.Random(self.seed * 1_000_003 + i)
        return rng.random() < 0.01, rng.random()

    def message(self, i):
        """(raw bytes, flags, internal date as epoch seconds)."""
        rng = random.Random(self.seed * 1_000_003 + i)
        needle, cls = rng.random() < 0.01, rng.random()
        if cls < 0.60:
            target = int(2048 * 5 ** rng.random())
        elif cls < 0.90:
            target = int(10240 * 10 ** rng.random())
        else:
            target = int(102400 * 10 ** rng.random())
        t = self.base_date + i * 600 + rng.randrange(600)
        date = email.utils.formatdate(t, localtime=False).replace("-0000", "+0000")
        subj = " ".join(rng.choices(_WORDS, k=rng.randrange(3, 9))).capitalize()
        if rng.random() < 0.2:
            subj = _encoded_words(subj + " " + rng.choice(_UNI_WORDS))
        h = ["Return-Path: <bounce-%d@%s>" % (i, rng.choice(_DOMAINS))]
        for hop in range(rng.randrange(1, 4)):
            h.append("Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\r\n\tby mail.bench.example with ESMTPS "
                     "id %08X%d; %s" % (hop, rng.choice(_DOMAINS), hop, rng.choice(_DOMAINS),
                                        rng.randrange(1, 255), rng.getrandbits(32), i, date))
        h.append("Message-ID: <%08d.%08x@bench.example>" % (i, rng.getrandbits(32)))
        h.append("Date: " + date)
        h.append("From: " + self._person(rng))
        h.append("To: " + ", ".join(self._person(rng) for _ in range(rng.randrange(1, 4))))
        if rng.random() < 0.3:
            h.append("Cc: " + ",\r\n ".join(self._person(rng) for _ in range(rng.randrange(1, 5))))
        h.append("Subject: " + subj)
        if i and rng.random() < 0.3:
            ref = "<%08d.%08x@bench.example>" % (rng.randrange(i), rng.getrandbits(32))
            h.append("In-Reply-To: " + ref)
            h.append("References: " + ref)
        if needle:
            h.append("X-Bench-Tag: " + NEEDLE)
        elif rng.random() < 0.8:
            h.append("X-Bench-Tag: hay-%05d" % rng.randrange(100000))
        h.append("MIME-Version: 1.0")
        boundary = "=_bench_%d_%08x" % (i, rng.getrandbits(32))
        head_len = sum(len(x) + 2 for x in h) + 2

        def alternative(size):
            b2 = boundary + "_alt"
            plain = self._text(rng, size * 2 // 5)
            html = b"<html><body><p>" + self._text(rng, size * 3 // 5).replace(b"\r\n\r\n", b"</p>\r\n<p>") \
                + b"</p></body></html>\r\n"
            return ("multipart/alternative; boundary=\"%s\"" % b2,
                    b"".join([b"--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                              b"Content-Transfer-Encoding: 7bit\r\n\r\n" % b2.encode(), plain,
                              b"--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
                              b"Content-Transfer-Encoding: 7bit\r\n\r\n" % b2.encode(), html,
                              b"--%s--\r\n" % b2.encode()]))

        def text_part(size):
            if rng.random() < 0.5:
                return "text/plain; charset=utf-8", self._text(rng, size)
            return alternative(size)

        if cls < 0.60:
            ctype, body = text_part(max(200, target - head_len))
            h.append("Content-Type: " + ctype)
            if ctype.startswith("text/"):
                h.append("Content-Transfer-Encoding: 7bit")
        else:
            nattach = 1 if cls < 0.90 else rng.randrange(1, 4)
            text_size = rng.randrange(500, 4000)
            ctype, body = text_part(text_size)
            parts = [b"This is a multi-part message in MIME format.\r\n",
                     b"--%s\r\nContent-Type: %s\r\n" % (boundary.encode(), ctype.encode()),
                     b"Content-Transfer-Encoding: 7bit\r\n" if ctype.startswith("text/") else b"",
                     b"\r\n", body]
            each = max(1000, (target - head_len - text_size) // nattach)
            for k in range(nattach):
                mime, ext = rng.choice(_ATTACH)
                fname = "%s-%d.%s" % (rng.choice(_WORDS), k, ext)
                if rng.random() < 0.15:
                    disp = "attachment; filename*=UTF-8''%s" % "".join(
                        "%%%02X" % b for b in ("Größe-%d.%s" % (k, ext)).encode())
                else:
                    disp = 'attachment; filename="%s"' % fname
                parts.append(b"--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: %s\r\n"
                             b"Content-Transfer-Encoding: base64\r\n\r\n"
                             % (boundary.encode(), mime.encode(), fname.encode(), disp.encode()))
                parts.append(self._b64(rng, each))
            parts.append(b"--%s--\r\n" % boundary.encode())
            body = b"".join(parts)
            h.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        raw = ("\r\n".join(h) + "\r\n\r\n").encode() + body
        r = rng.random()
        flags = ("\\Seen",) if r < 0.70 else ()
        if rng.random() < 0.03:
            flags += ("\\Flagged",)
        if rng.random() < 0.05:
            flags += ("\\Answered",)
        return raw, flags, t

    def __iter__(self):
        return (self.message(i) for i in range(self.count))

    def needles(self):
        return sum(1 for i in range(self.count) if self.kind(i)[0])


# ------------------------------------------------------------------ client

class ImapError(Exception):
    pass


class RawImap:
    """Minimal IMAP client for timing: sends a command and reads until its
    tagged completion with C-speed scans (bytes.find), skipping literals
    without copying them. Counts bytes and literals; keeps the response text
    only when asked (keep=True), literals never."""

    def __init__(self, port, timeout=300):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.scratch = bytearray(4 << 20)
        self.view = memoryview(self.scratch)
        self.data = bytearray(b"\r\n")  # unconsumed input; always starts after a CRLF
        self.seq = 0
        while self.data.find(b"\r\n", 2) < 0:
            self._recv()
        e = self.data.find(b"\r\n", 2)
        self.greeting = bytes(self.data[2:e])
        del self.data[:e]

    def _recv(self):
        n = self.sock.recv_into(self.scratch)
        if not n:
            raise ImapError("connection closed by server")
        self.data += self.view[:n]
        return n

    def _discard(self, n):
        while n > 0:
            got = self.sock.recv_into(self.scratch, min(n, len(self.scratch)))
            if not got:
                raise ImapError("connection closed inside a literal")
            n -= got

    def send(self, line):
        self.seq += 1
        tag = b"b%d" % self.seq
        self.sock.sendall(tag + b" " + line + b"\r\n")
        return tag

    def wait(self, tag, keep=False):
        """Reads through tag's completion: (status, text, bytes, literals,
        literal bytes, kept response or None)."""
        needle = b"\r\n" + tag + b" "
        data = self.data
        dropped = 0         # bytes of this response already removed from data
        pos = tpos = lpos = 0
        nlit = litbytes = 0
        kept = [] if keep else None
        while True:
            # Never scan past the next literal: its bytes are skipped, not searched.
            l_ = data.find(b"}\r\n", lpos)
            t = data.find(needle, tpos) if l_ < 0 else data.find(needle, tpos, l_ + 3)
            if l_ >= 0 and (t < 0 or l_ < t):
                j = data.rfind(b"{", max(pos, l_ - 11), l_)
                if j < 0 or not data[j + 1:l_].isdigit():
                    lpos = l_ + 1
                    continue
                n = int(data[j + 1:l_])
                start = l_ + 3
                nlit += 1
                litbytes += n
                if keep:
                    kept.append(bytes(data[pos:start]))
                if len(data) - start >= n:
                    pos = start + n
                else:
                    rest = n - (len(data) - start)
                    dropped += len(data) + rest
                    del data[:]
                    self._discard(rest)
                    pos = 0
                if pos > (8 << 20):
                    dropped += pos
                    del data[:pos]
                    pos = 0
                tpos = lpos = pos
                continue
            if t >= 0:
                e = data.find(b"\r\n", t + 2)
                if e < 0:
                    tpos = t
                    self._recv()
                    continue
                line = bytes(data[t + 2:e])
                if keep:
                    kept.append(bytes(data[pos:e + 2]))
                del data[:e]          # the leftover starts with this CRLF: the next sentinel
                parts = line.split(b" ", 2)
                status = parts[1].upper() if len(parts) > 1 else b""
                text = parts[2] if len(parts) > 2 else b""
                return status, text, dropped + e, nlit, litbytes, (b"".join(kept) if keep else None)
            tpos = max(pos, len(data) - len(needle) + 1)
            lpos = max(pos, len(data) - 2)
            self._recv()

    def run(self, line, keep=False, ok=True):
        status, text, nbytes, nlit, litbytes, kept = self.wait(self.send(line), keep)
        if ok and status != b"OK":
            raise ImapError("%s -> %s %s" % (line[:80].decode("ascii", "replace"), status.decode(),
                                             text.decode("utf-8", "replace")))
        return status, text, nbytes, nlit, litbytes, kept

    def login(self, user, password):
        return self.run(b"LOGIN %s %s" % (quote(user), quote(password)))

    def close(self):
        try:
            self.sock.sendall(b"z LOGOUT\r\n")
            self.sock.settimeout(5)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()


def quote(s):
    if isinstance(s, str):
        s = s.encode()
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def imap_date(t):
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(t)).encode()


def append_all(port, user, password, messages, mailbox=b"INBOX", window=256, mark=0, progress=None, every=0,
               time_limit=None):
    """APPENDs messages in order on one connection, pipelined: LITERAL+ when
    advertised (no round trip per message), else synchronizing literals (one
    continuation round trip each, the next command sent without waiting for the
    previous completion). Returns (count, bytes, seconds, mode, first error,
    seconds until the mark-th completion or None). Stops sending after
    time_limit seconds (the count returned tells how far it got)."""
    c = RawImap(port)
    c.login(user, password)
    caps = c.run(b"CAPABILITY", keep=True)[5].upper()
    plus = b"LITERAL+" in caps
    sock = c.sock
    inflight = threading.Semaphore(window)
    cont = threading.Event()
    state = {"done": 0, "error": None, "errors": 0, "eof": False, "mark": None}
    sent_tags = []
    total = [0, 0]

    def reader():
        buf = bytearray()
        pending = 0
        try:
            while True:
                e = buf.find(b"\r\n")
                if e < 0:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        state["eof"] = True
                        break
                    buf += chunk
                    continue
                line = bytes(buf[:e])
                del buf[:e + 2]
                if line.startswith(b"+"):
                    cont.set()
                elif line.startswith(b"* "):
                    if line.endswith(b"BYE") or b" BYE " in line:
                        state["error"] = state["error"] or line.decode("utf-8", "replace")
                elif line.startswith(b"a"):
                    tag, _, rest = line.partition(b" ")
                    if not rest.upper().startswith(b"OK"):
                        state["errors"] += 1
                        if not state["error"]:
                            state["error"] = line.decode("utf-8", "replace")[:300]
                    state["done"] += 1
                    if state["done"] == mark:
                        state["mark"] = time.perf_counter() - t0
                    if every and state["done"] % every == 0 and progress:
                        now = time.perf_counter()
                        progress("APPEND %d done, last %d at %.0f msg/s"
                                 % (state["done"], every, every / (now - state["last"])))
                        state["last"] = now
                    inflight.release()
                    pending += 1
                    if tag == b"alast":
                        break
        except OSError as e:
            state["error"] = state["error"] or "reader: %s" % e
            state["eof"] = True
        cont.set()

    th = threading.Thread(target=reader, daemon=True)
    t0 = state["last"] = time.perf_counter()
    th.start()
    n = 0
    try:
        for raw, flags, t in messages:
            inflight.acquire()
            if state["eof"] or (time_limit and time.perf_counter() - t0 > time_limit):
                break
            head = b"a%d APPEND %s (%s) \"%s\" {%d%s}\r\n" % (
                n, mailbox, " ".join(flags).encode(), imap_date(t), len(raw), b"+" if plus else b"")
            if plus:
                sock.sendall(head + raw + b"\r\n")
            else:
                cont.clear()
                sock.sendall(head)
                cont.wait(60)
                if state["eof"] or state["error"] and not cont.is_set():
                    break
                sock.sendall(raw + b"\r\n")
            n += 1
            total[1] += len(raw)
        sock.sendall(b"alast NOOP\r\n")
        th.join(600)
    except OSError as e:
        state["error"] = state["error"] or "writer: %s" % e
    secs = time.perf_counter() - t0
    c.sock.close()
    return (n - state["errors"], total[1], secs, "LITERAL+" if plus else "sync literals", state["error"],
            state["mark"])


# ------------------------------------------------------------------ servers

def vm(pid, key):
    """VmHWM / VmRSS etc. of pid in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


class Target:
    """One server under test: name, port, credentials, and how to read its RSS."""

    def __init__(self, name, port, user, password, rss):
        self.name, self.port, self.user, self.password, self.rss = name, port, user, password, rss
        self.conn = None
        self.error = None   # first failure: later operations are skipped


def start_dovecot(corpus, tmp_root, log):
    dc = servers.Dovecot(pop3=False, lmtp=False)
    try:
        dc.add_user(USER, "benchpw")
        dc.start()
        log("dovecot %s started on 127.0.0.1:%d (%s)" % (dovecot_version(), dc.imap_port, dc.tmp))
        t0 = time.perf_counter()
        nbytes = [0]

        def counted():
            for raw, flags, t in corpus:
                nbytes[0] += len(raw)
                yield raw, flags, t
        n = dc.bulk_load(USER, counted(), resync=False)
        t1 = time.perf_counter()
        dc.doveadm("force-resync", "-u", USER, "INBOX", timeout=900)
        t2 = time.perf_counter()
    except BaseException:
        dc.cleanup()
        raise
    log("dovecot: %d messages, %.1f MB written as maildir files in %.1f s, force-resync %.1f s"
        % (n, nbytes[0] / 1e6, t1 - t0, t2 - t1))
    return dc, {"count": n, "bytes": nbytes[0], "write": t1 - t0, "index": t2 - t1}


def dovecot_version():
    try:
        import subprocess
        return subprocess.run([servers.DOVECOT, "--version"], capture_output=True, text=True,
                              timeout=10).stdout.split()[0]
    except Exception:
        return "?"


def dovecot_imap_pids(dc):
    return [p for p in dc.pids() if comm(p) == "imap"]


def start_mailbridge(state_root, log):
    state_dir = os.path.join(state_root, "state")
    d = harness.Daemon(state_dir=state_dir, log_level="info")
    try:
        d.start()
        log("mailbridged %s started, pid %d, state dir %s, listeners %s"
            % (harness.MAILBRIDGED, d.proc.pid, state_dir, d.listeners))
        if "imap" not in d.listeners:
            raise ImapError("mailbridged has no \"imap\" listener (listeners.json: %s)" % sorted(d.listeners))
        status, body = d.api("GET", "/v1/accounts")
        if status != 200 or not body.get("accounts"):
            raise ImapError("GET /v1/accounts: %s %s" % (status, body))
        acct = body["accounts"][0]
        status, pw = d.api("POST", "/v1/accounts/%d/password" % acct["id"])
        if status != 200:
            raise ImapError("POST password: %s %s" % (status, pw))
    except BaseException:
        d.stop()
        d.cleanup()
        raise
    return d, pw["username"], pw["password"]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


# ------------------------------------------------------------------ measurements

def spread_uids(count, k=1000):
    k = min(k, count)
    return [1 + (j * count) // k for j in range(k)]


def compress_set(nums):
    return b",".join(b"%d" % n for n in nums)


def op_login_select(tg):
    t0 = time.perf_counter()
    c = RawImap(tg.port)
    c.login(tg.user, tg.password)
    _, _, nbytes, _, _, kept = c.run(b"SELECT INBOX", keep=True)
    dt = time.perf_counter() - t0
    c.close()
    m = re.search(rb"\* (\d+) EXISTS", kept)
    return dt, nbytes, (int(m.group(1)) if m else None)


def make_ops(corpus):
    n = corpus.count
    uids = spread_uids(n)
    fetch_n = min(1000, n)
    body_set = compress_set(uids)
    return [
        ("LOGIN+SELECT INBOX", None, "s"),
        ("UID FETCH 1:* (UID FLAGS)", b"UID FETCH 1:* (UID FLAGS)", "s"),
        ("FETCH 1:%d (ENVELOPE BODYSTRUCTURE)" % fetch_n,
         b"FETCH 1:%d (ENVELOPE BODYSTRUCTURE)" % fetch_n, "s"),
        ("UID SEARCH HEADER X-Bench-Tag", b"UID SEARCH HEADER X-Bench-Tag " + NEEDLE.encode(), "s"),
        ("UID FETCH %d spread BODY.PEEK[]" % len(uids), b"UID FETCH " + body_set + b" BODY.PEEK[]", "MB/s"),
    ], uids


def session(tg):
    if tg.conn is None:
        c = RawImap(tg.port)
        c.login(tg.user, tg.password)
        c.run(b"SELECT INBOX")
        tg.conn = c
    return tg.conn


def measure(tg, name, cmd, keep=False):
    """One timed run: (seconds, response bytes, literals, literal bytes, kept)."""
    if cmd is None:
        dt, nbytes, exists = op_login_select(tg)
        return dt, nbytes, 0, 0, exists
    c = session(tg)
    t0 = time.perf_counter()
    status, text, nbytes, nlit, litbytes, kept = c.run(cmd, keep=keep)
    return time.perf_counter() - t0, nbytes, nlit, litbytes, kept


def compare_answers(answers, log):
    """Says whether both servers gave the same ENVELOPE/BODYSTRUCTURE answer,
    message by message (the MIME code claims Dovecot parity)."""
    (na, a), (nb, b) = answers.items()
    split = lambda x: [l for l in x.rsplit(b"\r\n", 2)[0].split(b"\r\n* ")[1:] if b" FETCH " in l[:20]]
    la, lb = split(a), split(b)
    diff = [(x, y) for x, y in zip(la, lb) if x != y]
    if len(la) == len(lb) and not diff:
        log("ENVELOPE/BODYSTRUCTURE answers: identical on both servers (%d messages)" % len(la))
        return
    log("ENVELOPE/BODYSTRUCTURE answers differ: %d vs %d FETCH lines, %d differ" % (len(la), len(lb), len(diff)))
    if diff:
        x, y = diff[0]
        k = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        log("  first difference at byte %d of:\n  %s: ...%r\n  %s: ...%r"
            % (k, na, x[max(0, k - 120):k + 200], nb, y[max(0, k - 120):k + 200]))


def fmt_secs(s):
    if s is None:
        return "-"
    return "%.1f ms" % (s * 1e3) if s < 10 else "%.2f s" % s


def fmt_kib(k):
    return "-" if k is None else "%.1f MB" % (k / 1024)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="5,000 messages, for a smoke run")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per operation (median reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--load-limit", type=float, default=480, metavar="SECONDS",
                    help="give up loading mailbridged after this long (default 480)")
    ap.add_argument("--mailbridged", metavar="PATH",
                    help="daemon binary (default: $MAILBRIDGED, else ../build/mailbridged)")
    ap.add_argument("--dovecot-only", action="store_true", help="skip mailbridged")
    ap.add_argument("--no-dovecot", action="store_true", help="skip Dovecot")
    ap.add_argument("--append-sample", type=int, default=5000, metavar="K",
                    help="compare APPEND of the first K messages: Dovecot into another mailbox, "
                         "ours from the INBOX load (0: skip)")
    ap.add_argument("--keep", action="store_true", help="leave the servers' dirs behind")
    ap.add_argument("--dump-envelope", metavar="DIR",
                    help="write each server's FETCH ENVELOPE BODYSTRUCTURE answer to DIR")
    args = ap.parse_args()
    if args.quick:
        args.count = 5000
    harness.MAILBRIDGED = os.path.abspath(args.mailbridged or os.environ.get("MAILBRIDGED")
                                          or os.path.join(HERE, "..", "build", "mailbridged"))
    t_start = time.perf_counter()

    def log(msg):
        print("[%6.1fs] %s" % (time.perf_counter() - t_start, msg), flush=True)

    root = servers.tmp_root()
    log("machine: %s, nproc %d, RAM %.1f GiB, temp files on %s; python %s"
        % (platform.platform(), os.cpu_count(), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30,
           root, platform.python_version()))
    corpus = Corpus(args.count, args.seed)
    needles = corpus.needles()
    log("corpus: %d messages, seed %d, %d carry X-Bench-Tag: %s" % (args.count, args.seed, needles, NEEDLE))

    targets = []
    dc = daemon = None
    mb_tmp = None
    loads = []   # (row, target, messages, bytes, seconds, how)
    k_append = min(args.count, args.append_sample)
    k_bytes = sum(len(corpus.message(i)[0]) for i in range(k_append))
    try:
        if not args.dovecot_only:
            mb_tmp = tempfile.mkdtemp(prefix="mb-bench-", dir=root)
            try:
                daemon, user, pw = start_mailbridge(mb_tmp, log)
                mb = Target("mailbridge", port_of(daemon.listeners["imap"]), user, pw,
                            lambda: (vm(daemon.proc.pid, "VmHWM"), vm(daemon.proc.pid, "VmRSS")))
                log("mailbridge: APPEND %d messages to INBOX..." % args.count)
                n, nb, secs, mode, err, at_mark = append_all(mb.port, user, pw, corpus, mark=k_append,
                                                              progress=log, every=max(1000, args.count // 20),
                                                              time_limit=args.load_limit)
                log("mailbridge: APPENDed %d messages, %.1f MB in %.1f s (%s, one connection)%s"
                    % (n, nb / 1e6, secs, mode, "; first error: " + err if err else ""))
                loads.append((ROW_LOAD, "mailbridge", n, nb, secs, "APPEND, " + mode))
                if at_mark:
                    loads.append((ROW_APPEND, "mailbridge", k_append, k_bytes, at_mark, "to INBOX, " + mode))
                if n < args.count:
                    mb.error = "load: %d of %d messages APPENDed in %.0f s%s" % (
                        n, args.count, secs, ", first error: " + err if err else
                        " (stopped at --load-limit; the operations were not measured)")
                    log("mailbridge: FAILED " + mb.error)
                log("mailbridge RSS after load: VmHWM %s VmRSS %s" % tuple(fmt_kib(k) for k in mb.rss()))
                targets.append(mb)
            except (ImapError, RuntimeError, OSError) as e:
                log("mailbridge: FAILED: %s" % e)
                if daemon is not None:
                    log("daemon log tail:\n" + daemon.log()[-3000:])
                loads.append((ROW_LOAD, "mailbridge", 0, 0, 0, "FAILED"))
                mbfail = Target("mailbridge", 0, "", "", lambda: (None, None))
                mbfail.error = str(e)
                targets.append(mbfail)
        if not args.no_dovecot:
            dc, info = start_dovecot(corpus, root, log)
            loads.append((ROW_LOAD, "dovecot", info["count"], info["bytes"], info["write"] + info["index"],
                          "maildir files + force-resync"))

            def dc_rss():
                pids = dovecot_imap_pids(dc)
                hwm = [vm(p, "VmHWM") or 0 for p in pids]
                rss = [vm(p, "VmRSS") or 0 for p in pids]
                return (max(hwm) if hwm else None), (max(rss) if rss else None)
            targets.append(Target("dovecot", dc.imap_port, USER, "benchpw", dc_rss))
            if k_append:
                c = RawImap(dc.imap_port)
                c.login(USER, "benchpw")
                c.run(b"CREATE Appended")
                c.close()
                n, nb, secs, mode, err, _ = append_all(dc.imap_port, USER, "benchpw",
                                                       (corpus.message(i) for i in range(k_append)),
                                                       mailbox=b"Appended")
                log("dovecot: APPENDed %d messages, %.1f MB in %.1f s (%s, one connection)%s"
                    % (n, nb / 1e6, secs, mode, "; first error: " + err if err else ""))
                if not err:
                    loads.append((ROW_APPEND, "dovecot", n, nb, secs, "to a new mailbox, " + mode))

        ops, uids = make_ops(corpus)
        expected_body = sum(len(corpus.message(u - 1)[0]) for u in uids)
        results = {}   # (op, target) -> list of seconds
        info = {}      # (op, target) -> (bytes, literals, literal bytes)
        first = {}     # (op, target) -> seconds of the untimed warm-up run (cold caches)
        answers = {}   # target -> its FETCH ENVELOPE BODYSTRUCTURE answer (literal bodies left out)
        for name, cmd, unit in ops:
            for tg in targets:
                if tg.error:
                    continue
                try:   # untimed warm-up: caches, Dovecot's cache file decisions, login cache
                    r = measure(tg, name, cmd, keep=b"ENVELOPE" in (cmd or b""))
                    info[(name, tg.name)] = r[1:4]
                    first[(name, tg.name)] = r[0]
                    if cmd and b"ENVELOPE" in cmd:
                        answers[tg.name] = r[4]
                    if args.dump_envelope and cmd and b"ENVELOPE" in cmd:
                        os.makedirs(args.dump_envelope, exist_ok=True)
                        with open(os.path.join(args.dump_envelope, tg.name + ".txt"), "wb") as f:
                            f.write(r[4])
                    if cmd is None and r[4] != args.count:
                        log("%s: SELECT reports %s EXISTS, expected %d" % (tg.name, r[4], args.count))
                    if cmd and b"SEARCH" in cmd:
                        c = session(tg)
                        kept = c.run(cmd, keep=True)[5]
                        got = len(re.search(rb"\* SEARCH([ 0-9]*)", kept).group(1).split())
                        if got != needles:
                            log("%s: UID SEARCH found %d, expected %d" % (tg.name, got, needles))
                    if unit == "MB/s" and r[3] != expected_body:
                        log("%s: full-body fetch returned %d literal bytes in %d literals, expected %d"
                            % (tg.name, r[3], r[2], expected_body))
                except (ImapError, OSError) as e:
                    tg.error = "%s: %s" % (name, e)
                    log("%s: FAILED %s" % (tg.name, tg.error))
            for rep in range(args.runs):   # alternate servers on every repetition
                for tg in targets:
                    if tg.error:
                        continue
                    try:
                        r = measure(tg, name, cmd)
                        results.setdefault((name, tg.name), []).append(r[0])
                    except (ImapError, OSError) as e:
                        tg.error = "%s: %s" % (name, e)
                        log("%s: FAILED %s" % (tg.name, tg.error))
            row = []
            for tg in targets:
                ts = results.get((name, tg.name))
                row.append("%s %s%s" % (tg.name, "/".join("%.1f" % (t * 1e3) for t in ts) + " ms" if ts else "-",
                                        " (warm-up run %.1f ms)" % (first[(name, tg.name)] * 1e3)
                                        if (name, tg.name) in first else ""))
            log("%s: %s" % (name, "; ".join(row)))

        if len(answers) == 2:
            compare_answers(answers, log)
        rss = {tg.name: tg.rss() for tg in targets}
        for tg in targets:
            if tg.conn:
                tg.conn.close()
        report(args, corpus, ops, targets, results, info, rss, loads, expected_body, needles, log)
    finally:
        if daemon is not None:
            rc, took = daemon.stop()
            log("mailbridged stopped: exit %s in %.1f s" % (rc, took))
            if args.keep:
                log("mailbridge state kept in " + mb_tmp)
            else:
                daemon.cleanup()
        if mb_tmp and not args.keep:
            shutil.rmtree(mb_tmp, ignore_errors=True)
        if dc is not None:
            if args.keep:
                dc.stop()
                log("dovecot dir kept in " + dc.tmp)
            else:
                dc.cleanup()
        log("total %.1f s" % (time.perf_counter() - t_start))


def report(args, corpus, ops, targets, results, info, rss, loads, expected_body, needles, log):
    names = [tg.name for tg in targets]
    print()
    print("IMAP benchmark: %d messages in INBOX, %d timed runs per operation (median), warm cache"
          % (args.count, args.runs))
    print()
    hdr = ["operation"] + names + (["ratio (dovecot/ours)"] if len(names) == 2 else [])
    rows = []
    for name, cmd, unit in ops:
        row = [name]
        med = {}
        for tg in targets:
            ts = results.get((name, tg.name))
            if not ts:
                row.append("FAILED" if tg.error else "-")
                continue
            m = statistics.median(ts)
            med[tg.name] = m
            if unit == "MB/s":
                nb = info[(name, tg.name)][2]
                row.append("%.0f MB/s (%s, %.1f MB)" % (nb / m / 1e6, fmt_secs(m), nb / 1e6))
            else:
                row.append(fmt_secs(m))
        if len(names) == 2:
            a, b = med.get(names[0]), med.get(names[1])
            row.append("%.2f" % (b / a) if a and b else "-")
        rows.append(row)
    if len(names) == 2:
        (ha, ra), (hb, rb_) = rss.get(names[0], (None, None)), rss.get(names[1], (None, None))
        whole = not any(tg.error for tg in targets)   # a partial load would flatter the RSS ratio
        rows.append(["peak RSS (VmHWM)", fmt_kib(ha), fmt_kib(hb), "%.2f" % (hb / ha) if ha and hb and whole else "-"])
    else:
        rows.append(["peak RSS (VmHWM)"] + [fmt_kib(rss[n][0]) for n in names])
    notes = []
    for label in (ROW_LOAD, ROW_APPEND):
        cells, secs_of = [], {}
        for n in names:
            got = [x for x in loads if x[0] == label and x[1] == n]
            if not got:
                cells.append("-")
                continue
            _, _, count, nb, secs, how = got[0]
            if not secs:
                cells.append("FAILED")
                continue
            secs_of[n] = secs / count
            cells.append("%.1f s, %.0f msg/s, %.0f MB/s" % (secs, count / secs, nb / secs / 1e6)
                         + (" (only %d)" % count if label == ROW_LOAD and count < args.count else ""))
            notes.append("  %s, %s: %d messages, %.1f MB, %s" % (label % {"k": count}, n, count, nb / 1e6, how))
        k = max((x[2] for x in loads if x[0] == label), default=0)
        row = [(label % {"k": k}) + " (info)"] + cells
        if len(names) == 2:
            a, b = secs_of.get(names[0]), secs_of.get(names[1])
            row.append("%.2f" % (b / a) if a and b else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(hdr))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
    for name, cmd, unit in ops:
        for tg in targets:
            if (name, tg.name) in info:
                nb, nlit, litb = info[(name, tg.name)]
                print("  %-40s %-10s response %d bytes, %d literals (%d bytes)" % (name, tg.name, nb, nlit, litb))
    for x in notes:
        print(x)
    print("  expected: %d SEARCH hits, %d body bytes in the spread fetch" % (needles, expected_body))
    for tg in targets:
        if tg.error:
            print("  %s failed: %s" % (tg.name, tg.error))
    for n in names:
        print("  %s RSS at end: VmHWM %s, VmRSS %s" % (n, fmt_kib(rss[n][0]), fmt_kib(rss[n][1])))
    print("  ratio = Dovecot's time / mailbridge's time (for RSS: Dovecot's / ours); above 1 = mailbridge better")


if __name__ == "__main__":
    main()
