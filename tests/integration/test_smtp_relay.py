"""The outbox relay against real upstream servers: a private Postfix (SASL via
a private Dovecot's auth socket, delivering by LMTP into that Dovecot) as the
account's upstream SMTP. Mail submitted to mailbridged with python3 smtplib
and with swaks arrives upstream byte for byte; upstream down then up; a 550
for one recipient bounces into the local INBOX while the others get it;
kill -9 after 250 then restart delivers exactly once; REST outbox endpoints."""
import json
import os
import signal
import smtplib
import subprocess
import threading
import time
import unittest
import uuid

from harness import Daemon
from servers import SWAKS, Dovecot, Postfix, split_message
from test_smtp import host_port, parse_dsn, password_for, stored_messages


def message(subject, body=b"Line one\r\n.leading dot\r\n\xc3\xa9t\xc3\xa9 8bit\r\n\r\nlast line\r\n"):
    return (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: " + subject.encode()
            + b"\r\nMessage-ID: <" + subject.encode() + b"@example.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)


def with_subject(msgs, subject):
    return [m for m in msgs if (b"Subject: " + subject.encode() + b"\r\n") in m]


class RelayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dc = Dovecot(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}).start()
        cls.pf = Postfix(cls.dc).start()

    @classmethod
    def tearDownClass(cls):
        cls.pf.cleanup()
        cls.dc.stop()
        cls.dc.cleanup()

    def account(self):
        return {"name": "alice", "address": "alice@example.test",
                "smtp": {"host": "127.0.0.1", "port": self.pf.smtp_port, "security": "starttls",
                         "username": "alice", "password": "alice-pw", "ca_file": self.pf.cert,
                         "ehlo": "mailbridge.test"}}

    def config(self):
        return {"accounts": [self.account()],
                "smtp": {"listen": "127.0.0.1:0", "tls_listen": "127.0.0.1:0",
                         "retry_initial_seconds": 1, "retry_max_seconds": 2}}

    def daemon(self):
        d = Daemon(config=self.config())
        self.addCleanup(d.cleanup)
        d.start()
        d.user, d.password = password_for(d, "alice")
        return d

    def submit(self, d, rcpts, raw, sender="alice@example.test"):
        host, port = host_port(d.listeners["smtp"])
        with smtplib.SMTP(host, port, timeout=20) as s:
            s.ehlo()
            s.login(d.user, d.password)
            return s.sendmail(sender, rcpts, raw)

    def outbox(self, d):
        status, body = d.api("GET", "/v1/outbox")
        self.assertEqual(status, 200, body)
        return body["outbox"]

    def wait_outbox(self, d, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            rows = self.outbox(d)
            if pred(rows):
                return rows
            if time.monotonic() > deadline:
                self.fail("outbox never matched: %r\n%s" % (rows, d.log()[-3000:]))
            time.sleep(0.1)

    def test_smtplib_message_arrives_upstream_byte_identical(self):
        d = self.daemon()
        raw = message("smtplib-" + uuid.uuid4().hex[:8])
        self.assertEqual(self.submit(d, ["bob@example.test"], raw), {})
        subject = split_message(raw)[0].split(b"Subject: ")[1].split(b"\r\n")[0].decode()
        got = with_subject(self.dc.wait_for_messages("bob", count=1, timeout=20), subject)
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
            got = with_subject(self.dc.fetch_all("bob"), subject)
        self.assertEqual(len(got), 1)
        self.assertEqual(split_message(got[0])[1], split_message(raw)[1])
        # Postfix and LMTP only add trace headers at the top: every header we sent is there.
        for line in split_message(raw)[0].split(b"\r\n"):
            self.assertIn(line + b"\r\n", split_message(got[0])[0] + b"\r\n")
        self.wait_outbox(d, lambda rows: rows == [])
        sent = stored_messages(d.state_dir, "alice", "Sent")
        self.assertEqual(with_subject(sent, subject), [raw])  # one Sent copy, local

    def test_swaks_message_arrives_upstream(self):
        d = self.daemon()
        subject = "swaks-" + uuid.uuid4().hex[:8]
        raw = message(subject)
        path = os.path.join(d.tmp, "swaks.eml")
        with open(path, "wb") as f:
            f.write(raw[:-2])  # swaks ends DATA with "\r\n.\r\n" itself
        host, port = host_port(d.listeners["smtp"])
        p = subprocess.run([SWAKS, "--server", "%s:%d" % (host, port), "--from", "alice@example.test",
                            "--to", "carol@example.test", "--auth", "PLAIN", "--auth-user", d.user,
                            "--auth-password", d.password, "--data", "@" + path, "--pipeline"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        deadline = time.monotonic() + 20
        got = []
        while not got and time.monotonic() < deadline:
            got = with_subject(self.dc.fetch_all("carol"), subject)
            time.sleep(0.1)
        self.assertEqual(len(got), 1)
        self.assertEqual(split_message(got[0])[1], split_message(raw)[1])

    def test_upstream_down_then_up_delivers_after_retry(self):
        d = self.daemon()
        self.pf.stop()
        try:
            subject = "down-up-" + uuid.uuid4().hex[:8]
            self.assertEqual(self.submit(d, ["bob@example.test"], message(subject)), {})
            rows = self.wait_outbox(d, lambda rows: rows and rows[0]["attempts"] >= 2)
            self.assertEqual(rows[0]["state"], "queued")
            self.assertTrue(rows[0]["last_error"])
            self.assertEqual(rows[0]["account"], "alice")
            self.assertEqual(rows[0]["recipients"][0]["state"], "pending")
        finally:
            self.pf.start()
        # Postfix came back on a new port: point the account at it and reload.
        d.write_config(self.config())
        status, _ = d.api("POST", "/v1/reload")
        self.assertEqual(status, 200)
        got = self.dc.wait_for_messages("bob", count=1, timeout=30)
        deadline = time.monotonic() + 30
        while not with_subject(got, subject) and time.monotonic() < deadline:
            time.sleep(0.2)
            got = self.dc.fetch_all("bob")
        self.assertEqual(len(with_subject(got, subject)), 1)
        self.wait_outbox(d, lambda rows: rows == [])

    def test_550_for_one_recipient_bounces_locally_and_others_get_it(self):
        d = self.daemon()
        self.pf.reject("carol@example.test", "5.1.1 no such user here")
        try:
            subject = "partial-" + uuid.uuid4().hex[:8]
            raw = message(subject)
            self.assertEqual(self.submit(d, ["bob@example.test", "carol@example.test"], raw), {})
            rows = self.wait_outbox(d, lambda rows: rows and rows[0]["state"] == "failed")
            by = {r["address"]: r for r in rows[0]["recipients"]}
            self.assertEqual(by["bob@example.test"]["state"], "sent")
            self.assertEqual(by["carol@example.test"]["state"], "failed")
            self.assertEqual(by["carol@example.test"]["code"], 550)
            self.assertEqual(by["carol@example.test"]["status"], "5.1.1")
            deadline = time.monotonic() + 20
            while not with_subject(self.dc.fetch_all("bob"), subject) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(len(with_subject(self.dc.fetch_all("bob"), subject)), 1)
            self.assertEqual(with_subject(self.dc.fetch_all("carol"), subject), [])
            inbox = stored_messages(d.state_dir, "alice", "INBOX")
            dsns = [m for m in inbox if b"report-type=delivery-status" in m and subject.encode() in m]
            self.assertEqual(len(dsns), 1)
            _, recipients, returned = parse_dsn(self, dsns[0])
            self.assertEqual([(r["Final-Recipient"], r["Status"]) for r in recipients],
                             [("rfc822; carol@example.test", "5.1.1")])
            self.assertTrue(recipients[0]["Remote-MTA"].startswith("dns; "))
            self.assertIn("550", recipients[0]["Diagnostic-Code"])
            self.assertEqual(returned["Subject"], subject)
        finally:
            self.pf.clear()
        # Retry through the API: only carol is tried again, bob gets no second copy.
        item = rows[0]["id"]
        status, _ = d.api("POST", "/v1/outbox/%d/retry" % item)
        self.assertEqual(status, 200)
        self.wait_outbox(d, lambda rows: rows == [])
        self.dc.wait_for_messages("carol", count=1, timeout=20)
        deadline = time.monotonic() + 20
        while not with_subject(self.dc.fetch_all("carol"), subject) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(len(with_subject(self.dc.fetch_all("carol"), subject)), 1)
        self.assertEqual(len(with_subject(self.dc.fetch_all("bob"), subject)), 1)
        self.assertEqual(d.api("POST", "/v1/outbox/%d/retry" % item)[0], 404)
        self.assertEqual(d.api("DELETE", "/v1/outbox/%d" % item)[0], 404)

    def test_delete_from_outbox(self):
        d = self.daemon()
        self.pf.defer("bob@example.test")
        try:
            self.assertEqual(self.submit(d, ["bob@example.test"], message("deleted-" + uuid.uuid4().hex[:8])), {})
            rows = self.wait_outbox(d, lambda rows: rows and rows[0]["attempts"] >= 1)
            self.assertEqual(rows[0]["recipients"][0]["code"], 450)
            deadline = time.monotonic() + 10
            while True:
                status, body = d.api("DELETE", "/v1/outbox/%d" % rows[0]["id"])
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)  # 409 while that very message is being sent
            self.assertEqual(status, 200, body)
            self.assertEqual(self.outbox(d), [])
        finally:
            self.pf.clear()

    def test_kill_9_after_250_delivers_exactly_once_after_restart(self):
        d = self.daemon()
        subject = "kill9-" + uuid.uuid4().hex[:8]
        self.pf.stop()  # so the message is certainly still in the outbox when we kill
        try:
            self.assertEqual(self.submit(d, ["bob@example.test"], message(subject)), {})
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
        finally:
            self.pf.start()
        d.write_config(self.config())
        d.start()
        deadline = time.monotonic() + 30
        got = []
        while not got and time.monotonic() < deadline:
            got = with_subject(self.dc.fetch_all("bob"), subject)
            time.sleep(0.1)
        self.assertEqual(len(got), 1)
        self.wait_outbox(d, lambda rows: rows == [])
        time.sleep(1.5)  # a second delivery would show up by now
        self.assertEqual(len(with_subject(self.dc.fetch_all("bob"), subject)), 1)
        d.stop()

    def test_concurrent_submissions_group_commit_survive_kill_9_exactly_once(self):
        # Many sessions at once share outbox commits; each 250 must still mean
        # durable: kill -9 right after the last 250, then each arrives once.
        d = self.daemon()
        tag = "group-" + uuid.uuid4().hex[:8]
        n = 24
        self.pf.stop()  # everything stays in the outbox until the restart
        results, errors = {}, []
        barrier = threading.Barrier(n)

        def one(i):
            try:
                host, port = host_port(d.listeners["smtp"])
                with smtplib.SMTP(host, port, timeout=30) as s:
                    s.ehlo()
                    s.login(d.user, d.password)
                    s.mail("alice@example.test")
                    s.rcpt("bob@example.test")
                    barrier.wait(timeout=20)  # all DATA at once
                    code, text = s.data(message("%s-%d" % (tag, i)))
                    results[i] = (code, text)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        try:
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual(errors, [])
            self.assertEqual(sorted(c for c, _ in results.values()), [250] * n)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
        finally:
            self.pf.start()
        d.write_config(self.config())
        d.start()
        self.wait_outbox(d, lambda rows: rows == [], timeout=60)
        time.sleep(1.5)  # a second delivery would show up by now
        got = self.dc.fetch_all("bob")
        for i in range(n):
            self.assertEqual(len(with_subject(got, "%s-%d" % (tag, i))), 1, "message %d" % i)
        d.stop()


if __name__ == "__main__":
    unittest.main()
