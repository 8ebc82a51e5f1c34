"""Real peer servers for integration tests and benchmarks: private Dovecot and
Postfix instances on 127.0.0.1 with ephemeral ports and private directories.

Nothing system-wide is touched: each instance lives in its own temp dir, is
started as a child process in its own session (so every descendant can be
found and waited for), and is stopped by PID. Needs root (Dovecot's mail
processes switch to an unprivileged numeric uid; Postfix's master runs as root
and drops to the postfix user) and the Debian packages from
`scripts/deps.sh --test`. See shared/REAL-SERVERS.md for the facts behind the
configuration.

    with Dovecot() as dc:                        # IMAP + LMTP (+ POP3)
        dc.add_user("alice", "pw")
        with Postfix(dc) as pf:                  # submission -> LMTP -> Dovecot
            smtplib.SMTP("127.0.0.1", pf.smtp_port) ...
            dc.wait_for_messages("alice", count=1)

Mail storage is maildir (one file per message): bulk_load() writes the files
directly (the fastest way to get 100k messages upstream; doveadm import and
APPEND are an order of magnitude slower) and then lets Dovecot index them.
"""
import base64
import hashlib
import hmac
import imaplib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
POSTFIX = "/usr/sbin/postfix"
POSTFIX_MASTER = "/usr/lib/postfix/sbin/master"
POSTMAP = "/usr/sbin/postmap"
SMTP_SOURCE = "/usr/sbin/smtp-source"   # load generator (benchmarks)
SMTP_SINK = "/usr/sbin/smtp-sink"       # fast SMTP sink; needs `-u nobody` as root
SWAKS = "/usr/bin/swaks"
OPENSSL = "openssl"

# Unprivileged numeric uid/gid that owns the mail dirs; it needs no passwd entry.
MAIL_UID = int(os.environ.get("MB_TEST_MAIL_UID", "64123"))
MAIL_GID = int(os.environ.get("MB_TEST_MAIL_GID", "64123"))

SPECIAL_USE = (("Sent", r"\Sent"), ("Drafts", r"\Drafts"), ("Trash", r"\Trash"),
               ("Junk", r"\Junk"), ("Archive", r"\Archive"))

# Dovecot 2.3.19's post-login capability list minus CONDSTORE and QRESYNC.
_CAPS_NO_CONDSTORE = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
                      "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND "
                      "URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
                      "I18NLEVEL=1 ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "
                      "BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE "
                      "LITERAL+ NOTIFY SPECIAL-USE")


# ---------------------------------------------------------------- utilities

def jwt_hs256(key, claims, header=None):
    """An HS256-signed JWT (RFC 7519) over claims, header kid "default"."""
    def b64url(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = header or {"alg": "HS256", "typ": "JWT", "kid": "default"}
    signing = b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing + "." + b64url(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def tmp_root():
    """Where instances keep their files: $MB_TEST_TMPDIR, else /dev/shm when it
    is a roomy tmpfs (maildir writes on this machine's disk cost ~1-2 ms per
    file; on tmpfs ~30 us), else the system temp dir."""
    env = os.environ.get("MB_TEST_TMPDIR")
    if env:
        return env
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 4 << 30 and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    except OSError:
        pass
    return tempfile.gettempdir()


def free_port():
    """A port that was free a moment ago (the caller accepts the small race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_stat(pid):
    """(state, session id, start time) of pid from /proc, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    # fields after comm: state(3) ppid(4) pgrp(5) session(6) ... starttime(22)
    return rest[0], int(rest[3]), int(rest[19])


def session_members(sid):
    """Live (non-zombie) pids whose session id is sid."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st and st[1] == sid and st[0] != "Z":
                pids.append(int(name))
    return pids


def pid_alive(pid):
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z"


def _stop_session(proc, timeout):
    """SIGTERM the session leader we started, reap it, wait until every process
    of its session is gone; SIGKILL stragglers by pid after timeout. Returns
    seconds taken."""
    t0 = time.monotonic()
    if proc is None:
        return 0.0
    sid = proc.pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = t0 + timeout
    try:
        proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    # Leftovers are orphans of the master now (e.g. Dovecot's imap process for
    # a client that is still connected, and the log/stats processes it keeps
    # alive): give them a moment, then SIGTERM, then SIGKILL, each by pid.
    master_gone = time.monotonic()
    termed = False
    while True:
        left = session_members(sid)
        if not left:
            break
        now = time.monotonic()
        sig = None
        if now > deadline:
            sig, deadline = signal.SIGKILL, now + 5
        elif not termed and now - master_gone > 0.3:
            sig, termed = signal.SIGTERM, True
            deadline = min(deadline, now + 3)
        for pid in left if sig else ():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return time.monotonic() - t0


def make_cert(directory, cn="localhost"):
    """Self-signed EC cert for localhost/127.0.0.1: (cert path, key path)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "30", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o644)  # read by unprivileged server processes; test-only key
    return cert, key


def _wait_greeting(port, prefix, timeout, alive):
    """Connects until the server greets with prefix; alive() false aborts."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(prefix):
                    return True
                last = data
        except OSError as e:
            last = e
        time.sleep(0.02)
    raise RuntimeError("no %r greeting on port %d: %r" % (prefix, port, last))


def _makedirs_owned(path, uid=MAIL_UID, gid=MAIL_GID):
    """mkdir -p, chowning every directory it creates to uid:gid."""
    if os.path.isdir(path):
        return
    _makedirs_owned(os.path.dirname(path), uid, gid)
    os.mkdir(path, 0o700)
    os.chown(path, uid, gid)


def mutf7_encode(name):
    """IMAP modified UTF-7 (RFC 3501 5.1.3) for mailbox names."""
    import base64
    out, buf = [], []

    def flush():
        if buf:
            b = base64.b64encode("".join(buf).encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            out.append("&" + b.decode() + "-")
            buf.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def imap_mailbox(name):
    """A mailbox name as an IMAP astring argument for imaplib (quoted, mUTF-7)."""
    enc = mutf7_encode(name)
    return '"' + enc.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _imap_flags(flags):
    return "(" + " ".join(flags) + ")" if flags else None


def fetch_all_imap(conn, mailbox="INBOX"):
    """Raw bytes of every message in mailbox, in UID order, over an open
    imaplib connection (selects the mailbox read-only)."""
    typ, data = conn.select(imap_mailbox(mailbox), readonly=True)
    if typ != "OK":
        raise RuntimeError("SELECT %s: %r" % (mailbox, data))
    if int(data[0]) == 0:
        return []
    typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
    if typ != "OK":
        raise RuntimeError("FETCH: %r" % (data,))
    msgs = []
    for item in data:
        if isinstance(item, tuple):
            m = re.search(rb"UID (\d+)", item[0])
            msgs.append((int(m.group(1)) if m else 0, item[1]))
    msgs.sort(key=lambda x: x[0])
    return [m for _, m in msgs]


def split_message(raw):
    """(header bytes, body bytes) split at the first empty line (CRLF or LF)."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if not m:
        return raw, b""
    return raw[:m.start()], raw[m.end():]


# ---------------------------------------------------------------- Dovecot

class Dovecot:
    """One private Dovecot 2.3 instance (IMAP, optional POP3 and LMTP).

    condstore=False makes the IMAP port behave like a server without RFC 7162:
    Dovecot gets an explicit imap_capability without CONDSTORE/QRESYNC, and
    since Dovecot 2.3 still honours ENABLE CONDSTORE and CONDSTORE-enabling
    arguments even when not advertised, clients reach it through a small
    literal-aware filter proxy that answers ENABLE CONDSTORE/QRESYNC with no
    ENABLED line, rejects commands with MODSEQ/CHANGEDSINCE/... arguments with
    BAD, and drops HIGHESTMODSEQ/NOMODSEQ response codes. (STARTTLS is not
    offered on that port.)

    uidplus=False (with condstore=False) also hides UIDPLUS: the capability
    and the APPENDUID/COPYUID response codes, and UID EXPUNGE gets BAD.

    auth_mechanisms: Dovecot's auth_mechanisms (e.g. "login" alone, so that a
    client using PLAIN or the LOGIN command is refused). oauth2_hmac_key
    (bytes): adds XOAUTH2 and OAUTHBEARER backed by Dovecot's oauth2 passdb
    validating HS256 JWTs locally with this key (header kid "default", no azp;
    sub is the username): mint tokens with jwt_hs256().
    """

    def __init__(self, condstore=True, pop3=True, lmtp=True, tls=False, domain="example.test",
                 separator="/", users=None, auth_failure_delay=0, extra_conf="", uidplus=True,
                 auth_mechanisms="plain login", oauth2_hmac_key=None):
        self.condstore, self.pop3, self.lmtp, self.tls = condstore, pop3, lmtp, tls
        self.uidplus = uidplus
        if not uidplus and condstore:
            raise ValueError("uidplus=False needs condstore=False (the filter proxy hides both)")
        if tls and not condstore:
            raise ValueError("condstore=False does not support tls (the filter proxy is plaintext)")
        self.domain, self.separator = domain, separator
        self.auth_failure_delay, self.extra_conf = auth_failure_delay, extra_conf
        self.auth_mechanisms, self.oauth2_hmac_key = auth_mechanisms, oauth2_hmac_key
        self.tmp = tempfile.mkdtemp(prefix="mb-dovecot-", dir=tmp_root())
        os.chmod(self.tmp, 0o755)  # mail processes (uid MAIL_UID) traverse it
        self.conf_path = os.path.join(self.tmp, "dovecot.conf")
        self.passwd_path = os.path.join(self.tmp, "passwd")
        self.base_dir = os.path.join(self.tmp, "run")
        self.state_dir = os.path.join(self.tmp, "state")
        self.log_path = os.path.join(self.tmp, "dovecot.log")
        self.home_root = os.path.join(self.tmp, "home")
        os.makedirs(self.home_root)
        os.makedirs(self.state_dir)
        self.instance_name = "mb-dovecot-" + os.path.basename(self.tmp).split("-")[-1]
        self.users = {}
        self._passwd_mtime = 0
        self._listeners = []     # callables run after add_user (Postfix maps)
        self.proc = None
        self._proxy = None
        self._ports = {}
        self._conns = {}
        self._conn_lock = threading.Lock()
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_cert(self.tmp)
        self.add_users(users or {})

    # -- configuration
    @property
    def imap_port(self):
        return self._proxy.port if self._proxy else self._ports["imap"]

    @property
    def dovecot_imap_port(self):
        """Dovecot's own IMAP port (behind the filter proxy when condstore=False)."""
        return self._ports["imap"]

    @property
    def pop3_port(self):
        return self._ports.get("pop3")

    @property
    def lmtp_port(self):
        return self._ports.get("lmtp")

    @property
    def imaps_port(self):
        return self._ports.get("imaps")

    @property
    def auth_socket(self):
        """Postfix SASL socket (smtpd_sasl_path, dovecot type)."""
        return os.path.join(self.base_dir, "auth-postfix")

    def address(self, user):
        return user if "@" in user else "%s@%s" % (user, self.domain)

    def home(self, user):
        return os.path.join(self.home_root, user)

    def _config(self):
        p = self._ports
        protocols = ["imap"] + (["pop3"] if self.pop3 else []) + (["lmtp"] if self.lmtp else [])
        ssl = "ssl = no\n"
        if self.tls:
            ssl = "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % (self.cert, self.key)
        boxes = "".join("  mailbox %s {\n    special_use = %s\n    auto = subscribe\n  }\n" % (n, u)
                        for n, u in SPECIAL_USE)
        caps = "" if self.condstore else "  imap_capability = %s\n" % (
            _CAPS_NO_CONDSTORE if self.uidplus else _CAPS_NO_CONDSTORE.replace(" UIDPLUS", ""))
        conf = f"""# generated by tests/integration/servers.py
instance_name = {self.instance_name}
base_dir = {self.base_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
listen = 127.0.0.1
protocols = {" ".join(protocols)}
{ssl}disable_plaintext_auth = no
auth_mechanisms = {self.auth_mechanisms}{" xoauth2 oauthbearer" if self.oauth2_hmac_key else ""}
auth_failure_delay = {self.auth_failure_delay}s
first_valid_uid = {MAIL_UID}
last_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_GID}
last_valid_gid = {MAIL_GID}
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 1000
default_process_limit = 200
default_client_limit = 2000
namespace inbox {{
  inbox = yes
  separator = {self.separator}
{boxes}}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
{"  mechanisms = plain login" if self.oauth2_hmac_key else ""}
}}
{self._oauth2_passdb()}userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_path}
}}
# LMTP recipients arrive as user@domain: fall back to the local part.
userdb {{
  driver = passwd-file
  args = username_format=%n {self.passwd_path}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {p["imap"]}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {p.get("imaps", 0)}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {p.get("pop3", 0)}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {p.get("lmtp", 0)}
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
protocol imap {{
{caps}}}
protocol pop3 {{
  pop3_uidl_format = %08Xu%08Xv
}}
{self.extra_conf}
"""
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def _oauth2_passdb(self):
        if not self.oauth2_hmac_key:
            return ""
        # Keys are looked up as shared/<azp>/<alg>/<kid>; dict-fs drops
        # "shared/" and reads the base64 key from the file under its prefix.
        keys = os.path.join(self.tmp, "oauth2-keys")
        os.makedirs(os.path.join(keys, "default", "HS256"), exist_ok=True)
        with open(os.path.join(keys, "default", "HS256", "default"), "w") as f:
            f.write(base64.b64encode(self.oauth2_hmac_key).decode())
        ext = os.path.join(self.tmp, "dovecot-oauth2.conf.ext")
        with open(ext, "w") as f:
            f.write("introspection_mode = local\n"
                    "local_validation_key_dict = fs:posix:prefix=%s/\n"
                    "username_attribute = sub\n" % keys)
        return "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = %s\n}\n" % ext

    def _write_passwd(self):
        lines = "".join("%s:{PLAIN}%s:%d:%d::%s::\n" % (u, pw, MAIL_UID, MAIL_GID, self.home(u))
                        for u, pw in self.users.items())
        tmp = self.passwd_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(lines)
        os.chmod(tmp, 0o644)
        # passwd-file is re-read when its mtime changes: keep it strictly increasing
        # even for several changes within one second.
        self._passwd_mtime = max(int(time.time()), self._passwd_mtime + 1)
        os.utime(tmp, (self._passwd_mtime, self._passwd_mtime))
        os.rename(tmp, self.passwd_path)

    def add_user(self, name, password):
        """Adds (or re-passwords) a user; works before or after start()."""
        self.add_users({name: password})

    def add_users(self, users):
        """Adds several users at once (one passwd-file rewrite, one wait).

        After start() this waits for the next wall-clock second: Dovecot's
        passwd-file driver stats the file at most once per second (and
        compares mtime and size), so a change made in the second of the last
        lookup would go unseen until a lookup in a later second."""
        for name, password in users.items():
            if ":" in name or ":" in password or "\n" in name + password or "/" in name:
                raise ValueError("':', '/' and newlines are not allowed in passwd-file users")
        for name, password in users.items():
            home = self.home(name)
            os.makedirs(home, exist_ok=True)
            os.chown(home, MAIL_UID, MAIL_GID)
            self.users[name] = password
        self._write_passwd()
        if self.running():
            written = time.time()
            time.sleep(int(written) + 1.02 - written)
        for cb in self._listeners:
            cb()

    # -- lifecycle
    def start(self, timeout=15, attempts=3, keep_ports=False):
        """keep_ports: a restart on the ports of the previous run (clients
        configured with them reconnect to the same place)."""
        if self.proc and self.proc.poll() is None:
            return self
        t0 = time.monotonic()
        for attempt in range(attempts):
            if not (keep_ports and self._ports):
                self._ports = {"imap": free_port()}
                if self.tls:
                    self._ports["imaps"] = free_port()
                if self.pop3:
                    self._ports["pop3"] = free_port()
                if self.lmtp:
                    self._ports["lmtp"] = free_port()
            self._config()
            log = open(os.path.join(self.tmp, "dovecot.out"), "ab")
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf_path], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
            log.close()
            ok = _wait_greeting(self._ports["imap"], b"* OK", timeout,
                                lambda: self.proc.poll() is None)
            if ok:
                for proto in ("pop3", "lmtp"):
                    if proto in self._ports:
                        prefix = b"+OK" if proto == "pop3" else b"220"
                        _wait_greeting(self._ports[proto], prefix, timeout, lambda: self.proc.poll() is None)
                if not self.condstore:
                    self._proxy = _CondstoreFilterProxy(self._ports["imap"], uidplus=self.uidplus)
                self.start_seconds = time.monotonic() - t0
                return self
            _stop_session(self.proc, 5)
        raise RuntimeError("dovecot did not start:\n" + self.log())

    def stop(self, timeout=10):
        """SIGTERM the master and wait until every Dovecot process is gone.
        Returns seconds taken."""
        with self._conn_lock:
            for c in self._conns.values():
                try:
                    c.shutdown()
                except Exception:
                    pass
            self._conns.clear()
        if self._proxy:
            self._proxy.close()
            self._proxy = None
        took = _stop_session(self.proc, timeout)
        self.stop_seconds = took
        return took

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        """Live pids of this instance (master and all descendants)."""
        return session_members(self.proc.pid) if self.proc else []

    def log(self):
        out = []
        for name in ("dovecot.out", "dovecot.log"):
            try:
                with open(os.path.join(self.tmp, name), "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- access
    def imap(self, user, timeout=10):
        """A new logged-in imaplib.IMAP4 connection (caller logs out)."""
        c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=timeout)
        if "plain" in self.auth_mechanisms.split():
            c.login(user, self.users[user])
        else:  # SASL LOGIN: username, then password, each on its own prompt
            answers = iter([user.encode(), self.users[user].encode()])
            c.authenticate("LOGIN", lambda _challenge: next(answers))
        return c

    def doveadm(self, *args, input=None, timeout=60):
        p = subprocess.run([DOVEADM, "-c", self.conf_path] + list(args), input=input,
                           capture_output=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("doveadm %s: %d %s" % (" ".join(args), p.returncode,
                                                      p.stderr.decode("utf-8", "replace")))
        return p.stdout.decode("utf-8", "replace")

    def create_mailbox(self, user, mailbox):
        """Creates mailbox (and parents) if missing."""
        if mailbox.upper() == "INBOX":
            return
        c = self._admin(user)
        with self._conn_lock:
            typ, data = c.create(imap_mailbox(mailbox))
        if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if d):
            raise RuntimeError("CREATE %s: %r" % (mailbox, data))

    def _admin(self, user):
        """Cached logged-in connection to Dovecot's own port for deliver()."""
        with self._conn_lock:
            c = self._conns.get(user)
            if c is not None:
                try:
                    if c.noop()[0] == "OK":
                        return c
                except (imaplib.IMAP4.error, OSError):
                    pass
            c = imaplib.IMAP4("127.0.0.1", self._ports["imap"], timeout=30)
            c.login(user, self.users[user])
            self._conns[user] = c
            return c

    def deliver(self, user, raw, mailbox="INBOX", flags=(), date_time=None):
        """Puts one message upstream by IMAP APPEND on a cached connection
        (~1 ms; `doveadm save` costs a process, ~30 ms). Returns the new UID."""
        if isinstance(raw, str):
            raw = raw.encode()
        c = self._admin(user)
        with self._conn_lock:
            typ, data = c.append(imap_mailbox(mailbox), _imap_flags(flags), date_time, raw)
        if typ != "OK" and b"TRYCREATE" in (data[0] or b""):
            self.create_mailbox(user, mailbox)
            c = self._admin(user)
            with self._conn_lock:
                typ, data = c.append(imap_mailbox(mailbox), _imap_flags(flags), date_time, raw)
        if typ != "OK":
            raise RuntimeError("APPEND %s: %r" % (mailbox, data))
        m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        return int(m.group(1)) if m else None

    def mailbox_path(self, user, mailbox):
        return self.doveadm("mailbox", "path", "-u", user, mailbox).strip()

    def bulk_load(self, user, messages, mailbox="INBOX", resync=True):
        """Loads many messages fast by writing maildir files directly (owned by
        the mail uid) and then letting Dovecot index them (force-resync).
        messages: iterable of raw bytes, or (raw, flags) or (raw, flags,
        internaldate as epoch seconds). Flags: system flags only. Returns the
        number loaded. UIDs follow the iteration order. Like every message in
        Dovecot, they are served with CRLF line ends (bare LFs become CRLF)."""
        self.create_mailbox(user, mailbox)
        path = self.mailbox_path(user, mailbox)
        for sub in ("cur", "new", "tmp"):
            _makedirs_owned(os.path.join(path, sub))
        tmpdir, curdir = os.path.join(path, "tmp"), os.path.join(path, "cur")
        flagchar = {"\\seen": "S", "\\answered": "R", "\\flagged": "F", "\\deleted": "T", "\\draft": "D"}
        base = int(time.time())
        pid = os.getpid()
        tag = "%x" % (time.monotonic_ns() & 0xffffffff)
        n = 0
        fchown, uid, gid = os.fchown, MAIL_UID, MAIL_GID
        for item in messages:
            date = None
            flags = ()
            if isinstance(item, (bytes, bytearray)):
                raw = item
            else:
                raw, flags = item[0], item[1]
                if len(item) > 2:
                    date = item[2]
            try:
                fl = "".join(sorted(flagchar[f.lower()] for f in flags))
            except KeyError as e:
                raise ValueError("bulk_load supports system flags only: %s" % e)
            size = len(raw)
            vsize = size + raw.count(b"\n") - raw.count(b"\r\n")
            name = "%d.M%dP%dQ%s_%d.mbload,S=%d,W=%d" % (base + n // 1000000, n % 1000000, pid, tag, n,
                                                        size, vsize)
            tpath = os.path.join(tmpdir, name)
            fd = os.open(tpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view, off = memoryview(raw), 0
                while off < size:
                    off += os.write(fd, view[off:])
                fchown(fd, uid, gid)
            finally:
                os.close(fd)
            if date is not None:
                os.utime(tpath, (date, date))
            os.rename(tpath, os.path.join(curdir, name + ":2," + fl))
            n += 1
        if resync:
            self.doveadm("force-resync", "-u", user, mailbox, timeout=600)
        return n

    def fetch_all(self, user, mailbox="INBOX"):
        """Raw bytes of every message in mailbox, in UID order."""
        c = self.imap(user)
        try:
            return fetch_all_imap(c, mailbox)
        finally:
            c.logout()

    def wait_for_messages(self, user, mailbox="INBOX", count=1, timeout=15, interval=0.05):
        """Polls (IMAP STATUS) until mailbox holds at least count messages, then
        returns all their raw bytes. Raises TimeoutError after timeout."""
        deadline = time.monotonic() + timeout
        c = self.imap(user)
        try:
            n = -1
            while True:
                typ, data = c.status(imap_mailbox(mailbox), "(MESSAGES)")
                if typ == "OK":
                    n = int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))
                    if n >= count:
                        return fetch_all_imap(c, mailbox)
                if time.monotonic() > deadline:
                    raise TimeoutError("%s/%s has %d messages after %.1fs, want %d"
                                       % (user, mailbox, n, timeout, count))
                time.sleep(interval)
        finally:
            try:
                c.logout()
            except Exception:
                pass


def wait_for_message(dovecot, user, mailbox="INBOX", count=1, timeout=15):
    return dovecot.wait_for_messages(user, mailbox, count, timeout)


def fetch_all(dovecot, user, mailbox="INBOX"):
    return dovecot.fetch_all(user, mailbox)


class LocalTcpServer:
    """A listener on 127.0.0.1 (ephemeral port) for a server written in the
    tests: its accept loop never waits more than 0.2 s at a time, and close()
    ends it and every connection registered with track(). Subclasses set
    their attributes before calling __init__ (the loop starts there) and
    implement accepted(sock)."""

    def __init__(self, backlog=128):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.conns = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def track(self, *socks):
        with self.lock:
            self.conns += socks

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns.clear()
        self._thread.join(10)

    def _accept(self):
        while not self.closed:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted(client)

    def accepted(self, client):
        raise NotImplementedError


class _CondstoreFilterProxy(LocalTcpServer):
    """Plaintext IMAP proxy that hides RFC 7162 from clients (see Dovecot)."""
    BLOCK = re.compile(rb"\b(CONDSTORE|QRESYNC|HIGHESTMODSEQ|NOMODSEQ|MODSEQ|CHANGEDSINCE|"
                       rb"UNCHANGEDSINCE|VANISHED)\b", re.I)
    LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")
    NOT_PROXIABLE = re.compile(rb"^\S+ +(STARTTLS|COMPRESS)\b", re.I)

    UID_EXPUNGE = re.compile(rb"^\S+ +UID +EXPUNGE\b", re.I)
    UIDPLUS_CODE = re.compile(rb"\[(?:APPENDUID|COPYUID) [^\]]*\] ?", re.I)

    def __init__(self, upstream_port, uidplus=True):
        self.upstream = upstream_port
        self.uidplus = uidplus
        super().__init__()

    def accepted(self, client):
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            up.settimeout(None)
        except OSError:
            client.close()
            return
        self.track(client, up)
        wlock = threading.Lock()
        threading.Thread(target=self._c2s, args=(client, up, wlock), daemon=True).start()
        threading.Thread(target=self._s2c, args=(up, client, wlock), daemon=True).start()

    @staticmethod
    def _copy_literal(rf, dst, n, wlock=None):
        while n > 0:
            chunk = rf.read(min(n, 65536))
            if not chunk:
                raise EOFError
            if dst is not None:
                if wlock:
                    with wlock:
                        dst.sendall(chunk)
                else:
                    dst.sendall(chunk)
            n -= len(chunk)

    def _c2s(self, client, up, wlock):
        rf = client.makefile("rb")
        try:
            while True:
                line = rf.readline()
                if not line:
                    break
                tag = line.split(b" ", 1)[0].strip()
                swallow = False
                first = True
                while True:
                    m = self.LITERAL.search(line)
                    if first:
                        line, verdict = self._judge(line)
                        if verdict is not None:
                            with wlock:
                                client.sendall(tag + b" " + verdict + b"\r\n")
                            swallow = True
                            if m and not m.group(2):  # sync literal: client waits, never sends
                                break
                    if not swallow:
                        up.sendall(line)
                    if not m:
                        break
                    self._copy_literal(rf, None if swallow else up, int(m.group(1)))
                    line = rf.readline()
                    if not line:
                        raise EOFError
                    first = False
        except (OSError, EOFError, ValueError):
            pass
        finally:
            for s in (client, up):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _judge(self, line):
        """(line to forward, None) or (line, tagged reply to send instead)."""
        if self.NOT_PROXIABLE.search(line):
            return line, b"BAD Not supported on this port"
        if not self.uidplus and self.UID_EXPUNGE.search(line):
            return line, b"BAD Unknown command UID EXPUNGE"
        if not self.BLOCK.search(line):
            return line, None
        parts = line.split()
        if len(parts) >= 2 and parts[1].upper() == b"ENABLE":
            # Unknown extensions are ignored (RFC 5161): drop them, keep the rest.
            keep = [p for p in parts[2:] if not self.BLOCK.fullmatch(p)]
            if keep:
                return b" ".join(parts[:2] + keep) + b"\r\n", None
            return line, b"OK Enabled."  # no untagged ENABLED line
        return line, b"BAD CONDSTORE/QRESYNC not supported"

    def _s2c(self, up, client, wlock):
        rf = up.makefile("rb")
        try:
            while True:
                line = rf.readline()
                if not line:
                    break
                m = self.LITERAL.search(line)
                if line.startswith(b"* OK [HIGHESTMODSEQ") or line.startswith(b"* OK [NOMODSEQ"):
                    continue
                if b"CAPABILITY" in line.upper() and self.BLOCK.search(line):
                    line = re.sub(rb" (CONDSTORE|QRESYNC)\b", b"", line, flags=re.I)
                if not self.uidplus:
                    if b"CAPABILITY" in line.upper():
                        line = re.sub(rb" UIDPLUS\b", b"", line, flags=re.I)
                    line = self.UIDPLUS_CODE.sub(b"", line)
                with wlock:
                    client.sendall(line)
                if m:
                    self._copy_literal(rf, client, int(m.group(1)), wlock)
        except (OSError, EOFError, ValueError):
            pass
        finally:
            for s in (client, up):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ---------------------------------------------------------------- Postfix

_MASTER_CF = """\
# generated by tests/integration/servers.py (chroot n everywhere)
127.0.0.1:{smtp_port} inet n - n - - smtpd
{submission}cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """One private Postfix 3.7 instance: SMTP on an ephemeral 127.0.0.1 port
    with SASL via the given Dovecot's auth socket, STARTTLS (self-signed),
    virtual mailboxes for the Dovecot's users delivered by LMTP, and nothing
    ever leaving the machine (default/relay transport = error).

    Maps are Berkeley `hash:` tables rebuilt with postmap rather than texthash:
    running smtpd processes never notice a changed texthash file (it is read
    once per process, and a file changed in the last ~2 s makes the reader
    pause), while a changed hash: map makes smtpd restart before it accepts the
    next connection. The knobs give each rebuilt .db a strictly increasing
    mtime, so a change applies from the next SMTP connection without waiting
    for the 1 s mtime granularity.
    """

    def __init__(self, dovecot, tls_auth_only=False, submission=False, extra_main_cf=""):
        self.dovecot = dovecot
        self.tls_auth_only, self.submission, self.extra_main_cf = tls_auth_only, submission, extra_main_cf
        self.tmp = tempfile.mkdtemp(prefix="mb-postfix-", dir=tmp_root())
        os.chmod(self.tmp, 0o755)
        self.config_dir = os.path.join(self.tmp, "etc")
        self.queue_dir = os.path.join(self.tmp, "queue")
        self.data_dir = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "postfix.log")
        for d in (self.config_dir, self.queue_dir, self.data_dir):
            os.makedirs(d)
            os.chmod(d, 0o755)
        shutil.chown(self.data_dir, "postfix", "postfix")
        self.cert, self.key = make_cert(self.config_dir)
        self.vmailbox_map = os.path.join(self.config_dir, "vmailbox")
        self.access_map = os.path.join(self.config_dir, "rcpt_access")
        self.access = {}
        self._map_mtime = {}
        self.proc = None
        self.smtp_port = None
        self.submission_port = None
        self._write_config()
        self._write_map(self.access_map, {})
        self._write_users()
        dovecot._listeners.append(self._write_users)

    def _write_map(self, path, entries):
        with open(path + ".tmp", "w") as f:
            for k, v in entries.items():
                f.write("%s %s\n" % (k, v))
        os.rename(path + ".tmp", path)
        subprocess.run([POSTMAP, "-c", self.config_dir, "hash:" + path],
            check=True, capture_output=True, timeout=30)
        # strictly increasing mtime on the .db: smtpd compares it with != and
        # has 1 s resolution; a fresh value applies from the next connection.
        t = max(int(time.time()), self._map_mtime.get(path, 0) + 1)
        self._map_mtime[path] = t
        os.utime(path + ".db", (t, t))
        os.utime(path, (t - 1, t - 1))  # source older than db: no postfix warning

    def _write_users(self):
        self._write_map(self.vmailbox_map, {self.dovecot.address(u): "OK" for u in self.dovecot.users})

    def domains(self):
        ds = {self.dovecot.domain}
        ds.update(u.split("@", 1)[1] for u in self.dovecot.users if "@" in u)
        return sorted(ds)

    # -- knobs (apply from the next SMTP connection)
    def defer(self, address, text="4.2.0 try again later"):
        """RCPT TO:<address> gets 450 <text>."""
        self.access[address] = "450 " + text
        self._write_map(self.access_map, self.access)

    def reject(self, address, text="5.7.1 rejected by test"):
        """RCPT TO:<address> gets 550 <text>."""
        self.access[address] = "550 " + text
        self._write_map(self.access_map, self.access)

    def clear(self):
        self.access = {}
        self._write_map(self.access_map, self.access)

    # -- config
    def _main_cf(self):
        dc = self.dovecot
        lmtp = "lmtp:inet:127.0.0.1:%d" % dc.lmtp_port if dc.lmtp_port else "error:no LMTP"
        return f"""# generated by tests/integration/servers.py
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {self.data_dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = mb-postfix.test
mydomain = test
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
default_transport = error:outbound mail disabled in tests
relay_transport = error:outbound mail disabled in tests
virtual_mailbox_domains = {" ".join(self.domains())}
virtual_mailbox_maps = hash:{self.vmailbox_map}
virtual_alias_maps =
virtual_transport = {lmtp}
smtpd_sasl_type = dovecot
smtpd_sasl_path = {dc.auth_socket}
smtpd_sasl_auth_enable = yes
smtpd_tls_security_level = may
smtpd_tls_chain_files = {self.key}, {self.cert}
smtpd_tls_auth_only = {"yes" if self.tls_auth_only else "no"}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access hash:{self.access_map}, permit
smtpd_error_sleep_time = 0
smtpd_peername_lookup = no
maillog_file = {self.log_path}
maillog_file_prefixes = {self.tmp}
service_throttle_time = 2s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
message_size_limit = 52428800
biff = no
append_dot_mydomain = no
smtp_dns_support_level = disabled
{self.extra_main_cf}
"""

    def _write_config(self, submission=""):
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(self._main_cf())
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(_MASTER_CF.format(smtp_port=self.smtp_port or 0, submission=submission))
        # Postfix pauses ~2 s to let a config file modified within the last
        # couple of seconds "cool down": backdate ours.
        old = time.time() - 60
        for name in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.config_dir, name), (old, old))

    def start(self, timeout=15, attempts=3):
        if self.proc and self.proc.poll() is None:
            return self
        if not self.dovecot.running():
            raise RuntimeError("start the Dovecot before Postfix (SASL socket, LMTP port)")
        t0 = time.monotonic()
        for attempt in range(attempts):
            self.smtp_port = free_port()
            sub = ""
            if self.submission:
                self.submission_port = free_port()
                sub = ("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_security_level=encrypt "
                       "-o smtpd_tls_auth_only=yes\n" % self.submission_port)
            self._write_config(sub)
            self._write_map(self.access_map, self.access)
            self._write_users()
            p = subprocess.run([POSTFIX, "-c", self.config_dir, "check"], capture_output=True, timeout=60)
            if p.returncode != 0:
                raise RuntimeError("postfix check: " + p.stderr.decode("utf-8", "replace"))
            log = open(os.path.join(self.tmp, "master.out"), "ab")
            self.proc = subprocess.Popen([POSTFIX_MASTER, "-c", self.config_dir], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
            log.close()
            if _wait_greeting(self.smtp_port, b"220", timeout, lambda: self.proc.poll() is None):
                self.start_seconds = time.monotonic() - t0
                return self
            _stop_session(self.proc, 5)
        raise RuntimeError("postfix did not start:\n" + self.log())

    def stop(self, timeout=10):
        took = _stop_session(self.proc, timeout)
        self.stop_seconds = took
        return took

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return session_members(self.proc.pid) if self.proc else []

    def log(self):
        out = []
        for name in ("master.out", "postfix.log"):
            try:
                with open(os.path.join(self.tmp, name), "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def cleanup(self):
        self.stop()
        try:
            self.dovecot._listeners.remove(self._write_users)
        except ValueError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
