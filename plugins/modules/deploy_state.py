#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The host's side of the deploy gate: what the last complete deploy left, and whether it is still so."""

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_state
short_description: Record a complete deploy, or look whether the host is still as it left it
description:
  - With O(state=recorded), writes O(path) (root's, mode 0600) with O(record) and a descriptor of every
    path that O(watch) names (type, mode, owner, group, and a file's SHA-256 or a link's target).
  - With O(state=read), returns the record and the same descriptors as they are now, the packages
    of O(packages) that are not installed, the units of O(units) that are not active, and the commit
    that O(git_repo) has for O(git_version) (C(git ls-remote), without fetching).
  - The lernmanager.deploy.deploy_gate action compares the two; this module only reads and writes.
  - Never follows a link; O(watch) names root's places only (the service user's data is not watched).
  - The fingerprint's digests (C(inputs), C(setup), each of C(parts)) are recorded keyed, as HMAC-SHA256
    with a random key of this host's (C(<path>.key), root's, mode 0600, made with the first record), so
    a record that leaks reveals no digest of a secret that could be guessed. With O(state=read) the
    module keys O(fingerprint) the same way for the comparison (RV(keyed)); the key never leaves the host.
version_added: 0.2.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  path:
    description: The record file, in a directory only root can write.
    type: path
    required: true
  state:
    description: V(read) looks; V(recorded) writes the record.
    type: str
    choices: [read, recorded]
    default: read
  watch:
    description:
      - Glob patterns of the paths a deploy writes. A pattern that ends in C(/) names a directory
        and everything below it.
    type: list
    elements: str
    default: []
  record:
    description: What to record with the descriptors (O(state=recorded)); its C(inputs), C(setup) and C(parts) are keyed.
    type: dict
    default: {}
  fingerprint:
    description: The gate's C(inputs), C(setup) and C(parts), to key for the comparison (O(state=read)).
    type: dict
    default: {}
  packages:
    description: Debian packages that must be installed (O(state=read)).
    type: list
    elements: str
    default: []
  units:
    description: systemd units that must be active (O(state=read)).
    type: list
    elements: str
    default: []
  git_repo:
    description: A repository whose commit for O(git_version) to look up (O(state=read)).
    type: str
    default: ""
  git_version:
    description: A branch or a tag of O(git_repo).
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    details: With O(state=read) it only reads; O(state=recorded) reports what it would write.
"""

EXAMPLES = r"""
- name: Record the complete deploy
  lernmanager.deploy.deploy_state:
    path: /opt/lernmanager/deployed.json
    state: recorded
    watch: [/etc/lernmanager/, /etc/nginx/sites-enabled/lernmanager]
    record: {inputs: 0123abcd, code: g-0123456789abcdef, release: g-0123456789abcdef-89abcdef}
"""

RETURN = r"""
stored:
  description: The record (with its descriptors under C(files)), or C(null) when there is none.
  type: dict
  returned: state is read
files:
  description: Per watched path, its descriptor now.
  type: dict
  returned: always
packages_missing:
  description: The packages of O(packages) that are not installed.
  type: list
  returned: state is read
units_inactive:
  description: The units of O(units) that are not active, each with its state (V(inactive), V(failed), ...).
  type: dict
  returned: state is read
git_commit:
  description: The commit O(git_repo) has for O(git_version), or C(null) when it names none or cannot be reached.
  type: str
  returned: state is read
keyed:
  description: O(fingerprint) keyed with the host's key, or C(null) when the host has none yet (a record from before keys, or none).
  type: dict
  returned: state is read
"""

import hashlib
import hmac
import json
import os
import stat
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.deploy_record import (
    expand, inactive_units, key_path, missing_packages, read_record)

GIT_TIMEOUT = 30


KEY_BYTES = 32
KEYED = ("inputs", "setup")


def read_key(record_path):
    """The host's key: root's own regular file, readable by root only; None otherwise."""
    try:
        handle = os.open(key_path(record_path), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # none, or a link
        return None
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        key = stream.read(KEY_BYTES + 1)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077 or len(key) != KEY_BYTES:
        return None
    return key


def new_key(record_path):
    """A fresh random key, written in place of whatever was there."""
    key = os.urandom(KEY_BYTES)
    write_replacing(key_path(record_path), key)
    return key


def keyed(key, fingerprint):
    """The fingerprint with its digests keyed (HMAC-SHA256); other entries as they are."""
    def mac(text):
        return hmac.new(key, str(text).encode(), hashlib.sha256).hexdigest()
    out = dict(fingerprint)
    out.update({name: mac(fingerprint[name]) for name in KEYED if name in fingerprint})
    if isinstance(fingerprint.get("parts"), dict):
        out["parts"] = {name: mac(value) for name, value in fingerprint["parts"].items()}
    return out


def write_replacing(path, data):
    """Root's 0600 file at path, written beside it and renamed over it: never half-written."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def remote_commit(repo, version):
    """The commit of branch or tag `version` in `repo`; None when it has none (a commit id) or is unreachable."""
    if not repo or not version:
        return None
    try:
        run = subprocess.run(["git", "ls-remote", "--", repo, version, version + "^{}"], capture_output=True, text=True,
                             timeout=GIT_TIMEOUT, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    refs = dict(reversed(line.split("\t", 1)) for line in run.stdout.splitlines() if "\t" in line)
    # An annotated tag's commit is its peeled ref (^{}); a branch or a light tag names it directly.
    for ref in (f"refs/tags/{version}^{{}}", f"refs/tags/{version}", f"refs/heads/{version}", version):
        if ref in refs:
            return refs[ref]
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["read", "recorded"], "default": "read"},
            "watch": {"type": "list", "elements": "str", "default": []},
            "record": {"type": "dict", "default": {}},
            "packages": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "git_repo": {"type": "str", "default": "", "no_log": True},  # may hold a token
            "git_version": {"type": "str", "default": ""},
            "fingerprint": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    params = module.params
    files = expand(params["watch"], params["path"])
    key = read_key(params["path"])
    if params["state"] == "read":
        module.exit_json(changed=False, stored=read_record(params["path"]), files=files,
                         packages_missing=missing_packages(params["packages"]),
                         units_inactive=inactive_units(params["units"]),
                         git_commit=remote_commit(params["git_repo"], params["git_version"]),
                         keyed=keyed(key, params["fingerprint"]) if key else None)
    if key is None:
        # Check mode writes nothing: keyed with a key of the moment, the record reads as changed.
        key = os.urandom(KEY_BYTES) if module.check_mode else new_key(params["path"])
    content = json.dumps(dict(keyed(key, params["record"]), files=files), indent=1, sort_keys=True) + "\n"
    try:
        with open(params["path"], encoding="utf-8") as stream:
            changed = stream.read() != content
    except FileNotFoundError:
        changed = True
    if changed and not module.check_mode:
        write_replacing(params["path"], content.encode())
    module.exit_json(changed=changed, files=files)


if __name__ == "__main__":
    main()
