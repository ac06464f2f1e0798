"""Configurations of the role's stack against upstream's, on the real app, interleaved:
`make bench BENCH_ARGS="--app PATH --sweep bench/files/sweep-servers.yml"`.

The sweep file names points, each a set of role variables for (c) (a redeploy with -e), the
workloads, and the repetitions. Both stacks stay up side by side on one VPS: (c) on the role's
site (port 80, gunicorn on `common`'s port), (b) upstream's waitress behind its nginx site on
8080, on a copy of the same school. Each repetition measures (b) once and every point once (in an
order rotated by one per repetition), so that a disturbance of the shared machine touches one
column of one repetition, and every ratio is taken within one repetition. Each measurement adds
the CPU per request of the app's processes and of nginx (files/probe.py cpu): "overhead" when a
stack spends more per request, "stalls" when it spends the same and serves fewer.
"""

import json
import pathlib
import time

import yaml

from . import containers, realapp, report_real, stacks
from .containers import VPS, exec_sh

# (b)'s waitress binds 8081, the role's default port: (c) moves aside for the experiment.
COMMON = {"lernmanager_listen_port": 8082}


def read_sweep(path):
    """The sweep file: {points: {name: {var: value}}, workloads: [...], repetitions: n, common: {}}."""
    sweep = yaml.safe_load(pathlib.Path(path).read_text())
    points = sweep.get("points") or {}
    workloads = sweep.get("workloads") or ["dashboard", "class", "upload"]
    unknown = [w for w in workloads if w not in realapp.WORKLOADS]
    if not points or unknown:
        raise SystemExit(f"bench: {path} needs points (name: role variables) and known workloads "
                         f"({', '.join(realapp.WORKLOADS)}); unknown: {', '.join(unknown) or '-'}")
    return {"points": points, "workloads": workloads, "repetitions": int(sweep.get("repetitions", 2)),
            "common": {**COMMON, **(sweep.get("common") or {})}, "file": str(path)}


class Experiment:
    def __init__(self, bench, sweep):
        self.bench = bench
        self.app = realapp.RealApp(bench)
        self.sweep = sweep
        self.live = None  # the point (c) serves now
        self.sessions = {}
        bench.results["experiment"] = self.results = {"sweep": sweep, "repetitions": [], "deploys": {}}

    def deploy(self, name):
        """(c) with the point's variables; nothing when it serves them already."""
        if self.live == name:
            return
        self.bench.log(f"(c) deploying the point {name}")
        variables = {"lernmanager_admin_password": self.app.admin_password, **self.sweep["common"],
                     **self.sweep["points"][name]}
        outcome = self.bench.ansible.deploy(f"point-{name}", variables)
        self.results["deploys"].setdefault(name, []).append(outcome["seconds"])
        self.results.setdefault("gunicorn", {})[name] = {**stacks.gunicorn_processes(),
                                                         "version": stacks.gunicorn_version()}
        containers.wait_http(self.bench.url("c", "/login"))
        time.sleep(2)
        self.live = name

    def measure(self, stack, workloads):
        out = {}
        ids = {"klasse": self.app.school["classes"][0], "topic": self.app.school["topics"][0]}
        for name in workloads:
            path, who = realapp.WORKLOADS[name]
            if who in ("pupil", "admin", "upload") and (stack, who) not in self.sessions:
                self.sessions[stack, who] = self.app.sessions(stack, who)
            url = self.bench.url(stack, path.format(**ids))
            self.bench.log(f"({stack}) {name}: {self.bench.args.duration} s")
            out[name] = self.bench.section(
                f"({stack}) {name}", self.app.workload, stack, name, who, url, self.bench.args.duration,
                self.bench.args.warmup, self.sessions.get((stack, who)))
        return out

    def run(self, app_dir):
        bench, sweep = self.bench, self.sweep
        names = list(sweep["points"])
        bench.log(f"(c) fresh converge with the point {names[0]}")
        self.deploy(names[0])
        containers.copy_in(VPS, stacks.FILES / "probe.py", containers.PROBE)
        self.app.seed()
        bench.log("(a)/(b) upstream's waitress stack beside (c)")
        bench.results["deploy"]["upstream_install_s"] = stacks.deploy_upstream(
            app_dir, database=realapp.SCHOOL_DB, database_name=realapp.DATABASE)
        stacks.add_upstream_site(server_name="upstream.bench.test")
        containers.wait_http(bench.url("b", "/login"), timeout=120)
        for rep in range(sweep["repetitions"]):
            order = names[rep % len(names):] + names[:rep % len(names)]
            row = {"order": order, "b": self.measure("b", sweep["workloads"]), "points": {}}
            self.results["repetitions"].append(row)
            for name in order:
                try:
                    self.deploy(name)
                except Exception as exc:  # noqa: BLE001  the other points still run
                    bench.results["errors"].append(f"point {name}: {str(exc).splitlines()[0][:300]}")
                    bench.log(f"FAILED: point {name}: {exc}")
                    self.live = None
                    continue
                row["points"][name] = self.measure("c", sweep["workloads"])
                row["points"][name]["memory"] = bench.section("(c) memory", bench.memory, "lernmanager.service")


# --- report ------------------------------------------------------------------------------------

def _get(entry, *keys):
    for key in keys:
        if not isinstance(entry, dict):
            return None
        entry = entry.get(key)
    return entry


def _cell(values, fmt):
    shown = [fmt.format(v) if v is not None else "–" for v in values]
    return " / ".join(shown)


def markdown(results):
    """The experiment's tables: per workload, each point's req/s, p99 and CPU per request in every
    repetition, and its ratio to (b) of the same repetition."""
    exp = results["experiment"]
    reps = exp["repetitions"]
    meta = results["meta"]
    lines = [f"## Experiment {meta['timestamp']}: the role's stack against upstream's, interleaved",
             "",
             f"`{meta.get('command', '')}` — sweep `{exp['sweep']['file']}`, {len(reps)} repetitions, "
             f"{meta['duration_s']} s per point after {meta['warmup_s']} s warm-up, 30 clients; "
             f"the app at {(meta.get('app') or {}).get('commit') or 'a snapshot without git'}; "
             f"host {meta['host'].get('cpu_model', '')}, {meta['host'].get('nproc', '')} cores. "
             "Each cell: repetition 1 / 2 / …; ratios to (b) of the same repetition.",
             ""]
    points = list(exp["sweep"]["points"])
    for name, vars_ in exp["sweep"]["points"].items():
        lines.append(f"- `{name}`: {json.dumps(vars_) if vars_ else 'the role defaults'}")
    lines.append("")
    for workload in exp["sweep"]["workloads"]:
        lines += [f"### {report_real.WORKLOADS.get(workload, workload)}", "",
                  "| stack | req/s | ÷ (b) | p99 ms | p99 ÷ (b) | CPU ms/req app + nginx | failed |",
                  "|---|---|---|---|---|---|---|"]
        b = [_get(rep, "b", workload) or {} for rep in reps]
        lines.append(_row("(b) upstream", b, b))
        for point in points:
            c = [_get(rep, "points", point, workload) or {} for rep in reps]
            lines.append(_row(f"(c) {point}", c, b))
        lines.append("")
    return "\n".join(lines)


def _row(label, entries, anchors):
    def ratio(key, entry, anchor):
        if entry.get(key) is None or not anchor.get(key):
            return None
        return entry[key] / anchor[key]
    rps = _cell([e.get("rps") for e in entries], "{:.0f}")
    rps_ratio = _cell([ratio("rps", e, a) for e, a in zip(entries, anchors)], "{:.2f}")
    p99 = _cell([e.get("p99_ms") for e in entries], "{:.0f}")
    p99_ratio = _cell([ratio("p99_ms", e, a) for e, a in zip(entries, anchors)], "{:.2f}")
    cpu = _cell([_cpu(e) for e in entries], "{}")
    failed = _cell([e.get("failed") for e in entries], "{}")
    return f"| {label} | {rps} | {rps_ratio} | {p99} | {p99_ratio} | {cpu} | {failed} |"


def _cpu(entry):
    cpu = entry.get("cpu_ms_per_request") or {}
    if cpu.get("total") is None:
        return None
    parts = [f"{cpu[k]:.1f}" for k in ("app", "nginx") if cpu.get(k) is not None]
    return " + ".join(parts)
