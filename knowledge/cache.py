"""Where cgt-bot keeps what it can rebuild: the trained models, parsed data, compiled templates.

Every disk cache follows the same four rules, so that none needs its own:

* key: :func:`cache_key`, a hash of everything an entry is computed from (its bytes, texts and
  settings, and the versions of the libraries that shape it), so a change to any of them makes
  a new entry and the same inputs always find the same one. Nothing is bumped by hand.
* layout: an entry is the folder ``cache_dir()/<kind>/<key>``, written whole under a scratch name
  and renamed into place, so a reader never sees half of it.
* pruning: after an entry is written, the oldest entries of its kind go, keeping the ``keep``
  most recently used (reading an entry marks it used), so that another checkout on the machine
  does not lose its entry at once.
* failures: an entry that cannot be read is logged with its kind, deleted and built again; a
  cache that cannot be written only costs the time to build. Only the errors that reading and
  writing files can raise are caught, so a fault in the code that builds an entry still shows.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import pickle
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

__all__ = ["KEEP", "UNREADABLE", "cache_dir", "cache_key", "cached", "entry_folder", "prune", "source"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Entries of one kind kept after a write: this checkout's and a few others'.
KEEP = 4
#: What reading a damaged or foreign entry raises: a missing or unreadable file, text that is not
#: the JSON or table expected (ValueError covers JSON, msgpack and numpy's format errors), a
#: field missing or of another type, an archive cut short.
UNREADABLE: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)
#: A scratch folder this old is left over from a process that died while writing.
_STALE_SCRATCH_S = 3600.0
#: What writing an entry raises: a folder that cannot be made or written, and a value its
#: ``save`` cannot write (JSON holds no such type); either way the value is only not kept.
_UNWRITABLE: tuple[type[BaseException], ...] = (OSError, TypeError, ValueError)
_SCRATCH = ".scratch-"


def cache_dir() -> Path:
    """``$CGT_BOT_CACHE``, else ``$XDG_CACHE_HOME/cgt-bot``, else ``~/.cache/cgt-bot``."""
    environ = os.environ
    return _cache_dir(environ.get("CGT_BOT_CACHE"), environ.get("XDG_CACHE_HOME"), environ.get("HOME"))


@functools.lru_cache(maxsize=8)
def _cache_dir(configured: str | None, xdg: str | None, home: str | None) -> Path:
    # Asked for every entry read (every data file at each start), and a Path is slow to make;
    # HOME is in the arguments only so that the memo follows what Path.home() reads.
    if configured:
        return Path(configured)
    base = xdg or str(Path.home() / ".cache")
    return Path(base) / "cgt-bot"


def cache_key(*inputs: object, libraries: Iterable[ModuleType] = ()) -> str:
    """The key of an entry computed from ``inputs`` with ``libraries``.

    Args:
        inputs: bytes, text, or anything JSON can write (dicts are read with sorted keys).
        libraries: modules whose version changes what is computed (spaCy's tokenizer, numpy's
            random numbers); their names and ``__version__`` are part of the key.

    RETURNS (str): 20 hex digits of a SHA-256 over every input, each tagged with its type and
        length so that no two different lists of inputs are hashed as the same bytes.
    """
    digest = hashlib.sha256()
    for item in inputs:
        digest.update(_tagged(item))
    digest.update(_versions(tuple(libraries)))
    return digest.hexdigest()[:20]


def _tagged(item: object) -> bytes:
    if isinstance(item, bytes):
        tag, data = b"b", item
    elif isinstance(item, str):
        tag, data = b"s", item.encode("utf-8")
    else:
        tag, data = b"j", json.dumps(item, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return tag + len(data).to_bytes(8, "big") + data


@functools.cache
def _versions(libraries: tuple[ModuleType, ...]) -> bytes:
    # Worked out once per set of libraries: parsed data asks for every data file at each start.
    return _tagged([[module.__name__, str(getattr(module, "__version__", ""))] for module in libraries])


def source(module: ModuleType) -> bytes:
    """The source of ``module``, for the key of what its code computes (no version to bump)."""
    return Path(module.__file__ or "").read_bytes()


def cached(
    kind: str,
    key: str,
    *,
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
    keep: int = KEEP,
) -> T:
    """The value of entry ``key`` of ``kind``: read from disk, else built and saved.

    Args:
        kind (str): the cache's name, its folder under :func:`cache_dir`.
        key (str): the entry's :func:`cache_key`.
        build: computes the value when no readable entry exists.
        save: writes the value's files into the folder given (a scratch folder renamed after).
        load: reads the value from an entry's folder, which may not exist (it is tried before it
            is looked for); raises any of :data:`UNREADABLE` when the files are missing or broken.
        keep (int): entries of this kind kept after a write (see :func:`prune`).
    """
    folder = cache_dir().joinpath(kind, key)
    try:
        value = load(folder)
    except UNREADABLE as error:
        # Read first and asked after, as a hit is what every warm start does for every entry.
        if folder.is_dir():
            log.warning("the %s cache entry %s cannot be read (%r); building it again", kind, key, error)
            shutil.rmtree(folder, ignore_errors=True)
    else:
        _mark_used(folder)
        return value
    value = build()
    if _write(folder, lambda scratch: save(value, scratch)):
        prune(kind, keep)
    return value


def entry_folder(kind: str, key: str, keep: int = KEEP) -> Path | None:
    """The folder of entry ``key`` of ``kind`` for a library that fills it itself (jinja's
    compiled templates), made if need be, marked used, with older entries pruned.

    RETURNS (Path | None): the folder, or None when the cache cannot be written.
    """
    folder = cache_dir().joinpath(kind, key)
    if folder.is_dir():
        _mark_used(folder)
        return folder
    if not _write(folder, lambda scratch: None):
        return None
    prune(kind, keep)
    return folder


def prune(kind: str, keep: int = KEEP) -> None:
    """Remove all but the ``keep`` most recently used entries of ``kind``.

    Also removes what is not an entry: scratch folders left by a process that died while writing,
    and the files the caches of earlier versions kept in the same folders or beside them as
    ``<kind>-<key>``.
    """
    root = cache_dir()
    try:
        with os.scandir(root / kind) as found:
            items = list(found)
        old_layout = list(root.glob(f"{kind}-*"))
    except OSError:
        return  # unreadable: nothing to prune, and nothing is lost by not pruning
    entries = []
    for item in items:
        if item.name.startswith(_SCRATCH):
            _remove_if_stale(Path(item.path))
        elif item.is_dir(follow_symlinks=False):
            entries.append(item)
        else:
            _remove(Path(item.path))
    # Dates are read only when some entry must go: a first start writes every parsed data file.
    if len(entries) > keep:
        entries.sort(key=_used_at, reverse=True)
        for item in entries[keep:]:
            _remove(Path(item.path))
    for path in old_layout:
        _remove(path)


def _used_at(item: os.DirEntry[str]) -> float:
    try:
        return item.stat().st_mtime
    except OSError:
        return 0.0  # gone or unreadable: the first to go


def _write(folder: Path, fill: Callable[[Path], None]) -> bool:
    """Make ``folder`` whole, filled by ``fill``; whether it now exists."""
    # Named by process and thread, so that two writers of one entry never share a scratch folder.
    scratch = folder.with_name(f"{_SCRATCH}{folder.name}-{os.getpid()}-{threading.get_ident()}")
    written = False
    try:
        _make(scratch)
        fill(scratch)
        scratch.rename(folder)
        written = True
    except _UNWRITABLE as error:
        if folder.is_dir():
            return True  # another process wrote the same entry first; it is the same value
        log.debug("the %s cache cannot be written (%r); the value stays in memory", folder.parent.name, error)
    finally:
        if not written:
            shutil.rmtree(scratch, ignore_errors=True)
    return written


def _make(scratch: Path) -> None:
    try:
        scratch.mkdir()
    except FileNotFoundError:  # the kind's first entry
        scratch.parent.mkdir(parents=True, exist_ok=True)
        scratch.mkdir()
    except FileExistsError:  # left by a process of the same number that died while writing
        shutil.rmtree(scratch)
        scratch.mkdir()


def _mark_used(folder: Path) -> None:
    # Pruning keeps the most recently used entries; the folder's time says when that was.
    with contextlib.suppress(OSError):
        os.utime(folder)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _remove_if_stale(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mtime < time.time() - _STALE_SCRATCH_S:
            _remove(path)
