"""Image embeddings kept between runs, so new labels cost seconds instead of a pass of the model.

One SQLite file under `SMART_SORTER_HOME` (default: the user's cache folder). Embeddings are keyed
by the model (id, revision, and for a local folder a fingerprint of its files), the preprocessing
mode and the SHA-256 of the image's bytes, so the same picture in another folder is found too. A
second table remembers each file's size and modification time with its hash, so unchanged files are
not read again; it is keyed by the path's bytes (`os.fsencode`), so names that are not valid UTF-8
are kept as they are. A video's frames are embeddings like any image's, named by the video's hash and
the frame's time; a third table remembers which frames (and duration) a sampling took from each video,
so a video sorted again with the same sampling needs neither the model nor its decoder. Writes are
committed per batch: an interrupted run keeps what it computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

DATABASE_NAME = "embeddings.sqlite"
# 1: `files.path` holds os.fsencode(path) as a BLOB (version 0 stored str(path) as TEXT)
SCHEMA_VERSION = 1


def cache_home() -> Path:
    """`SMART_SORTER_HOME`, else the per-user cache folder (XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get("SMART_SORTER_HOME"):
        return Path(os.environ["SMART_SORTER_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "smart-sorter"


def model_key(model: dict[str, Any], preprocess: str) -> str:
    """Identifies the embeddings a model makes: id and revision, or a local folder's fingerprint, and the
    image tower's precision (fp32 adds nothing, so keys written before precisions were chosen still match)."""
    key = f"{model['id']}@{model.get('revision') or ''}#{preprocess}"
    if model.get("precision", "fp32") != "fp32":
        key += f"/{model['precision']}"
    folder = Path(str(model["id"])).expanduser()
    if folder.is_dir():
        digest = hashlib.sha256()
        for path in sorted(folder.iterdir()):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        key += ":" + digest.hexdigest()[:16]
    return key


def _key(path: Path) -> bytes:
    """A path as the bytes the file system knows it by: lossless for any name."""
    return os.fsencode(path)


class EmbeddingCache:
    """Embeddings by (model key, image hash), and image hashes by (path, size, mtime)."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or cache_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / DATABASE_NAME
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS embeddings (
                model TEXT NOT NULL, sha256 TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, sha256));
            CREATE TABLE IF NOT EXISTS files (
                path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS videos (
                sampling TEXT NOT NULL, sha256 TEXT NOT NULL, duration REAL, times TEXT NOT NULL,
                PRIMARY KEY (sampling, sha256));
            """
        )
        self._upgrade()

    def _upgrade(self) -> None:
        """Paths stored as TEXT by older versions become the BLOBs they are looked up by now.

        SQLite keeps a BLOB as a BLOB even in a column declared TEXT, so the table itself need
        not change and an older version can still open the database (its lookups simply miss).
        """
        if self._db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        with self._db:
            self._db.execute("UPDATE OR IGNORE files SET path = CAST(path AS BLOB) WHERE typeof(path) = 'text'")
            self._db.execute("DELETE FROM files WHERE typeof(path) = 'text'")  # already there as a BLOB
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def known_hash(self, path: Path) -> str | None:
        """The hash recorded for `path` if its size and modification time are unchanged."""
        try:
            stat = path.stat()
        except OSError:
            return None
        row = self._db.execute("SELECT size, mtime_ns, sha256 FROM files WHERE path = ?", (_key(path),)).fetchone()
        if row and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return row[2]
        return None

    def remember_hashes(self, items: list[tuple[Path, str]] | list[tuple[Path, str, tuple[int, int]]]) -> None:
        """Remember each file's hash with its size and modification time: those it had when it was hashed
        (a third item), else those it has now."""
        rows = []
        for path, sha256, *when_hashed in items:
            if when_hashed:
                size, mtime_ns = when_hashed[0]
            else:
                try:
                    stat = path.stat()
                except OSError:
                    continue
                size, mtime_ns = stat.st_size, stat.st_mtime_ns
            rows.append((_key(path), size, mtime_ns, sha256))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", rows)

    def hashes(self, model: str) -> frozenset[str]:
        """Every image hash with an embedding for `model`."""
        return frozenset(row[0] for row in self._db.execute("SELECT sha256 FROM embeddings WHERE model = ?", (model,)))

    def get(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT sha256, vector FROM embeddings WHERE model = ? AND sha256 IN ({marks})"
            for sha256, blob in self._db.execute(query, (model, *chunk)):
                found[sha256] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, model: str, embeddings: dict[str, np.ndarray]) -> None:
        rows = [(model, sha256, np.asarray(v, dtype=np.float32).tobytes()) for sha256, v in embeddings.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def videos(self, sampling: str) -> dict[str, tuple[float | None, tuple[float, ...]]]:
        """Every video sampled with `sampling`: its hash -> (duration, frame times)."""
        rows = self._db.execute("SELECT sha256, duration, times FROM videos WHERE sampling = ?", (sampling,))
        return {sha256: (duration, tuple(json.loads(times))) for sha256, duration, times in rows}

    def put_videos(self, sampling: str, videos: dict[str, tuple[float | None, tuple[float, ...]]]) -> None:
        rows = [(sampling, sha, duration, json.dumps(list(times))) for sha, (duration, times) in videos.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO videos VALUES (?, ?, ?, ?)", rows)

    def stats(self) -> dict[str, Any]:
        """The cache's file and size, files known, and per model the embeddings of images (`models`) and of video
        frames (`frames`: named `hash@time`), and how many videos and animations have their sampled frames known."""
        per_model = self._db.execute(
            "SELECT model, SUM(instr(sha256, '@') = 0), SUM(instr(sha256, '@') > 0) FROM embeddings GROUP BY model"
        ).fetchall()
        files = self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        videos, animations = self._db.execute(
            "SELECT COUNT(DISTINCT CASE WHEN sampling NOT LIKE '%;animation' THEN sha256 END),"
            " COUNT(DISTINCT CASE WHEN sampling LIKE '%;animation' THEN sha256 END) FROM videos WHERE times != '[]'"
        ).fetchone()
        size = sum(p.stat().st_size for p in self.home.glob(DATABASE_NAME + "*") if p.is_file())
        return {
            "path": str(self.path), "bytes": size, "files": files, "videos": videos, "animations": animations,
            "models": {model: images for model, images, _ in per_model if images},
            "frames": {model: frames for model, _, frames in per_model if frames},
        }  # fmt: skip

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM embeddings")
            self._db.execute("DELETE FROM files")
            self._db.execute("DELETE FROM videos")
        self._db.execute("VACUUM")

    def close(self) -> None:
        self._db.close()
