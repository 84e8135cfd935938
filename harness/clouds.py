"""The Azure clouds a harness config may name, and the endpoints each one implies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CloudEndpoints:
    name: str
    authority_host: str  # with the trailing slash the webhook injects
    resource_manager: str  # ARM base URL, trailing slash
    resource_manager_audience: str  # the audience ARM accepts; the token scope is this + ".default"

    @property
    def arm_scope(self) -> str:
        return self.resource_manager_audience.rstrip("/") + "/.default"

    @property
    def known(self) -> bool:
        return self.name in KNOWN_CLOUDS


KNOWN_CLOUDS: dict[str, CloudEndpoints] = {
    cloud.name: cloud
    for cloud in (
        CloudEndpoints(
            "AzureCloud",
            "https://login.microsoftonline.com/",
            "https://management.azure.com/",
            "https://management.azure.com/",
        ),
        CloudEndpoints(
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn/",
            "https://management.chinacloudapi.cn/",
            "https://management.chinacloudapi.cn/",
        ),
        CloudEndpoints(
            "AzureUSGovernment",
            "https://login.microsoftonline.us/",
            "https://management.usgovcloudapi.net/",
            "https://management.usgovcloudapi.net/",
        ),
    )
}
DEFAULT_ARM_AUDIENCE = "https://management.azure.com/"
