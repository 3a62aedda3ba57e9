"""The audio spool FreeSWITCH and the service share, confined per domain and call.

    <spool>/in/<domain_uuid>/<call_uuid>/    recordings FreeSWITCH writes (the only place we read)
    <spool>/out/<domain_uuid>/<call_uuid>/   replies we write for FreeSWITCH to play
    <spool>/cache/                           the TTS cache (greetings and other fixed prompts)

FreeSWITCH may see the same folder under another path (a docker volume): paths in requests and replies use
`freeswitch_dir`, and are translated to `dir` here.

FreeSWITCH records into a call's inbox, shared with it through a group (`secretary.calls.inbox`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path, PurePosixPath
from uuid import UUID

from secretary.calls.inbox import call_inbox, open_inbox
from secretary.errors import BadInput
from secretary.speech.tts_cache import write_atomically


class SpoolPathError(BadInput):
    def __init__(self, message: str) -> None:
        super().__init__(message, field="recording_file", code="path_outside_spool")


class RecordingTooLarge(BadInput):
    def __init__(self, limit: int) -> None:
        super().__init__(f"recording is larger than {limit} bytes", field="recording_file", code="too_large")


class AudioSpool:
    def __init__(self, root: Path, freeswitch_root: Path | None, max_recording_bytes: int) -> None:
        self.root = root.resolve()
        self.freeswitch_root = PurePosixPath(freeswitch_root or self.root)
        self.max_recording_bytes = max_recording_bytes
        for sub in ("in", "out", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def inbox(self, domain_uuid: UUID, call_uuid: UUID) -> Path:
        return call_inbox(self.root, domain_uuid, call_uuid)

    def outbox(self, domain_uuid: UUID, call_uuid: UUID) -> Path:
        return self.root / "out" / str(domain_uuid) / str(call_uuid)

    def open_call(self, domain_uuid: UUID, call_uuid: UUID) -> None:
        open_inbox(self.root, domain_uuid, call_uuid)
        self.outbox(domain_uuid, call_uuid).mkdir(parents=True, exist_ok=True)

    def for_freeswitch(self, path: Path) -> str:
        """The path as FreeSWITCH sees it."""
        return str(self.freeswitch_root / path.resolve().relative_to(self.root))

    def to_local(self, raw: str) -> Path | None:
        """Our path for a path as FreeSWITCH sees it (None if it is outside the spool)."""
        given = PurePosixPath(raw)
        if ".." in given.parts or "\x00" in raw:
            return None
        try:
            return self.root / given.relative_to(self.freeswitch_root)
        except ValueError:
            local = Path(raw)
            return local if local.is_relative_to(self.root) else None

    def recording_path(self, domain_uuid: UUID, call_uuid: UUID, turn: int) -> str:
        return self.for_freeswitch(self.inbox(domain_uuid, call_uuid) / f"turn-{turn:03d}.wav")

    def message_path(self, domain_uuid: UUID, call_uuid: UUID) -> str:
        return self.for_freeswitch(self.inbox(domain_uuid, call_uuid) / "message.wav")

    def resolve_recording(self, raw: str, domain_uuid: UUID, call_uuid: UUID) -> Path:
        """Map a FreeSWITCH-side path to ours and prove it lies in this call's inbox, symlinks resolved."""
        if not raw or "\x00" in raw or len(raw) > 4096:
            raise SpoolPathError("recording_file is not a usable path")
        given = PurePosixPath(raw)
        if ".." in given.parts:
            raise SpoolPathError("recording_file must not contain '..'")
        if given.is_absolute():
            try:
                local = self.root / given.relative_to(self.freeswitch_root)
            except ValueError:
                local = Path(given)
        else:
            local = self.root / given
        resolved = local.resolve()
        allowed = self.inbox(domain_uuid, call_uuid).resolve()
        if not resolved.is_relative_to(allowed):
            raise SpoolPathError("recording_file is outside this call's folder in the spool")
        return resolved

    def read_recording(self, path: Path) -> bytes:
        """Read a regular file only, capped in size: `O_NOFOLLOW` refuses a symlink swapped in after
        `resolve_recording`, `O_NONBLOCK` keeps a FIFO planted in the inbox from blocking a worker thread, and
        the descriptor is checked (fstat) and closed whatever the file turns out to be."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise BadInput("recording_file does not exist", field="recording_file", code="not_found") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SpoolPathError("recording_file is a symbolic link") from None
            raise BadInput(f"recording_file can't be read: {exc.strerror}", field="recording_file") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SpoolPathError("recording_file is not a regular file")
            if info.st_size > self.max_recording_bytes:
                raise RecordingTooLarge(self.max_recording_bytes)
            with open(fd, "rb", closefd=False) as handle:
                data = handle.read(self.max_recording_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > self.max_recording_bytes:
            raise RecordingTooLarge(self.max_recording_bytes)
        return data

    def write(self, path: Path, data: bytes) -> Path:
        if not path.resolve().is_relative_to(self.root):
            raise SpoolPathError("refusing to write outside the spool")
        write_atomically(path, data)
        return path


# -- turn audio uploaded in request bodies: bounded per call, removed with the call ----------------------------

TURN_UPLOAD = "upload-"  # a turn's audio: only needed for that turn, removed when the call ends or expires
MESSAGE_UPLOAD = "message-upload-"  # a taken message's audio: it *is* the message, so it stays


class UploadQuotaExceeded(BadInput):
    http_status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message, field="body", code="call_upload_quota")


class CallUploads:
    """Turn audio a client posts as the request body (FreeSWITCH's own recordings are bounded by its
    `recordFile` limits instead). Counted from the call's folder, so every process sharing the spool sees the
    same total; a retried turn replaces its own file rather than adding one."""

    def __init__(self, spool: AudioSpool, max_bytes: int, max_files: int) -> None:
        self._spool = spool
        self.max_bytes = max_bytes
        self.max_files = max_files

    def store(self, domain_uuid: UUID, call_uuid: UUID, turn: int, data: bytes, *, message: bool) -> Path:
        inbox = self._spool.inbox(domain_uuid, call_uuid)
        path = inbox / f"{MESSAGE_UPLOAD if message else TURN_UPLOAD}{turn:03d}.wav"
        others = [entry for entry in _uploads(inbox, (TURN_UPLOAD, MESSAGE_UPLOAD)) if entry.name != path.name]
        if len(others) >= self.max_files:
            raise UploadQuotaExceeded(f"this call has already uploaded {self.max_files} files, the most one call may")
        used = sum(entry.stat(follow_symlinks=False).st_size for entry in others)
        if used + len(data) > self.max_bytes:
            raise UploadQuotaExceeded(
                f"this call's uploaded audio would pass {self.max_bytes} bytes, the most one call may leave "
                f"({used} already)"
            )
        return self._spool.write(path, data)

    def remove(self, domain_uuid: UUID, call_uuid: UUID) -> int:
        """At the end of the call: its turn uploads go (the transcript is in the call record)."""
        removed = 0
        for entry in _uploads(self._spool.inbox(domain_uuid, call_uuid), (TURN_UPLOAD,)):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
        return removed

    def sweep(self, max_age_s: float, now: float) -> int:
        """Turn uploads of calls that never ended: older than the call state's lifetime, their call is gone."""
        removed = 0
        for domain in _folders(self._spool.root / "in"):
            for call in _folders(Path(domain.path)):
                for entry in _uploads(Path(call.path), (TURN_UPLOAD,)):
                    with contextlib.suppress(FileNotFoundError):  # the call just ended in another process
                        if entry.stat(follow_symlinks=False).st_mtime < now - max_age_s:
                            Path(entry.path).unlink(missing_ok=True)
                            removed += 1
        return removed


def _folders(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return [entry for entry in entries if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _uploads(inbox: Path, prefixes: tuple[str, ...]) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(inbox) as entries:
            return [
                entry
                for entry in entries
                if entry.name.startswith(prefixes)
                and entry.name.endswith(".wav")
                and entry.is_file(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return []
