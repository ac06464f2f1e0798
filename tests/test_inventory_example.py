"""inventory.example, as Ansible reads it: the connection settings it documents as the default for a
real VPS (pipelining, become), the same ones molecule/controller deploys over SSH with; and every
Molecule scenario runs in one of `make molecule`'s lanes."""

import json
import re

from helpers import REPO, run_ansible


def inventory_vars(path):
    run = run_ansible("ansible-inventory", "-i", str(path), "--list")
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    return listed["_meta"]["hostvars"]


def test_the_example_pipelines_and_becomes_root_on_every_host():
    hosts = inventory_vars(REPO / "inventory.example")
    assert hosts, "the example names hosts"
    for name, variables in hosts.items():
        # An INI file's values are strings; Ansible reads them as booleans where it needs one.
        assert str(variables["ansible_pipelining"]).lower() == str(variables["ansible_become"]).lower() == "true", name


def test_the_ssh_scenario_uses_the_examples_connection_settings():
    template = (REPO / "molecule" / "controller" / "templates" / "inventory.j2").read_text(encoding="utf-8")
    example = (REPO / "inventory.example").read_text(encoding="utf-8")
    for setting in ("ansible_become=true", "ansible_pipelining=true"):
        assert re.search(rf"^{setting}$", example, re.M) and re.search(rf"^{setting}$", template, re.M), setting


def test_every_scenario_runs_in_one_lane():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    lanes = [re.search(rf"^{lane} \?= (.*)$", makefile, re.M).group(1).split() for lane in ("LANE_CORE0", "LANE_CORE1")]
    scenarios = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
    assert sorted(["default"] + lanes[0] + lanes[1]) == scenarios
