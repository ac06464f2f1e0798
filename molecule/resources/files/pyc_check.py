"""Import what a gunicorn gthread worker of the app imports, then check that every module loaded
from a .py file has a valid, timestamp-matching .pyc under sys.pycache_prefix.

Usage (as the service user, cwd = release dir): python pyc_check.py RELEASE_DIR
Prints "<checked> modules checked" and exits 1 listing the modules without valid bytecode.
"""

import importlib.util
import os
import sys

release = sys.argv[1]
sys.path.insert(0, release)
sys.dont_write_bytecode = True  # this check itself must not fill the prefix

import gunicorn.app.wsgiapp  # noqa: E402,F401  the master's and worker's code
import gunicorn.workers.gthread  # noqa: E402,F401
import app  # noqa: E402,F401  the app with every library it imports at module level


def valid(source, cache):
    try:
        header = open(cache, "rb").read(16)
    except OSError:
        return False
    st = os.stat(source)
    return (
        header[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(header[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == st.st_size & 0xFFFFFFFF
    )


checked, missing = 0, []
for name, module in sorted(sys.modules.items()):
    source = getattr(module, "__file__", None)
    if not source or not source.endswith(".py") or name == "__main__":
        continue
    checked += 1
    if not valid(source, importlib.util.cache_from_source(source)):
        missing.append(f"{name}: {source}")
print(f"{checked} modules checked")
if missing:
    print("\n".join(missing))
    sys.exit(1)
