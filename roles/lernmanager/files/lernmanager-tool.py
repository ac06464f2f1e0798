#!/usr/bin/env python3
"""Deploy-time helper of the lernmanager role (standard library only).

Ansible calls it for the jobs no module does: hashing an app directory, compiling bytecode into
the PYTHONPYCACHEPREFIX, precompressing static files, reading the cgroup memory limit, and
running the app's own start-up and migrations. Each subcommand prints one JSON object with a
`changed` flag, so every task reports honestly.

Bytecode must be compiled by the same interpreter as the service, with PYTHONPYCACHEPREFIX set to
the service's prefix and through the same path strings the service imports from.
"""

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time

# Stdlib parts a web app never imports (about 90 % of the stdlib's files): skipped.
STDLIB_SKIP = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip",
    "pydoc_data", "site-packages", "dist-packages", "__phello__", "venv", "distutils",
}
# Files worth precompressing for nginx's gzip_static / brotli_static.
COMPRESSIBLE = {".css", ".js", ".mjs", ".svg", ".json", ".txt", ".html", ".xml", ".map", ".ico", ".ttf", ".eot"}
MIN_COMPRESS_SIZE = 256


def emit(**result):
    print(json.dumps(result, sort_keys=True))


# --- hashing ---------------------------------------------------------------------------------

def walk_files(top, skip_dirs=()):
    """Every regular file below top, sorted, without following links or entering skip_dirs."""
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in skip_dirs and not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def cmd_hash_dir(args):
    """A content hash of an app directory: paths, executable bits and contents, not mtimes."""
    digest = hashlib.sha256()
    skip = {"__pycache__", ".git", "data", "instance", ".venv", "venv", ".pytest_cache"}
    count = 0
    for path in walk_files(args.directory, skip):
        if path.endswith((".pyc", ".pyo")):
            continue
        rel = os.path.relpath(path, args.directory)
        digest.update(rel.encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
        digest.update(b"\0")
        count += 1
    if count == 0:
        sys.exit(f"{args.directory}: no files found")
    emit(changed=False, sha256=digest.hexdigest(), files=count)


# --- bytecode --------------------------------------------------------------------------------

def pyc_is_current(source, cache):
    """True when cache holds timestamp-validated bytecode for source's current mtime and size."""
    try:
        with open(cache, "rb") as handle:
            header = handle.read(16)
        st = os.stat(source)
    except OSError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags = int.from_bytes(header[4:8], "little")
    mtime = int.from_bytes(header[8:12], "little")
    size = int.from_bytes(header[12:16], "little")
    return flags == 0 and mtime == (int(st.st_mtime) & 0xFFFFFFFF) and size == (st.st_size & 0xFFFFFFFF)


def python_sources(target, skip_dirs=()):
    if os.path.isfile(target):
        yield target
        return
    for path in walk_files(target, skip_dirs):
        if path.endswith(".py"):
            yield path


def cmd_compile(args):
    """Compile stale sources into sys.pycache_prefix (set from PYTHONPYCACHEPREFIX)."""
    import py_compile

    if not sys.pycache_prefix or os.path.realpath(sys.pycache_prefix) != os.path.realpath(args.prefix):
        sys.exit(f"run with PYTHONPYCACHEPREFIX={args.prefix} (got {sys.pycache_prefix!r})")
    targets = [(t, {"__pycache__"}) for t in args.paths]
    if args.stdlib:
        targets.append((sysconfig.get_paths()["stdlib"], STDLIB_SKIP | {"__pycache__"}))
    compiled, checked, failed = 0, 0, []
    for target, skip in targets:
        if not os.path.exists(target):
            sys.exit(f"{target}: no such file or directory")
        for source in python_sources(target, skip):
            checked += 1
            cache = importlib.util.cache_from_source(source)
            if pyc_is_current(source, cache):
                continue
            try:
                py_compile.compile(source, cfile=cache, doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
                os.chmod(cache, 0o644)
                compiled += 1
            except py_compile.PyCompileError as error:
                failed.append(f"{source}: {error.msg.strip().splitlines()[-1]}")
    # Directories made by py_compile follow the umask; the service must be able to read them.
    for root, dirs, _ in os.walk(args.prefix):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
    emit(changed=compiled > 0, compiled=compiled, checked=checked, failed=failed)
    if failed and args.strict:
        sys.exit("syntax errors in the app:\n" + "\n".join(failed))


# --- static files ----------------------------------------------------------------------------

def cmd_precompress(args):
    """Write .gz (and .br when the brotli CLI exists) beside each compressible static file."""
    brotli = shutil.which("brotli") if args.brotli else None
    made = 0
    for path in walk_files(args.directory):
        if os.path.splitext(path)[1] not in COMPRESSIBLE or os.path.getsize(path) < MIN_COMPRESS_SIZE:
            continue
        if not os.path.exists(path + ".gz"):
            with open(path, "rb") as src, open(path + ".gz", "wb") as raw:
                # mtime=0: the same file always gives the same bytes.
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as dst:
                    shutil.copyfileobj(src, dst)
            shutil.copystat(path, path + ".gz")
            made += 1
        if brotli and not os.path.exists(path + ".br"):
            subprocess.run([brotli, "--best", "--keep", "--output=" + path + ".br", path], check=True)
            shutil.copystat(path, path + ".br")
            made += 1
    emit(changed=made > 0, written=made)


# --- sizing ----------------------------------------------------------------------------------

def cmd_memory_limit(_args):
    """The tightest cgroup memory limit above this process in MiB (0 when there is none)."""
    limits = []
    try:
        lines = open("/proc/self/cgroup", encoding="ascii").read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base, name = "/sys/fs/cgroup", "memory.max"
        elif "memory" in controllers.split(","):
            base, name = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
        else:
            continue
        while True:
            try:
                value = open(os.path.join(base + path, name), encoding="ascii").read().strip()
                if value != "max" and int(value) < 1 << 50:
                    limits.append(int(value))
            except (OSError, ValueError):
                pass
            if path in ("/", ""):
                break
            path = os.path.dirname(path)
    emit(changed=False, memory_limit_mb=min(limits) // (1 << 20) if limits else 0)


# --- the app's own start-up and migrations ------------------------------------------------------

def load_env_file(path):
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (the role writes them quoted)."""
    env = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith(("#", ";")) or "=" not in line:
                continue
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            env[key.strip()] = value
    return env


def cmd_read_env(args):
    """An env file as JSON (for adopting upstream's .env); the caller hides the output (secrets)."""
    emit(changed=False, env=load_env_file(args.env_file) if os.path.exists(args.env_file) else {})


def app_environment(args):
    env = dict(os.environ)
    env.update(load_env_file(args.env_file))
    env["PYTHONPATH"] = args.release
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cmd_init_db(args):
    """Run the app's init_app() once, so the schema and admin exist before any worker starts."""
    database = os.path.join(args.release, "data", args.database)
    existed = os.path.exists(database)
    code = ("import importlib, sys; module = importlib.import_module(sys.argv[1]); "
            "getattr(module, sys.argv[2])()")
    result = subprocess.run([sys.executable, "-c", code, args.module, args.init_function],
                            cwd=args.release, env=app_environment(args), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{args.module}.{args.init_function}() failed:\n{result.stderr[-4000:]}")
    emit(changed=not existed, database=database, created=not existed)


def pending_migrations(release, done_file):
    migrate_dir = os.path.join(release, "migrate")
    done = set()
    if os.path.exists(done_file):
        done = {line.strip() for line in open(done_file, encoding="utf-8") if line.strip()}
    scripts = sorted(name for name in os.listdir(migrate_dir)
                     if name.startswith("migrate_") and name.endswith(".py")) if os.path.isdir(migrate_dir) else []
    return [name for name in scripts if name not in done]


def run_migrations(release, env, user=None):
    """Upstream's protocol: run each pending migrate/migrate_*.py in order, record it on success.

    Returns (ran, failed_name, stderr)."""
    done_file = os.path.join(release, "data", "migrations_done.txt")
    ran = []
    for name in pending_migrations(release, done_file):
        result = subprocess.run([sys.executable, os.path.join("migrate", name)], cwd=release, env=env,
                                capture_output=True, text=True, user=user, group=user and group_of(user),
                                extra_groups=[] if user else None)
        if result.returncode != 0:
            return ran, name, (result.stdout + result.stderr)[-4000:]
        with open(done_file, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
        if user:
            shutil.chown(done_file, user, group_of(user))
        ran.append(name)
    return ran, None, ""


ADMIN_CHECK = r"""
import json, sys
import models

request = json.load(sys.stdin)
user, wanted = request["username"], request["password"]


def admin_id(row):
    return row["id"] if hasattr(row, "keys") else row[0]


default = models.verify_admin(user, "admin")
if not wanted:
    state = "default" if default else "not-default"
elif models.verify_admin(user, wanted):
    state = "unchanged"
elif default:
    models.update_admin_password(admin_id(default), wanted)
    state = "set"
else:
    # Changed in the web UI to something else: a person chose it, the role does not overwrite it.
    state = "changed-by-hand"
print(json.dumps({"state": state}))
"""


def cmd_admin(args):
    """Check (and set) the admin's password with the app's own verify_admin/update_admin_password.

    The password comes on stdin, never on a command line; runs as the service user."""
    result = subprocess.run([sys.executable, "-c", ADMIN_CHECK], input=sys.stdin.read(), cwd=args.release,
                            env=app_environment(args), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"checking the admin password failed:\n{result.stderr[-3000:]}")
    state = json.loads(result.stdout.strip().splitlines()[-1])["state"]
    emit(changed=state == "set", state=state)


def cmd_migrate(args):
    if args.list:
        done_file = os.path.join(args.release, "data", "migrations_done.txt")
        emit(changed=False, pending=pending_migrations(args.release, done_file))
        return
    ran, failed, stderr = run_migrations(args.release, app_environment(args))
    emit(changed=bool(ran), ran=ran, failed=failed, stderr=stderr)
    if failed:
        sys.exit(1)


# --- backups ------------------------------------------------------------------------------------
# The live database is in WAL mode: a plain copy can miss committed rows. SQLite's online backup
# API copies a consistent snapshot. It runs as the service user (root would leave root-owned
# -wal/-shm files and the service would fail with "readonly database"); root then checks the copy
# read-only (immutable: no -wal/-shm made) and moves it into the root-only backups directory.

def group_of(user):
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def as_user(user, func, *args):
    """Run func(*args) in a child process with the user's uid/gid; raise if it fails."""
    import pwd

    entry = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            func(*args)
            code = 0
        except BaseException as error:  # the child must never return into the parent's code
            print(f"{func.__name__}: {error}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{func.__name__} as {user} failed")


def sqlite_snapshot(database, target):
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)
    copy.close()
    source.close()


def integrity_check(path):
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    finally:
        db.close()
    return result, tables


def backup_files(dest_dir):
    """Backups, newest first: <UTC time>_<label>.db, each with its .migrations_done.txt."""
    names = [n for n in os.listdir(dest_dir) if n.endswith(".db")] if os.path.isdir(dest_dir) else []
    return sorted(names, reverse=True)


def cmd_backup(args):
    if not os.path.exists(args.database):
        emit(changed=False, backup=None, reason="no database yet")
        return
    data_dir = os.path.dirname(args.database)
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "_" + args.label
    temp = os.path.join(data_dir, f".backup-{name}.tmp")
    as_user(args.user, sqlite_snapshot, args.database, temp)
    try:
        result, tables = integrity_check(temp)
        if result != "ok":
            sys.exit(f"integrity_check of the backup failed: {result}")
        os.makedirs(args.dest_dir, mode=0o700, exist_ok=True)
        backup = os.path.join(args.dest_dir, name + ".db")
        shutil.move(temp, backup)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    os.chown(backup, 0, 0)
    os.chmod(backup, 0o600)
    # The backup is the database *and* its migration record: a restored pre-migration database
    # must not stay marked as migrated. "absent" is recorded as a missing companion file.
    done_file = os.path.join(data_dir, "migrations_done.txt")
    if os.path.exists(done_file):
        shutil.copyfile(done_file, backup[:-3] + ".migrations_done.txt")
        os.chmod(backup[:-3] + ".migrations_done.txt", 0o600)
    removed = []
    for old in backup_files(args.dest_dir)[args.keep:]:
        for path in (old, old[:-3] + ".migrations_done.txt"):
            if os.path.exists(os.path.join(args.dest_dir, path)):
                os.unlink(os.path.join(args.dest_dir, path))
        removed.append(old)
    emit(changed=True, backup=backup, integrity=result, tables=tables, removed=removed)


def cmd_restore(args):
    """Put a backup back (the service must be stopped): database, migration record, no stale WAL."""
    result, _ = integrity_check(args.backup)
    if result != "ok":
        sys.exit(f"{args.backup}: integrity_check failed ({result}); nothing was restored")
    data_dir = os.path.dirname(args.database)
    group = group_of(args.user)
    temp = os.path.join(data_dir, ".restore.tmp")
    shutil.copyfile(args.backup, temp)
    shutil.chown(temp, args.user, group)
    os.chmod(temp, 0o640)
    for suffix in ("-wal", "-shm", "-journal"):
        if os.path.exists(args.database + suffix):
            os.unlink(args.database + suffix)
    os.replace(temp, args.database)
    done_backup = args.backup[:-3] + ".migrations_done.txt"
    done_file = os.path.join(data_dir, "migrations_done.txt")
    if os.path.exists(done_backup):
        shutil.copyfile(done_backup, done_file + ".tmp")
        shutil.chown(done_file + ".tmp", args.user, group)
        os.chmod(done_file + ".tmp", 0o640)
        os.replace(done_file + ".tmp", done_file)
    elif os.path.exists(done_file):
        os.unlink(done_file)
    emit(changed=True, restored=args.backup, database=args.database)


def cmd_trial_migrate(args):
    """Run the pending migrations on a copy of a backup first: a failing one never touches live data.

    The trial runs in a copy of the release (not links: an app that resolves its own path with
    realpath must still find the trial's data/, not the live one) whose data/ holds the snapshot."""
    done_file = os.path.join(args.release, "data", "migrations_done.txt")
    pending = pending_migrations(args.release, done_file)
    if not pending:
        emit(changed=False, pending=[])
        return
    group = group_of(args.user)
    work = tempfile.mkdtemp(prefix=".trial-", dir=args.work_dir)
    try:
        app = os.path.join(work, "app")
        shutil.copytree(args.release, app, symlinks=True, ignore=shutil.ignore_patterns("data", "instance", ".venv"))
        for sub in ("data", "instance/uploads", "instance/tmp"):
            os.makedirs(os.path.join(app, sub))
        shutil.copyfile(args.backup, os.path.join(app, "data", args.database_name))
        if os.path.exists(args.backup[:-3] + ".migrations_done.txt"):
            shutil.copyfile(args.backup[:-3] + ".migrations_done.txt", os.path.join(app, "data", "migrations_done.txt"))
        for root, dirs, files in os.walk(work):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *user_ids(args.user))
        os.chown(work, *user_ids(args.user))
        env = app_environment(args)
        env["PYTHONPATH"] = app
        env["TMPDIR"] = os.path.join(app, "instance", "tmp")
        ran, failed, stderr = run_migrations(app, env, user=args.user)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(changed=False, pending=pending, ran=ran, failed=failed, stderr=stderr)
    if failed:
        sys.exit(f"migration {failed} failed on a copy of the database; the live database was not touched")


def user_ids(user):
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


# --- housekeeping -------------------------------------------------------------------------------

def link_name(path):
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def cmd_cleanup(args):
    """Keep the newest releases (never the live or previous one), drop venvs no release uses, and
    the bytecode of both under the prefix."""
    releases_dir = os.path.join(args.root, "releases")
    venvs_dir = os.path.join(args.root, "venvs")
    protected = {link_name(os.path.join(args.root, "current")), link_name(os.path.join(args.root, "previous"))}
    releases = sorted((n for n in os.listdir(releases_dir) if not n.startswith(".")),
                      key=lambda n: os.stat(os.path.join(releases_dir, n)).st_mtime, reverse=True)
    keep = set(releases[:args.keep]) | (protected - {None})
    removed = [n for n in releases if n not in keep]
    used_venvs = {os.path.realpath(os.path.join(releases_dir, n, ".venv")) for n in keep}
    stale_venvs = [os.path.join(venvs_dir, n) for n in sorted(os.listdir(venvs_dir))
                   if os.path.join(venvs_dir, n) not in used_venvs] if os.path.isdir(venvs_dir) else []
    if not args.dry_run:
        for path in [os.path.join(releases_dir, n) for n in removed] + stale_venvs:
            shutil.rmtree(path)
            # The prefix mirrors source paths: prefix + /opt/lernmanager/releases/<id>/...
            shutil.rmtree(args.prefix + path, ignore_errors=True)
    emit(changed=bool(removed or stale_venvs), removed_releases=removed,
         removed_venvs=[os.path.basename(v) for v in stale_venvs], kept=sorted(keep))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("hash-dir", help="content hash of an app directory")
    p.add_argument("directory")
    p.set_defaults(func=cmd_hash_dir)

    p = sub.add_parser("compile", help="compile stale bytecode into the pycache prefix")
    p.add_argument("--prefix", required=True)
    p.add_argument("--stdlib", action="store_true", help="also the stdlib, without tests, idlelib, ...")
    p.add_argument("--strict", action="store_true", help="fail on syntax errors")
    p.add_argument("paths", nargs="*")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("precompress", help="write .gz/.br copies of static files")
    p.add_argument("directory")
    p.add_argument("--brotli", action="store_true")
    p.set_defaults(func=cmd_precompress)

    p = sub.add_parser("memory-limit", help="cgroup memory limit in MiB")
    p.set_defaults(func=cmd_memory_limit)

    for name, func in (("init-db", cmd_init_db), ("migrate", cmd_migrate), ("trial-migrate", cmd_trial_migrate),
                       ("admin", cmd_admin)):
        p = sub.add_parser(name)
        p.add_argument("--release", required=True)
        p.add_argument("--env-file", required=True)
        p.set_defaults(func=func)
    p = sub.choices["init-db"]
    p.add_argument("--module", default="app")
    p.add_argument("--init-function", default="init_app")
    p.add_argument("--database", default="mbi_tracker.db")
    sub.choices["migrate"].add_argument("--list", action="store_true", help="only list the pending migrations")
    p = sub.choices["trial-migrate"]
    p.add_argument("--backup", required=True, help="the backup to run the migrations on (a copy of it)")
    p.add_argument("--user", required=True)
    p.add_argument("--work-dir", required=True)
    p.add_argument("--database-name", default="mbi_tracker.db")

    p = sub.add_parser("read-env", help="an env file as JSON")
    p.add_argument("env_file")
    p.set_defaults(func=cmd_read_env)

    p = sub.add_parser("backup", help="WAL-safe, integrity-checked backup of the database")
    p.add_argument("--database", required=True)
    p.add_argument("--dest-dir", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--keep", type=int, default=10)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="put a backup back (service stopped)")
    p.add_argument("--backup", required=True)
    p.add_argument("--database", required=True)
    p.add_argument("--user", required=True)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("cleanup", help="remove old releases, unused venvs and their bytecode")
    p.add_argument("--root", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--keep", type=int, required=True)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_cleanup)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
