"""The README's quick start on Debian 13's own `ansible` package as the controller: the collection from
its built tarball, the shipped examples with the addresses and secrets filled in, deploying over SSH
with pipelining as user `debian` with sudo onto a Debian 12 VPS, backing up into an sftp storage box
(molecule/controller/converge.yml ran the quick start and the first deploy). Here, from the same
controller: a no-op run, the same without pipelining; then with the newest ansible-core (the admin's
venv): every playbook's syntax, bad inputs refused, and a code-only release; status.yml and
backup.yml with Debian's again; last, the VPS is lost and restore.yml rebuilds the school on a new
Debian 13 VPS from the storage box. Each run's seconds go to .cache/logs/controller-times.json
(issue 14's deploy times over SSH; printed by the scenario's log).

Changes the hosts: a no-op deploy, one without pipelining, a code-only release and a backup from the
controller; then the VPS is destroyed and the new VPS restored."""

import json
import os
import re

import subprocess

import pytest
import testinfra
import yaml

from lm_testlib import DATABASE, ROOT, REPO, recap_changed

CONTROLLER, VPS, NEW_VPS = "lm-controller-debian13", "lm-controller-vps", "lm-controller-newvps"
# The quick start's project directory (examples/ copied), where ./run runs ansible-playbook.
DEPLOY = "/home/admin/schule"
# The examples' names: the school's inventory name is its site's name.
SCHOOL = "lernmanager.gym-beispiel.example"
# The newest ansible-core, in the admin's venv (converge.yml).
NEWEST_BIN = "/home/admin/ansible-newest/bin"
TIMES = os.path.join(REPO, ".cache", "logs", "controller-times.json")


def get(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="module")
def controller():
    return get(CONTROLLER)


@pytest.fixture(scope="module")
def vps():
    return get(VPS)


def admin_run(controller, name, *args, newest=False, record=True):
    """ansible-playbook ARGS as the admin on the controller, Debian's or (NEWEST) the admin's venv's;
    (rc, output, seconds), the seconds kept unless not RECORD."""
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
    path = f"env PATH={NEWEST_BIN}:/usr/bin:/bin " if newest else ""
    result = controller.run(f"runuser -u admin -- {path}/home/admin/run {name} {quoted}")
    output = controller.file(f"{DEPLOY}/{name}.log").content_string
    seconds = float(controller.file(f"{DEPLOY}/{name}.seconds").content_string)
    if record:
        record_time(name, seconds, recap_changed(output).get(SCHOOL))
    return result.rc, output, seconds


def record_time(name, seconds, changed):
    times = {}
    if os.path.exists(TIMES):
        with open(TIMES, encoding="utf-8") as handle:
            times = json.load(handle)
    times[name] = {"seconds": seconds, "changed": changed}
    os.makedirs(os.path.dirname(TIMES), exist_ok=True)
    with open(TIMES, "w", encoding="utf-8") as handle:
        json.dump(times, handle, indent=1, sort_keys=True)


def login_status(vps):
    return vps.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {SCHOOL}' http://127.0.0.1/login")


def live_release(vps):
    return json.loads(vps.file("/opt/lernmanager/live.json").content_string)["release"]


def test_the_controller_is_debians_own_ansible(controller):
    packages = dict(line.split() for line in controller.check_output("dpkg-query -W ansible ansible-core").splitlines())
    assert packages["ansible-core"].startswith("2.19."), packages
    assert controller.check_output("command -v ansible-playbook") == "/usr/bin/ansible-playbook"
    assert re.match(r"ansible-playbook \[core 2\.19\.", controller.check_output("ansible-playbook --version"))


def test_the_collection_is_the_built_tarball(controller):
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    listed = controller.check_output("runuser -u admin -- ansible-galaxy collection list lernmanager.deploy")
    assert re.search(rf"^lernmanager\.deploy\s+{re.escape(version)}\s*$", listed, re.M), listed
    assert "/home/admin/.ansible/collections" in listed


def test_the_first_deploy_over_ssh_went_live(controller, vps):
    output = controller.file(f"{DEPLOY}/fresh.log").content_string
    seconds = float(controller.file(f"{DEPLOY}/fresh.seconds").content_string)
    record_time("fresh", seconds, recap_changed(output).get(SCHOOL))
    assert re.search(rf"^{re.escape(SCHOOL)}\s+:\s+ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0", output, re.M), \
        output[-3000:]
    assert re.search(rf"^{re.escape(SCHOOL)}\s+changed\s+serves {re.escape(live_release(vps))}\s", output, re.M), "the rollout line"
    assert login_status(vps) == "200"
    # Over SSH as `debian`, with sudo: the app and the files are root's and the service user's, not debian's.
    assert vps.file("/opt/lernmanager/current").user == "root"


def test_a_second_run_changes_nothing(controller):
    rc, output, _ = admin_run(controller, "noop", "lernmanager.deploy.deploy")
    assert rc == 0, output[-3000:]
    assert recap_changed(output)[SCHOOL] == 0, output[-3000:]


def test_without_pipelining_the_same_run_changes_nothing_too(controller):
    # The measure of what examples/inventory.yml's ansible_pipelining: true saves (.cache/logs/controller-times.json).
    rc, output, _ = admin_run(controller, "noop-without-pipelining", "lernmanager.deploy.deploy",
                              "-e", "ansible_pipelining=false")
    assert rc == 0 and recap_changed(output)[SCHOOL] == 0, output[-3000:]


def newest_ansible_core():
    with open(os.path.join(REPO, "molecule", "controller", "converge.yml"), encoding="utf-8") as handle:
        return re.search(r"__newest_ansible_core: (\S+)", handle.read()).group(1)


def test_the_newest_ansible_core_reads_every_playbook_and_refuses_bad_input(controller, vps):
    version = controller.check_output(f"{NEWEST_BIN}/ansible-playbook --version").splitlines()[0]
    assert version == f"ansible-playbook [core {newest_ansible_core()}]", version
    for playbook in sorted(os.listdir(os.path.join(REPO, "playbooks"))):
        name = playbook.removesuffix(".yml")
        rc, output, _ = admin_run(controller, f"syntax-{name}", "--syntax-check", f"lernmanager.deploy.{name}",
                                  newest=True, record=False)
        assert rc == 0 and "playbook: " in output and "ERROR" not in output, output[-2000:]
    before = live_release(vps)
    rc, output, _ = admin_run(controller, "bad-input", "lernmanager.deploy.deploy", "-e", "lernmanager_server_nmae=x",
                              newest=True, record=False)
    assert rc != 0 and "lernmanager_server_nmae (did you mean lernmanager_server_name?)" in output, output[-2000:]
    rc, output, _ = admin_run(controller, "bad-port", "lernmanager.deploy.deploy", "-e", "lernmanager_listen_port=eighty",
                              newest=True, record=False)
    assert rc != 0 and "lernmanager_listen_port" in output, output[-2000:]
    assert live_release(vps) == before


def test_a_code_only_release_goes_live_with_the_newest_ansible_core(controller, vps):
    before = live_release(vps)
    # v1 with one more line in app.py: new code, the same dependencies and no migration.
    controller.check_output(
        f"cd {DEPLOY} && rm -rf patched && mkdir patched && tar -xzf /home/admin/standin.tar.gz -C patched && "
        f"echo '# a code-only change' >> patched/app.py && tar -czf patched.tar.gz -C patched . && chown admin patched.tar.gz")
    checksum = controller.check_output(f"sha256sum {DEPLOY}/patched.tar.gz").split()[0]
    rc, output, _ = admin_run(controller, "code-only", "lernmanager.deploy.deploy",
                              "-e", f"lernmanager_archive_src={DEPLOY}/patched.tar.gz",
                              "-e", f"lernmanager_archive_checksum=sha256:{checksum}", newest=True)
    assert rc == 0, output[-3000:]
    # Only the archive's variables and the code differ: the deploy gate's code lane.
    assert "Deploying the code only, as the inputs changed: lernmanager_archive_checksum, lernmanager_archive_src" in output
    after = live_release(vps)
    assert after != before and login_status(vps) == "200"
    # The same dependencies: the new release runs in the venv the first one built.
    venvs = vps.check_output("ls /opt/lernmanager/venvs").split()
    assert len(venvs) == 1, venvs


def test_status_answers_from_the_packaged_controller(controller, vps):
    rc, output, _ = admin_run(controller, "status", "lernmanager.deploy.status")
    assert rc == 0, output[-3000:]
    line = output.split("LERNMANAGER STATUS", 1)[1]
    assert re.search(rf"^{re.escape(SCHOOL)}\s+ok\s+live {re.escape(live_release(vps))} \(", line, re.M), line
    assert recap_changed(output)[SCHOOL] == 0


def test_the_project_is_the_shipped_examples_with_only_addresses_and_secrets_filled_in(controller):
    shipped = "/home/admin/.ansible/collections/ansible_collections/lernmanager/deploy/examples"
    inventory = controller.run(f"diff {shipped}/inventory.yml {DEPLOY}/inventory.yml").stdout
    changed = [line for line in inventory.splitlines() if line[:1] in "<>"]
    assert [line.split(":")[0] for line in changed] == ["<       ansible_host", ">       ansible_host"], inventory
    settings = controller.run(f"diff {shipped}/group_vars/lernmanager/main.yml {DEPLOY}/group_vars/lernmanager/main.yml").stdout
    keys = sorted({line[2:].split(":")[0] for line in settings.splitlines() if line[:1] in "<>"})
    assert keys == ["lernmanager_backup_repository", "lernmanager_backup_ssh_known_hosts"], settings
    # ssh-keyscan's line for a port other than 22, as the example's comment says it looks.
    assert re.search(r'^lernmanager_backup_ssh_known_hosts: "\[[\d.]+\]:23 ssh-ed25519 AAAA',
                     controller.file(f"{DEPLOY}/group_vars/lernmanager/main.yml").content_string, re.M)
    assert controller.file(f"{DEPLOY}/group_vars/lernmanager/vault.yml").content_string.startswith("$ANSIBLE_VAULT;1.1;AES256")


def marker_row_and_upload(host):
    """The marker class's row count and the marker upload's sha256 on HOST."""
    count = host.check_output(f"runuser -u lernmanager -- sqlite3 {DATABASE} \"SELECT count(*) FROM classes WHERE name = 'Quickstart 5c'\"")
    upload = host.run(f"sha256sum {ROOT}/shared/instance/uploads/quickstart.bin")
    return int(count), upload.stdout.split()[0] if upload.rc == 0 else None


def test_a_backup_goes_to_the_storage_box(controller, vps):
    made = vps.run(
        f"runuser -u lernmanager -- sqlite3 {DATABASE} \"INSERT INTO classes (name) VALUES ('Quickstart 5c')\" && "
        f"runuser -u lernmanager -- sh -c 'head -c 100000 /dev/urandom > {ROOT}/shared/instance/uploads/quickstart.bin'")
    assert made.rc == 0, made.stderr
    rc, output, _ = admin_run(controller, "backup", "lernmanager.deploy.backup", record=False)
    assert rc == 0, output[-3000:]
    # The repository is the example's path in the storage box account's home: restic's sftp form with
    # one slash after the port.
    assert controller.file("/home/u123456/lernmanager-gym-beispiel/config").user == "u123456"
    assert len(controller.check_output("ls /home/u123456/lernmanager-gym-beispiel/snapshots").split()) == 1


def test_a_lost_vps_is_rebuilt_on_a_new_one_from_the_storage_box(controller, vps):
    before = marker_row_and_upload(vps)
    assert before[0] == 1 and before[1], before
    subprocess.run(["docker", "rm", "-f", VPS], check=True, capture_output=True)
    # The README: order a new VPS, change ansible_host in inventory.yml, keep the host's name.
    new = get(NEW_VPS)
    address = new.check_output("hostname -I").split()[0]
    controller.check_output(f"sed -i 's/ansible_host: .*/ansible_host: {address}/' {DEPLOY}/inventory.yml")
    rc, output, seconds = admin_run(controller, "restore", "lernmanager.deploy.restore")
    assert rc == 0, output[-4000:]
    assert marker_row_and_upload(new) == before
    assert login_status(new) == "200"
    assert new.file("/etc/debian_version").content_string.startswith("13")
