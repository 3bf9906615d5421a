"""Lucene query strings for Neo4j's fulltext indexes, built so user text can never be syntax.

User text is reduced to lower-case word tokens (no operators, no special
characters survive); the tenant is a required phrase clause on the indexed
`space` field, so the index itself returns only that tenant's candidates.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Lucene's English stop set (EnglishAnalyzer): the index drops these, so a query of only these
# would analyse to an empty clause, which matches everything in the space.
ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)
_SPECIAL = re.compile(r'([+\-&|!(){}\[\]^"~*?:\\/])')
MAX_TERMS = 64


def tokens(text: str) -> list[str]:
    return [token.lower() for token in _TOKEN.findall(text)][:MAX_TERMS]


def escape(text: str) -> str:
    return _SPECIAL.sub(r"\\\1", text)


def phrase(text: str) -> str:
    """An exact phrase of the text's tokens, or '' when it has none that the index keeps."""
    words = tokens(text)
    return f'"{" ".join(words)}"' if any(w not in ENGLISH_STOPWORDS for w in words) else ""


def any_terms(text: str) -> str:
    """Match any of the text's words (OR); '' when it has none that the index keeps."""
    return " ".join(token for token in tokens(text) if token not in ENGLISH_STOPWORDS)


def in_space(space: str, clause: str) -> str:
    """Require the tenant, then the clause."""
    return f'+space:"{escape(space)}" +({clause})'


def in_space_fields(space: str, clause: str, fields: tuple[str, ...]) -> str:
    """Require the tenant, then the clause in any of `fields` (names of the index's properties)."""
    return f'+space:"{escape(space)}" +({" ".join(f"{field}:({clause})" for field in fields)})'
