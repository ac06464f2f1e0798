"""The oldest ansible-core that meta/runtime.yml claims is the one `make oldest` and the scenarios of
OLDEST_SCENARIOS run with (requirements-oldest.txt): the claim stays tested."""

import re

from helpers import REPO, load_yaml


def pinned(name):
    text = (REPO / "requirements-oldest.txt").read_text()
    return re.search(rf"^{re.escape(name)}==(\S+)$", text, re.M).group(1)


def test_the_floor_claimed_is_the_version_tested():
    floor = load_yaml(REPO / "meta" / "runtime.yml")["requires_ansible"]
    assert re.fullmatch(r">=\d+\.\d+\.\d+", floor), floor
    major_minor = floor[2:].rsplit(".", 1)[0]
    assert pinned("ansible-core").startswith(major_minor + "."), (floor, pinned("ansible-core"))


def test_the_oldest_venv_runs_a_scenario_and_the_bad_inputs():
    makefile = (REPO / "Makefile").read_text()
    scenarios = re.search(r"^export OLDEST_SCENARIOS \?= (.+)$", makefile, re.M).group(1).split()
    assert scenarios and all((REPO / "molecule" / name / "molecule.yml").is_file() for name in scenarios)
    for name in scenarios:
        assert (REPO / "molecule" / name / "tests" / "test_oldest_ansible.py").is_file(), name
    assert "tests/test_bad_input.py" in re.search(r"^oldest:.*?(?=^\S)", makefile, re.M | re.S).group(0)
