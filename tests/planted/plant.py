#!/usr/bin/env python3
"""Plants named bugs one at a time and runs each checking layer against
each, to show which checks catch which bug.

    python3 tests/planted/plant.py                 # every bug, every layer
    python3 tests/planted/plant.py --bugs seqlock  # bugs whose name has "seqlock"
    python3 tests/planted/plant.py --layers loom-core,loom-std
    python3 tests/planted/plant.py --write         # also write results.json and the table in docs/testing.md
    python3 tests/planted/plant.py --merge other/results.json   # fold in another run, rewrite the table

A layer that runs past `--timeout` counts as "timed out", not as a catch.

A bug is a literal replacement in one source file; the script fails loudly
if the text it replaces is gone (the bug list must follow the code). The
tree is restored after each bug, also on Ctrl-C. Run it on a clean work
tree: it refuses otherwise.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "planted" / "results.json"
README = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- planted -->", "<!-- /planted -->"

SHARED = "core/src/shared.rs"
BREAKER = "core/src/breaker.rs"
STD = "std-adapter/src/breaker.rs"

# name, file, text to find, its replacement.
BUGS = [
    ("a probe too many", BREAKER,
     "if probes.in_flight >= self.config.max_probes() {",
     "if probes.in_flight > self.config.max_probes() {"),
    ("a stale permit counted in the closed state", BREAKER,
     "if permit.generation != self.generation {",
     "if permit.generation != self.generation && !matches!(self.phase, Phase::Closed) {"),
    ("a probe lease that never ends", BREAKER,
     "if probes.in_flight > 0 && t >= probes.lease_until {",
     "if probes.in_flight > 0 && t >= probes.lease_until && false {"),
    ("equal jitter beyond its bound", BREAKER,
     "Duration::from_micros(half + self.rng.up_to(d.as_micros() - half))",
     "Duration::from_micros(half + self.rng.up_to(d.as_micros()))"),
    ("a stale report counted while disabled", BREAKER,
     "let counting = permit.state != State::Disabled && !matches!(self.phase, Phase::Disabled);",
     "let counting = true;"),
    ("no generation check on the lock-free report", SHARED,
     "            || view.generation != permit.generation()\n",
     ""),
    ("an inline report that ignores the sequence number", SHARED,
     "self.seq.load(Ordering::Acquire) == view.seq",
     "{ let _ = view; true }"),
    ("an already-counted permit on the lock-free path", SHARED,
     "if permit.is_counted() {\n            return false;\n        }",
     ""),
    ("seqlock: no validation re-read", SHARED,
     "(before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before).then_some(view)",
     "(before & 1 == 0).then_some(view)"),
    ("seqlock: no reader fence", SHARED,
     "            seq: before,\n        };\n        fence(Ordering::Acquire);",
     "            seq: before,\n        };"),
    ("seqlock: no writer fence", SHARED,
     "        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);\n        fence(Ordering::Release);",
     "        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);"),
    ("seqlock: a relaxed final store", SHARED,
     "self.seq.store(seq.wrapping_add(2), Ordering::Release);",
     "self.seq.store(seq.wrapping_add(2), Ordering::Relaxed);"),
    ("seqlock: a relaxed first load", SHARED,
     "let before = self.seq.load(Ordering::Acquire);",
     "let before = self.seq.load(Ordering::Relaxed);"),
    ("seqlock: no odd sequence number", SHARED,
     "        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);\n",
     ""),
    ("a thread index handed over without ordering", "std-adapter/src/counters.rs",
     "            // Release: the next holder sees every count made under it.\n"
     "            FREE.fetch_or(1 << i, Ordering::Release);",
     "            FREE.fetch_or(1 << i, Ordering::Relaxed);"),
    ("a waiter that spins", STD,
     "                if w.changes.load(Ordering::SeqCst) == seen {\n                    let _ = w.woken.wait_timeout(held, wait);\n                }",
     "                let _ = (held, wait, seen);"),
    ("a listener panic that stops delivery", STD,
     "                let _ = catch_unwind(AssertUnwindSafe(|| listener(&t)));",
     "                listener(&t);"),
]

LOOM = {"LOOM_MAX_PREEMPTIONS": "3", "RUSTFLAGS": "--cfg loom"}

# name, command, extra environment, what it runs.
LAYERS = [
    ("unit", ["cargo", "test", "--workspace", "-q", "--",
              "--skip", "every_breaker_matches_the_model",
              "--skip", "every_attempt_is_accounted_for_exactly_once"],
     {}, "the unit, scenario, regression and corpus tests (`cargo test`, model and stress apart)"),
    ("model", ["cargo", "test", "--release", "-q", "--test", "model_check"],
     {}, "the reference model test, 2,048 cases"),
    ("stress", ["cargo", "test", "--release", "-q", "-p", "breakerbox-std", "--test", "stress"],
     {}, "the std stress test"),
    ("loom-core", ["cargo", "test", "-q", "-p", "breakerbox-core", "--test", "loom",
                   "--release", "--target-dir", "target/loom"],
     LOOM, "the core's loom tests"),
    ("loom-std", ["bash", "-c",
                  "cargo test -q -p breakerbox-std --test loom --release --target-dir target/loom"
                  " && cargo test -q -p breakerbox-std --lib --release --target-dir target/loom"],
     LOOM, "the std adapter's loom tests (its lock-free paths, and the thread-index hand-over)"),
    # On a fresh copy of the seed corpus: inputs found under one planted
    # bug must not help catch the next.
    ("fuzz", ["bash", "-c",
              "cd fuzz && rm -rf target/planted-corpus && cp -r corpus target/planted-corpus"
              " && for t in ops config clock; do "
              "cargo +nightly fuzz run \"$t\" \"target/planted-corpus/$t\" --"
              " -max_total_time=20 -max_len=2048 || exit 1; done"],
     {}, "each fuzz target for 20 s, from the seed corpus"),
]


def run_layer(cmd, env, timeout):
    """Whether the layer fails (catches the bug), and the named invariant
    that failed, if the failure names one."""
    full_env = dict(os.environ, **env)
    # A session of its own, so a timeout stops the tests it started too.
    p = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace",
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None, None
    named = re.search(r"invariant (.+?) broken", out)
    return p.returncode != 0, named.group(1) if named else None


def plant(file, find, replace):
    path = ROOT / file
    text = path.read_text()
    if text.count(find) != 1:
        sys.exit(f"the text to replace is not in {file} exactly once: {find!r}")
    path.write_text(text.replace(find, replace))
    return path, text


def table(results):
    layers = [l for l in LAYERS if any(l[0] in r["layers"] for r in results)]
    head = "| planted bug | " + " | ".join(l[0] for l in layers) + " |"
    rule = "|---|" + "---|" * len(layers)
    rows = []
    for r in results:
        cells = []
        for l in layers:
            v = r["layers"].get(l[0])
            named = r.get("invariants", {}).get(l[0])
            cell = {True: "**caught**", False: "missed", None: "timed out"}[v]
            if l[0] not in r["layers"]:
                cell = "—"
            cells.append(f"{cell} (invariant: {named})" if v and named else cell)
        rows.append(f"| {r['bug']} | " + " | ".join(cells) + " |")
    legend = "; ".join(f"`{l[0]}`: {l[3]}" for l in layers)
    return "\n".join([head, rule, *rows, "", f"Layers: {legend}."])


def write_readme(results):
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    block = ("\nGenerated by `python3 tests/planted/plant.py --write` (each bug planted "
             "alone; \"—\": that layer was not run against it; \"timed out\": it ran past "
             "the script's timeout, which is not counted as a catch):\n\n"
             + table(results) + "\n")
    README.write_text(text[:start] + block + text[end:])


def save(results):
    """Merges `results` into results.json (a newer verdict of a layer
    replaces the older one) and writes the table in docs/testing.md from it."""
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    merged = {r["bug"]: r for r in old}
    for r in results:
        entry = merged.setdefault(r["bug"], {"bug": r["bug"], "layers": {}})
        entry["layers"].update(r["layers"])
        entry.setdefault("invariants", {})
        for layer in r["layers"]:
            entry["invariants"].pop(layer, None)
        entry["invariants"].update(r.get("invariants", {}))
    ordered = [merged[b[0]] for b in BUGS if b[0] in merged]
    RESULTS.write_text(json.dumps(ordered, indent=2) + "\n")
    write_readme(ordered)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bugs", default="", help="only bugs whose name contains this")
    ap.add_argument("--layers", default="", help="comma-separated layer names")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per layer run")
    ap.add_argument("--write", action="store_true", help="write results.json and the table in docs/testing.md")
    ap.add_argument("--merge", help="another run's results.json to fold in (runs nothing)")
    ap.add_argument("--skip-baseline", action="store_true",
                    help="do not first check that each layer passes unplanted")
    args = ap.parse_args()

    if args.merge:
        save(json.loads(Path(args.merge).read_text()))
        return

    # The script's own outputs may differ from the commit (runs accumulate),
    # and proptest saves the cases that caught a planted bug.
    dirty = [line for line in subprocess.run(
                 ["git", "status", "--porcelain", "--untracked-files=no"],
                 cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
             if not line.endswith(("docs/testing.md", "tests/planted/results.json", ".proptest-regressions"))]
    if dirty:
        sys.exit("commit or stash your changes first: the script rewrites source files")

    wanted = [l for l in LAYERS if not args.layers or l[0] in args.layers.split(",")]
    bugs = [b for b in BUGS if args.bugs in b[0]]
    # Each layer must pass on the unplanted tree, or its catches mean nothing.
    for name, cmd, env, _ in [] if args.skip_baseline else wanted:
        if run_layer(cmd, env, args.timeout)[0] is not False:
            sys.exit(f"layer {name} fails (or times out) without any planted bug")

    results = []
    for bug, file, find, replace in bugs:
        path, original = plant(file, find, replace)
        caught, invariants = {}, {}
        try:
            for name, cmd, env, _ in wanted:
                t0 = time.time()
                caught[name], invariant = run_layer(cmd, env, args.timeout)
                if caught[name] and invariant:
                    invariants[name] = invariant
                verdict = {True: "caught", False: "missed", None: "timed out"}[caught[name]]
                print(f"{bug:55} {name:10} {verdict:7} {time.time() - t0:6.0f} s"
                      + (f"  ({invariant})" if caught[name] and invariant else ""), flush=True)
        finally:
            path.write_text(original)
        results.append({"bug": bug, "layers": caught, "invariants": invariants})

    print()
    print(table(results))
    if args.write:
        save(results)
    missed = [r["bug"] for r in results if not any(r["layers"].values())]
    if missed:
        sys.exit(f"caught by no layer: {missed}")


if __name__ == "__main__":
    main()
