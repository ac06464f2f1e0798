# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Precompressed copies of static files for nginx's gzip_static and brotli_static: the module
release (state=finished) writes them."""

from __future__ import annotations

import gzip
import os
import shutil

from ansible_collections.lernmanager.deploy.plugins.module_utils.tree import walk_files

COMPRESSIBLE = {".css", ".js", ".mjs", ".svg", ".json", ".txt", ".html", ".xml", ".map", ".ico", ".ttf", ".eot"}
MIN_SIZE = 256


def missing_copies(directory, suffixes):
    """(file, suffix) of every compressible file's copy that does not exist yet."""
    for path in walk_files(directory):
        if os.path.splitext(path)[1] not in COMPRESSIBLE or os.path.getsize(path) < MIN_SIZE:
            continue
        for suffix in suffixes:
            if not os.path.exists(path + suffix):
                yield path, suffix


def write_gzip(path):
    with open(path, "rb") as src, open(path + ".gz", "wb") as raw:
        # mtime=0: the same file always gives the same bytes.
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as dst:
            shutil.copyfileobj(src, dst)


def write_copies(module, todo, brotli):
    """Write each (file, suffix) copy, with the file's mode and times (nginx's ETag and
    Last-Modified come from the mtime). brotli is the brotli command's path."""
    for path, suffix in todo:
        if suffix == ".gz":
            write_gzip(path)
        else:
            module.run_command([brotli, "--best", "--keep", "--output=" + path + ".br", path], check_rc=True)
        shutil.copystat(path, path + suffix)
