"""Helpers shared by the testinfra suites of every scenario.

All HTTP goes to 127.0.0.1 *inside* the container, through nginx, with the Host header of the
deployed site: no test traffic leaves the container.
"""

import json
import os
import re
import subprocess

import pytest

ROOT = "/opt/lernmanager"
SERVER_NAME = "lernmanager.test"
PREFIX = "/var/cache/lernmanager/pycache"
DATABASE = f"{ROOT}/shared/data/mbi_tracker.db"
RESOURCES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(RESOURCES))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (lower-case name, value): repeated headers stay visible
        self.body = body

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
    body = host.run("cat /tmp/lm-body").stdout
    return Response(status, headers_out, body)


def _quote(arg):
    return "'" + arg.replace("'", "'\\''") + "'"


def sql(host, query):
    """A read query as the service user (root would leave root-owned -wal/-shm files)."""
    result = host.run("runuser -u lernmanager -- sqlite3 %s %s", DATABASE, query)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def run_client(host, *args):
    """Run files/lm_client.py (login, upload, download as a browser would) inside the container."""
    with open(os.path.join(RESOURCES, "files", "lm_client.py"), encoding="utf-8") as handle:
        script = handle.read()
    host.run("cat > /tmp/lm_client.py <<'LM_EOF'\n%s\nLM_EOF" % script)
    result = host.run("python3 /tmp/lm_client.py " + " ".join(_quote(a) for a in args))
    assert result.rc == 0, f"client failed: {result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def env_value(host, key):
    content = host.file("/etc/lernmanager/lernmanager.env").content_string
    match = re.search(rf'^{key}="(.*)"$', content, re.M)
    return match.group(1) if match else None


def converge(extra_vars=None):
    """Run the scenario's converge playbook again from the controller (same inventory as Molecule)."""
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
           os.path.join(RESOURCES, "converge.yml")]
    for key, value in (extra_vars or {}).items():
        cmd += ["-e", f"{key}={value}"]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)


def recap_changed(output):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(?m)^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output)}
