#!/usr/bin/env python3
"""The benchmark tables of docs/performance.md, from criterion's output: never typed by hand.

    bash benches/run.sh                  # three runs of the benches, then this
    python3 benches/report.py            # collect target/criterion into
                                         # benches/results.json, rewrite the README
    python3 benches/report.py --check    # the README matches benches/results.json

Each figure is the median over the runs (criterion baselines `run1`, `run2`,
... that `benches/run.sh` saves; a plain `cargo bench` run, `new`, if there are
none) of criterion's median: on a shared virtual machine one run can be off by
a nanosecond. The figures are kept in benches/results.json with the machine
they ran on, so the README can be checked without running the benches.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import date

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion")
RESULTS = os.path.join(ROOT, "benches", "results.json")
README = os.path.join(ROOT, "docs", "performance.md")
BEGIN, END = "<!-- bench -->", "<!-- /bench -->"
COMMAND = "bash benches/run.sh"

LABELS = {
    "bare_call": "bare call (floor)",
    "atomic_load": "one atomic load (floor)",
    "clock_monotonic": "one `MonotonicClock` read (`Instant::now`)",
    "clock_quanta": "one `QuantaClock` read (time-stamp counter)",
    "clock_coarse": "one `CoarseClock` read (quanta's recent time)",
    "core_breaker": "core `Breaker`",
    "core_breaker_mutex": "core `Breaker` in a `Mutex`",
    "core_shared": "core `SharedBreaker`",
    "std_breaker": "`StdBreaker`",
    "std_breaker_quanta": "`StdBreaker` on `QuantaClock`",
    "std_breaker_coarse": "`StdBreaker` on `CoarseClock`",
    "failsafe": "failsafe 1.3, consecutive failures",
    "failsafe_default": "failsafe 1.3, default policy",
    "recloser": "recloser 1.4, default (50 % over 100 calls)",
    "direct": "10,000 breakers built directly, no registry",
    "held": "a handle kept (`registry.get` once), walking 10,000 breakers",
    "lookup": "`registry.get(name)` per call, walking 10,000 breakers",
    "lent": "`registry.with(name, …)` per call (lent, no reference count), walking 10,000 breakers",
}

# (group, title, the rows' baseline for "over", peers for "× faster")
TABLES = [
    ("closed_consecutive", "Closed, a successful call, consecutive failures (5)",
     "atomic_load", ["failsafe"]),
    ("closed_window100", "Closed, a successful call, failure rate over the last 100 calls",
     "atomic_load", ["recloser", "failsafe_default"]),
    ("open", "Open, a rejected call (\"over\": over one read of the breaker's own clock)",
     "clock_monotonic", ["failsafe", "recloser"]),
    ("half_open", "Half-open, a probe admitted and recorded", None, []),
    ("record", "Recording one outcome into a window (core `Breaker`, 1 failure in 4)", None, []),
    ("two_threads_consecutive",
     "Two threads pinned to the two CPUs, one shared breaker, consecutive failures "
     "(time per call, both threads' calls together)", "atomic_load", ["failsafe"]),
    ("two_threads_window100",
     "Two threads pinned to the two CPUs, one shared breaker, failure rate over 100 calls "
     "(time per call, both threads' calls together)", None, ["recloser", "failsafe_default"]),
    ("registry_10000", "A registry of 10,000 breakers, a closed call on each in turn", None, []),
    ("two_threads_registry_10000",
     "The same on two threads pinned to the two CPUs (time per call, both threads' calls "
     "together)", None, []),
]

RECORD_LABELS = {
    "count_16": "`CountWindow<16>`",
    "count_128": "`CountWindow<128>`",
    "count_1024": "`CountWindow<1024>`",
    "time_10": "`TimeWindow<10>` (a new bucket every 64 calls)",
    "time_100": "`TimeWindow<100>` (a new bucket every 64 calls)",
}


def collect():
    medians, runs_seen = {}, 0
    for group, *_ in TABLES:
        folder = os.path.join(CRITERION, group)
        if not os.path.isdir(folder):
            sys.exit(f"no criterion output for {group}: run `cargo bench --bench breakers` first")
        for bench in sorted(os.listdir(folder)):
            runs = sorted(r for r in os.listdir(os.path.join(folder, bench)) if r.startswith("run"))
            values = []
            for run in runs or ["new"]:
                path = os.path.join(folder, bench, run, "estimates.json")
                if os.path.exists(path):
                    with open(path) as f:
                        values.append(json.load(f)["median"]["point_estimate"])
            if values:
                medians[f"{group}/{bench}"] = statistics.median(values)
                runs_seen = len(values)
    return {"machine": machine(), "command": COMMAND, "runs": runs_seen, "medians": medians}


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "rustc": rustc,
        "date": date.today().isoformat(),
    }


def ns(value):
    return f"{value:.2f} ns" if value < 100 else f"{value:.0f} ns"


def render(results):
    m = results["medians"]
    mach = results["machine"]
    out = [
        f"Criterion medians (the median of {results.get('runs', 1)} runs) on {mach['cpu']} "
        f"({mach['cpus']} CPUs, {mach['os']}), {mach['rustc']}, {mach['date']}. "
        f"Reproduce with `{results['command']}`.",
        "",
    ]
    for group, title, base, peers in TABLES:
        rows = sorted(k.split("/", 1)[1] for k in m if k.startswith(group + "/"))
        if not rows:
            continue
        header = ["", "median"]
        if base:
            header.append(f"over {LABELS[base].split(' (')[0]}")
        header += [f"{LABELS[p].split(',')[0]} ÷ this" for p in peers if f"{group}/{p}" in m]
        out += [f"**{title}**", "", "| " + " | ".join(header) + " |",
                "|---" + "|---:" * (len(header) - 1) + "|"]
        order = list(LABELS) if group != "record" else list(RECORD_LABELS)
        for bench in sorted(rows, key=lambda b: order.index(b) if b in order else 99):
            value = m[f"{group}/{bench}"]
            label = (RECORD_LABELS if group == "record" else LABELS).get(bench, bench)
            cells = [label, ns(value)]
            if base:
                floor = m[f"{group}/{base}"]
                for clock in ("quanta", "coarse"):
                    if bench == f"std_breaker_{clock}":
                        floor = m.get(f"{group}/clock_{clock}", floor)
                is_floor = bench == base or bench.startswith("clock_")
                cells.append("" if is_floor else f"{value - floor:+.2f} ns")
            for p in peers:
                if f"{group}/{p}" in m:
                    cells.append(f"{m[f'{group}/{p}'] / value:.1f}×")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += targets(m)
    return "\n".join(out).rstrip() + "\n"


def targets(m):
    """The issue's targets, each measured in the same run."""
    def get(k):
        return m.get(k, float("nan"))

    cc, cw, op, tc, tw = ("closed_consecutive", "closed_window100", "open",
                          "two_threads_consecutive", "two_threads_window100")
    cheapest_peer_open = min(get(f"{op}/failsafe"), get(f"{op}/recloser"))
    rows = [
        ("core `Breaker` closed path within 1 ns of one atomic load",
         get(f"{cc}/core_breaker") - get(f"{cc}/atomic_load"), "{:+.2f} ns", lambda v: v <= 1.0),
        ("`StdBreaker` closed, consecutive failures, under 3 ns",
         get(f"{cc}/std_breaker"), "{:.2f} ns", lambda v: v < 3.0),
        ("… and at least 3× better than failsafe",
         get(f"{cc}/failsafe") / get(f"{cc}/std_breaker"), "{:.1f}×", lambda v: v >= 3),
        ("`StdBreaker` closed, 100-call rate window, under 5 ns",
         get(f"{cw}/std_breaker"), "{:.2f} ns", lambda v: v < 5.0),
        ("… and at least 2× better than recloser",
         get(f"{cw}/recloser") / get(f"{cw}/std_breaker"), "{:.1f}×", lambda v: v >= 2),
        ("`StdBreaker` open rejection within 2 ns of one clock read",
         get(f"{op}/std_breaker") - get(f"{op}/clock_monotonic"), "{:+.2f} ns",
         lambda v: v <= 2.0),
        ("… on `QuantaClock`, within 2 ns of one read of it",
         get(f"{op}/std_breaker_quanta") - get(f"{op}/clock_quanta"), "{:+.2f} ns",
         lambda v: v <= 2.0),
        ("… on `QuantaClock`, at least 3× cheaper than the cheaper peer",
         cheapest_peer_open / get(f"{op}/std_breaker_quanta"), "{:.1f}×", lambda v: v >= 3),
        ("… on `CoarseClock`, within 2 ns of one read of it",
         get(f"{op}/std_breaker_coarse") - get(f"{op}/clock_coarse"), "{:+.2f} ns",
         lambda v: v <= 2.0),
        ("… on `CoarseClock`, at least 3× cheaper than the cheaper peer",
         cheapest_peer_open / get(f"{op}/std_breaker_coarse"), "{:.1f}×", lambda v: v >= 3),
        ("two threads, consecutive failures: at least 4× better than failsafe",
         get(f"{tc}/failsafe") / get(f"{tc}/std_breaker"), "{:.1f}×", lambda v: v >= 4),
        ("two threads, 100-call rate window: at least 2× better than recloser",
         get(f"{tw}/recloser") / get(f"{tw}/std_breaker"), "{:.1f}×", lambda v: v >= 2),
        ("two threads, the registry's path (a handle kept) within 3× of a breaker held directly",
         get("two_threads_registry_10000/held") / get("two_threads_registry_10000/direct"),
         "{:.2f}×", lambda v: v <= 3),
        ("… a lookup per call (`registry.with`) within 3× of a breaker held directly",
         get("two_threads_registry_10000/lent") / get("two_threads_registry_10000/direct"),
         "{:.1f}×", lambda v: v <= 3),
    ]
    out = ["**Targets** (from the same run)", "", "| target | measured | met |", "|---|---:|:-:|"]
    for name, value, fmt, ok in rows:
        out.append(f"| {name} | {fmt.format(value)} | {'yes' if ok(value) else '**no**'} |")
    out.append("")
    return out


def splice(readme, table):
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + table + readme[end:]


def main():
    with open(README) as f:
        readme = f.read()
    if "--check" in sys.argv:
        with open(RESULTS) as f:
            results = json.load(f)
        if splice(readme, render(results)) != readme:
            sys.exit("docs/performance.md's benchmark tables are stale: run `python3 benches/report.py`")
        print("docs/performance.md's benchmark tables match benches/results.json")
        return
    results = collect()
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    table = render(results)
    with open(README, "w") as f:
        f.write(splice(readme, table))
    print(table)


if __name__ == "__main__":
    main()
