"""The upstream IMAP side of "bad input gets an answer, never a crash": the
real mailbridged syncs from a scripted fake IMAP4rev1 server (plain, no
CONDSTORE/QRESYNC/IDLE: the fallback path) that misbehaves in controlled
ways: a literal above the client's limit, a line above it, the connection
dropped inside a message literal, garbage mid-FETCH, a server that greets
and then never answers. Each time the daemon stays up (REST and the local
IMAP endpoint answer), the account shows what went wrong, it does not
reconnect in a tight loop, and once the server behaves again the local
store holds exactly the upstream's messages."""
import email.utils
import imaplib
import random
import select
import threading
import time
import unittest

from harness import Daemon
from servers import LocalTcpServer
from test_smtp import host_port, password_for, stored_messages
from test_sync import sync_status, wait_for

USER, PASSWORD = "hostile", "hostile-pw"
IO_TIMEOUT = 10  # every socket wait of the fake server is bounded by this


def make_message(i):
    body = ("Body of message %d.\r\n" % i) * (20 + i * 7)
    return ("From: Upstream <up@example.test>\r\nTo: %s@example.test\r\nSubject: message %d\r\n"
            "Message-ID: <hostile.%d@example.test>\r\nDate: %s\r\n\r\n%s"
            % (USER, i, i, email.utils.formatdate(1700000000 + i * 60), body)).encode()


def uid_set(spec, highest):
    """The UIDs a sequence set ("1:*", "3,5:7") names, up to `highest`."""
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        lo = highest if lo == "*" else int(lo)
        hi = lo if not hi else (highest if hi == "*" else int(hi))
        # "n:*" is "*:n": it names the last message even when n is past it.
        lo, hi = min(lo, hi), max(lo, hi)
        out.update(range(lo, min(hi, highest) + 1))
    return out


class FakeImap(LocalTcpServer):
    """A scripted IMAP4rev1 server on 127.0.0.1: its messages are in INBOX.

    `hostile` names the misbehaviour (a _hostile_* method) served in place
    of the answer to a message body FETCH; None: behave. It stays until set
    back to None ("drop_mid_literal" resets it itself: once). `stall`: greet,
    then read commands and answer none. `connections` counts the connections
    accepted; `log` keeps every command line received."""

    def __init__(self, messages):
        self.messages = list(messages)  # UID i+1 is messages[i]
        self.uidvalidity = 1700000000
        self.folders = ["INBOX"]  # the others (CREATEd by the daemon) stay empty
        self.hostile = None
        self.stall = False
        self.connections = 0
        self.log = []
        super().__init__(backlog=16)

    def commands(self, name):
        with self.lock:
            return [l for l in self.log if l.split(" ", 1)[-1].upper().startswith(name)]

    def accepted(self, s):
        s.settimeout(IO_TIMEOUT)
        with self.lock:
            self.connections += 1
        self.track(s)
        threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _lines(self, s):
        """The command lines the client sends, as they come; every wait is
        bounded (select), so a quiet client never blocks close()."""
        buf = b""
        while not self.closed:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.rstrip(b"\r").decode("utf-8", "replace")
            r, _, _ = select.select([s], [], [], 0.2)
            if not r:
                continue
            data = s.recv(65536)
            if not data:
                return
            buf += data

    def _serve(self, s):
        try:
            s.sendall(b"* OK fake IMAP4rev1 server ready\r\n")
            conn = {"selected": None}
            for text in self._lines(s):
                with self.lock:
                    self.log.append(text)
                if self.stall:
                    continue
                tag, _, rest = text.partition(" ")
                if not self._command(s, conn, tag, rest):
                    return
        except OSError:
            return
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _command(self, s, conn, tag, rest):
        """Answers one command; False ends the connection."""
        name, _, args = rest.partition(" ")
        name = name.upper()
        if name == "UID":
            sub, _, args = args.partition(" ")
            name = "UID " + sub.upper()
        folder = args.split(" ", 1)[0].strip('"')
        if name in ("SELECT", "EXAMINE"):
            conn["selected"] = folder
        n = len(self.messages) if (folder if name == "STATUS" else conn["selected"] or "").upper() == "INBOX" else 0
        if name == "CAPABILITY":
            s.sendall(b"* CAPABILITY IMAP4rev1\r\n%s OK done\r\n" % tag.encode())
        elif name == "LOGIN":
            if args.split() != ['"%s"' % USER, '"%s"' % PASSWORD] and args.split() != [USER, PASSWORD]:
                s.sendall(b"%s NO [AUTHENTICATIONFAILED] no\r\n" % tag.encode())
            else:
                s.sendall(b"%s OK [CAPABILITY IMAP4rev1] logged in\r\n" % tag.encode())
        elif name == "LIST":
            s.sendall(b"".join(b'* LIST (\\HasNoChildren) "/" "%s"\r\n' % f.encode() for f in self.folders) +
                      b"%s OK done\r\n" % tag.encode())
        elif name == "CREATE":
            self.folders.append(folder)
            s.sendall(b"%s OK created\r\n" % tag.encode())
        elif name == "STATUS":
            s.sendall(b'* STATUS "%s" (MESSAGES %d UIDNEXT %d UIDVALIDITY %d)\r\n%s OK done\r\n'
                      % (folder.encode(), n, n + 1, self.uidvalidity, tag.encode()))
        elif name in ("SELECT", "EXAMINE"):
            s.sendall(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* %d EXISTS\r\n* 0 RECENT\r\n"
                      b"* OK [UIDVALIDITY %d] ok\r\n* OK [UIDNEXT %d] ok\r\n%s OK [READ-WRITE] selected\r\n"
                      % (n, self.uidvalidity, n + 1, tag.encode()))
        elif name == "UID FETCH":
            spec, _, items = args.partition(" ")
            return self._fetch(s, tag, sorted(uid_set(spec, n)) if n else [], items.upper())
        elif name in ("NOOP", "SUBSCRIBE"):
            s.sendall(b"%s OK done\r\n" % tag.encode())
        elif name == "LOGOUT":
            s.sendall(b"* BYE bye\r\n%s OK done\r\n" % tag.encode())
            return False
        else:
            s.sendall(b"%s BAD unknown command\r\n" % tag.encode())
        return True

    def _fetch(self, s, tag, uids, items):
        if "BODY.PEEK[]" in items and uids and self.hostile:
            return getattr(self, "_hostile_" + self.hostile)(s, tag, uids)
        s.sendall(b"".join(self._fetch_data(uids, items)) + b"%s OK done\r\n" % tag.encode())
        return True

    def _fetch_data(self, uids, items="BODY.PEEK[]"):
        out = []
        for uid in uids:
            raw = self.messages[uid - 1]
            parts = [b"UID %d FLAGS ()" % uid]
            if "INTERNALDATE" in items:
                parts.append(b'INTERNALDATE "14-Nov-2023 22:13:20 +0000"')
            if "RFC822.SIZE" in items:
                parts.append(b"RFC822.SIZE %d" % len(raw))
            if "BODY.PEEK[]" in items:
                parts.append(b"BODY[] {%d}\r\n%s" % (len(raw), raw))
            out.append(b"* %d FETCH (%s)\r\n" % (uid, b" ".join(parts)))
        return out

    # The misbehaviours, each in place of the answer to a body FETCH of
    # `uids`. They return False to end the connection.

    def _hostile_huge_literal(self, s, tag, uids):
        s.sendall(b"* %d FETCH (UID %d FLAGS () BODY[] {99999999999}\r\n" % (uids[0], uids[0]))
        s.sendall(self.messages[uids[0] - 1] * 50)
        return False

    def _hostile_long_line(self, s, tag, uids):
        # 17 MiB without a LF (the client's limit is 16 MiB), in chunks.
        s.sendall(b"* %d FETCH (UID %d FLAGS () BODY[] \"" % (uids[0], uids[0]))
        chunk = b"x" * (1 << 20)
        for _ in range(17):
            s.sendall(chunk)
        s.sendall(b"\"\r\n" + b"".join(self._fetch_data(uids[1:])) + b"%s OK done\r\n" % tag.encode())
        return True

    def _hostile_drop_mid_literal(self, s, tag, uids):
        self.hostile = None  # once
        data = b"".join(self._fetch_data(uids))
        raw = self.messages[uids[-1] - 1]
        s.sendall(data[:data.index(raw) + len(raw) // 2])
        return False

    def _hostile_garbage(self, s, tag, uids):
        # A line of random bytes, then a FETCH response whose data is random
        # bytes (the last message's: lost to the client), then the others.
        junk = bytes(random.Random(7).randrange(256) for _ in range(4000)).replace(b"\n", b"")
        s.sendall(junk + b"\r\n" + b"* %d FETCH (UID %d BODY[] %s)\r\n" % (uids[-1], uids[-1], junk) +
                  b"".join(self._fetch_data(uids[:-1])) + b"%s OK done\r\n" % tag.encode())
        return True

    def _hostile_bare_lf(self, s, tag, uids):
        data = [d.replace(b")\r\n", b")\n") for d in self._fetch_data(uids)]
        s.sendall(b"".join(data) + b"%s OK done\n" % tag.encode())
        return True

    def _hostile_unknown_untagged(self, s, tag, uids):
        data = self._fetch_data(uids)
        s.sendall(data[0] + b"* XYZZY 17 (PLUGH {3}\r\nabc)\r\n* 3 FROBNICATE\r\n" + b"".join(data[1:]) +
                  b"%s OK done\r\n" % tag.encode())
        return True


class HostileUpstreamTest(unittest.TestCase):
    def setUp(self):
        self.up = FakeImap([make_message(i) for i in range(5)])
        self.addCleanup(self.up.close)
        self.d = Daemon(config={"accounts": [{
            "name": USER, "address": "%s@example.test" % USER,
            "imap": {"host": "127.0.0.1", "port": self.up.port, "security": "none",
                     "username": USER, "password": PASSWORD, "poll_seconds": 3600}}]})
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.stop_cleanly)

    def stop_cleanly(self):
        """SIGTERM ends it with 0: no crash, and under ASan no error or leak report."""
        if self.d.proc is None:
            return
        rc, _ = self.d.stop()
        self.assertEqual(rc, 0, "mailbridged exited with %r:\n%s" % (rc, self.d.log()[-4000:]))

    def status(self):
        return sync_status(self.d, USER)

    def wait_status(self, pred, what, timeout=60):
        try:
            return wait_for(lambda: pred(self.status()) and self.status(), timeout, 0.05, what)
        except AssertionError as e:
            raise AssertionError("%s; status now %r" % (e, self.status())) from None

    def local_messages(self):
        """The INBOX as a mail program sees it through the bridge's local
        IMAP endpoint (a login there also shows the daemon is serving)."""
        login, password = password_for(self.d, USER)
        li = imaplib.IMAP4(*host_port(self.d.listeners["imap"]), timeout=20)
        try:
            li.login(login, password)
            typ, data = li.select("INBOX", readonly=True)
            if int(data[0]) == 0:
                return []
            typ, data = li.fetch("1:*", "(BODY.PEEK[])")
            return sorted(item[1] for item in data if isinstance(item, tuple))
        finally:
            li.logout()

    def assert_alive(self):
        self.assertIsNone(self.d.proc.poll(), "mailbridged exited:\n" + self.d.log()[-4000:])
        self.status()  # REST answers
        self.local_messages()  # local IMAP logs in and serves

    def assert_same_as_upstream(self):
        """Exactly the upstream's messages, each once, byte for byte: through
        local IMAP and in the store."""
        self.assertEqual(self.local_messages(), sorted(self.up.messages))
        self.assertEqual(sorted(stored_messages(self.d.state_dir, USER)), sorted(self.up.messages))

    def wait_synced(self, timeout=60):
        """Until the store holds the upstream's messages and the account is idle."""
        self.wait_status(lambda st: len(stored_messages(self.d.state_dir, USER)) >= len(self.up.messages)
                         and st["state"] == "idle" and st["last_sync"], "the upstream's messages, idle", timeout)
        self.assert_same_as_upstream()

    def connections_over(self, seconds):
        before = self.up.connections
        time.sleep(seconds)
        return self.up.connections - before

    def body_fetches(self):
        return len([c for c in self.up.commands("UID FETCH") if "BODY.PEEK[]" in c])

    def test_well_behaved_server_syncs(self):
        self.d.start()
        self.wait_synced()
        self.assertEqual(self.up.connections, 1)
        self.assertNotIn("upstream.bad_response", self.d.log())

    def test_literal_above_the_limit(self):
        # "BODY[] {99999999999}", some bytes of it, then the server hangs up.
        self.up.hostile = "huge_literal"
        self.d.start()
        st = self.wait_status(lambda st: st["state"] == "offline" and st["last_error"], "offline")
        self.assertIn("literal of 99999999999 bytes", st["last_error"])
        self.assertIn("literal of 99999999999 bytes", self.d.log())
        # Every connection gets as far as the body FETCH and fails there:
        # the retries back off (at most 3 in 6 s), no tight loop.
        self.assertLessEqual(self.connections_over(6), 4, "reconnects without backoff")
        self.assert_alive()
        self.assertEqual(stored_messages(self.d.state_dir, USER), [], "a partial message was stored")
        self.assertEqual(self.local_messages(), [])
        self.assertIsNone(self.status()["last_sync"])

    def test_line_above_the_limit(self):
        # 17 MiB without a LF inside message 1's FETCH response, then the
        # rest of the answer as it should be.
        self.up.hostile = "long_line"
        self.d.start()
        st = self.wait_status(lambda st: st["last_error"], "an error")
        self.assertIn("mailbox INBOX", st["last_error"])
        self.assertIn("longer than 16777216 bytes", st["last_error"])
        # The mailbox is retried with backoff (at most 4 in 4 s), not in a loop.
        fetches = self.body_fetches()
        time.sleep(4)
        self.assertLessEqual(self.body_fetches() - fetches, 4, "retries without backoff")
        self.assert_alive()
        # Messages 2-5 came; nothing of message 1 was stored.
        self.assertEqual(self.local_messages(), sorted(self.up.messages[1:]))
        # The server behaves: message 1 is fetched again (the mailbox was not
        # marked complete without it), and the error is over.
        self.up.hostile = None
        self.wait_synced()
        self.wait_status(lambda st: not st["last_error"], "the error cleared")

    def test_connection_dropped_inside_a_literal(self):
        # Messages 1-4 whole, then the server hangs up half-way through
        # message 5's literal; it behaves on the next connection.
        self.up.hostile = "drop_mid_literal"
        self.d.start()
        self.wait_synced()
        self.assertGreaterEqual(self.up.connections, 2)
        self.assertIn("sync.offline", self.d.log())
        self.assertIsNone(self.up.hostile)

    def garbage_then_recovery(self, mode):
        self.up.hostile = mode
        self.d.start()
        # Tolerated (every message, nothing else) or an error shown, never a
        # crash or a half-read message stored.
        self.wait_status(lambda st: st["last_error"] or st["last_sync"], "a sync or an error")
        self.assert_alive()
        self.assertLessEqual(set(self.local_messages()), set(self.up.messages))
        self.up.hostile = None
        self.wait_synced()

    def test_garbage_mid_fetch(self):
        self.garbage_then_recovery("garbage")
        # The junk line is skipped; the FETCH response that was junk fails
        # its command (that message was not had), and the retry gets it.
        self.assertIn("upstream.bad_response", self.d.log())
        self.assertIn("UID FETCH: a response to it could not be read", self.d.log())

    def test_bare_lf_line_ends(self):
        self.garbage_then_recovery("bare_lf")

    def test_unknown_untagged_response_mid_fetch(self):
        self.garbage_then_recovery("unknown_untagged")

    def test_server_that_stops_answering(self):
        # Greets, then reads every command and answers none.
        self.up.stall = True
        self.d.start()
        wait_for(lambda: self.up.commands("CAPABILITY"), 30, 0.05, "the first command")
        self.assertEqual(self.status()["state"], "connecting")
        self.assert_alive()  # the daemon does not wait on it
        # The daemon's silence timeout (60 s, ImapClientOptions::timeout) ends it.
        st = self.wait_status(lambda st: st["state"] == "offline", "offline", timeout=120)
        self.assertIn("timed out", st["last_error"])
        self.assertEqual(self.up.connections, 1)
        self.up.stall = False
        self.wait_synced()


if __name__ == "__main__":
    unittest.main()
