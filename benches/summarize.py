#!/usr/bin/env python3
"""Turns the JSON reports of benches/compare.sh into one side-by-side table.

Reads OUT/NAME.TARGET.RUN.json (one `udpchat-bench --json` report each) and
OUT/machine.txt, and prints a Markdown table: one row per measurement, one
column per server, each value the median over its runs, with the ratio
against udpchat beside the peers' values ("2.00x" means twice udpchat's
figure, whether that is better or worse depends on the row).

    python3 benches/summarize.py OUT_DIR
"""

import glob
import json
import os
import statistics
import sys

TARGETS = [("udpchat", "udpchat"), ("text", "Python UDP chat"), ("irc", "ngIRCd")]


def load(out):
    """{(scenario, target): [report, ...]}"""
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        name, target, _run, _ = os.path.basename(path).rsplit(".", 3)
        try:
            with open(path) as f:
                runs.setdefault((name, target), []).append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"summarize: skipping {path}: {e}", file=sys.stderr)
    return runs


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(report, *path):
    for key in path:
        if report is None:
            return None
        report = report.get(key)
    return report


def fmt(v, digits):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    runs = load(out)
    targets = [(t, label) for t, label in TARGETS if any(k[1] == t for k in runs)]

    def value(scenario, target, extract):
        reports = runs.get((scenario, target), [])
        return median(extract(r) for r in reports), len(reports)

    rows = []

    def row(label, scenario, extract, digits=0, ratio=True):
        cells = []
        base, _ = value(scenario, "udpchat", extract)
        for t, _ in targets:
            v, n = value(scenario, t, extract)
            cell = fmt(v, digits)
            if n == 0:
                cell = "n/a"
            elif ratio and t != "udpchat" and v is not None and base:
                cell += f" ({v / base:.2f}x)"
            cells.append(cell)
        rows.append((label, cells))

    def ms(key):
        return lambda r: None if get(r, "latency_us", key) is None else get(r, "latency_us", key) / 1000

    def per_delivery_us(r):
        cpu, n = get(r, "server", "cpu_secs"), r.get("deliveries_received")
        return cpu / n * 1e6 if cpu is not None and n else None

    any_report = lambda scenario: next(iter(runs.get((scenario, "udpchat"), []) or [None]), None)
    tp = any_report("throughput") or {}
    lines = tp.get("lines_planned", "?")
    row(f"deliveries/s, {tp.get('clients', '?')} members, {tp.get('senders', '?')} senders, "
        f"{lines:,} lines as fast as possible" if isinstance(lines, int) else "deliveries/s, as fast as possible",
        "throughput", lambda r: r.get("deliveries_per_sec"))
    row("· lost % in that run", "throughput", lambda r: r.get("lost_percent"), 3, ratio=False)
    row("· p99 latency in that run, ms", "throughput", ms("p99"), 2)
    row("· server CPU per delivery, µs", "throughput", per_delivery_us, 3)
    row("· bench CPU, % of a core", "throughput", lambda r: get(r, "bench", "cpu_percent"), 0, ratio=False)
    lat = any_report("latency") or {}
    rate = lat.get("rate")
    label = f"{rate:,.0f} lines/s offered" if rate else "fixed rate"
    for key, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")):
        row(f"{name} latency at {label}, ms", "latency", ms(key), 2)
    row(f"· lost % at {label}", "latency", lambda r: r.get("lost_percent"), 3, ratio=False)
    sweep = sorted(
        {k[0] for k in runs if k[0].startswith("sweep-")}, key=lambda s: int(s.split("-", 1)[1])
    )
    for s in sweep:
        row(f"lost % at {int(s.split('-', 1)[1]):,} lines/s", s, lambda r: r.get("lost_percent"), 3, ratio=False)
    for s in sweep:
        row(f"p99 latency at {int(s.split('-', 1)[1]):,} lines/s, ms", s, ms("p99"), 2)
    loss = any_report("loss") or {}
    if loss:
        drop = loss.get("drop", 0) * 100
        row(f"lost % with {drop:.0f} % of datagrams dropped both ways", "loss",
            lambda r: r.get("lost_percent"), 3, ratio=False)
        row("· duplicated, same runs", "loss", lambda r: r.get("duplicates"), 0, ratio=False)
        row("· out of order, same runs", "loss", lambda r: r.get("out_of_order"), 0, ratio=False)
        row("· p99 latency, same runs, ms", "loss", ms("p99"), 2)
    idle = any_report("idle") or {}
    if idle:
        n = idle.get("clients", 0)
        row(f"idle sessions connected (of {n:,})", "idle", lambda r: r.get("connected"), 0, ratio=False)
        row(f"server RSS with {n:,} idle sessions, MiB", "idle",
            lambda r: None if get(r, "server", "rss_kib_connected") is None
            else get(r, "server", "rss_kib_connected") / 1024, 1)
        row("· server memory per idle session, KiB", "idle",
            lambda r: None if get(r, "server", "rss_kib_connected") is None or not r.get("connected")
            else (get(r, "server", "rss_kib_connected") - get(r, "server", "rss_kib_before")) / r["connected"], 2)
        row("· server CPU while idle (keepalives), % of a core", "idle",
            lambda r: get(r, "server", "cpu_percent"), 2)
        row(f"handshakes/s, {n:,} sessions", "idle", lambda r: r.get("handshakes_per_sec"))
    row(f"handshakes/s, {tp.get('clients', '?')} sessions", "throughput", lambda r: r.get("handshakes_per_sec"))

    machine = os.path.join(out, "machine.txt")
    if os.path.exists(machine):
        with open(machine) as f:
            for line in f:
                print(f"    {line.rstrip()}")
        print()
    header = ["measurement"] + [label for _, label in targets]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * len(targets)) + "|")
    for label, cells in rows:
        print("| " + " | ".join([label] + cells) + " |")
    failed = sorted(glob.glob(os.path.join(out, "*.err")))
    failed = [f for f in failed if not os.path.exists(f[:-4] + ".json")]
    if failed:
        print(f"\n{len(failed)} run(s) failed: " + ", ".join(os.path.basename(f)[:-4] for f in failed))


if __name__ == "__main__":
    main()
