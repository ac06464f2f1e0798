#!/usr/bin/env python3
"""How far repeated runs of `make bench` agree: the figures of two or more runs side by side, each
with its spread, (max − min) ÷ mean.

    bench/.venv/bin/python bench/spread.py bench/out/results-A.json bench/out/results-B.json [--append]

The runs must be of one kind (all with --app, or all on the stand-in). Prints Markdown; with
--append also appends it to bench/RESULTS.md.
"""

import argparse
import json
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from benchlib import report, report_real  # noqa: E402

BENCH = pathlib.Path(__file__).resolve().parent


def spread(values):
    """(max − min) ÷ mean of the values measured; None when fewer than two were."""
    values = [v for v in values if v is not None]
    if len(values) < 2 or not statistics.mean(values):
        return None
    return (max(values) - min(values)) / statistics.mean(values)


def cells(values, digits):
    shown = " / ".join(report._fmt(float(v), digits) if v is not None else "n/a" for v in values)
    share = spread(values)
    return f"{shown} | {'n/a' if share is None else f'{share * 100:.0f} %'}"


def workload_rows(runs, real):
    names = report_real.WORKLOADS if real else {name: name for name in ("css", "js", "login", "slow")}
    rows = []
    for workload, label in names.items():
        for stack in "cbad":
            measured = [report._wl(run, stack, workload) for run in runs]
            if not any(measured):
                continue
            rps = [m["rps"] if m else None for m in measured]
            p99 = [m["p99_ms"] if m else None for m in measured]
            row = f"| {label} | {report.STACKS[stack]} | {cells(rps, 0)} | {cells(p99, 1)} |"
            if real:
                row += f" {cells([report_real.of_ceiling(run, stack, workload) for run in runs], 2)} |"
            rows.append(row)
        if real:
            tops = [report_real.ceiling(run, workload) for run in runs]
            if any(tops):
                rps = [float(t["rps"]) if t else None for t in tops]
                p99 = [float(t["p99_ms"]) if t else None for t in tops]
                rows.append(f"| {label} | {report_real.CEILING} | {cells(rps, 0)} | {cells(p99, 1)} | | |")
    return rows


def markdown(runs):
    real = bool(runs[0]["meta"].get("real_app"))
    if any(bool(run["meta"].get("real_app")) != real for run in runs):
        raise SystemExit("spread: the runs are not of one kind (some with --app, some on the stand-in)")
    stamps = ", ".join(run["meta"]["timestamp"] for run in runs)
    kind = "the real Lernmanager" if real else "the stand-in app"
    head = "| workload | stack | req/s per run | spread | p99 ms per run | spread |"
    rule = "|---|---|---|---:|---|---:|"
    if real:
        head, rule = head + " req/s ÷ ceiling per run | spread |", rule + "---|---:|"
    lines = [f"## Spread of {len(runs)} runs on {kind}: {stamps}", "",
             "Each figure per run in the order above; spread = (max − min) ÷ mean.", "", head, rule]
    lines += workload_rows(runs, real)
    cold = [report._ratio(report.cold_median(run.get("cold_start") or {}, "precompiled", "start_to_200_s"),
                          report.cold_median(run.get("cold_start") or {}, "empty_prefix", "start_to_200_s"))
            for run in runs]
    pss = [((run["stacks"].get("c", {}).get("memory", {}).get("after_load")) or {}).get("app_pss_mib") for run in runs]
    lines += ["", "| figure | per run | spread |", "|---|---|---:|",
              f"| cold start of (c) (start → 200), precompiled ÷ empty prefix (medians) | {cells(cold, 2)} |",
              f"| app PSS of (c) after the load, MiB | {cells(pss, 1)} |"]
    if real:
        for workload in report_real.PAIR_GOALS:
            for key, name in (("rps", "req/s"), ("p99_ms", "p99")):
                medians = [report_real.paired(run, workload, key) for run in runs]
                lines.append(f"| {report_real.WORKLOADS[workload]}: {name} (c) ÷ (b), median of the run's pairs "
                             f"| {cells(medians, 2)} |")
    for key in ("fresh", "noop", "code_only"):
        seconds = [(run.get("deploy", {}).get(key) or {}).get("seconds") for run in runs]
        if any(seconds):
            lines.append(f"| deploy of (c): {key.replace('_', '-')}, s | {cells(seconds, 1)} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="bench/out/results-*.json of the runs")
    parser.add_argument("--append", action="store_true", help="also append to bench/RESULTS.md")
    args = parser.parse_args()
    if len(args.results) < 2:
        parser.error("give two or more runs")
    runs = [json.loads(pathlib.Path(path).read_text()) for path in args.results]
    text = markdown(runs)
    print(text)
    if args.append:
        with (BENCH / "RESULTS.md").open("a") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
