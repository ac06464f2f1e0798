"""The quick start's connection settings for a real VPS (pipelining, become; examples/inventory.yml)
are the ones molecule/controller deploys over SSH with (it copies the shipped examples and edits
only the address in inventory.yml); and every Molecule scenario runs in one of `make molecule`'s
lanes. The examples themselves: tests/test_examples.py."""

import re

from helpers import REPO, load_yaml


def test_the_ssh_scenario_uses_the_examples_connection_settings():
    """molecule/controller deploys over SSH with the settings the quick start's inventory gives."""
    script = (REPO / "molecule" / "controller" / "templates" / "quickstart.j2").read_text(encoding="utf-8")
    example = load_yaml(REPO / "examples" / "inventory.yml")["lernmanager"]["vars"]
    for setting in ("ansible_become", "ansible_pipelining"):
        assert example[setting] is True, setting
    assert "cp -r ~/.ansible/collections/ansible_collections/lernmanager/deploy/examples ~/schule" in script
    inventory_edits = [line for line in script.splitlines() if re.search(r"\binventory\.yml$", line)]
    assert inventory_edits == ["sed -i 's/203\\.0\\.113\\.10/{{ __vps_address }}/' inventory.yml"], inventory_edits


def test_every_scenario_runs_in_one_lane():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    lanes = [re.search(rf"^{lane} \?= (.*)$", makefile, re.M).group(1).split() for lane in ("LANE_CORE0", "LANE_CORE1")]
    scenarios = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
    assert sorted(["default"] + lanes[0] + lanes[1]) == scenarios
