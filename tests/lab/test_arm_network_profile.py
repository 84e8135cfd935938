"""The managed cluster's networkProfile says whether a NetworkPolicy engine runs, as ARM says it: "cilium" with
Cilium's dataplane (the lab's relays enforce policies), or "none" with Azure's (a cluster made without an engine,
which stores policies and enforces none; Cilium's dataplane cannot run without its engine)."""

from __future__ import annotations

from types import SimpleNamespace

from lab.azure.arm_render import _network_profile
from lab.azure.world import ManagedCluster
from lab.egress import enforced


def cluster(**fields: str) -> ManagedCluster:
    return ManagedCluster("aks", "00000000-0000-0000-0000-000000000001", "rg", "eastus", "https://issuer/",
                          node_resource_group="MC_rg_aks_eastus", **fields)  # type: ignore[arg-type]


def test_the_engine_is_what_arm_renders_and_what_the_relays_enforce() -> None:
    made = cluster()
    assert (made.network_policy, _network_profile(made)["networkPolicy"], _network_profile(made)["networkDataplane"]
            ) == ("cilium", "cilium", "cilium")
    bare = cluster(network_policy="none")
    assert (_network_profile(bare)["networkPolicy"], _network_profile(bare)["networkDataplane"]) == ("none", "azure")
    lab = SimpleNamespace(extra={"cluster": {"name": "AKS", "resource_group": "RG"}},
                          azure=SimpleNamespace(clusters={"x": bare}))
    assert not enforced(lab)  # type: ignore[arg-type]
    lab.azure.clusters = {"x": made}
    assert enforced(lab)  # type: ignore[arg-type]
    assert enforced(SimpleNamespace())  # type: ignore[arg-type]  # a stand-in lab with no cluster: policies hold
