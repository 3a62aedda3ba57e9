"""A call's inbox in the audio spool, `<spool>/in/<domain_uuid>/<call_uuid>/`: where the caller's recordings
are kept (FreeSWITCH's turn recordings, and every taken message's audio, whichever transport took it), so the
admin API finds a message's recording in its own call's folder.

FreeSWITCH (on FusionPBX: user `www-data`, umask 0007) records into a call's inbox, so the inbox is shared with
it through a group, not with everyone: `INBOX_MODE` is owner and group only, setgid so what FreeSWITCH records
keeps the spool's group (`freeswitch/conf/spool-permissions.sh` gives the spool FreeSWITCH's group).
"""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID

INBOX_MODE = 0o2770  # rwx for us and FreeSWITCH's group, nothing for other users; setgid keeps the group


def call_inbox(spool_root: Path, domain_uuid: UUID, call_uuid: UUID) -> Path:
    return spool_root / "in" / str(domain_uuid) / str(call_uuid)


def open_inbox(spool_root: Path, domain_uuid: UUID, call_uuid: UUID) -> Path:
    """Creates the call's inbox (and its domain's folder, which FreeSWITCH passes through) shared with
    FreeSWITCH, so a call that goes on in the turn-based mode can still record there."""
    inbox = call_inbox(spool_root, domain_uuid, call_uuid)
    inbox.parent.parent.mkdir(parents=True, exist_ok=True)
    for folder in (inbox.parent, inbox):
        _make_shared(folder)
    return inbox


def _make_shared(folder: Path) -> None:
    """Create `folder` with `INBOX_MODE` (whatever our umask); one that exists is left as its owner set it."""
    try:
        folder.mkdir()
    except FileExistsError:
        return
    os.chmod(folder, INBOX_MODE)
