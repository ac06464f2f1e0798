#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Precompressed copies of static files, for nginx's gzip_static and brotli_static."""

from __future__ import annotations

DOCUMENTATION = r"""
module: precompress
short_description: Write .gz (and .br) copies beside static files
description:
  - For every compressible file (CSS, JavaScript, SVG, JSON, text, HTML, XML, source maps, icons,
    fonts) of at least 256 bytes below O(path), writes C(<file>.gz) at the best level, and
    C(<file>.br) with O(brotli), unless the copy exists.
  - The same file always gives the same bytes (the gzip header holds no time), and each copy gets
    its file's modification time, so nginx's C(ETag) and C(Last-Modified) match.
  - Meant for a release directory before it goes live; links are never followed. A missing O(path)
    (an app without static files) is no error; nothing is written.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  path:
    description: The static files' directory.
    type: path
    required: true
  brotli:
    description: Also write C(.br) copies, with the C(brotli) command (Debian package C(brotli)).
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Counts the copies that would be written; writes nothing.
"""

EXAMPLES = r"""
- name: Precompress the static files for nginx
  lernmanager.deploy.precompress:
    path: /opt/lernmanager/releases/.g-1a2b3c.partial/static
    brotli: true
"""

RETURN = r"""
written:
  description: Copies written (in check mode, copies that would be).
  type: int
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.precompress import missing_copies, write_copies


def main():
    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}, "brotli": {"type": "bool", "default": False}},
        supports_check_mode=True,
    )
    directory = module.params["path"]
    if not os.path.isdir(directory):
        module.exit_json(changed=False, written=0, msg=f"{directory}: no such directory, nothing to compress")
    # In check mode the brotli package may not be installed yet.
    brotli = module.params["brotli"] and module.get_bin_path("brotli", required=not module.check_mode)
    todo = list(missing_copies(directory, [".gz", ".br"] if module.params["brotli"] else [".gz"]))
    if not module.check_mode:
        write_copies(module, todo, brotli)
    module.exit_json(changed=bool(todo), written=len(todo))


if __name__ == "__main__":
    main()
