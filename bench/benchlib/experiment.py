"""Configurations of the role's stack against upstream's, on the real app, interleaved:
`make bench BENCH_ARGS="--app PATH --sweep bench/files/sweep-servers.yml"`.

The sweep file names points, each a set of role variables for (c) (a redeploy with -e), the
workloads, the repetitions and the pairs per visit. Both stacks stay up side by side on one VPS:
(c) on the role's site (port 80, gunicorn on `common`'s port), (b) upstream's waitress behind its
nginx site on 8080, on a copy of the same school. Each repetition visits every point once (in
the order of the file, then reversed: each change of point is one redeploy, and no point is
always first); a visit measures `pairs` pairs of (b) and (c), the first (b) first, the next (c)
first, and so on, the next repetition starting with the other. Every ratio is taken within one
pair, measured minutes apart at most, so that a disturbance of the shared machine touches one
pair, not a whole column. Each measurement adds the CPU per request of the app's processes and
of nginx (files/probe.py cpu): "overhead" when a stack spends more per request, "stalls" when it
spends the same and serves fewer.
"""

import json
import pathlib
import time

import yaml

from . import containers, pairs, realapp, report_real, stacks
from .containers import VPS, exec_sh

# A point's `bench_server` (not a role variable): what runs in the role's unit after its deploy.
SERVERS = {"gunicorn": None, "waitress": stacks.serve_with_waitress, "granian": stacks.serve_with_granian}


def read_sweep(path):
    """The sweep file: {points: {name: {var: value}}, workloads: [...], repetitions: n, pairs: n,
    common: {}}."""
    sweep = yaml.safe_load(pathlib.Path(path).read_text())
    points = sweep.get("points") or {}
    workloads = sweep.get("workloads") or ["dashboard", "class", "upload"]
    unknown = [w for w in workloads if w not in realapp.WORKLOADS]
    unknown += [f"bench_server {v['bench_server']}" for v in points.values()
                if v.get("bench_server", "gunicorn") not in SERVERS]
    if not points or unknown:
        raise SystemExit(f"bench: {path} needs points (name: role variables) and known workloads "
                         f"({', '.join(realapp.WORKLOADS)}) and servers ({', '.join(SERVERS)}); unknown: {', '.join(unknown) or '-'}")
    return {"points": points, "workloads": workloads, "repetitions": int(sweep.get("repetitions", 2)),
            "pairs": int(sweep.get("pairs", 1)),
            "common": {**realapp.BESIDE_UPSTREAM, **(sweep.get("common") or {})}, "file": str(path)}


class Experiment:
    def __init__(self, bench, sweep):
        self.bench = bench
        self.app = realapp.RealApp(bench)
        self.sweep = sweep
        self.live = None  # the point (c) serves now
        self.pairs = pairs.Pairs(bench, self.app, sweep["workloads"])
        bench.results["experiment"] = self.results = {"sweep": sweep, "repetitions": [], "deploys": {}}

    def deploy(self, name):
        """(c) with the point's variables; nothing when it serves them already."""
        if self.live == name:
            return
        self.bench.log(f"(c) deploying the point {name}")
        point = dict(self.sweep["points"][name])
        server = SERVERS[point.pop("bench_server", "gunicorn")]
        stacks.clear_server()
        variables = {"lernmanager_admin_password": self.app.admin_password, **self.sweep["common"], **point}
        outcome = self.bench.ansible.deploy(f"point-{name}", variables)
        self.results["deploys"].setdefault(name, []).append(outcome["seconds"])
        self.results.setdefault("gunicorn", {})[name] = {**stacks.gunicorn_processes(),
                                                         "version": stacks.gunicorn_version()}
        if server:
            server(port=int(self.sweep["common"]["lernmanager_listen_port"]))
        containers.wait_http(self.bench.url("c", "/login"))
        time.sleep(2)
        self.live = name

    def run(self, app_dir):
        bench, sweep = self.bench, self.sweep
        names = list(sweep["points"])
        bench.log(f"(c) fresh converge with the point {names[0]}")
        self.deploy(names[0])
        containers.copy_in(VPS, stacks.FILES / "probe.py", containers.PROBE)
        self.app.seed()
        self.app.upstream_beside(app_dir)
        stacks.add_upstream_site(server_name=realapp.UPSTREAM_NAME)
        containers.wait_http(bench.url("b", "/login"))
        for rep in range(sweep["repetitions"]):
            order = names if rep % 2 == 0 else names[::-1]
            row = {"order": order, "points": {}}
            self.results["repetitions"].append(row)
            for name in order:
                try:
                    self.deploy(name)
                except Exception as exc:  # noqa: BLE001  the other points still run
                    bench.results["errors"].append(f"point {name}: {str(exc).splitlines()[0][:300]}")
                    bench.log(f"FAILED: point {name}: {exc}")
                    self.live = None
                    continue
                row["points"][name] = self.pairs.alternating(sweep["pairs"], start="b" if rep % 2 == 0 else "c")


# --- report ------------------------------------------------------------------------------------

def pairs_of(exp, point):
    """POINT's pairs in the order measured: [{"b": workloads, "c": workloads}, ...]. Runs before
    pairs (one (b) per repetition for all points) read as one pair per repetition."""
    found = []
    for rep in exp["repetitions"]:
        measured = rep.get("points", {}).get(point)
        if measured is None:
            continue
        if "b" in rep:  # the first experiments' layout
            measured = [{"b": rep["b"], "c": measured}]
        found += measured
    return found


def markdown(results):
    """The experiment's tables: per workload and point, (c)'s req/s, p99 and CPU per request in
    every pair beside (b)'s of the same pair, each pair's ratio and their median."""
    exp = results["experiment"]
    meta = results["meta"]
    per_visit = exp["sweep"].get("pairs", 1)
    lines = [f"## Experiment {meta['timestamp']}: the role's stack against upstream's, interleaved",
             "",
             f"`{meta.get('command', '')}` — sweep `{exp['sweep']['file']}`, {len(exp['repetitions'])} "
             f"repetitions of {per_visit} pair(s) per point, {meta['duration_s']} s per workload after "
             f"{meta['warmup_s']} s warm-up, 30 clients; "
             f"the app at {(meta.get('app') or {}).get('commit') or 'a snapshot without git'}; "
             f"host {meta['host'].get('cpu_model', '')}, {meta['host'].get('nproc', '')} cores. "
             "Each cell: pair 1 / 2 / … in the order measured; a pair is (b) and (c) back to back, "
             "(c) first in the pairs marked ᶜ; ratios are (c) ÷ (b) of the same pair.",
             ""]
    for name, vars_ in exp["sweep"]["points"].items():
        lines.append(f"- `{name}`: {json.dumps(vars_) if vars_ else 'the role defaults'}")
    lines.append("")
    for workload in exp["sweep"]["workloads"]:
        lines += [f"### {report_real.WORKLOADS.get(workload, workload)}", "",
                  *pairs.header("(c) point")]
        for point in exp["sweep"]["points"]:
            lines.append(pairs.row(point, pairs_of(exp, point), workload))
        lines.append("")
    return "\n".join(lines)
