"""The GitHub workflow for users' forks (.github/workflows/ci.yml): valid for actionlint, and it runs
what the project's own CI and README run (the same make targets), on both Debian releases."""

import re
import subprocess

import pytest

from helpers import BIN, REPO, load_yaml

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow():
    return load_yaml(WORKFLOW)


def runs(job):
    return " ".join(" ".join(step["run"].split()) for step in job["steps"] if "run" in step)


def test_actionlint_finds_nothing():
    result = subprocess.run([str(BIN / "actionlint"), "-no-color", str(WORKFLOW)], capture_output=True, text=True,
                            cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_push_runs_lint_and_the_fast_tests(workflow):
    triggers = workflow["on"]  # quoted in the file: YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    assert "make lint unit" in runs(workflow["jobs"]["lint-unit"])


def test_the_default_scenario_runs_on_each_debian_release(workflow):
    job = workflow["jobs"]["default"]
    assert job["strategy"]["matrix"]["debian"] == ["12", "13"]
    command = runs(job)
    assert "make molecule SCENARIOS=default" in command
    # The matrix value picks one of the scenario's platforms, by the name molecule.yml gives it.
    platforms = [p["name"] for p in load_yaml(REPO / "molecule" / "default" / "molecule.yml")["platforms"]]
    for debian in job["strategy"]["matrix"]["debian"]:
        chosen = re.search(r"--platform-name ([^\"]+)\"", command).group(1).replace("${{ matrix.debian }}", debian)
        assert chosen in platforms


def test_the_nightly_run_is_the_whole_test_command(workflow):
    job = workflow["jobs"]["everything"]
    assert "schedule" in job["if"]
    assert re.search(r"\bmake test\b", runs(job))
    # ...which is what .ci/run runs, and the README gives.
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_registry_images_come_from_the_variables_the_test_bed_reads(workflow):
    testbed = (REPO / "scripts" / "testbed.sh").read_text()
    for name in ("LERNMANAGER_IMAGE_DEBIAN12", "LERNMANAGER_IMAGE_DEBIAN13"):
        assert workflow["env"][name] == f"${{{{ vars.{name} }}}}"
        assert f"${{{name}:-" in testbed
