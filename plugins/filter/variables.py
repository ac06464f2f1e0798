# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The role's variables that are set but that the role does not know: a typo such as
lernmanager_server_nmae would otherwise be ignored, and the school served under the default."""

from __future__ import annotations

import difflib

from ansible.errors import AnsibleFilterError


def unknown_variables(names, known):
    """Each of NAMES not in KNOWN, with the nearest known name when there is one, in order."""
    if not isinstance(names, (list, tuple)) or not isinstance(known, (list, tuple, dict)):
        raise AnsibleFilterError("unknown_variables: give a list of names and a list of known names")
    known = sorted(known)
    unknown = []
    for name in sorted(set(names) - set(known)):
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        unknown.append(f"{name} (did you mean {near[0]}?)" if near else name)
    return unknown


class FilterModule:
    def filters(self):
        return {"unknown_variables": unknown_variables}
