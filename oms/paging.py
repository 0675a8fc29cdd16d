"""Pages of a long list without counting it: a page reads one row more than it shows, which
says whether another page follows. Counting every row matching a filter over millions of audit
events or orders cost more than reading the page itself (bench/scale_bench.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Deeper pages are refused as the last one shown: an offset of millions scans millions of rows.
MAX_PAGE = 10_000


class Page:
    """What the pages' templates use of Django's Page, less the count: number, has_next,
    has_previous, next_page_number, previous_page_number, iteration."""

    def __init__(self, object_list: list[Any], number: int, has_next: bool) -> None:
        self.object_list = object_list
        self.number = number
        self._has_next = has_next

    def __iter__(self) -> Iterator[Any]:
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    def has_next(self) -> bool:
        return self._has_next

    def has_previous(self) -> bool:
        return self.number > 1

    def has_other_pages(self) -> bool:
        return self.has_next() or self.has_previous()

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


def page_of(queryset, raw_number: Any, per_page: int) -> Page:
    """Page `raw_number` (1 for anything that is not a page number) of an ordered queryset."""
    try:
        number = int(str(raw_number))
    except ValueError:
        number = 1
    number = min(max(number, 1), MAX_PAGE)
    start = (number - 1) * per_page
    rows = list(queryset[start : start + per_page + 1])
    return Page(rows[:per_page], number, len(rows) > per_page)
