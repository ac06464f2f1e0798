"""The app module's (plugins/modules/app.py) inputs, and the one way the modules drop to the service
user (plugins/module_utils/service_user.py). No containers; needs root. The app's code itself runs
only in a transient unit with the service's sandbox, which needs systemd: init, migrate and the
admin check are tested on a host (molecule/upgrade/tests/test_app_module_in_sandbox.py)."""

import ctypes
import os
import signal
import pathlib
import shutil
import tempfile

import pytest

from helpers import load_plugin, run_module

USER = "nobody"
PYTHON = "/usr/bin/python3"  # one the service user may run (the tools venv lies below root's home)
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module switches users: needs root")


@pytest.fixture
def release():
    """A release (root-owned code, its data/ the service user's) with a venv whose python it may run."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="lm-app-test-", dir="/var/tmp"))
    os.chmod(top, 0o755)
    code = top / "release"
    (code / "data").mkdir(parents=True)
    shutil.chown(code / "data", USER)
    (top / "venv" / "bin").mkdir(parents=True)
    (top / "venv" / "bin" / "python").symlink_to(PYTHON)
    (top / "env").write_text('SCHOOL="Gym \\"Nord\\""\n')
    yield top
    shutil.rmtree(top)


def app(action, top, check=False, **args):
    return run_module("app", {"action": action, "release": str(top / "release"), "venv": str(top / "venv"),
                              "env_file": str(top / "env"), "user": USER, **args}, check=check, python=PYTHON)


def test_read_env_and_bad_input(release):
    env = run_module("app", {"action": "read_env", "env_file": str(release / "env")}, python=PYTHON)
    assert env["env"] == {"SCHOOL": 'Gym "Nord"'}
    assert run_module("app", {"action": "read_env", "env_file": str(release / "none")}, python=PYTHON)["env"] == {}
    missing = run_module("app", {"action": "migrate", "release": str(release / "release")}, python=PYTHON)
    assert missing["_failed"] and "venv" in missing["msg"]
    unsandboxed = app("init", release)
    assert unsandboxed["_failed"] and "sandbox" in unsandboxed["msg"] and "deploy_group" in unsandboxed["msg"]
    sandboxed = {"sandbox": "ProtectSystem=strict", "deploy_group": "nogroup"}
    assert app("init", release, user="no-such-user", **sandboxed)["msg"] == "no such user: no-such-user"
    assert "unprivileged" in app("init", release, user="root", **sandboxed)["msg"]


# --- the one way down to the service user ------------------------------------------------------------

def service_user_module():
    return load_plugin("plugins/module_utils/service_user.py")


def child_view(root_fd, stdin, stdout):
    """(In the child, which imports nothing: the tools venv lies below root's home.) What it sees: its ids, whether root's descriptor is still open, its dumpable flag."""
    try:
        os.fstat(root_fd)
        leaked = True
    except OSError:
        leaked = False
    with open("/proc/self/status", "rb") as status:
        ids = {line.split(b":")[0].decode(): [f.decode() for f in line.split()[1:]]
               for line in status if line.startswith((b"Uid", b"Gid", b"Groups"))}
    dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    data = stdin.read()
    stdout.write(data.upper())
    return {"ids": ids, "leaked": leaked, "dumpable": dumpable, "umask": os.umask(0o077), "cwd": os.getcwd(),
            "environment": dict(os.environ)}


def test_the_child_keeps_nothing_of_root(tmp_path):
    service_user = service_user_module()
    secret = tmp_path / "root-only"
    secret.write_text("x")
    secret.chmod(0o600)
    root_fd = os.open(secret, os.O_RDONLY)
    received = []
    os.environ["RESTIC_PASSWORD"] = "root-only-repository-password"  # as the backup unit's script has it
    try:
        view = service_user.ServiceUser(USER).run(
            child_view, root_fd, feed=lambda w: w.write(b"stream"), read=lambda r: received.append(r.read()))
    finally:
        os.close(root_fd)
        del os.environ["RESTIC_PASSWORD"]
    assert sorted(view["environment"]) == ["HOME", "LANG", "LOGNAME", "PATH", "USER"], "none of root's environment"
    assert view["ids"]["Uid"] == ["65534"] * 4 and view["ids"]["Gid"] == ["65534"] * 4
    assert view["ids"]["Groups"] == [], "no supplementary groups (root's would stay otherwise)"
    assert not view["leaked"], "root's open descriptors are closed before the drop"
    assert view["dumpable"] == 0, "the service user cannot attach to the child"
    assert (view["umask"], view["cwd"]) == (0o027, "/")
    assert received == [b"STREAM"]


def stops_itself(**_):
    os.kill(os.getpid(), signal.SIGSTOP)  # as the service user can do to it
    return "never"


def test_a_stopped_child_is_killed_after_the_timeout():
    service_user = service_user_module()
    with pytest.raises(service_user.LernmanagerError, match="stops_itself did not finish within 1 s and was killed"):
        service_user.ServiceUser(USER, timeout=1).run(stops_itself, feed=lambda w: w.write(b"x" * (1 << 20)))


def test_a_failing_child_reports_its_error():
    service_user = service_user_module()

    def fails(**_):
        raise service_user.LernmanagerError("planted link refused")

    def crashes(**_):
        return {}["missing"]

    with pytest.raises(service_user.LernmanagerError, match="planted link refused"):
        service_user.ServiceUser(USER).run(fails)
    with pytest.raises(service_user.LernmanagerError, match="KeyError"):
        service_user.ServiceUser(USER).run(crashes)


def test_an_upstream_env_is_read_never_through_a_link_and_only_as_a_plain_file(tmp_path):
    """Adoption (tasks/steps/host/adopt_data.yml): upstream's .env (root's, 0600) lay in a tree the
    service user owned, who may have put a link, a FIFO or another account's file in its place."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="lm-env-test-", dir="/var/tmp"))
    try:
        os.chmod(top, 0o755)
        secret = top / "root-only.env"
        secret.write_text("SECRET_KEY=another-instances-key\n")
        secret.chmod(0o600)
        env = top / ".env"

        def read():
            return run_module("app", {"action": "read_upstream_env", "env_file": str(env), "user": USER}, python=PYTHON)

        env.symlink_to(secret)
        linked = read()
        assert linked["env"] == {} and "could not be opened as a regular file (a link)" in linked["refused"]
        assert "another-instances-key" not in str(linked)
        env.unlink()
        os.link(secret, env)
        assert "has another name (a hard link)" in read()["refused"]
        env.unlink()
        os.mkfifo(env)
        assert "is not a regular file" in read()["refused"], "a FIFO would hang a plain open()"
        env.unlink()
        env.write_text("x" * (65 << 10))
        assert "larger than 64 KiB" in read()["refused"]
        env.write_text('SECRET_KEY="kept"\nBAD-KEY=1\n1X=2\nLLM_API_KEY=sk\n')
        env.chmod(0o600)  # root's, as upstream writes it
        plain = read()
        assert (plain["env"], plain["skipped_keys"], plain["refused"]) == (
            {"SECRET_KEY": "kept", "LLM_API_KEY": "sk"}, ["1X", "BAD-KEY"], "")
        shutil.chown(env, "daemon")  # neither root's nor the service user's
        assert "an owner other than root or the service user" in read()["refused"]
    finally:
        shutil.rmtree(top)
