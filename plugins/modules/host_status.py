#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""How a host is doing, in one call: what serves, health, the unit, the last backup, the
certificate, free disk. Reads only (playbooks/status.yml)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_status
short_description: Report how a Lernmanager host is doing, and what needs an admin
description:
  - Reads the release that serves and since when (the role's C(live.json), written after each
    health-checked start), the C(previous) release, the answer of C(/login) through nginx, the
    service unit's state, memory and restarts, the newest snapshot of the backup set, the days
    until the site's certificate expires, the free space of the file systems of O(disks), and the
    links and special files planted in the app's data directory.
  - Compares them with the thresholds and returns what is wrong in RV(problems) (also shown as
    Ansible warnings), and one line for a person in RV(line).
  - Reads only. The backup repository is listed without taking restic's lock, so a running backup
    neither waits for it nor sees it.
version_added: 0.2.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes, lernmanager.deploy.attributes.read_only]
options:
  root:
    description: The instance's root (C(lernmanager_root)), which holds C(live.json), C(current) and C(previous).
    type: path
    required: true
  service:
    description: The app's service unit.
    type: str
    required: true
  health_url:
    description: The URL of C(/login) through nginx, by the site's name; it is asked on 127.0.0.1.
    type: str
    required: true
  certificate:
    description: The site's certificate (PEM); empty when the site serves plain HTTP.
    type: path
    default: ""
  backup_settings:
    description: The backup settings the role writes (C(<config dir>/backup/config.json)); empty when there are no backups.
    type: path
    default: ""
  disks:
    description: Paths whose file systems' free space counts (each file system once).
    type: list
    elements: path
    default: [/]
  max_backup_age_days:
    description: A newest backup older than this many days is a warning (so is none).
    type: int
    default: 2
  min_certificate_days:
    description: A certificate that expires in fewer days is a warning.
    type: int
    default: 14
  min_free_percent:
    description: A file system with less free space (in percent of its size) is a warning.
    type: int
    default: 15
"""

EXAMPLES = r"""
- name: Read how the host is doing
  lernmanager.deploy.host_status:
    root: /opt/lernmanager
    service: lernmanager.service
    health_url: http://school.example:80/login
    backup_settings: /etc/lernmanager/backup/config.json
    disks: [/, /opt/lernmanager/shared/data]
  register: status
"""

RETURN = r"""
line:
  description: One line for a person; the warnings at its end.
  type: str
  returned: always
  sample: "live 20261204T0101-1a2b (2 h), previous 20261203T2200-9f8e, /login 200, 68 MiB, 0 restarts, backup 3 h ago, free / 71 %"
problems:
  description: What needs an admin, one sentence each.
  type: list
  elements: str
  returned: always
live:
  description: The release that serves (C(release)) and since when (C(since), UTC), from C(live.json); empty before the first start.
  type: dict
  returned: always
previous:
  description: The release C(previous) names, empty when there is none.
  type: str
  returned: always
health:
  description: The HTTP status of C(/login) through nginx (C(status)), 0 when nothing answered.
  type: dict
  returned: always
service:
  description: The unit's C(active) state, C(since) (UTC), C(memory_bytes) (null when systemd does not count it) and C(restarts).
  type: dict
  returned: always
backup:
  description: >-
    The newest snapshot (C(id), C(time), C(age_seconds), C(release)), null when there is none;
    C(error) instead when the repository could not be read.
  type: dict
  returned: when O(backup_settings) is given
certificate:
  description: The certificate's C(not_after) (UTC) and C(days_left).
  type: dict
  returned: when O(certificate) is given
disks:
  description: One entry per file system of O(disks) (C(paths), C(free_percent), C(free_mib), C(size_mib)).
  type: list
  elements: dict
  returned: always
planted:
  description: >-
    The links and special files in C(<root>/shared/data) (C(name), C(kind), C(target)): the app makes
    none there, so each is a problem (see the module lernmanager.deploy.planted).
  type: list
  elements: dict
  returned: always
"""

import datetime
import json
import os
import subprocess
import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils import restic
from ansible_collections.lernmanager.deploy.plugins.module_utils.planted import describe, directory, planted_entries
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError

UTC = datetime.timezone.utc


def read_live(root):
    try:
        with open(os.path.join(root, "live.json"), encoding="utf-8") as handle:
            live = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {"release": live.get("release", ""), "since": live.get("since", "")}


def link_name(path):
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return ""


def health(url):
    """/login's status through nginx on this host, by the site's name (SNI and Host), like the deploy's check."""
    parts = urllib.parse.urlsplit(url)
    name, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    result = subprocess.run(["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                             "--max-time", "5", "--insecure", "--resolve", f"{name}:{port}:127.0.0.1", url],
                            capture_output=True, text=True, check=False)
    return {"status": int(result.stdout) if result.stdout.isdigit() else 0}


def utc_iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def service(unit):
    result = subprocess.run(["systemctl", "show", unit, "--timestamp=unix",
                             "--property=ActiveState,ActiveEnterTimestamp,MemoryCurrent,NRestarts"],
                            capture_output=True, text=True, check=False)
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    memory = shown.get("MemoryCurrent", "")
    since = shown.get("ActiveEnterTimestamp", "").lstrip("@")  # "@1764810000" with --timestamp=unix
    restarts = shown.get("NRestarts", "")
    return {"active": shown.get("ActiveState", "unknown"),
            "since": utc_iso(int(since)) if since.isdigit() and int(since) > 0 else "",
            # systemd writes "[not set]" (or 2^64-1) when the unit's memory is not accounted.
            "memory_bytes": int(memory) if memory.isdigit() and int(memory) < 1 << 63 else None,
            "restarts": int(restarts) if restarts.isdigit() else 0}


def newest_backup(settings_path):
    try:
        settings = restic.load_settings(settings_path)
        return restic.find_snapshot(settings, "latest", host=settings.get("host"), lock=False)
    except (LernmanagerError, OSError, ValueError) as error:
        return {"error": str(error)}


def certificate(path):
    result = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", path],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0 or "=" not in result.stdout:
        return {"error": f"cannot read {path}: {result.stderr.strip() or 'no certificate'}"}
    # notAfter=Mar  4 01:02:03 2027 GMT
    not_after = datetime.datetime.strptime(result.stdout.split("=", 1)[1].strip(), "%b %d %H:%M:%S %Y %Z")
    not_after = not_after.replace(tzinfo=UTC)
    return {"not_after": utc_iso(not_after.timestamp()),
            "days_left": int((not_after.timestamp() - time.time()) // 86400)}


def disks(paths):
    """Free space per file system: paths on the same one (same st_dev) share an entry."""
    found = {}
    for path in paths:
        try:
            device = os.stat(path).st_dev
            usage = os.statvfs(path)
        except OSError:
            continue
        entry = found.setdefault(device, {"paths": [], "size_mib": usage.f_blocks * usage.f_frsize >> 20,
                                          "free_mib": usage.f_bavail * usage.f_frsize >> 20,
                                          "free_percent": round(100 * usage.f_bavail / usage.f_blocks)
                                          if usage.f_blocks else 100})
        entry["paths"].append(path)
    return list(found.values())


def planted_in(data_dir):
    try:
        with directory(data_dir) as fd:
            return planted_entries(fd)
    except OSError:
        return []  # none yet (before the first deploy); a link there is refused by every deploy


def age(seconds):
    """A duration the way a person says it: 40 s, 12 min, 5 h, 3 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * (2 if unit != "min" else 1):
            return f"{seconds // size} {unit}"
    return f"{max(seconds, 0)} s"


def since_seconds(iso):
    try:
        return int(time.time() - datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None


def judge(status, limits):
    """What needs an admin: a sentence per problem."""
    problems = []
    if not status["live"].get("release"):
        problems.append("no health-checked release serves yet (deploy the host)")
    if status["health"]["status"] != 200:
        problems.append(f"/login through nginx answers {status['health']['status'] or 'nothing'}, not 200")
    if status["service"]["active"] not in ("active", "reloading"):
        problems.append(f"the service is {status['service']['active']}")
    backup = status.get("backup", False)
    serving = since_seconds(status["live"].get("since", ""))
    if backup is None and serving is not None and serving > limits["max_backup_age_days"] * 86400:
        # A host deployed today has had no night yet: only a host live for longer misses one.
        problems.append(f"no backup in the repository, while the app serves for {age(serving)}")
    elif backup and "error" in backup:
        problems.append(f"the backups cannot be read: {backup['error']}")
    elif backup and backup["age_seconds"] > limits["max_backup_age_days"] * 86400:
        problems.append(f"the newest backup is {age(backup['age_seconds'])} old "
                        f"(more than {limits['max_backup_age_days']} d)")
    cert = status.get("certificate")
    if cert and "error" in cert:
        problems.append(cert["error"])
    elif cert and cert["days_left"] < limits["min_certificate_days"]:
        problems.append(f"the certificate expires in {cert['days_left']} d (on {cert['not_after']}; "
                        f"fewer than {limits['min_certificate_days']} d)")
    if status.get("planted"):
        problems.append(f"shared/data holds {describe(status['planted'])}: the app makes no links or special "
                        "files there, its account may have been misused (a deploy warns, and stops at a "
                        "planted migration record; lernmanager_quarantine_planted moves them aside)")
    for disk in status["disks"]:
        if disk["free_percent"] < limits["min_free_percent"]:
            problems.append(f"{', '.join(disk['paths'])}: {disk['free_percent']} % free "
                            f"({disk['free_mib']} MiB; less than {limits['min_free_percent']} %)")
    return problems


def one_line(status):
    live = status["live"]
    held = since_seconds(live.get("since", ""))
    parts = [f"live {live['release']}" + (f" ({age(held)})" if held is not None else "")
             if live.get("release") else "live -",
             f"previous {status['previous'] or '-'}",
             f"/login {status['health']['status'] or '-'}"]
    unit = status["service"]
    memory = f"{unit['memory_bytes'] >> 20} MiB" if unit["memory_bytes"] is not None else "memory ?"
    parts.append(f"{memory}, {unit['restarts']} restarts" if unit["active"] == "active" else f"service {unit['active']}")
    if "backup" in status:
        backup = status["backup"]
        parts.append("backup none" if backup is None else "backup ?" if "error" in backup
                     else f"backup {age(backup['age_seconds'])} ago")
    if status.get("certificate"):
        cert = status["certificate"]
        parts.append("cert ?" if "error" in cert else f"cert {cert['days_left']} d")
    parts.append("free " + ", ".join(f"{d['paths'][0]} {d['free_percent']} %" for d in status["disks"]))
    line = ", ".join(parts)
    if status["problems"]:
        line += f"  WARNING ({len(status['problems'])}): " + "; ".join(status["problems"])
    return line


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "service": {"type": "str", "required": True},
            "health_url": {"type": "str", "required": True},
            "certificate": {"type": "path", "default": ""},
            "backup_settings": {"type": "path", "default": ""},
            "disks": {"type": "list", "elements": "path", "default": ["/"]},
            "max_backup_age_days": {"type": "int", "default": 2},
            "min_certificate_days": {"type": "int", "default": 14},
            "min_free_percent": {"type": "int", "default": 15},
        },
        supports_check_mode=True,
    )
    params = module.params
    status = {"live": read_live(params["root"]), "previous": link_name(os.path.join(params["root"], "previous")),
              "health": health(params["health_url"]), "service": service(params["service"]),
              "disks": disks(params["disks"]), "planted": planted_in(os.path.join(params["root"], "shared", "data"))}
    if params["backup_settings"]:
        status["backup"] = newest_backup(params["backup_settings"])
    if params["certificate"]:
        status["certificate"] = certificate(params["certificate"])
    status["problems"] = judge(status, params)
    for problem in status["problems"]:
        module.warn(problem)
    status["line"] = one_line(status)
    module.exit_json(changed=False, **status)


if __name__ == "__main__":
    main()
