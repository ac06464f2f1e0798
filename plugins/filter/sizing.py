# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""gunicorn's workers and threads, the service's memory limits and the login throttle, from a
host's vCPUs and memory (the role's README, "Sizing", explains each number)."""

from __future__ import annotations

import math

from ansible.errors import AnsibleFilterError

# What the OS, nginx, sshd and the page cache keep; what one worker may grow to.
RESERVED_MIB = 512
WORKER_BUDGET_MIB = 128
# Threads cover a class of 30 waiting on slow LLM calls: at least 32 in total, 8 per worker.
MIN_THREADS_TOTAL = 32
MIN_THREADS_PER_WORKER = 8


def _count(name, value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"gunicorn_sizing: {name} must be a whole number (got {value!r})") from None
    if number < 0:
        raise AnsibleFilterError(f"gunicorn_sizing: {name} must not be negative (got {number})")
    return number


def gunicorn_sizing(vcpus, memtotal_mb, cgroup_mb=0, memory_mb=0, workers=0, threads=0, hash_concurrency=0,
                    password_rate=0, worker_peak_mib=128, password_check_peak_mib=40, hash_rate_per_slot=8):
    """The sizing as a dict. A given (non-zero) memory_mb, workers, threads, hash_concurrency or
    password_rate wins over the computed value."""
    vcpus = max(1, _count("vcpus", vcpus))
    given = {name: _count(name, value) for name, value in (
        ("memory_mb", memory_mb), ("workers", workers), ("threads", threads),
        ("hash_concurrency", hash_concurrency), ("password_rate", password_rate))}
    cgroup_mb = _count("cgroup_mb", cgroup_mb)
    memory = given["memory_mb"] or min([_count("memtotal_mb", memtotal_mb)] + ([cgroup_mb] if cgroup_mb else []))
    # The service's cgroup limits: reclaim above 60 %, kill above 75 % of the memory, so the rest
    # stays for nginx, sshd and the page cache.
    memory_high = int(memory * 0.6)
    memory_max = int(memory * 0.75)
    # One worker per vCPU while each fits beside what the host keeps.
    workers = given["workers"] or max(1, min(vcpus, (memory - RESERVED_MIB) // WORKER_BUDGET_MIB))
    # Password hashes at once on the host: one per vCPU (scrypt keeps a core busy; more at once
    # only add memory), while each fits beside the workers in MemoryHigh.
    hash_slots = max(1, min(vcpus, (memory_high - workers * _count("worker_peak_mib", worker_peak_mib))
                            // max(1, _count("password_check_peak_mib", password_check_peak_mib))))
    return {
        "memory_mb": memory,
        "memory_high_mb": memory_high,
        "memory_max_mb": memory_max,
        "workers": workers,
        "threads": given["threads"] or max(MIN_THREADS_PER_WORKER, math.ceil(MIN_THREADS_TOTAL / workers)),
        "hash_slots": hash_slots,
        # The host's hash slots shared among the workers.
        "hash_concurrency": given["hash_concurrency"] or max(1, hash_slots // workers),
        # nginx passes password POSTs on at about the rate the slots hash, host-wide.
        "password_rate": given["password_rate"] or _count("hash_rate_per_slot", hash_rate_per_slot) * hash_slots,
    }


class FilterModule:
    def filters(self):
        return {"gunicorn_sizing": gunicorn_sizing}
