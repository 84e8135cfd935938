"""lab.bodies: the depth check's fast path agrees with the token walk that places the error."""

from __future__ import annotations

import json
import random

from lab import bodies


def _random_text(rng: random.Random) -> str:
    """JSON-like text with brackets inside and outside strings, escapes, stray closers and unterminated strings."""
    pieces = ["[", "]", "{", "}", ",", ":", '"', '\\"', '"[["', '"{}"', "1", " ", "\n", '"a\\\\"', "x"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))


def test_the_fast_path_answers_as_the_token_walk_does() -> None:
    rng = random.Random(20261206)
    for _ in range(20000):
        text, limit = _random_text(rng), rng.randint(0, 6)
        assert bodies._depth_within(text, limit) == (bodies._first_too_deep(text, limit) is None), (text, limit)


def test_a_deep_body_is_still_placed_and_a_wide_one_passes() -> None:
    deep = '{"a": ' * 3 + "[" * 4 + "]" * 4 + "}" * 3
    found = bodies.json_too_deep(deep, limit=5)
    assert found is not None and (found.char, found.path) == ("[", "a.a.a[0][0]")
    wide = json.dumps({"items": [{"k": [1, {"v": "[[[[[["}]} for _ in range(300)]})
    assert bodies.json_too_deep(wide, limit=5) is None
