# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""What every module of this collection shares in its documentation: each adds how it supports check
mode (support and details), or takes READ_ONLY's."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

    # A module that only reads the host: the same in check mode as in a real run.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: It changes nothing; it runs the same in check mode.
"""
