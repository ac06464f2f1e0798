# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""How a host is doing: what serves, health, the unit, the last backup, the certificate, free disk
and memory, a pending reboot, the alerts. One reading for two readers: the module host_status
(playbooks/status.yml) and the host's daily self-check (roles/lernmanager/files/lernmanager_notify.py),
so the status an admin asks for and the one the host reports by itself never disagree."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time
import urllib.parse

from ansible_collections.lernmanager.deploy.plugins.module_utils import deploy_record, restic
from ansible_collections.lernmanager.deploy.plugins.module_utils.planted import describe, directory, planted_entries
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError

UTC = datetime.timezone.utc
REBOOT_REQUIRED = "/run/reboot-required"  # written by the packages that need one (Debian's update-notifier-common convention)
REBOOT_PENDING_DAYS = 7  # a kernel or libc update waits no longer than a week for its reboot
SHOWN_DRIFT = 5  # differences named in a problem; the details list them all


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


def kept_verdict(settings_path, name):
    """What the backup script kept in its state directory: drill.json (the last restore drill),
    care.json (the last database care); None before the first."""
    try:
        settings = restic.load_settings(settings_path)
        with open(os.path.join(settings.get("state_dir", ""), name), encoding="utf-8") as handle:
            return json.load(handle)
    except (LernmanagerError, OSError, ValueError):
        return None


def database(settings_path):
    """The live database's and its WAL's size (root only stats them: it never opens the service's
    files), with the last care run; None without backup settings."""
    try:
        path = restic.load_settings(settings_path)["database"]
    except (LernmanagerError, OSError, ValueError, KeyError):
        return None
    sizes = {}
    for name, suffix in (("bytes", ""), ("wal_bytes", "-wal")):
        try:
            sizes[name] = os.lstat(path + suffix).st_size
        except OSError:
            sizes[name] = None if not suffix else 0
    return {**sizes, "care": kept_verdict(settings_path, "care.json")}


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


def memory():
    """MemTotal and MemAvailable (the kernel's own estimate of what can be had without swapping)."""
    fields = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0]) >> 10  # kB -> MiB
    except (OSError, ValueError, IndexError):
        return {}
    total, available = fields.get("MemTotal", 0), fields.get("MemAvailable", 0)
    return {"total_mib": total, "available_mib": available,
            "available_percent": round(100 * available / total) if total else 100}


def journal():
    """The space the host's journal takes (journalctl --disk-usage), in MiB; None when it cannot tell."""
    result = subprocess.run(["journalctl", "--disk-usage"], capture_output=True, text=True, check=False)
    # "Archived and active journals take up 24.0M in the file system."
    found = re.search(r"take up ([0-9.]+)([BKMGT])", result.stdout)
    if not found:
        return None
    return round(float(found.group(1)) * 1024 ** "BKMGT".index(found.group(2)) / (1 << 20))


def pending_reboot(path=REBOOT_REQUIRED):
    try:
        since = int(os.stat(path).st_mtime)
    except OSError:
        return {"pending": False}
    return {"pending": True, "since": utc_iso(since), "age_seconds": int(time.time()) - since}


def alerts(state_path):
    """What lernmanager-notify kept: the self-check's last verdict and the last send that failed."""
    try:
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {"check": None, "last_failed": None, "last": None}
    return {"check": state.get("check"), "last_failed": state.get("last_failed"),
            "last": state.get("last")}


def planted_in(data_dir):
    try:
        with directory(data_dir) as fd:
            return planted_entries(fd)
    except OSError:
        return []  # none yet (before the first deploy); a link there is refused by every deploy


def collect(params):
    """Everything the host tells about itself; PARAMS as host_status's options."""
    root = params["root"]
    status = {"live": read_live(root), "previous": link_name(os.path.join(root, "previous")),
              "health": health(params["health_url"]), "service": service(params["service"]),
              "disks": disks(params["disks"]), "memory": memory(), "journal_mib": journal(), "reboot": pending_reboot(),
              "planted": planted_in(os.path.join(root, "shared", "data"))}
    if params.get("backup_settings"):
        status["backup"] = newest_backup(params["backup_settings"])
        status["drill"] = kept_verdict(params["backup_settings"], "drill.json")
        status["database"] = database(params["backup_settings"])
    if params.get("certificate"):
        status["certificate"] = certificate(params["certificate"])
    if params.get("notify_state"):
        status["alerts"] = alerts(params["notify_state"])
    if params.get("deploy_record"):
        status["drift"] = deploy_record.drift(params["deploy_record"], params.get("watch") or [],
                                              params.get("packages") or [], params.get("units") or [])
    return status


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


def judge(status, limits, details=True):
    """What needs an admin: a sentence per problem. Without DETAILS (an alert, which leaves the
    host) no name an attacker planted and no error text that may hold the repository's address."""
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
        problems.append(f"the backups cannot be read: {backup['error']}" if details
                        else "the backups cannot be read (lernmanager.deploy.status tells why)")
    elif backup and backup["age_seconds"] > limits["max_backup_age_days"] * 86400:
        problems.append(f"the newest backup is {age(backup['age_seconds'])} old "
                        f"(more than {limits['max_backup_age_days']} d)")
    drill = status.get("drill")
    if drill and not drill.get("ok"):
        problems.append(f"the restore drill of {utc_iso(drill['time'])} failed (set {drill.get('snapshot') or '-'}): "
                        + ("; ".join(drill.get("problems") or []) if details
                           else "the set would not restore as it was made (journalctl -u '*-restore-drill' tells why)"))
    care = (status.get("database") or {}).get("care")
    if care and not care.get("ok"):
        problems.append(f"the database care of {utc_iso(care['time'])} found the database damaged (quick_check: "
                        + (f"{care.get('quick_check', '')[:200]}" if details else "not ok")
                        + "): restore the newest good set")
    cert = status.get("certificate")
    if cert and "error" in cert:
        problems.append(cert["error"])
    elif cert and cert["days_left"] < limits["min_certificate_days"]:
        problems.append(f"the certificate expires in {cert['days_left']} d (on {cert['not_after']}; "
                        f"fewer than {limits['min_certificate_days']} d)")
    if status.get("planted"):
        held = describe(status["planted"]) if details else f"{len(status['planted'])} links or special files"
        problems.append(f"shared/data holds {held}: the app makes no links or special "
                        "files there, its account may have been misused (a deploy warns, and stops at a "
                        "planted migration record; lernmanager_quarantine_planted moves them aside)")
    for disk in status["disks"]:
        if disk["free_percent"] < limits["min_free_percent"]:
            problems.append(f"{', '.join(disk['paths'])}: {disk['free_percent']} % free "
                            f"({disk['free_mib']} MiB; less than {limits['min_free_percent']} %)")
    drift = status.get("drift")
    if drift:
        shown = "; ".join(drift[:SHOWN_DRIFT]) + (f"; and {len(drift) - SHOWN_DRIFT} more" if len(drift) > SHOWN_DRIFT else "")
        problems.append(f"{len(drift)} of what the role manages differ from the last complete deploy ({shown}): "
                        "a deploy puts them back")
    mem = status.get("memory") or {}
    if mem and mem["available_percent"] < limits["min_free_percent"]:
        problems.append(f"memory: {mem['available_percent']} % available ({mem['available_mib']} of "
                        f"{mem['total_mib']} MiB; less than {limits['min_free_percent']} %)")
    reboot = status.get("reboot") or {}
    if reboot.get("pending") and reboot["age_seconds"] > REBOOT_PENDING_DAYS * 86400:
        problems.append(f"a reboot has been pending for {age(reboot['age_seconds'])} (since {reboot['since']}): "
                        "updates wait for it")
    sent = (status.get("alerts") or {}).get("last")
    if sent and sent.get("errors"):
        # Only while the newest attempt failed: one that got through since means the way is open again.
        what = "ping" if sent.get("action") == "ping" else "alert"
        problems.append(f"the last {what} could not be sent ({utc_iso(sent['time'])}: "
                        + "; ".join(f"{what}: {error}" for what, error in sorted(sent.get("errors", {}).items())) + ")")
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
    if status.get("drill"):
        drill = status["drill"]
        parts.append(f"drill {age(int(time.time()) - drill['time'])} ago: " + ("ok" if drill.get("ok") else "FAILED"))
    db = status.get("database")
    if db and db.get("bytes") is not None:
        text = f"database {db['bytes'] >> 20} MiB + WAL {db['wal_bytes'] >> 20} MiB"
        care = db.get("care")
        if care:
            before = care.get("before") or {}
            free = round(100 * before["free_pages"] / before["pages"]) if before.get("pages") else 0
            text += (f", care {age(int(time.time()) - care['time'])} ago: "
                     + (("vacuumed" if care.get("vacuumed") else "ok") + f" ({free} % free pages before)"
                        if care.get("ok") else "FAILED"))
        parts.append(text)
    if status.get("certificate"):
        cert = status["certificate"]
        parts.append("cert ?" if "error" in cert else f"cert {cert['days_left']} d")
    parts.append("free " + ", ".join(f"{d['paths'][0]} {d['free_percent']} %" for d in status["disks"]))
    if status.get("memory"):
        parts.append(f"memory {status['memory']['available_percent']} % available")
    if status.get("journal_mib") is not None:
        parts.append(f"logs {status['journal_mib']} MiB")
    if "drift" in status:
        drift = status["drift"]
        parts.append("drift ?" if drift is None else f"drift {len(drift)}" if drift else "no drift")
    if (status.get("reboot") or {}).get("pending"):
        parts.append(f"reboot pending {age(status['reboot']['age_seconds'])}")
    check = (status.get("alerts") or {}).get("check")
    if check:
        checked = int(time.time()) - check["time"]
        found = check["problems"]
        parts.append(f"self-check {age(checked)} ago: "
                     + ("ok" if not found else f"{found} problem" + ("s" if found > 1 else "")))
    line = ", ".join(parts)
    if status["problems"]:
        line += f"  WARNING ({len(status['problems'])}): " + "; ".join(status["problems"])
    return line
