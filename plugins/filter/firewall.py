# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""What differs between the live nftables table inet lernmanager and what the role loads: read
back after every load (tasks/steps/host/firewall.yml), so that a ruleset that did not take, or that
something else changed, fails the run instead of passing silently."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError


def firewall_problems(listing, ports):
    """Sentences for what `nft -j list table inet lernmanager` (its stdout) lacks: the table, an input
    chain hooked with policy drop, and each of ports in the set tcp_in. Empty when all is live."""
    if not str(listing).strip():
        return ["the table inet lernmanager is not loaded"]
    try:
        objects = json.loads(listing)["nftables"]
    except (ValueError, KeyError, TypeError) as error:
        raise AnsibleFilterError(f"firewall_problems: not the JSON of `nft -j list table`: {error}") from None
    chains = [entry["chain"] for entry in objects if "chain" in entry]
    sets = {entry["set"]["name"]: entry["set"] for entry in objects if "set" in entry}
    problems = []
    inputs = [chain for chain in chains if chain.get("name") == "input"]
    if not inputs or inputs[0].get("hook") != "input" or inputs[0].get("policy") != "drop":
        problems.append(f"the input chain is not hooked with policy drop ({inputs[0] if inputs else 'none'})")
    elements = sets.get("tcp_in", {}).get("elem", [])
    live = {element for element in (elements if isinstance(elements, list) else [elements]) if isinstance(element, int)}
    missing = sorted({int(port) for port in ports} - live)
    if missing:
        problems.append(f"the ports {missing} are not in the set tcp_in (it holds {sorted(live)})")
    return problems


class FilterModule:
    def filters(self):
        return {"firewall_problems": firewall_problems}
