"""The composition root: builds, from `Settings`, every long-lived object a transport needs.

With no DATABASE_URL the secretaries come from YAML and call records and knowledge documents go to files;
with no REDIS_URL call state stays in memory; with no Chroma URL the knowledge index is embedded.
Production sets them; the tests exercise both paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from secretary.calls.record_store import (
    CallRecordStore,
    FileCallRecordStore,
    PostgresCallRecordStore,
    SpillingCallRecordStore,
)
from secretary.calls.state_store import CallStateStore, MemoryCallStateStore, RedisCallStateStore
from secretary.conversation.meaning import MeaningModel
from secretary.credentials.endpoints import EndpointPolicy
from secretary.credentials.secret_box import SecretBox
from secretary.credentials.store import CredentialStore
from secretary.db.database import Database
from secretary.errors import SecretaryError
from secretary.knowledge.base import KnowledgeBase
from secretary.knowledge.chroma_index import ChromaIndex
from secretary.knowledge.documents import DocumentStore
from secretary.knowledge.embedders import Embedder, MiniLmEmbedder
from secretary.knowledge.file_documents import FileDocumentStore
from secretary.knowledge.pg_documents import PostgresDocumentStore
from secretary.messages.courier import MessageCourier
from secretary.messages.store import FileMessageStore, MessageStore, PostgresMessageStore
from secretary.observability import Metrics
from secretary.providers import ProviderFactory
from secretary.retry_loop import RetryLoop
from secretary.settings import Settings
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels
from secretary.speech.tts_cache import TtsCache
from secretary.tenants.pg_store import PostgresSecretaryStore
from secretary.tenants.store import CachedSecretaryStore
from secretary.tenants.yaml_store import YamlSecretaryStore

if TYPE_CHECKING:
    from freeswitch.esl import EslClient


@dataclass
class Runtime:
    settings: Settings
    secretaries: CachedSecretaryStore
    call_states: CallStateStore
    call_records: CallRecordStore
    providers: ProviderFactory
    models: LocalModels
    tts_cache: TtsCache
    metrics: Metrics
    pool: CpuPool
    database: Database | None
    messages: MessageStore
    courier: MessageCourier
    credentials: CredentialStore | None
    knowledge: KnowledgeBase
    meaning: MeaningModel  # what a caller means, when the front desk's rules don't say
    record_retry: RetryLoop | None  # saves the call records spilled while PostgreSQL was down
    esl: EslClient | None = None  # the realtime bridge's ESL connection, when the bridge runs in this process

    @classmethod
    def create(cls, settings: Settings, models: LocalModels | None = None) -> Runtime:
        """`models` lets several runtimes in one process (tests) share the loaded engines."""
        database = Database(settings.database_url, settings.dependency_timeout_s) if settings.database_url else None
        box = SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)
        endpoints = EndpointPolicy(settings)  # one policy (and one DNS cache) for the adapters and the courier
        credentials: CredentialStore | None = None
        spill: FileMessageStore | None = None
        record_retry: RetryLoop | None = None
        if database is not None:
            credentials = CredentialStore(database, box)
            secretaries = CachedSecretaryStore(
                PostgresSecretaryStore(database, credentials), settings.config_cache_s, endpoints.prepare
            )
            spilling = SpillingCallRecordStore(
                PostgresCallRecordStore(database), FileCallRecordStore(settings.data_dir / "calls-spill")
            )
            record_retry = RetryLoop("call-record-retry", spilling.save_spilled, settings.spill_retry_s)
            records: CallRecordStore = spilling
            messages: MessageStore = PostgresMessageStore(database)
            spill = FileMessageStore(settings.data_dir / "messages-spill")
            documents: DocumentStore = PostgresDocumentStore(database)
        else:
            yaml_store = YamlSecretaryStore(settings.secretaries_file)
            yaml_store.load()
            secretaries = CachedSecretaryStore(yaml_store, settings.config_cache_s)
            records = FileCallRecordStore(settings.data_dir / "calls")
            messages = FileMessageStore(settings.data_dir / "messages")
            documents = FileDocumentStore(settings.data_dir / "knowledge")
        states: CallStateStore = (
            RedisCallStateStore(settings.redis_url, settings.call_state_ttl_s, settings.dependency_timeout_s)
            if settings.redis_url
            else MemoryCallStateStore(settings.call_state_ttl_s)
        )
        pool = CpuPool(settings.engines.workers)
        models = models or LocalModels(settings.engines)
        metrics = Metrics()
        providers = ProviderFactory(settings, models, pool, metrics, endpoints)
        minilm = MiniLmEmbedder(models, pool)

        async def embedder_for(domain_uuid: UUID) -> Embedder:
            try:
                config = await secretaries.by_uuid(domain_uuid)
            except SecretaryError:  # no secretary (or a disabled one): the default embedder
                return minilm
            return providers.embedder(config, minilm)

        return cls(
            settings=settings,
            secretaries=secretaries,
            call_states=states,
            call_records=records,
            providers=providers,
            models=models,
            tts_cache=TtsCache(settings.spool.dir / "cache", settings.spool.reply_sample_rate),
            metrics=metrics,
            pool=pool,
            database=database,
            messages=messages,
            courier=MessageCourier(
                messages,
                secretaries,
                settings,
                spill,
                FileMessageStore(settings.data_dir / "messages-incoming"),
                endpoints,
            ),
            credentials=credentials,
            meaning=MeaningModel(minilm.embed),
            knowledge=KnowledgeBase(
                documents=documents,
                index=ChromaIndex(settings.knowledge, settings.data_dir / "chroma"),
                embedder=minilm,
                secretaries=secretaries,
                settings=settings.knowledge,
                embedder_for=embedder_for,
            ),
            record_retry=record_retry,
        )

    async def warm_up(self) -> None:
        """Load the local models before the first call instead of during it."""
        await self.pool.run(self.models.whisper)
        await self.pool.run(self.models.piper)
        await self.pool.run(self.models.minilm)

    async def health(self) -> dict[str, str]:
        checks = {
            "postgresql": "disabled" if self.database is None else ("ok" if await self.database.ping() else "down"),
            "redis": "disabled" if not self.settings.redis_url else ("ok" if await self.call_states.ping() else "down"),
            "chromadb": "ok" if await self.knowledge.ping() else "down",
        }
        return checks

    def start_background(self) -> None:
        """The courier and the spilled-record retry; their first pass runs now, picking up what a previous
        process left. Called by whichever transport serves; calling it again changes nothing."""
        self.courier.start()
        if self.record_retry is not None:
            self.record_retry.start()

    async def stop_background(self) -> None:
        await self.courier.close()
        if self.record_retry is not None:
            await self.record_retry.close()

    async def close(self) -> None:
        await self.stop_background()
        await self.providers.close()
        await self.call_states.close()
        await self.secretaries.close()
        await self.knowledge.close()
        self.pool.close()
