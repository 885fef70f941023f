"""Answer specs: what "the answer" of a branch is, and when two answers are equal.

A spec turns a branch's text into an :class:`Answer` whose ``key`` is canonical:
two branches vote for the same answer exactly when their keys are equal. The
caller may plug in any object with the :class:`AnswerSpec` shape.

Every built-in spec is linear in the length of its input and reads at most
``max_chars`` characters (the tail of the text: answers live at the end), so a
hostile or runaway reply cannot stall the executor. They use hand-written scans
or regexes without nested quantifiers; no pattern can backtrack catastrophically.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Protocol, runtime_checkable

from agentrt.core._errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_CHARS",
    "Answer",
    "AnswerSpec",
    "BoxedAnswer",
    "ChoiceLetter",
    "JsonField",
    "LastNumber",
    "NormalisedString",
    "canonical_number",
]

DEFAULT_MAX_CHARS = 100_000
"""How much of a reply (its tail) a built-in spec reads: ~25k tokens."""

MAX_KEY_CHARS = 1_000
"""Canonical keys longer than this are cut: votes compare prefixes, not essays."""


@dataclass(frozen=True)
class Answer:
    """An extracted answer: ``key`` decides equality in votes, ``text`` is what was found."""

    key: str
    text: str


@runtime_checkable
class AnswerSpec(Protocol):
    """How to read an answer out of a branch's text.

    ``from_partial`` says whether an answer may be taken from a branch that has
    not finished (at the end of a slice, the executor salvages such answers
    only when this is true).
    """

    @property
    def name(self) -> str: ...

    @property
    def from_partial(self) -> bool: ...

    def extract(self, text: str) -> Answer | None:
        """The answer in ``text``, or ``None`` when it holds none."""
        ...


def _check_max_chars(owner: str, max_chars: int) -> None:
    if max_chars < 1:
        raise ConfigurationError(f"{owner}.max_chars must be >= 1, got {max_chars}")


def _tail(text: str, max_chars: int) -> str:
    return text[-max_chars:] if len(text) > max_chars else text


def canonical_number(literal: str) -> str | None:
    """``"1,234.50"`` -> ``"1234.5"``; ``"-0"`` -> ``"0"``; ``None`` if not a plain number.

    Only digits, one sign, ``.`` and ``,`` are accepted (no exponents), at most
    200 characters, so the work is bounded.
    """
    cleaned = literal.replace(",", "")
    if not cleaned or len(cleaned) > 200 or not _PLAIN_NUMBER_CHARS.issuperset(cleaned):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == 0:
        return "0"
    normal = _EXACT.normalize(value)
    if normal == _EXACT.to_integral_value(normal):
        return str(int(normal))
    return f"{normal:f}"


_PLAIN_NUMBER_CHARS = frozenset("0123456789.+-")
_EXACT = Context(prec=256)
"""Enough digits that normalising a <=200-character literal never rounds it."""


@dataclass(frozen=True)
class LastNumber:
    """The last number in the text (``-3``, ``1,234``, ``0.50``), canonicalised.

    Found by a right-to-left scan, so the cost is the length of the trailing
    non-numeric text plus the number itself. Thousands separators are dropped;
    ``3.0`` and ``3`` are the same answer.
    """

    from_partial: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    name: str = "last_number"

    def __post_init__(self) -> None:
        _check_max_chars("LastNumber", self.max_chars)

    def extract(self, text: str) -> Answer | None:
        text = _tail(text, self.max_chars)
        end = len(text)
        while end > 0 and not text[end - 1].isdigit():
            end -= 1
        if end == 0:
            return None
        start = end
        while start > 0 and (
            text[start - 1].isdigit()
            or (text[start - 1] in ",." and start > 1 and text[start - 2].isdigit())
        ):
            start -= 1
        if start > 0 and text[start - 1] == "-" and (start < 2 or not text[start - 2].isalnum()):
            start -= 1
        literal = text[start:end]
        key = canonical_number(literal)
        if key is None:
            return None
        return Answer(key=key, text=literal)


_LATEX_NOISE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "$")


def _normalise_latex(body: str) -> str:
    out = body
    for noise in _LATEX_NOISE:
        out = out.replace(noise, "")
    out = out.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    out = out.replace("^\\circ", "").replace("^{\\circ}", "")
    out = "".join(out.split())
    return out.rstrip(".")


@dataclass(frozen=True)
class BoxedAnswer:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced.

    The key drops spacing and sizing noise (``\\left``, ``\\!``, ``$``), maps
    ``\\dfrac`` to ``\\frac`` and reads a plain number as a number. An unclosed
    box (a branch cut mid-answer) holds no answer.
    """

    from_partial: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    name: str = "boxed"

    def __post_init__(self) -> None:
        _check_max_chars("BoxedAnswer", self.max_chars)

    def extract(self, text: str) -> Answer | None:
        text = _tail(text, self.max_chars)
        start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
        if start < 0:
            return None
        open_at = text.index("{", start)
        depth = 0
        for i in range(open_at, len(text)):
            char = text[i]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    body = text[open_at + 1 : i]
                    key = _normalise_latex(body)
                    if not key:
                        return None
                    return Answer(key=canonical_number(key) or key[:MAX_KEY_CHARS], text=body)
        return None


_ANSWER_CUE = re.compile(r"answer", re.IGNORECASE)


@dataclass(frozen=True)
class ChoiceLetter:
    """A multiple-choice letter (``A``-``D`` by default).

    Looks after the last "answer" cue for the first standalone letter
    (``Answer: (C)``, ``the answer is B``); without a cue, takes the last
    parenthesised letter ``(C)``; a reply that is only a letter counts too.
    """

    choices: str = "ABCD"
    from_partial: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    name: str = "choice_letter"

    def __post_init__(self) -> None:
        _check_max_chars("ChoiceLetter", self.max_chars)
        if not self.choices or not self.choices.isalpha() or not self.choices.isupper():
            raise ConfigurationError(
                f"ChoiceLetter.choices must be upper-case letters, got {self.choices!r}"
            )

    def _standalone(self, text: str, i: int) -> bool:
        before = text[i - 1] if i > 0 else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        return not before.isalnum() and not after.isalnum()

    def extract(self, text: str) -> Answer | None:
        text = _tail(text, self.max_chars)
        stripped = text.strip().strip(".()[]*:").strip()
        if len(stripped) == 1 and stripped.upper() in self.choices:
            return Answer(key=stripped.upper(), text=stripped)
        cue = -1
        for match in _ANSWER_CUE.finditer(text):
            cue = match.end()
        if cue >= 0:
            for i in range(cue, len(text)):
                if text[i] in self.choices and self._standalone(text, i):
                    return Answer(key=text[i], text=text[i])
        close = text.rfind(")")
        while close >= 2:
            if text[close - 2] == "(" and text[close - 1] in self.choices:
                letter = text[close - 1]
                return Answer(key=letter, text=f"({letter})")
            close = text.rfind(")", 0, close)
        return None


@dataclass(frozen=True)
class NormalisedString:
    """The reply itself (or its last non-empty line), case-folded, spaces collapsed,
    surrounding quotes and punctuation stripped. For short-answer tasks."""

    last_line: bool = False
    from_partial: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    name: str = "normalised_string"

    def __post_init__(self) -> None:
        _check_max_chars("NormalisedString", self.max_chars)

    def extract(self, text: str) -> Answer | None:
        text = _tail(text, self.max_chars)
        if self.last_line:
            lines = [line for line in text.splitlines() if line.strip()]
            text = lines[-1] if lines else ""
        key = " ".join(text.casefold().split()).strip(" \"'`.,;:!?*")
        if not key:
            return None
        return Answer(key=key[:MAX_KEY_CHARS], text=text.strip())


@dataclass(frozen=True)
class JsonField:
    """A field of a JSON object in the reply, at a dotted ``path`` (``"result.value"``,
    list items by number: ``"items.0"``).

    Tries the whole reply, then the span from its first ``{`` to its last ``}``
    (fenced or chatty replies). Two parses at most, so linear; nesting deep
    enough to exhaust the parser is treated as no answer. The key is the
    field's value as compact, key-sorted JSON.
    """

    path: str
    from_partial: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    name: str = "json_field"

    def __post_init__(self) -> None:
        _check_max_chars("JsonField", self.max_chars)
        if not self.path or any(not part for part in self.path.split(".")):
            raise ConfigurationError(f"JsonField.path must be a dotted path, got {self.path!r}")

    def _parse(self, text: str) -> object | None:
        stripped = text.strip()
        candidates = [stripped]
        first, last = stripped.find("{"), stripped.rfind("}")
        if 0 <= first < last and (first, last) != (0, len(stripped) - 1):
            candidates.append(stripped[first : last + 1])
        for candidate in candidates:
            try:
                parsed: object = json.loads(candidate)
            except (ValueError, RecursionError):
                continue
            return parsed
        return None

    def extract(self, text: str) -> Answer | None:
        document = self._parse(_tail(text, self.max_chars))
        value: object = document
        for part in self.path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        try:
            key = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except (ValueError, RecursionError):
            return None
        shown = value if isinstance(value, str) else key
        return Answer(key=key[:MAX_KEY_CHARS], text=shown)
