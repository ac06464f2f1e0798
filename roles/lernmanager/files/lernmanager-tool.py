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
import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tarfile
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


def read_record(path):
    """The migration record's bytes, None when there is none. Anything but a regular file fails:
    read through a link (or not at all) it would say which migrations ran wrongly."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        sys.exit(f"{path} is not a regular file (a link?): {error.strerror}; it must be the migration record")
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            sys.exit(f"{path} is not a regular file; it must be the migration record")
        return handle.read()


def pending_migrations(release, done_file):
    migrate_dir = os.path.join(release, "migrate")
    record = read_record(done_file)
    done = {line.strip() for line in (record or b"").decode("utf-8").splitlines() if line.strip()}
    scripts = sorted(name for name in os.listdir(migrate_dir)
                     if name.startswith("migrate_") and name.endswith(".py")) if os.path.isdir(migrate_dir) else []
    return [name for name in scripts if name not in done]


def run_migrations(release, env):
    """Upstream's protocol: run each pending migrate/migrate_*.py in order, record it on success.

    Returns (ran, failed_name, stderr)."""
    done_file = os.path.join(release, "data", "migrations_done.txt")
    ran = []
    for name in pending_migrations(release, done_file):
        result = subprocess.run([sys.executable, os.path.join("migrate", name)], cwd=release, env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            return ran, name, (result.stdout + result.stderr)[-4000:]
        with open(done_file, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
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


# --- backups and restores: root never touches a name the service user can write -------------
# shared/data and shared/instance belong to the service user, and the app parses pupils' uploads:
# treat whatever is there as planted. Every read and write there runs as the service user, in a
# child (`export`, `import`, `trial-run`) that talks to root through a pipe: a tar stream with
# the members below. Root reads and writes only the root-only backups directory, through a
# directory file descriptor, with O_NOFOLLOW|O_EXCL.
# The live database is in WAL mode: a plain copy can miss committed rows. SQLite's online backup
# API copies a consistent snapshot, and writes one back the same way.

DATABASE_MEMBER = "database"
RECORD_MEMBER = "migrations_done.txt"
RECORD_NAME = "migrations_done.txt"
FREE_MARGIN = 100 << 20
FILE_MODE = 0o640  # the service's own files; its UMask would give the same


def as_user(user):
    """Popen arguments that run a child as the service user: the one way this helper drops
    privileges (no supplementary groups, a working directory it may enter)."""
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "cwd": "/"}


def helper_as_user(user, argv, **kwargs):
    """This helper again, as the service user, to completion."""
    return subprocess.run([sys.executable, os.path.abspath(__file__), *argv], **as_user(user), **kwargs)


def helper_as_user_streaming(user, argv, **kwargs):
    """This helper again, as the service user, with a pipe to stream a tar through."""
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv], **as_user(user), **kwargs)


def integrity_check(path):
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    finally:
        db.close()
    return result, tables


def require_free_space(database, *directories):
    """Fail before any change unless each file system has twice the database plus 100 MiB free."""
    try:
        size = os.stat(database, follow_symlinks=False).st_size
    except FileNotFoundError:
        size = 0
    needed = 2 * size + FREE_MARGIN
    for directory in directories:
        # Through a descriptor opened without following a link: the service owns some of them.
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            space = os.statvfs(fd)
        finally:
            os.close(fd)
        free = space.f_bavail * space.f_frsize
        if free < needed:
            sys.exit(f"not enough free space in {directory}: {free >> 20} MiB free, {needed >> 20} MiB needed "
                     f"(twice the database of {size >> 20} MiB plus 100 MiB); nothing was changed")


def tar_add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def copy_members(stream, sinks):
    """Copy each regular member of a tar stream into sinks[name](), an open binary file.

    Returns the names seen; any other member (a link, a path, a second copy) is refused."""
    seen = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name not in sinks or not member.isfile() or member.name in seen:
                raise ValueError(f"unexpected member {member.name!r} in the stream")
            with sinks[member.name]() as out:
                shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
            seen.append(member.name)
    return seen


class Kept(io.BytesIO):
    """An in-memory sink whose bytes survive close()."""

    def close(self):
        self.kept = self.getvalue()
        super().close()


# Run as the service user ----------------------------------------------------------------------

def cmd_export(args):
    """(service user) A checked snapshot of the database and its migration record, as tar on stdout."""
    data_dir = os.path.dirname(args.database)
    if not os.path.exists(args.database):
        sys.exit(f"{args.database}: no database")
    # First: a record that cannot be read fails the backup before anything is written.
    record = read_record(os.path.join(data_dir, RECORD_NAME))
    handle, temp = tempfile.mkstemp(prefix=".export-", suffix=".db", dir=data_dir)
    os.close(handle)
    try:
        source = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
        copy = sqlite3.connect(temp)
        with copy:
            source.backup(copy)
        copy.close()
        source.close()
        result, tables = integrity_check(temp)
        if result != "ok":
            sys.exit(f"integrity_check of the snapshot failed: {result}")
        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
            tar_add_bytes(tar, "check.json", json.dumps({"integrity": result, "tables": tables}).encode())
            tar.add(temp, arcname=DATABASE_MEMBER)
            if record is not None:
                tar_add_bytes(tar, RECORD_MEMBER, record)
    finally:
        os.unlink(temp)


def write_replacing(path, data):
    """Write a file beside path and rename it over path: never half-written."""
    handle, temp = tempfile.mkstemp(prefix=".import-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def restore_database(snapshot, database):
    """Write snapshot into database with the backup API (a WAL database stays one)."""
    source = sqlite3.connect(f"file:{snapshot}?mode=ro&immutable=1", uri=True)
    target = sqlite3.connect(database)
    try:
        mode = target.execute("PRAGMA journal_mode").fetchone()[0]
        # Pages of another size cannot be written into a WAL database: leave WAL for the copy.
        target.execute("PRAGMA journal_mode=DELETE")
        source.backup(target)
        if mode.lower() == "wal":
            target.execute("PRAGMA journal_mode=WAL")
    finally:
        target.close()
        source.close()
    os.chmod(database, FILE_MODE)


def cmd_import(args):
    """(service user) Put a tar of export's members back: database first, then its record."""
    data_dir = os.path.dirname(args.database)
    record = Kept()
    handle, snapshot = tempfile.mkstemp(prefix=".import-", suffix=".db", dir=data_dir)
    try:
        seen = copy_members(sys.stdin.buffer, {DATABASE_MEMBER: lambda: os.fdopen(handle, "wb"),
                                               RECORD_MEMBER: lambda: record})
        if DATABASE_MEMBER not in seen:
            sys.exit("no database in the stream; nothing was restored")
        result, _ = integrity_check(snapshot)
        if result != "ok":
            sys.exit(f"integrity_check failed ({result}); nothing was restored")
        restore_database(snapshot, args.database)
    finally:
        os.unlink(snapshot)
    # The record belongs to the database: a restored pre-migration database must not stay marked
    # as migrated. No record in the backup means none before the backup.
    record_path = os.path.join(data_dir, RECORD_NAME)
    if RECORD_MEMBER in seen:
        write_replacing(record_path, record.kept)
    elif os.path.lexists(record_path):
        os.unlink(record_path)
    emit(changed=True, database=args.database)


def cmd_trial_run(args):
    """(service user) The pending migrations on a copy of the release holding the streamed backup.

    A copy, not links: an app that resolves its own path with realpath must still find the
    trial's data/, not the live one."""
    work = tempfile.mkdtemp(prefix=".trial-", dir=args.work_dir)
    try:
        app = os.path.join(work, "app")
        shutil.copytree(args.release, app, symlinks=True, ignore=shutil.ignore_patterns("data", "instance", ".venv"))
        for sub in ("data", "instance/uploads", "instance/tmp"):
            os.makedirs(os.path.join(app, sub))
        data = os.path.join(app, "data")
        copy_members(sys.stdin.buffer, {DATABASE_MEMBER: lambda: open(os.path.join(data, args.database_name), "xb"),
                                        RECORD_MEMBER: lambda: open(os.path.join(data, RECORD_NAME), "xb")})
        env = app_environment(args)
        env["PYTHONPATH"] = app
        env["TMPDIR"] = os.path.join(app, "instance", "tmp")
        ran, failed, stderr = run_migrations(app, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(changed=False, ran=ran, failed=failed, stderr=stderr)


# Run as root ----------------------------------------------------------------------------------

def open_backups_dir(path):
    """The root-only backups directory as a file descriptor (created 0700 if missing)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_mode & 0o077:
        os.close(fd)
        sys.exit(f"{path} must be root's alone (mode 0700)")
    return fd


class BackupFile:
    """A new 0600 file in the backups directory, written as .<name>.partial, renamed by commit()."""

    def __init__(self, dir_fd, name):
        self.dir_fd, self.name, self.partial = dir_fd, name, f".{name}.partial"
        self.written = False

    def open(self):
        try:
            os.unlink(self.partial, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self.dir_fd)
        self.written = True
        return os.fdopen(fd, "wb")

    def commit(self):
        fd = os.open(self.partial, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.dir_fd)
        os.fsync(fd)
        os.close(fd)
        os.rename(self.partial, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    def discard(self):
        try:
            os.unlink(self.partial, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass


def backup_pool(name):
    """Pre-migration backups (<from>_to_<to>) have a pool of their own: no other kind pushes them out."""
    return "pre-migration" if "_to_" in name else "other"


def backup_files(dest_dir):
    """Backups, newest first: <UTC time>_<label>.db, each with its .migrations_done.txt."""
    names = [n for n in os.listdir(dest_dir) if n.endswith(".db")] if os.path.isdir(dest_dir) else []
    return sorted(names, reverse=True)


def cmd_backup(args):
    if not os.path.lexists(args.database):
        emit(changed=False, backup=None, reason="no database yet")
        return
    dir_fd = open_backups_dir(args.dest_dir)
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "_" + args.label
    try:
        require_free_space(args.database, os.path.dirname(args.database), args.dest_dir)
        database = BackupFile(dir_fd, name + ".db")
        record = BackupFile(dir_fd, name + ".migrations_done.txt")
        check = Kept()
        child = helper_as_user_streaming(args.user, ["export", f"--database={args.database}"],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            seen = copy_members(child.stdout, {"check.json": lambda: check, DATABASE_MEMBER: database.open,
                                               RECORD_MEMBER: record.open})
        except (ValueError, OSError, tarfile.TarError) as error:
            seen = [f"unreadable stream: {error}"]
        errors = child.stderr.read().decode(errors="replace")
        if child.wait() != 0 or DATABASE_MEMBER not in seen or "check.json" not in seen:
            database.discard()
            record.discard()
            sys.exit(f"the snapshot as {args.user} failed ({seen}): {errors[-2000:]}")
        check = json.loads(check.kept)
        # The record first: a .db without its record would read as "no migrations ran".
        if record.written:
            record.commit()
        database.commit()
        removed = []
        pool = backup_pool(name)
        for old in [n for n in backup_files(args.dest_dir) if backup_pool(n) == pool][args.keep:]:
            for path in (old, old[:-3] + ".migrations_done.txt"):
                try:
                    os.unlink(path, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
            removed.append(old)
    finally:
        os.close(dir_fd)
    emit(changed=True, backup=os.path.join(args.dest_dir, name + ".db"), integrity=check["integrity"],
         tables=check["tables"], removed=removed)


def send_backup(backup, user, argv):
    """Stream a backup (root-only, trusted) and its migration record to the helper as the service
    user; returns (exit code, stdout, stderr)."""
    result, _ = integrity_check(backup)
    if result != "ok":
        sys.exit(f"{backup}: integrity_check failed ({result}); nothing was changed")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = helper_as_user_streaming(user, argv, stdin=subprocess.PIPE, stdout=out, stderr=err)
        try:
            with tarfile.open(fileobj=child.stdin, mode="w|") as tar:
                tar.add(backup, arcname=DATABASE_MEMBER)
                if os.path.exists(backup[:-3] + ".migrations_done.txt"):
                    tar.add(backup[:-3] + ".migrations_done.txt", arcname=RECORD_MEMBER)
        except BrokenPipeError:
            pass  # the child stopped reading: its exit code and stderr say why
        finally:
            child.stdin.close()
        code = child.wait()
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def cmd_restore(args):
    """Put a backup back (the service and its socket must be stopped), as the service user."""
    require_free_space(args.backup, os.path.dirname(args.database))
    code, _, errors = send_backup(args.backup, args.user, ["import", f"--database={args.database}"])
    if code != 0:
        sys.exit(f"the restore as {args.user} failed: {errors[-2000:]}")
    emit(changed=True, restored=args.backup, database=args.database)


def cmd_trial_migrate(args):
    """Run the pending migrations on a copy of a backup first: a failing one never touches live data."""
    pending = helper_as_user(args.user, ["migrate", "--list", f"--release={args.release}",
                                      f"--env-file={args.env_file}"], capture_output=True, text=True)
    if pending.returncode != 0:
        sys.exit(f"listing the migrations as {args.user} failed: {pending.stderr[-2000:]}")
    pending = json.loads(pending.stdout)["pending"]
    if not pending:
        emit(changed=False, pending=[])
        return
    require_free_space(args.backup, args.work_dir)
    _, out, errors = send_backup(args.backup, args.user, [
        "trial-run", f"--release={args.release}", f"--env-file={args.env_file}", f"--work-dir={args.work_dir}",
        f"--database-name={args.database_name}"])
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        sys.exit(f"the trial as {args.user} failed: {errors[-2000:]}")
    emit(changed=False, pending=pending, ran=result["ran"], failed=result["failed"], stderr=result["stderr"])
    if result["failed"]:
        sys.exit(f"migration {result['failed']} failed on a copy of the database; the live database was not touched")


# --- directories inside the service's own -----------------------------------------------------

def cmd_ensure_dirs(args):
    """Create and set directories inside a directory the service user owns, through file
    descriptors: a name the user replaced with a link is refused, never followed."""
    import grp
    import pwd

    parent = os.open(args.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    changed = []
    try:
        for spec in args.dirs:
            name, owner, group, mode = spec.split(":")
            uid, gid, mode = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid, int(mode, 8)
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                st = None
                if not args.dry_run:
                    os.mkdir(name, 0o700, dir_fd=parent)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                sys.exit(f"{os.path.join(args.parent, name)} is not a directory (a link or a file planted "
                         f"in the service's directory?): move it away and run again; nothing was changed")
            if args.dry_run:
                if st is None or (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (uid, gid, mode):
                    changed.append(name)
                continue
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            try:
                st = os.fstat(fd)
                if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (uid, gid, mode):
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, mode)  # after fchown, which clears setgid
                    changed.append(name)
            finally:
                os.close(fd)
    finally:
        os.close(parent)
    emit(changed=bool(changed), changed_dirs=changed)


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

    # Run as the service user by the subcommands above, never by Ansible.
    p = sub.add_parser("trial-run", help="(service user) migrations on a copy: backup as tar on stdin")
    p.add_argument("--release", required=True)
    p.add_argument("--env-file", required=True)
    p.add_argument("--work-dir", required=True)
    p.add_argument("--database-name", required=True)
    p.set_defaults(func=cmd_trial_run)
    p = sub.add_parser("export", help="(service user) checked snapshot as tar on stdout")
    p.add_argument("--database", required=True)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", help="(service user) database and record from tar on stdin")
    p.add_argument("--database", required=True)
    p.set_defaults(func=cmd_import)

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

    p = sub.add_parser("ensure-dirs", help="directories inside one the service user owns, never following links")
    p.add_argument("--parent", required=True)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("dirs", nargs="+", metavar="NAME:OWNER:GROUP:MODE")
    p.set_defaults(func=cmd_ensure_dirs)

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
