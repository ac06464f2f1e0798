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
import subprocess
import sys
import sysconfig

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


def cmd_migrate(args):
    """Upstream's protocol: run every migrate/migrate_*.py not yet in data/migrations_done.txt."""
    migrate_dir = os.path.join(args.release, "migrate")
    done_file = os.path.join(args.release, "data", "migrations_done.txt")
    done = set()
    if os.path.exists(done_file):
        done = {line.strip() for line in open(done_file, encoding="utf-8") if line.strip()}
    scripts = sorted(name for name in os.listdir(migrate_dir)
                     if name.startswith("migrate_") and name.endswith(".py")) if os.path.isdir(migrate_dir) else []
    pending = [name for name in scripts if name not in done]
    if args.list:
        emit(changed=False, pending=pending)
        return
    ran = []
    for name in pending:
        result = subprocess.run([sys.executable, os.path.join("migrate", name)], cwd=args.release,
                                env=app_environment(args), capture_output=True, text=True)
        if result.returncode != 0:
            emit(changed=bool(ran), ran=ran, failed=name, stderr=result.stderr[-4000:])
            sys.exit(1)
        with open(done_file, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
        ran.append(name)
    emit(changed=bool(ran), ran=ran)


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

    for name, func in (("init-db", cmd_init_db), ("migrate", cmd_migrate)):
        p = sub.add_parser(name)
        p.add_argument("--release", required=True)
        p.add_argument("--env-file", required=True)
        p.set_defaults(func=func)
        if name == "init-db":
            p.add_argument("--module", default="app")
            p.add_argument("--init-function", default="init_app")
            p.add_argument("--database", default="mbi_tracker.db")
        else:
            p.add_argument("--list", action="store_true", help="only list the pending migrations")

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
