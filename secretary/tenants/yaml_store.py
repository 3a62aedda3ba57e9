"""Secretaries from a YAML file: the embedded default when no FusionPBX database is configured."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from pydantic import ValidationError

from secretary.errors import SecretaryDisabled, UnknownDomain
from secretary.tenants.config import SecretaryConfig


class SecretaryFileError(ValueError):
    """The secretaries file can't be used; the message names the entry and field."""


def parse_secretaries(document: Any, source: str = "<yaml>") -> list[SecretaryConfig]:
    if not isinstance(document, dict) or not isinstance(document.get("secretaries"), list):
        raise SecretaryFileError(f"{source}: expected a mapping with a 'secretaries' list")
    configs: list[SecretaryConfig] = []
    for index, entry in enumerate(document["secretaries"]):
        try:
            # The file is the operator's: its entries may use the deployment's default keys (see the resolver).
            configs.append(SecretaryConfig.model_validate(entry).owned_by_operator())
        except ValidationError as exc:
            raise SecretaryFileError(f"{source}: secretaries[{index}]: {exc}") from exc
    seen: set[UUID] = set()
    for config in configs:
        if config.domain_uuid in seen:
            raise SecretaryFileError(f"{source}: domain {config.domain_uuid} appears twice")
        seen.add(config.domain_uuid)
    return configs


class YamlSecretaryStore:
    """Reads the file again when it changes, so an admin's edit applies to the next call."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: float | None = None
        self._configs: list[SecretaryConfig] = []
        self._lock = asyncio.Lock()

    def load(self) -> list[SecretaryConfig]:
        text = self._path.read_text(encoding="utf-8")
        configs = parse_secretaries(yaml.safe_load(text), str(self._path))
        self._configs = configs
        self._mtime = self._path.stat().st_mtime
        return configs

    async def _current(self) -> list[SecretaryConfig]:
        async with self._lock:
            try:
                mtime = self._path.stat().st_mtime
            except FileNotFoundError:
                return self._configs
            if mtime != self._mtime:
                self.load()
            return self._configs

    async def by_uuid(self, domain_uuid: UUID) -> SecretaryConfig:
        found = next((c for c in await self._current() if c.domain_uuid == domain_uuid), None)
        return self._served(found, str(domain_uuid))

    async def by_name(self, domain_name: str) -> SecretaryConfig:
        wanted = domain_name.casefold()
        found = next((c for c in await self._current() if c.domain_name.casefold() == wanted), None)
        return self._served(found, domain_name)

    @staticmethod
    def _served(config: SecretaryConfig | None, reference: str) -> SecretaryConfig:
        if config is None:
            raise UnknownDomain(f"unknown domain {reference!r}")
        if not config.enabled:
            raise SecretaryDisabled(f"the secretary of {config.domain_name} is disabled")
        return config

    async def close(self) -> None:
        return None
