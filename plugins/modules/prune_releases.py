#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Old releases, the venvs no kept release uses, and their bytecode: removed."""

from __future__ import annotations

DOCUMENTATION = r"""
module: prune_releases
short_description: Remove old Lernmanager releases, unused venvs and their bytecode
description:
  - Keeps the O(keep) newest releases below C(<root>/releases) and always the ones C(<root>/current)
    and C(<root>/previous) name; removes the others.
  - Removes every venv below C(<root>/venvs) that no kept release links to as its C(.venv).
  - Removes the bytecode of what it removes from O(prefix), which mirrors source paths.
  - Half-built releases (names starting with a dot) are left to the deploy that owns them.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  root:
    description: The app's root (C(lernmanager_root)), holding C(releases/), C(venvs/), C(current) and C(previous).
    type: path
    required: true
  prefix:
    description: The service's C(PYTHONPYCACHEPREFIX).
    type: path
    required: true
  keep:
    description: How many of the newest releases to keep (the live and the previous one are kept anyway).
    type: int
    required: true
attributes:
  check_mode:
    support: full
    details: Reports what would be removed; removes nothing.
"""

EXAMPLES = r"""
- name: Remove old releases, unused venvs and their bytecode
  lernmanager.deploy.prune_releases:
    root: /opt/lernmanager
    prefix: /var/cache/lernmanager/pycache
    keep: 3
"""

RETURN = r"""
removed_releases:
  description: Releases removed (in check mode, that would be).
  type: list
  elements: str
  returned: always
removed_venvs:
  description: Venvs removed (in check mode, that would be).
  type: list
  elements: str
  returned: always
kept:
  description: Releases kept.
  type: list
  elements: str
  returned: always
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule


def link_name(path):
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def plan(root, keep):
    """(releases to remove, venv paths to remove, releases kept)."""
    releases_dir = os.path.join(root, "releases")
    venvs_dir = os.path.join(root, "venvs")
    protected = {link_name(os.path.join(root, "current")), link_name(os.path.join(root, "previous"))} - {None}
    releases = sorted((n for n in os.listdir(releases_dir) if not n.startswith(".")),
                      key=lambda n: os.stat(os.path.join(releases_dir, n)).st_mtime, reverse=True)
    kept = set(releases[:keep]) | protected
    removed = [n for n in releases if n not in kept]
    used_venvs = {os.path.realpath(os.path.join(releases_dir, n, ".venv")) for n in kept}
    stale_venvs = [os.path.join(venvs_dir, n) for n in sorted(os.listdir(venvs_dir))
                   if os.path.join(venvs_dir, n) not in used_venvs] if os.path.isdir(venvs_dir) else []
    return removed, stale_venvs, sorted(kept)


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "prefix": {"type": "path", "required": True},
            "keep": {"type": "int", "required": True},
        },
        supports_check_mode=True,
    )
    root, prefix, keep = module.params["root"], module.params["prefix"], module.params["keep"]
    if keep < 1:
        module.fail_json(msg=f"keep must be at least 1 (got {keep})")
    if not os.path.isdir(os.path.join(root, "releases")):
        module.fail_json(msg=f"{root}/releases: no such directory")
    removed, stale_venvs, kept = plan(root, keep)
    if not module.check_mode:
        for path in [os.path.join(root, "releases", n) for n in removed] + stale_venvs:
            shutil.rmtree(path)
            # The prefix mirrors source paths: prefix + /opt/lernmanager/releases/<id>/...
            shutil.rmtree(prefix + path, ignore_errors=True)
    module.exit_json(changed=bool(removed or stale_venvs), removed_releases=removed,
                     removed_venvs=[os.path.basename(v) for v in stale_venvs], kept=kept)


if __name__ == "__main__":
    main()
