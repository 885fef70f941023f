"""Math answers equal up to symbolic equivalence (``1/2``, ``0.5``, ``\\frac{1}{2}``).

:class:`MathEquivalent` wraps another spec (boxed content by default), parses
what it found with a small parser of its own into a sympy expression and keys
the answer by its value (exact for rationals, to 15 digits otherwise). It never hands text to
``sympy.sympify`` (which calls ``eval``) and bounds the work: at most
``MAX_EXPRESSION_CHARS`` characters, ``MAX_DEPTH`` nesting, ``MAX_POWERS``
powers, and powers whose exact result would exceed ``MAX_POWER_BITS`` bits
are refused; nothing is expanded or simplified symbolically. Anything it
cannot parse keeps the inner spec's key, so equal strings still vote together.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from agentrt.tts._answers import MAX_KEY_CHARS, Answer, AnswerSpec, BoxedAnswer

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_POWERS",
    "MAX_POWER_BITS",
    "MathEquivalent",
    "math_key",
    "parse_math",
]

MAX_EXPRESSION_CHARS = 200
MAX_DEPTH = 24
MAX_POWER_BITS = 40_000
MAX_NUMBER_DIGITS = 40
MAX_POWERS = 2
SIGNIFICANT_DIGITS = 15
SYMBOLIC_POINTS = 3

_LATEX_WORDS = {
    "\\frac": "frac",
    "\\sqrt": "sqrt",
    "\\pi": "pi",
    "\\cdot": "*",
    "\\times": "*",
    "\\div": "/",
}
_FUNCTIONS = frozenset({"sqrt", "frac"})
_CONSTANTS = frozenset({"pi"})


Expr = Any
"""A sympy expression (sympy ships no type information)."""


def _sympy() -> Any:
    """sympy, imported on first use (it takes a while to import)."""
    import sympy  # type: ignore[import-untyped,unused-ignore]

    return sympy


class _Unparsable(Exception):
    """The expression is outside the supported, bounded grammar."""


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char.isdigit() or (char == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            tokens.append(text[i:j])
            i = j
        elif char == "\\":
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            word = text[i:j]
            if word not in _LATEX_WORDS:
                raise _Unparsable(word)
            tokens.append(_LATEX_WORDS[word])
            i = j
        elif char.isascii() and char.isalpha():
            j = i
            while j < n and text[j].isascii() and text[j].isalpha():
                j += 1
            word = text[i:j]
            if word in _FUNCTIONS or word in _CONSTANTS or len(word) == 1:
                tokens.append(word)
            else:
                raise _Unparsable(word)
            i = j
        elif char in "+-*/^(){}":
            tokens.append("**" if char == "^" else char)
            i += 1
        else:
            raise _Unparsable(char)
    return tokens


class _Parser:
    """Recursive descent over the tokens; builds sympy objects with bounded cost."""

    def __init__(self, tokens: list[str]) -> None:
        self._sympy = _sympy()
        self._tokens = tokens
        self._at = 0
        self._depth = 0

    def parse(self) -> Expr:
        expr = self._sum()
        if self._at != len(self._tokens):
            raise _Unparsable(self._tokens[self._at])
        return expr

    def _peek(self) -> str | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            raise _Unparsable(f"expected {expected!r}, got {token!r}")
        self._at += 1
        return token

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Unparsable("nested too deep")

    def _sum(self) -> Expr:
        self._enter()
        expr = self._product()
        while self._peek() in ("+", "-"):
            sign = self._take()
            term = self._product()
            expr = expr + term if sign == "+" else expr - term
        self._depth -= 1
        return expr

    def _product(self) -> Expr:
        expr = self._unary()
        while True:
            token = self._peek()
            if token == "*":
                self._take()
                expr = expr * self._unary()
            elif token == "/":
                self._take()
                divisor = self._unary()
                if divisor == 0:
                    raise _Unparsable("division by zero")
                expr = expr / divisor
            elif token is not None and (token[0].isalnum() or token in ("(", "{")):
                expr = expr * self._unary()  # implicit product: 2x, 2\pi, (a)(b)
            else:
                return expr

    def _unary(self) -> Expr:
        if self._peek() in ("+", "-"):
            self._enter()
            sign = self._take()
            operand = self._unary()
            self._depth -= 1
            return -operand if sign == "-" else operand
        return self._power()

    def _power(self) -> Expr:
        base = self._atom()
        if self._peek() != "**":
            return base
        self._take()
        self._enter()
        exponent = self._unary()
        self._depth -= 1
        sympy = self._sympy
        if base.is_Rational and exponent.is_Rational:
            base_bits = max(abs(base.p).bit_length(), abs(base.q).bit_length())
            if abs(exponent.p) > 10_000 or base_bits * abs(exponent.p) > MAX_POWER_BITS:
                raise _Unparsable("power too large")
        elif not (exponent.is_Rational and abs(exponent.p) <= 100):
            raise _Unparsable("only small rational exponents are supported")
        return sympy.Pow(base, exponent)

    def _group(self) -> Expr:
        closing = {"(": ")", "{": "}"}
        opening = self._take()
        if opening not in closing:
            raise _Unparsable(opening)
        expr = self._sum()
        self._take(closing[opening])
        return expr

    def _atom(self) -> Expr:
        sympy = self._sympy
        token = self._peek()
        if token is None:
            raise _Unparsable("unexpected end")
        if token in ("(", "{"):
            return self._group()
        self._take()
        if token[0].isdigit() or token[0] == ".":
            if token.count(".") > 1 or len(token) > MAX_NUMBER_DIGITS:
                raise _Unparsable(token)
            value = Fraction(token)
            return sympy.Rational(value.numerator, value.denominator)
        if token == "pi":
            return sympy.pi
        if token == "sqrt":
            radicand = self._group()
            if radicand.is_Rational and radicand.p.bit_length() > MAX_POWER_BITS:
                raise _Unparsable("radicand too large")
            return sympy.sqrt(radicand)
        if token == "frac":
            numerator = self._group()
            denominator = self._group()
            if denominator == 0:
                raise _Unparsable("division by zero")
            return numerator / denominator
        if token.isalpha():
            return sympy.Symbol(token)
        raise _Unparsable(token)


def parse_math(text: str) -> Expr | None:
    """Parse a small arithmetic / LaTeX expression, or ``None`` if unsupported.

    Supports numbers, single-letter symbols, ``pi``, ``+ - * / ^``, implicit
    products, parentheses and braces, ``\\frac{a}{b}`` and ``\\sqrt{x}``.
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tokens = _tokenize(text)
        if not tokens or tokens.count("**") > MAX_POWERS:
            return None
        return _Parser(tokens).parse()
    except _Unparsable:
        return None


def _value_key(value: Expr) -> str:
    sympy = _sympy()
    if value.is_Rational:
        return f"{value.p}/{value.q}"
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return "undefined"
    return str(sympy.sstr(sympy.N(value, SIGNIFICANT_DIGITS)))


def _symbol_value(symbol_rank: int, point: int) -> Expr:
    """The fixed (seeded by formula, no RNG) rational given to a symbol at a point."""
    sympy = _sympy()
    return sympy.Rational(7 + 4 * symbol_rank + point, 11 + 3 * point + symbol_rank)


def math_key(expr: Expr) -> str:
    """A canonical key for a parsed expression.

    Exact ``p/q`` for rationals; otherwise the value to ``SIGNIFICANT_DIGITS``
    digits. Expressions with symbols are keyed by their values at
    ``SYMBOLIC_POINTS`` fixed rational points (identity testing by evaluation),
    which never expands a power, so the cost stays bounded.
    """
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    if not symbols:
        return f"math:{_value_key(expr)}"
    names = ",".join(s.name for s in symbols)
    values = [
        _value_key(expr.subs({s: _symbol_value(rank, point) for rank, s in enumerate(symbols)}))
        for point in range(SYMBOLIC_POINTS)
    ]
    return f"math:{names}@{'|'.join(values)}"


@dataclass(frozen=True)
class MathEquivalent:
    """Answers of ``inner`` keyed by their value, so equal quantities vote together.

    ``1/2``, ``0.5`` and ``\\frac{1}{2}`` share a key; so do ``2\\sqrt{2}`` and
    ``\\sqrt{8}``, and ``(x+1)^2`` and ``x^2+2x+1``. Rationals compare exactly;
    irrational values to ``SIGNIFICANT_DIGITS`` digits; expressions with symbols
    by their values at fixed points. Not a decision procedure, but bounded.
    """

    inner: AnswerSpec = field(default_factory=BoxedAnswer)
    name: str = "math_equivalent"

    @property
    def from_partial(self) -> bool:
        return self.inner.from_partial

    def extract(self, text: str) -> Answer | None:
        found = self.inner.extract(text)
        if found is None:
            return None
        expr = parse_math(found.key)
        if expr is None:
            return found
        try:
            key = math_key(expr)
        except (ValueError, TypeError, ArithmeticError, RecursionError):
            return found
        if len(key) > MAX_KEY_CHARS:
            key = "math:sha256:" + hashlib.sha256(key.encode()).hexdigest()
        return Answer(key=key, text=found.text)
