"""Turning the results into the Markdown table, the target check and the chart."""

import statistics

from .fleet import table as fleet_table

STACKS = {
    "a": "(a) upstream: waitress",
    "b": "(b) upstream nginx site → waitress",
    "c": "(c) role: nginx → gunicorn",
    "d": "(d) bare nginx gzip_static",
}
RAW = {"css": "/static/css/style.css", "js": "/static/js/app.js"}


def _wl(results, stack, workload):
    return results["stacks"].get(stack, {}).get("workloads", {}).get(workload)


def _ratio(x, y):
    return x / y if x is not None and y else None


def _fmt(value, digits=1, suffix=""):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value:,}{suffix}"


def median(values):
    return statistics.median(values) if values else None


def cold_median(cold, variant, part):
    return median([run[part] for run in cold.get(variant, [])])


def targets(results):
    """The issue's targets, each with the measured value; none is faked: a missing number
    is reported as not measured."""
    def rps(stack, workload):
        w = _wl(results, stack, workload)
        return w["rps"] if w else None

    def p99(stack, workload):
        w = _wl(results, stack, workload)
        return w["p99_ms"] if w else None

    def wire_share(workload):
        w = _wl(results, "c", workload)
        if not w or "size" not in w or not w.get("raw_bytes"):
            return None
        return w["size"]["body_bytes"] / w["raw_bytes"]

    cold = results.get("cold_start") or {}
    cold_ratio = _ratio(cold_median(cold, "precompiled", "total_s"), cold_median(cold, "empty_prefix", "total_s"))
    start_ratio = _ratio(cold_median(cold, "precompiled", "start_to_200_s"),
                         cold_median(cold, "empty_prefix", "start_to_200_s"))
    recycle = {r["max_requests"]: r["login"]["rps"] for r in results.get("recycling", [])
               if r.get("login")}
    cost = None
    if 0 in recycle and results.get("defaults", {}).get("max_requests") in recycle:
        cost = 1 - recycle[results["defaults"]["max_requests"]] / recycle[0]
    pss = (results["stacks"].get("c", {}).get("memory", {}).get("after_load") or {}).get("app_pss_mib")

    rows = [
        ("static CSS req/s (c)/(a)", _ratio(rps("c", "css"), rps("a", "css")), ">= 50", lambda v: v >= 50, "x"),
        ("static CSS req/s (c)/(d)", _ratio(rps("c", "css"), rps("d", "css")), ">= 0.8", lambda v: v >= 0.8, "x"),
        ("CSS bytes on the wire (c) / raw", wire_share("css"), "<= 25 %", lambda v: v <= 0.25, "%"),
        ("JS bytes on the wire (c) / raw", wire_share("js"), "<= 25 %", lambda v: v <= 0.25, "%"),
        ("/login req/s (c)/(b)", _ratio(rps("c", "login"), rps("b", "login")), ">= 1.2", lambda v: v >= 1.2, "x"),
        ("/login req/s (c)/(a)", _ratio(rps("c", "login"), rps("a", "login")), ">= 0.8", lambda v: v >= 0.8, "x"),
        ("/login p99 (c) / p99 (b)", _ratio(p99("c", "login"), p99("b", "login")), "<= 1.0", lambda v: v <= 1.0, "x"),
        ("/slow req/s (c), 30 clients", rps("c", "slow"), ">= 135", lambda v: v >= 135, ""),
        ("/slow p99 (c) ms", p99("c", "slow"), "<= 300", lambda v: v <= 300, ""),
        ("cold start restart → 200, precompiled / empty prefix (medians)", cold_ratio, "<= 0.4", lambda v: v <= 0.4, "x"),
        ("  same without the stop (start → 200), for information", start_ratio, "<= 0.4", lambda v: v <= 0.4, "x"),
        ("recycling cost (default max_requests vs 0, /login)", cost, "<= 5 %", lambda v: v <= 0.05, "%"),
        ("app PSS (c) after load, MiB", pss, "<= 150", lambda v: v <= 150, ""),
    ]
    return judge(rows)


def judge(rows):
    """Each (target, value, goal, check, unit) row as the report shows it: the value in its unit
    ("%" a share, "x" a ratio, "n" a count, "" a plain figure), and whether the goal is met (None:
    not measured)."""
    formats = {"%": lambda v: f"{v * 100:.1f} %", "x": lambda v: f"{v:.2f}×", "n": str, "": lambda v: f"{v:.1f}"}
    out = []
    for name, value, goal, check, unit in rows:
        shown, met = ("not measured", None) if value is None else (formats[unit](value), check(value))
        out.append({"target": name, "measured": shown, "value": value, "goal": goal, "met": met})
    return out


def fleet_markdown(results):
    meta = results["meta"]
    return [
        "### Scaling across hosts (`--fleet`)",
        "",
        f"- Machine: `{meta['host']['uname']}`, nproc {meta['host']['nproc']}, CPU: {meta['host']['cpu_model']}; "
        f"load average at start {' '.join(meta['host']['loadavg_at_start'])}",
        f"- VPS containers: `{meta['image']}`, 1 CPU each (alternately core 0 and 1), 1 GB, no swap; the "
        "controller (ansible-playbook, 5 forks) on the same two cores",
        f"- Role from a snapshot at {meta.get('source', {}).get('commit', '?')}; rolling = the default "
        "serial (a canary, then 34 %), parallel = `-e lernmanager_serial=100%`; an empty wheelhouse per row",
        "- Seconds on the wall clock; in brackets the controller's CPU seconds (ansible-playbook and its forks)",
        "",
        fleet_table(results.get("fleet", [])),
    ]


def markdown(results):
    meta = results["meta"]
    kind = " (--quick: development run, short windows)" if meta.get("quick") else ""
    lines = [f"## Run {meta['timestamp']}{kind}", ""]
    if meta.get("fleet_only"):
        return "\n".join(lines + fleet_markdown(results) + not_measured(results))
    lines += header(results)
    if meta.get("backups_only"):
        return "\n".join(lines + backups_markdown(results) + not_measured(results))
    lines += [
        "### Throughput and latency",
        "",
        "| workload | stack | req/s | p50 ms | p99 ms | body bytes | encoding | % of raw | failed | host load 1 min |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for workload in ("css", "js", "login", "slow"):
        for stack in "abcd":
            w = _wl(results, stack, workload)
            if w is None:
                continue
            size = w.get("size") or {}
            share = (f"{size['body_bytes'] / w['raw_bytes'] * 100:.0f} %"
                     if size.get("body_bytes") is not None and w.get("raw_bytes") else "")
            lines.append(
                f"| {workload} | {STACKS[stack]} | {_fmt(w['rps'], 0)} | {_fmt(w['p50_ms'], 2)} | "
                f"{_fmt(w['p99_ms'], 2)} | {_fmt(size.get('body_bytes'))} | "
                f"{size.get('encoding', '')} | {share} | {w['failed']} | "
                f"{_fmt(w.get('host_loadavg_1m'), 1)} |")
    lines += ["", "### Ratios of (c)", "",
              "| workload | req/s (c)/(a) | req/s (c)/(b) | req/s (c)/(d) | p99 (c)/(a) | p99 (c)/(b) |",
              "|---|---:|---:|---:|---:|---:|"]
    for workload in ("css", "js", "login", "slow"):
        c = _wl(results, "c", workload)
        if not c:
            continue
        cells = []
        for other in "abd":
            o = _wl(results, other, workload)
            cells.append(_fmt(_ratio(c["rps"], o["rps"] if o else None), 2, "×"))
        for other in "ab":
            o = _wl(results, other, workload)
            cells.append(_fmt(_ratio(c["p99_ms"], o["p99_ms"] if o else None), 2, "×"))
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")

    lines += memory_lines(results) + cold_start_lines(results) + deploy_lines(results)

    if results.get("sweep"):
        lines += ["", "### Sizing sweep of (c): gthread workers × threads", "",
                  "| workers × threads | /login req/s | /login p99 ms | /slow req/s | /slow p99 ms | failed | app PSS after load MiB | redeploy s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in results["sweep"]:
            if "error" in row:
                lines.append(f"| {row['workers']}×{row['threads']} | error: {row['error'][:80]} | | | | | | |")
                continue
            lines.append(
                f"| {row['workers']}×{row['threads']}{' (default)' if row.get('is_default') else ''} | "
                f"{_fmt(row['login']['rps'], 0)} | {_fmt(row['login']['p99_ms'], 1)} | "
                f"{_fmt(row['slow']['rps'], 0)} | {_fmt(row['slow']['p99_ms'], 1)} | "
                f"{row['login']['failed'] + row['slow']['failed']} | {_fmt(row.get('pss_mib'))} | "
                f"{row['deploy']['seconds']} |")

    if results.get("recycling"):
        meta = results["meta"]
        lines += ["", f"### Recycling of (c): /login, {meta['recycle_s']} s sustained, 30 connections, "
                      f"best of {meta.get('recycle_rounds', 1)} alternating round(s)", "",
                  "| max_requests (jitter default) | req/s best | p99 ms | max ms | workers booted in the run | failed | req/s of every round | host load 1 min |",
                  "|---|---:|---:|---:|---:|---:|---|---|"]
        for row in results["recycling"]:
            if "login" not in row:
                lines.append(f"| {row['max_requests']} | error: {row.get('error', '')[:80]} | | | | | | |")
                continue
            runs = row.get("runs", [])
            lines.append(f"| {row['max_requests']} | {_fmt(row['login']['rps'], 0)} | "
                         f"{_fmt(row['login']['p99_ms'], 1)} | {_fmt(row['login']['max_ms'], 1)} | "
                         f"{row.get('recycles', 'n/a')} | {row['login']['failed']} | "
                         + ", ".join(f"{r['login']['rps']:,.0f}" for r in runs) + " | "
                         + ", ".join(f"{r['login'].get('host_loadavg_1m', 0):.1f}" for r in runs) + " |")

    if any(results.get("storm", {}).values()):
        lines += ["", "### Login storm: a class logs in at once (every client GETs the form, then all "
                  "POST it together)", "",
                  "| class | stack | logged in | time for the whole class s | median s | statuses | "
                  "processes killed | app restarted |",
                  "|---:|---|---:|---:|---:|---|---:|---|"]
        for stack in "abc":
            for row in results["storm"].get(stack, []):
                statuses = ", ".join(f"{code}×{n}" for code, n in sorted(row.get("statuses", {}).items()))
                errors = row["clients"] - sum(row.get("statuses", {}).values())
                lines.append(
                    f"| {row['class']} | {STACKS[stack]} | {row['succeeded']} of {row['clients']} | "
                    f"{_fmt(row.get('last_s'), 2)} | {_fmt(row.get('median_s'), 2)} | "
                    f"{statuses}{'; ' if statuses and errors else ''}{f'{errors} without an answer' if errors else ''} | "
                    f"{row.get('killed', '')} | {'yes' if row.get('restarted') else 'no'} |")

    lines += target_lines(results)
    return "\n".join(lines + not_measured(results))


def header(results):
    """The machine, the VPS and the role's snapshot: what every run's report begins with."""
    meta = results["meta"]
    return [
        f"- Machine: `{meta['host']['uname']}`",
        f"- nproc {meta['host']['nproc']}, CPU: {meta['host']['cpu_model']}; load average at start "
        f"{' '.join(meta['host']['loadavg_at_start'])}",
        f"- Other containers running at start: {len(meta['host']['other_containers_at_start'])} "
        f"({', '.join(meta['host']['other_containers_at_start']) or 'none'})",
        f"- VPS: `{meta['image']}`, 1 CPU (cpuset 0), 1 GB, no swap; load: {meta['wrk']} on core 1 "
        f"in the VPS's network namespace; {meta['connections']} connections, {meta['warmup_s']} s "
        f"warm-up + {meta['duration_s']} s per workload; `Accept-Encoding: gzip, br`",
        f"- Role deployed from a snapshot of the working tree at {meta.get('source', {}).get('commit', '?')} "
        f"with {meta.get('source', {}).get('uncommitted_files', '?')} uncommitted file(s) outside bench/; "
        f"gunicorn as sized by the role's defaults: {results.get('defaults', {})}",
        "",
    ]


def memory_lines(results, note="(a)'s row is measured after the (a) and (b) loads (one waitress serves both)."):
    """PSS of the app and nginx per stack, idle and after the load."""
    lines = ["", "### Memory (MiB)", "",
              "| stack | app processes | app PSS idle | app PSS after load | nginx PSS after load | "
              "container working set idle → after | container usage incl. cache after |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for stack in "ac":
        mem = results["stacks"].get(stack, {}).get("memory")
        if not mem:
            continue
        idle, after = mem.get("idle") or {}, mem.get("after_load") or {}
        lines.append(
            f"| {STACKS[stack]} | {after.get('app_processes', 'n/a')} | {_fmt(idle.get('app_pss_mib'))} | "
            f"{_fmt(after.get('app_pss_mib'))} | {_fmt(after.get('nginx_pss_mib'))} | "
            f"{_fmt(idle.get('container_working_set_mib'), 0)} → {_fmt(after.get('container_working_set_mib'), 0)} | "
            f"{_fmt(after.get('container_usage_mib'), 0)} |")
    return lines + ["", note]


def cold_start_lines(results):
    """(c)'s restarts → first 200, with the deployed bytecode and with an empty prefix."""
    lines = []
    cold = results.get("cold_start")
    if cold:
        lines += ["", "### Cold start of (c): restart → first 200 on /login (through nginx), medians in s", "",
                  "systemctl stop and start are timed apart: the stop is gunicorn's graceful shutdown, "
                  "the start → 200 part is where the bytecode matters.", "",
                  "| bytecode | restart → 200 | stop | start → 200 | all restarts → 200 |",
                  "|---|---:|---:|---:|---|"]
        for variant, label in (("precompiled", "precompiled prefix (as deployed)"),
                               ("empty_prefix", "empty prefix")):
            lines.append(
                f"| {label} | {_fmt(cold_median(cold, variant, 'total_s'), 3)} | "
                f"{_fmt(cold_median(cold, variant, 'stop_s'), 3)} | "
                f"{_fmt(cold_median(cold, variant, 'start_to_200_s'), 3)} | "
                + ", ".join(f"{r['total_s']:.3f}" for r in cold.get(variant, [])) + " |")
        lines.append(
            f"| ratio | {_fmt(_ratio(cold_median(cold, 'precompiled', 'total_s'), cold_median(cold, 'empty_prefix', 'total_s')), 2, '×')} | | "
            f"{_fmt(_ratio(cold_median(cold, 'precompiled', 'start_to_200_s'), cold_median(cold, 'empty_prefix', 'start_to_200_s')), 2, '×')} | |")
    return lines


def deploy_lines(results):
    """(c)'s deploy times, and (a)'s install for comparison."""
    lines = []
    deploy = results.get("deploy") or {}
    if deploy:
        lines += ["", "### Deploy times of (c)", "", "| run | seconds | changed |", "|---|---:|---:|"]
        for key, label in (("fresh", "fresh converge (v1; warm apt/pip caches of the test bed)"),
                           ("noop", "no-op re-run"), ("code_only", "code-only release v2 (venv reused)")):
            if key in deploy:
                lines.append(f"| {label} | {deploy[key]['seconds']} | {deploy[key]['changed']} |")
        if "upstream_install_s" in deploy:
            lines.append(f"| for comparison: installing (a) by hand (venv + pip) | {deploy['upstream_install_s']} | |")
    for key, label in (("noop", "no-op re-run"), ("code_only", "code-only release")):
        slowest = (deploy.get(key) or {}).get("slowest")
        if slowest:
            lines += ["", f"The 10 slowest tasks of the {label} (profile_tasks; all tasks together "
                          f"{deploy[key]['tasks_s']} s of {deploy[key]['seconds']} s):", "",
                      "| task | s |", "|---|---:|"]
            lines += [f"| {task} | {seconds:.2f} |" for task, seconds in slowest]
    return lines


def target_lines(results):
    """The targets of the issue with what was measured."""
    lines = ["", "### Targets of the issue", "", "| target | measured | goal | met |", "|---|---:|---|---|"]
    for t in results.get("targets", []):
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['target']} | {t['measured']} | {t['goal']} | {met} |")
    return lines


def not_measured(results):
    lines = []
    if results.get("errors"):
        lines += ["", "### Not measured in this run", ""]
        lines += [f"- {e}" for e in results["errors"]]
    return lines + [""]


def _mib(value):
    return "n/a" if value is None else f"{value / 2**20:,.1f}"


def backups_markdown(results):
    """`--backups`: the three data sets of benchlib/backups.py, one row each."""
    fresh = results.get("deploy", {}).get("fresh", {})
    lines = [f"(c) fresh converge: {_fmt(fresh.get('seconds'))} s. Backups into the default local "
             "repository, started as the timer starts them; restores by playbooks/restore.yml "
             "with overwrite onto the same host.", "",
             "### Backup and restore", "",
             "| data | database MiB | uploads MiB | backup s | restic added MiB | repository growth MiB | "
             "again, unchanged: s / growth MiB | restic dump s | restore.yml s | of which: safety backup / "
             "put back / deploy s | all back |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for row in results.get("backups", []):
        data, first, again = row.get("data", {}), row.get("backup", {}), row.get("unchanged", {})
        restore, dump = row.get("restore") or {}, row.get("dump") or {}
        parts = (" / ".join(_fmt(restore.get(key)) for key in ("safety_backup_s", "put_back_s", "deploy_after_s"))
                 if restore else "")
        equal = row.get("restored_equal")
        back = "" if equal is None else ("yes" if all(equal.values()) else f"**no** {equal}")
        checked = " (with the weekly check)" if first.get("checked") else ""
        lines.append(
            f"| {row['set']} | {_mib(data.get('db_bytes'))} | {_mib(data.get('upload_bytes'))} | "
            f"{_fmt(first.get('seconds'))}{checked} | {_mib(first.get('added'))} | {_mib(first.get('growth'))} | "
            f"{_fmt(again.get('seconds'))} / {_mib(again.get('growth'))} | {_fmt(dump.get('seconds'))} | "
            f"{_fmt(restore.get('seconds'))} | {parts} | {back} |")
    made = [f"- {row['set']}: {row.get('made')}" for row in results.get("backups", [])]
    return lines + ["", "What each set made (backup_data.py):", ""] + made


def chart(results, path):
    """Throughput and p99 per stack and workload, log scales (static and app differ 100×)."""
    import matplotlib
    matplotlib.use("Agg")  # no display on the build machines
    import matplotlib.pyplot as plt

    workloads = ["css", "js", "login", "slow"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.2
    for index, (metric, title) in enumerate((("rps", "requests/s (higher is better)"),
                                             ("p99_ms", "p99 latency ms (lower is better)"))):
        ax = axes[index]
        for offset, stack in enumerate("abcd"):
            xs, ys = [], []
            for i, workload in enumerate(workloads):
                w = _wl(results, stack, workload)
                if w and w[metric] > 0:
                    xs.append(i + (offset - 1.5) * width)
                    ys.append(w[metric])
            bars = ax.bar(xs, ys, width, label=STACKS[stack])
            ax.bar_label(bars, fmt="%.0f" if metric == "rps" else "%.1f", fontsize=7, rotation=90,
                         padding=2)
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)), ["static CSS", "static JS", "/login", "/slow (200 ms)"])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Lernmanager stacks on 1 CPU / 1 GB, 30 connections — {results['meta']['timestamp']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
