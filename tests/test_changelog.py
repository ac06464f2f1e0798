"""The changelog is antsibull-changelog's: fragments in changelogs/fragments/, releases in
changelogs/changelog.yaml, CHANGELOG.rst generated from them. A change to what the collection ships
(the role, plugins, playbooks, meta) comes with a fragment: every commit since the last release that
touches them adds or changes one, and so must the working tree's changes (lint mode: `antsibull-changelog
lint` checks the fragments' form)."""

import os
import shutil
import subprocess

import pytest

from helpers import BIN, REPO, load_yaml

SHIPPED = ["roles", "plugins", "playbooks", "meta"]
FRAGMENTS = "changelogs/fragments"


def changelog_tool(*args, cwd=REPO):
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"))
    return subprocess.run([str(BIN / "antsibull-changelog"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def git(*args):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()


def test_the_fragments_and_the_releases_pass_lint():
    result = changelog_tool("lint")
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_changelog_rst_is_the_one_the_tool_generates(tmp_path):
    copy = tmp_path / "collection"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".cache", ".git", "bench", "molecule"))
    result = changelog_tool("generate", cwd=copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "CHANGELOG.rst").read_text() == (REPO / "CHANGELOG.rst").read_text(), \
        "CHANGELOG.rst was edited by hand or not regenerated: run `antsibull-changelog generate`"


def test_galaxy_version_is_the_last_release_or_the_next_one():
    releases = load_yaml(REPO / "changelogs" / "changelog.yaml")["releases"]
    version = tuple(int(n) for n in load_yaml(REPO / "galaxy.yml")["version"].split("."))
    assert version >= max(tuple(int(n) for n in release.split(".")) for release in releases)


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout (a built tarball has no history)")
def test_every_change_to_what_ships_since_the_last_release_comes_with_a_fragment():
    # The release is the last commit that wrote changelog.yaml; in a shallow clone the oldest commit
    # there is seems to add every file, so the check starts no earlier than the history it has.
    (release,) = git("log", "-1", "--format=%H", "--", "changelogs/changelog.yaml")
    without = []
    for commit in git("log", "--format=%H", f"{release}..HEAD", "--", *SHIPPED):
        touched = git("show", "--name-only", "--format=", commit)
        if not any(name.startswith(FRAGMENTS + "/") for name in touched):
            without.append(" ".join(git("log", "-1", "--format=%h %s", commit)))
    assert without == [], f"commits that change {SHIPPED} without a changelog fragment: {without}"
    # And what is not committed yet: a change there needs a fragment beside it.
    status = subprocess.run(["git", "status", "--porcelain", "-z", "--untracked-files=all", "--", *SHIPPED, FRAGMENTS],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    names = [entry[3:] for entry in status.split("\0") if len(entry) > 3]
    if any(not name.startswith(FRAGMENTS) for name in names):
        assert any(name.startswith(FRAGMENTS) for name in names), \
            f"uncommitted changes to {SHIPPED} need a fragment in {FRAGMENTS}/ (antsibull-changelog's format)"
