"""Issue 37, all at once: the app's account is hostile through an adoption, a deploy with a
migration, a nightly backup and an overwrite restore, and never gets to root.

Before the adoption, upstream's account (no sandbox) planted the modules the apt hook imports in
/tmp and a link to a root-only canary in data/ (prepare.yml). After it, a compromised app inside
the service's own sandbox (files/lm_hostile.py) plants modules, links and a FIFO wherever it may
write, races the deploy's trial, looks for the deploy's processes, knocks at gunicorn past nginx
and floods the password paths, while root deploys v2 (a migration), backs up the way the timer
does, restores over the host and installs a package; then a class logs in. Runs after the
adoption's own tests (file order): it changes the release and the data.

Changes the host: a deploy with a migration, a backup, an overwrite restore and an apt run, beside the hostile
app.
"""

import json
import os

import pytest
import yaml

from lm_testlib import (CANARY, REPO, RESOURCES, ROOT, canary_is_intact, converge, playbook, put_script, release_of,
                        said, start_in_service_sandbox, stop_unit)

UNIT = "lm-hostile"
UPSTREAM_LINK = "lm-planted-at-adoption"


def playbook_vars(version):
    """The converge play's own variables (molecule/resources/converge.yml) for another playbook."""
    with open(os.path.join(RESOURCES, "converge.yml"), encoding="utf-8") as handle:
        play = next(play for play in yaml.safe_load(handle) if play.get("name") == "Converge")
    return {**play["vars"], "standin_version": version}


def class_logs_in(host):
    """A class of 30 from one address (a school's NAT) logging in at once: lm_storm.py's report."""
    return json.loads(host.check_output("python3 %s --clients 30 --first-source 200", put_script(host, "lm_storm.py")))


@pytest.fixture(scope="module")
def hostile(host):
    canary = json.loads(host.file("/root/lm-canary.json").content_string)
    address = host.interface("eth0").addresses[0]
    port = host.check_output("systemctl show -P Listen lernmanager.socket").split(":")[-1].split()[0]
    before = release_of(host)
    start_in_service_sandbox(host, UNIT, "lm_hostile.py", "1800", address, port)
    runs = {}
    try:
        runs["deploy"] = converge({"standin_version": "v2"})
        runs["backup"] = host.run("timeout 600 systemctl start lernmanager-backup.service")
        runs["restore"] = playbook(os.path.join(REPO, "playbooks", "restore.yml"),
                                   {**playbook_vars("v2"), "lernmanager_restore_overwrite": True})
        runs["apt"] = host.run("DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --reinstall sqlite3")
        runs["class"] = class_logs_in(host)
    finally:
        journal = host.check_output(f"journalctl _SYSTEMD_UNIT={UNIT}.service -o cat --no-pager")
        stop_unit(host, UNIT)
    return {"canary": canary, "before": before, "runs": runs, "log": journal.splitlines()}


def events(hostile, kind):
    return [line for line in hostile["log"] if line.startswith(kind + " ")]


def flood_counts(hostile):
    """The flood's statuses as its last line counted them: {path: {status: count}}."""
    return json.loads(events(hostile, "flood")[-1].split(" ", 1)[1])


def test_the_deploy_backup_restore_and_apt_all_went_through(host, hostile):
    runs = hostile["runs"]
    assert runs["deploy"].returncode == 0, runs["deploy"].stdout[-4000:] + runs["deploy"].stderr[-2000:]
    assert runs["backup"].rc == 0, host.run("journalctl -u lernmanager-backup --no-pager -n 30").stdout
    assert runs["restore"].returncode == 0, runs["restore"].stdout[-4000:] + runs["restore"].stderr[-2000:]
    assert runs["apt"].rc == 0, runs["apt"].stderr
    assert release_of(host) != hostile["before"], "v2 was deployed"
    assert "migrate_002_add_class_color.py" in host.file(f"{ROOT}/shared/data/migrations_done.txt").content_string
    # What upstream's account planted before the adoption is named by the deploy, and followed by nothing.
    assert f"'{UPSTREAM_LINK}' (a link to '{CANARY}')" in said(runs["deploy"]), said(runs["deploy"])[-3000:]
    # No step of a deploy that adopts nothing names itself after a variable only an adoption sets.
    for run in (runs["deploy"], runs["restore"]):
        assert "template error" not in said(run), said(run)[-3000:]


def test_the_hostile_app_tried_every_path(hostile):
    """The attempts took place: a test of a process that did nothing would prove nothing."""
    log = hostile["log"]
    assert log and log[0].startswith("started uid="), log[:5]
    assert f"modules-planted {ROOT}/shared/data 13" in log, log[:20]
    assert "link-planted data/.restore.tmp" in log and "fifo-planted instance/uploads/lm-hostile.fifo" in log, log[:20]
    assert events(hostile, "trial-seen"), "the trial's copy was seen, so it was raced"
    assert events(hostile, "gunicorn"), "gunicorn was knocked at"
    flood = flood_counts(hostile)
    assert sum(flood["login"].values()) > 100 and sum(flood["admin/passwort"].values()) > 100, flood


def test_no_planted_code_ran_and_nothing_of_the_deploy_was_in_reach(host, hostile):
    assert not events(hostile, "trial-planted"), "a trial copy was writable"
    assert not events(hostile, "visible") and not events(hostile, "mem-opened"), "the deploy's processes were in reach"
    ran = host.run("find / -xdev -name .lm-hostile-ran")
    assert ran.stdout.strip() == "", f"planted code ran: {ran.stdout} " + host.run(
        "cat %s", " ".join(ran.stdout.split())).stdout


def test_gunicorn_was_never_reached_past_nginx(hostile):
    knocks = events(hostile, "gunicorn")
    assert knocks and all(" blocked " in line for line in knocks), knocks


def test_the_flood_was_refused_and_a_class_logged_in_all_the_same(hostile):
    flood = flood_counts(hostile)
    assert flood["login"].get("429", 0) > 0, f"wrong passwords were never refused: {flood}"
    assert flood["admin/passwort"].get("429", 0) > 0, f"sessionless password changes were never refused: {flood}"
    school = hostile["runs"]["class"]
    assert school["errors"] == [] and school["succeeded"] == 30, school


def test_the_canary_is_intact_and_in_no_backup(host, hostile):
    canary_is_intact(host, hostile["canary"])
    # Carried over as a link (the deploy named it), never followed; the overwrite restore unlinked it.
    assert host.run("test -L %s/shared/data/%s", ROOT, UPSTREAM_LINK).rc == 1
