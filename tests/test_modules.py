"""The collection's file modules (plugins/modules/) on real files: argument spec, check mode and
result as a task sees them. Each runs once through `ansible localhost -m` (AnsiballZ, as on a
host), the other cases in-process (the same main(), arguments and check mode). No containers."""

import grp
import hashlib
import json
import gzip
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from helpers import REPO, ROLE, load_plugin, load_yaml, run_module, run_module_in_process

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="sets owners: needs root")


def tree(root, files):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return root


# --- content_hash ---------------------------------------------------------------------------------

def test_content_hash_names_the_code_not_its_dates_or_data(tmp_path):
    app = tree(tmp_path / "app", {"app.py": "print(1)\n", "static/a.css": "a{}\n"})
    first = run_module_in_process("content_hash", {"path": str(app)})
    assert not first["changed"] and first["files"] == 2 and len(first["sha256"]) == 64
    os.utime(app / "app.py", (1, 1))
    tree(app, {"data/mbi_tracker.db": b"x", "__pycache__/app.cpython-311.pyc": b"x", ".git/HEAD": "ref"})
    assert run_module_in_process("content_hash", {"path": str(app)})["sha256"] == first["sha256"], "dates, data, .git count"
    (app / "app.py").chmod(0o755)
    assert run_module_in_process("content_hash", {"path": str(app)})["sha256"] != first["sha256"], "the executable bit counts"


def test_content_hash_of_an_empty_or_missing_directory_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        result = run_module_in_process("content_hash", {"path": str(path)})
        assert result["_failed"] and str(path) in result["msg"]


# --- bytecode ---------------------------------------------------------------------------------------

def pyc_mtimes(prefix):
    return {p: p.stat().st_mtime_ns for p in pathlib.Path(prefix).rglob("*.pyc")}


def test_bytecode_compiles_what_is_stale_and_only_that(tmp_path):
    app = tree(tmp_path / "app", {"app.py": "import models\n", "models.py": "X = 1\n"})
    prefix = tmp_path / "pycache"
    umask = os.umask(0o077)  # a hardened root's umask: the service must still read the prefix
    try:
        first = run_module_in_process("bytecode", {"prefix": str(prefix), "paths": [str(app)]})
    finally:
        os.umask(umask)
    assert first["changed"] and first["compiled"] == 2 and first["syntax_errors"] == []
    written = sorted(pathlib.Path(prefix).rglob("*.pyc"))
    assert len(written) == 2 and all(p.stat().st_mode & 0o777 == 0o644 for p in written)
    assert all(d.stat().st_mode & 0o777 == 0o755 for d in pathlib.Path(prefix).rglob("*") if d.is_dir())
    assert (prefix / str(app).lstrip("/") / f"app.{sys.implementation.cache_tag}.pyc").exists(), "mirrors the path"
    before = pyc_mtimes(prefix)
    assert not run_module_in_process("bytecode", {"prefix": str(prefix), "paths": [str(app)]})["changed"]
    (app / "models.py").write_text("X = 2  # changed\n")
    check = run_module_in_process("bytecode", {"prefix": str(prefix), "paths": [str(app)]}, check=True)
    assert check["changed"] and check["compiled"] == 1 and pyc_mtimes(prefix) == before, "check mode writes nothing"
    assert run_module_in_process("bytecode", {"prefix": str(prefix), "paths": [str(app)]})["compiled"] == 1


def test_the_interpreter_uses_the_bytecode_and_the_apt_hook_finds_it_current(tmp_path):
    """What the module writes is what the interpreter imports from the prefix, and what the apt
    hook's compileall counts as current (so a dpkg run rewrites nothing)."""
    app = tree(tmp_path / "app", {"app.py": "import models\n", "models.py": "X = 1\n"})
    prefix = tmp_path / "pycache"
    run_module_in_process("bytecode", {"prefix": str(prefix), "paths": [str(app)]})
    before = pyc_mtimes(prefix)
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(prefix))
    subprocess.run([sys.executable, "-c", "import app"], cwd=app, env=env, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "timestamp", str(app)],
                   env=env, check=True)
    assert pyc_mtimes(prefix) == before
    assert not list(app.rglob("__pycache__")), "nothing is written beside the sources"


def test_bytecode_refuses_another_interpreter_and_syntax_errors_in_strict_mode(tmp_path):
    app = tree(tmp_path / "app", {"gunicorn.conf.py": "workers = (\n"})
    prefix = str(tmp_path / "pycache")
    wrong = run_module_in_process("bytecode", {"prefix": prefix, "paths": [str(app)], "venv": str(tmp_path / "venv")})
    assert wrong["_failed"] and "ansible_python_interpreter=" in wrong["msg"]
    lenient = run_module_in_process("bytecode", {"prefix": prefix, "paths": [str(app)], "venv": sys.prefix})
    assert not lenient["_failed"] and "gunicorn.conf.py" in lenient["syntax_errors"][0]
    strict = run_module_in_process("bytecode", {"prefix": prefix, "paths": [str(app / "gunicorn.conf.py")], "strict": True})
    assert strict["_failed"] and "syntax errors" in strict["msg"] and "gunicorn.conf.py" in strict["msg"]


def test_the_stdlib_skip_list_is_the_roles():
    """The module's documented default and the role's list (which the apt hook uses) are one list."""
    module = load_plugin("plugins/modules/bytecode.py")
    role_vars = load_yaml(ROLE / "vars" / "main.yml")
    import yaml
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]["stdlib_skip"]["default"]
    assert module.STDLIB_SKIP == role_vars["__lernmanager_stdlib_skip"] == documented


# --- precompressed static files (module_utils/precompress.py, written by the release module) -----

def test_precompressed_copies_are_reproducible_and_written_once(tmp_path):
    precompress = load_plugin("plugins/module_utils/precompress.py")
    css = "body { color: red; }\n" * 40
    static = tree(tmp_path / "static", {"site.css": css, "tiny.js": "x()", "logo.png": b"\x89PNG" * 200})
    os.utime(static / "site.css", (1_000_000, 1_000_000))
    todo = list(precompress.missing_copies(str(static), [".gz"]))
    assert todo == [(str(static / "site.css"), ".gz")], "only a compressible file above the minimum size"
    precompress.write_copies(None, todo, brotli=None)
    copy = static / "site.css.gz"
    assert gzip.decompress(copy.read_bytes()).decode() == css
    assert copy.stat().st_mtime == 1_000_000, "nginx's ETag and Last-Modified match the file's"
    assert sorted(p.name for p in static.iterdir()) == ["logo.png", "site.css", "site.css.gz", "tiny.js"]
    first = copy.read_bytes()
    copy.unlink()
    precompress.write_copies(None, list(precompress.missing_copies(str(static), [".gz"])), brotli=None)
    assert copy.read_bytes() == first, "the same file gives the same bytes"
    assert list(precompress.missing_copies(str(static), [".gz"])) == [], "nothing left to write"


# --- release ---------------------------------------------------------------------------------------

@ROOT_ONLY
def test_release_partial_starts_empty_and_never_follows_a_left_link(tmp_path):
    outside = tree(tmp_path / "outside", {"keep.txt": "mine"})
    partial = tmp_path / "releases" / ".g-1.partial"
    tree(partial, {"half/app.py": "x"})
    (partial / "link").symlink_to(outside)
    assert run_module_in_process("release", {"path": str(partial), "state": "partial"}, check=True)["changed"]
    assert (partial / "half").exists(), "check mode changes nothing"
    assert run_module_in_process("release", {"path": str(partial), "state": "partial"})["changed"]
    assert list(partial.iterdir()) == [] and oct(partial.stat().st_mode & 0o7777) == "0o755"
    assert (outside / "keep.txt").read_text() == "mine"
    partial.rmdir()
    partial.symlink_to(outside)
    run_module_in_process("release", {"path": str(partial), "state": "partial"})
    assert partial.is_dir() and not partial.is_symlink() and (outside / "keep.txt").exists(), "a link is replaced, not followed"


@ROOT_ONLY
def test_release_finished_is_roots_read_only_linked_precompressed_and_in_place(tmp_path):
    outside = tree(tmp_path / "outside", {"secret": "x"})
    os.chown(outside / "secret", 1234, 1234)
    (outside / "secret").chmod(0o600)
    partial = tree(tmp_path / "releases" / ".g-1.partial", {
        "app.py": "app = 1\n", "requirements.txt": "flask\n", "run.sh": "#!/bin/sh\n", "open.txt": "",
        "data/mbi_tracker.db": "shipped", "instance": "a file", "static/css/site.css": "a { }\n" * 60})
    (partial / "run.sh").chmod(0o4775)
    (partial / "open.txt").chmod(0o666)
    os.chown(partial / "open.txt", 1234, 1234)
    (partial / "static" / "outside").symlink_to(outside)
    dest = tmp_path / "releases" / "g-1"
    args = {"path": str(partial), "dest": str(dest), "state": "finished"}

    result = run_module_in_process("release", args)
    assert result["changed"] and result["written"] == 1 and not partial.exists()
    modes = {name: oct((dest / name).stat().st_mode & 0o7777) for name in ("run.sh", "open.txt", "app.py", "static/css")}
    assert modes == {"run.sh": "0o755", "open.txt": "0o644", "app.py": "0o644", "static/css": "0o755"}
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in dest.rglob("*")} | {(dest.stat().st_uid, 0)} == {(0, 0)}
    assert os.readlink(dest / "data") == "../../shared/data" and os.readlink(dest / "instance") == "../../shared/instance"
    assert (dest / "static/css/site.css.gz").stat().st_mtime == (dest / "static/css/site.css").stat().st_mtime
    secret = (outside / "secret").stat()
    assert (secret.st_uid, oct(secret.st_mode & 0o777)) == (1234, "0o600"), "a link in the release is not followed"


def test_release_without_app_files_or_onto_an_existing_one_is_refused(tmp_path):
    partial = tree(tmp_path / ".g-2.partial", {"app.py": "x", "README.md": "not the app"})
    (tmp_path / "requirements.txt").write_text("outside")
    (partial / "requirements.txt").symlink_to(tmp_path / "requirements.txt")
    args = {"path": str(partial), "dest": str(tmp_path / "g-2"), "state": "finished"}
    refused = run_module_in_process("release", args)
    assert refused["_failed"] and "has no requirements.txt: it does not look like Lernmanager" in refused["msg"]
    assert (partial / "app.py").exists() and not (tmp_path / "g-2").exists(), "nothing moved"
    (partial / "requirements.txt").unlink()
    (partial / "requirements.txt").write_text("flask\n")
    (tmp_path / "g-2").mkdir()
    refused = run_module_in_process("release", args)
    assert refused["_failed"] and "exists already" in refused["msg"] and (partial / "app.py").exists()


# --- prune_releases ---------------------------------------------------------------------------------

def make_release(root, name, venv, age):
    release = root / "releases" / name
    release.mkdir(parents=True)
    (release / ".venv").symlink_to(root / "venvs" / venv)
    os.utime(release, (age, age))


def test_pruning_keeps_the_newest_the_live_and_the_previous_release(tmp_path):
    root, prefix = tmp_path / "app", tmp_path / "pycache"
    for venv in ("v-old", "v-new", "v-unused"):
        (root / "venvs" / venv).mkdir(parents=True)
    for age, name in enumerate(["r1", "r2", "r3", "r4", "r5"]):
        make_release(root, name, "v-old" if name in ("r1", "r2") else "v-new", 1_000_000 + age)
    (root / "releases" / ".r6.partial").mkdir()
    (root / "current").symlink_to("releases/r5")
    (root / "previous").symlink_to("releases/r1")  # e.g. after a rollback to an old release
    bytecode = prefix / str(root / "releases" / "r2").lstrip("/")
    bytecode.mkdir(parents=True)
    args = {"root": str(root), "prefix": str(prefix), "keep": 2}
    check = run_module_in_process("prune_releases", args, check=True)
    assert check["changed"] and check["removed_releases"] == ["r3", "r2"] and (root / "releases" / "r2").exists()
    result = run_module_in_process("prune_releases", args)
    assert result["removed_releases"] == ["r3", "r2"] and result["kept"] == ["r1", "r4", "r5"]
    assert sorted(os.listdir(root / "releases")) == [".r6.partial", "r1", "r4", "r5"]
    assert result["removed_venvs"] == ["v-unused"], "r1 (previous) still uses v-old"
    assert not bytecode.exists()
    assert not run_module_in_process("prune_releases", args)["changed"]
    assert run_module_in_process("prune_releases", {**args, "keep": 0})["_failed"]


# --- service_dirs -----------------------------------------------------------------------------------

@pytest.fixture
def service_parent():
    """A directory owned by the service user (`nobody`), outside pytest's root-only tmp_path."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="lm-dirs-", dir="/var/tmp"))
    shutil.chown(path, "nobody")
    yield path
    shutil.rmtree(path)


@ROOT_ONLY
def test_service_dirs_creates_and_sets_them(service_parent):
    args = {"parent": str(service_parent), "directories": [
        {"name": "uploads", "owner": "nobody", "group": "www-data", "mode": "2750"},
        {"name": "tmp", "owner": "nobody", "group": "nogroup", "mode": "0700"}]}
    assert run_module_in_process("service_dirs", args, check=True)["changed_dirs"] == ["uploads", "tmp"]
    assert not (service_parent / "uploads").exists()
    assert run_module_in_process("service_dirs", args)["changed_dirs"] == ["uploads", "tmp"]
    uploads = (service_parent / "uploads").stat()
    assert (uploads.st_mode & 0o7777, uploads.st_uid, uploads.st_gid) == (0o2750, 65534, grp.getgrnam("www-data").gr_gid)
    assert (service_parent / "tmp").stat().st_mode & 0o7777 == 0o700
    (service_parent / "tmp").chmod(0o777)
    assert run_module_in_process("service_dirs", args)["changed_dirs"] == ["tmp"]
    assert not run_module_in_process("service_dirs", args)["changed"]


@ROOT_ONLY
def test_service_dirs_never_follow_a_planted_link(service_parent, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    (service_parent / "uploads").symlink_to(victim)
    args = {"parent": str(service_parent), "directories": [
        {"name": "uploads", "owner": "nobody", "group": "www-data", "mode": "2750"}]}
    for check in (True, False):
        result = run_module_in_process("service_dirs", args, check=check)
        assert result["_failed"] and "is not a directory" in result["msg"]
    st = victim.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700), "the link's target is untouched"
    linked_parent = tmp_path / "parent-link"
    linked_parent.symlink_to(service_parent)
    assert run_module_in_process("service_dirs", {**args, "parent": str(linked_parent)})["_failed"]


@ROOT_ONLY
def test_service_dirs_lose_a_race_to_a_planted_link_cleanly(service_parent, tmp_path, monkeypatch):
    """The service user plants a link between the module's look and its mkdir: a clear failure,
    and the link's target untouched."""
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    real_mkdir = os.mkdir

    def planted_first(name, mode=0o777, *, dir_fd=None):
        os.symlink(victim, name, dir_fd=dir_fd)
        return real_mkdir(name, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", planted_first)
    result = run_module_in_process("service_dirs", {"parent": str(service_parent), "directories": [
        {"name": "uploads", "owner": "nobody", "group": "www-data", "mode": "2750"}]})
    assert result["_failed"] and "uploads is not a directory" in result["msg"], result
    st = victim.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700), "the link's target is untouched"


@pytest.mark.parametrize("name, args", [
    ("content_hash", {"path": str(REPO / "tests" / "fixtures" / "standin")}),
    ("cgroup_memory_info", {}),
    ("prune_releases", {"root": "/nonexistent", "prefix": "/nonexistent", "keep": 1}),
    ("root_files", {"entries": [{"path": "/nonexistent/unit", "content": "[Unit]\n"}]}),
    ("paths_info", {"paths": ["/etc/hostname", "/nonexistent"], "read": ["/etc/hostname"]}),
    ("neighbours", {"port": 8081, "server_name": "a.test", "units_dir": "/nonexistent", "sites_dir": "/nonexistent"}),
    ("host_status", {"root": "/nonexistent", "service": "lernmanager-status-test.service",
                     "health_url": "http://school.test:9/login", "disks": []}),
])
def test_each_module_runs_as_ansible_ships_it(name, args):
    """Through `ansible -m`: AnsiballZ packs the module with its module_utils, as for a host."""
    in_process = run_module_in_process(name, args, check=True)
    shipped = run_module(name, args, check=True)
    # The ad-hoc callback shows failure as _failed alone; the host's free memory moves between two calls.
    ignored = ("invocation", "failed", "memory", "journal_mib", "line")
    assert {k: shipped.get(k) for k in in_process if k not in ignored} == \
        {k: v for k, v in in_process.items() if k not in ignored}


# --- root_files -------------------------------------------------------------------------------------

@pytest.fixture
def root_dir():
    """A root-owned 0755 directory: the module refuses to write below anything others may write."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="lm-root-files-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@ROOT_ONLY
def test_root_files_sets_each_entry_once_and_reports_only_what_differs(root_dir):
    args = {"entries": [
        {"path": str(root_dir / "etc"), "state": "directory", "mode": "0750"},
        {"path": str(root_dir / "etc" / "unit"), "content": "[Unit]\n"},
        {"path": str(root_dir / "etc" / "secret"), "content": "s3cret", "group": "nogroup", "mode": "0640"},
        {"path": str(root_dir / "enabled"), "state": "link", "src": str(root_dir / "etc" / "unit")},
        {"path": str(root_dir / "default"), "state": "absent"},
    ]}
    (root_dir / "default").write_text("distribution's\n")
    everything = [e["path"] for e in args["entries"]]
    assert run_module_in_process("root_files", args, check=True)["changed_paths"] == everything
    assert not (root_dir / "etc").exists() and (root_dir / "default").exists(), "check mode changes nothing"
    assert run_module_in_process("root_files", args)["changed_paths"] == everything
    secret = (root_dir / "etc" / "secret").stat()
    assert (secret.st_mode & 0o7777, secret.st_gid, (root_dir / "etc" / "secret").read_text()) == \
        (0o640, grp.getgrnam("nogroup").gr_gid, "s3cret")
    assert (root_dir / "etc").stat().st_mode & 0o7777 == 0o750
    assert os.readlink(root_dir / "enabled") == str(root_dir / "etc" / "unit")
    assert not (root_dir / "default").exists()
    assert not run_module_in_process("root_files", args)["changed"]
    (root_dir / "etc" / "unit").chmod(0o600)
    (root_dir / "etc" / "secret").write_text("tampered")
    assert run_module_in_process("root_files", args)["changed_paths"] == everything[1:3]
    assert not list((root_dir / "etc").glob(".*")), "no temporary file is left behind"


@ROOT_ONLY
def test_root_files_diff_shows_content_and_mode(root_dir):
    target = root_dir / "site"
    target.write_text("old\n")
    target.chmod(0o600)
    args = {"entries": [{"path": str(target), "content": "new\n"}], "_ansible_diff": True}
    diff = run_module_in_process("root_files", args, check=True)["diff"]
    assert diff == [{"before_header": str(target), "after_header": str(target),
                     "before": "file, owner 0, group 0, mode 0600\nold\n", "after": "file, owner 0, group 0, mode 0644\nnew\n"}]
    assert "diff" not in run_module_in_process("root_files", {"entries": args["entries"]}, check=True)


@ROOT_ONLY
def test_root_files_replace_a_planted_link_and_never_write_below_a_directory_others_may_write(root_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root's\n")
    (root_dir / "unit").symlink_to(victim)
    assert run_module_in_process("root_files", {"entries": [{"path": str(root_dir / "unit"), "content": "x\n"}]})["changed"]
    assert victim.read_text() == "root's\n" and (root_dir / "unit").read_text() == "x\n" and not (root_dir / "unit").is_symlink()
    service = root_dir / "service"
    service.mkdir()
    shutil.chown(service, "nobody")
    for entry in ({"path": str(service / "conf"), "content": "x\n"},
                  {"path": str(service / "sub" / "conf"), "state": "directory"}):
        result = run_module_in_process("root_files", {"entries": [{"path": str(root_dir / "first"), "content": "1\n"}, entry]})
        assert result["_failed"] and "writable by others than root" in result["msg"] and "Nothing was changed" in result["msg"]
    assert not (root_dir / "first").exists() and not list(service.iterdir()), "refused before any change"
    shutil.chown(service, "root")
    service.chmod(0o777)
    assert run_module_in_process("root_files", {"entries": [{"path": str(service / "conf"), "content": "x\n"}]})["_failed"]


@ROOT_ONLY
def test_root_files_puts_everything_back_when_the_test_or_a_validation_fails(root_dir):
    (root_dir / "site").write_text("good\n")
    entries = [{"path": str(root_dir / "conf.d"), "state": "directory"},
               {"path": str(root_dir / "conf.d" / "new"), "content": "new\n"},
               {"path": str(root_dir / "site"), "content": "broken\n"},
               {"path": str(root_dir / "enabled"), "state": "link", "src": "site"}]
    failing = run_module("root_files", {"entries": entries, "test": ["grep", "-q", "good", str(root_dir / "site")]})
    assert failing["_failed"] and "put back" in failing["msg"], failing
    assert sorted(p.name for p in root_dir.iterdir()) == ["site"] and (root_dir / "site").read_text() == "good\n"
    passing = run_module("root_files", {"entries": entries, "test": ["grep", "-q", "broken", str(root_dir / "site")]})
    assert passing["changed"] and (root_dir / "conf.d" / "new").read_text() == "new\n"
    invalid = run_module("root_files", {"entries": [
        {"path": str(root_dir / "other"), "content": "fine\n"},
        {"path": str(root_dir / "gunicorn.conf.py"), "content": "workers = (\n", "validate": "python3 -m py_compile %s"}]})
    assert invalid["_failed"] and "py_compile" in invalid["msg"], invalid
    assert not (root_dir / "other").exists() and not (root_dir / "gunicorn.conf.py").exists()


# --- paths_info -------------------------------------------------------------------------------------

def test_paths_info_looks_at_each_path_as_stat_does_and_reads_small_files(tmp_path):
    (tmp_path / "live.json").write_text('{"release": "p-1"}\n')
    (tmp_path / "current").symlink_to("releases/p-1")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    paths = [str(tmp_path / name) for name in ("live.json", "current", "dir", "fifo", "missing")]
    result = run_module_in_process("paths_info", {"paths": paths, "read": [paths[0], paths[4]]}, check=True)
    assert not result["changed"]
    assert result["paths"] == {
        paths[0]: {"exists": True, "type": "file", "checksum": hashlib.sha1(b'{"release": "p-1"}\n').hexdigest()},
        paths[1]: {"exists": True, "type": "link", "lnk_target": "releases/p-1"},
        paths[2]: {"exists": True, "type": "directory"},
        paths[3]: {"exists": True, "type": "other"},
        paths[4]: {"exists": False}}
    assert result["contents"] == {paths[0]: '{"release": "p-1"}\n', paths[4]: None}
    for planted in (paths[1], paths[3]):  # a link, or a FIFO that would block a plain open()
        failed = run_module_in_process("paths_info", {"read": [planted]})
        assert failed["_failed"] and "cannot read" in failed["msg"], failed


def test_paths_info_without_checksums_does_not_read_the_files(tmp_path):
    unreadable = tmp_path / "lernmanager.db"
    unreadable.write_bytes(b"SQLite format 3\0")
    unreadable.chmod(0)  # root reads it anyway: the proof is the missing checksum, and no error as non-root
    result = run_module_in_process("paths_info", {"paths": [str(unreadable)], "checksum": False})
    assert result["paths"] == {str(unreadable): {"exists": True, "type": "file"}}


# --- neighbours -------------------------------------------------------------------------------------

def test_neighbours_names_what_takes_the_port_or_name_and_the_other_instances(tmp_path):
    units, sites = tmp_path / "system", tmp_path / "sites-enabled"
    tree(units, {
        "lernmanager.socket": "[Unit]\nDescription=Lernmanager lernmanager socket\n[Socket]\nListenStream=127.0.0.1:8081\n",
        "zwei.socket": "[Unit]\nDescription=Lernmanager zwei socket\n[Socket]\nListenStream=127.0.0.1:8082\n",
        "other.socket": "[Socket]\nListenStream=8081\n",
        "lernmanager.service": "ListenStream=127.0.0.1:8081\n"})
    tree(sites, {"lernmanager": "server_name a.test;\n", "lernmanager-catchall": "listen 443 default_server;\n",
                 "zwei": "server {\n  listen 443 ssl;\n  server_name zwei.test www.a.test;\n}\n",
                 "shop": "server_name  shop.test a.test ;\n  listen [::]:4430;\n"})
    (sites / "dangling").symlink_to(tmp_path / "missing")
    args = {"port": 8081, "server_name": "a.test", "own_units": ["lernmanager.socket"],
            "own_sites": ["lernmanager", "lernmanager-catchall"], "units_dir": str(units), "sites_dir": str(sites)}
    result = run_module_in_process("neighbours", args, check=True)
    assert result["clashes"] == [f"{units}/other.socket:ListenStream=8081", f"{sites}/shop:server_name  shop.test a.test ;"]
    assert result["other_instances"] == [f"{units}/zwei.socket"] and result["other_tls_sites"] == [f"{sites}/zwei"]
    alone = run_module_in_process("neighbours", {**args, "units_dir": str(tmp_path / "no"), "sites_dir": str(tmp_path / "no")})
    assert (alone["clashes"], alone["other_instances"], alone["other_tls_sites"], alone["changed"]) == ([], [], [], False)



def test_neighbours_names_the_program_and_unit_that_hold_a_listening_port(tmp_path):
    """A real listening socket of another process, found by its port, with its program's name."""
    holder = subprocess.Popen([sys.executable, "-c", "import socket, sys, time\n"
                               "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
                               "print(s.getsockname()[1], flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(holder.stdout.readline())
        args = {"port": port, "server_name": "a.test", "units_dir": str(tmp_path), "sites_dir": str(tmp_path)}
        result = run_module_in_process("neighbours", {**args, "listening_ports": [port, 1]})
        (found,) = [h for h in result["port_holders"] if h["pid"] == holder.pid]
        assert found["port"] == port and found["program"].startswith("python"), result
        assert isinstance(found["unit"], str)
        assert run_module_in_process("neighbours", args)["port_holders"] == []
    finally:
        holder.kill()
        holder.wait()


def test_neighbours_resolves_the_server_name_only_when_asked(tmp_path):
    """The addresses a name resolves to, as the host's resolver gives them (here its /etc/hosts)."""
    args = {"port": 8081, "server_name": "localhost", "units_dir": str(tmp_path), "sites_dir": str(tmp_path)}
    found = run_module_in_process("neighbours", {**args, "resolve": True})["name_addresses"]
    assert found and set(found) <= {"127.0.0.1", "::1"}, found
    assert len(found) == len(set(found)), "each address once"
    assert run_module_in_process("neighbours", args)["name_addresses"] == []
    # A name no resolver knows: no addresses, not an error (the role's message says what to do).
    unknown = run_module_in_process("neighbours", {**args, "server_name": "nobody.invalid", "resolve": True})
    assert unknown["name_addresses"] == [] and not unknown.get("failed")


@ROOT_ONLY
def test_root_files_takes_back_a_directory_it_lists_before_what_goes_in_it(root_dir):
    """An app root that another owner had (an upstream install's): listed first, it is root's
    before anything is set inside it; a link planted in it while it was not is refused, and the
    call undone."""
    app_root = root_dir / "opt"
    app_root.mkdir()
    shutil.chown(app_root, "nobody")
    entries = [{"path": str(app_root), "state": "directory"}, {"path": str(app_root / "releases"), "state": "directory"}]
    assert run_module_in_process("root_files", {"entries": entries})["changed_paths"] == [e["path"] for e in entries]
    assert app_root.stat().st_uid == 0 and (app_root / "releases").is_dir()
    shutil.chown(app_root, "nobody")
    (app_root / "releases").rmdir()
    (app_root / "releases").symlink_to("/etc")
    result = run_module_in_process("root_files", {"entries": entries})
    assert result["_failed"] and "not a directory" in result["msg"] and os.readlink(app_root / "releases") == "/etc"
    assert app_root.stat().st_uid == 65534 and "put back" in result["msg"], "the call is undone as a whole"


# --- host_status ------------------------------------------------------------------------------------

@pytest.fixture
def login_server():
    """/login on 127.0.0.1 that answers 200 only to the site's name (as nginx's site does)."""
    import http.server
    import threading

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            named = self.headers["Host"].split(":")[0] == "school.test"
            self.send_response(200 if named and self.path == "/login" else 444 if not named else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def status_root(tmp_path, since):
    root = tree(tmp_path / "opt", {"live.json": f'{{"release": "r-2", "since": "{since}"}}\n'})
    (root / "previous").symlink_to(root / "releases" / "r-1")
    return root


def test_host_status_reports_what_serves_and_warns_about_what_needs_an_admin(tmp_path, login_server, capfd):
    root = status_root(tmp_path, "2026-01-01T00:00:00Z")
    (root / "shared" / "data").mkdir(parents=True)
    (root / "shared" / "data" / "migrations_done.txt").symlink_to("/etc/shadow")
    cert = tmp_path / "fullchain.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(cert), "-days", "5", "-subj", "/CN=school.test"], check=True, capture_output=True)
    args = {"root": str(root), "service": "lernmanager-status-test.service",
            "health_url": f"http://school.test:{login_server}/login", "certificate": str(cert),
            "backup_settings": str(tmp_path / "no-backup-settings.json"), "disks": [str(tmp_path), str(root)],
            "min_free_percent": 101}
    result = run_module_in_process("host_status", args, check=True)
    assert not result["changed"]
    assert result["live"] == {"release": "r-2", "since": "2026-01-01T00:00:00Z"} and result["previous"] == "r-1"
    assert result["health"] == {"status": 200}, "asked by the site's name on 127.0.0.1"
    assert result["certificate"]["days_left"] == 4
    assert len(result["disks"]) == 1 and result["disks"][0]["paths"] == [str(tmp_path), str(root)], "one file system once"
    problems = result["problems"]
    assert any("certificate expires in 4 d" in p for p in problems), problems
    assert any("backups cannot be read" in p and "no-backup-settings.json is missing" in p for p in problems), problems
    assert any(p.startswith(f"{tmp_path}, {root}: ") and "less than 101 %" in p for p in problems), problems
    assert any("shared/data holds 'migrations_done.txt' (a link to '/etc/shadow')" in p for p in problems), problems
    assert result["planted"] == [{"name": "migrations_done.txt", "kind": "link", "target": "/etc/shadow"}]
    assert result["line"].startswith("live r-2 (") and "previous r-1, /login 200" in result["line"]
    assert f"WARNING ({len(problems)}): " in result["line"] and "cert 4 d" in result["line"]
    shown = capfd.readouterr().err
    # (Ansible shows a warning once per process: "the service is unknown" may have been shown before.)
    assert all(f"[WARNING]: {p}" in shown for p in problems if "unknown" not in p), "each problem is a warning"


def test_host_status_knows_a_host_that_does_not_answer_or_serves_nothing_yet(tmp_path):
    root = tree(tmp_path / "opt", {})
    args = {"root": str(root), "service": "lernmanager-status-test.service",
            "health_url": "http://school.test:9/login", "disks": [str(tmp_path)]}
    result = run_module_in_process("host_status", args)
    assert result["live"] == {} and result["previous"] == "" and result["health"] == {"status": 0}
    assert "no health-checked release serves yet (deploy the host)" in result["problems"]
    assert "/login through nginx answers nothing, not 200" in result["problems"]
    assert result["line"].startswith("live -, previous -, /login -, ")
    assert "backup" not in result and "certificate" not in result


def test_host_status_judges_backups_by_age_and_a_new_host_has_had_no_night_yet():
    host_status = load_plugin("plugins/module_utils/host_health.py")
    now = __import__("time").time()
    iso = lambda seconds_ago: host_status.utc_iso(now - seconds_ago)  # noqa: E731
    limits = {"max_backup_age_days": 2, "min_certificate_days": 14, "min_free_percent": 15}
    base = {"live": {"release": "r", "since": iso(3600)}, "health": {"status": 200}, "disks": [],
            "service": {"active": "active", "memory_bytes": 70 << 20, "restarts": 0}}
    assert host_status.judge({**base, "backup": None}, limits) == [], "deployed an hour ago: no night yet"
    old = {**base, "live": {"release": "r", "since": iso(5 * 86400)}}
    assert host_status.judge({**old, "backup": None}, limits) == ["no backup in the repository, while the app serves for 5 d"]
    stale = {**old, "backup": {"age_seconds": 3 * 86400 + 5}}
    assert host_status.judge(stale, limits) == ["the newest backup is 3 d old (more than 2 d)"]
    assert host_status.judge({**old, "backup": {"age_seconds": 86400}}, limits) == []
    assert [host_status.age(s) for s in (5, 90, 7200, 3 * 86400)] == ["5 s", "1 min", "2 h", "3 d"]


def test_host_health_judges_memory_a_pending_reboot_and_alerts_that_did_not_go_out():
    health = load_plugin("plugins/module_utils/host_health.py")
    now = int(__import__("time").time())
    limits = {"max_backup_age_days": 2, "min_certificate_days": 14, "min_free_percent": 15}
    base = {"live": {"release": "r", "since": health.utc_iso(now - 3600)}, "health": {"status": 200}, "disks": [],
            "service": {"active": "active", "memory_bytes": 70 << 20, "restarts": 0},
            "memory": {"total_mib": 1000, "available_mib": 400, "available_percent": 40}, "reboot": {"pending": False}}
    assert health.judge(base, limits) == []
    low = {**base, "memory": {"total_mib": 1000, "available_mib": 90, "available_percent": 9}}
    assert health.judge(low, limits) == ["memory: 9 % available (90 of 1000 MiB; less than 15 %)"]
    week = {**base, "reboot": {"pending": True, "since": health.utc_iso(now - 6 * 86400), "age_seconds": 6 * 86400}}
    assert health.judge(week, limits) == [], "pending for less than 7 days: the reboot window may yet come"
    stale = {**base, "reboot": {"pending": True, "since": "2026-11-01T00:00:00Z", "age_seconds": 8 * 86400}}
    assert health.judge(stale, limits) == ["a reboot has been pending for 8 d (since 2026-11-01T00:00:00Z): updates wait for it"]
    failed = {"time": now - 60, "action": "fail", "errors": {"webhook": "HTTP 500"}}
    unsent = {**base, "alerts": {"check": None, "last_failed": failed, "last": failed}}
    assert health.judge(unsent, limits) == [f"the last alert could not be sent ({health.utc_iso(now - 60)}: webhook: HTTP 500)"]
    since_sent = {**base, "alerts": {"check": None, "last_failed": failed, "last": {**failed, "time": now, "errors": {}}}}
    assert health.judge(since_sent, limits) == [], "one that got through since: the way is open again"
    passed = {"time": now - 7200, "snapshot": "1a2b3c4d", "ok": True, "problems": []}
    assert health.judge({**base, "drill": passed}, limits) == []
    assert "drill 2 h ago: ok" in health.one_line({**base, "previous": None, "drill": passed, "problems": []})
    lost = "the set could not be read back: restic dump failed: Fatal: load pack 9f8e at rest:https://u:secret@box/"
    failed_drill = {**passed, "ok": False, "problems": [lost]}
    when = health.utc_iso(now - 7200)
    assert health.judge({**base, "drill": failed_drill}, limits) == [f"the restore drill of {when} failed (set 1a2b3c4d): {lost}"]
    care = {"time": now - 3 * 86400, "ok": True, "vacuumed": False, "quick_check": "ok",
            "before": {"bytes": 14 << 20, "pages": 3584, "free_pages": 72, "wal_bytes": 0}}
    database = {"bytes": 14 << 20, "wal_bytes": 1 << 20, "care": care}
    assert health.judge({**base, "database": database}, limits) == []
    assert "database 14 MiB + WAL 1 MiB, care 3 d ago: ok (2 % free pages before)" in health.one_line(
        {**base, "previous": None, "database": database, "problems": []})
    damaged = {**database, "care": {**care, "ok": False, "quick_check": "*** in database main *** Page 7: btreeInitPage() returns error code 11"}}
    assert health.judge({**base, "database": damaged}, limits, details=False) == [
        f"the database care of {health.utc_iso(now - 3 * 86400)} found the database damaged (quick_check: not ok): "
        "restore the newest good set"]
    for_alert = health.judge({**base, "drill": failed_drill}, limits, details=False)
    assert for_alert == [f"the restore drill of {when} failed (set 1a2b3c4d): the set would not restore as it was made "
                         "(journalctl -u '*-restore-drill' tells why)"], "no repository address leaves the host"


def test_an_alert_names_no_planted_file_and_no_repository_error():
    health = load_plugin("plugins/module_utils/host_health.py")
    limits = {"max_backup_age_days": 2, "min_certificate_days": 14, "min_free_percent": 15}
    status = {"live": {"release": "r", "since": ""}, "health": {"status": 200}, "disks": [],
              "service": {"active": "active", "memory_bytes": None, "restarts": 0},
              "planted": [{"name": "Klasse 7a Noten.db", "kind": "link", "target": "/etc/shadow"}],
              "backup": {"error": "Fatal: unable to open repo at rest:https://u:secret@box/: 401"}}
    detailed = health.judge(status, limits)
    assert any("Klasse 7a" in p for p in detailed) and any("secret" in p for p in detailed)
    for_alert = health.judge(status, limits, details=False)
    assert len(for_alert) == 2 and not any("Klasse" in p or "secret" in p or "shadow" in p for p in for_alert), for_alert


# --- planted --------------------------------------------------------------------------------------

def test_planted_lists_then_moves_aside_without_following(tmp_path):
    """A link, a FIFO and a link named like the description: listed (a link's target as text), kept
    in check mode, then renamed into a root-only quarantine; the files the app makes stay, and
    what the link names is never touched."""
    data, victim = tmp_path / "data", tmp_path / "victim"
    tree(data, {"mbi_tracker.db": b"db", "uploads/a.png": b"png"})
    victim.write_text("root's")
    (data / "migrations_done.txt").symlink_to(victim)
    (data / "20990101T000000Z.json").symlink_to("/etc")
    os.mkfifo(data / "queue")
    args = {"data_dir": str(data)}
    listed = run_module_in_process("planted", args)
    assert not listed["changed"] and listed["quarantined_to"] == ""
    assert [(e["name"], e["kind"], e["target"]) for e in listed["planted"]] == [
        ("20990101T000000Z.json", "link", "/etc"), ("migrations_done.txt", "link", str(victim)), ("queue", "fifo", "")]
    assert "'migrations_done.txt' (a link to " in listed["description"]
    quarantine = {**args, "quarantine": True, "quarantine_dir": str(tmp_path / "quarantine")}
    assert run_module_in_process("planted", quarantine, check=True)["changed"]
    assert (data / "queue").exists() and not (tmp_path / "quarantine").exists(), "check mode moves nothing"
    release = tree(tmp_path / "release", {"migrate/migrate_002_b.py": "", "migrate/migrate_001_a.py": "",
                                          "migrate/_helper.py": ""})
    moved = run_module_in_process("planted", {**quarantine, "live_release": str(release), "owner": "nobody"})
    assert moved["changed"] and len(moved["planted"]) == 3
    record = data / "migrations_done.txt"
    assert moved["record_written"] == ["migrate_001_a.py", "migrate_002_b.py"], "the live release's migrations ran"
    assert record.read_text() == "migrate_001_a.py\nmigrate_002_b.py\n" and record.stat().st_uid == 65534
    record.unlink()
    target = pathlib.Path(moved["quarantined_to"])
    assert sorted(os.listdir(data)) == ["mbi_tracker.db", "uploads"]
    assert sorted(os.listdir(target)) == ["20990101T000000Z.json", "migrations_done.txt", "queue"]
    assert os.readlink(target / "migrations_done.txt") == str(victim) and victim.read_text() == "root's"
    assert (tmp_path / "quarantine").stat().st_mode & 0o777 == 0o700 and target.stat().st_mode & 0o777 == 0o700
    described = target.with_name(target.name + ".json")
    assert '"migrations_done.txt"' in described.read_text() and described.stat().st_mode & 0o777 == 0o600
    again = run_module_in_process("planted", quarantine)
    assert not again["changed"] and again["planted"] == [], "nothing left: nothing to do"
    assert run_module_in_process("planted", {"data_dir": str(tmp_path / "missing")})["planted"] == []
    linked = tmp_path / "data-link"
    linked.symlink_to(data)
    assert run_module_in_process("planted", {"data_dir": str(linked)})["_failed"], "data/ itself as a link"


def test_drift_says_what_differs_by_path_without_content(tmp_path):
    """deploy_record.drift: the record's descriptors against the paths now (as root, in a temporary tree)."""
    record_module = load_plugin("plugins/module_utils/deploy_record.py")
    site, env, link = tmp_path / "site", tmp_path / "env", tmp_path / "current"
    site.write_text("server { listen 80; }\n")
    env.write_text("SECRET_KEY=1\n")
    env.chmod(0o640)
    link.symlink_to("releases/a")
    watch = [str(tmp_path / "*")]
    record = tmp_path / "deployed.json"
    record.write_text(json.dumps({"files": record_module.expand(watch, str(record))}))
    record.chmod(0o600)
    assert record_module.drift(str(record), watch) == [], "a clean host"
    site.write_text("server { listen 80; return 200 'SECRET'; }\n")
    env.chmod(0o644)
    link.unlink()
    link.symlink_to("releases/b")
    (tmp_path / "stray").write_text("x")
    found = record_module.drift(str(record), watch, packages=["lernmanager-no-such-package"])
    assert found == [f"{link}: link target releases/a -> releases/b", f"{env}: mode 640 -> 644",
                     f"{site}: content", f"{tmp_path / 'stray'}: new",
                     "package lernmanager-no-such-package is not installed"], found
    assert "SECRET" not in str(found)
    site.unlink()
    assert f"{site}: missing" in record_module.drift(str(record), watch)
    record.chmod(0o666)
    assert record_module.drift(str(record), watch) is None, "a record anyone could have written is no record"
