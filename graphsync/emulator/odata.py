"""OData query options as Graph applies them to directory collections: $select, $top, $filter, $skiptoken."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import GraphError, bad_request

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class CollectionQuery:
    """The query options of a collection request that a next link must carry over."""

    select: tuple[str, ...] | None
    top: int | None
    filter: str | None
    count: bool
    search: str | None = None

    @property
    def page_size(self) -> int:
        return self.top or DEFAULT_PAGE_SIZE


def parse_select(raw: str | None, properties: Sequence[str], entity_type: str) -> tuple[str, ...] | None:
    """Return the selected property names in their canonical spelling, or None without $select.

    Graph matches property names case-insensitively.
    """
    if raw is None or not raw.strip():
        return None
    canonical = {name.lower(): name for name in properties}
    selected: list[str] = []
    for item in raw.split(","):
        name = item.strip()
        if not name:
            continue
        if name.lower() not in canonical:
            raise GraphError(
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: Could not find a property named '{name}' on type '{entity_type}'.",
            )
        if canonical[name.lower()] not in selected:
            selected.append(canonical[name.lower()])
    return tuple(selected)


def parse_top(raw: str | None, max_size: int = MAX_PAGE_SIZE) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 1 <= value <= max_size:
        raise bad_request(
            f"Invalid page size specified: '{raw}'. Must be between 1 and {max_size} inclusive.",
            code="Request_UnsupportedQuery",
        )
    return value


def project(record: Mapping[str, Any], properties: Sequence[str], collection_properties: frozenset[str]) -> dict[str, Any]:
    """Return only `properties` of `record`; absent ones are [] for collections and null otherwise."""
    projected: dict[str, Any] = {}
    for name in properties:
        if name in record:
            projected[name] = record[name]
        else:
            projected[name] = [] if name in collection_properties else None
    return projected


def encode_skiptoken(query: CollectionQuery, cursor: str, page: int) -> str:
    """Return an opaque $skiptoken with the last id served, the number of the page it leads to and the query options."""
    payload = {
        "after": cursor,
        "page": page,
        "select": query.select,
        "top": query.top,
        "filter": query.filter,
        "count": query.count,
        "search": query.search,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_skiptoken(token: str) -> tuple[CollectionQuery, str, int]:
    """Return the query, cursor and page number from a $skiptoken, or raise Graph's expired page token error."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        select = payload["select"]
        query = CollectionQuery(
            select=tuple(select) if select is not None else None,
            top=payload["top"],
            filter=payload["filter"],
            count=bool(payload["count"]),
            search=payload.get("search"),
        )
        cursor = payload["after"]
        page = int(payload.get("page", 2))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise GraphError(
            400,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your request.",
        ) from None
    if not isinstance(cursor, str):
        raise GraphError(
            400,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your request.",
        )
    return query, cursor, page


# $filter support. Graph's directory filters are a small subset of OData; the
# emulator accepts the forms below, joined with "and":
#   assignedLicenses/any(x:x/skuId eq {guid})
#   assignedLicenses/$count eq 0 | ne 0          (advanced query)
#   {property} eq 'text' | true | false | null
#   startswith({property},'text')
_ANY_SKU = re.compile(r"^assignedLicenses/any\((\w+):\1/skuId\s+eq\s+([0-9a-fA-F-]{36})\)$", re.IGNORECASE)
_LICENSE_COUNT = re.compile(r"^assignedLicenses/\$count\s+(eq|ne)\s+0$", re.IGNORECASE)
_EQUALS = re.compile(r"^(\w+)\s+eq\s+('(?:[^']|'')*'|true|false|null)$", re.IGNORECASE)
_STARTS_WITH = re.compile(r"^startswith\((\w+)\s*,\s*'((?:[^']|'')*)'\)$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class CompiledFilter:
    """A $filter as a predicate over rendered records.

    `advanced` is True when Graph serves the filter only with ConsistencyLevel: eventual and $count=true.
    """

    predicate: Predicate
    advanced: bool


def compile_filter(expression: str, properties: Sequence[str], entity_name: str) -> CompiledFilter:
    canonical = {name.lower(): name for name in properties}
    predicates: list[Predicate] = []
    advanced = False
    for clause in _AND.split(expression.strip()):
        clause = clause.strip()
        if match := _ANY_SKU.match(clause):
            sku_id = match.group(2).lower()
            predicates.append(
                lambda record, sku_id=sku_id: any(item["skuId"].lower() == sku_id for item in record.get("assignedLicenses", []))
            )
        elif match := _LICENSE_COUNT.match(clause):
            advanced = True
            wants_none = match.group(1).lower() == "eq"
            predicates.append(lambda record, wants_none=wants_none: (len(record.get("assignedLicenses", [])) == 0) == wants_none)
        elif (match := _EQUALS.match(clause)) and match.group(1).lower() in canonical:
            name = canonical[match.group(1).lower()]
            expected = _literal(match.group(2))
            predicates.append(lambda record, name=name, expected=expected: _equals(record.get(name), expected))
        elif (match := _STARTS_WITH.match(clause)) and match.group(1).lower() in canonical:
            name = canonical[match.group(1).lower()]
            prefix = match.group(2).replace("''", "'").lower()
            predicates.append(
                lambda record, name=name, prefix=prefix: isinstance(record.get(name), str) and record[name].lower().startswith(prefix)
            )
        else:
            # NOTE: Graph supports more filter forms than the emulator; this message is the emulator's.
            raise bad_request(
                f"Unsupported or invalid query filter clause specified for resource '{entity_name}': {clause}",
                code="Request_UnsupportedQuery",
            )
    return CompiledFilter(predicate=lambda record: all(predicate(record) for predicate in predicates), advanced=advanced)


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered == "null":
        return None
    return text[1:-1].replace("''", "'")


def _equals(value: Any, expected: Any) -> bool:
    # Graph compares directory strings case-insensitively.
    if isinstance(value, str) and isinstance(expected, str):
        return value.lower() == expected.lower()
    return value == expected


# $search support for directory objects: one or more "property:term" clauses, each in
# double quotes, joined with AND or OR (evaluated left to right).
_SEARCH_CLAUSE = re.compile(r'^"(\w+):([^"]*)"$')
_SEARCH_SPLIT = re.compile(r"\s+(AND|OR)\s+")
_WORD_SPLIT = re.compile(r"[^0-9a-z]+")


def compile_search(expression: str, properties: Sequence[str]) -> Predicate:
    """Return a predicate for a $search expression, or raise 400 for one the emulator cannot parse.

    A term matches when each of its words is a prefix of a word in the property value,
    which is how Graph tokenizes directory properties for $search.
    NOTE: Graph also splits camelCase words and matches some properties differently; this
    tokenizer splits on anything but letters and digits only.
    """
    canonical = {name.lower(): name for name in properties}
    parts = _SEARCH_SPLIT.split(expression.strip())
    clauses: list[Predicate] = []
    operators: list[str] = []
    for index, part in enumerate(parts):
        if index % 2 == 1:
            operators.append(part)
            continue
        match = _SEARCH_CLAUSE.match(part.strip())
        if match is None or match.group(1).lower() not in canonical:
            raise bad_request(f"Invalid $search clause {part!r}: expected \"property:term\" with a searchable property.", code="Request_UnsupportedQuery")
        name = canonical[match.group(1).lower()]
        words = [word for word in _WORD_SPLIT.split(match.group(2).lower()) if word]
        clauses.append(lambda record, name=name, words=words: _search_matches(record.get(name), words))

    def predicate(record: dict[str, Any]) -> bool:
        result = clauses[0](record)
        for operator, clause in zip(operators, clauses[1:]):
            result = (result and clause(record)) if operator == "AND" else (result or clause(record))
        return result

    return predicate


def _search_matches(value: Any, words: list[str]) -> bool:
    if not isinstance(value, str):
        return False
    tokens = [token for token in _WORD_SPLIT.split(value.lower()) if token]
    return all(any(token.startswith(word) for token in tokens) for word in words)
