"""Real IMAP clients against the real mailbridged: curl's IMAP (LIST, APPEND
by upload, SEARCH, FETCH by UID, STARTTLS and implicit TLS), mbsync
syncing the server with a local Maildir both ways (new mail, flag changes
and deletes round-trip) and mutt on a pseudo-terminal (server-side search,
copy, flag, delete + expunge)."""
import fcntl
import imaplib
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import tempfile
import termios
import time
import unittest

from harness import Daemon
from test_imap import MESSAGE, host_port, password_for

CURL = shutil.which("curl")
MBSYNC = shutil.which("mbsync")
MUTT = shutil.which("mutt")


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

    def run_mutt(self, folder, keys, timeout=60):
        """mutt on a pseudo-terminal (it needs one to open a mailbox), driven
        by `push`ed keys over STARTTLS; returns its exit code and screen bytes."""
        rc = os.path.join(self.tmp, "muttrc")
        with open(rc, "w") as f:
            f.write("\n".join([
                "set imap_user=%s" % self.user, "set imap_pass=%s" % self.password,
                "set folder=imap://localhost:%d/" % self.port, "set spoolfile=+INBOX",
                "set ssl_starttls=yes", "set ssl_force_tls=yes", "set certificate_file=%s" % self.cert,
                "set ssl_ca_certificates_file=%s" % self.cert,
                "set confirmappend=no", "set confirmcreate=no", "set move=no", "set quit=yes",
                "set delete=yes", "set mark_old=no", "set imap_passive=yes", "set imap_check_subscribed=no",
                "set timeout=1", "set sort=date-sent", "unset header_cache", "unset message_cachedir",
                "set mbox_type=mbox", "set record=", "set postponed=+Drafts", "set wait_key=no", ""]))
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
        env = dict(os.environ, TERM="xterm", HOME=self.tmp, LANG="C.UTF-8")
        p = subprocess.Popen([MUTT, "-n", "-F", rc, "-f", folder, "-e", "push '%s'" % keys],
                             stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        screen = b""
        deadline = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    screen += os.read(master, 65536)
                except OSError:
                    break
        if p.poll() is None:
            p.kill()
        code = p.wait()
        os.close(master)
        return code, screen

    @unittest.skipUnless(MUTT, "mutt not installed")
    def test_mutt(self):
        m = self.imap()
        m.create("Mutt")
        m.create("MuttCopy")
        for i in range(3):
            m.append("Mutt", None, imaplib.Time2Internaldate(1700000000 + i),
                     MESSAGE.replace(b"hello imap", b"mutt %d" % i).replace(b"first part", b"needle%d" % i))
        # Server-side body search (=b -> UID SEARCH BODY), copy the hit, flag
        # message 1, delete message 3, then sync (STORE + EXPUNGE) and quit.
        keys = ("<tag-pattern>=b needle1<enter><tag-prefix><copy-message>=MuttCopy<enter>"
                "<first-entry><flag-message><last-entry><delete-message><sync-mailbox><quit>")
        code, screen = self.run_mutt("imap://localhost:%d/Mutt" % self.port, keys)
        self.assertEqual(code, 0, screen[-2000:])
        m.select("MuttCopy", readonly=True)
        typ, data = m.fetch("1:*", "(BODY.PEEK[])")
        self.assertEqual([x[1] for x in data if isinstance(x, tuple)],
                         [MESSAGE.replace(b"hello imap", b"mutt 1").replace(b"first part", b"needle1")])
        m.select("Mutt", readonly=True)
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        got = {re.search(rb"Subject: (mutt \d)", x[1]).group(1): x[0] for x in data if isinstance(x, tuple)}
        self.assertEqual(sorted(got), [b"mutt 0", b"mutt 1"], screen[-2000:])
        self.assertIn(b"\\Flagged", got[b"mutt 0"])
        self.assertNotIn(b"\\Flagged", got[b"mutt 1"])


if __name__ == "__main__":
    unittest.main()
