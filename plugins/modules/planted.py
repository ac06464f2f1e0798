#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The links and special files planted in the app's data/, listed, or moved aside by root."""

from __future__ import annotations

DOCUMENTATION = r"""
module: planted
short_description: Find links and special files planted in the app's data directory, and move them aside
description:
  - The app makes only regular files and directories in its data directory (the database, its
    journals, the migration record). A link or a special file there was planted by whoever used
    the app's account. The role's steps never follow one; the deploy warns about each, and stops
    only at a planted migration record (it cannot tell which migrations ran).
  - Lists them (name, kind, where a link points) without following any. With O(quarantine=true)
    moves them into a new root-only directory under O(quarantine_dir) (C(<time>/), described in
    C(<time>.json) beside it) so that nothing is lost for the admin who looks into it.
  - A rename moves the name, never what a link points to. Across file systems (a data directory
    on a mount of its own) an entry cannot be moved; it is unlinked, and C(<time>.json) keeps what it was.
version_added: 0.2.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
attributes:
  check_mode:
    support: full
    details: Lists what is planted and reports a change where O(quarantine=true) would move it; moves nothing.
options:
  data_dir:
    description: The app's data directory (C(<root>/shared/data)). Missing means nothing is planted.
    type: path
    required: true
  quarantine:
    description: Whether to move what is planted aside (V(false) only lists it).
    type: bool
    default: false
  quarantine_dir:
    description: The root-only directory the entries are moved into (created C(0700)); required with O(quarantine=true).
    type: path
  live_release:
    description:
      - The release that serves. When the migration record (C(migrations_done.txt)) was among the
        entries moved aside, a new one lists this release's C(migrate/migrate_*.py), since a release serves
        only after all of them ran. Without it, the next deploy finds no record and tries every
        migration again (on a copy of the database first). Empty on a host where nothing serves yet.
      - A database that a rollback left migrated beyond this release has more migrations than the
        new record lists; the trial on a copy catches one that cannot run twice.
    type: path
    default: ""
  owner:
    description: The service user, owner of the new record; required with O(live_release).
    type: str
"""

EXAMPLES = r"""
- name: Move what was planted in data/ aside
  lernmanager.deploy.planted:
    data_dir: /opt/lernmanager/shared/data
    quarantine: true
    quarantine_dir: /opt/lernmanager/shared/quarantine
  register: __planted
"""

RETURN = r"""
planted:
  description: The planted entries found, each with C(name), C(kind) (V(link), V(fifo), V(socket), a device) and C(target) (a link's).
  type: list
  elements: dict
  returned: always
  sample: [{name: migrations_done.txt, kind: link, target: /etc/shadow}]
description:
  description: The entries for a message (empty when there are none).
  type: str
  returned: always
  sample: "'migrations_done.txt' (a link to '/etc/shadow')"
quarantined_to:
  description: The directory they were moved into (empty when nothing moved, and in check mode).
  type: str
  returned: always
record_written:
  description: The migrations the new record lists, when one was written (O(live_release)); else empty.
  type: list
  elements: str
  returned: always
"""

import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.app_runtime import RECORD_NAME, migration_scripts
from ansible_collections.lernmanager.deploy.plugins.module_utils.planted import (
    describe, open_directory, planted_entries, quarantine, write_new_record)


def main():
    module = AnsibleModule(
        argument_spec={
            "data_dir": {"type": "path", "required": True},
            "quarantine": {"type": "bool", "default": False},
            "quarantine_dir": {"type": "path"},
            "live_release": {"type": "path", "default": ""},
            "owner": {"type": "str"},
        },
        required_if=[("quarantine", True, ("quarantine_dir",))],
        supports_check_mode=True,
    )
    params = module.params
    if params["live_release"] and not params["owner"]:
        module.fail_json(msg="owner (the service user) is required with live_release")
    try:
        data_fd = open_directory(params["data_dir"])
    except FileNotFoundError:
        module.exit_json(changed=False, planted=[], description="", quarantined_to="", record_written=[])
    except OSError as error:
        module.fail_json(msg=f"{params['data_dir']} is not a directory (a link?): {error.strerror}")
    record, moved_to = [], ""
    try:
        entries = planted_entries(data_fd)
        if entries and params["quarantine"] and not module.check_mode:
            moved_to = quarantine(data_fd, entries, params["quarantine_dir"])
            record_moved = any(entry["name"] == RECORD_NAME for entry in entries)
            if record_moved and params["live_release"] and os.path.isdir(params["live_release"]):
                account = pwd.getpwnam(params["owner"])
                scripts = migration_scripts(params["live_release"])
                if write_new_record(data_fd, RECORD_NAME, scripts, account.pw_uid, account.pw_gid):
                    record = scripts
    except (OSError, KeyError) as error:
        module.fail_json(msg=f"cannot move what was planted in {params['data_dir']} aside: {error}")
    finally:
        os.close(data_fd)
    module.exit_json(changed=bool(entries and params["quarantine"]), planted=entries,
                     description=describe(entries), quarantined_to=moved_to or "", record_written=record)


if __name__ == "__main__":
    main()
