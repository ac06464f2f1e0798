#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The memory a host (a container, a VPS) really has, for sizing the service."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cgroup_memory_info
short_description: Read the tightest cgroup memory limit above the running process
description:
  - Reads the memory limit of every cgroup from the module's own up to the root (cgroup v2
    C(memory.max), or v1 C(memory.limit_in_bytes)) and returns the smallest.
  - Inside a container or a slice with a limit, C(ansible_memtotal_mb) shows the whole machine's
    memory; this is what the service can really use.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options: {}
attributes:
  check_mode:
    support: full
    details: Reads only.
"""

EXAMPLES = r"""
- name: Read the cgroup memory limit
  lernmanager.deploy.cgroup_memory_info:
  register: cgroup
"""

RETURN = r"""
memory_limit_mb:
  description: The tightest limit in MiB, 0 when no cgroup above has one.
  type: int
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule


def cgroup_limits(proc_cgroup="/proc/self/cgroup", root="/sys/fs/cgroup"):
    """Every memory limit in bytes on the way from this process's cgroups to the root."""
    try:
        with open(proc_cgroup, encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        controllers, path = line.split(":", 2)[1:]
        if controllers == "":
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root + "/memory", "memory.limit_in_bytes"
        else:
            continue
        while True:
            try:
                with open(os.path.join(base + path, name), encoding="ascii") as handle:
                    value = handle.read().strip()
                # v1 writes "no limit" as a huge number, v2 as "max".
                if value != "max" and int(value) < 1 << 50:
                    yield int(value)
            except (OSError, ValueError):
                pass
            if path in ("/", ""):
                break
            path = os.path.dirname(path)


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    limits = list(cgroup_limits())
    module.exit_json(changed=False, memory_limit_mb=min(limits) // (1 << 20) if limits else 0)


if __name__ == "__main__":
    main()
