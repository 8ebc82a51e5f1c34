"""Upstream IMAP sync with bodies "on_demand" against a private Dovecot: the
initial sync stores headers only (no body blobs on disk) and local clients
(python imaplib) see every message with the upstream's flags, INTERNALDATE,
RFC822.SIZE, ENVELOPE and header; FETCH BODY[] brings the upstream's bytes
(once); with Dovecot stopped a body not fetched yet answers NO [UNAVAILABLE]
while stored ones and headers keep working; kill -9 while bodies are being
fetched duplicates nothing; a refused login answers NO [UNAVAILABLE] too; switching the account to "full" fills in the
missing bodies in the background. Large bodies are fetched in chunks bounded by size; a login refused
to the body fetcher is not retried for every request. BODYSTRUCTURE is the provider's, stored with the
header (no body fetched for it); a body gone upstream costs only itself; a COPY whose provider copy is
never mapped gets its body through its source."""
import os
import re
import signal
import sqlite3
import socket
import time
import unittest

from servers import imap_mailbox
from test_smtp import host_port, password_for
from test_sync import _SyncBase, gen_message, load_generated, message_ids, sync_status, wait_for, wait_idle

FOLDERS = {"INBOX": 230, "Archive": 30}


def blob_files(state_dir):
    root = os.path.join(state_dir, "blobs")
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        if os.path.relpath(dirpath, root) != "tmp":  # blobs being written
            n += len(files)
    return n


def bodiless(state_dir, account):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "mailbridge.db"), uri=True, timeout=10)
    try:
        return db.execute(
            "SELECT count(*) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id JOIN accounts a "
            "ON b.account_id = a.id WHERE a.name = ? AND m.body_missing = 1", (account,)).fetchone()[0]
    finally:
        db.close()


def local_rows(state_dir, account, mailbox):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "mailbridge.db"), uri=True, timeout=10)
    try:
        return db.execute(
            "SELECT m.message_id FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id JOIN accounts a "
            "ON b.account_id = a.id WHERE a.name = ? AND b.name = ?", (account, mailbox)).fetchall()
    finally:
        db.close()


def paren_item(text, name):
    """The parenthesized value of a FETCH item (ENVELOPE, FLAGS), quotes respected."""
    at = text.index(name + b" (") + len(name) + 1
    depth, i, quoted = 0, at, False
    while True:
        ch = text[i:i + 1]
        if quoted:
            if ch == b"\\":
                i += 1
            elif ch == b'"':
                quoted = False
        elif ch == b'"':
            quoted = True
        elif ch == b"(":
            depth += 1
        elif ch == b")":
            depth -= 1
            if depth == 0:
                return text[at:i + 1]
        i += 1


def fetch_all(conn, mailbox, items):
    """FETCH 1:* items of a mailbox selected read-only: imaplib's data list."""
    typ, _ = conn.select(imap_mailbox(mailbox), readonly=True)
    assert typ == "OK", typ
    typ, data = conn.fetch("1:*", items)
    assert typ == "OK", (typ, data)
    return data


def meta_by_message_id(conn, mailbox):
    """Message-ID -> (flags, INTERNALDATE, RFC822.SIZE, ENVELOPE, header bytes)."""
    data = fetch_all(conn, mailbox, "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY.PEEK[HEADER])")
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        line, header = item
        flags = sorted(paren_item(line, b"FLAGS")[1:-1].split())
        date = re.search(rb'INTERNALDATE "([^"]+)"', line).group(1)
        size = int(re.search(rb"RFC822\.SIZE (\d+)", line).group(1))
        envelope = paren_item(line, b"ENVELOPE")
        mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", header).group(1)
        out[mid] = (flags, date, size, envelope, header)
    return out


def structures_by_message_id(conn, mailbox):
    """Message-ID -> BODYSTRUCTURE (its bytes as the server sent them)."""
    data = fetch_all(conn, mailbox, "(ENVELOPE BODYSTRUCTURE)")
    out = {}
    for line in data:
        if isinstance(line, tuple):
            line = b"".join(line)
        envelope = paren_item(line, b"ENVELOPE")
        mid = re.search(rb'"(<[^"]*>)"\)$', envelope).group(1)
        out[mid] = paren_item(line, b"BODYSTRUCTURE")
    return out


def body_of(conn, seq):
    """(status, (BODY[] bytes, RFC822.SIZE)) from the local server, or (status, data)."""
    typ, data = conn.fetch(str(seq), "(RFC822.SIZE BODY.PEEK[])")
    if typ != "OK":
        return typ, data
    item = next(x for x in data if isinstance(x, tuple))
    return typ, (item[1], int(re.search(rb"RFC822\.SIZE (\d+)", item[0]).group(1)))


class OnDemandTest(_SyncBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        load_generated(cls.dc, "alice", FOLDERS)

    def upstream_by_id(self, mailbox):
        return {re.search(rb"(?im)^Message-ID:\s*(\S+)", m).group(1): m for m in self.dc.fetch_all("alice", mailbox)}

    def test_headers_first_bodies_on_demand(self):
        d = self.daemon("alice", bodies="on_demand")
        d.start()
        wait_idle(d, "alice", 120)
        total = sum(FOLDERS.values())
        # Every message is there, none has a body, and no body is on disk.
        self.assertEqual(bodiless(d.state_dir, "alice"), total)
        self.assertEqual(blob_files(d.state_dir), 0)
        st = sync_status(d, "alice")
        self.assertEqual((st["bodies"], st["bodies_missing"], st["bodies_fetched_on_demand"], st["bodies_failed"]),
                         ("on_demand", total, 0, 0))

        # Flags, INTERNALDATE, RFC822.SIZE, ENVELOPE and the header as the
        # upstream gives them.
        up = self.dc.imap("alice")
        li = self.local_imap(d, "alice")
        for folder in FOLDERS:
            want = meta_by_message_id(up, folder)
            got = meta_by_message_id(li, folder)
            self.assertEqual(len(got), FOLDERS[folder])
            self.assertEqual(set(got), set(want))
            for mid in want:
                self.assertEqual(got[mid], want[mid], mid)
        up.logout()
        # SEARCH on header fields, non-ASCII (RFC 2047) subjects included.
        li.select(imap_mailbox("INBOX"))
        typ, data = li.search(None, "SUBJECT", '"Nachricht 200"')
        self.assertEqual(len(data[0].split()), 1)
        li.literal = "Z\u00fcrich".encode()
        typ, data = li.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT")
        self.assertEqual(len(data[0].split()), len([i for i in range(FOLDERS["INBOX"]) if i % 3 == 0]))
        typ, data = li.search(None, "HEADER", "Message-ID", "<INBOX.7@gen.example.test>")
        self.assertEqual(len(data[0].split()), 1)
        self.assertEqual(blob_files(d.state_dir), 0, "header answers read bodies")
        # BODYSTRUCTURE is the provider's, stored with the header: no body is
        # fetched for it, and it stays the same once the body is there.
        up = self.dc.imap("alice")
        want_structures = structures_by_message_id(up, "INBOX")
        up.logout()
        got_structures = structures_by_message_id(li, "INBOX")
        self.assertEqual(len(got_structures), FOLDERS["INBOX"])
        self.assertEqual(got_structures, want_structures)
        self.assertEqual(blob_files(d.state_dir), 0, "BODYSTRUCTURE fetched bodies")
        self.assertEqual(bodiless(d.state_dir, "alice"), total)
        li.select(imap_mailbox("INBOX"))

        # BODY[] of a few (8: with an attachment) brings the upstream's bytes,
        # and RFC822.SIZE was already right.
        upstream = self.upstream_by_id("INBOX")
        for seq in (1, 8, 9):
            typ, (body, size) = body_of(li, seq)
            self.assertEqual(typ, "OK")
            mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", body).group(1)
            self.assertEqual(body, upstream[mid])
            self.assertEqual(size, len(body))
        self.assertEqual(blob_files(d.state_dir), 3)
        self.assertEqual(bodiless(d.state_dir, "alice"), total - 3)
        # The status counts them before the FETCH is answered.
        st = sync_status(d, "alice")
        self.assertEqual((st["bodies_missing"], st["bodies_fetched_on_demand"], st["bodies_failed"]), (total - 3, 3, 0))
        # BODYSTRUCTURE and SEARCH BODY work on a fetched one.
        typ, data = li.fetch("8", "(BODYSTRUCTURE)")
        self.assertEqual(typ, "OK")
        self.assertIn(b'"application" "octet-stream"', data[0])
        self.assertEqual(paren_item(data[0], b"BODYSTRUCTURE"), got_structures[b"<INBOX.7@gen.example.test>"])
        typ, data = li.fetch("8", "(BODYSTRUCTURE BODY.PEEK[1.MIME])")  # with the analysis read too
        self.assertEqual(typ, "OK")
        self.assertEqual(paren_item(data[0][0], b"BODYSTRUCTURE"), got_structures[b"<INBOX.7@gen.example.test>"])
        # COPY of a message without its body needs none: the provider copies
        # it, and the copy's body is fetched from there.
        self.assertEqual(li.copy("30", imap_mailbox("Archive"))[0], "OK")
        self.assertEqual(blob_files(d.state_dir), 3)
        wait_idle(d, "alice", 30)
        self.assertEqual(message_ids(self.dc.fetch_all("alice", "Archive"))[b"<INBOX.29@gen.example.test>"], 1)
        li.select(imap_mailbox("Archive"))
        typ, (body, size) = body_of(li, FOLDERS["Archive"] + 1)
        self.assertEqual(typ, "OK")
        self.assertEqual(body, upstream[b"<INBOX.29@gen.example.test>"])
        li.logout()

        # The upstream is down: a body not fetched yet is UNAVAILABLE, a
        # stored one, headers and flags keep working.
        self.dc.stop()
        li = self.local_imap(d, "alice")
        li.select(imap_mailbox("INBOX"))
        typ, data = li.fetch("20", "(BODY.PEEK[])")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[UNAVAILABLE]", data[0])
        typ, (body, _size) = body_of(li, 8)
        self.assertEqual(typ, "OK")
        self.assertEqual(body, upstream[b"<INBOX.7@gen.example.test>"])
        typ, data = li.fetch("20", "(FLAGS ENVELOPE)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"ENVELOPE", data[0])
        self.assertEqual(li.store("20", "+FLAGS", "(\\Flagged)")[0], "OK")
        li.logout()

        # Back up: the same FETCH works.
        self.dc.start(keep_ports=True)
        li = self.local_imap(d, "alice")
        li.select(imap_mailbox("INBOX"))
        typ, (body, size) = body_of(li, 20)
        self.assertEqual(typ, "OK")
        self.assertEqual(body, upstream[b"<INBOX.19@gen.example.test>"])
        li.logout()
        self.assertEqual(blob_files(d.state_dir), 5)
        # The copy came without its body; 5 fetched, the one refused while
        # the provider was down failed.
        st = sync_status(d, "alice")
        self.assertEqual((st["bodies_missing"], st["bodies_fetched_on_demand"], st["bodies_failed"]),
                         (total + 1 - 5, 5, 1))
        self.assertEqual(st["bodies_missing"], bodiless(d.state_dir, "alice"))

        # kill -9 while a FETCH of every body is being served: after the
        # restart nothing is duplicated and the bodies are served.
        host, port = host_port(d.listeners["imap"])
        login, password = password_for(d, "alice")
        s = socket.create_connection((host, port), timeout=20)
        s.recv(4096)
        s.sendall(b'a LOGIN "%s" "%s"\r\nb SELECT INBOX\r\nc FETCH 1:* (BODY.PEEK[])\r\n'
                  % (login.encode(), password.encode()))
        wait_for(lambda: "sync.bodies_fetch" in d.log(), 30, 0.005, "a body fetch in flight")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        s.close()
        d.start()
        wait_idle(d, "alice", 60)
        for folder in FOLDERS:  # (Archive holds the copy too, upstream and here)
            self.assertEqual(sorted(r[0].encode() for r in local_rows(d.state_dir, "alice", folder)),
                             sorted(message_ids(self.dc.fetch_all("alice", folder)).elements()), folder)
        li = self.local_imap(d, "alice")
        li.select(imap_mailbox("INBOX"))
        for seq in (100, 230):
            typ, (body, size) = body_of(li, seq)
            self.assertEqual(typ, "OK")
            mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", body).group(1)
            self.assertEqual(body, upstream[mid])
            self.assertEqual(size, len(body))
        # SEARCH BODY fetches the bodies it lacks first (Archive: all of them).
        li.select(imap_mailbox("Archive"))
        typ, data = li.search(None, "BODY", '"Body of message 7 in Archive"')
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0].split(), [b"8"])
        li.select(imap_mailbox("INBOX"))
        # A body fetched once is not fetched again.
        log_before = d.log().count("sync.bodies_fetched")
        body_of(li, 100)
        self.assertEqual(d.log().count("sync.bodies_fetched"), log_before)
        li.logout()

        # The provider refuses the login (a wrong password): a missing body
        # is UNAVAILABLE at once, stored ones are served.
        d.stop()
        cfg = dict(d.config)
        cfg["accounts"] = [self.account("alice", password="wrong", bodies="on_demand")]
        d.write_config(cfg)
        d.start()
        wait_for(lambda: (sync_status(d, "alice") or {}).get("state") == "auth_failed", 30, 0.1, "auth_failed")
        li = self.local_imap(d, "alice")
        li.select(imap_mailbox("INBOX"))
        typ, data = li.fetch("50", "(BODY.PEEK[])")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[UNAVAILABLE]", data[0])
        self.assertIn(b"refused the login", data[0])
        typ, (body, _size) = body_of(li, 100)
        self.assertEqual(typ, "OK")
        li.logout()

        # Switched to "full": the missing bodies arrive in the background and
        # equal the upstream's.
        d.stop()
        cfg = dict(d.config)
        cfg["accounts"] = [self.account("alice", bodies="full")]
        d.write_config(cfg)
        d.start()
        self.assertEqual(sync_status(d, "alice")["bodies"], "full")
        wait_for(lambda: sync_status(d, "alice")["bodies_missing"] == 0, 120, 0.1, "bodies_missing 0")
        self.assertEqual(bodiless(d.state_dir, "alice"), 0)
        wait_idle(d, "alice", 60)
        st = sync_status(d, "alice")
        self.assertEqual((st["bodies_missing"], st["bodies_fetched_on_demand"], st["bodies_failed"]), (0, 0, 0))
        for folder in FOLDERS:
            self.assert_same(d, "alice", folder)

    def test_a_body_gone_upstream_does_not_fail_the_others(self):
        # Archive is not watched with IDLE and the poll is an hour away, so
        # the local rows outlive the provider's expunge of message 3.
        load_generated(self.dc, "carol", {"Archive": 5})
        d = self.daemon("carol", bodies="on_demand", poll=3600)
        d.start()
        wait_idle(d, "carol", 60)
        up = self.dc.imap("carol")
        up.select(imap_mailbox("Archive"))
        self.assertEqual(up.store("3", "+FLAGS", "(\\Deleted)")[0], "OK")
        self.assertEqual(up.expunge()[0], "OK")
        up.logout()
        upstream = {re.search(rb"(?im)^Message-ID:\s*(\S+)", m).group(1): m
                    for m in self.dc.fetch_all("carol", "Archive")}
        li = self.local_imap(d, "carol")
        li.select(imap_mailbox("Archive"))
        for attempt in range(2):  # the second time: 4 stored, the lost one asked for again
            typ, data = li.fetch("1:5", "(BODY.PEEK[])")
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[UNAVAILABLE] 1 message bodies", data[0])
            got = [x[1] for x in li.response("FETCH")[1] if isinstance(x, tuple)]
            self.assertEqual(len(got), 4, attempt)
            for body in got:
                self.assertEqual(body, upstream[re.search(rb"(?im)^Message-ID:\s*(\S+)", body).group(1)])
        self.assertEqual(bodiless(d.state_dir, "carol"), 1)
        st = sync_status(d, "carol")
        self.assertEqual((st["bodies_fetched_on_demand"], st["bodies_failed"]), (4, 2))
        li.logout()


if __name__ == "__main__":
    unittest.main()


def big_message(i, lines=45000):
    """A ~3.9 MB plain-text message; the last line of message 9 says 'needle'."""
    head = ("From: big@example.test\r\nTo: bob@example.test\r\nSubject: big %d\r\n"
            "Message-ID: <big.%d@gen.example.test>\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n" % (i, i))
    body = ("lorem%d ipsum dolor sit amet " % i) * 3 + "\r\n"
    tail = "needle\r\n" if i == 9 else "haystack\r\n"
    return (head + body * lines + tail).encode()


class OnDemandLimitsTest(_SyncBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dc.bulk_load("bob", [(big_message(i), (), 1700000000 + i) for i in range(10)], "INBOX")

    def fetches_logged(self, d):
        return [int(n) for n in re.findall(r"sync\.bodies_fetch\b.*?\bmessages=(\d+)", d.log())]

    def test_large_bodies_go_in_bounded_chunks(self):
        # SEARCH BODY needs all ten bodies (~39 MB): the fetcher takes them in
        # UID FETCHes of at most 32 MiB by RFC822.SIZE (plus one message), so
        # a search over large attachments never holds every body in memory.
        d = self.daemon("bob", bodies="on_demand")
        d.start()
        wait_idle(d, "bob", 120)
        self.assertEqual(bodiless(d.state_dir, "bob"), 10)
        li = self.local_imap(d, "bob")
        li.select("INBOX")
        typ, data = li.search(None, "BODY", "needle")
        self.assertEqual((typ, data[0].split()), ("OK", [b"10"]))
        chunks = self.fetches_logged(d)
        self.assertEqual(sum(chunks), 10, chunks)
        self.assertGreaterEqual(len(chunks), 2, chunks)
        self.assertLessEqual(max(chunks), 9, chunks)  # 9 x 3.9 MB passes 32 MiB
        self.assertEqual(bodiless(d.state_dir, "bob"), 0)

    def test_a_login_refused_to_the_body_fetcher_is_not_retried_per_request(self):
        # The sync logged in; then the password changes at the provider. The
        # first body request logs in and is refused; later ones fail at once
        # without another login (providers lock accounts that keep failing).
        d = self.daemon("bob", bodies="on_demand")
        d.start()
        wait_idle(d, "bob", 120)
        self.addCleanup(self.dc.add_users, {"bob": self.dc.users["bob"]})
        self.dc.add_users({"bob": "changed-at-the-provider"})
        li = self.local_imap(d, "bob")
        li.select("INBOX", readonly=True)
        for seq in ("1", "2", "3"):
            typ, data = li.fetch(seq, "(BODY.PEEK[])")
            self.assertEqual(typ, "NO", seq)
            self.assertIn(b"[UNAVAILABLE]", data[0])
            self.assertIn(b"refused the login", data[0])
        self.assertEqual(d.log().count("upstream.login_failed"), 1)
        # Stored headers keep working meanwhile.
        typ, data = li.fetch("1:10", "(RFC822.SIZE)")
        self.assertEqual((typ, len(data)), ("OK", 10))


class OnDemandUnmappedCopyTest(_SyncBase, unittest.TestCase):
    """A provider without UIDPLUS and a message without a Message-ID: the
    provider's copy of a local COPY is never mapped to the local one."""
    condstore = False
    uidplus = False

    def test_an_unmapped_copy_gets_its_body_through_its_source(self):
        raw = (b"From: nobody@example.test\r\nTo: dave@example.test\r\nSubject: no id\r\n"
               b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nthe body of a message without a Message-ID\r\n")
        self.dc.bulk_load("dave", [raw], "INBOX")
        self.dc.bulk_load("dave", [gen_message(0, "w")], "Work")
        d = self.daemon("dave", bodies="on_demand", poll=3600)
        d.start()
        wait_idle(d, "dave", 60)
        li = self.local_imap(d, "dave")
        li.select("INBOX")
        self.assertEqual(li.copy("1", "Work")[0], "OK")
        wait_idle(d, "dave", 30)  # the COPY is replayed; nothing can map its copy
        self.assertIn(b"without a Message-ID", b"".join(self.dc.fetch_all("dave", "Work")))
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.state_dir, "mailbridge.db"), uri=True, timeout=10)
        try:
            self.assertEqual(db.execute(
                "SELECT m.upstream_id, m.body_missing FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id "
                "WHERE b.name = 'Work' AND m.uid = 2").fetchall(), [(None, 1)])
        finally:
            db.close()
        li.select("Work")
        typ, got = body_of(li, 2)
        self.assertEqual(typ, "OK", got)
        self.assertEqual(got[0], raw)
        # The source got the same body with it: nothing more to fetch there.
        li.select("INBOX")
        typ, got = body_of(li, 1)
        self.assertEqual((typ, got[0]), ("OK", raw))
        self.assertEqual(sync_status(d, "dave")["bodies_fetched_on_demand"], 1)
        li.logout()
