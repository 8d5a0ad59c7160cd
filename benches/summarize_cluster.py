#!/usr/bin/env python3
"""Turns the reports of benches/cluster.sh into one side-by-side table.

Reads OUT/NAME.SETUP.RUN.json (one `udpchat-bench --json` report each),
OUT/NAME.SETUP.RUN.cpu (the CPU seconds the script read from /proc for the
udpchat nodes, NATS and the whole machine over the same run) and
OUT/machine.txt, and prints a Markdown table: one row per measurement, one column per set-up (a single
server; one node with NATS; two nodes with NATS), each value the median
over its runs, with the ratio against the single server beside the others
("2.00x" is twice the single server's figure; whether that is better or
worse depends on the row).

    python3 benches/summarize_cluster.py OUT_DIR
"""

import glob
import json
import os
import statistics
import sys

# A run in which processes other than the bench's and the servers' used more
# than this share of a core was disturbed by other work on the machine.
DISTURBED_PERCENT = 25

SETUPS = [
    ("single", "single server"),
    ("node1", "1 node + NATS"),
    ("node2", "2 nodes + NATS, members split"),
]


def load(out):
    """{(scenario, setup): [(report, cpu), ...]}"""
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        name, setup, run, _ = os.path.basename(path).rsplit(".", 3)
        try:
            with open(path) as f:
                report = json.load(f)
            cpu = None
            if os.path.exists(path[:-5] + ".cpu"):
                with open(path[:-5] + ".cpu") as f:
                    cpu = json.load(f)
        except (OSError, ValueError) as e:
            print(f"summarize_cluster: skipping {path}: {e}", file=sys.stderr)
            continue
        report["run"] = run
        runs.setdefault((name, setup), []).append((report, cpu))
    return runs


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    runs = load(out)
    setups = [(s, label) for s, label in SETUPS if any(k[1] == s for k in runs)]
    rows = []

    def row(label, scenario, extract, digits=0, ratio=True):
        base = median(extract(*r) for r in runs.get((scenario, "single"), []))
        cells = []
        for s, _ in setups:
            reports = runs.get((scenario, s), [])
            v = median(extract(*r) for r in reports)
            cell = fmt(v, digits) if reports else "n/a"
            if ratio and s != "single" and v is not None and base:
                cell += f" ({v / base:.2f}x)"
            cells.append(cell)
        rows.append((label, cells))

    def ms(key):
        def get(r, _cpu):
            v = (r.get("latency_us") or {}).get(key)
            return None if v is None else v / 1000
        return get

    def cpu_per(key, per):
        """CPU µs of `key` (udpchat or nats) per delivery or per line."""
        def get(r, cpu):
            n = r.get("deliveries_received") if per == "delivery" else r.get("lines_acked")
            if not cpu or not n or cpu.get(key) is None:
                return None
            return cpu[key] / n * 1e6
        return get

    def sum_per_line(r, cpu):
        """Every server process's CPU µs per line (the single server has no NATS)."""
        if not cpu or not r.get("lines_acked") or cpu.get("udpchat_cpu_secs") is None:
            return None
        return (cpu["udpchat_cpu_secs"] + (cpu.get("nats_cpu_secs") or 0)) / r["lines_acked"] * 1e6

    def other_percent(r, cpu):
        """CPU the rest of the machine used during the run, % of a core."""
        bench = (r.get("bench") or {}).get("cpu_secs")
        if not cpu or cpu.get("machine_cpu_secs") is None or bench is None or not cpu.get("wall_secs"):
            return None
        ours = cpu["udpchat_cpu_secs"] + (cpu.get("nats_cpu_secs") or 0) + bench
        return max(0.0, 100 * (cpu["machine_cpu_secs"] - ours) / cpu["wall_secs"])

    def cpu_percent(key):
        def get(_r, cpu):
            if not cpu or not cpu.get("wall_secs") or cpu.get(key) is None:
                return None
            return 100 * cpu[key] / cpu["wall_secs"]
        return get

    tp = next(iter(runs.get(("throughput", "single"), [])), ({}, None))[0]
    lines, clients, senders = tp.get("lines_planned"), tp.get("clients", "?"), tp.get("senders", "?")
    what = f"{lines:,} lines" if isinstance(lines, int) else "lines"
    row(f"deliveries/s, {clients} members, {senders} senders, {what} as fast as possible", "throughput",
        lambda r, _: r.get("deliveries_per_sec"))
    row("· lines/s acknowledged (sent ÷ sending time)", "throughput",
        lambda r, _: r["lines_acked"] / r["send_secs"] if r.get("lines_acked") and r.get("send_secs") else None)
    row("· lost % in that run", "throughput", lambda r, _: r.get("lost_percent"), 3, ratio=False)
    row("· p50 latency in that run, ms", "throughput", ms("p50"), 2)
    row("· p99 latency in that run, ms", "throughput", ms("p99"), 2)
    row("· udpchat CPU per delivery (all nodes), µs", "throughput", cpu_per("udpchat_cpu_secs", "delivery"), 3)
    row("· NATS CPU per line, µs", "throughput", cpu_per("nats_cpu_secs", "line"), 1, ratio=False)
    row("· udpchat + NATS CPU per line, µs", "throughput", lambda r, cpu: sum_per_line(r, cpu), 1)
    row("· bench CPU, % of a core", "throughput", lambda r, _: (r.get("bench") or {}).get("cpu_percent"), 0,
        ratio=False)
    lat = next(iter(runs.get(("latency", "single"), [])), ({}, None))[0]
    rate = lat.get("rate")
    at = f"{rate:,.0f} lines/s offered" if rate else "a fixed rate"
    for key, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")):
        row(f"{name} latency at {at}, ms", "latency", ms(key), 2)
    row(f"· lost % at {at}", "latency", lambda r, _: r.get("lost_percent"), 3, ratio=False)
    row(f"· udpchat CPU at {at} (all nodes), % of a core", "latency", cpu_percent("udpchat_cpu_secs"), 1)
    row(f"· NATS CPU at {at}, % of a core", "latency", cpu_percent("nats_cpu_secs"), 1, ratio=False)
    for scenario in ("throughput", "latency"):
        row(f"other processes' CPU during the {scenario} runs, % of a core", scenario, other_percent, 0,
            ratio=False)
    disturbed = sorted(
        f"{name}.{setup}.{r[0]['run']} ({other_percent(*r):.0f} %)"
        for (name, setup), reports in runs.items()
        for r in reports
        if (other_percent(*r) or 0) > DISTURBED_PERCENT
    )

    machine = os.path.join(out, "machine.txt")
    if os.path.exists(machine):
        with open(machine) as f:
            for line in f:
                print(f"    {line.rstrip()}")
        print()
    header = ["measurement"] + [label for _, label in setups]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * len(setups)) + "|")
    for label, cells in rows:
        print("| " + " | ".join([label] + cells) + " |")
    if disturbed:
        print(f"\nRuns with other processes above {DISTURBED_PERCENT} % of a core: " + ", ".join(disturbed))
    failed = sorted(glob.glob(os.path.join(out, "*.err")))
    failed = [f for f in failed if not os.path.exists(f[:-4] + ".json")]
    if failed:
        print(f"\n{len(failed)} run(s) failed: " + ", ".join(os.path.basename(f)[:-4] for f in failed))


if __name__ == "__main__":
    main()
