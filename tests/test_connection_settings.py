"""The quick start's connection settings for a real VPS (pipelining, become; examples/inventory.yml)
are the ones molecule/controller deploys over SSH with; and every Molecule scenario runs in one of
`make molecule`'s lanes. The examples themselves: tests/test_examples.py."""

import re

from helpers import REPO, load_yaml


def test_the_ssh_scenario_uses_the_examples_connection_settings():
    """molecule/controller deploys over SSH with the settings the quick start's inventory gives."""
    template = (REPO / "molecule" / "controller" / "templates" / "inventory.j2").read_text(encoding="utf-8")
    example = load_yaml(REPO / "examples" / "inventory.yml")["lernmanager"]["vars"]
    for setting in ("ansible_become", "ansible_pipelining"):
        assert example[setting] is True, setting
        assert re.search(rf"^{setting}=true$", template, re.M), setting


def test_every_scenario_runs_in_one_lane():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    lanes = [re.search(rf"^{lane} \?= (.*)$", makefile, re.M).group(1).split() for lane in ("LANE_CORE0", "LANE_CORE1")]
    scenarios = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
    assert sorted(["default"] + lanes[0] + lanes[1]) == scenarios
