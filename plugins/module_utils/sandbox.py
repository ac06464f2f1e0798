# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Running the app's own code at deploy time inside the service's sandbox.

A deploy runs the app's code: init_app(), the migrations (on a trial copy, then for real) and the
admin check. Each run is a transient systemd unit (systemd-run, started by root) with the service's
user, env file and sandbox: the properties come from the one template the service and its jobs
include (the role hands its text to the module), so the three cannot drift apart.

One thing differs from the service: the primary group. These units run as the service user with
the deploy group, a group the running app does not have. A process of the same user and group may
open another's /proc/<pid>/mem (there is no Yama on many kernels, and ProtectProc=invisible hides
only what the caller could not attach to anyway); with another group the running app can neither
see the deploy's processes nor write into them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from ansible_collections.lernmanager.deploy.plugins.module_utils.app_runtime import RECORD_NAME
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError

SYSTEMD_RUN = "/usr/bin/systemd-run"
# What systemd-run itself runs with: root's own environment (the task's, an operator's) stays out.
RUN_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
PROPERTY = re.compile(r"^([A-Z][A-Za-z]*)=(.*)$")
# Set by this module alone: a sandbox text naming one of these is refused rather than obeyed.
OWN_PROPERTIES = {"User", "Group", "DynamicUser", "SupplementaryGroups", "WorkingDirectory", "EnvironmentFile",
                  "Environment", "ExecStart", "UMask", "RuntimeMaxSec", "PAMName"}


def sandbox_properties(text, read_write=None):
    """The `Key=Value` lines of the sandbox's text (comments and blank lines skipped), with
    ReadWritePaths= replaced by read_write when it is given."""
    properties = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        match = PROPERTY.match(line)
        if not match:
            raise LernmanagerError(f"the sandbox's line {number} is not a unit property: {line!r}")
        if match.group(1) in OWN_PROPERTIES:
            raise LernmanagerError(f"the sandbox's line {number} sets {match.group(1)}=, which the deploy sets itself")
        if match.group(1) == "ReadWritePaths" and read_write is not None:
            continue
        properties.append(line)
    if read_write is not None:
        properties.append("ReadWritePaths=" + " ".join(read_write))
    if not any(p.startswith("ProtectSystem=") for p in properties):
        raise LernmanagerError("the sandbox sets no ProtectSystem=: refusing to run the app's code without it")
    return properties


class Sandbox:
    """The service's sandbox for one module run: run() starts the app's code in it."""

    def __init__(self, user, group, text, env_file, timeout=3600):
        if not text or not group:
            raise LernmanagerError("sandbox and deploy_group are required to run the app's code")
        self.user, self.group, self.text, self.env_file, self.timeout = user, group, text, env_file, timeout

    def command(self, argv, cwd, environment, read_write=None, description="the app's code", unit="lernmanager-deploy"):
        """systemd-run's command line. No secret goes on it: the env file is read by systemd, input
        goes through the unit's standard input."""
        cmd = [SYSTEMD_RUN, "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
               f"--unit={unit}", f"--description=Lernmanager deploy: {description}",
               "-p", f"User={self.user}", "-p", f"Group={self.group}", "-p", f"WorkingDirectory={cwd}",
               "-p", "UMask=0027", "-p", f"RuntimeMaxSec={self.timeout}"]
        if self.env_file:
            cmd += ["-p", f"EnvironmentFile={self.env_file}"]
        for prop in sandbox_properties(self.text, read_write):
            cmd += ["-p", prop]
        for key, value in sorted(environment.items()):
            cmd.append(f"--setenv={key}={value}")
        return cmd + ["--", *argv]

    def run(self, argv, cwd, environment, read_write=None, stdin="", description="the app's code"):
        """Runs argv in the sandbox; returns (exit status, stdout, stderr). A unit that could not
        start (a path of the sandbox missing, say) has no output: its stderr then names the unit,
        whose journal says why."""
        unit = f"lernmanager-deploy-{os.urandom(4).hex()}"
        try:
            result = subprocess.run(self.command(argv, cwd, environment, read_write, description, unit), input=stdin,
                                    capture_output=True, text=True, cwd="/", env=RUN_ENVIRONMENT, check=False,
                                    timeout=self.timeout + 60)
        except subprocess.TimeoutExpired:
            raise LernmanagerError(f"{description} did not end within {self.timeout} s") from None
        except FileNotFoundError:
            raise LernmanagerError(f"{SYSTEMD_RUN} not found: the app's code runs only in the service's sandbox") from None
        stderr = result.stderr
        if result.returncode != 0 and not stderr.strip():
            stderr = f"no output; see `journalctl --unit {unit}.service`"
        return result.returncode, result.stdout, stderr


# Runs in the sandbox, in the release (or the trial's copy) as the working directory: argv is the
# record's name (app_runtime.RECORD_NAME) and the migrations; each migrate/<name> with this
# interpreter, in order, each success recorded in data/<record> (upstream's protocol). Its last line
# of output is the JSON result; the migrations' own output is kept apart.
MIGRATE = r"""
import json, os, subprocess, sys
record_name, ran = sys.argv[1], []
for name in sys.argv[2:]:
    result = subprocess.run([sys.executable, os.path.join("migrate", name)], capture_output=True, text=True)
    if result.returncode != 0:
        print(json.dumps({"ran": ran, "failed": name, "output": (result.stdout + result.stderr)[-4000:]}))
        sys.exit(0)
    with open(os.path.join("data", record_name), "a", encoding="utf-8") as record:
        record.write(name + "\n")
    ran.append(name)
print(json.dumps({"ran": ran, "failed": None, "output": ""}))
"""


def last_json_line(status, out, err, what):
    """The JSON result a script printed last; its failure (with the end of its stderr) otherwise."""
    lines = out.strip().splitlines()
    if status != 0 or not lines:
        raise LernmanagerError(f"{what} failed (status {status}):\n{(err or out)[-4000:]}")
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise LernmanagerError(f"{what} printed no result:\n{(out + err)[-4000:]}") from None


def run_migrations(sandbox, release, python, names, environment, read_write=None):
    """The named migrations in the sandbox; returns (ran, failed_name, output)."""
    if not names:
        return [], None, ""
    result = last_json_line(*sandbox.run([python, "-c", MIGRATE, RECORD_NAME, *names], release, environment, read_write,
                                         description="migrations"), "running the migrations")
    return result["ran"], result["failed"], result["output"]
