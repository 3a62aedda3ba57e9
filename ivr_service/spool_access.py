"""Can this service read what FreeSWITCH records into the spool? `voiceai doctor` asks before a caller does.

On FusionPBX FreeSWITCH runs as `www-data` with `UMask=0007`: a recording is `0660`, owned by `www-data`, so
another user reads it only through the file's group. `freeswitch/conf/spool-permissions.sh` makes the spool's
folders setgid with FreeSWITCH's group (a new file takes the folder's group), and the service must be in that
group (docker-compose: `group_add` with `FREESWITCH_GID`; systemd: `SupplementaryGroups=www-data`).

The check creates a file in `in/` the way FreeSWITCH does (mode 0666 under umask 0007) and reads the group and
mode it really got there (a bind mount or a filesystem may not honour setgid), then decides whether a user other
than its owner — FreeSWITCH, for a real recording — with this service's groups could read it.
"""

from __future__ import annotations

import contextlib
import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path

FREESWITCH_UMASK = 0o007  # FusionPBX's freeswitch.service
FIX = (
    "run freeswitch/conf/spool-permissions.sh on the host, and run this service in FreeSWITCH's group "
    "(docker-compose: FREESWITCH_GID in .env; systemd: SupplementaryGroups=www-data)"
)


@dataclass(frozen=True)
class SpoolAccess:
    ok: bool
    detail: str


def _group_name(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} ({gid})"
    except KeyError:
        return str(gid)


def _probe(inbox_root: Path) -> os.stat_result:
    """A file made as FreeSWITCH makes a recording; its stat, then it is removed."""
    probe = inbox_root / f".doctor-{os.getpid()}.wav"
    old = os.umask(FREESWITCH_UMASK)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    finally:
        os.umask(old)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            probe.unlink()


def check_spool_access(root: Path, gids: set[int]) -> SpoolAccess:
    """`gids`: this process's groups (`os.getgroups()` and the effective gid)."""
    inbox_root = root / "in"
    try:
        folder = inbox_root.stat()
        made = _probe(inbox_root)
    except OSError as exc:
        return SpoolAccess(False, f"{inbox_root}: {exc.strerror or exc}; {FIX}")
    problems = []
    if not folder.st_mode & stat.S_ISGID:
        problems.append(f"{inbox_root} is not setgid (what FreeSWITCH records there keeps FreeSWITCH's own group)")
    if folder.st_mode & 0o070 != 0o070:
        problems.append(f"{inbox_root} is mode {stat.S_IMODE(folder.st_mode):04o}: its group can't use it")
    group = _group_name(made.st_gid)
    if made.st_gid not in gids:
        problems.append(
            f"a recording here gets group {group}, mode {stat.S_IMODE(made.st_mode):04o}, owner FreeSWITCH: "
            f"this service (uid {os.geteuid()}, groups {sorted(gids)}) can't read it"
        )
    elif not made.st_mode & stat.S_IRGRP:
        problems.append(f"a recording here is mode {stat.S_IMODE(made.st_mode):04o}: its group can't read it")
    if problems:
        return SpoolAccess(False, "; ".join(problems) + f"; {FIX}")
    return SpoolAccess(
        True,
        f"FreeSWITCH's recordings here (0660, group {group}) are readable: this service is in group {group}",
    )


def own_groups() -> set[int]:
    return {os.getegid(), *os.getgroups()}
