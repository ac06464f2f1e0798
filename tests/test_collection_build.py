"""`ansible-galaxy collection build` ships the role and playbooks, and no development files."""

import tarfile

import pytest

from helpers import run_ansible


@pytest.fixture(scope="module")
def tarball_members(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    result = run_ansible("ansible-galaxy", "collection", "build", "--force", "--output-path", str(out))
    assert result.returncode == 0, result.stderr
    (tarball,) = out.glob("lernmanager-deploy-*.tar.gz")
    with tarfile.open(tarball) as tar:
        return {m.name for m in tar.getmembers()}


@pytest.mark.parametrize(
    "path",
    [
        "MANIFEST.json",
        "meta/runtime.yml",
        "README.md",
        "LICENSE",
        "roles/lernmanager/tasks/main.yml",
        "roles/lernmanager/tasks/steps/switch/switch_release.yml",
        "roles/lernmanager/tasks/source/git.yml",
        "roles/lernmanager/meta/argument_specs.yml",
        "roles/lernmanager/defaults/main.yml",
        "playbooks/deploy.yml",
    ],
)
def test_tarball_contains(tarball_members, path):
    assert path in tarball_members


@pytest.mark.parametrize(
    "top", ["tests", "molecule", ".venv", ".venv-oldest", ".github", "changelogs/fragments", "bench", "scripts", "collections", ".ci", ".git", ".build", "Makefile"]
)
def test_tarball_excludes_development_files(tarball_members, top):
    offending = [m for m in tarball_members if m == top or m.startswith(top + "/")]
    assert offending == []


def test_tarball_has_no_bytecode(tarball_members):
    assert [m for m in tarball_members if "__pycache__" in m or m.endswith(".pyc")] == []
