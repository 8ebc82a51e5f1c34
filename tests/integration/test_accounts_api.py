"""Account management through the REST API against the real mailbridged:
create, read, patch, delete, persistence across restarts, upstream secrets
never in clear (API output, database and WAL bytes, log), bad bodies, tokens."""
import http.client
import imaplib
import json
import os
import secrets
import sqlite3
import time
import unittest

from harness import Daemon
from servers import Dovecot
from test_smtp import stored_messages


def upstream(password, port):
    # Nothing listens there: these tests are about the account, not the sync.
    return {"host": "127.0.0.1", "port": port, "security": "tls", "username": "remote-user", "password": password}


class AccountsApiTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon().start()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.stop)
        tag = secrets.token_hex(6)
        self.imap_secret = "imap-secret-" + tag
        self.smtp_secret = "smtp-secret-" + tag
        self.name = "acct-" + tag
        self.address = "zq%s@example.com" % tag

    def raw(self, method, path, body, token=True):
        """Sends `body` bytes as they are: (status, parsed JSON, raw text)."""
        host, port = self.d.listeners["api"].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + self.d.token
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        return resp.status, json.loads(text or "null"), text

    def create(self, **extra):
        body = {"name": self.name, "address": self.address, "imap": upstream(self.imap_secret, 1),
                "smtp": upstream(self.smtp_secret, 2)}
        body.update(extra)
        status, out, text = self.raw("POST", "/v1/accounts", json.dumps(body))
        self.assertEqual(status, 201, text)
        return out

    def state_files(self):
        out = {}
        for root, _, files in os.walk(self.d.state_dir):
            for f in files:
                path = os.path.join(root, f)
                with open(path, "rb") as fh:
                    out[path] = fh.read()
        return out

    def assert_nowhere_on_disk(self, *needles):
        """Neither the database, its WAL nor any other state file holds these bytes."""
        files = self.state_files()
        self.assertIn(os.path.join(self.d.state_dir, "mailbridge.db"), files)
        for path, data in files.items():
            for needle in needles:
                self.assertFalse(needle.encode() in data, "%r found in %s" % (needle, path))

    def blob_files(self):
        blobs = os.path.join(self.d.state_dir, "blobs")
        return {os.path.join(r, f) for r, _, fs in os.walk(blobs) for f in fs}

    def imap_login(self, username, password):
        host, port = self.d.listeners["imap"].rsplit(":", 1)
        c = imaplib.IMAP4(host, int(port))
        try:
            c.login(username, password)
        except imaplib.IMAP4.error:
            c.shutdown()
            raise
        return c

    def test_no_token_is_401(self):
        for method, path in [("POST", "/v1/accounts"), ("GET", "/v1/accounts/1"), ("PATCH", "/v1/accounts/1"),
                             ("DELETE", "/v1/accounts/1")]:
            status, body, _ = self.raw(method, path, "{}", token=False)
            self.assertEqual(status, 401, path)
            self.assertEqual(body["error"]["code"], "unauthorized")
        status, body = self.d.api("GET", "/v1/accounts/1", token="0" * 64)
        self.assertEqual(status, 401)

    def test_bad_bodies_are_400_naming_the_key(self):
        good = {"name": self.name, "address": self.address, "imap": upstream("x", 1)}
        cases = [
            ("{", "(top level): invalid JSON"),
            ("[]", "(top level): expected an object"),
            (dict(good, name="Bad Name"), "name: \"Bad Name\" is not a valid account name"),
            ({"address": self.address}, "name: is required"),
            (dict(good, address="nobody"), "address: \"nobody\" is not an e-mail address"),
            (dict(good, imap={"port": 993, "password": "x"}), "imap.host: is required"),
            (dict(good, imap=dict(upstream("x", 1), port=0)), "imap.port: must be between 1 and 65535"),
            (dict(good, imap=dict(upstream("x", 1), security="ssl")), "imap.security: expected one of"),
            (dict(good, imap=dict(upstream("x", 1), hots="h")), "imap.hots: unknown key"),
            (dict(good, smtp={"host": "h", "port": "25"}), "smtp.port: expected an integer, got a string"),
            (dict(good, imap=dict(upstream("x", 1), poll_seconds=1)), "imap.poll_seconds: must be between 5"),
            (dict(good, local={"password": "x"}), "local: unknown key"),
            (dict(good, imap={"host": "h", "password_command": "id"}),
             "imap.password_command: not accepted through the API"),
        ]
        for body, message in cases:
            text = body if isinstance(body, str) else json.dumps(body)
            status, out, raw = self.raw("POST", "/v1/accounts", text)
            self.assertEqual(status, 400, raw)
            self.assertEqual(out["error"]["code"], "invalid_request")
            self.assertTrue(out["error"]["message"].startswith(message), (message, out))
        # Nothing was created by any of them.
        _, accounts = self.d.api("GET", "/v1/accounts")
        self.assertEqual([a["name"] for a in accounts["accounts"]], ["local"])

    def test_create_get_patch_delete_restart(self):
        created = self.create()
        account_id = created["id"]
        self.assertEqual(created["local"]["username"], self.address)
        local_password = created["local"]["password"]
        self.assertGreaterEqual(len(local_password), 16)

        # GET shows the account and its upstreams, never a secret.
        status, got = self.d.api("GET", "/v1/accounts/%d" % account_id)
        self.assertEqual(status, 200)
        self.assertEqual((got["id"], got["name"], got["address"], got["source"], got["local_username"]),
                         (account_id, self.name, self.address, "api", self.address))
        self.assertEqual(got["imap"], {"host": "127.0.0.1", "port": 1, "security": "tls", "username": "remote-user"})
        self.assertEqual(got["smtp"]["port"], 2)
        for path in ["/v1/accounts/%d" % account_id, "/v1/accounts", "/v1/status"]:
            _, _, text = self.raw("GET", path, None)
            self.assertNotIn(self.imap_secret, text)
            self.assertNotIn(self.smtp_secret, text)

        # The local login works at once; a message gives the account rows and a blob.
        before = self.blob_files()
        c = self.imap_login(self.address, local_password)
        marker = "marker-" + self.name
        msg = ("From: a@example.com\r\nSubject: %s\r\n\r\n%s body\r\n" % (marker, marker)).encode()
        self.assertEqual(c.append("INBOX", None, None, msg)[0], "OK")
        c.logout()
        account_blobs = self.blob_files() - before
        self.assertEqual(len(account_blobs), 1)

        # Names and addresses are one namespace with the config file's accounts.
        for body in [{"name": self.name, "address": "other@example.com", "imap": upstream("x", 1)},
                     {"name": "local", "address": "other@example.com"},
                     {"name": "other", "address": "ME@localhost"}]:
            status, out, text = self.raw("POST", "/v1/accounts", json.dumps(body))
            self.assertEqual(status, 409, text)
            self.assertEqual(out["error"]["code"], "conflict")
        _, accounts = self.d.api("GET", "/v1/accounts")
        local_id = [a["id"] for a in accounts["accounts"] if a["name"] == "local"][0]
        self.assertEqual(self.d.api("PATCH", "/v1/accounts/%d" % local_id, body={"address": "x@y.test"})[0], 409)
        self.assertEqual(self.d.api("DELETE", "/v1/accounts/%d" % local_id)[0], 409)
        for method in ["GET", "PATCH", "DELETE"]:
            status, out = self.d.api(method, "/v1/accounts/999999", body={} if method == "PATCH" else None)
            self.assertEqual(status, 404, method)
        # A config file account with the same name is refused on reload, and nothing changes.
        cfg = dict(self.d.config)
        cfg["accounts"] = cfg["accounts"] + [{"name": self.name, "address": "file@example.com"}]
        self.d.write_config(cfg)
        status, out = self.d.api("POST", "/v1/reload")
        self.assertEqual(status, 409, out)
        self.assertIn(self.name, out["error"]["message"])
        cfg["accounts"] = cfg["accounts"][:1]
        self.d.write_config(cfg)

        # PATCH: a merge patch, validated again; the new secret replaces the old.
        new_secret = "imap-rotated-" + self.name
        status, got = self.d.api("PATCH", "/v1/accounts/%d" % account_id,
                                 body={"imap": {"port": 1993, "password": new_secret}, "smtp": None})
        self.assertEqual(status, 200, got)
        self.assertEqual(got["imap"]["port"], 1993)
        self.assertEqual(got["imap"]["username"], "remote-user")
        self.assertIsNone(got["smtp"])
        status, out = self.d.api("PATCH", "/v1/accounts/%d" % account_id, body={"imap": {"port": 0}})
        self.assertEqual(status, 400)
        self.assertTrue(out["error"]["message"].startswith("imap.port: must be between 1 and 65535"), out)
        status, out = self.d.api("PATCH", "/v1/accounts/%d" % account_id, body={"imap": {"password": None}})
        self.assertEqual(status, 400)
        self.assertTrue(out["error"]["message"].startswith("imap.password: is required"), out)
        status, out, _ = self.raw("PATCH", "/v1/accounts/%d" % account_id, "{nope")
        self.assertEqual(status, 400)
        status, got = self.d.api("GET", "/v1/accounts/%d" % account_id)
        self.assertEqual(got["imap"]["port"], 1993)  # the refused patches changed nothing

        # Secrets are sealed at rest: not in the database, the WAL or any state file.
        db = os.path.join(self.d.state_dir, "mailbridge.db")
        ro = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        sealed = ro.execute("SELECT field, sealed FROM account_secrets WHERE account_id = ?", (account_id,)).fetchall()
        settings = ro.execute("SELECT settings FROM accounts WHERE id = ?", (account_id,)).fetchone()[0]
        ro.close()
        self.assertEqual([f for f, _ in sealed], ["imap.password"])
        self.assertTrue(sealed[0][1].startswith("v1:"))
        self.assertNotIn("password", json.loads(settings)["imap"])
        self.assert_nowhere_on_disk(self.imap_secret, self.smtp_secret, new_secret)

        # Restart: the account is back from the store. Start-up parses it with
        # its opened secret (it would refuse a missing or unreadable one).
        self.assertEqual(self.d.stop()[0], 0)
        self.d.start()
        status, got = self.d.api("GET", "/v1/accounts/%d" % account_id)
        self.assertEqual(status, 200, got)
        self.assertEqual((got["name"], got["source"], got["imap"]["port"]), (self.name, "api", 1993))
        self.imap_login(self.address, local_password).logout()
        self.assert_nowhere_on_disk(self.imap_secret, self.smtp_secret, new_secret)

        # DELETE keeps nothing: rows, secrets, the message blob, any trace in the db/WAL bytes.
        status, out = self.d.api("DELETE", "/v1/accounts/%d" % account_id)
        self.assertEqual((status, out), (200, {"deleted": account_id}))
        self.assertEqual(self.d.api("GET", "/v1/accounts/%d" % account_id)[0], 404)
        for path in account_blobs:
            self.assertFalse(os.path.exists(path), path)
        ro = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        self.assertEqual(ro.execute("SELECT count(*) FROM account_secrets").fetchone()[0], 0)
        self.assertEqual(ro.execute("SELECT count(*) FROM accounts WHERE id = ?", (account_id,)).fetchone()[0], 0)
        ro.close()
        self.assert_nowhere_on_disk(marker, self.address, self.name, new_secret)
        with self.assertRaises(imaplib.IMAP4.error):
            self.imap_login(self.address, local_password)

        # And it stays gone after a restart.
        self.d.stop()
        self.d.start()
        _, accounts = self.d.api("GET", "/v1/accounts")
        self.assertEqual([a["name"] for a in accounts["accounts"]], ["local"])

        # No secret ever reached the log (debug level).
        log = self.d.log()
        for secret in [self.imap_secret, self.smtp_secret, new_secret, local_password]:
            self.assertNotIn(secret, log)

    def test_rename_and_new_address_move_the_local_login(self):
        created = self.create()
        account_id, password = created["id"], created["local"]["password"]
        new_address = "moved-" + self.address
        status, got = self.d.api("PATCH", "/v1/accounts/%d" % account_id,
                                 body={"name": self.name + "-2", "address": new_address})
        self.assertEqual(status, 200, got)
        self.assertEqual((got["name"], got["address"], got["local_username"]),
                         (self.name + "-2", new_address, new_address))
        # The upstream username was the given one, so it stays; the secret is kept.
        self.assertEqual(got["imap"]["username"], "remote-user")
        self.imap_login(new_address, password).logout()
        with self.assertRaises(imaplib.IMAP4.error):
            self.imap_login(self.address, password)


class ApiAccountSyncTest(unittest.TestCase):
    """An API account with an "imap" upstream is synced like a file account:
    the engine starts on POST, restarts on PATCH, comes back after a restart
    (with its sealed password opened) and stops on DELETE."""

    @classmethod
    def setUpClass(cls):
        cls.dc = Dovecot(users={"carol": "carol-pw-" + secrets.token_hex(4)}).start()

    @classmethod
    def tearDownClass(cls):
        cls.dc.cleanup()

    def sync_state(self, d, account_id):
        status, got = d.api("GET", "/v1/accounts/%d" % account_id)
        return got.get("sync") if status == 200 else None

    def wait(self, pred, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        self.fail("timed out waiting for " + what)

    def test_sync_follows_the_api(self):
        d = Daemon().start()
        self.addCleanup(d.cleanup)
        self.addCleanup(d.stop)
        password = self.dc.users["carol"]
        self.dc.deliver("carol", b"Message-ID: <one@example.test>\r\nSubject: one\r\n\r\nfirst\r\n")
        body = {"name": "carol", "address": "carol@example.test",
                "imap": {"host": "127.0.0.1", "port": self.dc.imap_port, "security": "none",
                         "username": "carol", "password": password}}
        status, created = d.api("POST", "/v1/accounts", body=body)
        self.assertEqual(status, 201, created)
        account_id = created["id"]

        def idle():
            s = self.sync_state(d, account_id)
            return s and s["state"] == "idle" and s["last_sync"]
        self.wait(idle, "first sync of the API account")
        self.assertEqual(len(stored_messages(d.state_dir, "carol")), 1)

        # A wrong password through PATCH restarts the engine with it.
        status, got = d.api("PATCH", "/v1/accounts/%d" % account_id, body={"imap": {"password": "wrong"}})
        self.assertEqual(status, 200, got)
        self.wait(lambda: (self.sync_state(d, account_id) or {}).get("state") == "auth_failed", "auth_failed")
        status, got = d.api("PATCH", "/v1/accounts/%d" % account_id, body={"imap": {"password": password}})
        self.assertEqual(status, 200, got)
        self.wait(idle, "idle again after the password was fixed")

        # After a restart the engine runs again: the sealed password opened.
        self.assertEqual(d.stop()[0], 0)
        self.dc.deliver("carol", b"Message-ID: <two@example.test>\r\nSubject: two\r\n\r\nsecond\r\n")
        d.start()
        self.wait(lambda: len(stored_messages(d.state_dir, "carol")) == 2, "the message delivered while stopped")
        self.assertNotIn(password, d.log())

        # DELETE stops the engine and removes the local copy.
        status, out = d.api("DELETE", "/v1/accounts/%d" % account_id)
        self.assertEqual(status, 200, out)
        self.assertEqual(stored_messages(d.state_dir, "carol"), [])
        log = d.log()
        stopped, removed = log.rfind("sync.stopped account=carol"), log.rfind("account.removed account=carol")
        self.assertTrue(0 <= stopped < removed, "the engine stops before the rows go")


if __name__ == "__main__":
    unittest.main()
