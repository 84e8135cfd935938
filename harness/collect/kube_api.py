"""The ONE Kubernetes seam: :class:`KubeApi`, a narrow JSON-in/JSON-out protocol.

:class:`OfficialKubeApi` implements it with the official ``kubernetes`` client loaded from a kubeconfig
(raw JSON responses, ``_preload_content=False``, so nothing is lost to model deserialisation). Tests pass an
in-memory fake with the same methods instead of patching the network.

Every failure, including an API server that cannot be reached, becomes a :class:`KubeError` (never a
traceback). Once a connection to the API server could not even be opened, later calls fail at once with the
same failure instead of each waiting out its own connect timeouts and retries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from harness.facts import Fetched, KubeFailure

Obj = dict[str, Any]
REQUEST_TIMEOUT = (10.0, 30.0)  # connect, read


class KubeError(Exception):
    """The API server refused (or never answered) a call."""

    def __init__(self, failure: KubeFailure) -> None:
        super().__init__(f"{failure.status} {failure.reason}: {failure.message}")
        self.failure = failure


class KubeApi(Protocol):
    context: str | None
    server: str | None

    def namespace(self, name: str) -> Obj | None: ...
    def service_account(self, namespace: str, name: str) -> Obj | None: ...
    def mutating_webhook_configurations(self) -> list[Obj]: ...
    def deployment(self, namespace: str, name: str) -> Obj | None: ...
    def openid_configuration(self) -> Fetched: ...
    def create_pod(self, namespace: str, body: Obj) -> Obj: ...
    def pod(self, namespace: str, name: str) -> Obj | None: ...
    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[Obj], str | None]: ...
    def watch_pods(
        self, namespace: str, label_selector: str, resource_version: str | None, timeout_seconds: int
    ) -> Iterator[tuple[str, Obj]]: ...
    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str: ...
    def delete_pod(self, namespace: str, name: str) -> None: ...


def default_kubeconfig() -> Path:
    """Where kubectl looks without --kubeconfig: the first entry of $KUBECONFIG, else ~/.kube/config."""
    return Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser()


def kubeconfig_bearer_token(kubeconfig: Path | None, context: str | None) -> str | None:
    """The static bearer token of the context's user, if any (only so the redactor knows it)."""
    import yaml

    try:
        data = yaml.safe_load((kubeconfig or default_kubeconfig()).read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    name = context or data.get("current-context")
    ctx = next((c.get("context", {}) for c in data.get("contexts") or [] if c.get("name") == name), {})
    user = next((u.get("user", {}) for u in data.get("users") or [] if u.get("name") == ctx.get("user")), {})
    token = user.get("token") if isinstance(user, dict) else None
    return token if isinstance(token, str) else None


def kube_target_problem(kubeconfig: Path | None, context: str | None) -> str | None:
    """Why the configured kubeconfig/context cannot be used, read from the file alone (no connection, no exec
    plugin); None when it looks usable, or when the harness runs in-cluster without a kubeconfig."""
    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException

    if kubeconfig is None and _in_cluster():
        return None
    where = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG") or str(default_kubeconfig())
    try:
        contexts, current = kube_config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None
        )
    except (ConfigException, OSError, TypeError, ValueError, AttributeError) as exc:
        if kubeconfig is None:
            return f"cluster.kubeconfig: not set, and the default kubeconfig {where} cannot be used: {exc}"
        return f"cluster.kubeconfig: cannot use {where}: {exc}"
    names = [str(c.get("name")) for c in contexts or [] if isinstance(c, dict)]
    if context is not None and context not in names:
        return (
            f"cluster.context: {context!r} is not a context of {where} (it has: {', '.join(names) or 'none'})"
        )
    if context is None and not current:
        return f"cluster.context: {where} has no current-context: name one (it has: {', '.join(names)})"
    return None


class OfficialKubeApi:
    """:class:`KubeApi` over the official client; every response is the API server's own JSON."""

    def __init__(self, kubeconfig: Path | None, context: str | None) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException

        try:
            if kubeconfig is None and _in_cluster():
                configuration = client.Configuration()
                kube_config.load_incluster_config(client_configuration=configuration)
                self._api_client = client.ApiClient(configuration)
                self.context = "in-cluster"
            else:
                self._api_client = kube_config.new_client_from_config(
                    config_file=str(kubeconfig) if kubeconfig else None, context=context, persist_config=False
                )
                self.context = context or _current_context(kubeconfig)
        except (ConfigException, OSError, TypeError, ValueError) as exc:
            raise KubeError(KubeFailure(0, "KubeconfigError", f"cannot load kubeconfig: {exc}")) from None
        self.server = self._api_client.configuration.host
        self._core = client.CoreV1Api(self._api_client)
        self._apps = client.AppsV1Api(self._api_client)
        self._admission = client.AdmissionregistrationV1Api(self._api_client)
        self._unreachable: KubeFailure | None = None

    @property
    def bearer_token(self) -> str | None:
        """The token the client sends (static, tokenFile, exec plugin or in-cluster), for the redactor."""
        api_key = self._api_client.configuration.api_key
        value = str(api_key.get("BearerToken") or api_key.get("authorization") or "")
        token = value[len("bearer ") :] if value.lower().startswith("bearer ") else value
        return token.strip() or None

    # -- plumbing

    def _call(self, fn: Any, *args: Any, missing_ok: bool = False, raw: bool = False, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        self._fail_fast()
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            response = fn(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise KubeError(_failure(exc.status or 0, exc.reason or "", exc.body)) from None
        except (HTTPError, OSError) as exc:
            raise KubeError(self._no_answer(exc)) from None
        data = response.data
        if raw:
            return data.decode("utf-8", "replace")
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise KubeError(_not_json(response.status)) from None

    def _fail_fast(self) -> None:
        if self._unreachable is not None:
            raise KubeError(self._unreachable)

    def _no_answer(self, exc: BaseException) -> KubeFailure:
        """A transport failure as a KubeFailure; remembered when no connection could be opened at all."""
        from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

        reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
        failure = KubeFailure(
            0, "Unreachable", f"no answer from the API server {self.server}: {_short(reason)}"
        )
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            self._unreachable = failure
        return failure

    # -- reads

    def namespace(self, name: str) -> Obj | None:
        return self._call(self._core.read_namespace, name, missing_ok=True)

    def service_account(self, namespace: str, name: str) -> Obj | None:
        return self._call(self._core.read_namespaced_service_account, name, namespace, missing_ok=True)

    def mutating_webhook_configurations(self) -> list[Obj]:
        return list(self._call(self._admission.list_mutating_webhook_configuration).get("items") or [])

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self._call(self._apps.read_namespaced_deployment, name, namespace, missing_ok=True)

    def openid_configuration(self) -> Fetched:
        """The API server's service-account issuer discovery document (k8s >= 1.21)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        path = "/.well-known/openid-configuration"
        url = f"{self.server}{path}"
        if self._unreachable is not None:
            return Fetched(url, None, None, self._unreachable.message)
        try:
            request = self._api_client.param_serialize(
                "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
            )
            response = self._api_client.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
            data = response.read()
        except ApiException as exc:
            return Fetched(url, exc.status or None, None, str(exc.reason))
        except (HTTPError, OSError) as exc:
            return Fetched(url, None, None, self._no_answer(exc).message)
        if not 200 <= response.status < 300:
            return Fetched(url, response.status, None, _failure(response.status, "", data).message[:300])
        try:
            return Fetched(url, response.status, json.loads(data))
        except ValueError:
            return Fetched(url, response.status, None, "not JSON")

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self._call(self._core.read_namespaced_pod, name, namespace, missing_ok=True)

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[Obj], str | None]:
        if namespace is None:
            data = self._call(self._core.list_pod_for_all_namespaces, label_selector=label_selector)
        else:
            data = self._call(self._core.list_namespaced_pod, namespace, label_selector=label_selector)
        return list(data.get("items") or []), (data.get("metadata") or {}).get("resourceVersion")

    def watch_pods(
        self, namespace: str, label_selector: str, resource_version: str | None, timeout_seconds: int
    ) -> Iterator[tuple[str, Obj]]:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines
        from urllib3.exceptions import HTTPError

        self._fail_fast()
        kwargs: dict[str, Any] = {
            "label_selector": label_selector,
            "watch": True,
            "timeout_seconds": max(1, timeout_seconds),
            "allow_watch_bookmarks": True,
            "_request_timeout": (REQUEST_TIMEOUT[0], timeout_seconds + 10),
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            response = self._core.list_namespaced_pod(namespace, _preload_content=False, **kwargs)
        except ApiException as exc:
            raise KubeError(_failure(exc.status or 0, exc.reason or "", exc.body)) from None
        except (HTTPError, OSError) as exc:
            raise KubeError(self._no_answer(exc)) from None
        try:
            for line in iter_resp_lines(response):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise KubeError(_not_json(response.status)) from None
                yield str(event.get("type", "")), event.get("object") or {}
        except (HTTPError, OSError) as exc:  # the stream broke (read timeout, reset): the caller relists
            raise KubeError(KubeFailure(0, "WatchBroken", f"the pod watch broke: {_short(exc)}")) from None
        finally:
            response.release_conn()

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        kwargs = {"container": container} if container else {}
        return self._call(self._core.read_namespaced_pod_log, name, namespace, raw=True, **kwargs)

    # -- writes

    def create_pod(self, namespace: str, body: Obj) -> Obj:
        return self._call(self._core.create_namespaced_pod, namespace, body)

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call(self._core.delete_namespaced_pod, name, namespace, missing_ok=True, grace_period_seconds=0)


def _failure(status: int, reason: str, body: Any) -> KubeFailure:
    """The API server's Status (reason, message), or the HTTP reason when the body is not one."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("kind") == "Status":
        return KubeFailure(
            int(data.get("code") or status),
            str(data.get("reason") or reason),
            str(data.get("message") or text),
        )
    return KubeFailure(status, reason, text[:500] or reason)


def _not_json(status: int) -> KubeFailure:
    return KubeFailure(status, "InvalidResponse", "the API server's answer is not JSON (a proxy in the way?)")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "..."


def _in_cluster() -> bool:
    """No kubeconfig anywhere, but a service-account mount: the harness runs as a Job in the cluster."""
    return not default_kubeconfig().exists() and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _current_context(kubeconfig: Path | None) -> str | None:
    from kubernetes import config as kube_config

    try:
        _, active = kube_config.list_kube_config_contexts(config_file=str(kubeconfig) if kubeconfig else None)
    except Exception:  # noqa: BLE001 - only a label for the report
        return None
    return active.get("name") if active else None
