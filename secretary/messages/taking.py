"""Taking a message, for both transports: the caller's recording (and what was understood of it) becomes a
`TakenMessage` handed to the courier.

The recording is a message on disk (`MessageCourier.holding`) before anything that can fail runs (the config
lookup, STT): a turn that fails or a call that ends mid-way loses nothing, and a later courier pass saves it as
it stands. Saving goes to PostgreSQL, or to the courier's spill files while PostgreSQL is down.

The turn-based mode passes the file FreeSWITCH recorded; a realtime engine passes the caller's audio, written
here as a WAV in the call's inbox, where the turn-based mode's recordings are (safe names: the message's UUID).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog

from secretary.calls.inbox import open_inbox
from secretary.calls.models import CallState
from secretary.errors import SecretaryError
from secretary.messages.courier import MessageCourier
from secretary.messages.models import TakenMessage
from secretary.speech.audio import Pcm, wav_bytes
from secretary.speech.tts_cache import write_atomically
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)


class MessageTaker:
    def __init__(self, courier: MessageCourier, spool_root: Path) -> None:
        self._courier = courier
        self._spool_root = spool_root

    @asynccontextmanager
    async def held(self, state: CallState, audio: Pcm, recording: Path | None = None) -> AsyncIterator[TakenMessage]:
        """The caller's message, on disk for as long as the block runs (`take` it inside). `recording`: the
        file the audio already is (turn-based); without it the audio, if it has any sample, is written to the
        call's inbox (a transcript without audio is still a message)."""
        if recording is not None:
            message_uuid = uuid.uuid5(state.call_uuid, str(recording))  # a retried turn is the same message
            audio_file: str | None = str(recording)
        else:
            message_uuid = uuid.uuid4()
            audio_file = await self._write(state, message_uuid, audio) if audio.data else None
        details = state.desk.message  # asked and read back by the front desk (none when another brain chose)
        message = TakenMessage(
            message_uuid=message_uuid,
            domain_uuid=state.domain_uuid,
            call_uuid=state.call_uuid,
            caller_id_number=state.caller_id_number,
            caller_id_name=state.caller_id_name,
            recipient=(details.recipient or "") if details else "",
            caller_name=(details.caller_name or "") if details else "",
            callback_number=(details.callback_number or "") if details else "",
            audio_file=audio_file,
        )
        async with self._courier.holding(message):
            yield message

    async def take(self, message: TakenMessage, transcript: str, config: SecretaryConfig) -> None:
        """Saves the message and hands it to the courier; delivery happens in the background. A storage failure
        is logged, never the caller's problem: the message stays on disk, and the courier saves it later."""
        message.transcript = transcript
        try:
            await self._courier.take(message, config)
        except (SecretaryError, OSError) as exc:
            log.error("message_not_saved_yet", message_uuid=str(message.message_uuid), reason=str(exc))

    async def _write(self, state: CallState, message_uuid: uuid.UUID, audio: Pcm) -> str | None:
        """The recording as a WAV in the call's inbox; None if the disk refuses it (the transcript is kept)."""

        def write() -> str:
            inbox = open_inbox(self._spool_root.resolve(), state.domain_uuid, state.call_uuid)
            path = inbox / f"message-{message_uuid}.wav"
            write_atomically(path, wav_bytes(audio))
            return str(path)

        try:
            return await asyncio.to_thread(write)
        except OSError as exc:
            log.error("message_audio_not_written", message_uuid=str(message_uuid), reason=str(exc))
            return None
