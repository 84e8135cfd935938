"""A name pasted into the client-id annotation (``azure.workload.identity/client-id: my-identity``) and the
identities of that name the harness read (collect.identity_names): which one the fix annotates. Names are not
unique (the same name in two resource groups or subscriptions, an app registration beside a managed identity), so
of several the one annotated is the one whose federated credential trusts the ServiceAccount, and only when exactly
one does; otherwise each is listed by its resource id and the choice is the person's. One choice for the workload
view (checks.serviceaccount) and the inventory (checks.inventory)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.commands import Step, advice
from harness.facts import InventoryIdentity
from harness.issuers import issuer_relation


def trusting(identities: Iterable[InventoryIdentity], subject: str, issuer: str | None) -> list[InventoryIdentity]:
    """The identities with a federated credential for ``subject`` and this cluster's ``issuer`` (in any spelling:
    a later check says when it is not the exact one)."""
    return [i for i in identities
            if any(c.get("subject") == subject and issuer_relation(c.get("issuer"), issuer)
                   for c in i.federated_credentials or [])]


@dataclass(frozen=True)
class NamedChoice:
    named: list[dict[str, str]]  # the identities of the name, each {kind, name, client_id, resource_id}
    # of them, those that trust the ServiceAccount; None: not known (no inventory of federated credentials read)
    trusting: list[dict[str, str]] | None

    @property
    def chosen(self) -> dict[str, str] | None:
        """The identity whose client id to annotate: the only one of the name, or of several the only one that
        trusts the ServiceAccount; None when the choice is the person's."""
        if len(self.named) == 1:
            return self.named[0]
        if self.trusting is not None and len(self.trusting) == 1:
            return self.trusting[0]
        return None


def choose(named: list[dict[str, str]], trusted: Iterable[InventoryIdentity] | None) -> NamedChoice:
    """``trusted``: the identities read trusting the ServiceAccount (``trusting``), None when none were read."""
    if trusted is None:
        return NamedChoice(named, None)
    client_ids = {identity.client_id.lower() for identity in trusted}
    return NamedChoice(named, [identity for identity in named if identity["client_id"].lower() in client_ids])


def identity_words(identity: dict[str, str]) -> str:
    if identity["kind"] == "managed_identity":
        return f"managed identity {identity['resource_id']}: client id {identity['client_id']}"
    return f"app registration {identity['name']}: client id (appId) {identity['client_id']}"


def several_words(choice: NamedChoice, subject: str) -> str:
    """What the federated credentials say about several identities of one name, "" when they were not read."""
    if len(choice.named) < 2 or choice.trusting is None:
        return ""
    if len(choice.trusting) == 1:
        return f"of them only {choice.trusting[0]['client_id']} has a federated credential for {subject}"
    if choice.trusting:
        return f"{len(choice.trusting)} of them have a federated credential for {subject}"
    return f"none of them has a federated credential for {subject} that the harness read"


def several_steps(choice: NamedChoice, name: str, subject: str) -> list[Step]:
    """The identities of the name to choose from, each by its resource id: those that trust the ServiceAccount
    when several do, else all of them."""
    listed = choice.trusting if choice.trusting and len(choice.trusting) > 1 else choice.named
    if choice.trusting and len(choice.trusting) > 1:
        head = (f"{len(choice.named)} identities are named {name} and {len(listed)} of them have a federated "
                f"credential for {subject}; annotate the client id of the one this workload is to use:")
    elif choice.trusting == []:
        head = (f"{len(choice.named)} identities are named {name} and none has a federated credential for "
                f"{subject} that the harness read; annotate the client id of the one this workload is to use, and give "
                "it a federated credential for that subject:")
    else:
        head = (f"{len(choice.named)} identities are named {name}; annotate the client id of the one whose "
                f"federated credential trusts {subject}:")
    return [advice(head), *(advice(f"  {identity_words(identity)}") for identity in listed)]
