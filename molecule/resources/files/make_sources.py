#!/usr/bin/env python3
"""Make the stand-in app available the ways a real deploy gets it, for the `sources` scenario.

Usage: make_sources.py OUTDIR
Writes OUTDIR/lernmanager.git (a bare repository: branch main with tags v1 and v2, the stand-in
app's two versions, and v2-deps, v2 with another requirements.txt: the same code in another venv) and OUTDIR/lernmanager-v1.tar.gz (v1 under one top directory, as GitHub's
tarballs are) with its sha256 in OUTDIR/lernmanager-v1.tar.gz.sha256. Commit dates and archive
metadata are fixed, so every run gives the same commits and bytes (a re-run deploys nothing new).
"""

import gzip
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

REPO = pathlib.Path(__file__).resolve().parents[3]
BUILD_APP = REPO / "tests" / "fixtures" / "build_app.py"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Lernmanager tests", "GIT_AUTHOR_EMAIL": "tests@lernmanager.test",
    "GIT_COMMITTER_NAME": "Lernmanager tests", "GIT_COMMITTER_EMAIL": "tests@lernmanager.test",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def build(version, dest):
    subprocess.run([sys.executable, str(BUILD_APP), version, str(dest)], check=True, capture_output=True)


def main(outdir):
    out = pathlib.Path(outdir)
    work = out / "work"
    shutil.rmtree(out, ignore_errors=True)
    work.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    for version, tag in (("v1", "v1"), ("v2", "v2"), ("v2_deps", "v2-deps")):
        build(version, out / version)
        for child in work.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(out / version, work, dirs_exist_ok=True)
        git("add", "--all", cwd=work)
        git("commit", "--quiet", "--message", f"Stand-in app {version}", cwd=work)
        git("tag", tag, cwd=work)
    git("clone", "--quiet", "--bare", str(work), str(out / "lernmanager.git"), cwd=out)

    archive = out / "lernmanager-v1.tar.gz"
    with open(archive, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted((out / "v1").rglob("*")):
                info = tar.gettarinfo(str(path), arcname="lernmanager-v1/" + str(path.relative_to(out / "v1")))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                # Files keep their repository mtimes (nginx's ETags); directories are made anew.
                info.mtime = int(info.mtime) if info.isfile() else 0
                if info.isfile():
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (out / "lernmanager-v1.tar.gz.sha256").write_text(digest + "\n")
    shutil.rmtree(work)
    print(digest)


if __name__ == "__main__":
    main(sys.argv[1])
