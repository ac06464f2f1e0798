"""Data for the backup benchmark, made inside the VPS as the app's service user (stdlib only).

    python3 backup_data.py school DB --pupils 300 --classes 12 --days 100 --events 20
    python3 backup_data.py uploads DB DIR --mib 200 [--seed N]
    python3 backup_data.py day DB DIR --pupils 300 --events 20 --uploads 30 --upload-kib 200

`school` fills the stand-in's tables as a school looks after DAYS school days: classes, pupils and
their page views in `analytics_events` (the table that grows every day in the real app too).
`uploads` writes files named and recorded as the app's /upload makes them; their bytes are random,
because pupils' photos and PDFs are already compressed: neither gzip nor dedup gains on them.
`day` is one school day's change: every pupil's events, and a share of them uploading work.
Each prints one JSON line: what it made. Seeded, so two runs make the same bytes.
"""

import argparse
import datetime
import json
import os
import random
import sqlite3
import uuid

SIZES_KIB = [(40, 60), (120, 25), (400, 10), (2048, 5)]  # typical upload sizes and their weights
PATHS = ["/dashboard", "/datenschutz", "/files/x", "/report.pdf", "/login"]


def connect(path):
    conn = sqlite3.connect(path, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def events(conn, rng, pupils, per_pupil, day):
    rows = [(f"{day}T{rng.randrange(8, 16):02d}:{rng.randrange(60):02d}:00", "page_view",
             rng.choice(PATHS), f"10.0.{pupil // 250}.{pupil % 250}")
            for pupil in range(pupils) for _ in range(per_pupil)]
    conn.executemany("INSERT INTO analytics_events (ts, event, path, ip) VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def school(args):
    rng = random.Random(args.seed)
    conn = connect(args.db)
    with conn:
        conn.executemany("INSERT INTO classes (name) VALUES (?)",
                         [(f"{7 + n // 3}{'abc'[n % 3]}",) for n in range(args.classes)])
        first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM classes").fetchone()[0] - args.classes + 1
        conn.executemany("INSERT INTO students (class_id, name) VALUES (?, ?)",
                         [(first + n % args.classes, f"Schüler {n:04d}") for n in range(args.pupils)])
        start = datetime.date(2026, 8, 31)
        made = sum(events(conn, rng, args.pupils, args.events, start + datetime.timedelta(days=d))
                   for d in range(args.days))
    conn.close()
    return {"classes": args.classes, "pupils": args.pupils, "events": made,
            "db_bytes": os.path.getsize(args.db)}


def write_uploads(conn, rng, directory, sizes_kib):
    total = 0
    rows = []
    for index, kib in enumerate(sizes_kib):
        name = f"arbeit_{index:05d}.jpg"
        stored = f"{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}_{name}"
        size = int(kib * 1024 * rng.uniform(0.5, 1.5))
        with open(os.path.join(directory, stored), "xb") as handle:
            handle.write(rng.randbytes(size))
        rows.append((name, stored, datetime.datetime.now().isoformat(timespec="seconds")))
        total += size
    with conn:
        conn.executemany("INSERT INTO uploads (filename, stored_name, uploaded_at) VALUES (?, ?, ?)", rows)
    return {"files": len(rows), "bytes": total}


def uploads(args):
    rng = random.Random(args.seed)
    sizes, total = [], 0
    kinds, weights = zip(*SIZES_KIB)
    while total < args.mib * 1024:
        kib = rng.choices(kinds, weights)[0]
        sizes.append(kib)
        total += kib
    conn = connect(args.db)
    made = write_uploads(conn, rng, args.dir, sizes)
    conn.close()
    return made


def day(args):
    rng = random.Random(args.seed)
    conn = connect(args.db)
    with conn:
        made = events(conn, rng, args.pupils, args.events, datetime.date.today().isoformat())
    result = {"events": made, **write_uploads(conn, rng, args.dir, [args.upload_kib] * args.uploads)}
    conn.close()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("school", "uploads", "day"):
        command = sub.add_parser(name)
        command.add_argument("db")
        if name != "school":
            command.add_argument("dir")
        command.add_argument("--seed", type=int, default=1)
        command.add_argument("--pupils", type=int, default=300)
        command.add_argument("--classes", type=int, default=12)
        command.add_argument("--days", type=int, default=100)
        command.add_argument("--events", type=int, default=20, help="page views per pupil and day")
        command.add_argument("--mib", type=int, default=200)
        command.add_argument("--uploads", type=int, default=30)
        command.add_argument("--upload-kib", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps({"school": school, "uploads": uploads, "day": day}[args.command](args)))


if __name__ == "__main__":
    main()
