"""Test harness: runs the real mailbridged binary on ephemeral ports with a
private state dir, and (as their issues land) real peer servers."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

MAILBRIDGED = os.environ.get("MAILBRIDGED", "mailbridged")


class Daemon:
    """One mailbridged process. Use as a context manager or call stop()."""

    def __init__(self, config=None, state_dir=None, log_level="debug", extra_args=()):
        self._log = None
        self.tmp = tempfile.mkdtemp(prefix="mb-it-")
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        self.config_path = os.path.join(self.tmp, "config.json")
        cfg = {"api": {"listen": "127.0.0.1:0"}, "log": {"level": log_level},
               "imap": {"listen": "127.0.0.1:0", "tls_listen": "127.0.0.1:0"},
               "smtp": {"listen": "127.0.0.1:0", "tls_listen": "127.0.0.1:0"},
               "accounts": [{"name": "local", "address": "me@localhost"}]}
        if config:
            cfg.update(config)
        self.write_config(cfg)
        self.log_path = os.path.join(self.tmp, "daemon.log")
        self.extra_args = list(extra_args)
        self.proc = None
        self.listeners = {}

    def write_config(self, cfg):
        self.config = cfg
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)

    def start(self, timeout=20):
        if getattr(self, "_log", None):
            self._log.close()
        self._log = open(self.log_path, "ab")
        listeners = os.path.join(self.state_dir, "listeners.json")
        if os.path.exists(listeners):
            os.unlink(listeners)
        self.proc = subprocess.Popen(
            [MAILBRIDGED, "--config", self.config_path, "--state-dir", self.state_dir] + self.extra_args,
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mailbridged exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(listeners):
                with open(listeners) as f:
                    self.listeners = json.load(f)
                if "api" in self.listeners:
                    return self
            time.sleep(0.02)
        raise RuntimeError("mailbridged did not become ready:\n" + self.log())

    @property
    def api_url(self):
        return "http://" + self.listeners["api"]

    @property
    def token(self):
        with open(os.path.join(self.state_dir, "api-token")) as f:
            return f.read().strip()

    def api(self, method, path, token=True, body=None):
        """Returns (status, parsed JSON body)."""
        headers = {}
        if token is True:
            headers["Authorization"] = "Bearer " + self.token
        elif token:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.api_url + path, method=method, headers=headers, data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")
        except (OSError, http.client.HTTPException) as e:
            # A transport failure is never an answer: say whether the daemon is
            # still alive and what it logged last, so a CI failure explains itself.
            alive = self.proc is not None and self.proc.poll() is None
            state = "still running" if alive else "exited with %r" % (self.proc.returncode if self.proc else None)
            tail = "\n".join(self.log().splitlines()[-40:])
            raise AssertionError("%s %s: %s: %s (daemon %s); last log lines:\n%s"
                                 % (method, path, type(e).__name__, e, state, tail)) from e

    def signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, timeout=10):
        """SIGTERM and wait; returns (exit code, seconds taken)."""
        if not self.proc or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return rc, time.monotonic() - t0

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.kill()
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()


def run_once(args, timeout=20):
    """Runs mailbridged with args to completion: (exit code, stdout, stderr)."""
    p = subprocess.run([MAILBRIDGED] + list(args), capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
