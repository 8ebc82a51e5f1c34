"""Real IMAP clients against the real mailbridged: curl's IMAP (LIST, APPEND
by upload, SEARCH, FETCH by UID, STARTTLS and implicit TLS) and mbsync
syncing the server with a local Maildir both ways (new mail, flag changes
and deletes round-trip)."""
import imaplib
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import Daemon
from test_imap import MESSAGE, host_port, password_for

CURL = shutil.which("curl")
MBSYNC = shutil.which("mbsync")


class ImapClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon().start()
        cls.user, cls.password = password_for(cls.d)
        cls.host, cls.port = host_port(cls.d.listeners["imap"])
        cls.tls_port = host_port(cls.d.listeners["imaps"])[1]
        cls.cert = os.path.join(cls.d.state_dir, "tls", "cert.pem")
        cls.tmp = tempfile.mkdtemp(prefix="mb-clients-")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def imap(self):
        m = imaplib.IMAP4(self.host, self.port, timeout=20)
        m.login(self.user, self.password)
        self.addCleanup(m.logout)
        return m

    def curl(self, url, *args):
        p = subprocess.run([CURL, "-sS", "--max-time", "20", "-u", "%s:%s" % (self.user, self.password),
                            "--cacert", self.cert, url] + list(args), capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout

    @unittest.skipUnless(CURL, "curl not installed")
    def test_curl(self):
        base = "imap://localhost:%d" % self.port
        listing = self.curl(base + "/")
        self.assertIn(b'"/" INBOX', listing)
        self.assertIn(b"\\Sent", listing)
        path = os.path.join(self.tmp, "msg.eml")
        with open(path, "wb") as f:
            f.write(MESSAGE.replace(b"hello imap", b"via curl"))
        self.curl(base + "/Drafts", "-T", path)
        found = self.curl(base + "/Drafts?SUBJECT%20%22via%20curl%22")
        uid = int(re.search(rb"\* SEARCH (\d+)", found).group(1))
        body = self.curl(base + "/Drafts;UID=%d" % uid)
        self.assertEqual(body, MESSAGE.replace(b"hello imap", b"via curl"))
        part = self.curl(base + "/Drafts;UID=%d/;SECTION=1" % uid)
        self.assertEqual(part, b"first part")
        # STARTTLS required, then implicit TLS.
        self.assertIn(b"INBOX", self.curl(base + "/", "--ssl-reqd"))
        tls = "imaps://localhost:%d" % self.tls_port
        self.assertEqual(self.curl(tls + "/Drafts;UID=%d" % uid), MESSAGE.replace(b"hello imap", b"via curl"))
        self.assertIn(b"* OK", self.curl(base + "/Drafts", "-X", "EXAMINE Drafts"))

    @unittest.skipUnless(MBSYNC, "mbsync (isync) not installed")
    def test_mbsync_round_trip(self):
        m = self.imap()
        m.create("Sync")
        for i in range(3):
            m.append("Sync", "(\\Seen)" if i == 0 else None, None, MESSAGE.replace(b"hello imap", b"sync %d" % i))
        maildir = os.path.join(self.tmp, "mail")
        os.makedirs(maildir, exist_ok=True)
        conf = os.path.join(self.tmp, "mbsyncrc")
        with open(conf, "w") as f:
            f.write("""IMAPAccount mb
Host localhost
Port %d
User %s
Pass %s
SSLType STARTTLS
CertificateFile %s
AuthMechs LOGIN

IMAPStore far
Account mb

MaildirStore near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :far:
Near :near:
Patterns Sync
Create Both
Expunge Both
SyncState *
""" % (self.port, self.user, self.password, self.cert, maildir, maildir))

        def sync():
            p = subprocess.run([MBSYNC, "-c", conf, "-a"], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

        def local_files():
            out = {}
            for sub in ("cur", "new"):
                d = os.path.join(maildir, "Sync", sub)
                for name in os.listdir(d):
                    with open(os.path.join(d, name), "rb") as f:
                        subject = re.search(rb"Subject: (.*)\r?\n", f.read()).group(1).decode()
                    out[subject] = os.path.join(d, name)
            return out

        sync()
        files = local_files()
        self.assertEqual(sorted(files), ["sync 0", "sync 1", "sync 2"])
        self.assertTrue(files["sync 0"].endswith("S"))  # \Seen arrived as the S flag

        # Near -> far: flag one message, delete another.
        f1 = files["sync 1"]
        os.rename(f1, f1.replace("/new/", "/cur/").split(":2,")[0] + ":2,F")
        os.unlink(files["sync 2"])
        sync()
        m.select("Sync")
        typ, data = m.search(None, "ALL")
        self.assertEqual(len(data[0].split()), 2)
        typ, data = m.search(None, "FLAGGED")
        self.assertEqual(len(data[0].split()), 1)
        typ, data = m.fetch(data[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"sync 1", data[0][1])

        # Far -> near: a new message, a flag change and a delete on the server.
        m.append("Sync", None, None, MESSAGE.replace(b"hello imap", b"sync 3"))
        typ, data = m.search(None, "SUBJECT", '"sync 0"')
        m.store(data[0], "+FLAGS", "\\Answered")
        typ, data = m.search(None, "SUBJECT", '"sync 1"')
        m.store(data[0], "+FLAGS", "\\Deleted")
        m.expunge()
        sync()
        files = local_files()
        self.assertEqual(sorted(files), ["sync 0", "sync 3"])
        self.assertRegex(files["sync 0"], r":2,[A-Z]*R")


if __name__ == "__main__":
    unittest.main()
