"""The ONE Kubernetes seam: :class:`KubeApi`, a narrow JSON-in/JSON-out protocol.

:class:`OfficialKubeApi` implements it with the official ``kubernetes`` client loaded from a kubeconfig
(raw JSON responses, ``_preload_content=False``, so nothing is lost to model deserialisation). Tests pass an
in-memory fake with the same methods instead of patching the network.

Every failure, including an API server that cannot be reached, becomes a :class:`KubeError` (never a
traceback). Once a connection to the API server could not even be opened, later calls fail at once with the
same failure instead of each waiting out its own connect timeouts and retries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.checks import remediation as fix
from harness.collect.retrying import retry_for
from harness.commands import render
from harness.facts import Fetched, KubeFailure
from harness.input_files import (
    MAX_CA_BYTES,
    MAX_KUBECONFIG_BYTES,
    MAX_TOKEN_BYTES,
    InputFileError,
    check_ca_bundle,
    check_regular_file,
    read_yaml,
)
from harness.names import UNTRUSTED_CERTIFICATE
from harness.values import is_namespace, is_object_name, printable

Obj = dict[str, Any]
REQUEST_TIMEOUT = (10.0, 30.0)  # connect, read
# Requests in flight at once (the run reads up to harness.collect.cache.WORKERS workloads at a time). The client
# keeps this many connections, plus a few for watches: above its pool size (5 a core by default), urllib3 drops
# each returned connection, and the next request pays a new TLS handshake (61 handshakes at 50 workloads).
CONCURRENT_REQUESTS = 16
POOL_CONNECTIONS = CONCURRENT_REQUESTS + 4


class KubeError(Exception):
    """The API server refused (or never answered) a call. ``final``: the client will not ask it again this run (no
    connection could be opened, or it kept a request unanswered through the retries): waiting on it is in vain."""

    def __init__(self, failure: KubeFailure, final: bool = False) -> None:
        super().__init__(f"{failure.status} {failure.reason}: {failure.message}")
        self.failure = failure
        self.final = final


class KubeApi(Protocol):
    context: str | None
    server: str | None

    def namespace(self, name: str) -> Obj | None: ...
    def service_account(self, namespace: str, name: str) -> Obj | None: ...
    def list_service_accounts(self, namespace: str | None) -> list[Obj]: ...
    def mutating_webhook_configurations(self) -> list[Obj]: ...
    def deployment(self, namespace: str, name: str) -> Obj | None: ...
    def list_deployments(self, namespace: str) -> list[Obj]: ...
    def openid_configuration(self) -> Fetched: ...
    def create_pod(self, namespace: str, body: Obj) -> Obj: ...
    def pod(self, namespace: str, name: str) -> Obj | None: ...
    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[Obj], str | None]: ...
    def watch_pods(
        self, namespace: str, label_selector: str, resource_version: str | None, timeout_seconds: int
    ) -> Iterator[tuple[str, Obj]]: ...
    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str: ...
    def delete_pod(self, namespace: str, name: str) -> None: ...
    def create_config_map(self, namespace: str, body: Obj) -> Obj: ...
    def list_config_maps(self, namespace: str | None, label_selector: str) -> list[Obj]: ...
    def delete_config_map(self, namespace: str, name: str) -> None: ...
    def list_objects(self, group: str, version: str, plural: str) -> list[Obj]: ...
    def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                        field_selector: str = "") -> list[Obj]: ...
    def self_subject_review(self) -> Obj: ...


def _kubeconfig_list() -> list[Path]:
    """$KUBECONFIG's files, empty entries skipped; an empty or unset $KUBECONFIG is ~/.kube/config (client-go's
    loading rules: only a non-empty value is a list)."""
    listed = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [Path("~/.kube/config").expanduser()]


def default_kubeconfig() -> Path:
    """Where kubectl looks without --kubeconfig: the first entry of $KUBECONFIG, else ~/.kube/config."""
    return _kubeconfig_list()[0]


def _client_config_file(kubeconfig: Path | None) -> str:
    """The kubernetes client's ``config_file``: the harness's file, else $KUBECONFIG's list as it is now (the
    client's own default is read when it is imported, and an empty $KUBECONFIG there is no file at all)."""
    return str(kubeconfig) if kubeconfig else os.pathsep.join(str(p) for p in _kubeconfig_list())


class KubeconfigProblem(ValueError):
    """The kubeconfig cannot be used; the message is one line naming the file (or entry) and why."""


@dataclass
class Kubeconfig:
    """The kubeconfig files merged as kubectl merges them (client-go's clientcmd: the first file to set a value
    or map key wins, so the first of a name wins and so does the first current-context; the ``kubernetes``
    client takes the last file's current-context, so the harness passes the context it reads here), each entry
    with the file it came from (relative paths in it are relative to that file)."""

    where: str  # the file, or $KUBECONFIG's list, for messages
    entries: dict[str, dict[str, tuple[dict[str, Any], Path]]] = field(default_factory=dict)
    current_context: str | None = None

    def entry(self, kind: str, name: Any) -> tuple[dict[str, Any], Path] | None:
        return self.entries.get(kind, {}).get(name) if isinstance(name, str) else None

    def context_names(self) -> list[str]:
        return list(self.entries.get("contexts", {}))

    def user_of(self, context: str | None) -> tuple[str | None, dict[str, Any]]:
        """The context's user name and its ``user`` section ({} when there is none)."""
        found = self.entry("contexts", context or self.current_context)
        user_name = _section(found[0], "context").get("user") if found else None
        user = self.entry("users", user_name)
        return (user_name if isinstance(user_name, str) else None), (
            _section(user[0], "user") if user else {}
        )

    def exec_command(self, context: str | None) -> str | None:
        """The command of the context's exec credential plugin, if its user has one (never its args or env)."""
        _, user = self.user_of(context)
        command = _section(user, "exec").get("command")
        return command if isinstance(command, str) else None


def _service_account_claims(token: str) -> dict[str, Any]:
    """A ServiceAccount token's namespace, name and expiry, read from its payload without verifying it (it is the
    API server's to verify); {} for any other token. Legacy Secret-based tokens carry
    kubernetes.io/serviceaccount/{namespace,service-account.name} and no exp; TokenRequest's bound tokens a
    kubernetes.io claim (k8s.io/kubernetes pkg/serviceaccount/claims.go)."""
    import base64

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    if not isinstance(claims, dict):
        return {}
    bound = claims.get("kubernetes.io") if isinstance(claims.get("kubernetes.io"), dict) else {}
    namespace = bound.get("namespace") or claims.get("kubernetes.io/serviceaccount/namespace")
    name = (bound.get("serviceaccount") or {}).get("name") if isinstance(bound.get("serviceaccount"), dict) \
        else claims.get("kubernetes.io/serviceaccount/service-account.name")
    found: dict[str, Any] = {}
    if is_namespace(namespace) and is_object_name(name):
        found["service_account"] = f"{namespace}/{name}"
    if isinstance(claims.get("exp"), int) and not isinstance(claims.get("exp"), bool):
        found["expires_at"] = claims["exp"]
    return found


def _section(entry: Any, key: str) -> dict[str, Any]:
    value = entry.get(key) if isinstance(entry, dict) else None
    return value if isinstance(value, dict) else {}


def _shown(name: Any, limit: int = 80) -> str:
    return f"'{printable(str(name), limit)}'"


def read_kubeconfig(kubeconfig: Path | None) -> Kubeconfig:
    """Read the kubeconfig the client would use (``kubeconfig``, else each existing file of $KUBECONFIG, else
    ~/.kube/config) with the same bounds and strict YAML as harness.yaml; :class:`KubeconfigProblem` says why
    it cannot be used. No file it names is opened and no exec plugin is run."""
    if kubeconfig is not None:
        files, where = [kubeconfig], str(kubeconfig)
        prefix = f"cluster.kubeconfig: cannot use {kubeconfig}"
    else:
        listed = _kubeconfig_list()
        files = [p for p in listed if p.exists()] or listed[:1]
        where = os.pathsep.join(str(p) for p in listed)
        prefix = f"cluster.kubeconfig: not set, and the default kubeconfig {where} cannot be used"
    merged = Kubeconfig(where=where)
    for path in files:
        try:
            data = read_yaml(path, MAX_KUBECONFIG_BYTES)
        except InputFileError as exc:
            detail = exc.reason if len(files) == 1 else str(exc)
            raise KubeconfigProblem(f"{prefix}: {detail}") from None
        in_file = "" if len(files) == 1 else f"{path}: "
        if data is None:
            raise KubeconfigProblem(f"{prefix}: {in_file}is empty")
        if not isinstance(data, dict):
            raise KubeconfigProblem(
                f"{prefix}: {in_file}is not a kubeconfig (a mapping with clusters, contexts and users)"
            )
        for kind in ("clusters", "contexts", "users"):
            items = data.get(kind) or []
            if not isinstance(items, list):
                raise KubeconfigProblem(f"{prefix}: {in_file}{kind} is not a list")
            for index, item in enumerate(items):
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str) or not name:
                    raise KubeconfigProblem(f"{prefix}: {in_file}{kind}[{index}] has no name")
                merged.entries.setdefault(kind, {}).setdefault(name, (item, path))
        if merged.current_context is None and isinstance(data.get("current-context"), str) and data["current-context"]:
            merged.current_context = data["current-context"]
    if not merged.context_names():
        raise KubeconfigProblem(f"{prefix}: it has no contexts")
    return merged


def kubeconfig_bearer_token(kubeconfig: Path | None, context: str | None) -> str | None:
    """The static bearer token of the context's user, if any (only so the redactor knows it)."""
    try:
        _, user = read_kubeconfig(kubeconfig).user_of(context)
    except KubeconfigProblem:
        return None
    token = user.get("token")
    return token if isinstance(token, str) else None


def kube_target_problem(kubeconfig: Path | None, context: str | None) -> str | None:
    """Why the configured kubeconfig/context cannot be used, read from the files alone (no connection, no exec
    plugin run); None when it looks usable, or when the harness runs in-cluster without a kubeconfig."""
    if kubeconfig is None and _in_cluster():
        return None
    try:
        config = read_kubeconfig(kubeconfig)
    except KubeconfigProblem as exc:
        if kubeconfig is not None:
            return str(exc)
        none = not any(path.exists() for path in _kubeconfig_list())
        return str(exc) + (": write one with az aks get-credentials --resource-group RG --name CLUSTER, or set "
                           "cluster.kubeconfig in harness.yaml" if none else "") + _no_mounted_token()
    where, names = config.where, config.context_names()
    if context is not None and context not in names:
        return f"cluster.context: {_shown(context)} is not a context of {where} (it has: {', '.join(printable(str(n), 80) for n in names)})"
    name = context or config.current_context
    if name is None:
        return f"cluster.context: {where} has no current-context: name one (it has: {', '.join(printable(str(n), 80) for n in names)})"
    found = config.entry("contexts", name)
    if found is None:
        return (f"cluster.kubeconfig: {where}: its current-context {_shown(name)} is not one of its contexts: set "
                f"cluster.context in harness.yaml to one of them ({', '.join(printable(str(n), 80) for n in names)}), "
                "or kubectl config use-context NAME")
    in_file = f"cluster.kubeconfig: {where}: context {_shown(name)}"
    if not isinstance(found[0].get("context"), dict):
        return f"{in_file} is not a mapping (cluster, user, namespace)"
    cluster_name, user_name = found[0]["context"].get("cluster"), found[0]["context"].get("user")
    cluster, user = config.entry("clusters", cluster_name), config.entry("users", user_name)
    if cluster is None:
        return (f"{in_file} names cluster {_shown(cluster_name)} which is not in the kubeconfig: write its entry "
                "again (az aks get-credentials for an AKS cluster), or name another context in cluster.context")
    if user_name is not None and user is None:
        return (f"{in_file} names user {_shown(user_name)} which is not in the kubeconfig: write its entry again "
                "(az aks get-credentials for an AKS cluster), or name another context in cluster.context")
    for kind, entry in (("cluster", cluster), ("user", user)):
        if entry is not None and not isinstance(entry[0].get(kind), dict):
            return (
                f"cluster.kubeconfig: {where}: {kind} {_shown(entry[0].get('name'))} of context {_shown(name)} "
                "is not a mapping"
            )
    return _referenced_file_problem(config, name, cluster, user)


def kubectl_elsewhere(kubeconfig: Path | None, context: str | None) -> str | None:
    """One line when the printed fixes' kubectl (the shell's $KUBECONFIG or ~/.kube/config and its
    current-context; kubelogin and az aks get-credentials write $KUBECONFIG too) would act on another cluster than
    the one harness.yaml's cluster.kubeconfig/context made the run read, saying what to run before pasting them
    (fix.use_kubeconfig, fix.use_context); None when they agree or cannot be told."""
    if kubeconfig is None and context is None:
        return None
    try:
        mine = read_kubeconfig(None)
    except KubeconfigProblem:
        mine = None
    listed = {p.resolve() for p in _kubeconfig_list() if p.exists()}
    steps = []
    if kubeconfig is not None and kubeconfig.resolve() not in listed:
        steps.append(fix.use_kubeconfig(str(kubeconfig)))
        try:
            current = read_kubeconfig(kubeconfig).current_context
        except KubeconfigProblem:
            return None
    else:
        current = mine.current_context if mine is not None else None
    if context is not None and context != current:
        steps.append(fix.use_context(context))
    if not steps:
        return None
    used = f"{kubeconfig} context {context or current}" if kubeconfig else f"context {context}"
    return (f"the fixes' kubectl, kubelogin and az aks get-credentials act on your shell's kubeconfig and current "
            f"context, this run read {used} "
            f"(harness.yaml's cluster section): run {' && '.join(render(step) for step in steps)} before pasting them")


_REFERENCED_FILES = (  # (section, key, what it must be)
    ("cluster", "certificate-authority", "ca"),
    ("user", "tokenFile", "token"),
    ("user", "client-certificate", "file"),
    ("user", "client-key", "file"),
)


def _referenced_file_problem(
    config: Kubeconfig,
    context: str,
    cluster: tuple[dict[str, Any], Path],
    user: tuple[dict[str, Any], Path] | None,
) -> str | None:
    """The files the context's cluster and user name (and the exec plugin's command) must be usable: one line
    naming the entry, the field and the file, instead of one error per test when the client first reads it."""
    owners = {"cluster": (cluster, "cluster"), "user": (user, "user")}
    for section, key, kind in _REFERENCED_FILES:
        owner, label = owners[section]
        if owner is None:
            continue
        entry, defined_in = owner
        value = _section(entry, section).get(key)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else defined_in.parent / path
        try:
            if kind == "ca":
                check_ca_bundle(path)
            else:
                check_regular_file(path, MAX_TOKEN_BYTES if kind == "token" else MAX_CA_BYTES)
        except InputFileError as exc:
            return f"cluster.kubeconfig: {config.where}: {label} {_shown(entry.get('name'))} of context {_shown(context)}: {key} {exc}"
    command = config.exec_command(context)
    if command is not None and user is not None and _exec_command_missing(command, user[1]):
        return (
            f"cluster.kubeconfig: {config.where}: the exec credential plugin {_shown(command, 240)} of user "
            f"{_shown(user[0].get('name'))} is not installed (command not found)" + _install_hint(command, user[0])
        )
    return None


def _install_hint(command: str, user: dict[str, Any]) -> str:
    """How to install a missing exec plugin: kubelogin's own way (AKS's kubeconfigs name it in installHint),
    else the first line of the kubeconfig's installHint, as kubectl prints it."""
    if Path(command).name in ("kubelogin", "kubelogin.exe"):
        return ": install it with az aks install-cli (or from https://aka.ms/aks/kubelogin), or put it on PATH"
    hint = _section(_section(user, "user"), "exec").get("installHint")
    first = next((line.strip() for line in str(hint or "").splitlines() if line.strip()), "")
    return f": {printable(first, 200)}" if first else ""


def _exec_command_missing(command: str, defined_in: Path) -> bool:
    if os.sep in command:
        path = Path(command).expanduser()
        path = path if path.is_absolute() else defined_in.parent / path
        return not (path.is_file() and os.access(path, os.X_OK))
    return shutil.which(command) is None


class _KubeConfigErrors(logging.Handler):
    """The errors the client's kubeconfig loader logs instead of raising (a failed exec plugin)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if Path(record.pathname).name in ("kube_config.py", "exec_provider.py"):
            self.messages.append(record.getMessage())


EXEC_PLUGIN_TIMEOUT = 60.0  # kubelogin and az get a token in seconds; a device-code sign-in waits 15 minutes
_TIMED_OUT = "wi-harness: stopped, no credential within"


class _BoundedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """The kubernetes client's exec credential plugin, given :data:`EXEC_PLUGIN_TIMEOUT` to answer: the client
    waits without a limit, and under pytest (no terminal) a plugin that waits for an interactive sign-in
    (kubelogin's default devicecode login) would hold the run forever with its prompt captured, unseen. Its own
    process group, so that what it started (az, a shell's children) is stopped with it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("start_new_session", True)
        super().__init__(*args, **kwargs)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:  # noqa: A002
        try:
            return super().communicate(input, EXEC_PLUGIN_TIMEOUT if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
            out, err = super().communicate()
            return out, f"{_TIMED_OUT} {EXEC_PLUGIN_TIMEOUT:.0f} s\n{err or ''}"


class _ExecProviderSubprocess:
    """``subprocess`` as the client's exec_provider module sees it: the same, but Popen bounded."""

    Popen = _BoundedPopen

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


def _bound_exec_plugins() -> None:
    from kubernetes.config import exec_provider

    if not isinstance(exec_provider.subprocess, _ExecProviderSubprocess):
        exec_provider.subprocess = _ExecProviderSubprocess()  # type: ignore[assignment]


def exec_failure_reason(message: str) -> str:
    """A one-line reason from the client's exec-plugin error: "command not found", "exited with status 1: <the
    first line it printed on stderr>", "gave no credential within 60 s ..." or the error itself, shortened."""
    exited = re.match(r"exec: process returned (-?\d+)\.? ?(.*)", message, re.DOTALL)
    if exited and exited.group(2).startswith(_TIMED_OUT):
        said = [line.strip() for line in exited.group(2).splitlines()[1:] if line.strip()]
        return (f"gave no credential within {EXEC_PLUGIN_TIMEOUT:.0f} s and was stopped: it waits for an "
                "interactive sign-in" + (f" ({printable(said[0], 200)})" if said else "") + "; sign in once where "
                "kubectl can prompt (kubectl get namespaces), or make it non-interactive: kubelogin "
                "convert-kubeconfig -l azurecli (or -l workloadidentity in CI)")
    if exited:
        first_line = next((line.strip() for line in exited.group(2).splitlines() if line.strip()), "")
        return f"exited with status {exited.group(1)}" + (
            f": {printable(first_line, 160)}" if first_line else ""
        )
    if "No such file or directory" in message or "not found" in message:
        return "command not found"
    return printable(message.strip().splitlines()[0] if message.strip() else "failed", 160)


class OfficialKubeApi:
    """:class:`KubeApi` over the official client; every response is the API server's own JSON."""

    def __init__(self, kubeconfig: Path | None, context: str | None) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException

        errors = _KubeConfigErrors()
        logging.getLogger().addHandler(errors)
        try:
            configuration = client.Configuration()
            configuration.retries = retry_for("kube")  # the pool's default for every call (collect/retrying.py)
            configuration.connection_pool_maxsize = POOL_CONNECTIONS
            if kubeconfig is None and _in_cluster():
                kube_config.load_incluster_config(client_configuration=configuration)
                self._api_client = client.ApiClient(configuration)
                self.context = "in-cluster"
            else:
                _bound_exec_plugins()
                if context is None:  # kubectl's current-context (first file of $KUBECONFIG), not the client's (last)
                    with contextlib.suppress(KubeconfigProblem):  # the client says why below
                        context = read_kubeconfig(kubeconfig).current_context
                self._api_client = kube_config.new_client_from_config(
                    config_file=_client_config_file(kubeconfig), context=context, persist_config=False,
                    client_configuration=configuration,
                )
                self.context = context or _current_context(kubeconfig)
        except (ConfigException, OSError, TypeError, ValueError, AttributeError, KeyError) as exc:
            raise KubeError(
                KubeFailure(0, "KubeconfigError", f"cannot load kubeconfig: {_short(exc)}")
            ) from None
        finally:
            logging.getLogger().removeHandler(errors)
        self.server = self._api_client.configuration.host
        self._kubeconfig = kubeconfig
        if self.context != "in-cluster":
            self._refuse_failed_exec_plugin(kubeconfig, context, errors.messages)
        self._unreachable: KubeFailure | None = None
        self._in_flight = threading.BoundedSemaphore(CONCURRENT_REQUESTS)

    def _refuse_failed_exec_plugin(
        self, kubeconfig: Path | None, context: str | None, logged: list[str]
    ) -> None:
        """The client logs a failed exec plugin and goes on without credentials, so that every call would be
        a 401 (KUBE_UNAUTHORIZED) that hides the cause: name the plugin and why it failed instead."""
        configuration = self._api_client.configuration
        if self.bearer_token or configuration.cert_file:
            return
        try:
            command = read_kubeconfig(kubeconfig).exec_command(context)
        except KubeconfigProblem:
            return
        if command is None:
            return
        reason = exec_failure_reason(logged[-1]) if logged else "gave no credential"
        raise KubeError(
            KubeFailure(
                0,
                "ExecPluginFailed",
                f"the kubeconfig's exec credential plugin {_shown(command, 240)} failed: {reason}",
            )
        )

    def credential_source(self) -> dict[str, Any]:
        """How the kubeconfig's user signs in, for the fix of a 401 (never the token itself): ``kind`` token (a
        static bearer token), tokenFile, exec (its command), client-certificate or in-cluster; for a static
        ServiceAccount token its unverified ``service_account`` (NS/NAME) and ``expires_at`` (epoch seconds)."""
        if self.context == "in-cluster":
            return {"kind": "in-cluster"}
        try:
            user_name, user = read_kubeconfig(self._kubeconfig).user_of(self.context)
        except KubeconfigProblem:
            return {}
        source: dict[str, Any] = {"user": user_name}
        if self._kubeconfig is not None:  # harness.yaml's cluster.kubeconfig: the file a printed fix writes
            source["kubeconfig"] = str(self._kubeconfig)
        if isinstance(user.get("token"), str) and user["token"]:
            source.update(kind="token", **_service_account_claims(user["token"]))
        elif isinstance(user.get("tokenFile"), str):
            source.update(kind="tokenFile", file=user["tokenFile"])
        elif self.exec_command() is not None:
            source.update(kind="exec", command=self.exec_command())
        elif user.get("client-certificate") or user.get("client-certificate-data"):
            source["kind"] = "client-certificate"
        return source

    def exec_command(self) -> str | None:
        try:
            return read_kubeconfig(self._kubeconfig).exec_command(self.context)
        except KubeconfigProblem:
            return None

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
            with self._in_flight:
                response = fn(*args, _preload_content=False, **kwargs)
                data = response.data
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise KubeError(_failure(exc.status or 0, exc.reason or "", exc.body)) from None
        except (HTTPError, OSError) as exc:
            raise self._unanswered(exc) from None
        if raw:
            return data.decode("utf-8", "replace")
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise KubeError(_not_json(response.status)) from None

    def _fail_fast(self) -> None:
        if self._unreachable is not None:
            raise KubeError(self._unreachable, final=True)

    def _unanswered(self, exc: BaseException) -> KubeError:
        failure = self._no_answer(exc)
        return KubeError(failure, final=failure is self._unreachable)

    def _no_answer(self, exc: BaseException) -> KubeFailure:
        """A transport failure as a KubeFailure; remembered when no connection could be opened at all, or when the
        API server took a request and did not answer within the read timeout through the retries (a minute each:
        every later call would wait as long, and a run of one workload took over 7 minutes, its SIGTERM clean-up 3
        more; # unverified: that a real API server this slow stays so for the run)."""
        from urllib3.exceptions import (
            ConnectTimeoutError,
            MaxRetryError,
            NewConnectionError,
            ReadTimeoutError,
            SSLError,
        )

        from harness.collect.arm_api import network_failure_cause  # here: arm_api imports this module

        reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
        if isinstance(reason, SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(reason):
            # it answered, with a certificate the kubeconfig's CA does not sign: the same on every call
            self._unreachable = KubeFailure(
                0, UNTRUSTED_CERTIFICATE,
                f"the API server {self.server} answered with a TLS certificate that is not signed by the kubeconfig's "
                "certificate-authority (CERTIFICATE_VERIFY_FAILED): the cluster's CA was rotated (az aks rotate-certs; "
                "write the kubeconfig again: az aks get-credentials --overwrite-existing), the kubeconfig holds another "
                "cluster's CA, or a proxy re-signs TLS on the way")
            return self._unreachable
        if isinstance(reason, ReadTimeoutError):
            self._unreachable = KubeFailure(
                0, "Unreachable", f"the API server {self.server} took the request and did not answer within "
                f"{REQUEST_TIMEOUT[1]:g} s, through the harness's retries: it is overloaded or failing (not asked "
                "again this run)")
            return self._unreachable
        failure = KubeFailure(
            0, "Unreachable",
            f"no answer from the API server {self.server}: {network_failure_cause(reason) or _short(reason)}"
        )
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            self._unreachable = failure
        return failure

    # -- reads

    def namespace(self, name: str) -> Obj | None:
        return self._call(self._request, "GET", f"/api/v1/namespaces/{_part(name)}", missing_ok=True)

    def service_account(self, namespace: str, name: str) -> Obj | None:
        return self._call(self._request, "GET", f"{_core(namespace)}/serviceaccounts/{_part(name)}", missing_ok=True)

    def list_service_accounts(self, namespace: str | None) -> list[Obj]:
        """Every ServiceAccount of ``namespace``, or of all namespaces (``kubectl get sa -A``)."""
        data = self._call(self._request, "GET", f"{_core(namespace)}/serviceaccounts")
        return list(data.get("items") or [])

    def mutating_webhook_configurations(self) -> list[Obj]:
        path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
        return list(self._call(self._request, "GET", path).get("items") or [])

    def deployment(self, namespace: str, name: str) -> Obj | None:
        path = f"/apis/apps/v1/namespaces/{_part(namespace)}/deployments/{_part(name)}"
        return self._call(self._request, "GET", path, missing_ok=True)

    def list_deployments(self, namespace: str) -> list[Obj]:
        """Every Deployment of ``namespace`` (``kubectl get deployments -n NS``)."""
        path = f"/apis/apps/v1/namespaces/{_part(namespace)}/deployments"
        return list(self._call(self._request, "GET", path).get("items") or [])

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

    def self_subject_review(self) -> Obj:
        """Who the API server says the harness is (``kubectl auth whoami``'s call, authentication.k8s.io/v1)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        return self._call(self._request, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=body)

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self._call(self._request, "GET", f"{_core(namespace)}/pods/{_part(name)}", missing_ok=True)

    def list_objects(self, group: str, version: str, plural: str) -> list[Obj]:
        """Every object of one resource in all namespaces (``kubectl get PLURAL.GROUP -A``), of any group: built-in
        (group "" is the core API), an aggregated API, or a CustomResourceDefinition's. A resource the API server
        does not serve is a KubeError with status 404."""
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        return list(self._call(self._request, "GET", f"{prefix}/{plural}").get("items") or [])

    def list_namespaced(self, group: str, version: str, plural: str, namespace: str,
                        field_selector: str = "") -> list[Obj]:
        """Every object of one resource in ``namespace`` (``kubectl get PLURAL.GROUP -n NS``), optionally by a field
        selector (``--field-selector``)."""
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        query = [("fieldSelector", field_selector)] if field_selector else []
        path = f"{prefix}/namespaces/{_part(namespace)}/{plural}"
        return list(self._call(self._request, "GET", path, query=query).get("items") or [])

    def _request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None, body: Obj | None = None,
                 _preload_content: bool = False, _request_timeout: Any = None) -> Any:
        """One call of the API, by its path, with the client's credentials and retries, as the generated API classes
        make it (their modules load every model of their group: about 0.6 s of CPU at each run's start); a non-2xx
        answer raises as they do with ``_preload_content=False``."""
        from kubernetes.client.exceptions import ApiException

        request = self._api_client.param_serialize(
            method, path, query_params=query or None, header_params={"Accept": "application/json"}, body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api_client.call_api(*request, _request_timeout=_request_timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def list_pods(self, namespace: str | None, label_selector: str) -> tuple[list[Obj], str | None]:
        data = self._call(self._request, "GET", f"{_core(namespace)}/pods", query=[("labelSelector", label_selector)])
        return list(data.get("items") or []), (data.get("metadata") or {}).get("resourceVersion")

    def watch_pods(
        self, namespace: str, label_selector: str, resource_version: str | None, timeout_seconds: int
    ) -> Iterator[tuple[str, Obj]]:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines
        from urllib3.exceptions import HTTPError

        self._fail_fast()
        query: list[tuple[str, Any]] = [("allowWatchBookmarks", True), ("labelSelector", label_selector)]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        query += [("timeoutSeconds", max(1, timeout_seconds)), ("watch", True)]
        try:
            response = self._request("GET", f"{_core(namespace)}/pods", query=query,
                                     _request_timeout=(REQUEST_TIMEOUT[0], timeout_seconds + 10))
        except ApiException as exc:
            raise KubeError(_failure(exc.status or 0, exc.reason or "", exc.body)) from None
        except (HTTPError, OSError) as exc:
            raise self._unanswered(exc) from None
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
        query = [("container", container)] if container else []
        return self._call(self._request, "GET", f"{_core(namespace)}/pods/{_part(name)}/log", query=query, raw=True)

    # -- writes

    def create_pod(self, namespace: str, body: Obj) -> Obj:
        return self._call(self._request, "POST", f"{_core(namespace)}/pods", body=body)

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call(self._request, "DELETE", f"{_core(namespace)}/pods/{_part(name)}",
                   query=[("gracePeriodSeconds", 0)], missing_ok=True)

    def create_config_map(self, namespace: str, body: Obj) -> Obj:
        return self._call(self._request, "POST", f"{_core(namespace)}/configmaps", body=body)

    def list_config_maps(self, namespace: str | None, label_selector: str) -> list[Obj]:
        data = self._call(self._request, "GET", f"{_core(namespace)}/configmaps",
                          query=[("labelSelector", label_selector)])
        return list(data.get("items") or [])

    def delete_config_map(self, namespace: str, name: str) -> None:
        self._call(self._request, "DELETE", f"{_core(namespace)}/configmaps/{_part(name)}", missing_ok=True)


def _part(value: str) -> str:
    """A name in a request path, escaped as the generated client escapes its path parameters."""
    from urllib.parse import quote

    return quote(value, safe="")


def _core(namespace: str | None) -> str:
    """The core API's path of ``namespace``'s resources, or of every namespace's (None)."""
    return "/api/v1" if namespace is None else f"/api/v1/namespaces/{_part(namespace)}"


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


def _no_mounted_token() -> str:
    """In a pod (the kubernetes service's variables are set) whose ServiceAccount token is not mounted: why
    in-cluster config was not used either ('' outside a pod)."""
    from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME

    if not os.environ.get("KUBERNETES_SERVICE_HOST") or Path(SERVICE_TOKEN_FILENAME).is_file():
        return ""
    return (f"; in a pod (KUBERNETES_SERVICE_HOST is set) but no ServiceAccount token at {SERVICE_TOKEN_FILENAME}: "
            "set automountServiceAccountToken: true on the pod (or its ServiceAccount)")


def _in_cluster() -> bool:
    """No kubeconfig anywhere, but the kubernetes service's variables and a service-account token mounted where
    the client's load_incluster_config reads it: the harness runs as a Job in the cluster."""
    from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME

    return (
        not default_kubeconfig().exists()
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and Path(SERVICE_TOKEN_FILENAME).is_file()
    )


def _current_context(kubeconfig: Path | None) -> str | None:
    from kubernetes import config as kube_config

    try:
        _, active = kube_config.list_kube_config_contexts(config_file=_client_config_file(kubeconfig))
    except Exception:  # noqa: BLE001 - only a label for the report
        return None
    return active.get("name") if active else None
