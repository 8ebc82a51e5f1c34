"""Local SMTP submission of the real mailbridged: AUTH, STARTTLS, implicit TLS,
sender checks, bad input, local-account delivery into the INBOX, and the
durability promise (kill -9 right after 250 loses and duplicates nothing).
Relay tests against a real Postfix upstream are in test_smtp_relay.py."""
import os
import signal
import smtplib
import socket
import sqlite3
import ssl
import time
import unittest

from harness import Daemon

ACCOUNTS = [{"name": "local", "address": "me@localhost", "aliases": ["Alias@Localhost"]},
            {"name": "other", "address": "you@localhost"}]


def stored_messages(state_dir, account, mailbox="INBOX"):
    """Raw bytes of the messages in a local mailbox, read from the store."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "mailbridge.db"), uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT m.blob_id FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id "
            "JOIN accounts a ON b.account_id = a.id WHERE a.name = ? AND b.name = ? ORDER BY m.uid",
            (account, mailbox)).fetchall()
    finally:
        db.close()
    out = []
    for (blob,) in rows:
        with open(os.path.join(state_dir, "blobs", blob[:2], blob[2:]), "rb") as f:
            out.append(f.read())
    return out


def parse_dsn(testcase, raw):
    """Checks an RFC 3464 report by parsing it (not by substrings) and returns
    (per-message fields, [per-recipient fields], returned header block)."""
    import email
    import email.policy
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    testcase.assertEqual(msg.get_content_type(), "multipart/report")
    testcase.assertEqual(msg.get_param("report-type"), "delivery-status")  # RFC 3462 / 6522
    testcase.assertEqual(msg["Auto-Submitted"], "auto-replied")  # RFC 3834: no auto-reply loops
    for h in ("From", "Date", "Message-ID", "Subject"):
        testcase.assertTrue(msg[h], h)
    parts = msg.get_payload()
    testcase.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
    blocks = parts[1].get_payload()  # RFC 3464 2.1: per-message block, then one per recipient
    testcase.assertGreaterEqual(len(blocks), 2)
    per_message, recipients = blocks[0], blocks[1:]
    testcase.assertRegex(per_message["Reporting-MTA"], r"^dns; \S+$")  # required (2.2.2)
    for r in recipients:
        testcase.assertRegex(r["Final-Recipient"], r"^rfc822; \S+@\S+$")  # required (2.3.2)
        testcase.assertEqual(r["Action"], "failed")  # required (2.3.3)
        testcase.assertRegex(r["Status"], r"^[245]\.\d{1,3}\.\d{1,3}$")  # required (2.3.4)
    returned = email.message_from_string(parts[2].get_payload())
    return per_message, recipients, returned


def password_for(d, name):
    status, body = d.api("GET", "/v1/accounts")
    [acct] = [a for a in body["accounts"] if a["name"] == name]
    status, creds = d.api("POST", "/v1/accounts/%d/password" % acct["id"])
    assert status == 200, creds
    return creds["username"], creds["password"]


def host_port(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


MESSAGE = (b"From: Me <me@localhost>\r\nTo: You <you@localhost>\r\nSubject: hello\r\n"
           b"Message-ID: <t1@localhost>\r\n\r\nLine one\r\n.leading dot\r\n..two dots\r\n\xc3\xa9t\xc3\xa9\r\n")


class SmtpSubmissionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(config={"accounts": ACCOUNTS}).start()
        cls.user, cls.password = password_for(cls.d, "local")
        cls.host, cls.port = host_port(cls.d.listeners["smtp"])
        cls.tls_host, cls.tls_port = host_port(cls.d.listeners["smtps"])
        cls.ctx = ssl.create_default_context(cafile=os.path.join(cls.d.state_dir, "tls", "cert.pem"))
        cls.ctx.check_hostname = False

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()

    def smtp(self):
        s = smtplib.SMTP(self.host, self.port, timeout=20)
        self.addCleanup(s.close)
        return s

    def wait_count(self, account, n, mailbox="INBOX", timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            msgs = stored_messages(self.d.state_dir, account, mailbox)
            if len(msgs) >= n or time.monotonic() > deadline:
                return msgs
            time.sleep(0.05)

    def test_ehlo_advertises_extensions(self):
        s = self.smtp()
        code, text = s.ehlo("client.test")
        self.assertEqual(code, 250)
        for ext in ("pipelining", "8bitmime", "size", "enhancedstatuscodes", "smtputf8", "starttls", "auth"):
            self.assertTrue(s.has_extn(ext), ext)
        self.assertIn("PLAIN", s.esmtp_features["auth"])
        self.assertIn("LOGIN", s.esmtp_features["auth"])
        self.assertEqual(s.verify("someone")[0], 252)  # RFC 5321 3.5.3: cannot verify, will try
        self.assertEqual(s.noop()[0], 250)

    def test_plain_auth_delivers_locally_byte_identical(self):
        before_you = len(stored_messages(self.d.state_dir, "other"))
        before_me = len(stored_messages(self.d.state_dir, "local"))
        before_sent = len(stored_messages(self.d.state_dir, "local", "Sent"))
        s = self.smtp()
        s.ehlo()
        s.login(self.user, self.password)  # smtplib prefers PLAIN here
        refused = s.sendmail("me@localhost", ["you@localhost", "me@localhost", "ME@localhost"], MESSAGE)
        self.assertEqual(refused, {})
        s.quit()
        you = self.wait_count("other", before_you + 1)
        me = self.wait_count("local", before_me + 1)
        self.assertEqual(you[-1], MESSAGE)
        self.assertEqual(me[-1], MESSAGE)
        self.assertEqual(len(me), before_me + 1)  # me@ and ME@ are one mailbox: one copy
        self.assertEqual(len(stored_messages(self.d.state_dir, "local", "Sent")), before_sent + 1)

    def test_auth_login_and_alias_sender(self):
        s = self.smtp()
        s.ehlo()
        s.user, s.password = self.user, self.password
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        self.assertEqual(code, 235)
        self.assertEqual(s.mail("alias@localhost")[0], 250)
        self.assertEqual(s.rcpt("you@localhost")[0], 250)
        self.assertEqual(s.data(b"Subject: alias\r\n\r\nbody\r\n")[0], 250)

    def test_starttls_then_auth(self):
        s = self.smtp()
        s.starttls(context=self.ctx)
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"))
        s.login(self.user, self.password)
        self.assertEqual(s.sendmail("me@localhost", ["you@localhost"], b"Subject: tls\r\n\r\nover starttls\r\n"), {})

    def test_implicit_tls(self):
        s = smtplib.SMTP_SSL(self.tls_host, self.tls_port, context=self.ctx, timeout=20)
        self.addCleanup(s.close)
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"))
        s.login(self.user, self.password)
        self.assertEqual(s.sendmail("me@localhost", ["you@localhost"], b"Subject: smtps\r\n\r\nimplicit\r\n"), {})

    def test_auth_required_before_mail(self):
        s = self.smtp()
        s.ehlo()
        code, text = s.mail("me@localhost")
        self.assertEqual(code, 530)
        self.assertTrue(text.startswith(b"5.7.0"), text)

    def test_wrong_password_is_535(self):
        s = self.smtp()
        s.ehlo()
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            s.login(self.user, "wrong-password")
        self.assertEqual(cm.exception.smtp_code, 535)

    def test_foreign_sender_is_553(self):
        s = self.smtp()
        s.ehlo()
        s.login(self.user, self.password)
        code, text = s.mail("you@localhost")  # another account's address
        self.assertEqual(code, 553)
        self.assertTrue(text.startswith(b"5.7.1"), text)
        self.assertEqual(s.mail("nobody@example.com")[0], 553)
        self.assertEqual(s.mail("me@localhost")[0], 250)  # the session is still sane

    def raw_session(self):
        sock = socket.create_connection((self.host, self.port), timeout=20)
        self.addCleanup(sock.close)
        f = sock.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline()
                lines.append(line)
                if len(line) < 4 or line[3:4] != b"-":
                    return lines
        reply()  # greeting
        import base64
        auth = base64.b64encode(b"\0" + self.user.encode() + b"\0" + self.password.encode())
        sock.sendall(b"EHLO raw\r\n")
        reply()
        sock.sendall(b"AUTH PLAIN " + auth + b"\r\n")
        self.assertTrue(reply()[-1].startswith(b"235"))
        return sock, reply

    def test_bare_lf_in_data_is_refused_and_nothing_stored(self):
        before = len(stored_messages(self.d.state_dir, "other"))
        sock, reply = self.raw_session()
        sock.sendall(b"MAIL FROM:<me@localhost>\r\nRCPT TO:<you@localhost>\r\nDATA\r\n")
        self.assertTrue(reply()[-1].startswith(b"250"))
        self.assertTrue(reply()[-1].startswith(b"250"))
        self.assertTrue(reply()[-1].startswith(b"354"))
        # SMTP smuggling: "\n.\n" must not end the message, and a bare LF taints it.
        sock.sendall(b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<me@localhost>\r\n.\r\n")
        end = reply()[-1]
        self.assertTrue(end.startswith(b"5"), end)
        sock.sendall(b"NOOP\r\n")
        self.assertTrue(reply()[-1].startswith(b"250"))  # still sane
        time.sleep(0.2)
        self.assertEqual(len(stored_messages(self.d.state_dir, "other")), before)

    def test_overlong_line_and_garbage(self):
        sock, reply = self.raw_session()
        sock.sendall(b"NOOP " + b"x" * 5000 + b"\r\n")
        self.assertTrue(reply()[-1].startswith(b"500 5.5."), "overlong line")
        sock.sendall(b"RCPT TO:<you@localhost>\r\n")
        self.assertTrue(reply()[-1].startswith(b"503 5.5.1"), "RCPT before MAIL")
        sock.sendall(b"BOGUS\r\n")
        self.assertTrue(reply()[-1].startswith(b"500 5.5."))
        sock.sendall(b"NOOP\r\n")
        self.assertTrue(reply()[-1].startswith(b"250"))

    def test_too_many_recipients_and_size(self):
        sock, reply = self.raw_session()
        sock.sendall(b"MAIL FROM:<me@localhost> SIZE=999999999999\r\n")
        self.assertTrue(reply()[-1].startswith(b"552 5.3.4"))
        sock.sendall(b"MAIL FROM:<me@localhost>\r\n")
        self.assertTrue(reply()[-1].startswith(b"250"))
        sock.sendall(b"".join(b"RCPT TO:<r%d@example.com>\r\n" % i for i in range(101)))
        answers = [reply()[-1] for _ in range(101)]
        self.assertTrue(all(a.startswith(b"250") for a in answers[:100]))
        self.assertTrue(answers[100].startswith(b"452 4.5.3"), answers[100])
        sock.sendall(b"RSET\r\n")
        self.assertTrue(reply()[-1].startswith(b"250"))

    def test_unknown_local_recipient_bounces_into_inbox(self):
        before = len(stored_messages(self.d.state_dir, "local"))
        s = self.smtp()
        s.ehlo()
        s.login(self.user, self.password)
        self.assertEqual(s.sendmail("me@localhost", ["nobody@example.com"], b"Subject: lost\r\n\r\nx\r\n"), {})
        msgs = self.wait_count("local", before + 1)
        dsn = msgs[-1]
        _, recipients, returned = parse_dsn(self, dsn)
        self.assertEqual([r["Final-Recipient"] for r in recipients], ["rfc822; nobody@example.com"])
        self.assertTrue(recipients[0]["Status"].startswith("5."))
        self.assertEqual(returned["Subject"], "lost")


class SmtpDurabilityTest(unittest.TestCase):
    def test_kill_9_right_after_250_then_restart_exactly_once(self):
        d = Daemon(config={"accounts": ACCOUNTS})
        self.addCleanup(d.cleanup)
        d.start()
        user, password = password_for(d, "local")
        host, port = host_port(d.listeners["smtp"])
        s = smtplib.SMTP(host, port, timeout=20)
        s.ehlo()
        s.login(user, password)
        s.mail("me@localhost")
        s.rcpt("you@localhost")
        code, _ = s.data(b"Subject: durable\r\n\r\nkeep me\r\n")
        self.assertEqual(code, 250)
        d.proc.send_signal(signal.SIGKILL)  # right after 250, before QUIT
        d.proc.wait()
        s.close()
        d.start()
        msgs = stored_messages(d.state_dir, "other")
        self.assertEqual([m for m in msgs if b"keep me" in m], [b"Subject: durable\r\n\r\nkeep me\r\n"])
        d.stop()


if __name__ == "__main__":
    unittest.main()
