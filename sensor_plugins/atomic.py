"""Writes that never leave a half-written file behind, never touch what we did not write, one run at a time."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sensor_plugins.errors import SensorPluginsError


class WriteError(SensorPluginsError, OSError):
    """A file that could not be written: one line naming it, and still an OSError so that a
    caller undoing a group of writes (``apply_changes``) sees it as a failed write."""


@contextlib.contextmanager
def open_atomic(path: Path | str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file written in pieces that readers see whole or not at all: temp file, fsync, rename.

    Streaming matters for outputs such as a 10M-row day's findings, which are hundreds
    of MB and should never be held in memory just to be written atomically. The temp file
    is named ``.NAME.PID.XXXXXXXX.tmp`` and locked while it is written, so a later run can
    tell one left by a killed writer (see ``sweep_temp_files``) from one being written now.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(path)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    tmp = ""
    try:
        # A stop signal held here is raised as the block ends, inside the try, with the
        # temp file already known, so that it is removed.
        with signals_deferred():
            # The temp file must live on the same filesystem, or rename is not atomic.
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
            handle = os.fdopen(fd, "wb")
            fcntl.flock(fd, fcntl.LOCK_EX)
        with handle:
            yield handle
            _pause_for_test(path)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with signals_deferred():
            if tmp:
                Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, SensorPluginsError) and (
                not tmp or exc.filename in (None, tmp)):
            # A full disk or a vanished folder, met while making or writing our own temp file.
            raise WriteError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        raise


# -- leftovers of a run killed outright ----------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(path: Path, pid: int) -> bool:
    """Whether ``path``, named for writer ``pid``, was left by a writer that is gone.

    The writer's pid must be dead *and* its lock free: a pid alone could be a live
    process of another PID namespace, and a lock alone is not yet taken in the instant
    after the writer made the file.
    """
    if pid == os.getpid() or _pid_alive(pid):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def sweep_temp_files(path: Path) -> list[Path]:
    """Remove the temp files that writers of ``path`` killed outright (kill -9, a power cut) left
    beside it; only regular files named as ``open_atomic`` names them, and only abandoned ones."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[A-Za-z0-9_]{{8}}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False) and _abandoned(Path(entry.path), int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def sweep_tree(root: Path) -> list[Path]:
    """Remove the abandoned temp files of every file the manifest of ``root`` names (and of the
    manifest itself): what a run killed outright while replacing them left behind."""
    if not root.is_dir() or root.is_symlink():
        return []
    names = {root / rel for rel in read_manifest(root)} | {root / MANIFEST}
    return [leftover for path in sorted(names) for leftover in sweep_temp_files(path)]


def sweep_temp_dirs(parent: Path, prefix: str) -> list[Path]:
    """Remove the directories named ``PREFIXPID.XXXXXXXX`` under ``parent`` whose run was killed outright."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)\.[A-Za-z0-9_]{{8}}")
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and _abandoned(Path(entry.path), int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def make_locked_temp_dir(prefix: str, parent: Path | None = None) -> tuple[Path, int]:
    """A new directory ``PREFIXPID.XXXXXXXX`` under ``parent`` ($TMPDIR by default), and the
    descriptor that holds its lock until it is closed (or the process ends, however it ends).

    What killed runs left under the same prefix is removed first; a live run's is not.
    """
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    sweep_temp_dirs(base, prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", dir=base))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return path, fd


@contextlib.contextmanager
def temp_dir(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A temporary directory of this run, removed however the run ends short of kill -9.

    Named ``PREFIXPID.XXXXXXXX`` and locked while it lives, so the next run that makes one
    with the same prefix removes what a killed run left, and nothing of a live one.
    """
    made: list[Path] = []
    fds: list[int] = []
    try:
        # A signal held here is raised as the block ends, inside the try: the directory
        # is then already noted for removal.
        with signals_deferred():
            path, fd = make_locked_temp_dir(prefix, parent)
            made.append(path)
            fds.append(fd)
        yield made[0]
    finally:
        with signals_deferred():
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
            for fd in fds:
                os.close(fd)


# -- stop signals ----------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGINT or SIGHUP), raised where the run was.

    It unwinds like a failed write does: ``apply_changes`` puts back what it wrote, and
    every temp file and directory is removed on the way out. A KeyboardInterrupt, so
    that no ``except Exception`` on the way swallows it. The CLI ends with 128 + signal.
    """

    def __init__(self, signum: int, note: str = "") -> None:
        super().__init__(signum, note)
        self.signum = signum
        self.note = note

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"stopped by {name}" + (f"; {self.note}" if self.note else "")


@dataclass
class _SignalState:
    received: list[int] = field(default_factory=list)  # the stop signals that came, in order
    raised: bool = False  # Interrupted was raised for the first; later ones only wait
    deferred: int = 0  # how many signals_deferred blocks are open


_signals = _SignalState()


def _on_stop_signal(signum: int, _frame: object) -> None:
    _signals.received.append(signum)
    # Held in a section that must not be cut (see signals_deferred), or already unwinding
    # from the first signal: a second one must not cut short the rollback of the first.
    if _signals.deferred or _signals.raised:
        return
    _signals.raised = True
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """For the block, SIGTERM, SIGINT and SIGHUP raise ``Interrupted`` instead of killing the process.

    Python's default would end the process on SIGTERM or SIGHUP with no cleanup at all,
    and raise KeyboardInterrupt for SIGINT anywhere, even between a rename and the note
    that it was made. Handlers can only be set from the main thread; elsewhere the block
    runs with the handlers it has.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _signals.__init__()
    # A signal ignored when we started stays ignored: `nohup` relies on it for SIGHUP, and a
    # shell's background job for SIGINT.
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in STOP_SIGNALS
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _signals.__init__()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals for a short section that must finish once begun (a rollback, the
    removal of a temp file); a signal that came meanwhile is raised when it ends."""
    _signals.deferred += 1
    try:
        yield
    finally:
        _signals.deferred -= 1
    if not _signals.deferred and _signals.received and not _signals.raised:
        _signals.raised = True
        raise Interrupted(_signals.received[0])


# SENSOR_PLUGINS_TEST_PAUSE_AT_WRITE=N:FILE makes the N-th file this process writes through
# open_atomic stop with its temp file full and not yet renamed, create FILE and wait there
# (up to a minute), so that a test can land a real signal at each write of a command.
PAUSE_ENV = "SENSOR_PLUGINS_TEST_PAUSE_AT_WRITE"
_writes = [0]


def _pause_for_test(path: Path) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    _writes[0] += 1
    at, _, marker = spec.partition(":")
    if _writes[0] != int(at) or _signals.raised:
        return
    Path(marker).write_text(f"{_writes[0]} {path}\n", encoding="utf-8")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.01)


def check_output_file(path: Path, inputs: Iterable[Path] = (), what: str = "--out") -> None:
    """Refuse an output path that is not (or would not be) a regular file of its own.

    A device node, a FIFO, a directory or a symbolic link would be replaced by a plain file
    (or fail half-way), and an output that is one of the command's inputs would destroy
    the data it was made from.
    """
    if path.is_symlink():
        raise SensorPluginsError(f"{path}: {what} is a symbolic link; give the real file's path")
    if path.exists():
        if path.is_dir():
            raise SensorPluginsError(f"{path}: {what} is a directory, not a file")
        if not path.is_file():
            raise SensorPluginsError(f"{path}: {what} is not a regular file (a device, FIFO or socket)")
        st = path.stat()
        for source in inputs:
            try:
                other = Path(source).stat()
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                raise SensorPluginsError(f"{path}: {what} is one of the inputs ({source}); it would be overwritten")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SensorPluginsError(f"{path}: {what}'s folder {parent} is not a directory")
            break


def write_bytes_atomic(path: Path | str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    with open_atomic(path, mode) as handle:
        handle.write(data)


def write_text_atomic(path: Path | str, text: str, mode: int = 0o644) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode)


# -- directories we own a part of ----------------------------------------------------------

# Every output directory holds this list of the files sensor-plugins wrote there: those
# are the only files it ever replaces or removes; anything else in the directory is the
# site's own (a local.zeek, another ruleset) and is left alone.
MANIFEST = ".sensor-plugins.manifest"
LOCK_SUFFIX = ".sensor-plugins.lock"
DEFAULT_LOCK_WAIT = 120.0


@dataclass(frozen=True)
class FileChange:
    """One destination file's before and after; ``None`` means absent.

    ``edited``: the file is ours (in the manifest), but its bytes are not what we wrote
    there, so someone changed it since; applying the change would lose that edit.
    """

    path: Path
    old: bytes | None
    new: bytes | None
    edited: bool = False

    @property
    def kind(self) -> str:
        if self.old is None:
            return "add"
        return "remove" if self.new is None else "update"


# The manifest lists each file we wrote with the SHA-256 of what we wrote, in sha256sum's
# format ("<hex>  <path>"), so a file edited by hand since is told from one of ours. A file
# may be listed twice while a run is under way (the bytes before and after it). Lines
# without a digest, as older manifests have, name a file whose bytes are not known.
Manifest = dict[str, set[str]]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_rel(rel: str, root: Path) -> str:
    # A manifest is a file on disk; an entry that climbs out of its directory would
    # let whoever wrote it make us delete or overwrite files elsewhere.
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not parts or rel == MANIFEST:
        raise SensorPluginsError(f"{root / MANIFEST}: entry {rel[:80]!r} is not a path inside {root}")
    return rel


def _manifest_entries(text: str) -> Manifest:
    entries: Manifest = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        hexdigest, sep, rel = line.partition("  ")
        if sep and len(hexdigest) == 64 and all(c in "0123456789abcdef" for c in hexdigest):
            entries.setdefault(rel, set()).add(hexdigest)
        else:
            entries.setdefault(line, set())
    return entries


def read_manifest(root: Path) -> Manifest:
    """The files an earlier run wrote under ``root`` (relative POSIX paths) with the digests
    of what it wrote; empty when none did."""
    path = root / MANIFEST
    if not path.exists() and not path.is_symlink():
        return {}
    if path.is_symlink() or not path.is_file():
        raise SensorPluginsError(f"{path}: manifest is not a regular file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SensorPluginsError(f"{path}: cannot read manifest: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SensorPluginsError(f"{path}: manifest is not UTF-8 text") from exc
    entries = _manifest_entries(text)
    for rel in entries:
        _safe_rel(rel, root)
    return entries


def manifest_bytes(entries: Mapping[str, Iterable[str]]) -> bytes:
    lines = ["# files that sensor-plugins wrote here, with the SHA-256 of what it wrote;",
             "# it replaces and removes only these, and only while they still hold those bytes"]
    lines += [f"{h}  {rel}" if h else rel
              for rel in sorted(entries) for h in (sorted(entries[rel]) or [""])]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _was_edited(old: bytes | None, written: set[str] | None) -> bool:
    """Ours, still there, and no longer what we wrote (unknown for older manifests)."""
    return old is not None and bool(written) and digest(old) not in written


def _existing_bytes(path: Path, root: Path) -> bytes | None:
    """The bytes at ``path``, None when absent; anything but a regular file is refused."""
    if path.is_symlink():
        raise SensorPluginsError(f"{path}: is a symbolic link; sensor-plugins writes only regular files in {root}")
    if not path.exists():
        return None
    if not path.is_file():
        raise SensorPluginsError(f"{path}: is not a regular file, so it cannot be replaced")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SensorPluginsError(f"{path}: cannot read: {exc.strerror}") from exc


def check_output_dir(root: Path) -> None:
    """``root`` is a directory or absent (to be made), and no link to one elsewhere."""
    if root.is_symlink() and not root.is_dir():
        raise SensorPluginsError(f"{root}: is a dangling symbolic link, not an output directory")
    if root.exists() and not root.is_dir():
        raise SensorPluginsError(f"{root}: exists and is not a directory")
    for parent in [root, *root.parents]:
        if parent.exists() and not parent.is_dir():
            raise SensorPluginsError(f"{root}: {parent} is not a directory")


def plan_tree(files: dict[str, bytes], root: Path) -> list[FileChange]:
    """The changes that make ``root`` hold ``files`` and drop what an earlier run wrote there.

    A file we are about to write whose name is taken by a file we did not write (not in
    the manifest) is refused unless it already holds exactly our bytes: replacing it
    would destroy something of the site's.
    """
    check_output_dir(root)
    previous = read_manifest(root) if root.is_dir() else {}
    changes = []
    for rel in sorted(files):
        dest = root / _safe_rel(rel, root)
        old = _existing_bytes(dest, root)
        if old is not None and rel not in previous and old != files[rel]:
            raise SensorPluginsError(
                f"{dest}: exists and was not written by sensor-plugins (it is not in {root / MANIFEST}); "
                "move it away or choose another output directory; nothing was changed"
            )
        if old != files[rel]:
            changes.append(FileChange(dest, old, files[rel], _was_edited(old, previous.get(rel))))
    for rel in sorted(set(previous) - set(files)):
        dest = root / rel
        old = _existing_bytes(dest, root)
        if old is not None:
            changes.append(FileChange(dest, old, None, _was_edited(old, previous[rel])))
    manifest = root / MANIFEST
    new_manifest = manifest_bytes({rel: {digest(data)} for rel, data in files.items()})
    old_manifest = _existing_bytes(manifest, root)
    if old_manifest != new_manifest:
        changes.append(FileChange(manifest, old_manifest, new_manifest))
    return changes


def refuse_edited(changes: Sequence[FileChange], error: type[SensorPluginsError] = SensorPluginsError) -> None:
    """Refuse, before anything is written, to replace or remove a file of ours edited by hand."""
    edited = [c.path for c in changes if c.edited]
    if edited:
        more = f" (and {len(edited) - 1} more)" if len(edited) > 1 else ""
        raise error(
            f"{edited[0]}: changed since sensor-plugins wrote it{more}, and the change would be lost; "
            "keep site changes in files of your own (a local.zeek with redefs, a local.rules) or delete "
            "the file to have it written again; nothing was changed"
        )


def apply_changes(changes: Sequence[FileChange], error: type[SensorPluginsError] = SensorPluginsError) -> None:
    """Write every change atomically; on any failure put back what was already written.

    A file of ours that was edited since we wrote it is refused first, before any write.
    Directories that only the changes needed are made on the way and, on failure, removed.
    """
    refuse_edited(changes, error)
    done: list[FileChange] = []
    made: list[Path] = []
    change: FileChange | None = None
    try:
        for change in [*_manifest_intents(changes), *changes]:
            if change.new is not None:
                with signals_deferred():
                    made += _make_parents(change.path)
            # Noted before it is made: a stop signal can land after the rename and before
            # any line after it, and the rollback must still put that file back.
            done.append(change)
            put(change.path, change.new)
    except (OSError, Interrupted) as exc:
        assert change is not None
        with signals_deferred():
            undone = restore(done)
            for directory in reversed(made):
                with contextlib.suppress(OSError):
                    directory.rmdir()
        tail = "every file was restored" if undone else "some files could not be restored"
        if isinstance(exc, Interrupted):
            raise Interrupted(exc.signum, f"{tail}, nothing was changed" if undone else tail) from None
        if isinstance(exc, SensorPluginsError):
            raise error(f"{exc}; {tail}") from exc
        raise error(f"{exc.filename or change.path}: cannot write: {exc.strerror or exc}; {tail}") from exc
    for change in changes:
        if change.new is None:
            _remove_empty_parents(change.path)


def _manifest_intents(changes: Sequence[FileChange]) -> list[FileChange]:
    """Each manifest first widened to hold the files about to be written, with both their
    old and new digests, before any is written.

    A run killed half-way then leaves a manifest that names every file it wrote and every
    file's bytes either way, so the next run may replace them; without this, a file written
    just before the kill would look like the site's own, or like an edit, and be refused.
    """
    intents = []
    for change in changes:
        if change.path.name == MANIFEST and change.new is not None:
            root = change.path.parent
            old = _manifest_entries((change.old or b"").decode("utf-8", "replace"))
            new = _manifest_entries(change.new.decode("utf-8"))
            before = {c.path.relative_to(root).as_posix(): {digest(c.old)} for c in changes
                      if c.old is not None and c.path.name != MANIFEST and c.path.is_relative_to(root)}
            union = {rel: old.get(rel, set()) | new.get(rel, set()) | before.get(rel, set())
                     for rel in old.keys() | new.keys()}
            if union != old:
                intents.append(FileChange(change.path, change.old, manifest_bytes(union)))
    return intents


def restore(done: Sequence[FileChange]) -> bool:
    """Put back the old bytes of ``done`` (last first); False when some could not be."""
    ok = True
    for change in reversed(done):
        try:
            if not _holds(change.path, change.old):
                put(change.path, change.old)
        except OSError:
            ok = False
    return ok


def _holds(path: Path, data: bytes | None) -> bool:
    """Whether ``path`` holds ``data`` already (None: is absent), so that putting it back is
    no write at all; a change whose write failed, or never began, needs no space to undo."""
    if data is None:
        return not path.exists() and not path.is_symlink()
    try:
        return not path.is_symlink() and path.is_file() and path.read_bytes() == data
    except OSError:
        return False


def put(path: Path, data: bytes | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
    else:
        write_bytes_atomic(path, data)


def _make_parents(path: Path) -> list[Path]:
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for directory in missing:
        directory.mkdir()
    return missing


def _remove_empty_parents(path: Path) -> None:
    # Only the folders a removed file of ours leaves empty go, and never the output root
    # (its manifest stays in it).
    for parent in path.parents:
        try:
            parent.rmdir()
        except OSError:
            return


def copy_tree(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, dirs_exist_ok=True)


def check_disjoint(dirs: Sequence[Path]) -> None:
    """Refuse output directories that are the same or one inside another: each one's manifest
    and removals would fight over the other's files."""
    resolved = [(d, d.resolve()) for d in dirs]
    for i, (a, ra) in enumerate(resolved):
        for b, rb in resolved[i + 1:]:
            if ra == rb or ra.is_relative_to(rb) or rb.is_relative_to(ra):
                raise SensorPluginsError(f"{a} and {b} overlap; give each engine its own output directory")


# -- one run at a time ---------------------------------------------------------------------


def lock_path(target: Path) -> Path:
    """The lock file of an output directory: beside it, so the directory itself stays ours alone."""
    resolved = target.resolve()
    return resolved.parent / f".{resolved.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def locked(targets: Sequence[Path], wait: float = DEFAULT_LOCK_WAIT) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on each target's lock file for the block.

    Locks are taken in one global order (sorted paths), so two runs over overlapping
    sets of directories cannot deadlock. A run that cannot get one within ``wait``
    seconds fails with a message naming the lock file and the holder's pid. The lock
    file is removed when the run ends, so a finished run leaves nothing behind.
    """
    paths = sorted({lock_path(t) for t in targets})
    handles: list[tuple[Path, Any]] = []
    try:
        for path in paths:
            handles.append((path, _acquire(path, wait)))
        yield
    finally:
        for path, handle in reversed(handles):
            # Unlink while still holding the lock: a waiter then finds its file gone and
            # starts over on a new one (see _acquire), so no two runs ever hold "the" lock.
            with contextlib.suppress(OSError):
                path.unlink()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def _acquire(path: Path, wait: float) -> Any:
    deadline = time.monotonic() + wait
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")  # noqa: SIM115
        except OSError as exc:
            raise SensorPluginsError(f"{path}: cannot open the lock file: {exc.strerror}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(40).strip() or "unknown"
            handle.close()
            if time.monotonic() >= deadline:
                raise SensorPluginsError(
                    f"{path}: another sensor-plugins run (pid {holder}) is writing these outputs; "
                    f"waited {wait:g}s, nothing was changed"
                ) from None
            time.sleep(0.05)
            continue
        if _same_file(handle, path):
            break
        # The holder we waited for removed the file as it finished; lock the new one.
        handle.close()
    # The pid only tells a waiting run who holds the lock; on a full disk it cannot be
    # written, and the lock (taken already) holds all the same. Unbuffered, so that no
    # unwritten pid is left to fail again when the file is closed.
    with contextlib.suppress(OSError):
        os.ftruncate(handle.fileno(), 0)
        os.pwrite(handle.fileno(), f"{os.getpid()}\n".encode(), 0)
    return handle


def _same_file(handle: Any, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
