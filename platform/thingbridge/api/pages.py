"""Cursor pages of a subject's things and clients, as the event feed pages its events:
``?limit=`` and ``?after=<cursor>``, answered with the items, the ``cursor`` to pass next and
``has_more``. A request with neither gets the contract's plain array of every item.

The order is (created_at, id), so the cursor carries both (``<microseconds since 1970>.<id>``):
a page boundary survives the deletion of the item it names, and items created meanwhile come on
a later page. Every string of the documented pattern is a cursor (it names a place in the
order, whether or not an item was there), so only one of another shape is a 400.
"""

from __future__ import annotations

import datetime

from marshmallow import Schema, fields, validate
from peewee import Tuple

from thingbridge.schemas.common import FullMatch, QueryInteger

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
# 17 digits of microseconds reach the year 5138: every cursor of this shape is a valid time.
CURSOR = r"^[0-9]{1,17}\.[A-Za-z0-9-]{1,36}$"
_EPOCH = datetime.datetime(1970, 1, 1)


class PageQuery(Schema):
    limit = QueryInteger(validate=validate.Range(min=1, max=MAX_LIMIT), metadata={
        "description": f"Items per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}); with "
                       "limit or after the answer is a page object, without both the plain "
                       "array of every item"})
    after = fields.String(validate=FullMatch(CURSOR, error="not a cursor this list returned"),
                          metadata={"description": "The `cursor` of the previous page; omit for "
                                                   "the first"})


def page_schema(name: str, item: type[Schema]) -> type[Schema]:
    """The page object listing ``item`` under ``name``, as the event feed's."""
    return Schema.from_dict({
        name: fields.List(fields.Nested(item), required=True, attribute="items"),
        "cursor": fields.String(allow_none=True, required=True, metadata={
            "description": "Pass as ?after= for the next page (unchanged when the page is "
                           "empty; null before the first item)"}),
        "has_more": fields.Boolean(required=True)}, name=f"{item.__name__}Page")


def wants_page(args: dict) -> bool:
    return "limit" in args or "after" in args


def page_of(query, model, args: dict) -> dict:
    """One page of ``query`` (ordered by ``model``'s created_at and id), read with limit + 1
    rows to tell whether more follow."""
    limit, after = page_bounds(args)
    if after:
        query = query.where(Tuple(model.created_at, model.id) > Tuple(*after))
    return page_from(list(query.limit(limit + 1)), args)


def page_bounds(args: dict) -> tuple[int, tuple[datetime.datetime, str] | None]:
    """The page's size and the (created_at, id) it starts after (None for the first page)."""
    return args.get("limit", DEFAULT_LIMIT), _decode(args["after"]) if args.get("after") else None


def page_from(rows: list, args: dict) -> dict:
    """The page of ``rows`` read with ``page_bounds`` (limit + 1 of them at most)."""
    limit = args.get("limit", DEFAULT_LIMIT)
    items = rows[:limit]
    return {"items": items, "cursor": _encode(items[-1]) if items else args.get("after"),
            "has_more": len(rows) > limit}


def _encode(row) -> str:
    return f"{(row.created_at - _EPOCH) // datetime.timedelta(microseconds=1)}.{row.id}"


def _decode(cursor: str) -> tuple[datetime.datetime, str]:
    """A cursor the query argument's pattern let through."""
    micros, last_id = cursor.split(".", 1)
    return _EPOCH + datetime.timedelta(microseconds=int(micros)), last_id
