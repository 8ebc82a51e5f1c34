"""Upstream IMAP sync against a private Dovecot (CONDSTORE/QRESYNC on, and a
run with them hidden for the fallback path): initial sync of several folders
(2,000+ generated messages with attachments and non-ASCII headers) compared by
Message-ID multiset and body bytes; IDLE push latency (printed); upstream
flag/expunge/create/delete reaching the local copy; local flag/append/copy/
move/expunge/create/rename/delete reaching upstream; kill -9 during the
initial sync and during journal replay; upstream restarted mid-sync; local
work while the upstream is down; UIDVALIDITY reset; wrong password; STARTTLS
and implicit TLS (CA file, pin), and STARTTLS configured but not offered;
upstream auth by SASL LOGIN, XOAUTH2 and OAUTHBEARER (Dovecot's oauth2 passdb
checking HS256 JWTs), expired and forged tokens."""
import base64
import collections
import email.utils
import imaplib
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import unittest

from harness import Daemon
from servers import Dovecot, imap_mailbox, jwt_hs256, tmp_root
from test_imap import Raw
from test_smtp import host_port, password_for, stored_messages


def gen_message(i, folder):
    """A generated message: every 7th with a binary attachment, non-ASCII
    headers (RFC 2047) on every 3rd."""
    mid = "<%s.%d@gen.example.test>" % (folder.replace("/", "."), i)
    subject = "Nachricht %d" % i
    if i % 3 == 0:
        subject = "=?utf-8?b?%s?=" % base64.b64encode(("Grüße aus Zürich №%d ✓" % i).encode()).decode()
    head = ("From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.test>\r\nTo: alice@example.test\r\n"
            "Subject: %s\r\nMessage-ID: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\n"
            % (subject, mid, email.utils.formatdate(1700000000 + i * 61)))
    text = ("Body of message %d in %s.\r\nZeile zwei: äöü\r\n" % (i, folder)) * (1 + i % 5)
    if i % 7 == 0:
        blob = base64.encodebytes(bytes((i * 31 + k) % 256 for k in range(3000 + (i % 11) * 700))).decode()
        body = ("Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"
                "--b%d\r\nContent-Type: application/octet-stream; name=\"data%d.bin\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n%s--b%d--\r\n"
                % (i, i, text, i, i, blob.replace("\n", "\r\n"), i))
    else:
        body = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text
    return (head + body).encode()


def load_generated(dc, user, folders):
    """Loads gen_message(0..n-1) into each folder of {folder: n}: every other
    one \\Seen, every 10th \\Flagged, internal dates a minute apart."""
    for folder, n in folders.items():
        msgs = []
        for i in range(n):
            flags = ("\\Seen",) if i % 2 else ()
            if i % 10 == 0:
                flags += ("\\Flagged",)
            msgs.append((gen_message(i, folder), flags, 1700000000 + i * 60))
        dc.bulk_load(user, msgs, folder)


def message_ids(msgs):
    out = []
    for m in msgs:
        found = re.search(rb"(?im)^Message-ID:\s*(\S+)", m)
        out.append(found.group(1) if found else b"")
    return collections.Counter(out)


def local_flags(state_dir, account, mailbox):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "mailbridge.db"), uri=True, timeout=10)
    try:
        return db.execute(
            "SELECT m.message_id, m.flags FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id "
            "JOIN accounts a ON b.account_id = a.id WHERE a.name = ? AND b.name = ?", (account, mailbox)).fetchall()
    finally:
        db.close()


def local_mailboxes(state_dir, account):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "mailbridge.db"), uri=True, timeout=10)
    try:
        return {r[0] for r in db.execute(
            "SELECT b.name FROM mailboxes b JOIN accounts a ON b.account_id = a.id WHERE a.name = ?", (account,))}
    finally:
        db.close()


def wait_for(pred, timeout=60, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def sync_status(d, name):
    status, body = d.api("GET", "/v1/accounts")
    if status != 200:
        raise AssertionError("GET /v1/accounts answered %d: %r" % (status, body))
    for a in body["accounts"]:
        if a["name"] == name:
            return a.get("sync")
    return None


def wait_idle(d, name, timeout=120):
    def ok():
        s = sync_status(d, name)
        return s and s["state"] == "idle" and s["last_sync"] and s["pending_changes"] == 0 and s
    return wait_for(ok, timeout, 0.1, "account %s idle; status %r" % (name, sync_status(d, name)))


def upstream_flags(dc, user, mailbox):
    c = dc.imap(user)
    try:
        c.select(imap_mailbox(mailbox), readonly=True)
        typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                mid = re.search(rb"(?i)Message-ID:\s*(\S+)", item[1])
                out[mid.group(1).decode() if mid else ""] = item[0].decode()
        return out
    finally:
        c.logout()


def maildir_edit(dc, user, mailbox, mid, flags=None, expunge=False):
    """Changes a message upstream while Dovecot is stopped, in its maildir
    (flags are in the file name; Dovecot keeps the UID and gives the change a
    new MODSEQ when it next opens the mailbox). flags: maildir letters."""
    path = os.path.join(dc.home(user), "Maildir") if mailbox == "INBOX" else None
    assert path, "INBOX only"
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                if ("Message-ID: %s\r\n" % mid).encode() not in f.read():
                    continue
            if expunge:
                os.unlink(os.path.join(d, name))
            else:
                os.rename(os.path.join(d, name), os.path.join(path, "cur", name.split(":")[0] + ":2," + flags))
            return
    raise AssertionError("no upstream file for " + mid)


FOLDERS = {"INBOX": 1100, "Work/Projects": 600, "Archive": 300, "Ärger/Überweisungen": 60}


class _SyncBase:
    condstore = True
    tls = False
    uidplus = True
    dovecot_options = {}

    @classmethod
    def setUpClass(cls):
        cls.dc = Dovecot(condstore=cls.condstore, tls=cls.tls, uidplus=cls.uidplus,
                         users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
                                "erin": "erin-pw"},
                         **cls.dovecot_options).start()

    @classmethod
    def tearDownClass(cls):
        cls.dc.cleanup()

    def account(self, user, password=None, poll=5, **imap):
        cfg = {"host": "127.0.0.1", "port": self.dc.imap_port, "security": "none",
               "username": user, "password": password or self.dc.users[user], "poll_seconds": poll}
        cfg.update(imap)
        if "password_command" in imap:
            del cfg["password"]
        return {"name": user, "address": "%s@example.test" % user, "imap": cfg}

    def daemon(self, *users, **kw):
        d = Daemon(config={"accounts": [self.account(u, **kw) for u in users]},
                   state_dir=os.path.join(tmp_root(), "mb-sync-%d-%d" % (os.getpid(), time.monotonic_ns())))
        self.addCleanup(lambda: __import__("shutil").rmtree(d.state_dir, ignore_errors=True))
        self.addCleanup(d.cleanup)
        if os.environ.get("MB_SYNC_KEEP_LOG"):
            def keep():
                with open(os.environ["MB_SYNC_KEEP_LOG"], "w") as f:
                    f.write(d.log())
            self.addCleanup(keep)
        return d

    def local_imap(self, d, user):
        """A logged-in imaplib connection to the bridge's local IMAP endpoint."""
        login, password = password_for(d, user)
        host, port = host_port(d.listeners["imap"])
        li = imaplib.IMAP4(host, port, timeout=20)
        li.login(login, password)
        return li

    def assert_same(self, d, user, mailbox):
        up = self.dc.fetch_all(user, mailbox)
        local = stored_messages(d.state_dir, user, mailbox)
        self.assertEqual(message_ids(local), message_ids(up), mailbox)
        self.assertEqual(sorted(local), sorted(up), mailbox + ": body bytes differ")


class SyncTest(_SyncBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        load_generated(cls.dc, "alice", FOLDERS)

    def test_two_way(self):
        d = self.daemon("alice")
        t0 = time.monotonic()
        d.start()
        st = wait_idle(d, "alice", 150)
        took = time.monotonic() - t0
        total = sum(FOLDERS.values())
        print("\ninitial sync: %d messages, %.1f MB in %.2f s (%.0f msg/s)"
              % (total, st["bytes"] / 1e6, took, total / took))
        for folder in FOLDERS:
            self.assert_same(d, "alice", folder)
        # Flags arrived with the messages.
        flags = dict(local_flags(d.state_dir, "alice", "Archive"))
        self.assertEqual(flags["<Archive.10@gen.example.test>"], 4)      # \Flagged
        self.assertEqual(flags["<Archive.11@gen.example.test>"], 1)      # \Seen
        self.assertIn("Sent", local_mailboxes(d.state_dir, "alice"))

        # IDLE push, end to end: a message delivered upstream reaches a mail
        # program idling on the bridge's INBOX (upstream IDLE -> sync -> store
        # -> local IDLE) and the store. The latency is printed, not asserted
        # (the target is under 2 s; the 15 s bound only keeps a lost update
        # from hanging the test).
        login, password = password_for(d, "alice")
        idler = Raw(*host_port(d.listeners["imap"]))
        self.addCleanup(idler.close)
        idler.send(b"a LOGIN %s %s\r\n" % (login.encode(), password.encode()))
        self.assertTrue(idler.until_tagged(b"a")[-1].startswith(b"a OK"))
        idler.send(b"b SELECT INBOX\r\n")
        exists = [int(l.split()[1]) for l in idler.until_tagged(b"b") if l.endswith(b" EXISTS")]
        self.assertEqual(len(exists), 1)
        count = exists[0]
        latencies = []
        for k in range(3):
            idler.send(b"c%d IDLE\r\n" % k)
            self.assertEqual(idler.line(), b"+ idling")
            raw = gen_message(5000 + k, "push")
            t0 = time.monotonic()
            self.dc.deliver("alice", raw)
            count += 1
            while True:
                line = idler.line(timeout=15.0)
                if line == b"* %d EXISTS" % count:
                    break
            latencies.append(time.monotonic() - t0)
            idler.send(b"DONE\r\n")
            self.assertTrue(idler.until_tagged(b"c%d" % k)[-1].startswith(b"c%d OK" % k))
            self.assertIn(raw.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"),
                          stored_messages(d.state_dir, "alice", "INBOX"))
        print("IDLE push latency (upstream delivery -> local IDLE client's EXISTS): %s s" %
              ", ".join("%.3f" % x for x in latencies))

        # Upstream flag change and expunge reach the local copy.
        c = self.dc.imap("alice")
        c.select(imap_mailbox("Work/Projects"))
        typ, data = c.uid("SEARCH", None, "HEADER", "Message-ID", "<Work.Projects.3@gen.example.test>")
        uid3 = data[0].split()[0]
        typ, data = c.uid("SEARCH", None, "HEADER", "Message-ID", "<Work.Projects.4@gen.example.test>")
        uid4 = data[0].split()[0]
        c.uid("STORE", uid3, "+FLAGS", "(\\Answered $Label1)")
        c.uid("STORE", uid4, "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        wait_for(lambda: dict(local_flags(d.state_dir, "alice", "Work/Projects")).get(
            "<Work.Projects.3@gen.example.test>") == 3 and "<Work.Projects.4@gen.example.test>" not in dict(
            local_flags(d.state_dir, "alice", "Work/Projects")), 20, 0.1, "upstream flag and expunge")

        # Local changes through the local IMAP endpoint reach upstream.
        user, password = password_for(d, "alice")
        host, port = host_port(d.listeners["imap"])
        li = imaplib.IMAP4(host, port, timeout=20)
        li.login(user, password)
        li.select(imap_mailbox("Archive"))
        li.store("1", "+FLAGS", "(\\Answered)")
        li.store("2", "-FLAGS", "(\\Seen)")
        new = gen_message(7000, "local")
        li.append(imap_mailbox("INBOX"), "(\\Seen)", None, new)
        li.create(imap_mailbox("Lokal/Neu"))
        li.select(imap_mailbox("Archive"))
        li.copy("3", imap_mailbox("Lokal/Neu"))
        li.store("5", "+FLAGS", "(\\Deleted)")
        li.expunge()
        li.logout()
        wait_idle(d, "alice", 30)
        up = upstream_flags(self.dc, "alice", "Archive")
        self.assertIn("\\Answered", up["<Archive.0@gen.example.test>"])
        self.assertNotIn("\\Seen", up["<Archive.1@gen.example.test>"])
        self.assertNotIn("<Archive.4@gen.example.test>", up)
        self.assertIn(b"<local.7000@gen.example.test>", message_ids(self.dc.fetch_all("alice", "INBOX")))
        self.assertEqual(message_ids(self.dc.fetch_all("alice", "Lokal/Neu")),
                         collections.Counter([b"<Archive.2@gen.example.test>"]))

        li = imaplib.IMAP4(host, port, timeout=20)
        li.login(user, password)
        li.rename(imap_mailbox("Lokal/Neu"), imap_mailbox("Lokal/Umbenannt"))
        li.create(imap_mailbox("Wegwerf"))
        li.select(imap_mailbox("Archive"))
        typ, data = li.uid("SEARCH", None, "HEADER", "Message-ID", "<Archive.6@gen.example.test>")
        self.assertEqual(li.uid("MOVE", data[0].split()[0], imap_mailbox("Lokal/Umbenannt"))[0], "OK")
        li.logout()
        wait_idle(d, "alice", 30)
        li = imaplib.IMAP4(host, port, timeout=20)
        li.login(user, password)
        li.delete(imap_mailbox("Wegwerf"))
        li.logout()
        wait_idle(d, "alice", 30)
        self.assertEqual(message_ids(self.dc.fetch_all("alice", "Lokal/Umbenannt")),
                         collections.Counter([b"<Archive.2@gen.example.test>", b"<Archive.6@gen.example.test>"]))
        self.assertNotIn("<Archive.6@gen.example.test>", upstream_flags(self.dc, "alice", "Archive"))
        c = self.dc.imap("alice")
        typ, boxes = c.list()
        c.logout()
        names = b" ".join(boxes)
        self.assertNotIn(b"Wegwerf", names)
        self.assertNotIn(b"Lokal/Neu", names)

        # A folder created upstream appears locally (at the next poll); one
        # deleted upstream goes.
        self.dc.deliver("alice", gen_message(1, "fresh"), mailbox="Neu von oben")
        wait_for(lambda: "Neu von oben" in local_mailboxes(d.state_dir, "alice"), 20, 0.1, "upstream CREATE")
        wait_for(lambda: stored_messages(d.state_dir, "alice", "Neu von oben"), 20, 0.1, "its message")
        c = self.dc.imap("alice")
        self.assertEqual(c.delete(imap_mailbox("Neu von oben"))[0], "OK")
        c.logout()
        wait_for(lambda: "Neu von oben" not in local_mailboxes(d.state_dir, "alice"), 20, 0.1, "upstream DELETE")

        # Restart: nothing is downloaded again, nothing duplicated.
        d.stop()
        d.start()
        st = wait_idle(d, "alice", 60)
        for folder in list(FOLDERS) + ["Lokal/Umbenannt"]:
            self.assert_same(d, "alice", folder)
        self.assertLess(st["bytes"], 2_000_000, "a restart downloaded the mailboxes again")

    def test_kill_during_initial_sync_and_uidvalidity_reset(self):
        msgs = [gen_message(i, "bob") for i in range(900)]
        self.dc.bulk_load("bob", msgs, "INBOX")
        d = self.daemon("bob")
        d.start()
        wait_for(lambda: (sync_status(d, "bob") or {}).get("messages", {}).get("done", 0) >= 200, 60, 0.02,
                 "first batches")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        d.start()
        st = wait_idle(d, "bob", 120)
        self.assert_same(d, "bob", "INBOX")
        self.assertLess(st["messages"]["total"], 900, "the restart fetched stored messages again")

        # UIDVALIDITY reset upstream: same messages, new UIDs; local UIDs stay.
        before = self._local_uids(d, "bob")
        d.stop()
        self.dc.doveadm("mailbox", "update", "-u", "bob", "--uid-validity", "12345", "INBOX")
        d.start()
        wait_idle(d, "bob", 60)
        self.assert_same(d, "bob", "INBOX")
        self.assertEqual(self._local_uids(d, "bob"), before)
        self.assertIn("sync.remapped", d.log())
        self.assertIn("kept=900", d.log())

    def test_store_failure_mid_download_fails_the_cycle_and_the_next_completes_it(self):
        # Mailboxes are downloaded overlapped: the next one streams while the
        # last batches of the one before are still stored. A row that cannot
        # be stored (a trigger refuses one message) must fail the cycle, leave
        # that mailbox incomplete, and the next cycle (trigger gone) must
        # bring both mailboxes to the upstream's state without a duplicate.
        d = self.daemon("erin")
        d.start()
        wait_idle(d, "erin", 60)
        d.stop()
        load_generated(self.dc, "erin", {"INBOX": 700, "Later": 500})
        db_path = os.path.join(d.state_dir, "mailbridge.db")
        db = sqlite3.connect(db_path, timeout=10)
        db.execute("CREATE TRIGGER inject_failure BEFORE INSERT ON messages "
                   "WHEN NEW.message_id = '<INBOX.450@gen.example.test>' "
                   "BEGIN SELECT RAISE(ABORT, 'injected store failure'); END")
        db.commit()
        db.close()
        d.start()
        wait_for(lambda: "injected store failure" in d.log(), 60, 0.05, "the injected failure")
        wait_for(lambda: "sync.cycle_failed" in d.log(), 60, 0.05, "the cycle to fail")
        stored = len(local_flags(d.state_dir, "erin", "INBOX"))
        self.assertLess(stored, 700, "rows after the refused one were stored")
        db = sqlite3.connect(db_path, timeout=10)
        state = db.execute("SELECT b.upstream_state FROM mailboxes b JOIN accounts a ON b.account_id = a.id "
                           "WHERE a.name = 'erin' AND b.name = 'INBOX'").fetchone()[0]
        state = json.loads(state or "{}")  # the empty mailbox's state of the first cycle may stay
        self.assertFalse(state.get("complete") and state.get("messages") == 700, "INBOX marked complete: %s" % state)
        db.execute("DROP TRIGGER inject_failure")
        db.commit()
        db.close()
        wait_for(lambda: "sync.cycle_done" in d.log().split("sync.cycle_failed", 1)[1], 60, 0.1,
                 "a cycle after the failure to finish")
        wait_idle(d, "erin", 60)
        self.assert_same(d, "erin", "INBOX")
        self.assert_same(d, "erin", "Later")

    def _local_uids(self, d, user):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.state_dir, "mailbridge.db"), uri=True)
        try:
            return sorted(db.execute(
                "SELECT m.uid, m.message_id FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id "
                "JOIN accounts a ON b.account_id = a.id WHERE a.name = ? AND b.name = 'INBOX'", (user,)).fetchall())
        finally:
            db.close()

    def test_wrong_password(self):
        d = self.daemon("alice", password="wrong")
        d.start()
        st = wait_for(lambda: (sync_status(d, "alice") or {}).get("state") == "auth_failed" and sync_status(d, "alice"),
                      20, 0.05, "auth_failed")
        self.assertIn("AUTHENTICATIONFAILED", st["last_error"])
        self.assertNotIn("wrong", d.log())
        time.sleep(3)
        self.assertEqual(d.log().count("upstream.login_failed"), 1, "retried a wrong password")


    def test_starttls_configured_but_not_offered(self):
        # This Dovecot has no TLS: configured STARTTLS must not fall back.
        d = self.daemon("alice", security="starttls")
        d.start()
        st = wait_for(lambda: (sync_status(d, "alice") or {}).get("state") == "offline" and sync_status(d, "alice"),
                      20, 0.05, "offline")
        self.assertIn("does not offer STARTTLS", st["last_error"])
        self.assertIsNotNone(st["next_retry"])
        self.assertNotIn("AUTHENTICATE", d.log())
        self.assertNotIn("upstream.logged_in", d.log())

    def test_upstream_restart_offline_work_and_kill_during_replay(self):
        self.dc.bulk_load("carol", [gen_message(i, "carol") for i in range(2500)], "INBOX")
        d = self.daemon("carol")
        d.start()
        wait_for(lambda: (sync_status(d, "carol") or {}).get("messages", {}).get("done", 0) >= 100, 60, 0.01,
                 "first batches")
        # The upstream goes away mid-sync and comes back on the same port.
        self.dc.stop()
        wait_for(lambda: (sync_status(d, "carol") or {}).get("state") == "offline", 20, 0.05, "offline")
        self.dc.start(keep_ports=True)
        wait_idle(d, "carol", 90)
        self.assert_same(d, "carol", "INBOX")

        # Upstream down: local work goes on and is journaled.
        self.dc.stop()
        wait_for(lambda: (sync_status(d, "carol") or {}).get("state") == "offline", 20, 0.05, "offline")
        user, password = password_for(d, "carol")
        host, port = host_port(d.listeners["imap"])
        li = imaplib.IMAP4(host, port, timeout=20)
        li.login(user, password)
        # Large enough that the replay takes a while (the kill must land in it).
        pad = b"X-Pad: " + b"p" * 990 + b"\r\n"
        added = [pad * 300 + gen_message(9000 + k, "offline") for k in range(60)]
        for raw in added:
            self.assertEqual(li.append(imap_mailbox("INBOX"), None, None, raw)[0], "OK")
        li.select(imap_mailbox("INBOX"))
        li.store("1:20", "+FLAGS", "(\\Flagged)")
        li.logout()
        self.assertGreaterEqual(sync_status(d, "carol")["pending_changes"], 61)

        # Upstream back; kill -9 while the journal is being replayed.
        self.dc.start(keep_ports=True)
        wait_for(lambda: (sync_status(d, "carol") or {}).get("pending_changes", 999) < 55, 60, 0.005, "replay")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        d.start()
        wait_idle(d, "carol", 90)
        up = message_ids(self.dc.fetch_all("carol", "INBOX"))
        for raw in added:
            self.assertEqual(up[message_ids([raw]).most_common(1)[0][0]], 1)
        self.assertEqual(sum(up.values()), 2500 + 60)
        self.assert_same(d, "carol", "INBOX")
        flags = upstream_flags(self.dc, "carol", "INBOX")
        self.assertIn("\\Flagged", flags["<carol.0@gen.example.test>"])
        self.assertIn("\\Flagged", flags["<carol.19@gen.example.test>"])
        self.assertNotIn("\\Flagged", flags["<carol.20@gen.example.test>"])


class SyncConflictTest(_SyncBase, unittest.TestCase):
    def test_flag_conflicts_merge_per_flag_and_upstream_expunge_wins(self):
        # README "Conflict rules". Local changes are made while the upstream is
        # down; upstream changes after them (higher MODSEQ), before the bridge
        # sees them.
        flags = [("\\Seen",), ("\\Seen",), (), (), ("\\Flagged",), ()]
        self.dc.bulk_load("alice", [(gen_message(i, "cf"), flags[i]) for i in range(6)], "INBOX")
        d = self.daemon("alice")
        d.start()
        wait_idle(d, "alice", 60)
        self.dc.stop()
        wait_for(lambda: (sync_status(d, "alice") or {}).get("state") == "offline", 20, 0.05, "offline")
        li = self.local_imap(d, "alice")
        li.select("INBOX")
        li.store("1", "+FLAGS", "(\\Flagged)")           # cf.0: upstream clears \Seen: both kept
        li.store("2", "+FLAGS", "(\\Seen \\Flagged)")    # cf.1: \Seen was set already: not a local change of it
        li.store("3", "FLAGS", "(\\Answered)")           # cf.2: replace; upstream sets \Flagged: kept
        li.store("4", "+FLAGS", "(\\Flagged)")           # cf.3: set and cleared locally; upstream sets it later
        li.store("4", "-FLAGS", "(\\Flagged)")
        li.store("5", "-FLAGS", "(\\Flagged)")           # cf.4: expunged upstream while this is pending
        li.store("6", "+FLAGS", "(\\Seen)")              # cf.5: upstream untouched: the local change goes up
        li.logout()
        maildir_edit(self.dc, "alice", "INBOX", "<cf.0@gen.example.test>", "")
        maildir_edit(self.dc, "alice", "INBOX", "<cf.1@gen.example.test>", "")
        maildir_edit(self.dc, "alice", "INBOX", "<cf.2@gen.example.test>", "F")
        maildir_edit(self.dc, "alice", "INBOX", "<cf.3@gen.example.test>", "F")
        maildir_edit(self.dc, "alice", "INBOX", "<cf.4@gen.example.test>", expunge=True)
        self.dc.start(keep_ports=True)
        wait_idle(d, "alice", 60)
        want = {"<cf.0@gen.example.test>": {"\\Flagged"},
                "<cf.1@gen.example.test>": {"\\Flagged"},
                "<cf.2@gen.example.test>": {"\\Answered", "\\Flagged"},
                "<cf.3@gen.example.test>": {"\\Flagged"},
                "<cf.5@gen.example.test>": {"\\Seen"}}
        up = upstream_flags(self.dc, "alice", "INBOX")
        self.assertEqual({k: set(re.findall(r"\\\w+", v)) - {"\\Recent"} for k, v in up.items()}, want)
        bits = {"\\Seen": 1, "\\Answered": 2, "\\Flagged": 4}
        self.assertEqual(dict(local_flags(d.state_dir, "alice", "INBOX")),
                         {k: sum(bits[f] for f in v) for k, v in want.items()})
        self.assertNotIn("sync.journal_dropped", d.log())


    def test_refused_change_is_reported_and_does_not_block_later_ones(self):
        self.dc.deliver("bob", gen_message(1, "rf"))
        self.dc.deliver("bob", gen_message(2, "rf"), mailbox="Alt")
        d = self.daemon("bob", poll=3600)
        d.start()
        wait_idle(d, "bob", 60)
        # Created upstream, unseen by the bridge until its next listing.
        self.dc.create_mailbox("bob", "Neu")
        li = self.local_imap(d, "bob")
        self.assertEqual(li.rename(imap_mailbox("Alt"), imap_mailbox("Neu"))[0], "OK")
        li.select("INBOX")
        li.store("1", "+FLAGS", "(\\Flagged)")
        li.logout()
        st = wait_idle(d, "bob", 30)
        self.assertEqual(st["dropped_changes"], 1)
        self.assertIn("ALREADYEXISTS", st["last_error"])
        self.assertIn("mailbox.rename", st["last_error"])
        dropped = [l for l in d.log().splitlines() if "sync.journal_dropped" in l]
        self.assertEqual(len(dropped), 1)
        self.assertIn("permanent=true", dropped[0].replace('"', "").replace(" = ", "="))
        self.assertIn("\\Flagged", upstream_flags(self.dc, "bob", "INBOX")["<rf.1@gen.example.test>"])


    def test_refused_flag_change_is_undone_locally_and_does_not_poison_later_ones(self):
        self.dc.deliver("dave", gen_message(1, "kw"))
        d = self.daemon("dave", poll=3600)
        d.start()
        wait_idle(d, "dave", 60)
        li = self.local_imap(d, "dave")
        li.select("INBOX")
        # Dovecot: NO [CANNOT] Keyword length too long.
        self.assertEqual(li.store("1", "+FLAGS", "(\\Seen $%s)" % ("k" * 60))[0], "OK")
        st = wait_idle(d, "dave", 30)
        self.assertEqual(st["dropped_changes"], 1)
        self.assertIn("CANNOT", st["last_error"])
        self.assertEqual(dict(local_flags(d.state_dir, "dave", "INBOX"))["<kw.1@gen.example.test>"], 0)
        typ, data = li.fetch("1", "(FLAGS)")
        self.assertNotIn(b"kkkk", data[0])
        # A later change of the same message is not refused again.
        li.store("1", "+FLAGS", "(\\Flagged)")
        li.logout()
        st = wait_idle(d, "dave", 30)
        self.assertEqual(st["dropped_changes"], 1)
        self.assertIn("\\Flagged", upstream_flags(self.dc, "dave", "INBOX")["<kw.1@gen.example.test>"])

    def test_upstream_rename_moves_the_stored_messages(self):
        for i in range(30):
            self.dc.deliver("carol", gen_message(i, "rn"), mailbox="Projekte/Alt")
        for i in range(5):
            self.dc.deliver("carol", gen_message(i, "rnk"), mailbox="Projekte/Alt/Kind")
        d = self.daemon("carol", poll=5)
        d.start()
        wait_idle(d, "carol", 60)
        rows = {b: self._row_ids(d, b) for b in ("Projekte/Alt", "Projekte/Alt/Kind")}
        self.assertEqual((len(rows["Projekte/Alt"]), len(rows["Projekte/Alt/Kind"])), (30, 5))
        c = self.dc.imap("carol")
        self.assertEqual(c.rename(imap_mailbox("Projekte/Alt"), imap_mailbox("Projekte/Neu"))[0], "OK")
        c.logout()
        wait_for(lambda: {"Projekte/Neu", "Projekte/Neu/Kind"} <= local_mailboxes(d.state_dir, "carol"), 30, 0.1,
                 "the rename")
        wait_idle(d, "carol", 30)
        boxes = local_mailboxes(d.state_dir, "carol")
        self.assertNotIn("Projekte/Alt", boxes)
        self.assertNotIn("Projekte/Alt/Kind", boxes)
        # The same rows, under the new names: nothing was downloaded again.
        self.assertEqual(self._row_ids(d, "Projekte/Neu"), rows["Projekte/Alt"])
        self.assertEqual(self._row_ids(d, "Projekte/Neu/Kind"), rows["Projekte/Alt/Kind"])
        self.assert_same(d, "carol", "Projekte/Neu")
        self.assert_same(d, "carol", "Projekte/Neu/Kind")
        self.assertIn("sync.mailbox_renamed_upstream", d.log())
        self.assertNotIn("sync.mailbox_deleted_upstream", d.log())

    def _row_ids(self, d, mailbox):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.state_dir, "mailbridge.db"), uri=True, timeout=10)
        try:
            return sorted(r[0] for r in db.execute(
                "SELECT m.id FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id WHERE b.name = ?", (mailbox,)))
        finally:
            db.close()


class SyncTlsTest(_SyncBase, unittest.TestCase):
    tls = True

    def test_starttls_and_implicit_tls_with_pin(self):
        self.dc.bulk_load("alice", [gen_message(i, "tls") for i in range(50)], "INBOX")
        d = self.daemon("alice", security="starttls", ca_file=self.dc.cert)
        d.start()
        wait_idle(d, "alice", 60)
        self.assert_same(d, "alice", "INBOX")
        self.assertIn("tls=true", d.log())

        out = subprocess.run(["openssl", "x509", "-in", self.dc.cert, "-noout", "-fingerprint", "-sha256"],
                             capture_output=True, check=True, text=True).stdout
        pin = out.strip().split("=", 1)[1]
        d2 = self.daemon("alice", security="tls", port=self.dc.imaps_port, pin_sha256=pin)
        d2.start()
        wait_idle(d2, "alice", 60)
        self.assert_same(d2, "alice", "INBOX")

        # An unchanged account costs one LIST-STATUS per poll: no SELECT, no
        # FETCH. (Each IDLE connection start is followed by one check of its
        # mailbox, for what came in before it was listening: skip that poll.)
        first = len(d2.log())
        wait_for(lambda: d2.log()[first:].count(" LIST ") >= 1, 20, 0.2, "a poll")
        mark = len(d2.log())
        wait_for(lambda: d2.log()[mark:].count(" LIST ") >= 2, 20, 0.2, "two polls")
        polled = [l for l in d2.log()[mark:].splitlines() if "upstream.command" in l]
        self.assertTrue(polled)
        self.assertEqual([l for l in polled if " LIST " not in l], [], "a no-op poll did more than LIST")

        # The system CAs do not accept this self-signed certificate.
        d3 = self.daemon("alice", security="tls", port=self.dc.imaps_port)
        d3.start()
        st = wait_for(lambda: (sync_status(d3, "alice") or {}).get("state") == "offline" and sync_status(d3, "alice"),
                      20, 0.05, "offline")
        self.assertIn("verif", st["last_error"])


class SyncNoCondstoreTest(_SyncBase, unittest.TestCase):
    condstore = False

    def test_fallback_two_way(self):
        self.dc.bulk_load("alice", [(gen_message(i, "fb"), ("\\Seen",) if i % 2 else ()) for i in range(300)], "INBOX")
        self.dc.bulk_load("alice", [gen_message(i, "fbw") for i in range(100)], "Work")
        d = self.daemon("alice")
        d.start()
        wait_idle(d, "alice", 90)
        self.assertIn("condstore=false", d.log().replace(" ", "").lower().replace('"', ""))
        self.assert_same(d, "alice", "INBOX")
        self.assert_same(d, "alice", "Work")
        c = self.dc.imap("alice")
        c.select(imap_mailbox("Work"))
        c.store("1", "+FLAGS", "(\\Flagged)")
        c.store("2", "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        wait_for(lambda: dict(local_flags(d.state_dir, "alice", "Work")).get("<fbw.0@gen.example.test>") == 4
                 and "<fbw.1@gen.example.test>" not in dict(local_flags(d.state_dir, "alice", "Work")),
                 20, 0.1, "fallback flag diff and expunge")



class SyncNoUidplusTest(_SyncBase, unittest.TestCase):
    condstore = False
    uidplus = False

    def test_append_copy_move_without_uidplus_are_bound_by_message_id(self):
        self.dc.bulk_load("alice", [gen_message(i, "nu") for i in range(20)], "INBOX")
        self.dc.bulk_load("alice", [gen_message(i, "nuw") for i in range(3)], "Work")
        d = self.daemon("alice", poll=5)
        d.start()
        wait_idle(d, "alice", 60)
        li = self.local_imap(d, "alice")
        added = [gen_message(100 + k, "nu-local") for k in range(3)]
        for raw in added:
            self.assertEqual(li.append("INBOX", None, None, raw)[0], "OK")
        li.select("INBOX")
        self.assertEqual(li.copy("1", "Work")[0], "OK")
        self.assertEqual(li.uid("MOVE", li.fetch("2", "(UID)")[1][0].split()[2].rstrip(b")"), "Work")[0], "OK")
        li.logout()
        wait_idle(d, "alice", 30)
        # Two more full polls after the replay: the upstream copies are known.
        mark = len(d.log())
        wait_for(lambda: d.log()[mark:].count("sync.cycle_done") >= 2, 30, 0.1, "two polls")
        wait_idle(d, "alice", 30)
        self.assertIn("uidplus=false", d.log())
        up = message_ids(self.dc.fetch_all("alice", "INBOX"))
        local = message_ids(stored_messages(d.state_dir, "alice", "INBOX"))
        for raw in added:
            mid = message_ids([raw]).most_common(1)[0][0]
            self.assertEqual(up[mid], 1, mid)
            self.assertEqual(local[mid], 1, mid)
        self.assert_same(d, "alice", "INBOX")
        self.assert_same(d, "alice", "Work")
        self.assertEqual(sum(message_ids(stored_messages(d.state_dir, "alice", "Work")).values()), 5)

        # Without UID EXPUNGE: a local expunge of one message leaves another
        # that someone marked \Deleted upstream (and did not expunge) alone.
        c = self.dc.imap("alice")
        c.select("INBOX")
        typ, data = c.uid("SEARCH", None, "HEADER", "Message-ID", "<nu.10@gen.example.test>")
        c.uid("STORE", data[0].split()[0], "+FLAGS", "(\\Deleted)")
        c.logout()
        wait_for(lambda: dict(local_flags(d.state_dir, "alice", "INBOX")).get("<nu.10@gen.example.test>") == 8,
                 30, 0.1, "the upstream \\Deleted")
        li = self.local_imap(d, "alice")
        li.select("INBOX")
        typ, data = li.uid("SEARCH", None, "HEADER", "Message-ID", "<nu.11@gen.example.test>")
        uid11 = data[0].split()[0]
        li.uid("STORE", uid11, "+FLAGS", "(\\Deleted)")
        self.assertEqual(li.uid("EXPUNGE", uid11)[0], "OK")
        li.logout()
        wait_idle(d, "alice", 30)
        up = upstream_flags(self.dc, "alice", "INBOX")
        self.assertNotIn("<nu.11@gen.example.test>", up)
        self.assertIn("\\Deleted", up["<nu.10@gen.example.test>"])
        self.assertNotIn("sync.journal_dropped", d.log())


OAUTH_KEY = b"mailbridge-test-hs256-key-0123456789"


def token_for(user, key=OAUTH_KEY, lifetime=3600):
    now = int(time.time())
    return jwt_hs256(key, {"sub": user, "iat": now - 60, "nbf": now - 60, "exp": now + lifetime})


class SyncAuthMechanismTest(_SyncBase, unittest.TestCase):
    """Each mechanism against a Dovecot that offers LOGIN, XOAUTH2 and
    OAUTHBEARER but not PLAIN (so neither AUTHENTICATE PLAIN nor the LOGIN
    command, which Dovecot runs as PLAIN, can succeed by accident); its log
    names the mechanism of each login."""
    dovecot_options = {"auth_mechanisms": "login", "oauth2_hmac_key": OAUTH_KEY}

    def logins(self, user):
        return re.findall(r"Login: user=<%s>, method=(\S+)," % user, self.dc.log())

    def sync_and_check(self, user, secret, **imap):
        self.dc.bulk_load(user, [gen_message(i, "auth-" + user) for i in range(12)], "INBOX")
        d = self.daemon(user, **imap)
        d.start()
        wait_idle(d, user, 60)
        logins = self.logins(user)  # the daemon's only: the checks below log in too
        self.assert_same(d, user, "INBOX")
        self.assertEqual(len(message_ids(stored_messages(d.state_dir, user, "INBOX"))), 12)
        self.assertNotIn(secret, d.log())
        self.assertNotIn(secret.rsplit(".", 1)[-1], d.log())  # not even the signature
        return logins

    def test_sasl_login(self):
        logins = self.sync_and_check("alice", "alice-pw", auth="login")
        self.assertTrue(logins)
        self.assertEqual(set(logins), {"LOGIN"})

    def test_xoauth2_token_in_config(self):
        token = token_for("bob")
        logins = self.sync_and_check("bob", token, auth="xoauth2", password=token)
        self.assertTrue(logins)
        self.assertEqual(set(logins), {"XOAUTH2"})

    def test_oauthbearer_token_from_password_command(self):
        token = token_for("carol")
        script = os.path.join(tmp_root(), "mb-token-%d-%d" % (os.getpid(), time.monotonic_ns()))
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho '%s'\n" % token)
        os.chmod(script, 0o700)
        self.addCleanup(os.unlink, script)
        logins = self.sync_and_check("carol", token, auth="oauthbearer", password_command=script)
        self.assertTrue(logins)
        self.assertEqual(set(logins), {"OAUTHBEARER"})


class SyncOAuthRefusedTest(_SyncBase, unittest.TestCase):
    """An expired token (XOAUTH2) and one signed with another key
    (OAUTHBEARER): Dovecot answers the JSON error challenge, the daemon
    acknowledges it, gets the tagged NO and stops at auth_failed with one
    attempt. (Own Dovecot: failed logins slow later ones from the same IP.)"""
    dovecot_options = {"oauth2_hmac_key": OAUTH_KEY}

    def test_expired_and_forged_tokens_fail_once(self):
        now = int(time.time())
        expired = jwt_hs256(OAUTH_KEY, {"sub": "alice", "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})
        forged = token_for("bob", key=b"some-other-key-than-dovecots-0123")
        d1 = self.daemon("alice", auth="xoauth2", password=expired)
        d2 = self.daemon("bob", auth="oauthbearer", password=forged)
        d1.start()
        d2.start()
        for d, user, token, mech in ((d1, "alice", expired, "XOAUTH2"), (d2, "bob", forged, "OAUTHBEARER")):
            st = wait_for(lambda: (sync_status(d, user) or {}).get("state") == "auth_failed" and sync_status(d, user),
                          30, 0.05, "auth_failed for " + user)
            self.assertIn("AUTHENTICATIONFAILED", st["last_error"])
            self.assertIn("mechanism=" + mech, d.log().replace('"', ""))
        time.sleep(3)
        for d, user, token in ((d1, "alice", expired), (d2, "bob", forged)):
            self.assertEqual(d.log().count("upstream.login_failed"), 1, "retried a refused token")
            self.assertNotIn(token, d.log())
            self.assertNotIn(token.rsplit(".", 1)[-1], d.log())
            self.assertEqual(sync_status(d, user)["state"], "auth_failed")
        self.assertEqual(re.findall(r"Login: user=", self.dc.log()), [])
        self.assertEqual(len(re.findall(r"auth failed, 1 attempts.*user=<alice>, method=XOAUTH2", self.dc.log())), 1)
        self.assertEqual(len(re.findall(r"auth failed, 1 attempts.*user=<bob>, method=OAUTHBEARER", self.dc.log())), 1)


if __name__ == "__main__":
    unittest.main()
