#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The backup sets in a host's restic repository: which one, and putting one back."""

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_set
short_description: Find a Lernmanager backup set in the restic repository, or restore one
description:
  - The backup set is what C(lernmanager-backup.service) writes nightly (the role's README has
    the details under "Backups and recovery") - the database snapshot, its migration record,
    root's config files, the live release, the uploads and reports, as one tar stream in a
    restic snapshot.
  - V(find) names the snapshot O(snapshot) (V(latest), or an id) of O(host), with its time, age
    and release.
  - V(restore) reads that snapshot (C(restic dump)) and puts it back. The database is checked
    (C(integrity_check)) before anything changes; then the secret key, the generated admin
    password and an adopted install's settings (root's, in O(config_dir)); the database and its
    record (as O(user), SQLite's backup API); the uploads and reports (as O(user), new files
    only). The service must be stopped.
  - The repository, its password and credentials come from O(settings), which the role writes.
    A password that does not open the repository fails with that said, and nothing changed.
  - Root never writes a name in the service's directories; it checks every member of the set
    (directories and regular files under the expected names) before the service user gets it.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [find, restore]
  settings:
    description: The backup settings the role writes (repository, password file, credentials), the
      instance's C(<config dir>/backup/config.json).
    type: path
    required: true
  snapshot:
    description: V(latest), or a snapshot id (see C(lernmanager-backup restic snapshots)).
    type: str
    default: latest
  host:
    description: Only snapshots of this host (the inventory name it was backed up under); empty means any.
    type: str
    default: ""
  user:
    description: (V(restore)) The service user.
    type: str
  database:
    description: (V(restore)) The live database's path.
    type: path
  instance_dir:
    description: (V(restore)) The shared C(instance/) directory (C(uploads/), C(reports/)).
    type: path
  config_dir:
    description: (V(restore)) Root's configuration directory (C(lernmanager_config_dir)).
    type: path
  staging_dir:
    description: (V(restore)) A root-only directory for the database on its way (the backups directory).
    type: path
  replace:
    description: (V(restore)) Remove the uploads and reports the host has first; without it, a file
      that exists fails the restore.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: V(find) runs as always; V(restore) finds the snapshot and changes nothing.
"""

EXAMPLES = r"""
- name: Find the newest set of this host
  lernmanager.deploy.backup_set:
    action: find
    settings: /etc/lernmanager/backup/config.json
    host: "{{ inventory_hostname }}"
  register: found

- name: Put it back (service stopped)
  lernmanager.deploy.backup_set:
    action: restore
    settings: /etc/lernmanager/backup/config.json
    snapshot: "{{ found.snapshot.full_id }}"
    user: lernmanager
    database: /opt/lernmanager/shared/data/mbi_tracker.db
    instance_dir: /opt/lernmanager/shared/instance
    config_dir: /etc/lernmanager
    staging_dir: /opt/lernmanager/shared/backups
"""

RETURN = r"""
snapshot:
  description: The snapshot (id, full_id, time in UTC, age_seconds, host, release); null when none matches.
  type: dict
  returned: always
restored:
  description: (V(restore)) What was put back (host, release, config, files, file_bytes, migrations_record).
  type: dict
  returned: when a set was restored
"""

import sqlite3

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils import restic
from ansible_collections.lernmanager.deploy.plugins.module_utils.backup_set import SET_NAME, restore_set
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError, ServiceUser


def restore(settings, snapshot, user, database, instance_dir, config_dir, staging_dir, replace):
    return restic.restore_from_dump(
        settings, snapshot, "/" + SET_NAME,
        lambda stream: restore_set(stream, user, database, instance_dir, config_dir, staging_dir, replace))


def main():
    needed = ("user", "database", "instance_dir", "config_dir", "staging_dir")
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": ["find", "restore"]},
            "settings": {"type": "path", "required": True},
            "snapshot": {"type": "str", "default": "latest"},
            "host": {"type": "str", "default": ""},
            "user": {"type": "str"},
            "database": {"type": "path"},
            "instance_dir": {"type": "path"},
            "config_dir": {"type": "path"},
            "staging_dir": {"type": "path"},
            "replace": {"type": "bool", "default": False},
        },
        required_if=[("action", "restore", needed)],
        supports_check_mode=True,
    )
    p = module.params
    try:
        settings = restic.load_settings(p["settings"])
        snapshot = restic.find_snapshot(settings, p["snapshot"], host=p["host"] or None)
        if p["action"] == "find":
            module.exit_json(changed=False, snapshot=snapshot)
        if snapshot is None:
            raise LernmanagerError(f"no backup set {p['snapshot']}{' of ' + p['host'] if p['host'] else ''} in "
                                   f"{settings['environment']['RESTIC_REPOSITORY']}; nothing was changed")
        if module.check_mode:
            module.exit_json(changed=True, snapshot=snapshot)
        restored = restore(settings, snapshot["full_id"], ServiceUser(p["user"]),
                           *(p[name] for name in needed[1:]), p["replace"])
    except (LernmanagerError, OSError, sqlite3.Error) as error:
        module.fail_json(msg=str(error))
    module.exit_json(changed=True, snapshot=snapshot, restored=restored)


if __name__ == "__main__":
    main()
