"""Every command the harness prints for a person to paste: built as argument lists, rendered in ONE place.

Values in a printed fix come from the cluster (annotations, names) or the config, and anyone who can annotate a
ServiceAccount could otherwise make the person who follows the fix run their code. So no other module puts a
command line together from strings: they build :class:`Command` (argv) and :class:`Advice` (a step for a
person, printed as a shell comment) values, and :func:`render` turns them into text with ``shlex.join``.

A fix that needs the output of one command in the next captures it in a shell variable::

    Command(("az", "keyvault", "show", "--name", vault, "--query", "id", "-o", "tsv"), capture="SCOPE")
    Command(("az", "role", "assignment", "create", ..., "--scope", Var("SCOPE", "/containers/" + name)))

renders as ``SCOPE=$(az keyvault show ...)`` and ``... --scope "$SCOPE"'/containers/reports'``: the value is
still one quoted word whatever it holds. A command that reads the first one's output on its stdin is ``then``::

    Command(("kubectl", "get", "pod", "-n", ns, name, "-o", "yaml"), then=("kubectl", "replace", "--force", "-f", "-"))

renders as ``kubectl get pod ... -o yaml | kubectl replace --force -f -`` (each side quoted word by word).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from harness.values import visible

_VARIABLE_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_MAX_COMMENT = 300


@dataclass(frozen=True)
class Var:
    """The value of a variable captured by an earlier line, optionally between a literal prefix and suffix (a
    JSON patch holding it: ``'[{"value":"'"$CA"'"}]'``, still one word)."""

    name: str
    suffix: str = ""
    prefix: str = ""

    def __post_init__(self) -> None:
        if not _VARIABLE_RE.fullmatch(self.name):
            raise ValueError(f"not a shell variable name: {self.name!r}")


Arg = str | Var


@dataclass(frozen=True)
class Command:
    """One command line: ``argv`` exactly as the program should receive it, a note printed as a comment after
    it, optionally the name of a variable that captures its output for the lines after it, and optionally
    ``then``: the argv of a second program that reads the first one's output on its stdin (a pipe)."""

    argv: tuple[Arg, ...]
    note: str = ""
    capture: str | None = None
    then: tuple[Arg, ...] = ()

    def __post_init__(self) -> None:
        if not self.argv or not isinstance(self.argv[0], str):
            raise ValueError("a command needs a program name")
        if self.then and not isinstance(self.then[0], str):
            raise ValueError("a piped command needs a program name")
        if self.capture is not None and not _VARIABLE_RE.fullmatch(self.capture):
            raise ValueError(f"not a shell variable name: {self.capture!r}")


@dataclass(frozen=True)
class Advice:
    """A step a person takes (no command fits): printed as a shell comment, so a paste runs nothing."""

    text: str


Step = Command | Advice


def command(*argv: Arg, note: str = "", capture: str | None = None, then: tuple[Arg, ...] = ()) -> Command:
    return Command(tuple(argv), note, capture, then)


def advice(text: str) -> Advice:
    return Advice(text)


def render(step: Step) -> str:
    """The one line a person pastes."""
    if isinstance(step, Advice):
        return "# " + _comment_text(step.text)
    if not isinstance(step, Command):
        raise TypeError(f"a fix must be a Command or an Advice, not {type(step).__name__}")
    line = " ".join(_word(arg) for arg in step.argv)
    if step.then:
        line += " | " + " ".join(_word(arg) for arg in step.then)
    if step.capture:
        line = f"{step.capture}=$({line})"
    if step.note:
        line += "   # " + _comment_text(step.note)
    return line


def render_all(steps: Iterable[Step]) -> list[str]:
    return [render(step) for step in steps]


def intended_words(step: Command) -> list[str]:
    """What ``shlex.split`` of the rendered argv must give back: the tests' oracle (a Var stays ``$NAME``, a pipe
    is the word ``|``)."""
    words = [*step.argv, "|", *step.then] if step.then else list(step.argv)
    return [arg if isinstance(arg, str) else f"{arg.prefix}${arg.name}{arg.suffix}" for arg in words]


# what a shell still reads inside double quotes: expansions, escapes, the quote itself, and history's '!'
_DOUBLE_QUOTE_ACTIVE = frozenset('$`\\"!')


def _word(arg: Arg) -> str:
    if isinstance(arg, Var):
        return ((shlex.quote(arg.prefix) if arg.prefix else "") + f'"${arg.name}"'
                + (shlex.quote(arg.suffix) if arg.suffix else ""))
    if "'" in arg and arg.isprintable() and not _DOUBLE_QUOTE_ACTIVE & set(arg):
        # a JMESPath or OData literal ([?name=='x'], appId eq 'x'): double quotes, as a person types it, rather
        # than shlex.quote's '...'"'"'...'; with none of those characters in it, the word is taken literally
        return f'"{arg}"'
    return shlex.quote(arg)


def _comment_text(text: str) -> str:
    """A comment ends at the line's end: no character may start a new line, and nothing else matters after '#'."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= _MAX_COMMENT else flat[:_MAX_COMMENT] + "…"


def pasteable(line: str, limit: int | None = None) -> str:
    """A rendered fix as a terminal or a sign-off shows it for pasting: itself when it is one line of printable
    characters (within ``limit``); otherwise a shell comment, so a paste runs nothing: a value holding a newline or
    an escape (quoted, so the command is right in run.json) would be flattened or act on the terminal, and a
    command cut short would run something else, or leave a quote open for the next line typed."""
    if line.isprintable() and (limit is None or len(line) <= limit):
        return line
    why = f"{len(line)} characters" if line.isprintable() else "it holds a newline or control character"
    shown = visible(line)
    preview = shown if len(shown) <= 160 else shown[:160] + "…"
    return f"# not shown whole ({why}): run.json's remediation has it exactly: {preview}"


