"""Hostile and malformed inputs, driven through the CLI as a user would give them (pytester, in-process): each
is exit code 4 with exactly ONE error line naming the cause, never a traceback, never a hang (FIFOs, /dev/zero),
never a planted secret in any output, and no file written outside the report directory.

The classes: harness.yaml itself (encodings, special files, size, YAML depth, duplicate keys, alias bombs, shape),
the files it names (client secret, CA bundles), --workload/--pod references the config model would refuse, and
kubeconfigs (encodings, missing user/cluster/tokenFile, exec plugins that are missing or fail). Beside them, the
findings bad cluster values and an unreachable Azure give (a GUID with a newline, 5 MB and 10 KB annotations, DNS
and TLS failures), and SIGTERM during a run against the lab.
"""

from __future__ import annotations

import http.server
import json
import os
import pickle
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from fakeworld import World

from harness.checks.chain import MAX_EVIDENCE_STRING, SHOWN_WORD
from harness.checks.common import arm_failure_finding
from harness.checks.serviceaccount import sa_client_id_annotation
from harness.collect.arm_api import RequestsArm
from harness.collect.kube import MAX_ANNOTATION_VALUE, collect_service_account
from harness.commands import command
from harness.config import load_config, parse_config
from harness.facts import NETWORK_ERROR
from harness.values import TRUNCATION_MARKER

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PLANTED_SECRET = "s3cr3t-harness-client-secret-value"  # what World.config writes as the client secret
KUBE_TOKEN = "planted-kube-bearer-token-0123456789"
GUID = "3b1a6f2e-5c1d-4e2f-9a8b-7c6d5e4f3a2b"
ALIAS_BOMB = "".join(  # nine levels of nine aliases: 9**9 strings once expanded
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 9)]
)


# ---------------------------------------------------------------- the test project


def project(pytester: pytest.Pytester, fake_backend: bool = True) -> Path:
    """Like the repo: suites/, a root conftest enabling the plugin (with the fake world's ``wi_backend`` unless
    the real, kubeconfig-reading one is wanted), and harness.yaml for the fake world (its client secret file
    holds :data:`PLANTED_SECRET`)."""
    world = World.healthy()
    suites = pytester.path / "suites"
    suites.mkdir()
    for source in (REPO / "suites").glob("*.py"):
        shutil.copy(source, suites / source.name)
    (pytester.path / "world.pickle").write_bytes(pickle.dumps(world))
    backend = f"""
WORLD = pickle.loads(open({str(pytester.path / "world.pickle")!r}, "rb").read())


@pytest.fixture(scope="session")
def wi_backend():
    return WORLD.backend()
"""
    pytester.makeconftest(f"""
import pickle
import sys

sys.path[:0] = [{str(HERE)!r}, {str(REPO)!r}]

import pytest

pytest_plugins = ["harness.plugin"]
{backend if fake_backend else ""}
""")
    config = pytester.path / "harness.yaml"
    config.write_text(yaml.safe_dump(world.config(pytester.path)))
    return config


def edit_config(config: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(config.read_text())
    change(data)
    config.write_text(yaml.safe_dump(data))


def files_outside_reports(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.relative_to(root).parts[0] != "reports" and "__pycache__" not in p.parts
    }


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The run's temporary files (the shared directory) go here, so a test can see none is left behind."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO no one writes to: opening it for reading would block forever. Should the harness ever open it,
    a watchdog opens it for writing after a few seconds and closes it, so the test fails instead of hanging."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    done = threading.Event()

    def watchdog() -> None:
        if done.wait(10):
            return
        while not done.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                time.sleep(0.1)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join(timeout=5)


def assert_one_usage_line(
    result: pytest.RunResult, pytester: pytest.Pytester, before: set[str], *fragments: str
) -> str:
    """Exit 4; stderr is exactly one line, ``ERROR: ...`` holding every fragment; no traceback, no secret,
    nothing written outside reports/. Returns the line."""
    out, err = result.stdout.str(), result.stderr.str()
    lines = [line for line in err.splitlines() if line.strip()]
    assert result.ret == pytest.ExitCode.USAGE_ERROR, (result.ret, out[-2000:], err[-2000:])
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("ERROR: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in out + err
    for secret in (PLANTED_SECRET, KUBE_TOKEN):
        assert secret not in out + err
    assert files_outside_reports(pytester.path) == before
    assert list((pytester.path / "reports").rglob("run.json")) == []  # nothing ran: no report
    return line


def run_cli(pytester: pytest.Pytester, private_tmp: Path, *args: str) -> tuple[pytest.RunResult, set[str]]:
    before = files_outside_reports(pytester.path)
    result = pytester.runpytest(*args)
    assert list(private_tmp.iterdir()) == []  # the shared directory (and its lock file) is gone
    return result, before


# ---------------------------------------------------------------- harness.yaml itself


def _utf16(config: Path, tmp: Path) -> Path:
    config.write_bytes(config.read_text().encode("utf-16"))
    return config


def _utf16_without_bom(config: Path, tmp: Path) -> Path:
    config.write_bytes(config.read_text().encode("utf-16-le"))
    return config


def _latin1(config: Path, tmp: Path) -> Path:
    config.write_bytes(b"# r\xe9sum\xe9 of the cluster\n" + config.read_bytes())
    return config


def _dev_zero(config: Path, tmp: Path) -> Path:
    return Path("/dev/zero")


def _directory(config: Path, tmp: Path) -> Path:
    (tmp / "config-dir").mkdir()
    return tmp / "config-dir"


def _two_megabytes(config: Path, tmp: Path) -> Path:
    config.write_text(config.read_text() + "# padding\n" * (2 * 1024 * 1024 // 10))
    return config


def _deep(config: Path, tmp: Path) -> Path:
    config.write_text("workloads: " + "[" * 5000 + "]" * 5000 + "\n")
    return config


def _duplicate_key(config: Path, tmp: Path) -> Path:
    config.write_text(config.read_text() + "probe:\n  timeout_seconds: 60\n")
    return config


def _alias_bomb(config: Path, tmp: Path) -> Path:
    config.write_text(ALIAS_BOMB + "\n")
    return config


def _recursive_alias(config: Path, tmp: Path) -> Path:
    config.write_text("workloads: &w [*w]\n")
    return config


def _a_list(config: Path, tmp: Path) -> Path:
    config.write_text("- cluster: {}\n- workloads: []\n")
    return config


def _tab_indented(config: Path, tmp: Path) -> Path:
    config.write_text("probe:\n\ttimeout_seconds: 60\n")
    return config


def _tab_after_colon(config: Path, tmp: Path) -> Path:
    config.write_text("probe:\n  timeout_seconds:\t60\n")  # kubectl's YAML takes it, PyYAML does not
    return config


def _two_documents(config: Path, tmp: Path) -> Path:
    config.write_text(config.read_text() + "---\nprobe: {}\n")
    return config


CONFIG_FILE_CASES = [
    pytest.param(_utf16, ["is UTF-16 or UTF-32 encoded", "save it as UTF-8"], id="utf16-config"),
    pytest.param(_utf16_without_bom, ["contains NUL bytes"], id="utf16-no-bom-config"),
    pytest.param(_latin1, ["is not UTF-8: byte 0xe9 at line 1 column 4"], id="latin1-config"),
    pytest.param(_dev_zero, ["/dev/zero", "is a character device, not a regular file"], id="dev-zero-config"),
    pytest.param(_directory, ["config-dir", "is a directory, not a regular file"], id="directory-config"),
    pytest.param(_two_megabytes, ["is 2.0 MiB, over the 1.0 MiB limit"], id="2mb-config"),
    pytest.param(_deep, ["not valid YAML at line 1", "nested more than 64 levels deep"], id="deep-yaml"),
    pytest.param(_duplicate_key, ["duplicate key 'probe' (first at line"], id="duplicate-key"),
    pytest.param(_alias_bomb, ["aliases expand to more than", "alias bomb"], id="alias-bomb"),
    pytest.param(_recursive_alias, ["an alias refers to its own anchor"], id="recursive-alias"),
    pytest.param(_a_list, ["must be a mapping of sections (cluster:, azure:, workloads: ...), got a list"],
                 id="yaml-list"),
    pytest.param(
        _tab_indented,
        ["not valid YAML at line 2 column 1", "cannot start any token (a tab: indent and separate with spaces)"],
        id="tab-indent",
    ),
    pytest.param(
        _tab_after_colon, ["at line 2 column 19", "(a tab: indent and separate with spaces)"], id="tab-after-colon"
    ),
    pytest.param(_two_documents, ["not valid YAML", "another document"], id="two-documents"),
]


@pytest.mark.parametrize("make, fragments", CONFIG_FILE_CASES)
def test_a_bad_config_file_is_one_usage_line(
    pytester: pytest.Pytester, private_tmp: Path, make: Callable[[Path, Path], Path], fragments: list[str]
) -> None:
    config = make(project(pytester), pytester.path)
    result, before = run_cli(pytester, private_tmp, "suites", "--config", str(config))
    line = assert_one_usage_line(result, pytester, before, "invalid harness config", str(config), *fragments)
    assert "(file)" not in line


def test_a_fifo_as_config_is_refused_without_opening_it(
    pytester: pytest.Pytester, private_tmp: Path, fifo: Path
) -> None:
    project(pytester)
    result, before = run_cli(pytester, private_tmp, "suites", "--config", str(fifo))
    assert_one_usage_line(result, pytester, before, str(fifo), "is a FIFO (named pipe), not a regular file")


def test_a_process_substitution_as_config_is_named_a_pipe(pytester: pytest.Pytester, private_tmp: Path) -> None:
    """pytest suites --config <(envsubst < harness.yaml): bash passes /dev/fd/63, which the harness resolved to
    /proc/PID/fd/pipe:[N] and called 'file not found'. It is named for what it is."""
    project(pytester)
    read, write = os.pipe()
    try:
        result, before = run_cli(pytester, private_tmp, "suites", "--config", f"/dev/fd/{read}")
    finally:
        os.close(read)
        os.close(write)
    line = assert_one_usage_line(result, pytester, before, f"/dev/fd/{read}",
                                 "is a FIFO (named pipe), not a regular file")
    assert "not found" not in line


def test_a_utf8_config_with_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "harness.yaml"
    path.write_bytes(
        b"\xef\xbb\xbf" + yaml.safe_dump({"workloads": [{"namespace": "a", "service_account": "b"}]}).encode()
    )
    assert load_config(path).workloads[0].id == "a/b"


# ---------------------------------------------------------------- the files harness.yaml names


def _set_secret(content: bytes | None) -> Callable[[dict[str, Any], Path], None]:
    def change(data: dict[str, Any], tmp: Path) -> None:
        secret = Path(data["azure"]["credential"]["client_secret_file"])
        if content is not None:
            secret.write_bytes(content)
        else:  # /dev/zero
            data["azure"]["credential"]["client_secret_file"] = "/dev/zero"

    return change


def _set_ca(field: str, content: bytes | str) -> Callable[[dict[str, Any], Path], None]:
    def change(data: dict[str, Any], tmp: Path) -> None:
        path = tmp / "ca.pem"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == "directory":
            path.mkdir()
        section, key = field.split(".")
        data[section][key] = str(path)

    return change


CORRUPT_PEM = b"-----BEGIN CERTIFICATE-----\nTUlJQm9ndXM=\n-----END CERTIFICATE-----\n"
NAMED_FILE_CASES = [
    pytest.param(_set_secret(b""), ["azure.credential.client_secret_file", "is empty"], id="secret-empty"),
    pytest.param(_set_secret(b"\n  \n"), ["client_secret_file", "is empty"], id="secret-whitespace"),
    pytest.param(
        _set_secret(PLANTED_SECRET.encode() * (1024 * 1024 // len(PLANTED_SECRET))),
        ["client_secret_file", "over the 64 KiB limit"],
        id="secret-1mb",
    ),
    pytest.param(_set_secret(None), ["client_secret_file", "is a character device"], id="secret-dev-zero"),
    pytest.param(
        _set_secret(PLANTED_SECRET.encode() + b"\xff\xfe"),
        ["client_secret_file", "is not UTF-8"],
        id="secret-binary",
    ),
    pytest.param(
        _set_ca("azure.ca_file", b"not a certificate\n"),
        ["azure.ca_file", "holds no PEM certificate"],
        id="ca-not-a-certificate",
    ),
    pytest.param(_set_ca("azure.ca_file", b""), ["azure.ca_file", "is empty"], id="ca-empty"),
    pytest.param(
        _set_ca("azure.ca_file", CORRUPT_PEM),
        ["azure.ca_file", "is not a valid certificate"],
        id="ca-corrupt-pem",
    ),
    pytest.param(
        _set_ca("cluster.ca_file", "directory"), ["cluster.ca_file", "is a directory"], id="ca-directory"
    ),
    pytest.param(
        _set_ca("cluster.ca_file", "x".encode("utf-16")), ["cluster.ca_file", "UTF-16"], id="ca-utf16"
    ),
]


@pytest.mark.parametrize("change, fragments", NAMED_FILE_CASES)
def test_a_bad_file_named_by_the_config_is_one_usage_line(
    pytester: pytest.Pytester,
    private_tmp: Path,
    change: Callable[[dict[str, Any], Path], None],
    fragments: list[str],
) -> None:
    config = project(pytester)
    edit_config(config, lambda data: change(data, pytester.path))
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml")
    assert_one_usage_line(result, pytester, before, "invalid harness config", *fragments)


@pytest.mark.parametrize("field", ["azure.credential.client_secret_file", "azure.ca_file"])
def test_a_fifo_named_by_the_config_is_refused_without_opening_it(
    pytester: pytest.Pytester, private_tmp: Path, fifo: Path, field: str
) -> None:
    config = project(pytester)

    def change(data: dict[str, Any]) -> None:
        *sections, key = field.split(".")
        target = data
        for section in sections:
            target = target[section]
        target[key] = str(fifo)

    edit_config(config, change)
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml")
    assert_one_usage_line(result, pytester, before, field, "is a FIFO (named pipe), not a regular file")


# ---------------------------------------------------------------- --workload / --pod


REFERENCE_CASES = [
    pytest.param(
        "--workload", "n" * 70 + "/backend-sa", "the namespace must be a DNS-1123 label", id="70-char-ns"
    ),
    pytest.param("--workload", "finance/a..b", "the name must be a DNS-1123 subdomain", id="a..b"),
    pytest.param(
        "--pod", "finance/backend-7d9f\n", "contains whitespace or a control character", id="pod-newline"
    ),
    pytest.param("--workload", "backend-sa", "expected NAMESPACE/NAME (lower-case DNS names), e.g. finance/backend-sa; "
                 "did you mean --workload finance/backend-sa (harness.yaml's workloads)?", id="no-slash"),
    pytest.param("--workload", "nobody-sa", "expected NAMESPACE/NAME (lower-case DNS names), e.g. finance/backend-sa",
                 id="no-slash-not-in-harness-yaml"),
    pytest.param("--workload", "finance/backend/sa", "expected NAMESPACE/NAME", id="two-slashes"),
    # a federated credential's subject, NS:NAME, or several in one value: the form meant is named
    pytest.param("--workload", "system:serviceaccount:finance:backend-sa",
                 "; did you mean --workload finance/backend-sa?", id="fic-subject"),
    pytest.param("--pod", "finance:backend-7d9f", "; did you mean --pod finance/backend-7d9f?", id="colon"),
    pytest.param("--workload", "finance/backend-sa/", "; did you mean --workload finance/backend-sa?",
                 id="trailing-slash"),
    pytest.param("--workload", " finance/backend-sa ", "contains whitespace or a control character; did you mean "
                 "--workload finance/backend-sa?", id="spaces"),
    pytest.param("--workload", "finance/backend-sa,orders/orders-sa",
                 "; name one per --workload, repeated: --workload finance/backend-sa --workload orders/orders-sa",
                 id="comma-list"),
    # Kubernetes names are lower-case: the lower-cased reference is named; a NS/NAME given to --namespace is a
    # workload
    pytest.param("--pod", "Finance/Pod", "the namespace must be a DNS-1123 label (lower-case letters, digits and "
                 "'-', at most 63 characters); did you mean --pod finance/pod?", id="upper-case"),
    pytest.param("--namespace", "Finance", "; did you mean --namespace finance?", id="namespace-upper-case"),
    pytest.param("--namespace", "finance/backend-sa", "; did you mean --workload finance/backend-sa?",
                 id="namespace-given-a-workload"),
    pytest.param(
        "--workload", "finance/" + "s" * 254, "the name must be a DNS-1123 subdomain", id="254-char-name"
    ),
    pytest.param(
        "--workload", "finance/sa\x1b[2J", "contains whitespace or a control character", id="escape"
    ),
    # --report-dir "$REPORT_DIR" with the variable unset wrote the run and a latest link into the current directory
    pytest.param("--report-dir", "", "is empty (an unset variable?)", id="empty-report-dir"),
    pytest.param("--config", "", "is empty (an unset variable?)", id="empty-config"),  # not 'pass --config'
    pytest.param("--probe-image", "", "is empty (an unset variable?)", id="empty-probe-image"),  # not ignored
    # a lab scenario beside --config: the run read harness.yaml's target, 'wrong-subject' or not, and passed
    pytest.param("--lab-scenario", "wrong-subject", "--lab-scenario chooses the embedded lab's state: it needs --lab",
                 id="lab-scenario-without-lab"),
]


@pytest.mark.parametrize("option, value, fragment", REFERENCE_CASES)
def test_a_reference_the_config_would_refuse_is_one_usage_line(
    pytester: pytest.Pytester, private_tmp: Path, option: str, value: str, fragment: str
) -> None:
    project(pytester)
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml", option, value)
    line = assert_one_usage_line(result, pytester, before, option, fragment)
    assert "\x1b" not in line and len(line) < 400


def test_a_junitxml_path_pytest_cannot_write_is_one_usage_line_before_the_run(
    pytester: pytest.Pytester, private_tmp: Path
) -> None:
    """--junitxml under a file (or where no directory can be made): pytest's junitxml failed at the very end with a
    traceback that took the summary with it and made a PASS exit 1. Now one line, before anything runs."""
    project(pytester)
    (pytester.path / "a-file").write_text("x")
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml",
                             "--junitxml", "a-file/junit.xml")
    assert_one_usage_line(result, pytester, before, "--junitxml a-file/junit.xml: ", "a-file is a file, not a "
                          "directory")
    result, _ = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml", "--junitxml", "new/dir/j.xml")
    assert result.ret == pytest.ExitCode.OK and (pytester.path / "new" / "dir" / "j.xml").is_file()


def test_every_reference_the_cli_accepts_the_config_accepts(tmp_path: Path) -> None:
    from harness.session import BadReference, parse_ref

    for value in [
        "a/b",
        "a-b/c.d",
        "n" * 63 + "/" + ".".join(["s" * 63] * 3) + ".ss",
        "0/0",
        "x/a..b",
        "-a/b",
    ]:
        try:
            namespace, name = parse_ref(value, "--workload")
        except BadReference:
            continue
        parse_config({"workloads": [{"namespace": namespace, "service_account": name}]}, base_dir=tmp_path)


@pytest.mark.parametrize("option, value, said", [
    # a pod's name alone, copied from a pod listing: the example is a pod's name, and the namespace is asked for
    ("--pod", "backend-hj6t2n58d7-6g5ts", "--pod 'backend-hj6t2n58d7-6g5ts': expected NAMESPACE/NAME (lower-case DNS "
     "names), e.g. finance/backend-7d9f8b6c5-x2k9p; name its namespace too: --pod NAMESPACE/backend-hj6t2n58d7-6g5ts"),
    ("--workload", "nobody-sa", "--workload 'nobody-sa': expected NAMESPACE/NAME (lower-case DNS names), e.g. "
     "finance/backend-sa; name its namespace too: --workload NAMESPACE/nobody-sa"),
    # a row of a listing pasted whole, its two columns
    ("--workload", "finance   backend-sa", "--workload 'finance   backend-sa': contains whitespace or a control "
     "character; did you mean --workload finance/backend-sa?"),
    ("--pod", "a b c", "--pod 'a b c': contains whitespace or a control character"),
])
def test_a_name_typed_as_a_listing_shows_it_is_answered_with_the_reference_meant(option: str, value: str,
                                                                                   said: str) -> None:
    """By hand: --pod backend-hj6t2n58d7-6g5ts (no namespace) was answered 'e.g. finance/backend-sa', a
    ServiceAccount's name, where --pod takes a pod's; --workload 'finance backend-sa' (a row of kubectl get sa -A)
    named no reference."""
    from harness.session import BadReference, parse_ref

    with pytest.raises(BadReference) as raised:
        parse_ref(value, option, [("finance", "backend-sa")])
    assert str(raised.value) == said


# ---------------------------------------------------------------- kubeconfigs


def kubeconfig(user_section: dict[str, Any] | str | None = None, **context: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "u", "user": user_section if user_section is not None else {"token": KUBE_TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "c", "user": "u", **context}}],
        "current-context": "fake",
    }


def _exec_user(command: str) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": ["get-token", "--secret-arg", PLANTED_SECRET],
            "env": [{"name": "TOKEN", "value": KUBE_TOKEN}],
            "interactiveMode": "Never",
        }
    }


def _failing_plugin(tmp: Path) -> str:
    script = tmp / "kubelogin-fails"
    script.write_text(
        f"#!/bin/sh\necho 'error: refresh token expired; client secret {PLANTED_SECRET}' >&2\nexit 1\n"
    )
    script.chmod(0o755)
    return str(script)


KUBECONFIG_CASES = [
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig()).replace("fake", "f\xe9ke").encode("latin-1"),
        ["cluster.kubeconfig", "is not UTF-8: byte 0xe9"],
        id="latin1-kubeconfig",
    ),
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig()).encode("utf-16"),
        ["cluster.kubeconfig", "UTF-16"],
        id="utf16-kubeconfig",
    ),
    pytest.param(
        lambda tmp: (yaml.safe_dump(kubeconfig()) + "current-context: other\n").encode(),
        ["cluster.kubeconfig", "duplicate key 'current-context'"],
        id="kubeconfig-duplicate-key",
    ),
    pytest.param(
        lambda tmp: ("preferences: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n").encode(),
        ["cluster.kubeconfig", "nested more than 64 levels deep"],
        id="kubeconfig-deep",
    ),
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig(user="nobody")).encode(),
        ["context 'fake' names user 'nobody' which is not in the kubeconfig"],
        id="kubeconfig-missing-user",
    ),
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig("token-without-a-mapping")).encode(),
        ["user 'u' of context 'fake' is not a mapping"],
        id="kubeconfig-user-not-a-mapping",
    ),
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig(cluster="gone")).encode(),
        ["context 'fake' names cluster 'gone' which is not in the kubeconfig: write its entry again (az aks "
         "get-credentials for an AKS cluster), or name another context in cluster.context"],
        id="kubeconfig-missing-cluster",
    ),
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig({"tokenFile": str(tmp / "no-such-token")})).encode(),
        ["user 'u' of context 'fake': tokenFile", "no-such-token file not found"],
        id="kubeconfig-tokenfile-missing",
    ),
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig(_exec_user("kubelogin-not-installed-here"))).encode(),
        ["exec credential plugin 'kubelogin-not-installed-here'", "is not installed (command not found)"],
        id="exec-plugin-not-found",
    ),
    pytest.param(  # AKS's Entra-enabled kubeconfig on a runner without kubelogin
        lambda tmp: yaml.safe_dump(kubeconfig(_exec_user("/nonexistent/bin/kubelogin"))).encode(),
        ["is not installed (command not found): install it with az aks install-cli (or from "
         "https://aka.ms/aks/kubelogin), or put it on PATH"],
        id="kubelogin-not-found",
    ),
    pytest.param(  # another plugin: the kubeconfig's own installHint, as kubectl prints it
        lambda tmp: yaml.safe_dump(kubeconfig({"exec": {**_exec_user("gke-auth-missing")["exec"],
                                                        "installHint": "\nInstall gke-auth from the portal\n"}})).encode(),
        ["'gke-auth-missing'", "is not installed (command not found): Install gke-auth from the portal"],
        id="exec-plugin-install-hint",
    ),
    pytest.param(
        lambda tmp: yaml.safe_dump(kubeconfig(_exec_user(_failing_plugin(tmp)))).encode(),
        [
            "exec credential plugin",
            "kubelogin-fails' failed: exited with status 1: error: refresh token expired",
        ],
        id="exec-plugin-exits-1",
    ),
]


@pytest.mark.parametrize("content, fragments", KUBECONFIG_CASES)
def test_a_bad_kubeconfig_is_one_usage_line(
    pytester: pytest.Pytester, private_tmp: Path, content: Callable[[Path], bytes], fragments: list[str]
) -> None:
    project(pytester, fake_backend=False)
    (pytester.path / "kubeconfig").write_bytes(content(pytester.path))
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml")
    line = assert_one_usage_line(result, pytester, before, "cannot use the cluster from", *fragments)
    assert "--secret-arg" not in line and "get-token" not in line  # the plugin's args and env are not shown


def test_a_failing_exec_plugin_that_prints_the_secret_is_redacted(
    pytester: pytest.Pytester, private_tmp: Path
) -> None:
    project(pytester, fake_backend=False)
    (pytester.path / "kubeconfig").write_text(
        yaml.safe_dump(kubeconfig(_exec_user(_failing_plugin(pytester.path))))
    )
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml")
    line = assert_one_usage_line(result, pytester, before, "client secret [REDACTED]")
    assert PLANTED_SECRET not in line


def test_an_exec_plugin_waiting_for_a_device_code_sign_in_is_stopped_and_named(
    pytester: pytest.Pytester, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubelogin's default devicecode login prints its prompt on stderr (captured by the client) and waits 15
    minutes: under pytest the run hung without a word. The plugin is stopped (a child it started too) and its
    prompt is the usage line's reason."""
    import harness.collect.kube_api as kube_api

    monkeypatch.setattr(kube_api, "EXEC_PLUGIN_TIMEOUT", 2.0)
    project(pytester, fake_backend=False)
    script = pytester.path / "kubelogin-waits"
    script.write_text("#!/bin/sh\necho 'To sign in, use a web browser to open the page "
                      "https://microsoft.com/devicelogin and enter the code ABCD1234 to authenticate.' >&2\n"
                      "sleep 300\n")
    script.chmod(0o755)
    (pytester.path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig(_exec_user(str(script)))))
    started = time.monotonic()
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml")
    assert time.monotonic() - started < 30
    assert_one_usage_line(result, pytester, before, "kubelogin-waits' failed: gave no credential within 2 s and "
                          "was stopped: it waits for an interactive sign-in (To sign in, use a web browser",
                          "kubelogin convert-kubeconfig -l azurecli")


def test_a_default_kubeconfig_that_is_a_device_is_one_usage_line(
    pytester: pytest.Pytester, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(pytester, fake_backend=False)
    edit_config(config, lambda data: data["cluster"].pop("kubeconfig"))
    monkeypatch.setenv("KUBECONFIG", "/dev/zero")
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml")
    assert_one_usage_line(
        result, pytester, before, "the default kubeconfig /dev/zero cannot be used: is a character device"
    )


def test_a_fifo_as_kubeconfig_is_refused_without_opening_it(
    pytester: pytest.Pytester, private_tmp: Path, fifo: Path
) -> None:
    config = project(pytester, fake_backend=False)
    edit_config(config, lambda data: data["cluster"].update(kubeconfig=str(fifo)))
    result, before = run_cli(pytester, private_tmp, "suites", "--config", "harness.yaml")
    assert_one_usage_line(result, pytester, before, "cluster.kubeconfig", "is a FIFO (named pipe)")


# ---------------------------------------------------------------- bad values from the cluster


def test_a_client_id_annotation_with_a_trailing_newline_is_malformed() -> None:
    from test_checks import context_for

    ctx = context_for()
    ctx.facts.sa.annotations["azure.workload.identity/client-id"] = GUID + "\n"
    outcome = sa_client_id_annotation(ctx)
    assert outcome.status == "fail" and outcome.findings[0].code == "SA_CLIENT_ID_MALFORMED"
    assert "\n" not in outcome.message
    # the newline shown escaped once, as the evidence shows it (a repr of the escaped text doubled the backslash)
    assert f"client-id='{GUID}\\n' is not a GUID" in outcome.message


class OneServiceAccount:
    """A KubeApi that knows one ServiceAccount (only what collect_service_account asks)."""

    def __init__(self, annotations: dict[str, str]) -> None:
        self.annotations = annotations

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "annotations": self.annotations}}

    def namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}}


def test_a_5mb_annotation_never_appears_whole() -> None:
    from test_checks import context_for

    huge = "x" * (5 * 1024 * 1024)
    sa = collect_service_account(
        OneServiceAccount({"azure.workload.identity/client-id": huge, "other": huge}),  # type: ignore[arg-type]
        "finance",
        "backend-sa",
    )
    for value in sa.annotations.values():
        assert len(value) < MAX_ANNOTATION_VALUE + 100 and TRUNCATION_MARKER in value
    ctx = context_for()
    ctx.facts.sa = sa
    outcome = sa_client_id_annotation(ctx)
    assert outcome.findings[0].code == "SA_CLIENT_ID_MALFORMED"
    everything = json.dumps(
        ensure_ascii=False,
        obj={
            "message": outcome.message,
            "evidence": outcome.evidence,
            "findings": [f.to_json() for f in outcome.findings],
        },
    )
    assert len(everything) < 2000 and TRUNCATION_MARKER in everything


def test_a_10kb_annotation_is_only_ever_shown_shortened(pytester: pytest.Pytester, private_tmp: Path) -> None:
    """The annotation check quotes it cut to 80 characters, and so does every other message that quotes it (Entra's
    AADSTS700016 echoes the client id back) at most once each, cut to 120; run.json holds it only shortened."""
    world = World.healthy()
    big = "q" * 10240
    world.workloads[0].annotation_value = big
    config = project(pytester)
    (pytester.path / "world.pickle").write_bytes(pickle.dumps(world))
    edit_config(config, lambda data: data["workloads"][0].pop("client_id"))
    result = pytester.runpytest(
        "suites", "--config", "harness.yaml", "--workload", "finance/backend-sa", "-rf"
    )
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "Traceback" not in out
    assert big not in out and "q" * (SHOWN_WORD + 1) not in out
    quoting = [line for line in out.splitlines() if "q" * 64 in line]
    assert quoting and all(line.count("q" * 64) == 1 and TRUNCATION_MARKER in line for line in quoting), (
        quoting
    )
    assert any("sa.client_id_annotation" in line and "q" * 81 not in line for line in quoting)
    report = (next((pytester.path / "reports").rglob("run.json"))).read_text()
    assert big not in report and "q" * (MAX_EVIDENCE_STRING + 1) not in report


# ---------------------------------------------------------------- Azure out of the harness's reach


def azure_section(authority: str, ca_file: Path | None = None) -> dict[str, Any]:
    return {
        "cloud": {"name": "lab", "authority_host": authority, "resource_manager": "https://127.0.0.1:9/"},
        **({"ca_file": str(ca_file)} if ca_file else {}),
        "tenant_id": GUID,
        "subscription_id": GUID,
        "resource_group": "rg",
        "cluster_name": "aks",
        "credential": {"client_id": GUID, "client_secret_env": "WI_TEST_SECRET"},
    }


def test_dns_failure_for_the_authority_is_azure_unreachable_not_a_credential_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def no_such_host(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):  # never asked of a real resolver
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    config = parse_config(
        {"azure": azure_section("https://login.authority.invalid/")},
        base_dir=tmp_path,
        environ={"WI_TEST_SECRET": PLANTED_SECRET},
    )
    assert config.azure is not None
    fetched = RequestsArm(config.azure)("/subscriptions/x")
    assert fetched.code == NETWORK_ERROR and fetched.host == "login.authority.invalid"
    assert "could not be resolved (DNS)" in str(fetched.error)
    finding = arm_failure_finding(
        fetched, "cluster", "read the cluster", "X", command("az", "version"), config.azure
    )
    assert finding.code == "AZURE_UNREACHABLE" and "login.authority.invalid" in finding.message
    assert finding.fix_lines()[0].startswith("nslookup login.authority.invalid")
    assert PLANTED_SECRET not in json.dumps(finding.to_json())


@pytest.fixture
def tls_server() -> Iterator[tuple[int, trustme.CA]]:
    """An HTTPS server on 127.0.0.1 whose certificate a different CA signed than the one a test trusts."""
    ca = trustme.CA()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(500)
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ca
    server.shutdown()
    server.server_close()


def test_an_untrusted_authority_certificate_is_azure_unreachable_not_a_credential_failure(
    tmp_path: Path, tls_server: tuple[int, trustme.CA]
) -> None:
    port, _ = tls_server
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(trustme.CA().cert_pem.bytes())
    config = parse_config(
        {"azure": azure_section(f"https://127.0.0.1:{port}/", other_ca)},
        base_dir=tmp_path,
        environ={"WI_TEST_SECRET": PLANTED_SECRET},
    )
    assert config.azure is not None
    fetched = RequestsArm(config.azure)("/subscriptions/x")
    assert fetched.code == NETWORK_ERROR and fetched.host == f"127.0.0.1:{port}"
    assert "TLS certificate verification failed" in str(fetched.error)
    finding = arm_failure_finding(
        fetched, "cluster", "read the cluster", "X", command("az", "version"), config.azure
    )
    assert finding.code == "AZURE_UNREACHABLE"
    assert any("does not hold the CA that signed" in line for line in finding.fix_lines())


# ---------------------------------------------------------------- SIGTERM


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_sigterm_during_a_lab_run_deletes_the_probe_pods_and_the_shared_directory(
    tmp_path: Path, workers: list[str]
) -> None:
    """A real run against the embedded lab, stopped by SIGTERM (to the main process only) while its probe pods
    run: pytest's interrupt path deletes them (under xdist the controller deletes what a killed worker left, by
    the run's label), stops the lab and removes the run's temporary directory with its lock file."""
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PYTHONUNBUFFERED": "1"}
    (tmp_path / "tmp").mkdir()
    log = tmp_path / "run.log"
    watcher = tmp_path / "conftest_watch.py"
    watcher.write_text(WATCH_PLUGIN)
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "suites",
                "--lab",
                "-p",
                "no:cacheprovider",
                "-p",
                "conftest_watch",
                "--report-dir",
                str(tmp_path / "reports"),
                "-q",
                *workers,
            ],
            cwd=REPO,
            env={
                **env,
                "PYTHONPATH": f"{tmp_path}{os.pathsep}{env.get('PYTHONPATH', '')}",
                "WI_WATCH_FILE": str(tmp_path / "pods.json"),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not (tmp_path / "pods.json").exists():
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no probe pod was created"
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, text[-3000:]
    assert "Traceback" not in text
    watched = json.loads((tmp_path / "pods.json").read_text())
    assert watched["created"], watched
    remaining = json.loads((tmp_path / "pods.json.after").read_text())
    assert remaining == [], remaining
    assert list((tmp_path / "tmp").glob("wi-harness-*")) == []


# Loaded into the run under test (-p conftest_watch): the process that creates probe pods writes their names as
# soon as the first exists; the process that owns the run records, just before the lab stops (after every
# cleanup), which of the run's pods the lab still has.
WATCH_PLUGIN = '''
import json
import os

import pytest

from harness.collect.kube_api import OfficialKubeApi
from harness.plugin import SESSION

WATCH = os.environ["WI_WATCH_FILE"]


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    outcome = yield
    if fixturedef.argname == "wi_backend" and outcome.excinfo is None:
        kube = outcome.get_result().kube
        create = kube.create_pod

        def create_and_report(namespace, body):
            result = create(namespace, body)
            with open(WATCH + ".tmp", "w") as handle:
                json.dump({"created": [namespace + "/" + body["metadata"]["name"]]}, handle)
            os.replace(WATCH + ".tmp", WATCH)
            return result

        kube.create_pod = create_and_report


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    session = config.stash.get(SESSION, None)
    if session is None or session.is_worker or session.lab is None:
        return
    stop = session.lab.stop

    def record_then_stop(*args, **kwargs):
        api = OfficialKubeApi(session.config.cluster.kubeconfig, session.config.cluster.context)
        pods, _ = api.list_pods(None, "wi-harness/run-id=" + session.run_id)
        left = [p["metadata"]["namespace"] + "/" + p["metadata"]["name"] for p in pods]
        with open(WATCH + ".after", "w") as handle:
            json.dump(left, handle)
        return stop(*args, **kwargs)

    session.lab.stop = record_then_stop
'''
