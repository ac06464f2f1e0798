"""The deploy gate's pieces without a host: the record module (deploy_state) on real files, a real
git repository and this machine's dpkg; the action's comparison and code hash; and that the gate
fingerprints every host fact the role reads. On a host, the gate is tested by Molecule
(molecule/default/tests/test_deploy_gate.py: a no-op ends early, any drift runs every step)."""

import os
import pathlib
import re
import subprocess

import pytest

from helpers import REPO, ROLE, load_plugin, load_yaml, run_module_in_process

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="sets owners: needs root")


def state():
    return load_plugin("plugins/modules/deploy_state.py")


def gate():
    return load_plugin("plugins/action/deploy_gate.py")


# --- what the gate fingerprints ----------------------------------------------------------------

# Facts the role reads that are not inputs of what a deploy writes: getent_passwd is set by the
# run's own lookup of the service account, date_time names an adopted install's old directory,
# all_ipv4_addresses only feeds the ACME name check's message and comparison (nothing is written
# from it; a run the gate passes has nothing to certify that the last run did not).
NOT_INPUTS = {"getent_passwd", "date_time", "all_ipv4_addresses"}
# Facts the gate holds in another form: the major version is part of the version, and the role
# asks of the IPv6 addresses only whether there is one (they change with privacy addresses).
HELD_AS = {"distribution_major_version": "distribution_version", "all_ipv6_addresses": "ipv6"}


def facts_the_role_reads():
    used = set()
    for path in ROLE.rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".j2"}:
            text = path.read_text(encoding="utf-8")
            used |= set(re.findall(r"ansible_facts\[['\"](\w+)['\"]\]", text))
            used |= {name for name in re.findall(r"\bansible_(\w+)", text)
                     if name in {"memtotal_mb", "processor_nproc", "fqdn", "architecture", "distribution"}}
    return used


def test_the_gate_fingerprints_every_host_fact_the_role_reads():
    watched = set(load_yaml(ROLE / "vars" / "main.yml")["__lernmanager_gate_facts"])
    used = facts_the_role_reads()
    assert {"memtotal_mb", "python_version", "fqdn"} <= used, "the scan finds the facts"
    missing = {HELD_AS.get(name, name) for name in used - NOT_INPUTS} - watched
    assert not missing, f"facts the role reads that the deploy gate does not fingerprint: {sorted(missing)}"


# --- deploy_state: the record and the descriptors ----------------------------------------------

def test_a_record_holds_each_watched_path_and_reads_back_the_same(tmp_path):
    config = tmp_path / "etc" / "lm"
    config.mkdir(parents=True)
    (config / "lm.env").write_text("A=1\n")
    (config / "tls").mkdir()
    (tmp_path / "current").symlink_to("releases/p-1")
    record = tmp_path / "deployed.json"
    watch = [str(config) + "/", str(tmp_path / "cur*"), str(tmp_path / "absent-here")]
    args = {"path": str(record), "state": "recorded", "watch": watch, "record": {"inputs": "f1", "release": "p-1"}}

    assert run_module_in_process("deploy_state", args, check=True)["changed"] and not record.exists(), "check mode writes nothing"
    written = run_module_in_process("deploy_state", args)
    assert written["changed"] and oct(record.stat().st_mode & 0o777) == "0o600"
    assert set(written["files"]) == {str(config), str(config / "lm.env"), str(config / "tls"), str(tmp_path / "current")}
    assert written["files"][str(tmp_path / "current")] == "link releases/p-1"
    assert not run_module_in_process("deploy_state", args)["changed"], "the same again changes nothing"

    read = run_module_in_process("deploy_state", {"path": str(record), "watch": watch, "fingerprint": {"inputs": "f1"}})
    assert read["stored"]["inputs"] == read["keyed"]["inputs"] != "f1", "recorded keyed, compared keyed"
    assert read["stored"]["release"] == "p-1" and read["stored"]["files"] == read["files"] == written["files"]

    (config / "lm.env").write_text("A=2\n")
    (config / "stray.conf").write_text("")
    now = run_module_in_process("deploy_state", {"path": str(record), "watch": watch})["files"]
    assert gate().differences(read["stored"]["files"], now) == [f"{config / 'lm.env'} changed", f"{config / 'stray.conf'} is new"]


@ROOT_ONLY
def test_a_leaked_record_holds_no_digest_of_a_secret(tmp_path):
    """The record keys every digest with the host's own key (root's 0600 file beside it, never
    watched, never sent): the SHA-256 of a guessable secret is nowhere in it."""
    fingerprint = fingerprint_of(dict(BASE, lernmanager_admin_password="Sommer2026!"))
    secret_digest = fingerprint["parts"]["lernmanager_admin_password"]
    assert secret_digest == gate().digest("Sommer2026!")
    record = tmp_path / "deployed.json"
    args = {"path": str(record), "state": "recorded", "watch": [str(tmp_path) + "/"], "record": dict(fingerprint, code="g-1")}
    assert run_module_in_process("deploy_state", args)["changed"]
    key = pathlib.Path(str(record) + ".key")
    assert (key.stat().st_uid, oct(key.stat().st_mode & 0o777), key.stat().st_size) == (0, "0o600", 32)
    text = record.read_text()
    assert secret_digest not in text and fingerprint["inputs"] not in text and fingerprint["setup"] not in text
    assert str(key) not in text, "the key is not a watched path"
    read = run_module_in_process("deploy_state", {"path": str(record), "fingerprint": fingerprint})
    assert "Sommer2026!" not in str(read) and read["keyed"]["parts"] == read["stored"]["parts"]
    assert gate().decide(read["stored"], dict(fingerprint, code="g-1", **read["keyed"]), {"files": read["stored"]["files"]}) == ("none", [])
    # Another host's key (or a record from before keys, without one) never compares equal.
    key.write_bytes(os.urandom(32))
    again = run_module_in_process("deploy_state", {"path": str(record), "fingerprint": fingerprint})
    assert again["keyed"]["inputs"] != again["stored"]["inputs"]
    key.unlink()
    assert run_module_in_process("deploy_state", {"path": str(record), "fingerprint": fingerprint})["keyed"] is None


def test_a_mode_change_is_a_difference_and_the_record_itself_is_not_watched(tmp_path):
    (tmp_path / "site").write_text("server {}\n")
    record = tmp_path / "deployed.json"
    args = {"path": str(record), "state": "recorded", "watch": [str(tmp_path) + "/"]}
    before = run_module_in_process("deploy_state", args)["files"]
    assert str(record) not in run_module_in_process("deploy_state", {"path": str(record), "watch": [str(tmp_path) + "/"]})["files"]
    (tmp_path / "site").chmod(0o666)
    after = run_module_in_process("deploy_state", {"path": str(record), "watch": [str(tmp_path) + "/"]})["files"]
    assert gate().differences(before, after) == [f"{tmp_path / 'site'} changed"]


@ROOT_ONLY
def test_a_record_that_is_not_roots_own_is_no_record(tmp_path):
    record = tmp_path / "deployed.json"
    run_module_in_process("deploy_state", {"path": str(record), "state": "recorded", "record": {"inputs": "f1"}})
    os.chown(record, 65534, 65534)  # what a compromised app could have written
    assert run_module_in_process("deploy_state", {"path": str(record)})["stored"] is None
    os.chown(record, 0, 0)
    record.chmod(0o666)
    assert run_module_in_process("deploy_state", {"path": str(record)})["stored"] is None
    record.unlink()
    record.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"inputs": "f1"}')
    with pytest.raises(OSError):
        state().read_record(str(record))  # a link is never followed


def test_missing_packages_are_named_by_this_machines_dpkg(tmp_path):
    assert state().missing_packages(["dpkg", "lm-no-such-package", "coreutils"]) == ["lm-no-such-package"]


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A real git repository with a branch, a light tag and an annotated tag on different commits."""
    root = tmp_path_factory.mktemp("repo")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    commits = []
    for number in range(3):
        (root / "app.py").write_text(f"V = {number}\n")
        git("add", "app.py")
        git("commit", "-q", "-m", f"v{number}")
        commits.append(git("rev-parse", "HEAD"))
    git("tag", "light", commits[0])
    git("tag", "-a", "-m", "annotated", "v1", commits[1])
    return root, commits


def test_the_commit_of_a_branch_or_tag_comes_from_ls_remote(repository):
    root, commits = repository
    remote_commit = state().remote_commit
    assert remote_commit(str(root), "main") == commits[2]
    assert remote_commit(str(root), "light") == commits[0]
    assert remote_commit(str(root), "v1") == commits[1], "an annotated tag names its commit, not the tag object"
    assert remote_commit(str(root), "no-such-branch") is None
    assert remote_commit(str(root), commits[1]) is None, "a commit id is no ref"
    assert remote_commit(str(root.parent / "missing"), "main") is None


# --- the action: the code it would deploy, and the collection's code ---------------------------

def test_the_code_id_is_the_one_the_deploy_names_its_release_after(tmp_path):
    action = gate().ActionModule.__new__(gate().ActionModule)
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("print(1)\n")
    sha = run_module_in_process("content_hash", {"path": str(app)})["sha256"]
    assert action.code_id({"source": "path", "source_path": str(app)}, None) == "p-" + sha[:16]
    assert action.code_id({"source": "archive", "archive_checksum": "sha256:" + "ab" * 32}, None) == "a-" + "ab" * 8
    assert action.code_id({"source": "git", "git_version": "main"}, "0123456789abcdef" * 2) == "g-0123456789abcdef"
    assert action.code_id({"source": "git", "git_version": "c0ffee" * 3}, None) == "g-" + ("c0ffee" * 3)[:16]
    assert action.code_id({"source": "git", "git_version": "c0ffee1"}, None) == "", "a short commit id cannot be told"


def test_the_collections_code_hash_follows_its_role_and_plugins(tmp_path, monkeypatch):
    module = gate()
    for name in ("roles/lernmanager/tasks/main.yml", "plugins/modules/m.py", "docs/x.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    monkeypatch.setattr(module, "COLLECTION", str(tmp_path))
    first = module.code_hash()
    (tmp_path / "docs/x.md").write_text("b\n")
    (tmp_path / "plugins/modules/__pycache__").mkdir()
    (tmp_path / "plugins/modules/__pycache__/m.cpython-311.pyc").write_bytes(b"x")
    assert module.code_hash() == first, "docs and bytecode are no inputs"
    (tmp_path / "roles/lernmanager/tasks/main.yml").write_text("b\n")
    assert module.code_hash() != first


def test_many_differences_are_cut_short():
    lines = gate().differences({f"/etc/{n}": "a" for n in range(9)}, {})
    assert len(lines) == 6 and lines[-1] == "and 4 more paths"


def test_the_collection_code_is_this_checkout():
    assert pathlib.Path(gate().COLLECTION).resolve() == REPO.resolve()


def test_units_systemctl_cannot_name_are_none_of_them_active(monkeypatch):
    inactive_units = state().inactive_units  # module_utils/deploy_record.py's
    # systemctl's answer to a list with a name it cannot parse: an error, no states.
    monkeypatch.setattr(inactive_units.__globals__["subprocess"], "run",
                        lambda argv, **_: subprocess.CompletedProcess(argv, 1, "", "Invalid unit name"))
    assert inactive_units(["nginx.service", "bad name"]) == {"nginx.service": "unknown", "bad name": "unknown"}


def test_a_variable_naming_a_controller_file_brings_its_content(tmp_path):
    action = gate().ActionModule.__new__(gate().ActionModule)  # no task: relative names find nothing
    cert = tmp_path / "fullchain.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    assert action.named_file(str(cert)) == str(cert)
    assert action.named_file(str(tmp_path / "missing.pem")) is None
    assert action.named_file(str(tmp_path)) is None, "a directory is the source path's, hashed as code"
    assert action.named_file("server {\n}") is None and action.named_file(3) is None


# --- the action: the lane a deploy takes -------------------------------------------------------

def fingerprint_of(variables, **others):
    """The gate's fingerprint for these variables (and collection, facts, host, venv period)."""
    action = gate().ActionModule.__new__(gate().ActionModule)
    action._templar = type("Templar", (), {"template": staticmethod(lambda value: value)})()
    action.named_file = lambda value: None
    args = {"host_facts": others.get("facts", {"python_version": "3.11.2"}), "venv_max_age_days": 30}
    return action.fingerprint(args, dict(variables, inventory_hostname="vps"))


BASE = {"lernmanager_git_version": "v1", "lernmanager_server_name": "a.example", "lernmanager_full_run": False}
FILES = {"/etc/lernmanager": "dir 755:0:0", "/opt/lernmanager/current": "link releases/g-1"}


def record(variables=BASE, code="g-1"):
    return dict(fingerprint_of(variables), code=code, release="g-1-abc", files=FILES)


def now(variables=BASE, code="g-1", **others):
    return dict(fingerprint_of(variables, **others), code=code)


def test_the_same_inputs_code_and_host_have_nothing_to_do():
    assert gate().decide(record(), now(), {"files": FILES}) == ("none", [])
    steering = dict(BASE, lernmanager_full_run=True, lernmanager_serial=2)
    assert gate().decide(record(), now(steering), {"files": FILES}) == ("none", []), "steering variables are no inputs"


def test_new_code_or_a_variable_that_chooses_it_takes_the_code_lane():
    lane, reasons = gate().decide(record(), now(code="g-2"), {"files": FILES})
    assert lane == "code" and reasons == ["the code changed (g-1 -> g-2)"]
    lane, reasons = gate().decide(record(), now(dict(BASE, lernmanager_git_version="v2"), code="g-2"), {"files": FILES})
    assert lane == "code" and reasons[0] == "the inputs changed: lernmanager_git_version"
    lane, reasons = gate().decide(record(), now(code=""), {"files": FILES})
    assert lane == "code" and reasons == ["the code to deploy cannot be told without fetching it"]


def test_any_other_input_or_a_drifted_host_takes_every_step():
    changed = dict(BASE, lernmanager_git_version="v2", lernmanager_server_name="b.example")
    lane, reasons = gate().decide(record(), now(changed, code="g-2"), {"files": FILES})
    assert lane == "full" and reasons[0] == "the inputs changed: lernmanager_git_version, lernmanager_server_name"
    lane, reasons = gate().decide(record(), now(facts={"python_version": "3.13.5"}), {"files": FILES})
    assert (lane, reasons) == ("full", ["the inputs changed: the host facts"])
    edited = dict(FILES, **{"/etc/lernmanager": "dir 777:0:0"})
    lane, reasons = gate().decide(record(), now(code="g-2"), {"files": edited})
    assert lane == "full" and reasons[-1] == "/etc/lernmanager changed", "new code on a drifted host: every step"
    lane, reasons = gate().decide(record(), now(code="g-2"), {"files": FILES, "units_inactive": {"nginx.service": "failed"}})
    assert lane == "full" and "unit nginx.service is not active (failed)" in reasons
    lane, reasons = gate().decide(record(), now(code="g-2"), {"files": FILES, "packages_missing": ["nginx"]})
    assert lane == "full" and "package nginx is not installed" in reasons
    assert gate().decide({}, now(), {"files": FILES}) == ("full", ["no record of a complete deploy on the host"])


def test_a_record_from_before_the_code_lane_takes_every_step():
    old = {key: value for key, value in record().items() if key not in ("setup", "parts")}
    old["inputs"] = "an older fingerprint"
    lane, reasons = gate().decide(old, now(code="g-2"), {"files": FILES})
    assert lane == "full" and reasons[0].startswith("the inputs changed (")


def test_many_changed_inputs_are_cut_short():
    many = dict(BASE, **{f"lernmanager_x{n}": n for n in range(8)})
    lane, reasons = gate().decide(record(), now(many), {"files": FILES})
    assert lane == "full" and reasons[0].endswith("lernmanager_x4 and 3 more")
