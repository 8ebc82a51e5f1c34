#!/usr/bin/env python3
"""Repeated, alternating legs of bench/sync_bench.py against one Dovecot: the
ceiling (one raw `UID FETCH 1:* BODY.PEEK[]` stream), the floor
(bench/fetch_to_files) and one or more mailbridged binaries, round after
round, each round's ratios against that round's own ceiling; then medians.

sync_bench.py times every leg once. On a 2-vCPU VM a single ceiling pass
varies by a quarter between passes (0.65-0.87 s for the same 1.1 GB), so a
ratio from one pass says little; this is what the figures in
bench/RESULTS.md that compare builds come from.

    sudo python3 bench/sync_repeat.py 5 build/mailbridged
    sudo python3 bench/sync_repeat.py 5 new=build/mailbridged old=/tmp/mailbridged-main
    sudo python3 bench/sync_repeat.py 3 a=build-x/mailbridged:SOME_ENV=1   # environment for that leg

A leg is LABEL=PATH[:NAME=VALUE...] (or just PATH). Needs what
sync_bench.py needs (root, dovecot-imapd); the floor leg needs
bench/fetch_to_files built next to the first binary.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sync_bench as sb  # noqa: E402  (sets up the test path too)
from imap_bench import Corpus  # noqa: E402
import harness  # noqa: E402
import servers  # noqa: E402


def parse_leg(text):
    """LABEL=PATH[:NAME=VALUE...] or PATH[:...] -> (label, absolute path, environment)."""
    head, *env = text.split(":")
    label, sep, path = head.partition("=")
    if not sep:
        label, path = os.path.basename(os.path.dirname(os.path.abspath(head))), head
    return label, os.path.abspath(path), dict(e.split("=", 1) for e in env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", type=int)
    ap.add_argument("legs", nargs="+", metavar="LABEL=PATH[:NAME=VALUE...]")
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-floor", action="store_true")
    args = ap.parse_args()
    legs = [parse_leg(a) for a in args.legs]
    harness.MAILBRIDGED = legs[0][1]   # the floor's fetch_to_files sits next to it
    quiet = lambda msg: None  # noqa: E731

    dc, per = sb.start_upstream(Corpus(args.count, args.seed), print)
    root = servers.tmp_root()
    total_n = sum(v[0] for v in per.values())
    total_b = sum(v[1] for v in per.values())
    rows = {}  # label -> [(wall, cpu, ceiling wall)]
    ceilings = []
    try:
        sb.leg_ceiling(dc, per, quiet)   # warm-up: Dovecot's indexes and caches
        for i in range(args.rounds):
            ceil = sb.leg_ceiling(dc, per, quiet)["wall"]
            ceilings.append(ceil)
            todo = ([] if args.skip_floor else [("floor", None, {})]) + legs
            for label, path, env in todo:
                work = tempfile.mkdtemp(prefix="mb-repeat-", dir=root)
                os.chmod(work, 0o755)
                saved = {k: os.environ.get(k) for k in env}
                os.environ.update(env)
                try:
                    sb.prime_memory(work, total_b * 3 // 2, quiet)
                    if path is None:
                        harness.MAILBRIDGED = legs[0][1]
                        r = sb.leg_floor(dc, per, work, quiet)
                        sched = ""
                    else:
                        harness.MAILBRIDGED = path
                        r = sb.leg_mailbridged(dc, total_n, os.path.join(work, "mb"), 5, 600, quiet)
                        r.pop("daemon").stop()
                        sched = r.get("sched", "")
                finally:
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
                    shutil.rmtree(work, ignore_errors=True)
                if r.get("error") or r.get("skipped"):
                    print("%d %-10s %s" % (i, label, r.get("error") or r.get("skipped")), flush=True)
                    continue
                rows.setdefault(label, []).append((r["wall"], r["cpu"], ceil))
                print("%d %-10s ceiling %.3f s  wall %.3f s  CPU %.2f s  ratio %.3f  %s"
                      % (i, label, ceil, r["wall"], r["cpu"], ceil / r["wall"], sched), flush=True)
    finally:
        dc.cleanup()

    print("\n%d rounds, %d messages, %.1f MB; ratio = that round's ceiling / the leg's wall"
          % (args.rounds, total_n, total_b / 1e6))
    print("ceiling     median %.3f s (%.3f-%.3f)" % (statistics.median(ceilings), min(ceilings), max(ceilings)))
    for label, rs in rows.items():
        ratio = [c / w for w, _, c in rs]
        print("%-10s  median wall %.3f s, CPU %.2f s, ratio %.3f (%.3f-%.3f)"
              % (label, statistics.median(w for w, _, _ in rs), statistics.median(c for _, c, _ in rs),
                 statistics.median(ratio), min(ratio), max(ratio)))


if __name__ == "__main__":
    main()
