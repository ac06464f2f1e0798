#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""A content hash of an app directory: the name of a release deployed from a path."""

from __future__ import annotations

DOCUMENTATION = r"""
module: content_hash
short_description: Hash an app directory by its content
description:
  - Hashes the relative path, the executable bit and the bytes of every regular file below O(path),
    in a stable order. Modification times do not count, so the same code always gives the same hash.
  - Skips what is not code, that is C(__pycache__), C(.git), C(data), C(instance), C(.venv), C(venv),
    C(.pytest_cache) and C(*.pyc). Never follows a link.
  - Only reads, so it runs in check mode too.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  path:
    description: The app directory (a Lernmanager checkout).
    type: path
    required: true
attributes:
  check_mode:
    support: full
    details: Reads only; the result is the same as in a normal run.
"""

EXAMPLES = r"""
- name: Hash the app directory on the controller
  lernmanager.deploy.content_hash:
    path: /home/admin/lernmanager
  delegate_to: localhost
  register: app_hash
"""

RETURN = r"""
sha256:
  description: The hex SHA-256 of the directory's content.
  type: str
  returned: success
files:
  description: How many files went into the hash.
  type: int
  returned: success
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.tree import content_hash


def main():
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True}}, supports_check_mode=True)
    path = module.params["path"]
    if not os.path.isdir(path):
        module.fail_json(msg=f"{path}: not a directory")
    sha256, files = content_hash(path)
    if files == 0:
        module.fail_json(msg=f"{path}: no files found")
    module.exit_json(changed=False, sha256=sha256, files=files)


if __name__ == "__main__":
    main()
