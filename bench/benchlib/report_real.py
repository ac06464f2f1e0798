"""The report of a real-app run (`--app PATH`): its workloads on every stack beside the app's
in-process ceiling, the memory (and soak), the cold start, the deploys, and the issue's targets."""

from . import pairs
from .report import (STACKS, _fmt, _ratio, _wl, cold_median, cold_start_lines, deploy_lines, header, judge,
                     memory_lines, not_measured, target_lines)

WORKLOADS = {
    "css": "static CSS",
    "js": "static JS",
    "dashboard": "pupil's dashboard",
    "class": "teacher's class overview",
    "login": "login POST",
    "upload": "200 KB upload",
}
LOGGED_IN_PAGES = ("dashboard", "class")
CEILING = "in-process ceiling (WSGI, 1 core, 30 threads)"
ONE_AT_A_TIME = "in-process, one request at a time"


def ceiling(results, workload):
    return ((results.get("ceiling") or {}).get("workloads") or {}).get(workload)


def of_ceiling(results, stack, workload):
    """STACK's req/s ÷ the ceiling's: the share of the app's own speed a server keeps. STACK may
    also be "one_at_a_time", the in-process run without concurrency."""
    if stack == "one_at_a_time":
        w = ((results.get(stack) or {}).get("workloads") or {}).get(workload)
    else:
        w = _wl(results, stack, workload)
    top = ceiling(results, workload)
    return _ratio(w["rps"] if w else None, top["rps"] if top else None)


# Issue 38's goals for (c) against (b), each the median of the pairs' ratios: (req/s, p99).
PAIR_GOALS = {"dashboard": (1.1, 0.9), "class": (1.1, 0.9), "upload": (1.0, 1.0)}


def paired(results, workload, key):
    """The median over the run's pairs of (c) ÷ (b) for WORKLOAD's KEY (see pairs.ratios)."""
    return pairs.median_ratio(results.get("pairs") or [], workload, key)


def paired_upstream(results, workload):
    """(b)'s median req/s over the run's pairs."""
    measured = [b.get("rps") for _, b in pairs.entries(results.get("pairs") or [], workload)]
    return pairs.median(measured)


def targets(results):
    cold = results.get("cold_start") or {}
    pss = (results["stacks"].get("c", {}).get("memory", {}).get("after_load") or {}).get("app_pss_mib")
    soak = results.get("soak") or {}
    count = len(results.get("pairs") or [])
    rows = []
    for workload, (rps_goal, p99_goal) in PAIR_GOALS.items():
        rows.append((f"{WORKLOADS[workload]}: req/s (c) ÷ (b), median of {count} pairs", paired(results, workload, "rps"),
                     f">= {rps_goal}", lambda v, goal=rps_goal: v >= goal, "x"))
        rows.append((f"{WORKLOADS[workload]}: p99 (c) ÷ (b), median of {count} pairs", paired(results, workload, "p99_ms"),
                     f"<= {p99_goal}", lambda v, goal=p99_goal: v <= goal, "x"))
    rows.append((f"{WORKLOADS['dashboard']}: CPU per request (c) ÷ (b), app + nginx, median of {count} pairs",
                 paired(results, "dashboard", "cpu"), "<= 1.0", lambda v: v <= 1.0, "x"))
    for workload in LOGGED_IN_PAGES:
        # What no server can pass: the app alone, called by 30 threads without sockets.
        top = ceiling(results, workload)
        rows.append((f"  {WORKLOADS[workload]}: in-process ceiling ÷ (b), the most any server reaches, for information",
                     _ratio(float(top["rps"]) if top else None, paired_upstream(results, workload)),
                     f">= {PAIR_GOALS[workload][0]}", lambda v, goal=PAIR_GOALS[workload][0]: v >= goal, "x"))
    rows += [
        # Issue 14's wording: "start → first 200"; the stop before it (gunicorn's graceful
        # shutdown) is the same with either prefix.
        ("cold start → 200, precompiled / empty prefix (medians)",
         _ratio(cold_median(cold, "precompiled", "start_to_200_s"), cold_median(cold, "empty_prefix", "start_to_200_s")),
         "<= 0.4", lambda v: v <= 0.4, "x"),
        ("  with the stop before it (restart → 200), for information",
         _ratio(cold_median(cold, "precompiled", "total_s"), cold_median(cold, "empty_prefix", "total_s")),
         "<= 0.4", lambda v: v <= 0.4, "x"),
        ("app PSS (c) after the load, MiB", pss, "<= 150", lambda v: v <= 150, ""),
        (f"app PSS (c), peak of the {soak['seconds']} s soak, MiB" if soak else "app PSS (c), peak of a soak (--soak), MiB",
         soak.get("peak_pss_mib"),
         "<= 150", lambda v: v <= 150, ""),
        ("processes the kernel killed in the soak", soak.get("oom_kills") if soak else None,
         "0", lambda v: v == 0, "n"),
    ]
    return judge(rows)


def workload_lines(results):
    lines = ["### Throughput and latency: 30 clients, each with a session of its own", "",
             "| workload | stack | req/s | p50 ms | p99 ms | failed | body bytes | encoding | req/s ÷ ceiling | host load 1 min |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for workload, label in WORKLOADS.items():
        for stack in "cdba":
            w = _wl(results, stack, workload)
            if w is None:
                continue
            size = w.get("size") or {}
            failed = f"{w['failed']}" + (f" ({w['stored']} stored of {w['requests']})" if "stored" in w else "")
            lines.append(
                f"| {label} | {STACKS[stack]} | {_fmt(w['rps'], 0)} | {_fmt(w['p50_ms'], 2)} | {_fmt(w['p99_ms'], 2)} | "
                f"{failed} | {_fmt(size['body_bytes']) if size else ''} | {size.get('encoding', '')} | "
                f"{_fmt(of_ceiling(results, stack, workload), 2, '×')} | {_fmt(w.get('host_loadavg_1m'), 1)} |")
        for key, name in (("ceiling", CEILING), ("one_at_a_time", ONE_AT_A_TIME)):
            top = ((results.get(key) or {}).get("workloads") or {}).get(workload)
            if top:
                lines.append(f"| {label} | {name} | {_fmt(float(top['rps']), 0)} | {_fmt(float(top['p50_ms']), 2)} | "
                             f"{_fmt(float(top['p99_ms']), 2)} | {top['failures']} | | | "
                             f"{_fmt(of_ceiling(results, key, workload) if key != 'ceiling' else 1.0, 2, '×')} | |")
    return lines


def paired_lines(results):
    measured = results.get("pairs")
    if not measured:
        return []
    lines = ["", f"### (b) and (c) in {len(measured)} pairs, back to back, the order alternating", "",
             "Each cell: pair 1 / 2 / … in the order measured, (c) first in the pairs marked ᶜ; "
             "ratios are (c) ÷ (b) of the same pair. The goals above read these medians.", "",
             *pairs.header("workload")]
    for workload in PAIR_GOALS:
        lines.append(pairs.row(WORKLOADS[workload], measured, workload))
    return lines


def soak_lines(results):
    soak = results.get("soak")
    if not soak:
        return []
    load = soak.get("load") or {}
    samples = ", ".join(f"{s['app_pss_mib']:.0f}" for s in soak.get("samples", []))
    return ["", f"### Memory soak of (c): the pupils' dashboards for {soak['seconds']} s", "",
            f"- {_fmt(load.get('rps'), 0)} req/s, p99 {_fmt(load.get('p99_ms'), 1)} ms, {load.get('failed', 'n/a')} failed",
            f"- app PSS every 30 s (MiB): {samples or 'none'}; peak {_fmt(soak.get('peak_pss_mib'))}",
            f"- processes the kernel killed: {soak.get('oom_kills')}; gunicorn's SIGKILL lines: "
            f"{soak.get('sigkill_lines')}; the app restarted: {'yes' if soak.get('restarted') else 'no'}"]


def markdown(results):
    meta = results["meta"]
    app, school = meta.get("app") or {}, results.get("school") or {}
    kind = " (--quick: development run, short windows)" if meta.get("quick") else ""
    lines = [f"## Run {meta['timestamp']}: the real Lernmanager{kind}", ""]
    lines += header(results)[:-1]
    lines += [
        f"- The app: {app.get('path')} at {app.get('commit') or 'no git'}"
        + (f" with {app['uncommitted_files']} uncommitted file(s)" if app.get("uncommitted_files") else ""),
        f"- The school (files/school_seed.py, the app's own functions): {school.get('classes', '?')} classes, "
        f"{school.get('pupils', '?')} pupils, {school.get('topics', '?')} topics; made in {school.get('seconds', '?')} s, "
        f"a {_fmt((school.get('database_bytes') or 0) / 1024, 0)} KiB database; (a) and (b) get a copy of it as seeded",
        "",
    ]
    lines += workload_lines(results) + paired_lines(results)
    lines += memory_lines(results, note="(a)'s row is measured after the (a) and (b) loads (one waitress serves "
                                        "both), while (c) was stopped.")
    lines += soak_lines(results) + cold_start_lines(results) + deploy_lines(results) + target_lines(results)
    return "\n".join(lines + not_measured(results))
