"""The marks gmc-rl writes into its PNG figures, and how a writer tells its own figure from anything else.

Each figure carries a ``Software`` text (:data:`PNG_SOFTWARE`) and a kind (:data:`PNG_KINDS`: a results figure, a
latents PCA plot), so a writer replaces only a figure of its own kind, never a user's picture nor another command's
figure. Kept apart from :mod:`gmc_rl.io`, which re-exports every name.
"""

from __future__ import annotations

import os
from pathlib import Path

PNG_SOFTWARE = "gmc-rl"
"""The PNG ``Software`` text that marks a plot gmc-rl wrote (:func:`png_kind`)."""

PNG_KIND_KEY = "gmc-rl kind"
"""The PNG text keyword that says which of gmc-rl's figures a PNG is: one of :data:`PNG_KINDS`."""

RESULTS_FIGURE = "results-figure"
LATENTS_PCA = "latents-pca"
PNG_KINDS = {
    RESULTS_FIGURE: "a results figure (the results.png that gmc-rl evaluate and report write beside results.json)",
    LATENTS_PCA: "a latents PCA plot (gmc-rl align --plot, or a checkpoint's latents_pca.png)",
}
"""Every kind of PNG gmc-rl writes, with what it is in words. A writer replaces only a PNG of its own kind
(:func:`check_own_png`), so that one command's figure never overwrites another's."""

UNMARKED = "unmarked"
"""What :func:`png_kind` returns for a PNG gmc-rl wrote before its PNGs said which figure they are."""


def png_metadata(kind: str) -> dict[str, str]:
    """The PNG text chunks (matplotlib's ``savefig(metadata=...)``) of a gmc-rl figure of ``kind``."""
    if kind not in PNG_KINDS:
        raise ValueError(f"unknown PNG kind {kind!r}; gmc-rl writes {sorted(PNG_KINDS)}")
    return {"Software": PNG_SOFTWARE, PNG_KIND_KEY: kind}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_BYTES = 1 << 16
"""How far into a PNG its text chunks are looked for: matplotlib writes them right after the header, before the
image data; a chunk that would take the reading past this point ends the search."""


def _png_texts(path: Path) -> dict[str, str] | None:
    """The ``tEXt`` chunks before the image data of the PNG at ``path`` (keyword -> text), or None if it is not a
    PNG. Reads at most :data:`_PNG_TEXT_BYTES`, chunk by chunk."""
    texts: dict[str, str] = {}
    with path.open("rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return None
        read = 8
        while read < _PNG_TEXT_BYTES:
            head = handle.read(8)
            if len(head) < 8:
                break
            length, chunk = int.from_bytes(head[:4], "big"), head[4:]
            if chunk == b"IDAT" or chunk == b"IEND" or read + 12 + length > _PNG_TEXT_BYTES:
                break
            body = handle.read(length)
            handle.read(4)  # the CRC
            read += 12 + length
            if chunk == b"tEXt" and b"\x00" in body:
                keyword, _, text = body.partition(b"\x00")
                texts[keyword.decode("latin-1")] = text.decode("latin-1")
    return texts


def png_kind(path: str | os.PathLike) -> str | None:
    """Which of gmc-rl's figures the regular file at ``path`` is: a key of :data:`PNG_KINDS`, :data:`UNMARKED` for
    a PNG gmc-rl wrote before its PNGs said what they show (or a kind this gmc-rl does not know), or None for
    anything else (not a PNG, not gmc-rl's, a symbolic link, not a regular file)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    texts = _png_texts(path)
    if texts is None or texts.get("Software") != PNG_SOFTWARE:
        return None
    kind = texts.get(PNG_KIND_KEY)
    return kind if kind in PNG_KINDS else UNMARKED


def is_own_png(path: str | os.PathLike, kind: str) -> bool:
    """True if ``path`` is a regular file holding a PNG that gmc-rl wrote as a figure of ``kind``."""
    return png_kind(path) == kind


def png_not_own(path: str | os.PathLike, kind: str) -> str | None:
    """Why a writer of ``kind`` figures may not replace the file at ``path`` (None: it may, the file being a PNG
    gmc-rl wrote as a figure of that kind): what the file is instead, in words."""
    found = png_kind(path)
    if found == kind:
        return None
    if found is None:
        return "is not a plot gmc-rl wrote"
    if found == UNMARKED:
        return ("is a PNG that gmc-rl wrote before its figures said what they show, so it may be another command's "
                "figure (an evaluation's results.png)")
    return f"is {PNG_KINDS[found]}, not {PNG_KINDS[kind].split(' (')[0]}"
