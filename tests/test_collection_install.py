"""The collection installs as users install collections, on a controller with no project of its own:
from the tarball `make build` makes and from its git repository (examples/requirements.yml), and its
playbooks then run by their collection names."""

import shutil
import subprocess

import pytest

from helpers import REPO, load_yaml, run_ansible

PLAYBOOKS = ["deploy", "rollback", "backup", "restore"]


def user_env(tmp_path, collections):
    """A controller with no ansible.cfg of this project: only the installed collection."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    return {"ANSIBLE_CONFIG": str(config), "ANSIBLE_COLLECTIONS_PATH": str(collections)}


def syntax_check(tmp_path, collections):
    for playbook in PLAYBOOKS:
        result = run_ansible("ansible-playbook", "--syntax-check", "-i", "localhost,", f"lernmanager.deploy.{playbook}",
                             cwd=tmp_path, env=user_env(tmp_path, collections))
        assert result.returncode == 0, (playbook, result.stdout + result.stderr)


def installed(collections):
    return collections / "ansible_collections" / "lernmanager" / "deploy"


def test_the_built_tarball_installs_and_its_playbooks_run_by_name(tmp_path):
    built = run_ansible("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path / "build"))
    assert built.returncode == 0, built.stderr
    (tarball,) = (tmp_path / "build").glob("lernmanager-deploy-*.tar.gz")
    result = run_ansible("ansible-galaxy", "collection", "install", str(tarball), "-p", str(tmp_path / "collections"),
                         cwd=tmp_path, env=user_env(tmp_path, tmp_path / "collections"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (installed(tmp_path / "collections") / "roles/lernmanager/tasks/main.yml").is_file()
    syntax_check(tmp_path, tmp_path / "collections")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_requirements_example_installs_from_a_git_repository(tmp_path):
    # The working tree's tracked files, committed in a repository of their own (what a push publishes).
    repo = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (REPO / name).is_file() and not (REPO / name).is_symlink():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    for step in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "published"]):
        subprocess.run([*git, *step], check=True, capture_output=True)

    example = load_yaml(REPO / "examples" / "requirements.yml")
    (entry,) = example["collections"]
    assert entry["type"] == "git" and entry["name"].endswith(".git") and entry["version"] == "main"
    entry["name"] = f"git+file://{repo}"
    requirements = tmp_path / "requirements.yml"
    requirements.write_text(f"collections: [{{name: '{entry['name']}', type: git, version: {entry['version']}}}]\n")
    result = run_ansible("ansible-galaxy", "collection", "install", "-r", str(requirements), "-p", str(tmp_path / "collections"),
                         cwd=tmp_path, env=user_env(tmp_path, tmp_path / "collections"))
    assert result.returncode == 0, result.stdout + result.stderr
    # Installed from git, it leaves the development files out as the tarball does.
    assert not (installed(tmp_path / "collections") / "molecule").exists()
    syntax_check(tmp_path, tmp_path / "collections")
