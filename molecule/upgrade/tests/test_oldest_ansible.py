"""`make molecule` runs this scenario with the oldest ansible-core meta/runtime.yml claims
(requirements-oldest.txt, OLDEST_SCENARIOS in the Makefile): every playbook run of it, Molecule's
and the tests', is the ansible-playbook found first on PATH. This checks that it was that one.

Reads nothing of the host: the controller's log of the playbook runs."""

import os
import subprocess

import pytest

EXPECTED = os.environ.get("LERNMANAGER_EXPECT_ANSIBLE_CORE")


@pytest.mark.skipif(not EXPECTED, reason="run by hand, not by `make molecule` with the oldest ansible-core")
def test_the_playbooks_ran_with_the_oldest_supported_ansible_core():
    version = subprocess.run(["ansible-playbook", "--version"], capture_output=True, text=True, check=True).stdout
    assert version.splitlines()[0].split("[core ")[1].rstrip("]") == EXPECTED, version
