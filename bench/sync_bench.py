#!/usr/bin/env python3
"""Upstream IMAP sync benchmark (issue 5): mailbridged's initial sync of an
account from a private Dovecot 2.3 (CONDSTORE/QRESYNC on) against mbsync
(isync) and offlineimap pulling the same account into a fresh Maildir, and a
single raw `UID FETCH 1:* BODY.PEEK[]` stream per folder as the ceiling, and
the same stream written into one file per message by bench/fetch_to_files
(built next to mailbridged) as the floor of storing; then
the no-op resync of the unchanged account (ours and mbsync's), and a check
that mailbridged holds exactly the upstream's messages. Same run, same
upstream, legs one after the other.

    sudo python3 bench/sync_bench.py                  # 20,000 messages, ~1.1 GB, 20 folders
    sudo python3 bench/sync_bench.py --count 2000     # smoke run
    sudo python3 bench/sync_bench.py --mailbridged build-x/mailbridged --skip offlineimap
    python3 bench/sync_bench.py --dump /dev/shm/corpus   # only write the messages (bench/mime_bench.cc)

Needs root (Dovecot's mail processes run as an unprivileged uid),
dovecot-imapd (scripts/deps.sh --test), and the Debian packages isync and
offlineimap3 (a leg whose program is missing is skipped and says so).
mailbridged is --mailbridged, else $MAILBRIDGED, else the repo's
build/mailbridged. Python 3 standard library only.
"""
import argparse
import datetime
import hashlib
import imaplib
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import imap_bench  # noqa: E402  (the corpus generator and the raw client; it also sets up the test path)
from imap_bench import Corpus, RawImap, comm, dovecot_version, fmt_kib, vm  # noqa: E402
import harness  # noqa: E402
import servers  # noqa: E402

USER, PASSWORD = "bench", "benchpw"
ACCOUNT = "upstream"
# INBOX gets 60% of the messages; the rest is spread over the other 19
# folders (Dovecot's five special-use folders included): 20 in all.
OTHER_FOLDERS = ["Sent", "Drafts", "Trash", "Junk", "Archive"] + \
    ["Work/Projects", "Work/Clients", "Work/Reports", "Lists/debian-devel", "Lists/lkml", "Lists/announce",
     "Family", "Friends", "Receipts", "Travel", "Newsletters", "Ärger/Überweisungen", "Old/2023", "Old/2024"]
FOLDERS = ["INBOX"] + OTHER_FOLDERS
# What daemon/connectors/upstream_imap.cc fetchMessages asks for (with CONDSTORE).
OUR_ITEMS = b"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[] MODSEQ)"


def folder_of(i):
    k = (i * 2654435761) % 100          # spread deterministically, not in runs
    return "INBOX" if k < 60 else OTHER_FOLDERS[(i * 40503) % len(OTHER_FOLDERS)]


# ------------------------------------------------------------------ process figures

def proc_cpu(pid):
    """user+sys CPU seconds of pid (all its threads) and of its reaped children."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / tick   # utime stime cutime cstime


def schedstat(pids):
    """{(pid, tid): (ns on CPU, ns runnable but waiting for a CPU)} of every
    thread of pids (/proc/<pid>/task/<tid>/schedstat)."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    run, wait = f.read().split()[:2]
                out[(pid, tid)] = (int(run), int(wait))
            except (OSError, ValueError):
                pass
    return out


def sched_delta(before, after):
    """(CPU s, run-queue wait s) spent between two schedstat() snapshots."""
    run = wait = 0
    for k, (r, w) in after.items():
        r0, w0 = before.get(k, (0, 0))
        run += r - r0
        wait += w - w0
    return run / 1e9, wait / 1e9


def run_measured(argv, cwd=None, timeout=None, env=None):
    """Runs argv to completion: (exit code, wall s, CPU s of the process tree
    (wait4), peak RSS KiB (VmHWM, sampled every 20 ms until it exits: wait4's
    ru_maxrss would report this Python process's size, which exec inherits),
    output tail)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = []
    import threading
    th = threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True)
    th.start()
    deadline = None if timeout is None else t0 + timeout
    hwm = 0
    while True:
        if comm(p.pid) == os.path.basename(argv[0])[:15]:   # exec'd: not the forked copy of this process
            hwm = max(hwm, vm(p.pid, "VmHWM") or 0)
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if deadline and time.perf_counter() > deadline:
            os.kill(p.pid, 9)
            pid, status, ru = os.wait4(p.pid, 0)
            status = -9
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status) if status != -9 else -9
    th.join(5)
    text = (out[0] if out else b"").decode("utf-8", "replace")
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, hwm or None, text[-3000:]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------ upstream

def prime_memory(root, nbytes, log):
    """Writes and deletes nbytes of temp file under root, so the leg that
    follows stores into memory the hypervisor backs.

    On the VMs this bench runs on (virtio_balloon with free page reporting),
    memory the guest freed a while ago is handed back to the host, and the
    first write to it again costs ~1-1.5 ns a byte inside the guest's memcpy
    (the host faults it in): writing 1 GB of 55 KB files into /dev/shm took
    1.8-2.2 s after a pause and 1.0 s right after 1.4 GB had been written and
    deleted. Without this the legs did not start equal: a leg run right after
    another leg's files were deleted reused their pages (mbsync 2.8 CPU s
    after our leg, 4.2 CPU s run alone), while the first storing leg paid
    for all of its 1.1 GB."""
    chunk = b"\0" * (8 << 20)
    path = os.path.join(root, "prime-%d" % os.getpid())
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(max(1, nbytes // len(chunk))):
            f.write(chunk)
    os.unlink(path)
    log("primed %.1f GB of memory in %.1f s" % (nbytes / 1e9, time.perf_counter() - t0))


def start_upstream(corpus, log):
    dc = servers.Dovecot(pop3=False, lmtp=False)
    try:
        dc.add_user(USER, PASSWORD)
        dc.start()
        log("dovecot %s started on 127.0.0.1:%d (%s)" % (dovecot_version(), dc.imap_port, dc.tmp))
        t0 = time.perf_counter()
        per = {f: [0, 0] for f in FOLDERS}
        for f in FOLDERS:
            def gen(f=f):
                for i in range(corpus.count):
                    if folder_of(i) == f:
                        raw, flags, t = corpus.message(i)
                        per[f][0] += 1
                        per[f][1] += len(raw)
                        yield raw, flags, t
            dc.bulk_load(USER, gen(), mailbox=f, resync=True)
        log("dovecot: %d messages, %.1f MB in %d folders written and indexed in %.1f s"
            % (sum(v[0] for v in per.values()), sum(v[1] for v in per.values()) / 1e6, len(FOLDERS),
               time.perf_counter() - t0))
    except BaseException:
        dc.cleanup()
        raise
    return dc, per


def capabilities(port):
    c = RawImap(port)
    pre = c.run(b"CAPABILITY", keep=True)[5]
    c.login(USER, PASSWORD)
    post = c.run(b"CAPABILITY", keep=True)[5]
    c.close()
    cap = lambda kept: re.search(rb"\* CAPABILITY ([^\r\n]*)", kept).group(1).decode().split()
    return cap(pre), cap(post)


# ------------------------------------------------------------------ legs

def leg_ceiling(dc, per, log, items=b"BODY.PEEK[]"):
    """One connection; per folder SELECT + one UID FETCH 1:* <items>; the
    client skips literals (imap_bench.RawImap), so it measures the server and
    the wire. CPU is this Python client's; "sched" the Dovecot imap
    processes' time on and waiting for a CPU."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    before = {p for p in dc.pids() if comm(p) == "imap"}
    t0 = time.perf_counter()
    c = RawImap(dc.imap_port)
    c.login(USER, PASSWORD)
    mine = [p for p in dc.pids() if comm(p) == "imap" and p not in before]
    s0 = schedstat(mine)
    n = nbytes = 0
    for f in FOLDERS:
        if not per[f][0]:
            continue
        c.run(b"SELECT " + servers.imap_mailbox(f).encode())
        _, _, _, nlit, litb, _ = c.run(b"UID FETCH 1:* " + items)
        n += nlit
        nbytes += litb
    s1 = schedstat(mine)
    c.close()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    sched = "Dovecot imap %.1f s on CPU, %.1f s waiting for a CPU" % sched_delta(s0, s1)
    log("ceiling (%s): %.1f s, %d messages; %s" % (items.decode(), wall, n, sched))
    return {"wall": wall, "messages": n, "bytes": nbytes, "cpu": cpu, "rss": None, "sched": sched,
            "note": "python client, skips literals"}


def leg_floor(dc, per, work, log):
    """bench/fetch_to_files (the build's bench/ next to mailbridged): the
    ceiling's stream, each literal written into a new file of its own and one
    syncfs at the end; no flags, index or analysis. What storing the bytes
    costs at the least on this machine."""
    prog = os.path.join(os.path.dirname(harness.MAILBRIDGED), "bench", "fetch_to_files")
    if not os.access(prog, os.X_OK):
        return {"skipped": "%s not built (cmake --build ... --target fetch_to_files)" % prog}
    out = os.path.join(work, "floor")
    os.makedirs(out)
    boxes = [servers.imap_mailbox(f) for f in FOLDERS if per[f][0]]
    rc, wall, cpu, rss, text = run_measured([prog, str(dc.imap_port), USER, PASSWORD, out] + boxes, timeout=600)
    m = re.search(r"messages (\d+) bytes (\d+)", text)
    res = {"wall": wall, "cpu": cpu, "rss": rss, "messages": int(m.group(1)) if m else 0,
           "bytes": int(m.group(2)) if m else 0, "note": "fetch_to_files exit %d" % rc}
    if rc != 0 or not m:
        res["error"] = "fetch_to_files exit %d: %s" % (rc, text[-1500:])
    shutil.rmtree(out, ignore_errors=True)
    log("floor: %.1f s, %.1f CPU s, %d messages" % (wall, cpu, res["messages"]))
    return res


def mb_account(dc, poll, bodies="full"):
    return {"name": ACCOUNT, "address": "bench@example.test",
            "imap": {"host": "127.0.0.1", "port": dc.imap_port, "security": "none",
                     "username": USER, "password": PASSWORD, "poll_seconds": poll, "bodies": bodies}}


def sync_state(d):
    status, body = d.api("GET", "/v1/accounts")
    for a in body.get("accounts", []) if status == 200 else []:
        if a["name"] == ACCOUNT:
            return a
    return None


def cycle_lines(d):
    """Parsed sync.cycle_done lines of the daemon log, oldest first."""
    out = []
    for line in d.log().splitlines():
        if "sync.cycle_done" not in line:
            continue
        kv = dict(m.groups() for m in re.finditer(r"(\w+)=(\S+)", line))
        kv["at"] = line.split(" ", 1)[0]  # the log's UTC timestamp, e.g. 2026-12-03T08:47:09.760Z
        out.append(kv)
    return out


def leg_mailbridged(dc, total, root, poll, limit, log, bodies="full"):
    """Starts mailbridged with no upstream account, then adds the account with
    POST /v1/accounts and times from that request until GET /v1/accounts shows
    its sync idle with a last_sync (polled every 50 ms). CPU is the daemon's
    from just before the request; peak RSS its VmHWM (start-up included)."""
    state_dir = os.path.join(root, "state")
    d = harness.Daemon(state_dir=state_dir, log_level="info")
    d.start()
    pid = d.proc.pid
    log("mailbridged %s pid %d, state dir %s" % (harness.MAILBRIDGED, pid, state_dir))
    res = {"daemon": d, "state_dir": state_dir}
    cpu0 = proc_cpu(pid)
    dovecot_imap = lambda: [p for p in dc.pids() if comm(p) == "imap"]
    sched0 = (schedstat([pid]), schedstat(dovecot_imap()))
    t0 = time.perf_counter()
    t0_epoch = time.time()
    status, body = d.api("POST", "/v1/accounts", body=mb_account(dc, poll, bodies))
    if status != 201:
        raise RuntimeError("POST /v1/accounts: %s %s" % (status, body))
    res["local"] = body["local"]
    last = 0
    acct = None
    while True:
        time.sleep(0.05)
        if d.proc.poll() is not None:
            raise RuntimeError("mailbridged exited:\n" + d.log()[-3000:])
        acct = sync_state(d)
        s = (acct or {}).get("sync") or {}
        if s.get("state") == "idle" and s.get("last_sync"):
            break
        now = time.perf_counter()
        if now - last > 10:
            last = now
            log("  mailbridged: %s, %s/%s messages, %.0f MB, mailboxes %s/%s"
                % (s.get("state"), (s.get("messages") or {}).get("done"), (s.get("messages") or {}).get("total"),
                   (s.get("bytes") or 0) / 1e6, (s.get("mailboxes") or {}).get("done"),
                   (s.get("mailboxes") or {}).get("total")))
        if now - t0 > limit:
            res["error"] = "not idle after %d s: %s" % (limit, s)
            break
    wall = time.perf_counter() - t0
    # The end is when the first cycle finished (its sync.cycle_done line: the
    # state turned idle then), not when a 50 ms poll noticed it; the idle
    # state may also be hidden by the short check the IDLE watch starts
    # right after. Same clock (the machine's), millisecond log stamps.
    cyc = cycle_lines(d)
    if cyc and not res.get("error"):
        done_epoch = datetime.datetime.strptime(cyc[0]["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        if t0_epoch < done_epoch <= t0_epoch + wall:
            wall = done_epoch - t0_epoch
    # Where the wall time went: on a CPU, waiting for one (a busy machine),
    # or neither (waiting for the other side / I/O).
    ours, theirs = sched_delta(sched0[0], schedstat([pid])), sched_delta(sched0[1], schedstat(dovecot_imap()))
    res["sched"] = "daemon %.1f s on CPU, %.1f s waiting for a CPU; Dovecot imap %.1f s on CPU, %.1f s waiting" % (
        ours + theirs)
    log("mailbridged: %.1f s: %s" % (wall, res["sched"]))
    res.update(wall=wall, cpu=proc_cpu(pid) - cpu0, rss=vm(pid, "VmHWM"), status=(acct or {}).get("sync"),
               note="daemon process; POST /v1/accounts to its first sync.cycle_done (idle)")
    cyc = cycle_lines(d)
    res["engine"] = cyc[0] if cyc else None
    res["messages"] = int(cyc[0]["messages"]) if cyc else 0
    res["wire_bytes"] = ((acct or {}).get("sync") or {}).get("bytes") or 0
    return res


def write_mbsync_conf(path, port, maildir):
    with open(path, "w") as f:
        f.write("""IMAPAccount up
Host 127.0.0.1
Port %d
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore up-remote
Account up

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel bench
Far :up-remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
""" % (port, USER, PASSWORD, maildir, maildir))


def write_offlineimap_conf(path, port, maildir, meta):
    with open(path, "w") as f:
        f.write("""[general]
accounts = bench
metadata = %s
ui = quiet

[Account bench]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %s

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = %d
remoteuser = %s
remotepass = %s
ssl = no
starttls = no
readonly = True
""" % (meta, maildir, port, USER, PASSWORD))


def maildir_totals(top):
    n = nbytes = 0
    for dirpath, dirs, files in os.walk(top):
        if os.path.basename(dirpath) in ("cur", "new"):
            for name in files:
                n += 1
                nbytes += os.path.getsize(os.path.join(dirpath, name))
    return n, nbytes


def leg_client(name, argv, maildir, timeout, log):
    rc, wall, cpu, rss, out = run_measured(argv, timeout=timeout)
    n, nbytes = maildir_totals(maildir)
    res = {"wall": wall, "cpu": cpu, "rss": rss, "messages": n, "bytes": nbytes, "rc": rc,
           "note": "%s exit %d" % (name, rc)}
    if rc != 0:
        res["error"] = "%s exit %d%s: %s" % (name, rc, " (killed at the time limit)" if rc == -9 else "", out[-1500:])
        log("%s: %s" % (name, res["error"]))
    return res


# ------------------------------------------------------------------ correctness

def digests(port, user, password, log_prefix, log):
    """Per mailbox: (count, body bytes, SHA-256 over the sorted per-message
    SHA-256s), fetched with imaplib in batches of 500 UIDs."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=300)
    c.login(user, password)
    typ, boxes = c.list()
    out = {}
    for line in boxes:
        m = re.match(rb'\((?P<attrs>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.*)$', line)
        if not m or b"\\noselect" in m.group("attrs").lower():
            continue
        name = m.group("name")
        typ, data = c.select(name, readonly=True)
        if typ != "OK":
            continue
        typ, uids = c.uid("SEARCH", None, "ALL")
        uids = uids[0].split()
        hashes, nbytes = [], 0
        for k in range(0, len(uids), 500):
            typ, data = c.uid("FETCH", b",".join(uids[k:k + 500]), "(BODY.PEEK[])")
            for item in data:
                if isinstance(item, tuple):
                    hashes.append(hashlib.sha256(item[1]).digest())
                    nbytes += len(item[1])
        out[name.decode("utf-8", "replace").strip('"')] = (len(hashes), nbytes,
                                                          hashlib.sha256(b"".join(sorted(hashes))).hexdigest())
    c.logout()
    return out


def compare(up, local):
    """Mailbox names differ (special-use mapping), so compare the multisets of
    per-mailbox (count, bytes, digest) and the account totals."""
    a = sorted(v for v in up.values() if v[0])
    b = sorted(v for v in local.values() if v[0])
    tot = lambda d: (sum(v[0] for v in d.values()), sum(v[1] for v in d.values()))
    return a == b, tot(up), tot(local)


# ------------------------------------------------------------------ main

def dump_corpus(corpus, out):
    os.makedirs(out, exist_ok=True)
    total = 0
    for i in range(corpus.count):
        raw = corpus.message(i)[0]
        with open(os.path.join(out, "%06d.eml" % i), "wb") as f:
            f.write(raw)
        total += len(raw)
    print("%d messages, %.1f MB in %s" % (corpus.count, total / 1e6, out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mailbridged", metavar="PATH")
    ap.add_argument("--skip", action="append", default=[], choices=["mailbridged", "mbsync", "offlineimap", "ceiling", "floor"])
    ap.add_argument("--limit", type=float, default=900, metavar="SECONDS", help="time limit per leg (default 900)")
    ap.add_argument("--noop-runs", type=int, default=5, help="no-op resyncs timed per program (median)")
    ap.add_argument("--poll", type=int, default=5, help="mailbridged poll_seconds (the no-op trigger; min 5)")
    ap.add_argument("--no-verify", action="store_true", help="skip the digest comparison")
    ap.add_argument("--bodies", choices=["full", "on_demand"], default="full",
                    help="mailbridged's bodies option; on_demand times the header-only sync, and the "
                         "verification then fetches every body through the local IMAP (on demand)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-prime", action="store_true",
                    help="do not write and delete 1.5x the data set in temp files before each storing leg "
                         "(see prime_memory)")
    ap.add_argument("--dump", metavar="DIR",
                    help="only write the generated messages to DIR (one NNNNNN.eml each, as the upstream holds "
                         "them) and exit: the corpus of bench/mime_bench.cc")
    args = ap.parse_args()
    if args.dump:
        return dump_corpus(Corpus(args.count, args.seed), args.dump)
    harness.MAILBRIDGED = os.path.abspath(args.mailbridged or os.environ.get("MAILBRIDGED")
                                          or os.path.join(HERE, "..", "build", "mailbridged"))
    t_start = time.perf_counter()

    def log(msg):
        print("[%6.1fs] %s" % (time.perf_counter() - t_start, msg), flush=True)

    root = servers.tmp_root()
    log("machine: %s, nproc %d, RAM %.1f GiB, temp files on %s, load %s"
        % (platform.platform(), os.cpu_count(), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30,
           root, loadavg()))
    corpus = Corpus(args.count, args.seed)
    work = tempfile.mkdtemp(prefix="mb-syncbench-", dir=root)
    os.chmod(work, 0o755)
    dc = daemon = None
    results, noop, notes = {}, {}, []
    try:
        dc, per = start_upstream(corpus, log)
        total_n = sum(v[0] for v in per.values())
        total_b = sum(v[1] for v in per.values())
        pre, post = capabilities(dc.imap_port)
        has = lambda c: c in post or c in pre
        log("upstream capabilities: CONDSTORE %s, QRESYNC %s, LIST-STATUS %s, COMPRESS=DEFLATE %s"
            % tuple("yes" if has(c) else "no" for c in ("CONDSTORE", "QRESYNC", "LIST-STATUS", "COMPRESS=DEFLATE")))
        notes.append("upstream: Dovecot %s, %d messages, %.1f MB in %d folders (INBOX %d); COMPRESS=DEFLATE %s"
                     % (dovecot_version(), total_n, total_b / 1e6, len(FOLDERS), per["INBOX"][0],
                        "offered" if has("COMPRESS=DEFLATE") else "not offered (no imap_zlib), so no leg compresses"))

        if "ceiling" not in args.skip:   # also the warm-up: Dovecot's indexes and caches are built by it
            log("ceiling: warm-up pass")
            leg_ceiling(dc, per, log)
            log("ceiling: timed pass, load %s" % loadavg())
            results["ceiling"] = leg_ceiling(dc, per, log)
            # The same stream with the items mailbridged asks for: what the
            # upstream's side of our FETCH costs.
            notes.append("ceiling with mailbridged's FETCH items (%s): %.1f s; %s" % (
                OUR_ITEMS.decode(), *(lambda r: (r["wall"], r["sched"]))(leg_ceiling(dc, per, log, OUR_ITEMS))))

        prime = (lambda: None) if args.no_prime else (lambda: prime_memory(work, total_b * 3 // 2, log))
        if "floor" not in args.skip:
            prime()
            r = leg_floor(dc, per, work, log)
            if r.get("skipped"):
                notes.append("floor: " + r["skipped"])
            else:
                results["floor"] = r
        if "mailbridged" not in args.skip:
            prime()
            log("mailbridged: initial sync (bodies %s), load %s" % (args.bodies, loadavg()))
            r = leg_mailbridged(dc, total_n, os.path.join(work, "mb"), args.poll, args.limit, log, args.bodies)
            daemon = r.pop("daemon")
            results["mailbridged"] = r
            log("mailbridged: %s" % {k: v for k, v in r.items() if k not in ("status", "local")})
            if not r.get("error"):
                # No-op resyncs: the poll timer starts a full check (LIST-STATUS,
                # journal, every folder) of the unchanged account; its duration
                # comes from the engine's sync.cycle_done line.
                want = 1 + args.noop_runs
                deadline = time.perf_counter() + (args.poll + 5) * want + 30
                while len(cycle_lines(daemon)) < want and time.perf_counter() < deadline:
                    time.sleep(0.5)
                full = lambda: [c for c in cycle_lines(daemon)[1:] if c["full"] == "true"]
                while len(full()) < args.noop_runs and time.perf_counter() < deadline:
                    time.sleep(0.5)
                cyc = full()[:args.noop_runs]
                noop["mailbridged"] = [int(c["us"]) / 1e6 for c in cyc]
                notes.append("mailbridged no-op checks: %s" % "; ".join(
                    "%s mailboxes, %s checked, %s new, %s us" % (c["mailboxes"], c["checked"], c["messages"], c["us"])
                    for c in cyc))
                if not args.no_verify:
                    log("verify: digests of upstream and of our local IMAP")
                    up = digests(dc.imap_port, USER, PASSWORD, "upstream", log)
                    user, pw = r["local"]["username"], r["local"]["password"]
                    local = digests(servers_port(daemon), user, pw, "local", log)
                    same, tu, tl = compare(up, local)
                    results["verify"] = (same, tu, tl)
                    log("verify: upstream %d messages / %d bytes, mailbridged %d / %d: %s"
                        % (tu + tl + ("EQUAL (per-mailbox count, bytes, SHA-256)" if same else "DIFFERENT",)))
                    if not same:
                        for k in sorted(set(up) | set(local)):
                            log("  %-24s upstream %s  local %s" % (k, up.get(k), local.get(k)))
            rc, took = daemon.stop()
            log("mailbridged stopped: exit %s in %.1f s" % (rc, took))
            shutil.rmtree(os.path.join(work, "mb"), ignore_errors=True)

        clients = [  # name, Debian package, config writer, argv, time no-op second runs
            ("mbsync", "isync", lambda conf, md: write_mbsync_conf(conf, dc.imap_port, md),
             ["mbsync", "-c", "%(conf)s", "-a", "-q"], True),
            ("offlineimap", "offlineimap3",
             lambda conf, md: write_offlineimap_conf(conf, dc.imap_port, md, os.path.join(work, "offlineimap-meta")),
             ["offlineimap", "-c", "%(conf)s", "-1", "-u", "quiet"], False)]
        for name, package, write_conf, argv, time_noop in clients:
            if name in args.skip:
                continue
            if not shutil.which(name):
                notes.append("%s: not installed (apt-get install %s): skipped" % (name, package))
                continue
            md = os.path.join(work, name)
            os.makedirs(md)
            conf = os.path.join(work, name + "rc")
            write_conf(conf, md)
            argv = [a % {"conf": conf} for a in argv]
            prime()
            log("%s: initial sync, load %s" % (name, loadavg()))
            results[name] = leg_client(name, argv, md, args.limit, log)
            log("%s: %s" % (name, results[name]))
            if time_noop:
                noop[name] = [run_measured(argv, timeout=120)[1] for _ in range(args.noop_runs)]
            shutil.rmtree(md, ignore_errors=True)
        notes.append("load average at the end: %s" % loadavg())
        report(args, total_n, total_b, results, noop, notes)
    finally:
        if daemon is not None:
            daemon.stop()
            daemon.cleanup()
        if dc is not None:
            if args.keep:
                dc.stop()
                log("dovecot dir kept in " + dc.tmp)
            else:
                dc.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        log("total %.1f s" % (time.perf_counter() - t_start))


def servers_port(d):
    return int(d.listeners["imap"].rsplit(":", 1)[1])


def report(args, total_n, total_b, results, noop, notes):
    print()
    print("Initial sync of %d messages, %.1f MB, %d folders (same upstream, legs one after another)"
          % (total_n, total_b / 1e6, len(FOLDERS)))
    print()
    ceil = results.get("ceiling", {}).get("wall")
    ours = results.get("mailbridged", {}).get("wall")
    rows = [["program", "messages", "seconds", "msg/s", "MB/s", "CPU s", "peak RSS", "vs ceiling", "its time / ours"]]
    for name in ("ceiling", "floor", "mailbridged", "mbsync", "offlineimap"):
        r = results.get(name)
        if not r:
            continue
        w = r["wall"]
        rows.append([name + (" (FAILED)" if r.get("error") else ""), "%d" % r["messages"], "%.1f" % w,
                     "%.0f" % (r["messages"] / w), "%.1f" % (total_b * r["messages"] / total_n / w / 1e6),
                     "%.1f" % r["cpu"] if r.get("cpu") is not None else "-",
                     fmt_kib(r["rss"]) if r.get("rss") else "-",
                     "%.2f" % (ceil / w) if ceil else "-",
                     "%.2f" % (w / ours) if ours and name not in ("mailbridged", "ceiling", "floor") else "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "| " + " | ".join(c.ljust(wd) for c, wd in zip(r, widths)) + " |"
    print(line(rows[0]))
    print("|" + "|".join("-" * (wd + 2) for wd in widths) + "|")
    for r in rows[1:]:
        print(line(r))
    print()
    print("MB/s counts the upstream's message bytes (a Maildir stores LF line ends: mbsync and offlineimap "
          "write fewer bytes than they fetch)")
    print("vs ceiling = ceiling time / its time (1.00 = as fast as one raw FETCH stream); "
          "its time / ours: above 1 = mailbridged faster")
    print("floor = bench/fetch_to_files: the ceiling's stream with each message written into a file of its own, "
          "nothing else (the least any storing client pays)")
    print()
    for name, runs in noop.items():
        if runs:
            print("no-op resync, %s: median %.1f ms (%s)" % (name, statistics.median(runs) * 1e3,
                                                             ", ".join("%.1f" % (x * 1e3) for x in runs)))
    print("  mailbridged: poll-triggered full check on its open connection, from the engine's sync.cycle_done; "
          "mbsync: a whole second run (process start, connect, login included)")
    v = results.get("verify")
    if v:
        print("verify: upstream %d messages / %d body bytes, mailbridged %d / %d: %s"
              % (v[1] + v[2] + ("equal per mailbox (count, bytes, SHA-256 of sorted message SHA-256s)"
                                if v[0] else "DIFFERENT",)))
    for name, r in results.items():
        if isinstance(r, dict) and r.get("error"):
            print("%s failed: %s" % (name, r["error"][:500]))
    for name in ("ceiling", "mailbridged"):
        if results.get(name, {}).get("sched"):
            print("%s: %s" % (name, results[name]["sched"]))
    eng = results.get("mailbridged", {}).get("engine")
    if eng:
        print("mailbridged engine: first cycle %s us for %s messages (connect/login and start-up not included)"
              % (eng["us"], eng["messages"]))
    for n in notes:
        print(n)


if __name__ == "__main__":
    main()
