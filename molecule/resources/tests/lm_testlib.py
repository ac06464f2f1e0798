"""Helpers shared by the testinfra suites of every scenario.

All HTTP goes to 127.0.0.1 *inside* the container, through nginx, with the Host header of the
deployed site: no test traffic leaves the container, but a real browser's (scripts/browser_check.py
runs Chromium on the machine running the tests, against container_address()).
"""

import base64
import json
import os
import re
import signal
import subprocess
import tempfile

import pytest
import yaml

ROOT = "/opt/lernmanager"
SERVER_NAME = "lernmanager.test"
PREFIX = "/var/cache/lernmanager/pycache"
DATABASE = f"{ROOT}/shared/data/mbi_tracker.db"
RESOURCES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(RESOURCES))
# What default's side effect deployed (side_effect.yml: the same failure command, word for word). A
# test that runs the role again with these changes only what it means to change.
DEFAULT_LIVE = {"standin_version": "v2",
                "lernmanager_backup_on_failure": 'echo "$SERVICE_RESULT $LERNMANAGER_HOST" > /root/lm-backup-failed'}


class Response:
    def __init__(self, status, headers, body, raw=b""):
        self.status = status
        self.headers = headers  # list of (lower-case name, value): repeated headers stay visible
        self.body = body
        self.raw = raw

    def header(self, name):
        values = self.all(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]


def http(host, path, headers=None, method="GET", port=80, host_header=SERVER_NAME):
    """One request with curl inside the container; returns status, every header and the body size."""
    args = ["curl", "-sS", "-o", "/tmp/lm-body", "-D", "-", "-X", method, "--max-time", "30",
            "-H", f"Host: {host_header}"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    args.append(f"http://127.0.0.1:{port}{path}")
    result = host.run(" ".join(_quote(a) for a in args))
    assert result.rc == 0, result.stderr
    lines = result.stdout.replace("\r", "").split("\n")
    status = int(lines[0].split()[1])
    headers_out = []
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        headers_out.append((name.strip().lower(), value.strip()))
    # base64: a gzip or brotli body is not text, and testinfra decodes command output as text.
    raw = base64.b64decode(host.check_output("base64 -w0 /tmp/lm-body"))
    return Response(status, headers_out, raw.decode("utf-8", "replace"), raw)


def container_address(host):
    """The container's address on the engine's network, as the machine running the tests reaches it."""
    out = subprocess.run(["docker", "inspect", host.backend.host], check=True, capture_output=True, text=True).stdout
    networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in networks.values() if n["IPAddress"])


def _quote(arg):
    return "'" + arg.replace("'", "'\\''") + "'"


def sql(host, query):
    """A read query as the service user (root would leave root-owned -wal/-shm files)."""
    result = host.run("runuser -u lernmanager -- sqlite3 %s %s", DATABASE, query)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def put_script(host, name):
    """Copy files/<name> into the container's /tmp; returns its path there."""
    with open(os.path.join(RESOURCES, "files", name), encoding="utf-8") as handle:
        script = handle.read()
    host.run("cat > /tmp/%s <<'LM_EOF'\n%s\nLM_EOF" % (name, script))
    return f"/tmp/{name}"


def run_client(host, *args):
    """Run files/lm_client.py (login, upload, download as a browser would) inside the container."""
    args = ("--host-header", SERVER_NAME) + args
    result = host.run("python3 %s " % put_script(host, "lm_client.py") + " ".join(_quote(a) for a in args))
    assert result.rc == 0, f"client failed: {result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def env_value(host, key):
    content = host.file("/etc/lernmanager/lernmanager.env").content_string
    match = re.search(rf'^{key}="(.*)"$', content, re.M)
    return match.group(1) if match else None


def inventory():
    """Molecule's inventory as its own converge reads it: the directory, with the platforms' file,
    the scenario's own hosts (molecule/fleet's second instance) and its group_vars."""
    return os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])


def scenario_hosts():
    """The hosts of this run's inventory, in its order (`--platform-name` leaves one of a scenario's)."""
    with open(os.environ["MOLECULE_INVENTORY_FILE"], encoding="utf-8") as handle:
        return list(yaml.safe_load(handle)["all"]["hosts"])


def playbook(path, extra_vars=None, verbose=False, tags=None, limit=None, check=False):
    """Run a playbook from the controller against the scenario's hosts (Molecule's inventory).

    Extra variables go through a JSON file, so dicts, numbers and booleans keep their types."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars or {}, handle)
    cmd = ["ansible-playbook", "-i", inventory(), path, "-e", "@" + handle.name]
    if verbose:
        cmd.append("-v")
    if tags:
        cmd += ["--tags", tags]
    if limit:
        cmd += ["--limit", limit]
    if check:
        cmd.append("--check")
    # JSON results: one line per message, so tests can look for phrases without line wrapping.
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    finally:
        os.unlink(handle.name)


def killed_converge(extra_vars, at, on="task_start"):
    """Run the converge playbook and SIGKILL it, with its process group, at a task (by its name or
    the end of it; on="runner_start": while the task runs on the host), as a dropped SSH
    connection would end it (callback_plugins/lm_kill.py). Returns the killed run's PID."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars, handle)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACKS_ENABLED="lm_kill", LM_KILL_AT=at, LM_KILL_ON=on,
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(RESOURCES, "callback_plugins"))
    try:
        run = subprocess.Popen(["ansible-playbook", "-i", inventory(),
                                os.path.join(RESOURCES, "converge.yml"), "-e", "@" + handle.name],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
        output, _ = run.communicate(timeout=1800)
    finally:
        os.unlink(handle.name)
    assert run.returncode == -signal.SIGKILL, f"not killed at {at!r}: {output[-4000:]}"
    return run.pid


def converge(extra_vars=None, tags=None, limit=None):
    """Run the scenario's converge playbook again (the stand-in app, version from extra_vars)."""
    return playbook(os.path.join(RESOURCES, "converge.yml"), extra_vars, tags=tags, limit=limit)


def rollback(extra_vars=None):
    """Run the collection's playbooks/rollback.yml with the scenario's site name."""
    return playbook(os.path.join(REPO, "playbooks", "rollback.yml"),
                    {"lernmanager_server_name": SERVER_NAME, **(extra_vars or {})})


def backup(extra_vars=None):
    """Run the collection's playbooks/backup.yml."""
    return playbook(os.path.join(REPO, "playbooks", "backup.yml"),
                    {"lernmanager_server_name": SERVER_NAME, **(extra_vars or {})})


def said(run):
    """A playbook's output, its errors too, with its line breaks undone (messages are wrapped)."""
    return " ".join((run.stdout + run.stderr).split())


def release_of(host):
    return host.check_output(f"readlink {ROOT}/current").rsplit("/", 1)[-1]


def db_state(host):
    """Row counts of every table but analytics_events (it grows with every request, health checks
    included) and a checksum of their dump: equal states mean equal data."""
    tables = sql(host, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                       "AND name != 'analytics_events' ORDER BY name").split()
    counts = {t: int(sql(host, f"SELECT count(*) FROM {t}")) for t in tables}
    dump = host.run("runuser -u lernmanager -- sqlite3 %s %s | sha256sum", DATABASE,
                    " ".join(f".dump {t}" for t in tables))
    assert dump.rc == 0, dump.stderr
    return counts, dump.stdout.split()[0]


def recap_changed(output):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(?m)^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output)}


# --- a hostile service user (issue 9) --------------------------------------------------------------
# Every name a root step of the role used to open, copy, chown or rename in the service's own
# directories, taken from lernmanager-tool.py before the trust boundary: restore wrote
# data/.restore.tmp and data/migrations_done.txt.tmp and chowned them, trial-migrate worked in
# instance/tmp/.trial-*. (backup's data/.backup-<UTC second>_<label>.tmp cannot be predicted; the
# helper's own test plants the record it copied.) The app keeps working with these planted.
PLANTED_NAMES = ["data/.restore.tmp", "data/migrations_done.txt.tmp", "instance/tmp/.trial-planted"]
CANARY = "/root/lm-canary"


def as_service_user(command):
    return f"setpriv --reuid=lernmanager --regid=lernmanager --clear-groups -- {command}"


def plant_canary_links(host):
    """A root-only 0600 canary, and links to it planted as the service user at PLANTED_NAMES: a
    symlink each, and a hard link where the kernel allows one (fs.protected_hardlinks=1 does not).

    Returns the canary's secret and its stat, for canary_is_intact()."""
    secret = "lm-canary-" + os.urandom(12).hex()
    host.run(f"umask 077 && printf %s {secret} > {CANARY}")
    hard = host.run(as_service_user(f"ln {CANARY} {ROOT}/shared/{PLANTED_NAMES[0]}"))
    for name in PLANTED_NAMES[1 if hard.rc == 0 else 0:]:
        planted = host.run(as_service_user(f"ln -sfn {CANARY} {ROOT}/shared/{name}"))
        assert planted.rc == 0, planted.stderr
    return {"secret": secret, "stat": canary_stat(host), "hard_link_planted": hard.rc == 0}


def canary_stat(host):
    return host.check_output(f"stat -c '%u %g %a %i' {CANARY}")


def canary_is_intact(host, canary):
    """The canary's content, owner, mode and inode are unchanged, and its secret is in no backup
    and in no file the service user can read."""
    assert host.check_output(f"cat {CANARY}") == canary["secret"]
    assert canary_stat(host) == canary["stat"]
    in_backups = host.run(f"grep -rlF {canary['secret']} {ROOT}/shared/backups")
    assert in_backups.rc == 1, f"in a backup: {in_backups.stdout}"
    # A control file the service can read proves the search itself works (grep exits 2 on the
    # files it may not read, whatever it found).
    control = f"control-{canary['secret'][::-1]}"
    host.run(f"printf %s {control} > /tmp/lm-canary-control && chmod 0644 /tmp/lm-canary-control")
    readable = host.run(as_service_user(
        f"grep -rlsF -e {canary['secret']} -e {control} {ROOT} /etc /var /tmp /home /srv /run"))
    assert readable.stdout.split() == ["/tmp/lm-canary-control"], f"readable by the service: {readable.stdout}"


# --- a compromised app inside its own sandbox (issue 37) -----------------------------------------------
SANDBOX_SCRIPTS = "/usr/local/lib/lm-test"
# Lines of lernmanager.service's [Service] section that make it a notify service of gunicorn's.
NOT_SANDBOX = ("Type=", "NotifyAccess=", "ExecStart=", "ExecReload=", "KillMode=", "Restart", "TimeoutStopSec=")


def start_in_service_sandbox(host, unit, script, *args, service="lernmanager", oneshot=False, without=()):
    """files/<script> under the system python3 as the service user inside <service>.service's own
    sandbox: a unit made of that unit's [Service] section (user, env file, sandbox, memory) but
    the lines starting with one of `without`. A oneshot unit is started and waited for (its
    output: `journalctl -u <unit> -o cat`)."""
    host.run("install -d -m 0755 %s", SANDBOX_SCRIPTS)
    assert host.run("install -m 0644 %s %s/", put_script(host, script), SANDBOX_SCRIPTS).rc == 0
    text = host.file(f"/etc/systemd/system/{service}.service").content_string
    section = text.split("[Service]", 1)[1].split("[Install]", 1)[0]
    kept = [line for line in section.splitlines()
            if line.strip() and not line.startswith(NOT_SANDBOX) and not line.startswith(tuple(without))]
    assert any(line.startswith("ProtectSystem=") for line in kept), section
    text = "\n".join(["[Service]", "Type=oneshot" if oneshot else "Type=simple",
                      "ExecStart=/usr/bin/python3 " + " ".join([f"{SANDBOX_SCRIPTS}/{script}", *args]), *kept]) + "\n"
    host.run("cat > /etc/systemd/system/%s.service <<'LM_EOF'\n%s\nLM_EOF" % (unit, text))
    started = host.run("systemctl daemon-reload && systemctl start %s", unit)
    assert started.rc == 0, started.stderr


def stop_unit(host, unit):
    host.run("systemctl stop %s; rm -f /etc/systemd/system/%s.service; systemctl daemon-reload", unit, unit)


def run_module_on_host(name, args, check=False, on=None):
    """A module of the collection on the scenario's host ON, the first by default (`ansible -m`, as
    root): its result as a dict, `_failed` saying whether the task failed."""
    cmd = ["ansible", "-i", inventory(), on or scenario_hosts()[0], "-m", f"lernmanager.deploy.{name}", "-a", json.dumps(args)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    result = subprocess.run(cmd + (["--check"] if check else []), capture_output=True, text=True, env=env, timeout=600)
    head, _, body = result.stdout.partition(" => ")
    assert body, result.stdout + result.stderr
    outcome = json.loads(body)
    outcome["_failed"] = "FAILED" in head
    return outcome
