"""`ansible-galaxy collection build` ships the role and playbooks, and no development files."""

import re
import tarfile

import pytest

from helpers import REPO, run_ansible


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
        "inventory.example",
        "examples/ansible.cfg",
        "examples/inventory.yml",
        "examples/requirements.yml",
        "examples/group_vars/lernmanager/main.yml",
        "examples/group_vars/lernmanager/vault.yml.example",
    ],
)
def test_tarball_contains(tarball_members, path):
    assert path in tarball_members


@pytest.mark.parametrize(
    "top", ["tests", "molecule", ".venv", ".venv-oldest", ".github", "changelogs/fragments", "bench", "scripts", "collections", ".ci", ".git", ".build", "Makefile",
            "CONTRIBUTING.md"]
)
def test_tarball_excludes_development_files(tarball_members, top):
    offending = [m for m in tarball_members if m == top or m.startswith(top + "/")]
    assert offending == []


def test_tarball_has_no_bytecode(tarball_members):
    assert [m for m in tarball_members if "__pycache__" in m or m.endswith(".pyc")] == []


# Docs that ship, and the top-level paths that do not: a reader of the installed collection has no
# molecule/ or bench/. Evidence kept there is linked to the repository instead.
SHIPPED_DOCS = ["README.md", "roles/lernmanager/README.md", "inventory.example", "examples/group_vars/lernmanager/main.yml"]
NOT_SHIPPED = ("bench/", "tests/", "molecule/", "scripts/", "docs/", "changelogs/fragments", ".github/", "Makefile",
               "CONTRIBUTING.md")
REPOSITORY_LINK = re.compile(r"\[[^\]]*\]\(https://github\.com/lernmanager/ansible-collection-deploy/[^)]*\)")


def shipped_doc_text(path):
    text = REPOSITORY_LINK.sub("(linked)", (REPO / path).read_text(encoding="utf-8"))
    if path == "README.md":  # its last sections are for developers, with a clone of the repository
        text = text.split("\n## Developing this collection", 1)[0]
    return text


@pytest.mark.parametrize("path", SHIPPED_DOCS)
def test_shipped_docs_name_no_file_the_collection_does_not_ship(path):
    text = shipped_doc_text(path)
    named = [token for token in re.findall(r"`([^`\n]+)`", text) if token.startswith(NOT_SHIPPED)]
    assert named == [], f"{path} names what a user of the installed collection does not have"
    targets = re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(encoding="utf-8"), re.M)
    assert not re.search(rf"\bmake ({'|'.join(targets)})\b", text), f"{path} tells a user to run make"


@pytest.mark.parametrize("path", SHIPPED_DOCS)
def test_the_files_shipped_docs_name_are_in_the_tarball(tarball_members, path):
    """Paths from the collection's top (roles/..., playbooks/...) and, in the role's README, from the role's."""
    role = "roles/lernmanager/" if path.startswith("roles/lernmanager/") else None
    tops = "roles|playbooks|plugins|examples|meta" + ("|tasks|templates|files|defaults|vars|handlers" if role else "")
    named = {token.rstrip(".,:;") for token in re.findall(rf"`((?:{tops})/[^`\s<>*{{}}]+)`", shipped_doc_text(path))}

    def shipped(name):
        return any(candidate in tarball_members or any(m.startswith(candidate.rstrip("/") + "/") for m in tarball_members)
                   for candidate in [name] + ([role + name] if role else []))
    missing = sorted(name for name in named if not shipped(name))
    assert missing == [], f"{path} names files the tarball lacks"
