"""Item and user text from the feature tables of `Interactions`, by a template whose missing fields are skipped.

A template is a list of segments, e.g. ["{title}", " ({year})", ". Genres: {genres}"]; a segment is printed only
when every field it names is present (not null, not empty), so a missing year never prints "(None)". A plain
string is a single segment. Lists are joined with ", "; `values` maps codes to words (gender M → male)."""

from __future__ import annotations

import html
import logging
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from string import Formatter
from typing import Any

import polars as pl

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError

log = logging.getLogger(__name__)

Template = str | Sequence[str]

ITEM_TEMPLATE = ("{title}", " ({year})", ". Genres: {genres}")  # "Toy Story (1995). Genres: Animation, Comedy"
TEXT_TEMPLATE = ("{text}",)  # tables with a ready-made `text` column (the synthetic source)
PRODUCT_TEMPLATE = ("{title}", ". Brand: {brand}", ". Categories: {categories}")  # Amazon metadata
TAGGED_TEMPLATE = ("{title}", ". Tags: {tags}")  # Last.fm artists: "Madonna. Tags: pop, dance, 80s"
BOOK_TEMPLATE = ("{title}", " by {author}", " ({year})", ". Publisher: {publisher}")  # Book-Crossing
USER_TEMPLATE = ("{age}-year-old", " {gender}", " {occupation}")  # "24-year-old male technician"
# an HTML/XML tag or comment: "<" then a letter or "/" ("2 < 3" is no tag); bounded, so a stray "<" swallows nothing
_MARKUP = re.compile(r"</?[A-Za-z][^<>]{0,2000}>|<!--.{0,2000}?-->", re.DOTALL)
VALUES: dict[str, dict[str, str]] = {"gender": {"M": "male", "F": "female"}}


def item_texts(
    data: Interactions, template: Template | None = None, key: str = "model.recommender.item_template"
) -> list[str]:
    """One text per item index, by `template` or the default for the table's columns (`default_item_template`)."""
    if template is None:
        template = default_item_template(data.items.columns if data.items is not None else [])
    return render(data.items, template, key, "item")


def default_item_template(columns: Sequence[str]) -> Template:
    """`{text}` when the table has it; product fields (Amazon); artist tags (Last.fm); book fields (Book-Crossing);
    else title (year), genres."""
    if "text" in columns:
        return TEXT_TEMPLATE
    if "categories" in columns or "brand" in columns:
        return PRODUCT_TEMPLATE
    if "tags" in columns:
        return TAGGED_TEMPLATE
    if "author" in columns:
        return BOOK_TEMPLATE
    return ITEM_TEMPLATE


def user_texts(
    data: Interactions, template: Template | None = None, key: str = "model.recommender.user_template"
) -> list[str]:
    """One text per user index ("24-year-old male technician" by default)."""
    return render(data.users, USER_TEMPLATE if template is None else template, key, "user")


def render(
    table: pl.DataFrame | None,
    template: Template,
    key: str,
    what: str = "item",
    values: Mapping[str, Mapping[str, str]] = VALUES,
) -> list[str]:
    """Render every row of `table` with `template`; empty text for every row is a ConfigError naming `key`."""
    segments = _segments(template, key)
    if table is None:
        raise ConfigError(f"{key}={_show(template)}: the data has no {what} feature table, so there is no {what} text")
    fields = {field for _, names in segments for field in names}
    absent = sorted(fields - set(table.columns))
    if absent:
        log.warning("%s: %s table has no column(s) %s; those segments are skipped", key, what, absent)
    present = [c for c in table.columns if c in fields]
    rows = table.select(present).to_dicts() if present else [{}] * table.height
    texts = [_render_row(row, segments, values) for row in rows]
    if not any(texts):
        columns = [c for c in table.columns if c != what]
        raise ConfigError(
            f"{key}={_show(template)}: yields empty text for every {what} (the {what} table has columns {columns})"
        )
    return texts


def _segments(template: Template, key: str) -> list[tuple[str, tuple[str, ...]]]:
    """(segment, field names) pairs; a template that names no field or is not text is a ConfigError."""
    parts = [template] if isinstance(template, str) else list(template)
    if not parts or not all(isinstance(p, str) for p in parts):
        raise ConfigError(f"{key}={_show(template)}: expected a format string or a list of them")
    out = []
    for part in parts:
        try:
            names = tuple(name for _, name, _, _ in Formatter().parse(part) if name is not None)
        except ValueError as error:
            raise ConfigError(f"{key}={_show(template)}: bad format string {part!r} ({error})") from error
        if any(not name or not name.isidentifier() for name in names):
            raise ConfigError(f"{key}={_show(template)}: every field must be a column name, e.g. {{title}}")
        out.append((part, names))
    return out


def _render_row(row: dict[str, Any], segments, values: Mapping[str, Mapping[str, str]]) -> str:
    """Concatenate the segments whose fields are all present; trim leftover separators at the start."""
    pieces = []
    for segment, names in segments:
        shown = {name: _value(row.get(name), values.get(name, {})) for name in names}
        if all(v is not None for v in shown.values()):
            pieces.append(segment.format(**shown))
    return "".join(pieces).strip().lstrip(".,;:").strip()


def _value(value: Any, names: Mapping[str, str]) -> Any:
    """A field's printable value, or None when missing (null, NaN, empty string or empty list)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, list | tuple):
        items = [clean_text(str(names.get(str(v), v))) for v in value if v is not None and clean_text(str(v))]
        return ", ".join(items) if items else None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        value = clean_text(value)
        return names.get(value, value) if value else None
    return value


def clean_text(text: str) -> str:
    """Text as an encoder should see it: HTML entities decoded (twice: feeds often double-escape), markup removed,
    control characters dropped, runs of whitespace collapsed to one space."""
    text = html.unescape(html.unescape(text))
    text = _MARKUP.sub(" ", text)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    return " ".join(text.split())


def _show(template: Any) -> str:
    """The template as the user wrote it (a list, not a tuple)."""
    return repr(list(template)) if isinstance(template, tuple) else repr(template)
