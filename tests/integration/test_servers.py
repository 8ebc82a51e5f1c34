"""Self-tests of servers.py: the real Dovecot and Postfix harness that later
integration tests and benchmarks build on. Needs root and the packages from
`scripts/deps.sh --test`; skips nothing."""
import imaplib
import os
import poplib
import smtplib
import ssl
import subprocess
import time
import unittest

import servers
from servers import Dovecot, Postfix

PLAIN_CTX = ssl._create_unverified_context()  # self-signed test certs


def msg(subject, body=b"Hello there.\r\nSecond line.\r\n"):
    return (b"From: Sender <sender@remote.test>\r\nTo: someone@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\nMessage-ID: <" + subject.encode() + b"@remote.test>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)


def caps(conn):
    typ, data = conn.capability()
    return set(data[0].decode().upper().split())


def submit(pf, user, password, rcpts, raw, sender="sender@remote.test"):
    """STARTTLS + AUTH PLAIN submission; returns smtplib's refused dict."""
    with smtplib.SMTP("127.0.0.1", pf.smtp_port, timeout=15) as s:
        s.starttls(context=PLAIN_CTX)
        s.ehlo()
        s.user, s.password = user, password
        code, _ = s.auth("PLAIN", s.auth_plain)
        assert code == 235, code
        return s.sendmail(sender, rcpts, raw)


def rcpt_code(pf, rcpt, auth=("alice", "alice-pw")):
    """The reply code to RCPT TO:<rcpt> on a new connection."""
    with smtplib.SMTP("127.0.0.1", pf.smtp_port, timeout=15) as s:
        s.starttls(context=PLAIN_CTX)
        s.ehlo()
        if auth:
            s.login(*auth)
        s.mail("sender@remote.test")
        code, _ = s.rcpt(rcpt)
        s.rset()
        return code


class DovecotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dc = Dovecot(condstore=True, pop3=True, lmtp=True)
        cls.addClassCleanup(cls.dc.cleanup)
        cls.dc.add_user("alice", "alice-pw")
        cls.dc.add_user("pop@example.test", "pop-pw")
        cls.dc.start()

    def test_append_then_fetch_byte_identical(self):
        raw = msg("append-1", b"Body with CRLF\r\n\r\nand a blank line\r\n")
        c = self.dc.imap("alice")
        self.addCleanup(c.logout)
        typ, data = c.append(servers.imap_mailbox("Drafts"), r"(\Draft)", None, raw)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(servers.fetch_all_imap(c, "Drafts"), [raw])

    def test_special_use_mailboxes_autocreated(self):
        c = self.dc.imap("alice")
        self.addCleanup(c.logout)
        typ, data = c.list()
        listing = b"\n".join(data).decode()
        for name, flag in servers.SPECIAL_USE:
            self.assertRegex(listing, r"\(.*\%s.*\) \"/\" %s\b" % (flag, name))

    def test_condstore_advertised_and_enabled(self):
        c = self.dc.imap("alice")
        self.addCleanup(c.logout)
        self.assertTrue({"CONDSTORE", "QRESYNC", "SPECIAL-USE", "MOVE", "UIDPLUS"} <= caps(c))
        typ, data = c._simple_command("ENABLE", "CONDSTORE")
        self.assertEqual(typ, "OK")
        self.assertIn(b"CONDSTORE", b" ".join(c.untagged_responses.get("ENABLED", [])))

    def test_deliver_with_flags_and_wait(self):
        raw = msg("deliver-1")
        uid = self.dc.deliver("alice", raw, mailbox="Archive", flags=(r"\Seen", r"\Flagged"))
        self.assertIsInstance(uid, int)
        self.assertIn(raw, self.dc.wait_for_messages("alice", "Archive", count=1, timeout=5))
        c = self.dc.imap("alice")
        self.addCleanup(c.logout)
        c.select("Archive", readonly=True)
        typ, data = c.uid("FETCH", str(uid), "(FLAGS)")
        self.assertIn(b"\\Seen", data[0])
        self.assertIn(b"\\Flagged", data[0])

    def test_wait_for_messages_times_out(self):
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            self.dc.wait_for_messages("alice", "Junk", count=1, timeout=0.3)
        self.assertLess(time.monotonic() - t0, 15)  # it gave up instead of hanging (not a timing check)

    def test_add_user_after_start(self):
        self.dc.add_user("late", "late-pw")
        c = self.dc.imap("late")
        c.logout()
        self.dc.add_user("late", "changed-pw")   # password change within the same second
        c = self.dc.imap("late")
        c.logout()
        c = imaplib.IMAP4("127.0.0.1", self.dc.imap_port, timeout=5)
        self.addCleanup(c.shutdown)
        with self.assertRaises(imaplib.IMAP4.error):
            c.login("late", "late-pw")

    def test_pop3_login_and_stat(self):
        raws = [msg("pop-1"), msg("pop-2")]
        for r in raws:
            self.dc.deliver("pop@example.test", r)
        p = poplib.POP3("127.0.0.1", self.dc.pop3_port, timeout=10)
        try:
            p.user("pop@example.test")
            p.pass_("pop-pw")
            count, size = p.stat()
            self.assertEqual(count, 2)
            self.assertEqual(size, sum(len(r) for r in raws))
        finally:
            p.quit()

    def test_bulk_load(self):
        n = 2000
        raws = [msg("bulk-%d" % i, b"line\n" * (i % 7 + 1)) for i in range(n)]  # bare LF too
        items = [(r, (r"\Seen",) if i % 2 else (), 1600000000 + i) for i, r in enumerate(raws)]
        t0 = time.monotonic()
        self.assertEqual(self.dc.bulk_load("alice", items, mailbox="Bulk/Sub \u00e9t\u00e9"), n)
        took = time.monotonic() - t0
        print("\nbulk_load: %d msgs in %.2fs (%.0f msg/s)" % (n, took, n / took))
        c = self.dc.imap("alice")
        self.addCleanup(c.logout)
        box = servers.imap_mailbox("Bulk/Sub \u00e9t\u00e9")
        typ, data = c.select(box, readonly=True)
        self.assertEqual((typ, int(data[0])), ("OK", n))
        typ, data = c.fetch("1,2,%d" % n, "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])")
        got = [d for d in data if isinstance(d, tuple)]
        crlf = [r.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for r in raws]
        self.assertEqual([g[1] for g in got], [crlf[0], crlf[1], crlf[-1]])  # UID order = load order
        self.assertNotIn(b"\\Seen", got[0][0])
        self.assertIn(b"\\Seen", got[1][0])
        # RFC822.SIZE counts CRLF line ends, as Dovecot serves them
        self.assertIn(b"RFC822.SIZE %d" % len(crlf[0]), got[0][0])
        self.assertIn(b"13-Sep-2020", got[0][0])


class NoCondstoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dc = Dovecot(condstore=False, pop3=False, lmtp=False)
        cls.addClassCleanup(cls.dc.cleanup)
        cls.dc.add_user("alice", "alice-pw")
        cls.dc.start()

    def test_not_advertised_before_or_after_login(self):
        c = imaplib.IMAP4("127.0.0.1", self.dc.imap_port, timeout=10)
        self.addCleanup(c.logout)
        self.assertNotIn("CONDSTORE", caps(c))
        c.login("alice", "alice-pw")
        after = caps(c)
        self.assertIn("IMAP4REV1", after)
        self.assertIn("SPECIAL-USE", after)
        self.assertFalse({"CONDSTORE", "QRESYNC"} & after, after)
        self.assertIsNone(self.dc.pop3_port)
        self.assertIsNone(self.dc.lmtp_port)

    def test_enable_condstore_is_ignored_and_modseq_refused(self):
        self.dc.deliver("alice", msg("nc-1"))
        c = self.dc.imap("alice")
        self.addCleanup(c.logout)
        typ, _ = c._simple_command("ENABLE", "CONDSTORE", "QRESYNC")
        self.assertEqual(typ, "OK")
        self.assertNotIn("ENABLED", c.untagged_responses)
        c.select("INBOX")
        self.assertFalse(any(b"MODSEQ" in d for d in c.untagged_responses.get("OK", [])))
        for cmd in (("FETCH", "1", "(UID MODSEQ)"), ("FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE 1)"),
                    ("STATUS", "INBOX", "(MESSAGES HIGHESTMODSEQ)")):
            with self.assertRaises(imaplib.IMAP4.error, msg=cmd):
                c._simple_command(*cmd)

    def test_literals_pass_the_filter_intact(self):
        raw = msg("nc-literal", b"A body that mentions MODSEQ and CONDSTORE\r\n{5}\r\nand a literal marker\r\n")
        c = self.dc.imap("alice")
        self.addCleanup(c.logout)
        typ, data = c.append("Trash", None, None, raw)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(servers.fetch_all_imap(c, "Trash"), [raw])


class PostfixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dc = Dovecot(pop3=False)
        cls.addClassCleanup(cls.dc.cleanup)
        cls.dc.add_user("alice", "alice-pw")
        cls.dc.add_user("bob", "bob-pw")
        cls.dc.start()
        cls.pf = Postfix(cls.dc)
        cls.addClassCleanup(cls.pf.cleanup)   # runs before dc.cleanup: Postfix stops first
        cls.pf.start()

    def tearDown(self):
        self.pf.clear()

    def test_submit_starttls_auth_plain_arrives_byte_identical(self):
        body = b"Exact body bytes.\r\n\tTabbed line\r\n.leading dot\r\n\r\nlast\r\n"
        raw = msg("smtp-1", body)
        self.assertEqual(submit(self.pf, "alice", "alice-pw", ["bob@example.test"], raw), {})
        got = self.dc.wait_for_messages("bob", count=1, timeout=10)
        mine = [g for g in got if b"Message-ID: <smtp-1@remote.test>" in g]
        self.assertEqual(len(mine), 1)
        self.assertEqual(servers.split_message(mine[0])[1], body)
        self.assertIn(b"Delivered-To: bob@example.test", mine[0])

    def test_unknown_recipient_550_at_rcpt(self):
        self.assertEqual(rcpt_code(self.pf, "nobody@example.test"), 550)

    def test_everything_needs_auth(self):
        # smtpd_relay_restrictions = permit_sasl_authenticated, reject: a pure
        # submission server, even for local recipients.
        self.assertEqual(rcpt_code(self.pf, "someone@elsewhere.test", auth=None), 554)
        self.assertEqual(rcpt_code(self.pf, "bob@example.test", auth=None), 554)

    def test_defer_reject_clear_knobs(self):
        self.pf.defer("bob@example.test")
        self.assertEqual(rcpt_code(self.pf, "bob@example.test"), 450)
        self.pf.reject("bob@example.test")
        self.assertEqual(rcpt_code(self.pf, "bob@example.test"), 550)
        self.pf.clear()
        self.assertEqual(rcpt_code(self.pf, "bob@example.test"), 250)
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
            self.pf.defer("alice@example.test")
            submit(self.pf, "bob", "bob-pw", ["alice@example.test"], msg("deferred"))
        code, text = cm.exception.recipients["alice@example.test"]
        self.assertEqual(code, 450)
        self.assertIn(b"4.2.0", text)

    def test_wrong_password_refused(self):
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            submit(self.pf, "alice", "wrong", ["bob@example.test"], msg("nope"))

    def test_user_added_after_start_receives_mail(self):
        self.dc.add_user("carol", "carol-pw")
        self.assertEqual(submit(self.pf, "alice", "alice-pw", ["carol@example.test"], msg("late-user")), {})
        self.assertEqual(len(self.dc.wait_for_messages("carol", count=1, timeout=10)), 1)

    def test_swaks(self):
        p = subprocess.run([servers.SWAKS, "--server", "127.0.0.1", "--port", str(self.pf.smtp_port),
                            "--tls", "--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "bob-pw",
                            "--from", "bob@example.test", "--to", "alice@example.test",
                            "--header", "Subject: via-swaks", "--body", "swaks body"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        got = self.dc.wait_for_messages("alice", count=1, timeout=10)
        self.assertTrue(any(b"Subject: via-swaks" in g for g in got))

    def test_tool_paths(self):
        for path in (servers.SMTP_SOURCE, servers.SMTP_SINK, servers.SWAKS, servers.DOVEADM):
            self.assertTrue(os.access(path, os.X_OK), path)


class LifecycleTest(unittest.TestCase):
    def test_stop_leaves_no_process_behind(self):
        dc = Dovecot(users={"alice": "alice-pw"})
        self.addCleanup(dc.cleanup)
        pf = Postfix(dc)
        self.addCleanup(pf.cleanup)
        t0 = time.monotonic()
        dc.start()
        pf.start()
        started = time.monotonic() - t0
        # exercise them so that worker processes exist
        self.assertEqual(submit(pf, "alice", "alice-pw", ["alice@example.test"], msg("life")), {})
        dc.wait_for_messages("alice", count=1, timeout=10)
        c = dc.imap("alice")          # left open on purpose: stop() must cope
        pids = dc.pids() + pf.pids()
        self.assertGreater(len(pids), 5)
        pf_stop = pf.stop()
        dc_stop = dc.stop()
        print("\nstart dovecot %.2fs + postfix %.2fs (%.2fs); stop postfix %.2fs, dovecot %.2fs"
              % (dc.start_seconds, pf.start_seconds, started, pf_stop, dc_stop))
        alive = [p for p in pids if servers.pid_alive(p)]
        self.assertEqual(alive, [])
        for p in pids:
            try:
                os.kill(p, 0)
                self.assertTrue(not os.path.exists("/proc/%d" % p)
                                or servers._proc_stat(p)[0] == "Z", p)
            except ProcessLookupError:
                pass
        self.assertEqual(servers.session_members(dc.proc.pid), [])
        self.assertEqual(servers.session_members(pf.proc.pid), [])
        self.assertFalse(dc.running() or pf.running())
        try:
            c.logout()
        except Exception:
            pass


if __name__ == "__main__":
    unittest.main()
