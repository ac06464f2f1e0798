"""Root's view of the deploy's app processes (issue 37): every process running a migration (the
runner or a migrate/migrate_*.py), with what says whether it is sandboxed: NoNewPrivs, its seccomp
filter and capabilities, its group, its cgroup and its mount namespace (compared with PID 1's;
None where root may not look: a container's root lacks CAP_SYS_PTRACE). One JSON line per
process to argv[1], for argv[2] seconds."""

import json
import os
import sys
import time

LOG, SECONDS = sys.argv[1], float(sys.argv[2])
host_mnt = os.readlink("/proc/1/ns/mnt")
deadline, seen = time.monotonic() + SECONDS, set()
while time.monotonic() < deadline:
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid in seen:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().split(b"\0")
            if not any(b"migrations_done.txt" in arg or b"migrate/migrate_" in arg for arg in cmdline):
                continue
            if cmdline[0].endswith(b"systemd-run"):
                continue  # root's own systemd-run, which starts them
            with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as handle:
                cgroup = handle.read()
        except OSError:
            continue
        try:
            own_mount_namespace = os.readlink(f"/proc/{pid}/ns/mnt") != host_mnt
        except PermissionError:
            own_mount_namespace = None
        except OSError:
            continue
        seen.add(pid)
        with open(LOG, "a", encoding="utf-8") as out:
            out.write(json.dumps({"pid": pid, "cmdline": [arg.decode()[:60] for arg in cmdline[:3]],
                                  "no_new_privs": status.get("NoNewPrivs"), "seccomp": status.get("Seccomp"),
                                  "cap_eff": status.get("CapEff"), "uid": status["Uid"].split()[0],
                                  "gid": status["Gid"].split()[0], "cgroup": cgroup,
                                  "own_mount_namespace": own_mount_namespace}) + "\n")
    time.sleep(0.002)
