"""Files a user points the harness at (harness.yaml, a kubeconfig, a client-secret file, a CA bundle): read
them within bounds and parse their YAML strictly, answering every bad one with ONE line that says why.

A path may name a FIFO (a read that never returns), /dev/zero (one that never ends), a directory, a log of
several gigabytes or a file an editor saved as UTF-16; a YAML file may nest thousands of levels deep, repeat a
key or expand a few aliases into billions of nodes. Each is refused with :class:`InputFileError` before or
while it is read: never by a hang, a crash, a traceback or a silent guess.

What the harness writes over a file a user keeps (a sign-off, a manifest) goes through
:func:`write_text_replacing`: a write that fails (a full disk, a file-size limit) leaves the earlier file whole.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

KIB = 1024
MIB = 1024 * KIB
MAX_CONFIG_BYTES = 1 * MIB
MAX_KUBECONFIG_BYTES = 4 * MIB  # a fleet's merged kubeconfig holds an embedded CA (~2 KiB) per cluster
MAX_SECRET_BYTES = 64 * KIB
MAX_CA_BYTES = 1 * MIB  # the whole Mozilla root store is about 220 KiB
MAX_TOKEN_BYTES = 64 * KIB
MAX_YAML_DEPTH = 64  # harness.yaml and kubeconfigs nest fewer than 10 levels
MAX_ALIAS_EXPANSION = 10_000  # nodes reached through aliases, counted as often as they are reached

_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_PEM_CERTIFICATE_RE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL)


class InputFileError(ValueError):
    """A file the harness was pointed at cannot be used: ``reason`` completes a sentence whose subject is the
    path ("is a FIFO (named pipe), not a regular file"); the message is that one line."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = str(path)
        self.reason = reason


# ---------------------------------------------------------------- reading


def size_text(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    if size >= KIB:
        return f"{size / KIB:.0f} KiB"
    return f"{size} bytes"


def check_regular_file(path: Path, limit: int) -> os.stat_result:
    """``path`` names an existing regular file of at most ``limit`` bytes (stat only: nothing is opened)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    _check_kind_and_size(path, info, limit)
    return info


def _check_kind_and_size(path: Path, info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a regular file")
        raise InputFileError(path, f"is {kind}, not a regular file")
    if info.st_size > limit:
        raise InputFileError(
            path, f"is {size_text(info.st_size)}, over the {size_text(limit)} limit for this file"
        )


def read_bytes(path: Path, limit: int) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes. A FIFO or device is refused by stat
    before opening, and again on the open descriptor (``O_NONBLOCK``: opening a FIFO never waits for a
    writer), so swapping the file between the two cannot make the read hang or run on."""
    check_regular_file(path, limit)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        _check_kind_and_size(path, os.fstat(fd), limit)
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 256 * KIB))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew after stat
        raise InputFileError(path, f"is over the {size_text(limit)} limit for this file")
    return data


def decode_utf8(path: Path, data: bytes) -> str:
    """Strict UTF-8 (a UTF-8 byte-order mark is dropped); UTF-16/32, NUL bytes and other encodings refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        raise InputFileError(
            path, "is UTF-16 or UTF-32 encoded (it starts with a byte-order mark): save it as UTF-8"
        )
    if b"\x00" in data:
        raise InputFileError(
            path,
            "contains NUL bytes (UTF-16 without a byte-order mark, or not a text file): save it as UTF-8",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputFileError(
            path,
            f"is not UTF-8: byte 0x{data[exc.start]:02x} at line {line} column {column} "
            "(saved as Latin-1 or another code page?): save it as UTF-8",
        ) from None


def write_text_replacing(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a new temporary file beside ``path``, then rename it over ``path``: never a
    half-written ``path``. A symlink's target is what is replaced; a device or FIFO (``/dev/stdout``, a pipe) is
    written to directly. OSError as the write raised it; the temporary file is removed then."""
    if path.exists() and not path.is_file():
        path.write_text(text, encoding="utf-8")
        return
    path = Path(os.path.realpath(path))
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # mode 0666 less the umask, as open() gives a new file (mkstemp's 0600 would narrow a shared sign-off)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_text(path: Path, limit: int) -> str:
    """A bounded, regular, strict UTF-8 text file."""
    return decode_utf8(path, read_bytes(path, limit))


def read_secret(path: Path, limit: int = MAX_SECRET_BYTES) -> str:
    """A secret kept in a file, surrounding whitespace dropped; its content never appears in an error."""
    text = read_text(path, limit).strip()
    if not text:
        raise InputFileError(path, "is empty")
    return text


def check_ca_bundle(path: Path, limit: int = MAX_CA_BYTES) -> None:
    """``path`` is a PEM bundle with at least one certificate that both ``cryptography`` and OpenSSL (what
    ``requests`` and the Azure SDK verify with) load."""
    from cryptography import x509

    text = read_text(path, limit)
    if not text.strip():
        raise InputFileError(
            path, "is empty: a CA bundle holds PEM certificates (-----BEGIN CERTIFICATE-----)"
        )
    blocks = list(_PEM_CERTIFICATE_RE.finditer(text))
    if not blocks:
        raise InputFileError(path, "holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)")
    for number, block in enumerate(blocks, 1):
        try:
            x509.load_pem_x509_certificate(block.group(0).encode())
        except ValueError:
            line = text.count("\n", 0, block.start()) + 1
            raise InputFileError(
                path,
                f"holds a PEM block at line {line} (certificate {number}) that is not a valid certificate",
            ) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except ssl.SSLError as exc:
        raise InputFileError(
            path, f"cannot be loaded by OpenSSL as a CA bundle: {exc.reason or exc}"
        ) from None


# ---------------------------------------------------------------- strict YAML


class StrictYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses what a config file never needs and a hostile one uses: a key written
    twice in one mapping (silently last-wins otherwise), nesting deeper than :data:`MAX_YAML_DEPTH` (the
    composer recurses: thousands of levels are a RecursionError), and aliases that expand to more than
    :data:`MAX_ALIAS_EXPANSION` nodes or refer to themselves (an alias bomb, a cycle)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(
                    problem=f"nested more than {MAX_YAML_DEPTH} levels deep", problem_mark=mark
                )
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node = Composer.compose_document(self)
        if node is not None:
            _check_alias_expansion(node)
        return node

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class names it
                    continue
                if first is not None:
                    raise ConstructorError(
                        problem=f"duplicate key {_short_key(key)} (first at line {first.start_mark.line + 1})",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def _short_key(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_alias_expansion(root: Node) -> None:
    """Count the nodes that aliases add to the document (each use counts the aliased node's whole subtree),
    depth-first in document order and without recursion; an anchor used inside itself is refused too."""
    sizes: dict[int, int] = {}  # id(node) -> its subtree's node count, once complete
    open_nodes: set[int] = set()
    reused = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, complete = stack.pop()
        key = id(node)
        if complete:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in open_nodes:
            raise yaml.MarkedYAMLError(
                problem="an alias refers to its own anchor", problem_mark=node.start_mark
            )
        if key in sizes:  # reached again: an alias
            reused += sizes[key]
            if reused > MAX_ALIAS_EXPANSION:
                raise yaml.MarkedYAMLError(
                    problem=f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes (an alias bomb?)",
                    problem_mark=node.start_mark,
                )
            continue
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str) -> Any:
    """One YAML document, strictly (see :class:`StrictYamlLoader`); ``yaml.YAMLError`` otherwise."""
    loader = StrictYamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.YAMLError | RecursionError) -> str:
    """``not valid YAML at line L column C: problem`` (never the file's content beyond the problem)."""
    if isinstance(exc, RecursionError):
        return f"not valid YAML: nested too deeply (more than {MAX_YAML_DEPTH} levels)"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or "not valid YAML"
    if problem == "but found another document":  # a '---' line and more after it
        problem += " (a '---' line starts a second document: the file holds one)"
    if "'\\t'" in problem:  # PyYAML refuses a tab even after 'key:', where kubectl's YAML takes one
        problem += " (a tab: indent and separate with spaces)"
    return f"not valid YAML{where}: {problem}"


def read_yaml(path: Path, limit: int) -> Any:
    """A bounded UTF-8 file parsed as one strict YAML document; :class:`InputFileError` otherwise."""
    text = read_text(path, limit)
    try:
        return load_yaml(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise InputFileError(path, yaml_problem(exc)) from None
