#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""How a host is doing, in one call: what serves, health, the unit, the last backup, the
certificate, free disk and memory, a pending reboot, the alerts. Reads only (playbooks/status.yml).
The reading itself is module_utils/host_health.py, which the host's daily self-check shares."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_status
short_description: Report how a Lernmanager host is doing, and what needs an admin
description:
  - Reads the release that serves and since when (the role's C(live.json), written after each
    health-checked start), the C(previous) release, the answer of C(/login) through nginx, the
    service unit's state, memory and restarts, the newest snapshot of the backup set, the last
    restore drill's verdict, the database's and its WAL's size with the last database care, the days
    until the site's certificate expires, the free space of the file systems of O(disks) and the
    host's available memory, a pending reboot (C(/run/reboot-required)), the links and special files
    planted in the app's data directory, the daily self-check's last verdict and an alert that could
    not be sent (O(notify_state)), and what differs from the last complete deploy (O(deploy_record)).
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
    description: >-
      A file system with less free space (in percent of its size) is a warning; so is less available
      memory than this share of the host's.
    type: int
    default: 15
  notify_state:
    description: >-
      The file in which the host's alerts keep their last attempts and the daily self-check its last
      verdict (the role's C(/var/lib/<instance>-notify/state.json)); empty when there is none.
    type: path
    default: ""
  deploy_record:
    description: >-
      The record of the last complete deploy (the role's C(<root>/deployed.json), see
      M(lernmanager.deploy.deploy_state)); empty for no look at drift.
    type: path
    default: ""
  watch:
    description: The paths the record describes, as M(lernmanager.deploy.deploy_state)'s O(lernmanager.deploy.deploy_state#module:watch).
    type: list
    elements: str
    default: []
  packages:
    description: Debian packages the deploy installed, each a difference when it is not installed now.
    type: list
    elements: str
    default: []
  units:
    description: Units the deploy left active, each a difference when it is not active now.
    type: list
    elements: str
    default: []
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
drill:
  description: >-
    The last restore drill (C(time) as seconds since the epoch, C(snapshot), C(ok), C(problems), C(tables),
    C(rows), C(files), C(seconds)), null before the first; a failed one is a problem.
  type: dict
  returned: when O(backup_settings) is given
database:
  description: >-
    The live database's C(bytes) and C(wal_bytes) (root only stats the files), and C(care), the last database
    care (C(time), C(ok), C(quick_check), C(vacuumed), C(before) and C(after) with C(bytes), C(pages),
    C(free_pages) and C(wal_bytes), C(snapshot) when a set was taken before a VACUUM), null before the first.
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
memory:
  description: The host's C(total_mib), C(available_mib) and C(available_percent) (C(MemAvailable) of C(/proc/meminfo)).
  type: dict
  returned: always
journal_mib:
  description: The space the host's journal takes (C(journalctl --disk-usage)), in MiB; null when it cannot tell.
  type: int
  returned: always
reboot:
  description: C(pending) (C(/run/reboot-required) exists), C(since) (UTC) and C(age_seconds) when it does.
  type: dict
  returned: always
drift:
  description: >-
    What differs from the last complete deploy, one line each, never a file's content
    (C(/etc/nginx/sites-available/lernmanager: content), C(/etc/lernmanager/lernmanager.env: mode 640 -> 644),
    C(package nginx is not installed), C(unit nginx.service is inactive)); null when the host has no record.
  type: list
  elements: str
  returned: when O(deploy_record) is given
alerts:
  description: >-
    The daily self-check's last run (C(check): C(time), C(problems)) and the last ping or alert that
    could not be sent (C(last_failed): C(time), C(errors)), from O(notify_state).
  type: dict
  returned: when O(notify_state) is given
planted:
  description: >-
    The links and special files in C(<root>/shared/data) (C(name), C(kind), C(target)): the app makes
    none there, so each is a problem (see the module lernmanager.deploy.planted).
  type: list
  elements: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.host_health import collect, judge, one_line


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
            "notify_state": {"type": "path", "default": ""},
            "deploy_record": {"type": "path", "default": ""},
            "watch": {"type": "list", "elements": "str", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    status = collect(module.params)
    status["problems"] = judge(status, module.params)
    for problem in status["problems"]:
        module.warn(problem)
    status["line"] = one_line(status)
    module.exit_json(changed=False, **status)


if __name__ == "__main__":
    main()
