"""Text drawn in the machine's TrueType fonts (Pillow + FreeType), for the written-word images.

The fonts are the DejaVu family's files, looked up by name in the usual font folders and, last,
in matplotlib's bundled fonts, so the same names give the same fonts wherever they are
installed. A corpus records which fonts it found: a machine with fewer of them builds another
corpus from the same seed, as another espeak-ng version would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toc.corpora.real_signals import MissingToolError

# The DejaVu files of Debian's fonts-dejavu-core and fonts-dejavu-extra, in a fixed order.
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSans-ExtraLight.ttf", "DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSansCondensed-Oblique.ttf", "DejaVuSansCondensed-BoldOblique.ttf", "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSerifCondensed.ttf", "DejaVuSerifCondensed-Bold.ttf", "DejaVuSerifCondensed-Italic.ttf",
    "DejaVuSerifCondensed-BoldItalic.ttf", "DejaVuMathTeXGyre.ttf",
)  # fmt: skip
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
SUPERSAMPLE = 4  # text is drawn at 4x the image side, then box-averaged down (anti-aliasing)


@dataclass(frozen=True)
class Font:
    name: str  # the file name without .ttf
    path: Path


def _matplotlib_fonts() -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def find_fonts(corpus: str, minimum: int) -> list[Font]:
    """The FONT_FILES found on this machine, in FONT_FILES' order; at least `minimum` of them."""
    folders = [Path(os.path.expanduser(f)) for f in FONT_FOLDERS]
    bundled = _matplotlib_fonts()
    if bundled is not None:
        folders.append(bundled)
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("DejaVu*.ttf")):
            found.setdefault(path.name, path)
    fonts = [Font(name.removesuffix(".ttf"), found[name]) for name in FONT_FILES if name in found]
    if len(fonts) < minimum:
        raise MissingToolError(
            f"{corpus} corpus needs at least {minimum} DejaVu fonts, found {len(fonts)} "
            "(Debian/Ubuntu: apt-get install fonts-dejavu-core fonts-dejavu-extra)"
        )
    return fonts


def pillow_versions(corpus: str) -> dict[str, str]:
    """Pillow's and FreeType's versions (the drawing can change with them), or MissingToolError."""
    try:
        import PIL
        from PIL import features
    except ImportError as exc:
        raise MissingToolError(f"{corpus} corpus needs Pillow, which is not installed (pip install pillow)") from exc
    freetype = features.version("freetype2")
    if freetype is None:
        raise MissingToolError(f"{corpus} corpus needs Pillow built with FreeType, which this Pillow lacks")
    return {"pillow_version": PIL.__version__, "freetype_version": freetype}


@dataclass(frozen=True)
class TextStyle:
    """How one image shows its text: the box it fills (fractions of the side), angle, offset, ink."""

    width: float  # the text's ink width / the image side
    height: float  # the text's ink height / the image side (text is scaled to fill its box)
    angle: float  # degrees, counter-clockwise
    offset: tuple[float, float]  # (x, y) in image pixels from the centre
    ink: float  # brightness of the strokes, 0..1


def draw_text(text: str, font: Font, style: TextStyle, side: int) -> np.ndarray:
    """[side,side] float64 in [0,1]: `text` in `font` scaled to the style's box, rotated, shifted.

    The text's ink is cropped and scaled to fill a box of the style's width and height, as
    handwritten-digit sets normalise each digit to its box: the fixed extractors, unlike a trained
    network, have no invariance to size, so the box is what the image varies in, not the font size.
    """
    from PIL import Image, ImageDraw, ImageFont

    canvas = side * SUPERSAMPLE
    face = ImageFont.truetype(str(font.path), 2 * canvas)
    left, top, right, bottom = face.getbbox(text)
    written = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(written).text((2 - left, 2 - top), text, font=face, fill=255)
    written = written.crop(written.getbbox())
    box = (max(1, round(style.width * canvas)), max(1, round(style.height * canvas)))
    written = written.resize(box, resample=Image.Resampling.LANCZOS)
    image = Image.new("L", (canvas, canvas), 0)
    centre = (canvas / 2 + style.offset[0] * SUPERSAMPLE, canvas / 2 + style.offset[1] * SUPERSAMPLE)
    image.paste(written, (round(centre[0] - box[0] / 2), round(centre[1] - box[1] / 2)))
    image = image.rotate(style.angle, resample=Image.Resampling.BICUBIC, center=centre)
    small = image.resize((side, side), resample=Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0 * style.ink


def has_glyphs(font: Font, text: str) -> bool:
    """Whether `font` draws every character of `text` (not its missing-glyph box).

    A character the font lacks is drawn as the font's .notdef glyph, the same drawing a private-use
    character gets, so each character's drawing is compared with that one.
    """
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(str(font.path), 64)

    def drawing(character: str) -> bytes:
        image = Image.new("L", (128, 128), 0)
        ImageDraw.Draw(image).text((16, 16), character, font=face, fill=255)
        return image.tobytes()

    missing = drawing("\ue000")
    return all(drawing(character) != missing for character in text)


def written_pool(texts: Sequence[str], fonts: Sequence[Font], per_text: int, eval_fraction: float,
                 style: Callable[[np.random.Generator], TextStyle], side: int, rng: np.random.Generator):
    """An ImagePool of `per_text` drawings of each text in each font (styles drawn by `style`), a
    seeded `eval_fraction` of the fonts (at least 2) evaluation-only; names are "FONT#ROW"."""
    from toc.corpora.real_signals import ImagePool

    n_eval = max(2, int(round(eval_fraction * len(fonts))))
    eval_fonts = {int(i) for i in rng.permutation(len(fonts))[:n_eval]}
    drawings, labels, names, evaluation = [], [], [], []
    for font_row, font in enumerate(fonts):
        for label, text in enumerate(texts):
            for _ in range(per_text):
                evaluation.append(font_row in eval_fonts)
                names.append(f"{font.name}#{len(drawings)}")
                drawings.append((text, font, style(rng)))
                labels.append(label)

    def draw(row: int) -> np.ndarray:
        text, font, text_style = drawings[row]
        return draw_text(text, font, text_style, side)

    return ImagePool.of_drawings(labels, evaluation, names, side, draw)
