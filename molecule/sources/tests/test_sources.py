"""Releases from git (a tag, then another, then a third through the deploy gate's code lane) and
from an archive, and wrong sources refused before anything live changes, each with a message
naming the variable to fix.

Changes the host: deploys from git tags, new code and an archive, and wrong sources refused."""

import os
import re

import pytest

from lm_testlib import ROOT, env_value, http, playbook, release_of, run_client

CONVERGE = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")
JOB_SERVICE = "/etc/systemd/system/lernmanager-job-auto-attendance.service"
ADMIN_PASSWORD = "Klassenbuch-2026-geheim"
LLM_KEY = "sk-test-llm-key-never-shown"
V2_WITH_SECRETS = {"lernmanager_git_version": "v2", "lernmanager_admin_password": ADMIN_PASSWORD,
                   "lernmanager_env": {"SCHOOL_NAME": "Testschule am See", "LLM_API_KEY": LLM_KEY,
                                       "LLM_BASE_URL": "https://llm.schule.example/v1"}}
SOURCES = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "sources")


def commit_of(tag):
    with open(os.path.join(SOURCES, "lernmanager.git", "packed-refs"), encoding="ascii") as handle:
        refs = dict(line.split()[::-1] for line in handle if not line.startswith(("#", "^")))
    return refs[f"refs/tags/{tag}"]


def converge(tags=None, **extra):
    return playbook(CONVERGE, extra, tags=tags)


def code_of(release):
    """A release id is <source>-<code>-<dependency set>."""
    source, code, deps = release.split("-")
    assert len(deps) == 8, release
    return f"{source}-{code}"


def version_served(host):
    body = http(host, "/login").body
    return "2" if 'name="standin-version" content="2"' in body else "1" if 'content="1"' in body else None


def test_git_tag_v1_is_live_under_its_commit(host):
    assert code_of(release_of(host)) == "g-" + commit_of("v1")[:16]
    assert version_served(host) == "1"
    # The source cache holds the repository's URL (a token, if it has one): root's alone.
    cache = host.file(f"{ROOT}/cache")
    assert (cache.user, cache.mode) == ("root", 0o700)


def test_git_tag_v2_deploys_and_a_rerun_changes_nothing(host, verbose_run_with_secrets):
    # The fixture's two runs: v2 (verbose, with secrets), then the same again.
    _, again = verbose_run_with_secrets
    assert code_of(release_of(host)) == "g-" + commit_of("v2")[:16]
    assert version_served(host) == "2"
    assert "changed=0" in again.stdout


def outcome(output, task):
    """What the first run of a role task did: ok, changed, skipping, fatal (None: never reached)."""
    found = re.search(rf"TASK \[lernmanager\.deploy\.lernmanager : {re.escape(task)}\][^\n]*\n+(\w+)", output)
    return found and found.group(1)


@pytest.fixture(scope="module")
def code_only(host, verbose_run_with_secrets):
    """After the v2 runs, the same variables but the tag v2-deps (v2 with another requirements.txt,
    so its own venv and job units): only the code differs. Then the same again."""
    before = {"release": release_of(host), "job": host.file(JOB_SERVICE).content_string}
    extra = dict(V2_WITH_SECRETS, lernmanager_git_version="v2-deps")
    runs = [playbook(CONVERGE, extra), playbook(CONVERGE, extra)]
    for run in runs:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return before, runs


def test_new_code_alone_takes_the_code_lane_and_is_live(host, code_only):
    before, (run, again) = code_only
    output = run.stdout
    assert ("Deploying the code only, as the inputs changed: lernmanager_git_version; the code changed "
            f"(g-{commit_of('v2')[:16]} -> g-{commit_of('v2-deps')[:16]})") in output, output[-3000:]
    # Skipped: what the gate has just found as written, under unchanged inputs.
    for task in ("Install the packages the deployment needs", "Create the service user lernmanager",
                 "Create the directories of the layout", "Write the app's environment file",
                 "Write the nginx site, its snippet, the catch-all and the log rotation",
                 "Write the units of the backup, the restore drill and the database care",
                 "Recompile stale stdlib bytecode after every package upgrade"):
        assert outcome(output, task) == "skipping", task
    # Taken: the release, its own venv, the switch, and the jobs' units, which name the venv.
    for task in ("Finish the release and move it into place", "Restart the service", "Write each job's service and timer"):
        assert outcome(output, task) == "changed", task
    release = release_of(host)
    assert code_of(release) == "g-" + commit_of("v2-deps")[:16] and version_served(host) == "2"
    venv = host.check_output(f"readlink {ROOT}/current/.venv")
    assert venv != host.check_output(f"readlink {ROOT}/releases/{before['release']}/.venv"), "v2-deps has its own venv"
    job = host.file(JOB_SERVICE).content_string
    assert job != before["job"] and f"{venv}/bin/flask" in job
    why = [line for line in again.stdout.splitlines() if "Deploying" in line or " as the " in line]
    assert "Nothing to do" in again.stdout and "changed=0" in again.stdout, f"the code lane's record holds: {why}"


GIT_TOKEN = "tok3n-s3cret-4f1a"
WRONG = [
    # (extra variables, words the message must contain)
    ({"lernmanager_git_version": "v9.9-no-such-tag"}, "lernmanager_git_version"),
    ({"lernmanager_git_repo": "file:///srv/no-such-repository.git"}, "lernmanager_git_repo"),
    # A token in the URL (port 9 of the container itself: refused at once) is never shown.
    ({"lernmanager_git_repo": "https://lm-user:" + GIT_TOKEN + "@127.0.0.1:9/school.git"},
     'lernmanager_git_repo "https://***@127.0.0.1:9/school.git"'),
    ({"lernmanager_source": "archive", "lernmanager_archive_checksum": "sha256:" + "0" * 64}, "lernmanager_archive_checksum"),
    ({"lernmanager_source": "archive", "lernmanager_archive_src": "/nonexistent/lernmanager.tar.gz"}, "lernmanager_archive_src"),
]


@pytest.mark.parametrize("extra,word", WRONG, ids=["unknown-git-version", "unreachable-repo", "repo-with-a-token",
                                                   "wrong-checksum", "missing-archive"])
def test_wrong_source_fails_before_anything_live_changes(host, extra, word):
    live = release_of(host)
    releases = host.check_output(f"ls {ROOT}/releases")
    # The source is resolved in the steps tagged `always`, before the release step; the steps before
    # those (packages, user, layout) would only find the converged host as it is, at a minute a run.
    run = converge(tags="lernmanager_release", **extra)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert word in output and "Nothing was changed on the live release" in output, output[-3000:]
    assert GIT_TOKEN not in output
    assert release_of(host) == live
    assert host.check_output(f"ls {ROOT}/releases") == releases
    assert http(host, "/login").status == 200


def test_archive_source_deploys_v1(host):
    run = converge(lernmanager_source="archive")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    with open(os.path.join(SOURCES, "lernmanager-v1.tar.gz.sha256"), encoding="ascii") as handle:
        assert code_of(release_of(host)) == "a-" + handle.read().strip()[:16]
    assert version_served(host) == "1"
    assert host.file(f"{ROOT}/current/static/css/style.css.gz").exists



@pytest.fixture(scope="module")
def verbose_run_with_secrets(host):
    """The git tag v2 in a -v converge that sets the admin password and carries an LLM key (output
    to search), then the same converge again: (first, second) runs, once per module."""
    extra = V2_WITH_SECRETS
    first = playbook(CONVERGE, extra, verbose=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert env_value(host, "LLM_API_KEY") == LLM_KEY, "the key did reach the app"
    second = playbook(CONVERGE, extra)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    return first, second


def test_admin_password_replaces_the_default_once(host, verbose_run_with_secrets):
    first, second = verbose_run_with_secrets
    assert "changed=0" in second.stdout, "the second run finds the password already set"
    assert not run_client(host, "exercise")["logged_in"], "admin/admin is refused"
    assert run_client(host, "--password", ADMIN_PASSWORD, "exercise")["logged_in"]


def test_no_secret_in_verbose_output(host, verbose_run_with_secrets):
    first, _ = verbose_run_with_secrets
    secret_key = env_value(host, "SECRET_KEY")
    output = first.stdout + first.stderr
    for secret in (ADMIN_PASSWORD, LLM_KEY, secret_key):
        assert secret and secret not in output
