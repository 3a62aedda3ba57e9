"""Per-domain secretary configuration and the stores it is read from."""

from secretary.tenants.config import (
    BusinessHours,
    FaqEntry,
    ProviderChains,
    ProviderSpec,
    RecordingSettings,
    SecretaryConfig,
    TransferTarget,
)
from secretary.tenants.store import SecretaryStore

__all__ = [
    "BusinessHours",
    "FaqEntry",
    "ProviderChains",
    "ProviderSpec",
    "RecordingSettings",
    "SecretaryConfig",
    "SecretaryStore",
    "TransferTarget",
]
