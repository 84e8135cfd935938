"""``resource.Quantity`` as apimachinery parses, adds, compares and prints it
(k8s.io/apimachinery/pkg/api/resource).

A quantity keeps the format it was written in: DecimalSI (``500m``, ``2``, ``1k``), BinarySI (``128Mi``) or
DecimalExponent (``1e3``). ``str()`` is Quantity.String(): the canonical form in that format, e.g. ``1500m``,
``2Ki`` for 2048, and BinarySI values under 1024 or not whole numbers shown as DecimalSI. Adding to a zero
quantity takes the other operand's format (Quantity.Add), which is how quota usage sums print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_NAMES = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_NAMES = {bits: suffix for suffix, bits in _BINARY_SUFFIXES.items()}
_SYNTAX = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
NANO = Decimal("1e-9")
SYNTAX_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


class QuantityError(ValueError):
    """Text that is not a quantity (the message is apimachinery's ErrFormatWrong / ErrSuffix text)."""


@dataclass(frozen=True)
class Quantity:
    value: Decimal
    format: str = DECIMAL_SI

    @classmethod
    def parse(cls, text: object) -> Quantity:
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            raise QuantityError(SYNTAX_MESSAGE)
        match = _SYNTAX.match(str(text).strip())
        if not match or match.group(1) in (".", "+.", "-."):
            raise QuantityError(SYNTAX_MESSAGE)
        try:
            number = Decimal(match.group(1))
        except InvalidOperation:
            raise QuantityError(SYNTAX_MESSAGE) from None
        suffix = match.group(2)
        if suffix in _DECIMAL_SUFFIXES:
            value, fmt = number.scaleb(_DECIMAL_SUFFIXES[suffix]), DECIMAL_SI
        elif suffix in _BINARY_SUFFIXES:
            value, fmt = number * (Decimal(2) ** _BINARY_SUFFIXES[suffix]), BINARY_SI
        elif re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
            value, fmt = number.scaleb(int(suffix[1:])), DECIMAL_EXPONENT
        else:
            raise QuantityError("unable to parse quantity's suffix")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -9:  # finer than a nano-unit: rounded up to it
            value = value.quantize(NANO, rounding=ROUND_CEILING)
        return cls(value, fmt)

    @classmethod
    def count(cls, number: int) -> Quantity:
        return cls(Decimal(number), DECIMAL_SI)

    def __add__(self, other: Quantity) -> Quantity:
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value + other.value, fmt)

    def __sub__(self, other: Quantity) -> Quantity:
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value - other.value, fmt)

    def __str__(self) -> str:
        value = self.value
        if value == 0:
            return "0"
        if self.format == BINARY_SI and abs(value) >= 1024 and value == value.to_integral_value():
            whole, bits = int(value), 0
            while bits < 60 and whole % 1024 == 0:
                whole //= 1024
                bits += 10
            return f"{whole}{_BINARY_NAMES.get(bits, '')}"
        mantissa, exponent = _decimal_parts(value)
        if self.format == DECIMAL_EXPONENT:
            return f"{mantissa}e{exponent}" if exponent else str(mantissa)
        return f"{mantissa}{_DECIMAL_NAMES[exponent]}"


def _decimal_parts(value: Decimal) -> tuple[int, int]:
    """(whole mantissa, exponent) with the exponent a multiple of 3 in [-9, 18], as large as it can be."""
    exponent = -9
    mantissa = int(value.scaleb(9))
    while exponent < 18 and mantissa % 1000 == 0:
        mantissa //= 1000
        exponent += 3
    return mantissa, exponent


def parse_list(resources: object) -> dict[str, Quantity]:
    """A ResourceList (name -> quantity text); entries that do not parse are left out (validation's job)."""
    parsed: dict[str, Quantity] = {}
    for name, text in (resources or {}).items() if isinstance(resources, dict) else ():
        try:
            parsed[str(name)] = Quantity.parse(text)
        except QuantityError:
            continue
    return parsed


def add_lists(a: dict[str, Quantity], b: dict[str, Quantity]) -> dict[str, Quantity]:
    """quota.Add: every key of either list, summed where both have it."""
    result = dict(a)
    for name, quantity in b.items():
        result[name] = result[name] + quantity if name in result else quantity
    return result


def render_list(resources: dict[str, Quantity]) -> dict[str, str]:
    return {name: str(quantity) for name, quantity in sorted(resources.items())}


def pretty(resources: dict[str, Quantity]) -> str:
    """prettyPrint in the quota admission controller: ``name=value`` pairs sorted by name, comma-joined."""
    return ",".join(f"{name}={resources[name]}" for name in sorted(resources))
