"""`SecretaryConfig`: everything that makes one domain's secretary behave the way its admin wants."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

# Values that reach FreeSWITCH command lines (`uuid_transfer <uuid> <ext> XML <context>`) must be single,
# inert tokens: no blanks, quotes or control characters.
Extension = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9*#+_.-]{1,32}$")]
DomainName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class TimeRange(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: time
    end: time

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _RANGE.match(value)
            if not match:
                raise ValueError(f"expected 'HH:MM-HH:MM', got {value!r}")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            end = time(23, 59, 59) if (h2, m2) == (24, 0) else time(h2, m2)
            return {"start": time(h1, m1), "end": end}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError("a time range must end after it starts")
        return self

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end


class BusinessHours(BaseModel):
    """Weekly opening hours in the domain's own time zone, plus dates it is closed."""

    timezone: str = "UTC"
    weekly: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[TimeRange]] = Field(
        default_factory=dict
    )
    closed_dates: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.timezone))
        if local.date() in self.closed_dates:
            return False
        ranges = self.weekly.get(WEEKDAYS[local.weekday()], [])  # type: ignore[call-overload]
        return any(r.contains(local.time()) for r in ranges)

    def ranges_on(self, day: date) -> list[TimeRange]:
        """The opening times of one local date (none on a closed date)."""
        if day in self.closed_dates:
            return []
        return list(self.weekly.get(WEEKDAYS[day.weekday()], []))  # type: ignore[call-overload]

    def open_until(self, moment: datetime) -> time | None:
        """When the range open at `moment` ends (local time); None when closed then."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        return next((r.end for r in self.ranges_on(local.date()) if r.contains(local.time())), None)

    def next_opening(self, moment: datetime) -> datetime | None:
        """The next local time the office opens after `moment`, within a fortnight (None: not in that time)."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        for offset in range(15):
            day = local.date() + timedelta(days=offset)
            for r in sorted(self.ranges_on(day), key=lambda r: r.start):
                start = datetime.combine(day, r.start, local.tzinfo)
                if start > local:
                    return start
        return None

    def describe_day(self, day: date) -> str:
        """One day's hours, as said: "9 AM to 5 PM", "9 AM to 12 PM and 2 PM to 6 PM"; "" when closed."""
        return " and ".join(f"{spoken_time(r.start)} to {spoken_time(r.end)}" for r in self.ranges_on(day))

    def describe(self) -> str:
        """Opening hours as a sentence a TTS engine reads well ("Monday to Friday, 9 AM to 5 PM")."""
        groups: list[tuple[int, int, str]] = []
        for index, day in enumerate(WEEKDAYS):
            ranges = self.weekly.get(day, [])  # type: ignore[call-overload]
            if not ranges:
                continue
            spoken = " and ".join(f"{spoken_time(r.start)} to {spoken_time(r.end)}" for r in ranges)
            if groups and groups[-1][1] == index - 1 and groups[-1][2] == spoken:
                groups[-1] = (groups[-1][0], index, spoken)
            else:
                groups.append((index, index, spoken))
        if not groups:
            return "We have no regular opening hours."
        parts = []
        for first, last, spoken in groups:
            days = WEEKDAY_NAMES[first] if first == last else f"{WEEKDAY_NAMES[first]} to {WEEKDAY_NAMES[last]}"
            parts.append(f"{days}, {spoken}")
        return "We are open " + "; ".join(parts) + "."


def spoken_time(moment: time) -> str:
    """A time as a TTS engine reads it well: "9 AM", "5:30 PM", "midnight"."""
    if moment >= time(23, 59):
        return "midnight"
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{hour} {suffix}" if moment.minute == 0 else f"{hour}:{moment.minute:02d} {suffix}"


class TransferTarget(BaseModel):
    """One entry of the domain's directory: who or what a caller can be put through to."""

    name: str = Field(min_length=1, max_length=100)
    extension: Extension
    aliases: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(default_factory=list)
    description: str = ""

    @property
    def spoken_names(self) -> list[str]:
        return [self.name, *self.aliases]


class FaqEntry(BaseModel):
    """A question the front desk answers without a model; `keywords` widen what matches."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)


class RecordingSettings(BaseModel):
    """How the Lua script records a caller turn (FreeSWITCH `recordFile` arguments)."""

    max_seconds: int = Field(default=15, ge=1, le=300)
    silence_threshold: int = Field(default=300, ge=1, le=10000)
    silence_seconds: int = Field(default=2, ge=1, le=30)
    message_max_seconds: int = Field(default=120, ge=5, le=600)
    # Silent turns in a row (nothing above line noise) before the secretary says goodbye and hangs up; each
    # one before that is answered "Are you still there?".
    silent_turns: int = Field(default=2, ge=1, le=10)


# A stored credential's name (`v_ai_provider_credentials.credential_name`).
CredentialName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]

# The service's own secrets: no config may name them as a provider key, whoever wrote it.
_SERVICE_VARIABLES = re.compile(r"^(VOICEAI_.*|.*DATABASE_URL|.*REDIS_URL|PG[A-Z]*)$", re.IGNORECASE)


def _operator_variable(name: str) -> str:
    if _SERVICE_VARIABLES.match(name):
        raise ValueError(f"{name} holds one of the service's own secrets and can't be used as a credential")
    return name


# An environment variable holding an operator credential (`*_env`): an operator-only setting (SECURITY.md).
EnvName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"), AfterValidator(_operator_variable)
]


def _environment(name: str | None) -> str | None:
    return (os.environ.get(name) or None) if name else None


class ProviderSpec(BaseModel):
    """One engine in a chain. Secrets are never stored here: `api_key_ref` names a credential stored encrypted
    for the domain (attached by the PostgreSQL store), `api_key_env` an operator's environment variable. Which
    key an entry really gets is decided in one place, `secretary.credentials.resolver`."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    model: str | None = None
    base_url: str | None = None
    api_key_env: EnvName | None = None
    api_key_ref: CredentialName | None = None
    # A voice name or id: it goes into URL paths (ElevenLabs), so one plain token, never a path.
    voice: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,100}$")] | None = None
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # The decrypted credential named by api_key_ref: private, so it is never dumped, logged or compared.
    _api_key: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    def with_api_key(self, secret: str | None) -> ProviderSpec:
        spec = self.model_copy()
        spec._api_key = SecretStr(secret) if secret else None
        return spec

    def stored_key(self) -> str | None:
        """The domain's own credential named by `api_key_ref`, once the store attached it."""
        return self._api_key.get_secret_value() if self._api_key is not None else None


def _chain(*names: str) -> Any:
    return Field(default_factory=lambda: [ProviderSpec(name=n) for n in names], min_length=1)


class ProviderChains(BaseModel):
    """Per kind, the engines to try in order; the local engine is the offline default."""

    stt: list[ProviderSpec] = _chain("whisper")
    brain: list[ProviderSpec] = _chain("front_desk")
    tts: list[ProviderSpec] = _chain("piper")
    realtime: list[ProviderSpec] = _chain("pipeline")
    # The first entry that can be built embeds the domain's knowledge base (a collection is bound to the
    # embedder that built it: changing this means re-indexing the domain).
    embeddings: list[ProviderSpec] = _chain("minilm")


class SmtpServer(BaseModel):
    """A domain's own SMTP server for message e-mails (else the service-wide `smtp` settings apply)."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, gt=0, lt=65536)
    username: str | None = None
    password_env: EnvName | None = None
    password_ref: CredentialName | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    from_address: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    _password: SecretStr | None = PrivateAttr(default=None)

    def password_value(self) -> str | None:
        if self._password is not None:
            return self._password.get_secret_value()
        return _environment(self.password_env)


class MessageSettings(BaseModel):
    """Where a message the secretary takes goes, besides being saved: e-mail and/or a signed webhook."""

    email_to: list[Annotated[str, StringConstraints(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+$")]] = Field(
        default_factory=list, max_length=20
    )
    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)] | None = None
    webhook_secret_env: EnvName | None = None
    webhook_secret_ref: CredentialName | None = None
    smtp: SmtpServer | None = None
    _webhook_secret: SecretStr | None = PrivateAttr(default=None)

    def webhook_secret_value(self) -> str | None:
        """The HMAC key for webhook signatures: the stored credential, else the environment variable."""
        if self._webhook_secret is not None:
            return self._webhook_secret.get_secret_value()
        return _environment(self.webhook_secret_env)


class SecretaryConfig(BaseModel):
    """A domain's AI secretary. Looked up per request by `domain_uuid` or `domain_name`."""

    domain_uuid: UUID
    domain_name: DomainName
    enabled: bool = True
    name: str = Field(default="Alex", min_length=1, max_length=100)
    company: str = Field(default="", max_length=200)
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    greeting: str = ""
    farewell: str = "Thank you for calling. Goodbye!"
    instructions: str = ""
    business_hours: BusinessHours | None = None
    directory: list[TransferTarget] = Field(default_factory=list)
    fallback_destination: Extension
    max_turns: int = Field(default=20, ge=1, le=200)
    max_call_seconds: int = Field(default=600, ge=30, le=14400)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    faq: list[FaqEntry] = Field(default_factory=list)
    providers: ProviderChains = Field(default_factory=ProviderChains)
    playback_mode: Literal["module", "event"] = "event"  # the community mod_audio_stream plays nothing itself
    messages: MessageSettings = Field(default_factory=MessageSettings)
    # True for the operator's own YAML secretaries; database rows are tenant-editable (see the resolver).
    _operator_owned: bool = PrivateAttr(default=False)

    @property
    def operator_owned(self) -> bool:
        return self._operator_owned

    def owned_by_operator(self) -> SecretaryConfig:
        config = self.model_copy()
        config._operator_owned = True
        return config

    @property
    def context(self) -> str:
        """FreeSWITCH dialplan context of the domain: in FusionPBX, the domain name."""
        return self.domain_name

    @property
    def opening_line(self) -> str:
        if self.greeting:
            return self.greeting
        at = f" at {self.company}" if self.company else ""
        return f"Hello, you have reached {self.name}{at}. How can I help you?"

    def target_by_name(self, name: str) -> TransferTarget | None:
        wanted = name.strip().casefold()
        for target in self.directory:
            if any(spoken.casefold() == wanted for spoken in target.spoken_names):
                return target
        return None

    def target_by_extension(self, extension: str) -> TransferTarget | None:
        return next((t for t in self.directory if t.extension == extension), None)
