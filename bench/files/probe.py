#!/usr/bin/env python3
"""Measurements taken inside the VPS container (copied there by the harness, run as root).

Usage:
  probe.py pss UNIT...                 JSON: PSS (KiB) and process count of each systemd unit
  probe.py cpu UNIT...                 JSON: CPU seconds (user + system) each unit's processes have
                                       used so far, their reaped children's included
  probe.py coldstart URL HOST REPS     JSON: seconds from restarting lernmanager.service to the
                                       first 200 (stop and start timed apart), REPS times with the
                                       bytecode prefix as deployed and REPS times with an empty
                                       prefix (put back afterwards)

Only the standard library: the container's python3 runs it, not a venv.
"""

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

PREFIX = "/var/cache/lernmanager/pycache"
SERVICE = "lernmanager.service"


def unit_pids(unit):
    """Processes whose cgroup ends in /UNIT: the whole unit (gunicorn master and workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue  # the process ended meanwhile
        # cgroup v1 lines look like "1:name=systemd:/docker/<id>/system.slice/nginx.service".
        if any(line.rsplit(":", 1)[-1].endswith("/" + unit) for line in lines):
            pids.append(int(entry))
    return pids


def pss_kib(pid):
    # PSS shares each shared page among the processes mapping it: summing it over the workers
    # does not count the copy-on-write pages they share with the master twice (RSS would).
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_pss(units):
    result = {}
    for unit in units:
        pids = unit_pids(unit)
        result[unit] = {"processes": len(pids), "pss_kib": sum(pss_kib(p) for p in pids)}
    print(json.dumps(result))


def cpu_seconds(pid):
    """utime + stime of the process (all its threads) and of its children it has reaped: a worker
    that exits between two readings moves into its master's count, it is not lost. The unit's
    own cgroup cannot be read here (the container sees the host's cgroup v1 tree, where systemd
    in the container keeps no CPU accounting of its own)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14-17 of proc(5), counted from 1 with pid and comm: after ")" they are 12-15.
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cmd_cpu(units):
    print(json.dumps({unit: round(sum(cpu_seconds(p) for p in unit_pids(unit)), 3) for unit in units}))


def first_200(url, host, timeout=60.0):
    """Poll until URL answers 200. A connection made while gunicorn restarts waits in the
    systemd socket's backlog; a refused or reset one is simply retried."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers={"Host": host})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError):
            pass
        time.sleep(0.01)
    return False


def one_restart(url, host):
    """One restart, timed in parts. `systemctl restart` is a stop job then a start job; they are
    run as two commands so the report can tell the stop (gunicorn's graceful shutdown) from the
    start (imports: what the bytecode prefix speeds up)."""
    # Quick successive restarts hit systemd's start limit: reset it, and let the
    # service settle, so every repetition measures the same thing.
    subprocess.run(["systemctl", "reset-failed", SERVICE], check=False, capture_output=True)
    if not first_200(url, host):
        raise SystemExit("service does not answer before the restart")
    time.sleep(1.0)
    start = time.monotonic()
    # capture_output: systemd warns that the socket can still activate the service.
    subprocess.run(["systemctl", "stop", SERVICE], check=True, capture_output=True)
    stopped = time.monotonic()
    subprocess.run(["systemctl", "start", SERVICE], check=True)
    if not first_200(url, host):
        raise SystemExit("no 200 within 60 s after the restart")
    done = time.monotonic()
    return {"total_s": done - start, "stop_s": stopped - start, "start_to_200_s": done - stopped}


def cmd_coldstart(url, host, reps):
    reps = int(reps)
    precompiled = [one_restart(url, host) for _ in range(reps)]
    saved = PREFIX + ".bench-saved"
    if os.path.exists(saved):
        raise SystemExit(f"{saved} exists: a previous run did not restore the prefix")
    os.rename(PREFIX, saved)
    try:
        # An empty prefix the service cannot write to (root-owned, ProtectSystem=strict): Python
        # then compiles every module in memory on each start, which is what a missing or stale
        # bytecode cache costs.
        os.mkdir(PREFIX, 0o755)
        empty = [one_restart(url, host) for _ in range(reps)]
    finally:
        shutil.rmtree(PREFIX, ignore_errors=True)
        os.rename(saved, PREFIX)
    # Leave the service running on the real prefix again.
    one_restart(url, host)
    print(json.dumps({"precompiled": precompiled, "empty_prefix": empty}))


def main(argv):
    if len(argv) >= 3 and argv[1] == "pss":
        cmd_pss(argv[2:])
    elif len(argv) >= 3 and argv[1] == "cpu":
        cmd_cpu(argv[2:])
    elif len(argv) == 5 and argv[1] == "coldstart":
        cmd_coldstart(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
