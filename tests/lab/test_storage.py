"""The lab's blob read path through azure-storage-blob (ClientSecretCredential against the lab's Entra) and,
for the wire details, plain ``requests``. Each test makes its own storage account and app registrations.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient
from azure_clients import new_app, secret_credential
from forged_tokens import FORGED_NAMES, forged_variant, lab_token

from lab.azure.access_tokens import sts_issuer
from lab.azure.world import StorageAccount

ST_AUD = "https://storage.azure.com"
VERSION = "2026-10-06"
CONTENT = b"order_id,amount\n1001,42.00\n1002,17.50\n"


class StLab:
    def __init__(self, lab, lab_thread) -> None:
        self.lab, self.lab_thread = lab, lab_thread
        self.ca = str(lab.state_dir / "ca.pem")

    def run(self, fn) -> Any:
        return self.lab_thread.call(fn).result(30)

    def account(self) -> StorageAccount:
        lab = self.lab
        rg = f"sttest-{uuid.uuid4().hex[:8]}"
        name = f"st{uuid.uuid4().hex[:12]}"

        def make() -> StorageAccount:
            lab.azure.add_resource_group(rg)
            account = StorageAccount(
                name=name, subscription_id=lab.subscription_id, resource_group=rg, location="eastus"
            )
            account.containers["reports"] = {
                "daily.csv": CONTENT,
                "nested/dir/part-1.csv": b"a,b\n",
                "empty.txt": b"",
            }
            account.containers["private"] = {"secret.txt": b"hidden"}
            lab.azure.storage_accounts[name] = account
            return account

        return self.run(make)

    def app(self, role: str | None = None, scope: str | None = None):
        return new_app(self.lab, self.lab_thread, "st-test", role, scope)

    def blob(self, account: StorageAccount, app_and_secret, container: str, blob: str) -> BlobClient:
        credential = secret_credential(self.lab, app_and_secret)
        return BlobClient(
            account_url=self.lab.blob_url(account.name),
            container_name=container,
            blob_name=blob,
            credential=credential,
        )

    def raw(
        self,
        account: str,
        path: str,
        token: str | None = None,
        version: str | None = VERSION,
        method: str = "GET",
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if version:
            all_headers["x-ms-version"] = version
        return requests.request(
            method, self.lab.blob_url(account) + path, headers=all_headers, verify=self.ca, timeout=30
        )


@pytest.fixture(scope="module")
def st(lab, lab_thread) -> StLab:
    return StLab(lab, lab_thread)


@pytest.fixture(autouse=True)
def _trust_the_lab(lab, monkeypatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.state_dir / "ca.pem"))


def xml_code(response: requests.Response) -> str:
    return response.text.split("<Code>", 1)[1].split("</Code>", 1)[0]


# ---------------------------------------------------------------------------- SDK


def test_blob_data_reader_downloads(st: StLab) -> None:
    account = st.account()
    reader = st.app("Storage Blob Data Reader", account.resource_id)
    client = st.blob(account, reader, "reports", "daily.csv")
    assert client.url == f"{st.lab.blob_url(account.name)}reports/daily.csv"
    assert client.download_blob().readall() == CONTENT
    properties = client.get_blob_properties()
    assert properties.size == len(CONTENT) and properties.blob_type == "BlockBlob" and properties.etag
    assert st.blob(account, reader, "reports", "nested/dir/part-1.csv").download_blob().readall() == b"a,b\n"
    assert st.blob(account, reader, "reports", "empty.txt").download_blob().readall() == b""
    ranged = client.download_blob(offset=9, length=6).readall()
    assert ranged == CONTENT[9:15]


def test_blob_data_owner_reads_writes_and_makes_containers(st: StLab) -> None:
    """Storage Blob Data Owner (containers/* and blobs/*): az role assignment create --role 'Storage Blob Data
    Owner' answered "Role 'Storage Blob Data Owner' doesn't exist" against the lab."""
    account = st.account()
    owner = st.app("Storage Blob Data Owner", account.resource_id)
    assert st.blob(account, owner, "reports", "daily.csv").download_blob().readall() == CONTENT
    st.blob(account, owner, "private", "new.txt").upload_blob(b"x")
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient(st.lab.blob_url(account.name), credential=secret_credential(st.lab, owner)) \
        .create_container("owned")


def test_reader_at_container_scope_only(st: StLab) -> None:
    account = st.account()
    container_scope = f"{account.resource_id}/blobServices/default/containers/reports"
    reader = st.app("Storage Blob Data Reader", container_scope)
    assert st.blob(account, reader, "reports", "daily.csv").download_blob().readall() == CONTENT
    with pytest.raises(HttpResponseError) as refused:
        st.blob(account, reader, "private", "secret.txt").download_blob().readall()
    assert refused.value.error_code == "AuthorizationPermissionMismatch"


def test_without_a_data_role_is_refused(st: StLab) -> None:
    account = st.account()
    # Reader (control plane) and Key Vault Secrets User grant no blob data action
    for role in ("Reader", "Key Vault Secrets User", None):
        principal = st.app(role, account.resource_id) if role else st.app()
        with pytest.raises(HttpResponseError) as refused:
            st.blob(account, principal, "reports", "daily.csv").download_blob().readall()
        assert refused.value.status_code == 403, role
        assert refused.value.error_code == "AuthorizationPermissionMismatch"


def test_missing_blob_and_container(st: StLab) -> None:
    account = st.account()
    reader = st.app("Storage Blob Data Reader", account.resource_id)
    with pytest.raises(ResourceNotFoundError) as missing:
        st.blob(account, reader, "reports", "nope.csv").download_blob()
    assert missing.value.error_code == "BlobNotFound"
    with pytest.raises(ResourceNotFoundError) as no_container:
        st.blob(account, reader, "nope", "x").download_blob()
    assert no_container.value.error_code == "ContainerNotFound"


def test_a_contributor_deletes_and_uploads_a_blob_a_reader_may_not(st: StLab) -> None:
    """Delete Blob (202) and Put Blob (201) through the SDK with Storage Blob Data Contributor; a reader is
    refused both, and a deleted blob reads as BlobNotFound until it is uploaded again."""
    account = st.account()
    writer = st.app("Storage Blob Data Contributor", account.resource_id)
    reader = st.app("Storage Blob Data Reader", account.resource_id)
    for attempt in (lambda c: c.delete_blob(), lambda c: c.upload_blob(b"x", overwrite=True)):
        with pytest.raises(HttpResponseError) as refused:
            attempt(st.blob(account, reader, "reports", "daily.csv"))
        assert refused.value.error_code == "AuthorizationPermissionMismatch"
    st.blob(account, writer, "reports", "daily.csv").delete_blob()
    with pytest.raises(ResourceNotFoundError) as gone:
        st.blob(account, reader, "reports", "daily.csv").download_blob()
    assert gone.value.error_code == "BlobNotFound"
    with pytest.raises(ResourceNotFoundError) as twice:
        st.blob(account, writer, "reports", "daily.csv").delete_blob()
    assert twice.value.error_code == "BlobNotFound"
    uploaded = st.blob(account, writer, "reports", "daily.csv").upload_blob(CONTENT)
    assert uploaded["etag"] and uploaded["content_md5"]
    assert st.blob(account, reader, "reports", "daily.csv").download_blob().readall() == CONTENT


def test_blob_soft_delete_set_through_arm_keeps_a_deleted_blob_until_it_is_undeleted(st: StLab) -> None:
    """az storage account blob-service-properties update --enable-delete-retention true answered InvalidResourceType
    (the lab had no blobServices/default) and a deleted blob was gone for good. Now: the retention is GET and PUT
    there; a deleted blob reads as BlobNotFound and is left out of List Blobs, listed with include=deleted, brought
    back by Undelete Blob (a write: a reader is refused); with the retention off a delete is permanent."""
    from azure.storage.blob import ContainerClient

    account = st.account()
    writer = st.app("Storage Blob Data Contributor", account.resource_id)
    reader = st.app("Storage Blob Data Reader", account.resource_id)
    admin = st.lab.azure.principal_by_client_id(st.lab.credentials["admin"]["client_id"])

    def arm(method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = requests.request(
            method, f"{st.lab.endpoints['arm']}{account.resource_id}/blobServices/default",
            params={"api-version": "2023-05-01"}, json=body, verify=st.ca, timeout=30,
            headers={"Authorization": f"Bearer {lab_token(st.lab, admin, 'https://management.azure.com/')}"})
        assert answer.status_code == 200, answer.text
        return answer.json()["properties"]["deleteRetentionPolicy"]

    def retention(enabled: bool, days: int | None) -> dict[str, Any]:
        return arm("PUT", {"properties": {"deleteRetentionPolicy": {"enabled": enabled, "days": days}}})

    assert arm("GET")["enabled"] is False
    assert retention(True, 7) == {"enabled": True, "days": 7, "allowPermanentDelete": False}
    container = ContainerClient(st.lab.blob_url(account.name), "reports",
                                credential=secret_credential(st.lab, writer), connection_verify=st.ca)
    st.blob(account, writer, "reports", "daily.csv").delete_blob()
    with pytest.raises(ResourceNotFoundError) as gone:
        st.blob(account, reader, "reports", "daily.csv").download_blob()
    assert gone.value.error_code == "BlobNotFound"
    assert "daily.csv" not in [b.name for b in container.list_blobs()]
    assert [b.name for b in container.list_blobs(include=["deleted"]) if b.deleted] == ["daily.csv"]
    with pytest.raises(HttpResponseError) as refused:
        st.blob(account, reader, "reports", "daily.csv").undelete_blob()
    assert refused.value.error_code == "AuthorizationPermissionMismatch"
    st.blob(account, writer, "reports", "daily.csv").undelete_blob()
    assert st.blob(account, reader, "reports", "daily.csv").download_blob().readall() == CONTENT
    assert not [b for b in container.list_blobs(include=["deleted"]) if b.deleted]

    assert retention(False, None) == {"enabled": False, "allowPermanentDelete": False}
    st.blob(account, writer, "reports", "daily.csv").delete_blob()
    assert not [b for b in container.list_blobs(include=["deleted"]) if b.deleted]
    with pytest.raises(ResourceNotFoundError) as never:
        st.blob(account, writer, "reports", "daily.csv").undelete_blob()
    assert never.value.error_code == "BlobNotFound"


def test_list_containers_as_the_sdk_and_az_storage_container_list_send_it(st: StLab) -> None:
    """List Containers (GET /<account>/?comp=list): every container, to a caller holding a blob data role on the
    account; a caller with no role there is refused as Storage refuses it (the printed listing of BLOB_NOT_FOUND when
    the container is missing)."""
    from azure.storage.blob import BlobServiceClient

    account = st.account()
    reader = st.app("Storage Blob Data Reader", account.resource_id)
    service = BlobServiceClient(st.lab.blob_url(account.name), credential=secret_credential(st.lab, reader))
    listed = list(service.list_containers())
    assert [c.name for c in listed] == ["private", "reports"]
    assert all(c.last_modified and c.etag and not c.has_legal_hold for c in listed)
    nobody = st.app()
    refused = BlobServiceClient(st.lab.blob_url(account.name), credential=secret_credential(st.lab, nobody))
    with pytest.raises(HttpResponseError) as error:
        list(refused.list_containers())
    assert error.value.status_code == 403 and error.value.error_code == "AuthorizationPermissionMismatch"


def test_create_and_delete_container_as_az_storage_container_create_and_delete_send_them(st: StLab) -> None:
    """Create Container (201, then 409 ContainerAlreadyExists) and Delete Container (202, then 404
    ContainerNotFound) under Storage Blob Data Contributor; a reader may do neither, and a deleted container's blobs
    read as ContainerNotFound."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    account = st.account()
    writer = st.app("Storage Blob Data Contributor", account.resource_id)
    reader = st.app("Storage Blob Data Reader", account.resource_id)
    as_writer = BlobServiceClient(st.lab.blob_url(account.name), credential=secret_credential(st.lab, writer))
    as_reader = BlobServiceClient(st.lab.blob_url(account.name), credential=secret_credential(st.lab, reader))
    for attempt in (lambda: as_reader.create_container("exports"), lambda: as_reader.delete_container("reports")):
        with pytest.raises(HttpResponseError) as refused:
            attempt()
        assert refused.value.error_code == "AuthorizationPermissionMismatch"
    as_writer.create_container("exports")
    with pytest.raises(ResourceExistsError) as again:
        as_writer.create_container("exports")
    assert again.value.error_code == "ContainerAlreadyExists"
    as_writer.get_blob_client("exports", "weekly.csv").upload_blob(CONTENT)
    assert st.blob(account, reader, "exports", "weekly.csv").download_blob().readall() == CONTENT
    as_writer.delete_container("reports")
    with pytest.raises(ResourceNotFoundError) as gone:
        st.blob(account, reader, "reports", "daily.csv").download_blob()
    assert gone.value.error_code == "ContainerNotFound"
    with pytest.raises(ResourceNotFoundError) as twice:
        as_writer.delete_container("reports")
    assert twice.value.error_code == "ContainerNotFound"
    with pytest.raises(HttpResponseError) as bad:
        as_writer.create_container("Bad_Name")
    assert bad.value.status_code == 400 and bad.value.error_code == "InvalidResourceName"


# ---------------------------------------------------------------------------- the wire


def test_success_headers(st: StLab, lab) -> None:
    account = st.account()
    app, _ = st.app("Storage Blob Data Reader", account.resource_id)
    response = st.raw(account.name, "reports/daily.csv", token=lab_token(lab, app, ST_AUD))
    assert response.status_code == 200 and response.content == CONTENT
    headers = response.headers
    assert headers["Content-Length"] == str(len(CONTENT))
    assert headers["x-ms-blob-type"] == "BlockBlob" and headers["x-ms-version"] == VERSION
    assert headers["ETag"].startswith('"0x') and headers["Last-Modified"].endswith("GMT")
    assert uuid.UUID(headers["x-ms-request-id"]) and headers["Content-Type"]
    ranged = st.raw(
        account.name,
        "reports/daily.csv",
        token=lab_token(lab, app, ST_AUD),
        headers={"x-ms-range": "bytes=0-8"},
    )
    assert ranged.status_code == 206 and ranged.content == CONTENT[:9]
    assert ranged.headers["Content-Range"] == f"bytes 0-8/{len(CONTENT)}"


def test_denied_body_is_the_real_xml(st: StLab, lab) -> None:
    account = st.account()
    app, _ = st.app()
    response = st.raw(account.name, "reports/daily.csv", token=lab_token(lab, app, ST_AUD))
    assert response.status_code == 403
    assert response.headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"
    assert response.headers["Content-Type"] == "application/xml"
    text = response.text
    assert text.startswith(
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code>'
        "<Message>This request is not authorized to perform this operation using this permission.\nRequestId:"
    )
    assert f"RequestId:{response.headers['x-ms-request-id']}\nTime:" in text
    assert text.endswith("Z</Message></Error>")


def test_no_token(st: StLab, lab) -> None:
    account = st.account()
    response = st.raw(account.name, "reports/daily.csv")
    assert response.status_code == 401
    assert xml_code(response) == "NoAuthenticationInformation"
    assert (
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate "
        "header." in response.text
    )
    assert response.headers["WWW-Authenticate"] == (
        f"Bearer authorization_uri={lab.authority_host}{lab.tenant_id}/oauth2/authorize "
        "resource_id=https://storage.azure.com"
    )
    old = st.raw(account.name, "reports/daily.csv", version="2019-07-07")
    assert old.status_code == 404 and xml_code(old) == "ResourceNotFound"


def test_bearer_needs_a_recent_x_ms_version(st: StLab, lab) -> None:
    account = st.account()
    app, _ = st.app("Storage Blob Data Reader", account.resource_id)
    for version in (None, "2017-07-29"):
        response = st.raw(
            account.name, "reports/daily.csv", token=lab_token(lab, app, ST_AUD), version=version
        )
        assert response.status_code == 403
        assert xml_code(response) == "AuthenticationFailed"
        assert (
            "<AuthenticationErrorDetail>Authentication scheme Bearer is not supported in this version."
            "</AuthenticationErrorDetail>" in response.text
        )


@pytest.mark.parametrize("name", FORGED_NAMES)
def test_forged_tokens_are_refused(st: StLab, lab, name: str) -> None:
    account = st.account()
    app, _ = st.app("Storage Blob Data Reader", account.resource_id)
    variant = forged_variant(lab, app, ST_AUD, name, other_principal=app)
    response = st.raw(account.name, "reports/daily.csv", token=variant.token)
    assert response.status_code == 401, response.text
    assert xml_code(response) == "InvalidAuthenticationInfo"
    assert response.headers["x-ms-error-code"] == "InvalidAuthenticationInfo"
    assert "resource_id=https://storage.azure.com" in response.headers["WWW-Authenticate"]
    if variant.reason == "audience":
        assert "Audience validation failed. Audience did not match." in response.text
    if variant.reason == "expired":
        assert "Lifetime validation failed. The token is expired." in response.text


def test_token_for_another_tenant(st: StLab, lab) -> None:
    account = st.account()
    app, _ = st.app("Storage Blob Data Reader", account.resource_id)
    other = str(uuid.uuid4())
    st.run(lambda: lab.azure.add_tenant(other, "Fabrikam", "fabrikam.onmicrosoft.com"))
    response = st.raw(
        account.name, "reports/daily.csv", token=lab_token(lab, app, ST_AUD, tid=other, iss=sts_issuer(other))
    )
    assert response.status_code == 401 and "Issuer validation failed." in response.text


def test_a_lab_bug_is_storages_internal_error(st: StLab, lab, monkeypatch) -> None:
    from lab.azure import storage

    def boom(*args: Any) -> None:
        raise RuntimeError("a bug")

    account = st.account()
    app, _ = st.app("Storage Blob Data Reader", account.resource_id)
    monkeypatch.setattr(storage, "_authenticate", boom)
    response = st.raw(account.name, "reports/daily.csv", token=lab_token(lab, app, ST_AUD))
    assert response.status_code == 500 and xml_code(response) == "InternalError"
    assert response.headers["x-ms-error-code"] == "InternalError" and "a bug" not in response.text


def test_throttling_fault_has_storage_shape(st: StLab, lab) -> None:
    account = st.account()
    app, _ = st.app("Storage Blob Data Reader", account.resource_id)
    faults = lab.faults.services["storage"]
    faults.rate_503 = 1.0
    try:
        response = st.raw(account.name, "reports/daily.csv", token=lab_token(lab, app, ST_AUD))
    finally:
        faults.rate_503 = 0.0
    assert response.status_code == 503 and xml_code(response) == "ServerBusy"
    assert response.headers["x-ms-error-code"] == "ServerBusy"
