# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The record of a complete deploy (the module deploy_state writes it), and how the host differs
from it: the deploy gate compares it at every deploy, status and the daily self-check to show
drift (module_utils/host_health.py). Reads only; never follows a link."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import stat
import subprocess


def key_path(record_path):
    return record_path + ".key"


def describe(path):
    """A path's descriptor: what a deploy sets (type, mode, owner, content or link target)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    owner = f"{stat.S_IMODE(info.st_mode):o}:{info.st_uid}:{info.st_gid}"
    if stat.S_ISLNK(info.st_mode):
        return "link " + os.readlink(path)
    if stat.S_ISDIR(info.st_mode):
        return "dir " + owner
    if not stat.S_ISREG(info.st_mode):
        return "other " + owner
    digest = hashlib.sha256()
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(handle, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"file {owner} {digest.hexdigest()}"


def expand(patterns, record_path):
    """The paths the patterns name now: a glob's matches, a `dir/` pattern's whole tree (no links followed)."""
    found = set()
    for pattern in patterns:
        if pattern.endswith("/"):
            top = pattern.rstrip("/")
            if os.path.isdir(top) and not os.path.islink(top):
                found.add(top)
                for root, dirs, files in os.walk(top):
                    found.update(os.path.join(root, name) for name in dirs + files)
        else:
            found.update(glob.glob(pattern))
    found.discard(record_path)
    found.discard(key_path(record_path))
    return {path: describe(path) for path in sorted(found)}


def read_record(path):
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(handle, encoding="utf-8") as stream:
        info = os.fstat(stream.fileno())
        if info.st_uid != 0 or info.st_mode & 0o022:
            return None  # not root's own record: trust none of it
        try:
            return json.load(stream)
        except ValueError:
            return None


def missing_packages(packages):
    if not packages:
        return []
    # One dpkg-query for all; a package dpkg never heard of is not in its output at all.
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n"] + packages,
                         capture_output=True, text=True, check=False).stdout
    installed = {line.split()[0].split(":")[0] for line in out.splitlines() if line.split()[1:2] == ["ii"]}
    return [name for name in packages if name not in installed]


def inactive_units(units):
    if not units:
        return {}
    states = subprocess.run(["systemctl", "is-active"] + units, capture_output=True, text=True, check=False).stdout.split()
    if len(states) != len(units):
        # systemctl refused the list (a unit name it cannot parse): none of them can be told active.
        return {unit: "unknown" for unit in units}
    return {unit: state for unit, state in zip(units, states) if state != "active"}


def attributes(rest):
    """'<mode>:<uid>:<gid>[ <sha256>]' (a descriptor after its kind) -> (mode, 'uid:gid', sha256 or '')."""
    head, *content = rest.split(" ", 1)
    mode, owners = head.split(":", 1)
    return mode, owners, content[0] if content else ""


def what_differs(before, now):
    """How a path's descriptor NOW differs from BEFORE (describe()'s), in words without any content:
    missing, new, a file that became a link, content, mode 640 -> 644, owner or group, link target."""
    if before == now:
        return ""
    if now is None:
        return "missing"
    if before is None:
        return "new"
    kind, rest = before.split(" ", 1)
    kind_now, rest_now = now.split(" ", 1)
    if kind != kind_now:
        return f"a {kind} before, a {kind_now} now"
    if kind == "link":
        return f"link target {rest} -> {rest_now}"
    mode, owners, content = attributes(rest)
    mode_now, owners_now, content_now = attributes(rest_now)
    changes = []
    if content != content_now:
        changes.append("content")
    if mode != mode_now:
        changes.append(f"mode {mode} -> {mode_now}")
    if owners != owners_now:
        changes.append(f"owner {owners.replace(':', '/')} -> {owners_now.replace(':', '/')}")
    return ", ".join(changes)


def drift(record_path, watch, packages=(), units=()):
    """What differs from the last complete deploy: ["<path>: <what>", "package <p> is not installed",
    "unit <u> is <state>"]; None when there is no record root owns (never deployed completely)."""
    record = read_record(record_path)
    if not record:
        return None
    stored, now = record.get("files") or {}, expand(watch, record_path)
    found = [f"{path}: {what_differs(stored.get(path), now.get(path))}"
             for path in sorted(stored.keys() | now.keys()) if stored.get(path) != now.get(path)]
    found += [f"package {name} is not installed" for name in missing_packages(list(packages))]
    found += [f"unit {unit} is {state}" for unit, state in inactive_units(list(units)).items()]
    return found
