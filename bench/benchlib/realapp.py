"""The real Lernmanager in the benchmark: `make bench BENCH_ARGS="--app PATH"`.

PATH is a checkout of the app (a clone of its repository; its code is copied into the run's work
directory and the containers, never into this repository). In one run, on one VPS container:

(c) the role deploys it (`lernmanager_source: path`), fresh and again as a no-op; a school is made
    in its database by the app's own functions (files/school_seed.py, run as the service user with
    the service's environment); then the workloads, each by 30 clients with sessions of their own:
    static CSS and JS, a pupil's dashboard, a teacher's class overview, login POSTs, a 200 KB
    upload; the app's memory idle and after the load; the in-process ceiling of each dynamic
    workload (files/inprocess.py in the same VPS, on its one core); optionally a memory soak; the
    cold start; a code-only release.
(a) and (b): upstream's waitress stack from the same checkout, on a copy of the same school
    (taken right after the seed), beside (c), with the same workloads; then (b) and (c) in pairs,
    back to back, on the pages and the upload (pairs.py): the ratios the issue's goals compare.
"""

import json
import pathlib
import re
import secrets
import shlex
import shutil
import threading
import time

from . import containers, load, pairs, stacks
from .containers import LOAD, VPS, exec_sh, put, run

BENCH_DIR = "/opt/bench"  # in the VPS: the scripts and the school, readable by the service user
SCHOOL_DB = f"{BENCH_DIR}/school.db"  # the seeded database, root's copy for (a)
DATABASE = "mbi_tracker.db"  # the app's config.DATABASE, under data/
UPLOAD_FILE = "/tmp/bench-upload.pdf"  # in the load container

# name -> (path, who): `static` anonymous, `pupil`/`admin` a logged-in session per connection,
# `login` fresh browsers POSTing the form, `upload` the admin's sessions POSTing a file.
# {klasse} and {topic} are ids from the seeded school.
WORKLOADS = {
    "css": ("/static/css/style.css", "static"),
    "js": ("/static/js/marked.min.js", "static"),
    "dashboard": ("/schueler", "pupil"),
    "class": ("/admin/klasse/{klasse}", "admin"),
    "login": ("/login", "login"),
    "upload": ("/admin/thema/{topic}/material-upload", "upload"),  # last: it adds rows and files
}
DYNAMIC = ("dashboard", "class", "login", "upload")
# Measured in pairs of (b) and (c) back to back (pairs.py): the figures the goals compare.
PAIRED = ("dashboard", "class", "upload")
# (b)'s waitress binds 8081, the role's default port: (c) moves aside so both serve side by side.
BESIDE_UPSTREAM = {"lernmanager_listen_port": 8082}
# (b)'s nginx site's name: (c)'s site keeps lernmanager.test (the role refuses a second site with it).
UPSTREAM_NAME = "upstream.bench.test"


def check_checkout(path):
    """A directory that looks like the app: refuse anything else before a container starts."""
    app = pathlib.Path(path).expanduser().resolve()
    missing = [name for name in ("app.py", "models.py", "config.py", "requirements.txt", "static")
               if not (app / name).exists()]
    if not app.is_dir() or missing:
        raise SystemExit(f"bench: --app {path} is not a checkout of Lernmanager "
                         f"(missing: {', '.join(missing) or 'the directory'}); clone "
                         "https://github.com/patrickfiedler/lernmanager.git and give its directory")
    return app


def copy_checkout(app, dest):
    """The checkout's tracked and untracked files (not ignored ones: its venv, data, caches) into
    DEST; describe what was copied. A directory without git is copied whole but for those."""
    dest = pathlib.Path(dest)
    if (app / ".git").exists():
        names = run(["git", "-C", str(app), "ls-files", "-z", "-co", "--exclude-standard"]).stdout
        files = [name for name in names.split("\0") if name and (app / name).is_file()]
        dest.mkdir(parents=True)
        for name in files:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(app / name, dest / name)
        commit = run(["git", "-C", str(app), "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = len(run(["git", "-C", str(app), "status", "--porcelain"]).stdout.splitlines())
        return {"path": str(app), "commit": commit, "uncommitted_files": dirty, "files": len(files)}
    shutil.copytree(app, dest, ignore=shutil.ignore_patterns(
        ".git", "venv", ".venv", "data", "instance", "__pycache__", "*.pyc"))
    return {"path": str(app), "commit": None, "files": sum(1 for p in dest.rglob("*") if p.is_file())}


def code_only_copy(v1, v2):
    """v1 with one changed line: a release whose requirements are the same (the venv is reused)."""
    shutil.copytree(v1, v2)
    with (pathlib.Path(v2) / "app.py").open("a") as handle:
        handle.write("\n# bench: a code-only release\n")


class RealApp:
    """The measurements on the real app; BENCH is run.py's Bench (results, args, log, section)."""

    def __init__(self, bench):
        self.bench = bench
        self.args = bench.args
        self.results = bench.results
        self.admin_password = secrets.token_urlsafe(18)
        self.school = None

    # --- inside the VPS -----------------------------------------------------------------------

    def as_app(self, script_args, timeout=900):
        """A bench script as the service runs: its user, directory, environment file and bytecode
        prefix (read from the unit), with the venv's python, without the unit's sandbox. (Not by
        systemd-run: a minimal Debian has no D-Bus.) The environment file is sourced by root's
        shell inside the VPS, so no secret is on a command line; its values are double-quoted."""
        show = exec_sh(VPS, "systemctl show -p User -p WorkingDirectory -p EnvironmentFiles "
                            "-p Environment -p ExecStart lernmanager.service")
        unit = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
        python = re.search(r"path=(\S+)", unit["ExecStart"]).group(1)
        env_file = unit["EnvironmentFiles"].split()[0]
        script = (f"cd {shlex.quote(unit['WorkingDirectory'])} && set -a && . {shlex.quote(env_file)} && set +a && "
                  f"exec runuser -u {shlex.quote(unit['User'])} -- env {unit['Environment']} "
                  f"LERNMANAGER_ADMIN_PASSWORD={shlex.quote(self.admin_password)} "
                  + " ".join(shlex.quote(arg) for arg in (python, *script_args)))
        return exec_sh(VPS, script, timeout=timeout)

    def seed(self):
        """files/school_seed.py as the service user; the school's accounts into the load
        container; root's copy of the fresh school for (a)."""
        exec_sh(VPS, f"install -d -m 0755 {BENCH_DIR}")
        for name in ("school_seed.py", "inprocess.py", "sessions.py"):
            containers.copy_in(VPS, stacks.FILES / name, f"{BENCH_DIR}/{name}")
        began = time.monotonic()
        out = self.as_app([f"{BENCH_DIR}/school_seed.py"], timeout=1800)
        seconds = round(time.monotonic() - began, 1)
        self.school = json.loads(out.strip().splitlines()[-1])
        put(VPS, f"{BENCH_DIR}/school.json", json.dumps(self.school))
        exec_sh(VPS, f"chmod 0644 {BENCH_DIR}/*; python3 -c 'import sqlite3, sys; "
                     "sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' "
                     f"{stack_database('c')} {SCHOOL_DB}; chmod 0600 {SCHOOL_DB}")
        spread = self.school["pupils"][::max(1, len(self.school["pupils"]) // 30)][:30]
        classes = self.school["classes"]
        put(LOAD, "/tmp/accounts-pupil.json", json.dumps(
            [{"username": p["username"], "password": self.school["password"], "path": "/schueler"} for p in spread]))
        put(LOAD, "/tmp/accounts-admin.json", json.dumps(
            [{"username": "admin", "password": self.admin_password,
              "path": f"/admin/klasse/{classes[n % len(classes)]}"} for n in range(30)]))
        # Random bytes, as a scanned PDF is already compressed.
        exec_sh(LOAD, f"{{ printf '%%PDF-1.4\\n'; head -c {200 * 1024 - 9} /dev/urandom; }} > {UPLOAD_FILE}")
        size = exec_sh(VPS, f"stat -c %s {SCHOOL_DB}").strip()
        self.results["school"] = {"seconds": seconds, "classes": len(classes), "pupils": len(self.school["pupils"]),
                                  "topics": len(self.school["topics"]), "database_bytes": int(size)}

    def sessions(self, stack, who):
        """Log WHO's 30 accounts in on STACK; the file of their sessions in the load container.
        Each account from its own loopback address: the role limits logins per address."""
        accounts = "admin" if who in ("admin", "upload") else "pupil"
        path = f"/tmp/sessions-{stack}-{who}.tsv"
        form = f"--form-page /admin/thema/{self.school['topics'][0]} " if who == "upload" else ""
        net = {"pupil": "127.0.1", "admin": "127.0.2", "upload": "127.0.3"}[who]
        exec_sh(LOAD, f"python3 /bench/sessions.py cookies --base {self.bench.url(stack, '')} "
                      f"--host-header {load.HOST} --accounts /tmp/accounts-{accounts}.json --source-net {net} "
                      f"{form}> {path}", timeout=600)
        return path

    def uploads_stored(self, stack):
        return int(exec_sh(VPS, "python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
                                "\"SELECT COUNT(*) FROM material WHERE beschreibung = ?\", (\"bench upload\",))"
                                f".fetchone()[0])' {stack_database(stack)}").strip())

    @staticmethod
    def who(workload):
        """Who asks for WORKLOAD: static, pupil, admin, login or upload (WORKLOADS)."""
        return WORKLOADS[workload][1]

    def path(self, workload):
        """WORKLOAD's path, with the ids of the seeded school filled in."""
        return WORKLOADS[workload][0].format(klasse=self.school["classes"][0], topic=self.school["topics"][0])

    def workloads(self, stack, names=tuple(WORKLOADS)):
        results = self.results["stacks"].setdefault(stack, {"workloads": {}})["workloads"]
        duration, warmup = self.args.duration, self.args.warmup
        for name in names:
            who = WORKLOADS[name][1]
            url = self.bench.url(stack, self.path(name))
            self.bench.log(f"({stack}) {name}: {duration} s on {url}")

            def one(name=name, who=who, url=url):
                results[name] = self.workload(stack, name, who, url, duration, warmup)
            self.bench.section(f"({stack}) {name}", one)

    def workload(self, stack, name, who, url, duration, warmup, sessions=None):
        """One workload on STACK: its numbers, with the CPU per request of its server processes.
        SESSIONS (a file of self.sessions) is made here unless given."""
        entry, meter = {}, self.bench.meter(stack)
        if who == "static":
            entry["size"] = load.response_size(url)
            entry["raw_bytes"] = load.response_size(url, accept=None)["body_bytes"]
            entry.update(load.wrk(url, duration, warmup=warmup, meter=meter))
        elif who in ("pupil", "admin"):
            sessions = sessions or self.sessions(stack, who)
            cookie = exec_sh(LOAD, f"head -n1 {sessions} | cut -f1").strip()
            entry["size"] = load.response_size(url, cookie=cookie)
            entry.update(load.wrk(url, duration, warmup=warmup, sessions=sessions, meter=meter))
        elif who == "login":
            entry.update(load.logins(self.bench.url(stack, ""), duration, "/tmp/accounts-pupil.json",
                                     warmup=warmup, meter=meter))
        else:
            sessions = sessions or self.sessions(stack, who)
            load.wrk(url, warmup, warmup=0, sessions=sessions, upload=UPLOAD_FILE)
            before = self.uploads_stored(stack)
            entry.update(load.wrk(url, duration, warmup=0, sessions=sessions, upload=UPLOAD_FILE, meter=meter))
            # A failed upload is a redirect too (with a message): count the rows it made.
            entry["stored"] = self.uploads_stored(stack) - before
        return entry

    def ceiling(self):
        """files/inprocess.py in the VPS on its one core, as the service user: the same sessions
        and requests with no sockets and no server (the service idles meanwhile). The ceiling has
        30 threads asking at once, as the load's 30 connections; one at a time shows the app's
        own time per request."""
        requests = 60 if self.args.quick else 300
        # Not the logins with 30 threads: each hash (scrypt) takes 32 MiB outside the GIL, 30 at once
        # nearly all of the VPS's 1 GB (the kernel killed it in run 20261207-104839); the role bounds
        # them for this reason (README "Login storms"), and no goal reads a login ceiling.
        for key, threads, names in (("ceiling", 30, [w for w in DYNAMIC if w != "login"]),
                                    ("one_at_a_time", 1, DYNAMIC)):
            self.bench.log(f"(c) in-process, {threads} thread(s): {requests} requests per workload")
            out = self.as_app([f"{BENCH_DIR}/inprocess.py", "--school", f"{BENCH_DIR}/school.json", "--cpu", "0",
                               "--threads", str(threads), "--workloads", ",".join(names), "--requests", str(requests)])
            self.results[key] = json.loads(out.strip().splitlines()[-1])

    def soak(self, seconds):
        """The dashboard load for SECONDS on (c) with the app's memory sampled every 30 s: its
        peak PSS, and whether the kernel killed any of its processes."""
        self.bench.log(f"(c) memory soak: dashboard, {seconds} s")
        sessions = self.sessions("c", "pupil")
        before = stacks.unit_state("lernmanager.service")
        outcome, samples = {}, []
        url = self.bench.url("c", WORKLOADS["dashboard"][0])
        drive = threading.Thread(target=lambda: outcome.update(
            load.wrk(url, seconds, warmup=0, sessions=sessions)), daemon=True)
        began = time.monotonic()
        drive.start()
        while drive.is_alive():
            drive.join(30)
            memory = self.bench.section("(c) soak memory", self.bench.memory, "lernmanager.service")
            if memory:
                samples.append({"at_s": round(time.monotonic() - began), **memory})
        after = stacks.unit_state("lernmanager.service", since=before["now"])
        self.results["soak"] = {
            "seconds": seconds, "load": outcome, "samples": samples,
            "peak_pss_mib": max((s["app_pss_mib"] for s in samples), default=None),
            "oom_kills": after["oom_kills"] - before["oom_kills"], "sigkill_lines": after["sigkill_lines"],
            "restarted": after["main_pid"] != before["main_pid"]}

    def upstream_beside(self, app_dir):
        """(a): upstream's waitress from the same checkout on root's copy of the fresh school,
        beside (c), which serves on (moved aside by BESIDE_UPSTREAM)."""
        self.bench.log("(a)/(b) upstream's waitress stack beside (c)")
        self.results["deploy"]["upstream_install_s"] = stacks.deploy_upstream(
            app_dir, database=SCHOOL_DB, database_name=DATABASE)
        containers.wait_http(self.bench.url("a", "/login"), timeout=120)

    def upstream(self, app_dir):
        """(a), then (b) in front of it, each with every workload while (c) rests; then (b) and (c)
        in pairs on the pages and the upload, the order alternating (pairs.py): the ratios the
        goals compare."""
        self.upstream_beside(app_dir)
        # (c) rests meanwhile: upstream's login load hashes 30 passwords at once (32 MiB each, no
        # bound), which with (c) resident outgrew the 1 GB VPS (run 20261207-105531).
        exec_sh(VPS, "systemctl stop lernmanager.socket lernmanager.service")
        time.sleep(3)
        unit = "lernmanager-upstream.service"
        memory = self.results["stacks"].setdefault("a", {"workloads": {}}).setdefault("memory", {})
        memory["idle"] = self.bench.section("(a) memory idle", self.bench.memory, unit)
        self.workloads("a")
        stacks.add_upstream_site(server_name=UPSTREAM_NAME)
        containers.wait_http(self.bench.url("b", "/login"))
        self.workloads("b")
        memory["after_load"] = self.bench.section("(a) memory after load", self.bench.memory, unit)
        # The pairs: (c) back, beside a fresh waitress (the logins left it hundreds of MiB).
        exec_sh(VPS, f"systemctl restart {unit} && systemctl start lernmanager.socket lernmanager.service")
        containers.wait_http(self.bench.url("b", "/login"), timeout=120)
        containers.wait_http(self.bench.url("c", "/login"))
        count = 2 if self.args.quick else 4
        self.bench.log(f"(b) and (c) in {count} pairs: {', '.join(PAIRED)}")
        self.results["pairs"] = pairs.Pairs(self.bench, self, PAIRED).alternating(count)

    def measure(self, app_v1, app_v2):
        bench, deploy = self.bench, self.results["deploy"]
        settings = {"lernmanager_admin_password": self.admin_password, **BESIDE_UPSTREAM}
        bench.log("(c) fresh converge of playbooks/deploy.yml with the real app")
        deploy["fresh"] = bench.ansible.deploy("fresh", settings)
        deploy["noop"] = bench.ansible.deploy("noop", settings)
        self.results["defaults"] = stacks.gunicorn_processes()
        containers.copy_in(VPS, stacks.FILES / "probe.py", containers.PROBE)
        containers.wait_http(bench.url("c", "/login"))
        bench.log("(c) a school through the app's own functions (school_seed.py)")
        self.seed()
        time.sleep(3)
        memory = self.results["stacks"].setdefault("c", {"workloads": {}}).setdefault("memory", {})
        memory["idle"] = bench.section("(c) memory idle", bench.memory, "lernmanager.service")
        self.workloads("c")
        memory["after_load"] = bench.section("(c) memory after load", bench.memory, "lernmanager.service")
        # (d): a bare nginx server block serving (c)'s precompressed static files.
        bench.section("(d) bare nginx", stacks.add_bare_nginx)
        self.workloads("d", ("css", "js"))
        bench.section("(c) in-process ceiling", self.ceiling)
        if self.args.soak:
            bench.section("(c) memory soak", self.soak, self.args.soak)
        bench.section("(c) cold start", bench.cold_start)
        bench.section("(c) code-only release", lambda: deploy.__setitem__("code_only", bench.ansible.deploy(
            "code-only", {**settings, "lernmanager_source_path": app_v2})))
        bench.section("(a)/(b) upstream stacks", self.upstream, app_v1)


def stack_database(stack):
    return f"/opt/lernmanager/shared/data/{DATABASE}" if stack in "cd" else f"/opt/upstream/data/{DATABASE}"

