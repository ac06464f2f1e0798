# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The role's variables that are set but that the role does not know: a typo such as
lernmanager_server_nmae would otherwise be ignored, and the school served under the default."""

from __future__ import annotations

import difflib

from ansible.errors import AnsibleFilterError


def unknown_variables(names, known, prefix=""):
    """Each of NAMES not in KNOWN, with the nearest known name when there is one, sorted. Names
    are compared without PREFIX: a prefix they all share would make every pair look alike."""
    if not isinstance(names, (list, tuple)) or not isinstance(known, (list, tuple, dict)):
        raise AnsibleFilterError("unknown_variables: give a list of names and a list of known names")
    if not isinstance(prefix, str):
        raise AnsibleFilterError(f"unknown_variables: prefix must be a string (got {prefix!r})")
    stems = {name.removeprefix(prefix): name for name in known}
    unknown = []
    for name in sorted(set(names) - set(known)):
        near = difflib.get_close_matches(name.removeprefix(prefix), sorted(stems), n=1, cutoff=0.75)
        unknown.append(f"{name} (did you mean {stems[near[0]]}?)" if near else name)
    return unknown


class FilterModule:
    def filters(self):
        return {"unknown_variables": unknown_variables}
