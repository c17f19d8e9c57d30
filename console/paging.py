"""Pagination for every list the console shows: calls, search results, dead letters (issue #23).

A list is read bounded (console/data.py's MAX_CALLS, workers/operate/dlq.py's select with a limit), filtered, then cut
into pages of `PER_PAGE` here: `paged(items, number)` and, for the template, `links(request)`, which keeps
every other query parameter (the filters) and changes only `page`. The page number is read like any query
parameter (console/web.py's `Form`): a bad one is a form error, one past the end shows the last page.
A 460-call list was one 21,000 px page; at 50 rows a page is about 2,300 px.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from litestar import Request

PER_PAGE = 50
T = TypeVar("T")


@dataclass(frozen=True)
class Paged(Generic[T]):
    """One page of a list: its items, its number (from 1), and the whole list's size."""

    items: list[T]
    number: int
    per: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per))

    @property
    def first_index(self) -> int:
        """The 1-based position of the page's first item in the list (0 for an empty list)."""
        return (self.number - 1) * self.per + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.per + len(self.items)


def paged(items: Sequence[T], number: int, per: int = PER_PAGE) -> Paged[T]:
    """Page `number` of `items` (clamped to the pages there are)."""
    pages = max(1, -(-len(items) // per))
    number = max(1, min(number, pages))
    start = (number - 1) * per
    return Paged(items=list(items[start:start + per]), number=number, per=per, total=len(items))


def links(request: Request[Any, Any, Any]) -> Callable[[int], str]:
    """page number -> this page's URL with every other query parameter kept."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]

    def link(number: int) -> str:
        return f"{request.url.path}?{urlencode([*kept, ('page', str(number))])}"

    return link
