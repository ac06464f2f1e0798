# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Database care (lernmanager-backup care, monthly): the live SQLite database kept small and quick
while the app serves. Both functions run as the service user (service_user.ServiceUser.run): root
never opens the service's database itself.

  pages(database)        its size, free pages and WAL size, to decide whether to VACUUM
  care(database, vacuum) quick_check; VACUUM when asked; PRAGMA optimize; a checkpoint that
                         truncates the WAL

The app's own connections wait for a lock (Python's sqlite3 waits 5 s by default): each step here
holds the write lock for one statement only, and waits for the app's writers as long as
BUSY_TIMEOUT_MS, never the other way round for longer than a statement takes."""

from __future__ import annotations

import os
import sqlite3
import time

BUSY_TIMEOUT_MS = 60000
VACUUM_FREE_SHARE = 0.2  # VACUUM only when at least a fifth of the pages are free
CHECKPOINT_TRIES = 10  # a checkpoint under load may find readers on the WAL: try again a moment later


def pages(database, **_):
    """{bytes, pages, free_pages, wal_bytes} of the database."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        count = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    try:
        wal = os.lstat(database + "-wal").st_size
    except FileNotFoundError:
        wal = 0
    return {"bytes": count * size, "pages": count, "free_pages": free, "wal_bytes": wal}


def care(database, vacuum, **_):
    """The care run itself; returns {quick_check, vacuumed, checkpoint: {busy, wal_frames}}."""
    db = sqlite3.connect(database, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        result = {"quick_check": check, "vacuumed": False}
        if check != "ok":
            return result  # a damaged database is left as it is: the admin restores a set
        if vacuum:
            db.execute("VACUUM")
            result["vacuumed"] = True
        db.execute("PRAGMA optimize")
        for _try in range(CHECKPOINT_TRIES):
            busy, frames, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                break
            time.sleep(1)
        result["checkpoint"] = {"busy": bool(busy), "wal_frames": frames}
        return result
    finally:
        db.close()


def taken(answer):
    """What root takes from the service user's answers (pages() or care()): numbers, truth values and
    a verdict of at most 500 characters. Anything else raises ValueError: the account is the app's."""
    try:
        if "quick_check" in answer:
            checkpoint = answer.get("checkpoint") or {}
            return {"quick_check": str(answer["quick_check"])[:500], "vacuumed": answer["vacuumed"] is True,
                    **({"checkpoint": {"busy": checkpoint["busy"] is True, "wal_frames": int(checkpoint["wal_frames"])}}
                       if "checkpoint" in answer else {})}
        return {key: int(answer[key]) for key in ("bytes", "pages", "free_pages", "wal_bytes")}
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"the database's account answered {str(answer)[:200]!r}") from error


def should_vacuum(before, free_disk_bytes):
    """VACUUM writes a new copy of the database (into the WAL, then over the file): only when it
    frees much, and when the disk holds twice the database besides."""
    share = before["free_pages"] / before["pages"] if before["pages"] else 0
    return share >= VACUUM_FREE_SHARE and free_disk_bytes >= 2 * before["bytes"]
