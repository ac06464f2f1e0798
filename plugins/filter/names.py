# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Whether a site's name can be reached from the internet: a public site never keeps the app's
admin/admin, whether or not it has TLS."""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

# Names no public DNS answers for (RFC 2606, 6761, 6762, 8375 and the common private ones).
PRIVATE_SUFFIXES = ("test", "example", "invalid", "localhost", "local", "lan", "internal", "home.arpa")
_DNS_NAME = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")


def public_name(name):
    """True when NAME (a site's server name) may be reachable from the internet: a global IP
    address, or a dotted DNS name outside the private suffixes. A bare host name ("debian"),
    localhost, a private or loopback address, or a .test name is not."""
    if not isinstance(name, str):
        raise AnsibleFilterError(f"public_name: expected a host name, got {type(name).__name__}")
    name = name.strip().lower().rstrip(".")
    try:
        return ipaddress.ip_address(name.strip("[]")).is_global
    except ValueError:
        pass
    if not _DNS_NAME.match(name):
        return False
    return not any(name == suffix or name.endswith("." + suffix) for suffix in PRIVATE_SUFFIXES)


class FilterModule:
    def filters(self):
        return {"public_name": public_name}
