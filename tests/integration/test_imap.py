"""Local IMAP server of the real mailbridged, driven by python3 imaplib and raw
sockets: every command, plaintext + STARTTLS + implicit TLS, two sessions on
one mailbox seeing each other's changes (IDLE push, latency printed), bad input,
and kill -9 during APPEND losing nothing acknowledged."""
import imaplib
import os
import re
import socket
import ssl
import subprocess
import time
import unittest

from harness import Daemon, MAILBRIDGED

MESSAGE = (b"From: Ann <ann@example.org>\r\nTo: me@localhost\r\nSubject: hello imap\r\n"
           b"Message-ID: <imap1@example.org>\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
           b"first part\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--b--\r\n")


def password_for(d, name="local"):
    status, body = d.api("GET", "/v1/accounts")
    [acct] = [a for a in body["accounts"] if a["name"] == name]
    status, creds = d.api("POST", "/v1/accounts/%d/password" % acct["id"])
    assert status == 200, creds
    return creds["username"], creds["password"]


def host_port(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


class Raw:
    """A line-level IMAP client for what imaplib cannot send."""

    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.s.sendall(data)

    def line(self, timeout=10):
        self.s.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until_tagged(self, tag, timeout=10):
        lines = []
        while True:
            l = self.line(timeout)
            lines.append(l)
            if l.startswith(tag + b" "):
                return lines

    def close(self):
        self.s.close()


class ImapTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon().start()
        cls.user, cls.password = password_for(cls.d)
        cls.host, cls.port = host_port(cls.d.listeners["imap"])
        cls.tls_host, cls.tls_port = host_port(cls.d.listeners["imaps"])
        cls.ctx = ssl.create_default_context(cafile=os.path.join(cls.d.state_dir, "tls", "cert.pem"))
        cls.ctx.check_hostname = False

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()

    def imap(self, login=True):
        m = imaplib.IMAP4(self.host, self.port, timeout=20)
        self.addCleanup(self._close, m)
        if login:
            m.login(self.user, self.password)
        return m

    def raw(self):
        r = Raw(self.host, self.port)
        self.addCleanup(r.close)
        return r

    @staticmethod
    def _close(m):
        try:
            m.logout()
        except Exception:
            pass

    def test_capabilities_starttls_and_implicit_tls(self):
        m = self.imap(login=False)
        for cap in ("IMAP4REV1", "STARTTLS", "AUTH=PLAIN", "IDLE", "MULTIAPPEND", "UIDPLUS", "MOVE", "LITERAL+",
                    "NAMESPACE",
                    "ID", "ENABLE", "UNSELECT", "SPECIAL-USE", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS",
                    "CONDSTORE", "QRESYNC", "ESEARCH", "SEARCHRES", "SASL-IR", "BINARY", "UTF8=ACCEPT"):
            self.assertIn(cap, m.capabilities)
        self.assertIn("IMAP4REV2", m.capabilities)
        self.assertTrue(any(c.startswith("APPENDLIMIT=") for c in m.capabilities), m.capabilities)
        m.starttls(ssl_context=self.ctx)
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertEqual(m.login(self.user, self.password)[0], "OK")
        s = imaplib.IMAP4_SSL(self.tls_host, self.tls_port, ssl_context=self.ctx, timeout=20)
        self.addCleanup(self._close, s)
        self.assertNotIn("STARTTLS", s.capabilities)
        self.assertEqual(s.login(self.user, self.password)[0], "OK")
        self.assertEqual(s.select("INBOX")[0], "OK")

    def test_wrong_password_and_unknown_user_look_alike(self):
        m = self.imap(login=False)
        with self.assertRaises(imaplib.IMAP4.error) as bad_pass:
            m.login(self.user, "wrong")
        m2 = self.imap(login=False)
        with self.assertRaises(imaplib.IMAP4.error) as bad_user:
            m2.login("nobody@localhost", "wrong")
        self.assertEqual(str(bad_pass.exception), str(bad_user.exception))
        self.assertIn("AUTHENTICATIONFAILED", str(bad_pass.exception))

    def test_authenticate_plain(self):
        m = self.imap(login=False)
        typ, _ = m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (self.user, self.password)).encode())
        self.assertEqual(typ, "OK")
        self.assertEqual(m.state, "AUTH")

    def test_every_command(self):
        m = self.imap()
        self.assertEqual(m.noop()[0], "OK")
        self.assertEqual(m.capability()[0], "OK")
        typ, data = m.namespace()
        self.assertEqual(data, [b'(("" "/")) NIL NIL'])
        typ, data = m.xatom("ID", '("name" "test")')
        self.assertEqual(typ, "OK")
        typ, data = m.list()
        names = b"\n".join(data)
        for box in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"):
            self.assertIn(box, names)
        self.assertIn(b"\\Sent", names)
        self.assertEqual(m.create("Proj/A")[0], "OK")
        self.assertEqual(m.create("Caf\u00e9".encode("utf-7").replace(b"+", b"&").decode())[0], "OK")
        self.assertEqual(m.rename("Proj", "Work")[0], "NO")  # Proj only exists as a path
        self.assertEqual(m.rename("Proj/A", "Work")[0], "OK")
        self.assertEqual(m.subscribe("Work")[0], "OK")
        self.assertEqual(m.unsubscribe("Work")[0], "OK")
        typ, data = m.lsub()
        self.assertNotIn(b"Work", b"\n".join(x for x in data if x))
        typ, data = m.append("Work", "(\\Seen $Label)", imaplib.Time2Internaldate(1700000000), MESSAGE)
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0], rb"\[APPENDUID \d+ 1\]")
        typ, data = m.status("Work", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
        self.assertRegex(data[0], rb"MESSAGES 1 UNSEEN 0 UIDNEXT 2 UIDVALIDITY \d+")
        for _ in range(3):
            m.append("INBOX", None, None, MESSAGE)
        typ, data = m.select("INBOX", readonly=True)  # EXAMINE
        self.assertEqual(typ, "OK")
        self.assertEqual(m.store("1", "+FLAGS", "\\Seen")[0], "NO")
        typ, data = m.select("INBOX")
        count = int(data[0])
        self.assertGreaterEqual(count, 3)
        self.assertEqual(m.check()[0], "OK")
        typ, data = m.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE UID)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"hello imap\"", data[0])
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[]<0.10>)")
        flat = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
        self.assertIn(b"Subject: hello imap", flat)
        self.assertIn(b"first part", flat)
        self.assertIn(b"Content-Type: text/html", flat)
        typ, data = m.fetch("1", "(RFC822)")
        self.assertEqual(data[0][1], MESSAGE)
        # Several whole bodies in one response (read straight into one buffer).
        typ, data = m.fetch("1:*", "(BODY.PEEK[])")
        bodies = [x[1] for x in data if isinstance(x, tuple)]
        self.assertEqual(len(bodies), count)
        self.assertEqual(bodies[-3:], [MESSAGE] * 3)
        # HEADER on a field outside the stored columns reads the stored header blocks.
        typ, data = m.search(None, "HEADER", "Content-Type", "multipart")
        self.assertGreaterEqual(len(data[0].split()), 3)
        typ, data = m.search(None, "HEADER", "X-Not-There", "multipart")
        self.assertEqual(data, [b""])
        typ, data = m.fetch("1", "(FLAGS)")
        self.assertIn(b"\\Seen", data[0])  # RFC822 sets \Seen
        typ, data = m.fetch("1:*", "(RFC822.HEADER RFC822.TEXT BODY BINARY.PEEK[1])")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.store("2", "+FLAGS", "(\\Flagged $Custom)")[0], "OK")
        typ, data = m.search(None, "FLAGGED")
        self.assertEqual(data, [b"2"])
        typ, data = m.search("UTF-8", "OR", "SUBJECT", "nothing", "NOT", "FROM", "nobody", "KEYWORD", "$Custom")
        self.assertEqual(data, [b"2"])
        typ, data = m.search(None, "BODY", "second", "SINCE", "1-Jan-2000", "LARGER", "10")
        self.assertEqual(len(data[0].split()), count)
        typ, data = m.uid("SEARCH", "HEADER", "Message-ID", "imap1")
        self.assertEqual(len(data[0].split()), count)
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
        self.assertEqual(typ, "OK")
        uids = [int(re.search(rb"UID (\d+)", x).group(1)) for x in data]
        self.assertEqual(m.uid("STORE", str(uids[0]), "-FLAGS", "\\Seen")[0], "OK")
        typ, data = m.uid("COPY", str(uids[0]), "Work")
        self.assertEqual(typ, "OK")
        self.assertRegex(m.response("COPYUID")[1][0], rb"^\d+ %d 2$" % uids[0])
        self.assertEqual(m.copy("1:2", "Trash")[0], "OK")
        self.assertEqual(m.copy("1", "Nope")[0], "NO")
        typ, data = m.uid("MOVE", str(uids[-1]), "Archive")
        self.assertEqual(typ, "OK")
        m.store("1", "+FLAGS.SILENT", "\\Deleted")
        typ, data = m.uid("EXPUNGE", str(uids[0]))
        self.assertEqual(typ, "OK")
        m.store("1", "+FLAGS", "\\Deleted")
        typ, data = m.expunge()
        self.assertEqual(typ, "OK")
        self.assertEqual(m.unselect()[0], "OK")
        m.select("Work")
        self.assertEqual(m.close()[0], "OK")
        self.assertEqual(m.enable("CONDSTORE")[0], "OK")
        typ, data = m.select("Work")
        typ, data = m.fetch("1", "(MODSEQ)")
        self.assertRegex(data[0], rb"MODSEQ \(\d+\)")
        typ, data = m._simple_command("LIST", '""', "*", "RETURN", "(STATUS (MESSAGES))")
        self.assertEqual(typ, "OK")
        m.close()
        self.assertEqual(m.delete("Work")[0], "OK")
        self.assertEqual(m.delete("INBOX")[0], "NO")
        typ, data = m.logout()
        self.assertEqual(typ, "BYE")

    def test_utf8_accept_with_imaplib(self):
        """RFC 6855 3: after imaplib's enable('UTF8=ACCEPT') it sends UTF-8 names
        and gets UTF-8 names back; a session that did not enable it still sees
        modified UTF-7 (RFC 3501 5.1.3). RFC 6855 4: APPEND UTF8 (~{n}) stores
        a UTF-8 header. (imaplib's own append() in UTF-8 mode puts "UTF8 (" inside
        a plain literal, so that one command goes over a raw socket.)"""
        m = self.imap()
        self.assertIn("UTF8=ACCEPT", m.capabilities)
        typ, _ = m.enable("UTF8=ACCEPT")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.response("ENABLED"), ("ENABLED", [b"UTF8=ACCEPT"]))
        name = "Caf\u00e9/\u53f0\u5317"
        self.assertEqual(m.create('"%s"' % name)[0], "OK")
        typ, lines = m.list('""', '"Caf\u00e9/*"')
        self.assertEqual(typ, "OK")
        self.assertIn('(\\HasNoChildren) "/" "%s"' % name, [l.decode("utf-8") for l in lines])
        raw = self.raw()
        raw.send(b"a LOGIN %s %s\r\nb ENABLE UTF8=ACCEPT\r\n" % (self.user.encode(), self.password.encode()))
        raw.until_tagged(b"b")
        msg = "From: J\u00fcrgen <j@example.org>\r\nSubject: gr\u00fc\u00dfe\r\n\r\nHallo\r\n".encode("utf-8")
        raw.send(b'c APPEND "%s" (\\Seen) UTF8 (~{%d}\r\n' % (name.encode("utf-8"), len(msg)))
        self.assertEqual(raw.line(), b"+ Ready for literal data")
        raw.send(msg + b")\r\n")
        self.assertRegex(raw.until_tagged(b"c")[-1], rb"^c OK \[APPENDUID \d+ 1\]")
        typ, data = m.status('"%s"' % name, "(MESSAGES)")
        self.assertEqual((typ, data[0].decode("utf-8")), ("OK", '"%s" (MESSAGES 1)' % name))
        self.assertEqual(m.select('"%s"' % name)[0], "OK")
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        self.assertIn("Subject: gr\u00fc\u00dfe".encode("utf-8"), data[0][1])
        self.assertEqual(data[1][1], msg)
        self.assertEqual(m.search(None, "SUBJECT", '"gr\u00fc\u00dfe"'), ("OK", [b"1"]))
        old = self.imap()  # no ENABLE: modified UTF-7
        typ, lines = old.list('""', "Caf*")
        self.assertIn(b'(\\HasNoChildren) "/" Caf&AOk-/&U,BTFw-', lines)
        self.assertEqual(old.select("Caf&AOk-/&U,BTFw-")[0], "OK")
        self.assertEqual(m.close()[0], "OK")
        self.assertEqual(m.delete('"%s"' % name)[0], "OK")

    def test_imap4rev2_session(self):
        """RFC 9051 against the real daemon: ENABLE IMAP4rev2 (6.3.1), SELECT with
        LIST and without RECENT (6.3.2), SEARCH answered by ESEARCH (6.4.4),
        SEARCHRES "$" (RFC 5182), OK [CLOSED] when SELECT leaves a mailbox."""
        r = self.raw()
        r.send(b"a LOGIN %s %s\r\nb CREATE Rev2\r\n" % (self.user.encode(), self.password.encode()))
        r.until_tagged(b"b")
        for i in range(3):
            r.send(b"c%d APPEND Rev2 {%d+}\r\n%s\r\n" % (i, len(MESSAGE), MESSAGE))
            r.until_tagged(b"c%d" % i)
        r.send(b"d ENABLE IMAP4rev2\r\n")
        self.assertEqual(r.until_tagged(b"d"), [b"* ENABLED IMAP4rev2", b"d OK ENABLE completed"])
        r.send(b"e SELECT Rev2\r\n")
        sel = r.until_tagged(b"e")
        self.assertIn(b'* LIST (\\HasNoChildren) "/" Rev2', sel)
        self.assertFalse([l for l in sel if b"RECENT" in l], sel)
        r.send(b"f STORE 2 +FLAGS.SILENT (\\Flagged)\r\ng SEARCH RETURN (SAVE) FLAGGED\r\nh UID SEARCH ALL\r\n")
        r.until_tagged(b"f")
        self.assertEqual(r.until_tagged(b"g"), [b"g OK SEARCH completed"])
        self.assertEqual(r.until_tagged(b"h"), [b'* ESEARCH (TAG "h") UID ALL 1:3', b"h OK UID SEARCH completed"])
        r.send(b"i FETCH $ (UID FLAGS)\r\n")
        self.assertEqual(r.until_tagged(b"i"), [b"* 2 FETCH (UID 2 FLAGS (\\Flagged))", b"i OK FETCH completed"])
        r.send(b"j SELECT INBOX\r\n")
        self.assertTrue(r.until_tagged(b"j")[0].startswith(b"* OK [CLOSED]"))
        r.send(b"k DELETE Rev2\r\n")
        self.assertEqual(r.until_tagged(b"k")[-1], b"k OK DELETE completed")

    def test_two_sessions_see_each_others_changes(self):
        a, b = self.imap(), self.imap()
        a.create("Shared")
        for _ in range(2):
            a.append("Shared", None, None, MESSAGE)
        a.select("Shared")
        b.select("Shared")
        a.untagged_responses.clear()
        b.append("Shared", None, None, MESSAGE)
        a.noop()
        self.assertEqual(a.untagged_responses.pop("EXISTS", None), [b"3"])
        b.store("2", "+FLAGS", "\\Flagged")
        a.noop()
        self.assertIn(b"2 (FLAGS (\\Flagged))", a.untagged_responses.pop("FETCH", []))
        b.store("1", "+FLAGS", "\\Deleted")
        b.expunge()
        a.noop()
        self.assertEqual(a.untagged_responses.pop("EXPUNGE", None), [b"1"])
        # IDLE: a new APPEND reaches the idling session without any command
        # from it. The latency is printed, not asserted (the target is under a
        # second; tests never assert on wall-clock time, and CI machines are
        # loaded): the generous timeout only keeps a lost update from hanging.
        r = self.raw()
        r.send(b"a LOGIN %s %s\r\n" % (self.user.encode(), self.password.encode()))
        r.until_tagged(b"a")
        r.send(b"b SELECT Shared\r\n")
        r.until_tagged(b"b")
        r.send(b"c IDLE\r\n")
        self.assertEqual(r.line(), b"+ idling")
        t0 = time.monotonic()
        b.append("Shared", None, None, MESSAGE)
        self.assertEqual(r.line(timeout=15.0), b"* 3 EXISTS")
        print("\nIDLE: EXISTS %.1f ms after the other session's APPEND" % ((time.monotonic() - t0) * 1000))
        r.send(b"DONE\r\n")
        self.assertEqual(r.line(), b"c OK IDLE terminated")

    def test_bad_input_keeps_connection(self):
        r = self.raw()
        r.send(b"a LOGIN %s %s\r\n" % (self.user.encode(), self.password.encode()))
        r.until_tagged(b"a")
        r.send(b"b NOOP " + b"x" * 200000 + b"\r\n")
        self.assertTrue(r.until_tagged(b"b")[-1].startswith(b"b BAD"))
        r.send(b"c APPEND INBOX {999999999999}\r\n")
        self.assertRegex(r.until_tagged(b"c")[-1], rb"^c (NO \[TOOBIG\]|BAD)")
        r.send(b"d NOOP\nz FROB\r\n\x00\xff\r\n")
        self.assertTrue(r.until_tagged(b"d")[-1].startswith(b"d OK"))
        self.assertTrue(r.until_tagged(b"z")[-1].startswith(b"z BAD"))
        r.send(b"e FETCH 1 FLAGS\r\n")
        self.assertTrue(r.until_tagged(b"e")[-1].startswith(b"e BAD"))
        r.send(b"f NOOP\r\n")
        self.assertEqual(r.until_tagged(b"f")[-1], b"f OK NOOP completed")

    def test_smtp_local_delivery_wakes_idle(self):
        import smtplib
        r = self.raw()
        r.send(b"a LOGIN %s %s\r\nb SELECT INBOX\r\n" % (self.user.encode(), self.password.encode()))
        lines = r.until_tagged(b"b")
        exists = int([l for l in lines if l.endswith(b" EXISTS")][0].split()[1])
        r.send(b"c IDLE\r\n")
        self.assertEqual(r.line(), b"+ idling")
        s = smtplib.SMTP(*host_port(self.d.listeners["smtp"]), timeout=20)
        s.login(self.user, self.password)
        s.sendmail("me@localhost", ["me@localhost"], MESSAGE)
        s.quit()
        self.assertEqual(r.line(timeout=2.0), b"* %d EXISTS" % (exists + 1))
        r.send(b"DONE\r\n")
        r.until_tagged(b"c")


class ImapLimitsTest(unittest.TestCase):
    """Configured limits of the real daemon, and MULTIAPPEND (RFC 3502)."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(config={"imap": {"listen": "127.0.0.1:0", "tls_listen": "127.0.0.1:0",
                                        "max_connections_per_account": 2, "max_literal_size": 4096}}).start()
        cls.user, cls.password = password_for(cls.d)
        cls.host, cls.port = host_port(cls.d.listeners["imap"])

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()

    def login(self):
        r = Raw(self.host, self.port)
        self.addCleanup(r.close)
        r.send(b"a LOGIN %s %s\r\n" % (self.user.encode(), self.password.encode()))
        return r, r.until_tagged(b"a")[-1]

    def test_max_connections_per_account(self):
        first, ok1 = self.login()
        second, ok2 = self.login()
        self.assertTrue(ok1.startswith(b"a OK") and ok2.startswith(b"a OK"), (ok1, ok2))
        third, refused = self.login()
        self.assertTrue(refused.startswith(b"a NO [LIMIT]"), refused)
        third.send(b"b NOOP\r\n")  # refused login, connection kept
        self.assertEqual(third.until_tagged(b"b")[-1], b"b OK NOOP completed")
        first.send(b"z LOGOUT\r\n")
        first.until_tagged(b"z")
        deadline = time.monotonic() + 10
        while True:  # the server notices the close asynchronously
            third.send(b"c LOGIN %s %s\r\n" % (self.user.encode(), self.password.encode()))
            answer = third.until_tagged(b"c")[-1]
            if answer.startswith(b"c OK") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(answer.startswith(b"c OK"), answer)

    def test_literal_over_limit_is_toobig_and_connection_kept(self):
        r, ok = self.login()
        r.send(b"b APPEND INBOX {4097}\r\n")
        self.assertTrue(r.until_tagged(b"b")[-1].startswith(b"b NO [TOOBIG]"))
        # Non-synchronizing: the server cannot refuse before the bytes come;
        # it answers and reads past them (RFC 7888 4), or closes.
        r.send(b"c APPEND INBOX {4097+}\r\n" + b"x" * 4097 + b"\r\nd NOOP\r\n")
        self.assertRegex(r.until_tagged(b"c")[-1], rb"^c (NO|BAD) \[TOOBIG\]")
        self.assertEqual(r.until_tagged(b"d")[-1], b"d OK NOOP completed")

    def test_multiappend_all_or_nothing(self):
        r, ok = self.login()
        r.send(b"b CREATE Multi\r\n")
        r.until_tagged(b"b")
        m1, m2 = MESSAGE, MESSAGE.replace(b"hello imap", b"second one")
        # A refusable second message: nothing of the command is stored.
        r.send(b"c APPEND Multi (\\Seen) {%d+}\r\n%s (\\Bogus) {%d+}\r\n%s\r\n" % (len(m1), m1, len(m2), m2))
        self.assertTrue(r.until_tagged(b"c")[-1].startswith(b"c BAD"))
        r.send(b"d STATUS Multi (MESSAGES)\r\n")
        self.assertIn(b"* STATUS Multi (MESSAGES 0)", r.until_tagged(b"d"))
        r.send(b"e APPEND Multi (\\Seen) {%d}\r\n" % len(m1))
        self.assertEqual(r.line(), b"+ Ready for literal data")
        r.send(m1 + b" (\\Flagged) \"01-Jan-2020 10:00:00 +0100\" {%d}\r\n" % len(m2))
        self.assertEqual(r.line(), b"+ Ready for literal data")
        r.send(m2 + b"\r\n")
        self.assertRegex(r.until_tagged(b"e")[-1], rb"^e OK \[APPENDUID \d+ 1:2\]")
        r.send(b"f SELECT Multi\r\ng FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
        r.until_tagged(b"f")
        out = b"\n".join(r.until_tagged(b"g"))
        self.assertIn(b"FLAGS (\\Seen)", out)
        self.assertIn(b"FLAGS (\\Flagged) INTERNALDATE \"01-Jan-2020 09:00:00 +0000\"", out)
        self.assertIn(b"Subject: second one", out)


class ImapDurabilityTest(unittest.TestCase):
    def test_kill9_mid_append_loses_nothing_acknowledged(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        user, password = password_for(d)
        host, port = host_port(d.listeners["imap"])
        m = imaplib.IMAP4(host, port, timeout=20)
        m.login(user, password)
        acked = []
        for i in range(20):
            msg = MESSAGE.replace(b"hello imap", b"msg %d" % i)
            typ, data = m.append("INBOX", None, None, msg)
            self.assertEqual(typ, "OK")
            acked.append(int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1)))
        # One more in flight: the literal is half sent when the daemon dies.
        sock = m.sock
        sock.sendall(b"z APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE[:50])
        d.kill()
        d.start()
        m2 = imaplib.IMAP4(*host_port(d.listeners["imap"]), timeout=20)
        m2.login(user, password)
        m2.select("INBOX")
        typ, data = m2.uid("SEARCH", "ALL")
        uids = [int(x) for x in data[0].split()]
        for u in acked:
            self.assertIn(u, uids)
        typ, data = m2.uid("FETCH", str(acked[-1]), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"msg 19", data[0][1])
        m2.logout()
        d.stop()

    def test_search_header_follows_append_expunge_copy_move_and_restart(self):
        """SEARCH HEADER answers from a per-field cache after its first use:
        it must see what other sessions APPEND, EXPUNGE, COPY and MOVE, and be
        the same after a restart (RFC 3501 6.4.4: substring, any case, RFC
        2047 decoded)."""
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        user, password = password_for(d)

        def login():
            m = imaplib.IMAP4(*host_port(d.listeners["imap"]), timeout=20)
            m.login(user, password)
            return m

        def tagged(i, tag):
            return (b"Subject: %d\r\nX-Tag: %s\r\nX-Tag: other %d\r\n\r\nbody\r\n" % (i, tag, i))

        m, other = login(), login()
        for i in range(1, 7):
            m.append("INBOX", None, None, tagged(i, b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= needle" if i % 2 else b"hay"))
        m.select("INBOX")

        def search(*key):
            typ, data = m.uid("SEARCH", *key)
            self.assertEqual(typ, "OK")
            return [int(x) for x in data[0].split()]

        self.assertEqual(search("HEADER", "X-Tag", "NEEDLE"), [1, 3, 5])
        m.literal = "GR\u00dcSSE".encode()  # 8-bit: a literal; folds to "grüsse" like "Grüße"
        self.assertEqual(search("CHARSET", "UTF-8", "HEADER", "x-tag"), [1, 3, 5])
        self.assertEqual(search("HEADER", "X-Tag", "er 4"), [4])  # the second value
        self.assertEqual(search("HEADER", "X-Tag", "needleother"), [])  # never across two values
        self.assertEqual(search("HEADER", "X-Tag", '""'), [1, 2, 3, 4, 5, 6])
        self.assertEqual(search("OR", "HEADER", "X-Tag", "hay", "HEADER", "Subject", "5"), [2, 4, 5, 6])
        # Another session appends, expunges, moves and copies.
        other.select("INBOX")
        other.append("INBOX", None, None, tagged(7, b"late needle"))
        other.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        other.expunge()
        self.assertEqual(other.uid("MOVE", "3", "Trash")[0], "OK")
        self.assertEqual(other.uid("COPY", "5", "INBOX")[0], "OK")
        m.noop()
        self.assertEqual(search("HEADER", "X-Tag", "needle"), [5, 7, 8])
        other.select("Trash")
        self.assertEqual([int(x) for x in other.uid("SEARCH", "HEADER", "X-Tag", "needle")[1][0].split()], [1])
        m.logout()
        other.logout()
        d.stop()
        d.start()
        m = login()
        m.select("INBOX")
        self.assertEqual(search("HEADER", "X-Tag", "needle"), [5, 7, 8])
        self.assertEqual(search("NOT", "HEADER", "X-Tag", "needle"), [2, 4, 6])
        m.logout()
        d.stop()

    def test_configured_listener_in_use_exits_1(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        d = Daemon(config={"imap": {"listen": "127.0.0.1:%d" % port, "tls_listen": "127.0.0.1:0"}})
        self.addCleanup(d.cleanup)
        with self.assertRaises(RuntimeError) as ctx:
            d.start()
        self.assertEqual(d.proc.returncode, 1)
        self.assertIn("imap listener 127.0.0.1:%d: address already in use" % port, str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
