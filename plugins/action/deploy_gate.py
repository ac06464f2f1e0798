# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Whether a deploy has anything to do: the same inputs as the last complete deploy, and the host
still as that deploy left it. A run that has nothing to do ends here instead of walking every task
to find everything in place. Its documentation is plugins/modules/deploy_gate.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

from ansible.plugins.action import ActionBase

from ansible_collections.lernmanager.deploy.plugins.filter.venv import venv_period
from ansible_collections.lernmanager.deploy.plugins.module_utils.tree import content_hash, walk_files

# The collection's root (plugins/action/ is two levels below it): its role and plugins are inputs.
COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE_DIRS = ("roles", "plugins")
SHOWN_PATHS = 5
# Variables that steer the run, not what it leaves on the host: a change of them alone is no reason
# to take every step (lernmanager_full_run is the reason itself, when true).
NOT_INPUTS = re.compile(r"lernmanager_(full_run|serial|max_fail_percentage|lock_timeout|status_\w+)$")
# Variables that only choose the code to deploy and what its venv is built with (and the content
# of a file one names: the constraints, an archive). When they and the code are all that differ,
# on a host as the last deploy left it, the deploy takes the code lane: only the steps that build,
# configure and switch to the release run (see tasks/main.yml).
CODE_INPUTS = re.compile(
    r"lernmanager_(source_path|git_repo|git_version|archive_src|archive_checksum|pip_constraints)( \(content\))?$")
SHOWN_INPUTS = 5


def code_hash():
    """The collection's role and plugins, by relative path and content (not modification times).
    Not memoised: each host's task runs in a forked worker, whose cache would die with it."""
    digest = hashlib.sha256()
    for top in CODE_DIRS:
        for path in walk_files(os.path.join(COLLECTION, top), {"__pycache__"}):
            if path.endswith(".pyc"):
                continue
            digest.update(os.path.relpath(path, COLLECTION).encode() + b"\0")
            with open(path, "rb") as stream:
                digest.update(hashlib.sha256(stream.read()).digest())
    return digest.hexdigest()


def digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_hash(path):
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def differences(stored, now):
    """Human lines for the watched paths that differ: changed, gone or new."""
    lines = [f"{path} changed" for path in sorted(stored.keys() & now.keys()) if stored[path] != now[path]]
    lines += [f"{path} is gone" for path in sorted(stored.keys() - now.keys())]
    lines += [f"{path} is new" for path in sorted(now.keys() - stored.keys())]
    if len(lines) > SHOWN_PATHS:
        lines = lines[:SHOWN_PATHS] + [f"and {len(lines) - SHOWN_PATHS} more paths"]
    return lines


def changed_inputs(stored_parts, parts):
    """The names of the inputs that differ (variables, the collection, the host facts...)."""
    names = sorted(name for name in stored_parts.keys() | parts.keys() if stored_parts.get(name) != parts.get(name))
    shown = ", ".join(names[:SHOWN_INPUTS])
    return shown + (f" and {len(names) - SHOWN_INPUTS} more" if len(names) > SHOWN_INPUTS else "")


def decide(stored, now, look):
    """The lane of this deploy and why: "none" (nothing to do), "code" (only the code, or the
    variables that choose it, differ, on a host as the last complete deploy left it: only the
    release's steps run) or "full" (every step). stored is the host's record, now the gate's
    fingerprint and code id, look what deploy_state saw on the host."""
    reasons = []
    drift = [f"package {name} is not installed" for name in look.get("packages_missing") or []]
    drift += [f"unit {unit} is not active ({state})" for unit, state in (look.get("units_inactive") or {}).items()]
    if not stored:
        return "full", ["no record of a complete deploy on the host"] + drift
    drift = differences(stored.get("files") or {}, look.get("files") or {}) + drift
    if stored.get("inputs") != now["inputs"]:
        if stored.get("parts"):
            reasons.append("the inputs changed: " + changed_inputs(stored["parts"], now["parts"]))
        else:
            reasons.append("the inputs changed (variables, facts, the collection, or the venv's period)")
    if not now["code"]:
        reasons.append("the code to deploy cannot be told without fetching it")
    elif stored.get("code") != now["code"]:
        reasons.append(f"the code changed ({stored.get('code')} -> {now['code']})")
    reasons += drift
    if not reasons:
        return "none", []
    if not drift and stored.get("setup") == now["setup"]:
        return "code", reasons
    return "full", reasons


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def named_file(self, value):
        """The controller file a variable's value names (a certificate, a constraints file, a
        template; absolute, or found as the copy and template actions find it), or None."""
        if not isinstance(value, str) or not value or len(value) > 1024 or "\n" in value:
            return None
        if os.path.isabs(value):
            return value if os.path.isfile(value) else None
        for kind in ("files", "templates"):
            try:
                return self._find_needle(kind, value)
            except Exception:  # noqa: BLE001 (AnsibleError and its kin): not a file the role could read
                continue
        return None

    def template_inputs(self, task_vars):
        """Every lernmanager_* variable as the role sees it on this host, and the content of the
        controller files they name: a renewed certificate at the same path is a new input."""
        inputs = {}
        for name in sorted(n for n in task_vars if n.startswith("lernmanager_") and not NOT_INPUTS.match(n)):
            try:
                value = self._templar.template(task_vars[name])
            except Exception as error:  # noqa: BLE001 (any templating error): recorded as such, compared as such
                value = f"<cannot template: {type(error).__name__}>"
            inputs[name] = value
            path = self.named_file(value)
            if path:
                inputs[name + " (content)"] = file_hash(path)
        return inputs

    def fingerprint(self, args, task_vars):
        """Each input's digest (parts), the digest of them all (inputs) and of all but the
        variables that choose the code (setup)."""
        parts = {name: digest(value) for name, value in self.template_inputs(task_vars).items()}
        # Named as the reasons name them (the variables keep their own names).
        parts.update({
            "the collection's role and plugins": code_hash(),
            "the host's name": digest(task_vars.get("inventory_hostname")),
            "the host facts": digest(args.get("host_facts") or {}),
            "the venv's period": digest(venv_period(time.time(), int(args.get("venv_max_age_days") or 0))),
        })
        setup = {name: value for name, value in parts.items() if not CODE_INPUTS.match(name)}
        return {"parts": parts, "inputs": digest(parts), "setup": digest(setup)}

    def code_id(self, args, git_commit):
        """The code id the deploy would name the release after, or "" when it cannot be told here."""
        source = args.get("source")
        directory = os.path.expanduser(args.get("source_path") or "")
        if source == "path" and os.path.isfile(os.path.join(directory, "app.py")):
            # The role takes this id as it is (source/path.yml): the directory is hashed once.
            return "p-" + content_hash(directory)[0][:16]
        if source == "archive" and ":" in (args.get("archive_checksum") or ""):
            return "a-" + args["archive_checksum"].split(":", 1)[1][:16]
        if source == "git":
            version = args.get("git_version") or ""
            if git_commit:
                return "g-" + git_commit[:16]
            if re.fullmatch(r"[0-9a-f]{16,40}", version):
                return "g-" + version[:16]
        return ""

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        result.update(changed=False, passed=False, lane="full", reasons=[], release="",
                      **self.fingerprint(args, task_vars))
        probe = {
            "path": args["record_path"],
            "watch": args.get("watch") or [],
            "packages": args.get("packages") or [],
            "units": args.get("units") or [],
        }
        if args.get("source") == "git":
            probe.update(git_repo=args.get("git_repo") or "", git_version=args.get("git_version") or "")
        # The host keys the digests as its record holds them (deploy_state's key never leaves it).
        probe["fingerprint"] = {name: result[name] for name in ("inputs", "setup", "parts")}
        if args.get("full_run"):
            result["code"] = self.code_id(args, None)
            result["reasons"] = ["lernmanager_full_run is set"]
            return result
        look = self._execute_module("lernmanager.deploy.deploy_state", module_args=probe, task_vars=task_vars)
        if look.get("failed"):
            return dict(look, reasons=["the host's record could not be read"])
        result["code"] = self.code_id(args, look.get("git_commit"))
        stored = look.get("stored") or {}
        result["release"] = stored.get("release", "")
        # A host without a key yet (a record from before keys) compares the digests as they are.
        now = dict(result, **(look.get("keyed") or {}))
        result["lane"], result["reasons"] = decide(stored, now, look)
        result["passed"] = result["lane"] == "none"
        return result
