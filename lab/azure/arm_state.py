"""What the ARM face keeps beside the world model: its settings, per-identity write locks, and the
ARM-only properties the world model does not carry (vault sku and network bypass, who created an
assignment). One :class:`ArmState` per lab: ``arm_state(lab)``.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.runtime import Lab


@dataclass
class ArmSettings:
    page_size: int = 50  # items per list page before a nextLink
    # Time a federated identity credential write holds its identity's lock, so tests (and people) can
    # provoke the 409 Azure answers to overlapping writes under one identity.
    fic_write_latency_seconds: float = 0.0
    fic_limit: int = 20


@dataclass
class VaultExtras:
    sku: dict[str, str] = field(default_factory=lambda: {"family": "A", "name": "standard"})
    bypass: str = "AzureServices"
    virtual_network_rules: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    enable_soft_delete: bool = True
    soft_delete_retention_days: int = 90
    enable_purge_protection: bool | None = None


@dataclass
class ArmState:
    settings: ArmSettings = field(default_factory=ArmSettings)
    fic_locks: dict[str, asyncio.Lock] = field(default_factory=dict)  # lower(identity id) -> lock
    vault_extras: dict[str, VaultExtras] = field(default_factory=dict)  # lower(vault name) -> extras
    assignment_creators: dict[str, str] = field(default_factory=dict)  # assignment name -> creator oid
    operations: dict[str, str] = field(default_factory=dict)  # operation-result id -> "delete" | "move"

    def fic_lock(self, identity_id: str) -> asyncio.Lock:
        return self.fic_locks.setdefault(identity_id.lower(), asyncio.Lock())

    def extras(self, vault_name: str) -> VaultExtras:
        return self.vault_extras.setdefault(vault_name.lower(), VaultExtras())


_STATES: weakref.WeakKeyDictionary[Any, ArmState] = weakref.WeakKeyDictionary()


def arm_state(lab: Lab) -> ArmState:
    state = _STATES.get(lab)
    if state is None:
        state = _STATES[lab] = ArmState()
    return state
