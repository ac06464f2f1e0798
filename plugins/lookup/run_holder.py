# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Who this run is, for the host lock; and whether another run still runs."""

from __future__ import annotations

DOCUMENTATION = r"""
name: run_holder
short_description: Name this ansible-playbook run, or tell whether a named run still runs
description:
  - Without terms, returns this run as the C(lernmanager.deploy.host_lock) module records it
    (controller host name, PID and process start of C(ansible-playbook), the playbook, the start time).
  - With O(check), returns V(alive) or V(gone) for a run of this controller, and V(unknown) for a
    run of another controller (it cannot be looked at from here).
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
options:
  check:
    description: A holder as returned before, to look up.
    type: dict
"""

EXAMPLES = r"""
- name: Name this run
  ansible.builtin.set_fact:
    run: "{{ lookup('lernmanager.deploy.run_holder') }}"
"""

RETURN = r"""
_raw:
  description: This run (a dict), or V(alive), V(gone) or V(unknown) with O(check).
  type: raw
"""

import os
import socket
import time

from ansible.plugins.lookup import LookupBase


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [arg.decode(errors="replace") for arg in handle.read().split(b"\0") if arg]
    except OSError:
        return []


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def process_start(pid):
    """Clock ticks after boot, with the boot's id: a reused PID has another."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            ticks = handle.read().rsplit(")", 1)[1].split()[19]
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return f"{handle.read().strip()}:{ticks}"
    except (OSError, IndexError):
        return None


def is_playbook(pid):
    return any(os.path.basename(arg).startswith("ansible-playbook") for arg in cmdline(pid)[:2])


def playbook_process():
    """The ansible-playbook process this lookup runs under. A task's worker is a fork of it with
    the same command line: the topmost of the chain is the run."""
    pid, found = os.getpid(), None
    while pid > 1:
        if is_playbook(pid):
            found = pid
        elif found:
            break
        pid = parent(pid)
    return found or os.getpid()


# Options of ansible-playbook that take a value: a .yml after them is not a playbook.
VALUE_OPTIONS = {"-i", "--inventory", "--inventory-file", "-e", "--extra-vars", "-l", "--limit", "-t", "--tags",
                 "--skip-tags", "-u", "--user", "--vault-id", "--vault-password-file", "--vault-pass-file",
                 "-M", "--module-path", "-f", "--forks", "-c", "--connection", "-T", "--timeout",
                 "--private-key", "--key-file", "--start-at-task", "--become-user", "--become-method"}


def playbook_arguments(argv):
    """The playbooks among ansible-playbook's arguments (positional, after its own path)."""
    found = []
    for index, arg in enumerate(argv[2:], start=2):
        if arg.endswith((".yml", ".yaml")) and not arg.startswith(("@", "-")) and argv[index - 1] not in VALUE_OPTIONS:
            found.append(arg)
    return found


def holder_state(holder):
    """alive or gone for a run of this controller; unknown for another controller's."""
    if holder.get("controller") != socket.gethostname():
        return "unknown"
    pid = int(holder.get("pid") or 0)
    alive = pid > 0 and os.path.exists(f"/proc/{pid}") and process_start(pid) == holder.get("started")
    return "alive" if alive else "gone"


def this_run():
    pid = playbook_process()
    playbooks = playbook_arguments(cmdline(pid))
    return {
        "controller": socket.gethostname(),
        "pid": pid,
        "started": process_start(pid) or str(pid),
        "playbook": os.path.basename(playbooks[-1]) if playbooks else "ansible-playbook",
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        check = self.get_option("check")
        return [holder_state(check) if check else this_run()]
