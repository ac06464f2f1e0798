#!/usr/bin/env python3
"""Performance benchmark: upstream's stacks against the role's, on one 1 CPU / 1 GB VPS container.

    make bench                     # sets up the venvs, the container engine and the images first
    bench/.venv/bin/python bench/run.py [--quick] [--keep]

In ONE run, on the SAME container and the SAME stand-in app (tests/fixtures, v1):
  (c) the role (playbooks/deploy.yml, default variables) — deployed first, on a fresh host, so
      its deploy times are those of a first install; then its cold start, a workers × threads
      sweep and the recycling (max_requests) comparison, each by a redeploy with -e;
  (d) a bare nginx server block serving the same precompressed files (the static ceiling);
  (a) upstream as it runs today (waitress via run.py, its own unit), after (c) is stopped;
  (b) (a) behind upstream's historical nginx site.
Load comes from wrk in a second container on the other core, inside the VPS's network namespace.

Output: a Markdown report on stdout and appended to bench/RESULTS.md, bench/out/results-<ts>.json
and bench/out/chart-<ts>.png. The lm-bench-* containers are removed at the end, also on failure
(unless --keep).
"""

import argparse
import datetime
import json
import os
import pathlib
import signal
import sys
import time
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from benchlib import backups, containers, experiment, fleet, load, realapp, report, report_real, stacks  # noqa: E402
from benchlib.containers import PROBE, VPS, exec_sh, run  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
OUT = BENCH / "out"
STORM = "/root/lm_storm.py"
PORTS = {"a": 8081, "b": 8080, "c": 80, "d": 8090}
# The app's unit of each stack ((d) is nginx alone; (b) and (c) add nginx.service).
STACK_UNITS = {"a": "lernmanager-upstream.service", "b": "lernmanager-upstream.service",
               "c": "lernmanager.service", "d": None}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short runs and a small sweep, for developing the harness")
    parser.add_argument("--keep", action="store_true",
                        help="leave the lm-bench-* containers running for inspection")
    parser.add_argument("--duration", type=int, help="seconds per workload (default 10)")
    parser.add_argument("--sweep", help="workers x threads candidates, e.g. 1x8,1x16,2x8; with --app, a sweep "
                                        "file of role configurations against upstream (bench/files/sweep-*.yml)")
    parser.add_argument("--classes", default="30,60,120",
                        help="login storm: class sizes logging in at once (default 30,60,120)")
    parser.add_argument("--no-sizing", action="store_true",
                        help="skip the workers × threads sweep and the recycling comparison (about 10 minutes)")
    parser.add_argument("--storm-only", action="store_true",
                        help="only the login storm on every stack (a few minutes)")
    parser.add_argument("--backups", action="store_true",
                        help="only backup and restore times and repository growth on (c) (about 10 minutes)")
    parser.add_argument("--fleet", action="store_true",
                        help="only the scaling across hosts: deploys to 1, 3 and 6 VPS containers (bench/README.md)")
    parser.add_argument("--fleet-sizes", default="1,3,6", help="host counts for --fleet")
    parser.add_argument("--fleet-modes", default="rolling,parallel", help="rolling (default serial), parallel (100 %%)")
    parser.add_argument("--app", metavar="PATH",
                        help="a checkout of the real Lernmanager: its school, pages, upload and ceiling (bench/README.md)")
    parser.add_argument("--render", metavar="JSON",
                        help="only print the Markdown report of an earlier run's results (bench/out/results-*.json)")
    parser.add_argument("--soak", type=int, default=0, metavar="SECONDS",
                        help="with --app: the dashboard load for this long, memory sampled (600: the issue's soak)")
    args = parser.parse_args()
    if args.app:
        args.app = realapp.check_checkout(args.app)
        if args.storm_only or args.backups or args.fleet:
            parser.error("--app measures the real app's workloads; --storm-only, --backups and --fleet use the stand-in")
    elif args.soak:
        parser.error("--soak needs --app")
    args.fleet_sizes = [int(n) for n in args.fleet_sizes.split(",")]
    args.fleet_modes = args.fleet_modes.split(",")
    quick = args.quick
    args.duration = args.duration or (3 if quick else 10)
    args.warmup = 1 if quick else 2
    args.reps = 2 if quick else 5
    args.recycle_s = 5 if quick else 30
    args.recycle_rounds = 1 if quick else 2
    args.experiment = None
    if args.app and args.sweep:
        args.experiment = experiment.read_sweep(args.sweep)
        args.sweep = None
    else:
        sweep = args.sweep or ("1x8,2x8" if quick else "1x8,1x16,1x32,2x8,2x16")
        args.sweep = [tuple(int(n) for n in item.split("x")) for item in sweep.split(",")]
    args.classes = [int(n) for n in args.classes.split(",")]
    return args


class Bench:
    def __init__(self, args):
        self.args = args
        self.timestamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.work = OUT / f"work-{self.timestamp}"
        self.image = os.environ.get("LERNMANAGER_IMAGE_DEBIAN12", "lernmanager-testbed/debian:12-v2")
        self.cache = os.environ.get("LERNMANAGER_TESTBED_CACHE", str(REPO / ".cache" / "bench-testbed"))
        self.results = {"meta": {}, "stacks": {}, "deploy": {}, "sweep": [], "recycling": [],
                        "storm": {}, "backups": [], "errors": []}
        self.bench_files = BENCH / "files"

    # --- helpers --------------------------------------------------------------------------

    def log(self, message):
        print(f"bench [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def section(self, name, function, *args):
        """Run one measurement; a failure is recorded and reported, the rest still runs."""
        try:
            return function(*args)
        except Exception as exc:  # noqa: BLE001  the report must say what was not measured
            self.log(f"FAILED: {name}: {exc}")
            traceback.print_exc(file=sys.stderr)
            self.results["errors"].append(f"{name}: {str(exc).splitlines()[0][:300]}")
            return None

    def url(self, stack, path):
        return f"http://127.0.0.1:{PORTS[stack]}{path}"

    def wrk(self, stack, path, seconds=None):
        return load.wrk(self.url(stack, path), seconds or self.args.duration,
                        warmup=self.args.warmup, meter=self.meter(stack))

    def meter(self, stack):
        """The CPU seconds STACK's server processes have used so far ({"app": s, "nginx": s}),
        as a callable for load.wrk: read in the VPS by files/probe.py, whose own start is outside
        the processes it counts."""
        units = {"app": STACK_UNITS[stack]} if STACK_UNITS[stack] else {}
        if stack != "a":
            units["nginx"] = "nginx.service"

        def read():
            seconds = json.loads(exec_sh(VPS, f"python3 {PROBE} cpu {' '.join(units.values())}"))
            return {what: seconds[unit] for what, unit in units.items()}
        return read

    def memory(self, unit):
        pss = json.loads(exec_sh(VPS, f"python3 {PROBE} pss {unit} nginx.service"))
        snapshot = {
            "app_processes": pss[unit]["processes"],
            "app_pss_mib": pss[unit]["pss_kib"] / 1024,
            "nginx_pss_mib": pss["nginx.service"]["pss_kib"] / 1024,
        }
        host = containers.container_memory()
        if host:
            snapshot["container_usage_mib"] = host["usage_mib"]
            snapshot["container_working_set_mib"] = host["working_set_mib"]
        return snapshot

    def measure_workloads(self, stack, names=("css", "js", "login", "slow")):
        results = self.results["stacks"].setdefault(stack, {"workloads": {}})["workloads"]
        for name in names:
            path = load.WORKLOADS[name]
            self.log(f"({stack}) {name}: wrk {self.args.duration} s on :{PORTS[stack]}{path}")

            def one():
                entry = {"size": load.response_size(self.url(stack, path))}
                if name in ("css", "js"):
                    # Raw = what the same URL sends to a client that accepts no encoding.
                    entry["raw_bytes"] = load.response_size(self.url(stack, path), accept=None)["body_bytes"]
                entry.update(self.wrk(stack, path))
                results[name] = entry
            self.section(f"({stack}) {name}", one)

    def login_storms(self, stack, unit):
        """A class of N logs in at once (lm_storm.py in the load container): every client GETs
        the form, then all POST it together. After each class: did the app's unit lose a process
        (the kernel's OOM killer, or gunicorn's worker SIGKILLed), and is it back?"""
        rows = self.results["storm"].setdefault(stack, [])
        for size in self.args.classes:
            def one():
                self.log(f"({stack}) login storm: a class of {size}")
                before = stacks.unit_state(unit)
                out = exec_sh(containers.LOAD, f"python3 {STORM} --base {self.url(stack, '')} "
                                               f"--clients {size} --timeout 120", timeout=600)
                row = {"class": size, **json.loads(out.strip().splitlines()[-1])}
                after = stacks.unit_state(unit, since=before["now"])
                # gunicorn logs a SIGKILL for each worker the kernel killed: one kill, not two.
                row["killed"] = max(after["sigkill_lines"], after["oom_kills"] - before["oom_kills"])
                row["restarted"] = after["main_pid"] != before["main_pid"] or after["workers"] != before["workers"]
                rows.append(row)
                # The next class needs the app back (systemd restarts a killed unit).
                containers.wait_http(self.url(stack, "/login"), timeout=120)
                time.sleep(2)
            self.section(f"({stack}) login storm {size}", one)

    # --- phases ---------------------------------------------------------------------------

    def setup(self):
        self.results["meta"] = {
            "timestamp": self.timestamp,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": containers.host_info(),
            "image": self.image,
            "duration_s": self.args.duration,
            "warmup_s": self.args.warmup,
            "connections": 30,
            "recycle_s": self.args.recycle_s,
            "recycle_rounds": self.args.recycle_rounds,
            "quick": self.args.quick,
            "storm_only": self.args.storm_only,
            "backups_only": self.args.backups,
            "fleet_only": self.args.fleet,
            "real_app": bool(self.args.app),
            "command": "make bench BENCH_ARGS=\"" + " ".join(sys.argv[1:]) + "\"",
        }
        self.work.mkdir(parents=True, exist_ok=True)
        src = self.src = self.work / "src"
        self.results["meta"]["source"] = stacks.snapshot(src)
        if self.args.app:
            self.results["meta"]["app"] = realapp.copy_checkout(self.args.app, self.work / "app-v1")
            realapp.code_only_copy(self.work / "app-v1", self.work / "app-v2")
        else:
            for version in ("v1", "v2"):
                run([sys.executable, str(src / "tests/fixtures/build_app.py"), version,
                     str(self.work / f"app-{version}")])
        if self.args.fleet:
            return  # the fleet's containers are its own (benchlib/fleet.py)
        self.log(f"starting {containers.VPS} and {containers.LOAD} ({self.image})")
        containers.start(self.image, self.cache, BENCH / "files")
        self.results["meta"]["wrk"] = containers.install_wrk()
        self.ansible = stacks.Ansible(src, self.work, self.work / "logs", self.work / "app-v1")
        self.log("preparing the VPS (systemd up, pip trusts the test bed's CA)")
        self.ansible.prepare()

    def role_stack(self):
        deploy = self.results["deploy"]
        self.log("(c) fresh converge of playbooks/deploy.yml")
        deploy["fresh"] = self.ansible.deploy("fresh")
        self.log(f"(c) fresh converge took {deploy['fresh']['seconds']} s; no-op re-run")
        deploy["noop"] = self.ansible.deploy("noop")
        self.results["defaults"] = stacks.gunicorn_processes()
        containers.copy_in(VPS, BENCH / "files" / "probe.py", PROBE)
        containers.copy_in(containers.LOAD, REPO / "molecule" / "resources" / "files" / "lm_storm.py", STORM)
        stacks.add_bare_nginx()
        containers.wait_http(self.url("c", "/login"))
        time.sleep(3)  # let start-up work (analytics writer, first requests) settle
        memory = self.results["stacks"].setdefault("c", {"workloads": {}}).setdefault("memory", {})
        memory["idle"] = self.section("(c) memory idle", self.memory, "lernmanager.service")
        if not self.args.storm_only:
            self.measure_workloads("c")
        memory["after_load"] = self.section("(c) memory after load", self.memory, "lernmanager.service")
        self.login_storms("c", "lernmanager.service")
        if not self.args.storm_only:
            self.measure_workloads("d", ("css", "js"))

    def cold_start(self):
        self.log(f"(c) cold start, {self.args.reps} restarts with and without bytecode")
        out = exec_sh(VPS, f"python3 {PROBE} coldstart http://127.0.0.1/login lernmanager.test "
                           f"{self.args.reps}", timeout=900)
        self.results["cold_start"] = json.loads(out.strip().splitlines()[-1])

    def sweep(self):
        defaults = self.results.get("defaults", {})
        for workers, threads in self.args.sweep:
            row = {"workers": workers, "threads": threads,
                   "is_default": (workers, threads) == (defaults.get("workers"), defaults.get("threads"))}
            self.results["sweep"].append(row)

            def one():
                self.log(f"(c) sweep {workers}×{threads}: redeploy")
                row["deploy"] = self.ansible.deploy(
                    f"sweep-{workers}x{threads}", {"lernmanager_gunicorn_workers": workers,
                                                   "lernmanager_gunicorn_threads": threads})
                live = stacks.gunicorn_processes()
                if (live.get("workers"), live.get("threads")) != (workers, threads):
                    raise RuntimeError(f"gunicorn.conf.py says {live} after the redeploy")
                containers.wait_http(self.url("c", "/login"))
                row["login"] = self.wrk("c", "/login")
                row["slow"] = self.wrk("c", "/slow")
                row["pss_mib"] = self.memory("lernmanager.service")["app_pss_mib"]
            try:
                one()
            except Exception as exc:  # noqa: BLE001
                row["error"] = str(exc).splitlines()[0]
                self.results["errors"].append(f"sweep {workers}×{threads}: {row['error'][:300]}")
                self.log(f"FAILED: sweep {workers}×{threads}: {exc}")

    def recycling(self):
        """max_requests default vs 1000 vs 0 under sustained /login load. Rounds alternate the
        settings (A B C A B C) and the best run of each counts: on a shared machine a burst
        of someone else's work lowers one run, never raises it."""
        default = self.results.get("defaults", {}).get("max_requests", 20000)
        rows = {mr: {"max_requests": mr, "runs": []} for mr in dict.fromkeys([default, 1000, 0])}
        self.results["recycling"] = list(rows.values())
        for round_no in range(1, self.args.recycle_rounds + 1):
            for max_requests, row in rows.items():
                try:
                    self.log(f"(c) recycling round {round_no}: max_requests={max_requests}, "
                             f"/login {self.args.recycle_s} s")
                    deploy = self.ansible.deploy(f"recycle-{max_requests}-{round_no}",
                                                 {"lernmanager_gunicorn_max_requests": max_requests})
                    containers.wait_http(self.url("c", "/login"))
                    since = exec_sh(VPS, "date +%s").strip()
                    login = self.wrk("c", "/login", self.args.recycle_s)
                    # gunicorn logs one "Booting worker" per worker it starts: the recycles that
                    # happened during the run ("Autorestarting" is logged once per late request).
                    recycles = int(exec_sh(
                        VPS, f"journalctl -u lernmanager --since @{since} -o cat "
                             "| grep -c 'Booting worker' || true").strip() or 0)
                    row["runs"].append({"deploy": deploy, "login": login, "recycles": recycles})
                except Exception as exc:  # noqa: BLE001
                    message = str(exc).splitlines()[0]
                    row.setdefault("errors", []).append(message)
                    self.results["errors"].append(f"recycling {max_requests}: {message[:300]}")
                    self.log(f"FAILED: recycling {max_requests}: {exc}")
        for row in rows.values():
            if row["runs"]:
                best = max(row["runs"], key=lambda run_: run_["login"]["rps"])
                row["login"], row["recycles"] = best["login"], best["recycles"]
            else:
                row["error"] = "; ".join(row.get("errors", ["no run"]))

    def code_release(self):
        self.log("(c) back to the default variables, then a code-only release (v2)")
        self.ansible.deploy("restore-defaults")
        self.results["deploy"]["code_only"] = self.ansible.deploy(
            "code-only-v2", {"lernmanager_source_path": self.work / "app-v2"})

    def backups(self):
        deploy = self.results["deploy"]
        self.log("(c) fresh converge of playbooks/deploy.yml, then backups and restores")
        deploy["fresh"] = self.ansible.deploy("fresh")
        backups.measure(self)

    def upstream_stacks(self):
        self.log("(a) stopping the role's service; installing upstream's waitress stack")
        stacks.stop_role_stack()
        self.results["deploy"]["upstream_install_s"] = stacks.deploy_upstream(self.work / "app-v1")
        containers.wait_http(self.url("a", "/login"))
        time.sleep(3)
        unit = "lernmanager-upstream.service"
        memory = self.results["stacks"].setdefault("a", {"workloads": {}}).setdefault("memory", {})
        memory["idle"] = self.section("(a) memory idle", self.memory, unit)
        if not self.args.storm_only:
            self.measure_workloads("a")
        self.login_storms("a", unit)
        stacks.add_upstream_site()
        containers.wait_http(self.url("b", "/login"))
        if not self.args.storm_only:
            self.measure_workloads("b")
        self.login_storms("b", unit)
        memory["after_load"] = self.section("(a) memory after load", self.memory, unit)

    # --- output ---------------------------------------------------------------------------

    def write_outputs(self):
        OUT.mkdir(parents=True, exist_ok=True)
        stacks_measured = not (self.args.backups or self.args.fleet)
        if stacks_measured and not self.args.experiment:
            targets = report_real.targets if self.args.app else report.targets
            self.results["targets"] = self.section("targets", targets, self.results) or []
        # The raw numbers first: a bug in the rendering must not lose a 20-minute run.
        json_path = OUT / f"results-{self.timestamp}.json"
        json_path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        text = (experiment.markdown if self.args.experiment
                else report_real.markdown if self.args.app else report.markdown)(self.results)
        chart_path = OUT / f"chart-{self.timestamp}.png"
        if stacks_measured and not self.args.app:
            self.section("chart", report.chart, self.results, chart_path)
        results_md = BENCH / "RESULTS.md"
        if not results_md.exists():
            results_md.write_text("# Benchmark results\n\nAppended by `make bench` (bench/run.py), "
                                  "newest last. See bench/README.md for what is measured and how.\n\n")
        # A blank line before the run's heading, however the file ends (a note added by hand).
        separator = "" if results_md.read_text().endswith("\n\n") else "\n"
        with results_md.open("a") as handle:
            handle.write(separator + text + "\n")
        print(text)
        print(f"JSON: {json_path}" + (f"\nChart: {chart_path}" if chart_path.exists() else "")
              + f"\nAppended to: {results_md}")

    def main(self):
        try:
            self.setup()
            if self.args.fleet:
                fleet.measure(self, self.args.fleet_sizes, self.args.fleet_modes)
            elif self.args.experiment:
                experiment.Experiment(self, self.args.experiment).run(self.work / "app-v1")
            elif self.args.app:
                realapp.RealApp(self).measure(self.work / "app-v1", self.work / "app-v2")
            elif self.args.backups:
                self.backups()
            else:
                self.role_stack()
                if not self.args.storm_only:
                    self.section("(c) cold start", self.cold_start)
                    if not self.args.no_sizing:
                        self.section("(c) sizing sweep", self.sweep)
                        self.section("(c) recycling", self.recycling)
                    self.section("(c) code-only release", self.code_release)
                self.section("(a)/(b) upstream stacks", self.upstream_stacks)
        except BaseException as exc:
            # A fatal failure (no VPS, the fresh converge failed, Ctrl-C): still write what was
            # measured, so a long run is never lost.
            self.results["errors"].append(f"run aborted: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
            self.log(f"ABORTED: {exc!r}")
            traceback.print_exc(file=sys.stderr)
            if self.results["meta"].get("host"):
                self.write_outputs()
            raise
        finally:
            if self.args.keep:
                self.log(f"--keep: leaving {', '.join(containers.NAMES)} running")
            else:
                self.log("removing the lm-bench-* containers")
                containers.remove_all()
        self.write_outputs()
        return 0


def render(path):
    """The report of an earlier run, with the current report code (its targets judged again)."""
    results = json.loads(pathlib.Path(path).read_text())
    if results.get("experiment"):
        print(experiment.markdown(results))
        return 0
    kind = report_real if results["meta"].get("real_app") else report
    if not (results["meta"].get("backups_only") or results["meta"].get("fleet_only")):
        results["targets"] = kind.targets(results)
    print(kind.markdown(results))
    return 0


def main():
    args = parse_args()
    if args.render:
        return render(args.render)
    # Same as the Makefile: the repository's ansible.cfg finds the role and the collection.
    os.chdir(REPO)
    os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    # `kill` or CI's stop: unwind through the finally that removes the containers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return Bench(args).main()


if __name__ == "__main__":
    sys.exit(main())
