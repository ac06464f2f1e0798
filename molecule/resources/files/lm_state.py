"""What must survive an adoption, as checksums (run as root inside the container):
the database content (every table but analytics_events, which grows with each request), the
migration record, the uploads and the SECRET_KEY the app runs with.

Usage: python3 lm_state.py DATA_DIR UPLOADS_DIR ENV_FILE  -> one JSON object on stdout
"""

import hashlib
import json
import os
import re
import subprocess
import sys


def sha(data):
    return hashlib.sha256(data).hexdigest()


def main(data_dir, uploads_dir, env_file):
    database = os.path.join(data_dir, "mbi_tracker.db")
    # As the service user: root would leave root-owned -wal/-shm files behind.
    sqlite = ["runuser", "-u", "lernmanager", "--", "sqlite3", database]
    tables = subprocess.check_output(sqlite + [
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'analytics_events' ORDER BY name"], text=True).split()
    dump = subprocess.check_output(sqlite + [".dump " + " ".join(tables)])
    counts = {t: int(subprocess.check_output(sqlite + [f"SELECT count(*) FROM {t}"], text=True)) for t in tables}
    with open(os.path.join(data_dir, "migrations_done.txt"), "rb") as handle:
        migrations = sha(handle.read())
    uploads = {}
    for name in sorted(os.listdir(uploads_dir)):
        with open(os.path.join(uploads_dir, name), "rb") as handle:
            uploads[name] = sha(handle.read())
    with open(env_file, encoding="utf-8") as handle:
        key = re.search(r'^SECRET_KEY="?(.*?)"?$', handle.read(), re.M).group(1)
    print(json.dumps({"tables": counts, "dump": sha(dump), "migrations_done": migrations,
                      "uploads": uploads, "secret_key": sha(key.encode())}, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:4])
