"""Last.fm HetRec 2011 (music), from the folder the user downloads (hetrec2011-lastfm-2k): `user_artists.dat` play
counts as implicit weights, `artists.dat` names, and `user_taggedartists.dat` + `tags.dat` as each artist's tags.

`user_artists.dat` has no timestamps, so the interactions carry none (`RawData.timestamps` is False) and only
splits that do not read time are allowed (split=random_ratio); the datamodule refuses the others by name."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recarena.data.sources.columns import RawData, conform_ids, id_series, read_delimited, require_columns, to_float
from recarena.errors import DataError

FILES = {
    "user_artists": "user_artists.dat",
    "artists": "artists.dat",
    "tags": "tags.dat",
    "tagged": "user_taggedartists.dat",
}
TOP_TAGS = 10  # tags kept per artist, the most used first


def load_lastfm(path: str | Path, top_tags: int = TOP_TAGS) -> RawData:
    """Interactions user → artist with the play count as `rating` (no timestamps) and an item table with the artist
    name as `title` and its `top_tags` most used tags as `tags` (when the tag files are there)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"data.path={path}: no such folder (the unpacked hetrec2011-lastfm-2k folder with {FILES['user_artists']})"
        )
    plays_path = folder / FILES["user_artists"]
    if not plays_path.is_file():
        found = sorted(p.name for p in folder.iterdir())[:20]
        raise DataError(f"data.path={folder}: no {FILES['user_artists']} in it (found {found})")
    plays = read_delimited(plays_path, str(plays_path), "\t")
    require_columns(plays, {"user": "userID", "artist": "artistID", "play count": "weight"}, str(plays_path))
    weight = to_float(plays, "weight", str(plays_path))
    inter = pl.DataFrame(
        {
            "user": id_series(plays["userID"]),
            "item": id_series(plays["artistID"]),
            "rating": weight,
            "timestamp": pl.Series([None] * plays.height, dtype=pl.Float64),
        }
    )
    items = _artists(folder, inter["item"].dtype, int(top_tags))
    return RawData(folder.name, inter, items, None, str(plays_path), timestamps=False)


def _artists(folder: Path, ids: pl.DataType, top_tags: int) -> pl.DataFrame | None:
    """item, title (artist name) and tags (most used first), from artists.dat and the tag files when present."""
    artists_path = folder / FILES["artists"]
    if not artists_path.is_file():
        return None
    artists = read_delimited(artists_path, str(artists_path), "\t")
    require_columns(artists, {"artist id": "id", "artist name": "name"}, str(artists_path))
    table = pl.DataFrame({"item": id_series(artists["id"]), "title": artists["name"].str.strip_chars()})
    tags_path, tagged_path = folder / FILES["tags"], folder / FILES["tagged"]
    if tags_path.is_file() and tagged_path.is_file():
        tags = read_delimited(tags_path, str(tags_path), "\t")
        require_columns(tags, {"tag id": "tagID", "tag": "tagValue"}, str(tags_path))
        tagged = read_delimited(tagged_path, str(tagged_path), "\t")
        require_columns(tagged, {"artist id": "artistID", "tag id": "tagID"}, str(tagged_path))
        names = pl.DataFrame({"tag": id_series(tags["tagID"]), "name": tags["tagValue"].str.strip_chars()})
        uses = pl.DataFrame({"item": id_series(tagged["artistID"]), "tag": id_series(tagged["tagID"])})
        ranked = (
            uses.group_by("item", "tag")
            .len()
            .join(names, on="tag", how="inner")
            .sort(["item", "len", "tag"], descending=[False, True, False])
            .group_by("item", maintain_order=True)
            .agg(tags=pl.col("name").head(top_tags))
        )
        table = table.join(ranked, on="item", how="left")
    return table.with_columns(item=conform_ids(table["item"], ids))
