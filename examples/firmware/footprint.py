#!/usr/bin/env python3
"""Measures what the breaker costs in firmware and writes the table in docs/sizes.md.

Builds the `footprint` binary (opt-level "s", LTO) without a breaker and with
each variant, for thumbv7em-none-eabihf and thumbv6m-none-eabi, reads the
section sizes from the ELF files, and writes the differences to docs/sizes.md
between its `firmware-size` markers.

    python3 examples/firmware/footprint.py          # print the table
    python3 examples/firmware/footprint.py --write  # and update docs/sizes.md
    python3 examples/firmware/footprint.py --check  # fail if docs/sizes.md is stale (CI)

Every mode fails if a variant links a 64-bit division it must not, or adds
more `.text` than its limit (the compile-time breaker: 512 B).
"""

import pathlib
import struct
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
README = HERE.parent.parent / "docs" / "sizes.md"
TARGETS = ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"]
BASELINE = ("no breaker", ["--no-default-features"])
# (label, cargo flags, whether it may link a 64-bit division, the most
# `.text` it may add on each target, if it has a limit)
VARIANTS = [
    (
        "`Breaker::fixed`: consecutive failures, a fixed open duration, one probe, "
        "no history, no counts (`FixedConfig::METRICS = false`, `H = 0`)",
        ["--features", "fixed"],
        False,
        512,
    ),
    ("the same, with exponential backoff", ["--features", "fixed-exponential"], False, None),
    ("the same, with jitter", ["--features", "fixed-jitter"], False, None),
    ("the same, with a history of 4 transitions", ["--features", "fixed-history"], False, None),
    ("the same, with `Metrics` counts and time in state", ["--features", "fixed-metrics"], False, None),
    ("the same, with the rate verdict over probes", ["--features", "fixed-rates"], False, None),
    ("the same, with slow calls", ["--features", "fixed-slow"], False, None),
    ("the same, with a `CountWindow<16>` failure rate", ["--features", "fixed,count-window"], False, None),
    ("the same, as a `SharedBreaker`", ["--features", "fixed,shared"], False, None),
    ("`Breaker`, `ConsecutiveFailures`, configured at run time", [], False, None),
    ("`SharedBreaker`, `ConsecutiveFailures`", ["--features", "shared"], False, None),
    ("`Breaker`, `CountWindow<16>`", ["--features", "count-window"], False, None),
    # A time window divides the time by its bucket width.
    ("`Breaker`, `TimeWindow<8>`", ["--features", "time-window"], True, None),
    ("`Breaker`, `ConsecutiveFailures`, on a 16-bit `SharedTickClock`", ["--features", "tick-clock"], False, None),
]
# The library routines of a 64-bit division: slow on a Cortex-M and a few
# hundred bytes. A row that links one says so; one that must not fails.
DIVISIONS_64 = ("__aeabi_uldivmod", "__aeabi_ldivmod", "__udivmoddi4", "__udivdi3", "__divdi3")


def read_elf(elf: pathlib.Path) -> tuple:
    """(section name -> size, sizes of the compiler-builtins functions,
    whether a 64-bit division routine is linked) of a 32-bit little-endian
    ELF file."""
    data = elf.read_bytes()
    shoff = struct.unpack_from("<I", data, 0x20)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<10I", data, shoff + i * shentsize) for i in range(shnum)]

    def string(table: int, offset: int) -> str:
        start = headers[table][4] + offset
        return data[start:data.index(b"\0", start)].decode()

    sizes = {string(shstrndx, h[0]): h[5] for h in headers}
    builtins = 0
    divides_64 = False
    for h in headers:
        if h[1] != 2:  # SHT_SYMTAB
            continue
        for offset in range(h[4], h[4] + h[5], 16):
            st_name, _, st_size, st_info = struct.unpack_from("<IIIB", data, offset)
            name = string(h[6], st_name)
            is_function = st_info & 0xF == 2
            divides_64 |= is_function and any(d in name for d in DIVISIONS_64)
            if is_function and ("compiler_builtins" in name or name.startswith("__aeabi") or name.startswith("__u")):
                builtins += st_size
    return sizes, builtins, divides_64


def measure(target: str, flags: list) -> tuple:
    """(.text, flash, RAM, compiler builtins, 64-bit division linked) of the
    footprint binary: flash is .text + .rodata + .data (its initial values),
    RAM is .data + .bss, builtins the part of .text that is
    compiler-builtins functions (memcpy, memset and friends, which most
    firmware links anyway)."""
    if target.startswith("thumbv6m"):
        # No compare-and-swap: portable-atomic's critical-section fallback.
        flags = [*flags, "--features", "portable-atomic-critical-section"]
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--bin", "footprint", "--target", target, *flags],
        cwd=HERE,
        check=True,
    )
    s, builtins, divides_64 = read_elf(HERE / "target" / target / "release" / "footprint")
    text, rodata, data, bss = (s.get(n, 0) for n in (".text", ".rodata", ".data", ".bss"))
    return text, text + rodata + data, data + bss, builtins, divides_64


def table() -> tuple:
    """(the table, the faults: variants that link a 64-bit division
    they must not, or add more `.text` than their limit)."""
    faults = []
    base = {t: measure(t, BASELINE[1]) for t in TARGETS}
    header = " | ".join(f"{t.split('-')[0]} {c}" for t in TARGETS for c in ("`.text`", "of it builtins", "flash", "RAM"))
    rows = [f"| breaker | {header} |", "|---|" + "---:|" * 4 * len(TARGETS)]
    for label, flags, may_divide, limit in VARIANTS:
        cells = []
        linked = False
        for t in TARGETS:
            sizes = measure(t, flags)
            linked |= sizes[4]
            if sizes[4] and not may_divide:
                faults.append(f"{label} on {t} links a 64-bit division")
            text, builtins, flash, ram = (sizes[i] - base[t][i] for i in (0, 3, 1, 2))
            if limit is not None and text > limit:
                faults.append(f"{label} on {t} adds {text} B of .text, over its limit of {limit} B")
            cells += [f"+{text}", f"+{builtins}", f"+{flash}", f"+{ram}"]
        note = " (links a 64-bit division)" if linked else ""
        note += f" (limit: {limit} B of `.text`)" if limit is not None else ""
        rows.append(f"| {label}{note} | " + " | ".join(cells) + " |")
    cells = [str(base[t][i]) for t in TARGETS for i in (0, 3, 1, 2)]
    rows.append("| *(baseline: the program without a breaker)* | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n", faults


def main() -> None:
    text, faults = table()
    print(text, end="")
    if faults:
        sys.exit("; ".join(faults))
    readme = README.read_text()
    start_marker, end_marker = "<!-- firmware-size:start -->\n", "<!-- firmware-size:end -->"
    start = readme.index(start_marker) + len(start_marker)
    end = readme.index(end_marker, start)
    if "--write" in sys.argv:
        README.write_text(readme[:start] + text + readme[end:])
    elif "--check" in sys.argv and readme[start:end] != text:
        sys.exit("docs/sizes.md's firmware size table is stale: run python3 examples/firmware/footprint.py --write")


if __name__ == "__main__":
    main()
