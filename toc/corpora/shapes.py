"""Geometric shapes drawn in several styles, for the instruments corpus' images (numpy only).

A shape is a signed distance (negative inside) on a supersampled grid; a style turns the distance
into ink: filled, outlined (thin or thick), a double outline, or filled with stripes or dots, each
either clean or wobbly (the coordinates bent by a smooth random field, like a hand-drawn line).
An image draws one shape in one style at a random size, angle, aspect, position and ink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross", "crescent", "arrow", "heart", "hexagon", "house")
FILLS = ("solid", "outline", "thick-outline", "double-outline", "stripes", "dots")
STYLES = tuple(f"{fill}-{line}" for fill in FILLS for line in ("clean", "wobbly"))
SUPERSAMPLE = 4
SIZE_RANGE = (0.65, 0.85)  # the shape's radius, as a fraction of half the side
ANGLE_RANGE = (-15.0, 15.0)  # degrees: small enough that no shape turns into another
ASPECT_RANGE = (0.9, 1.1)
OFFSET_RANGE = (-0.06, 0.06)  # of half the side, each axis
INK_RANGE = (0.7, 1.0)
WOBBLE = 0.05  # displacement amplitude of a wobbly style, in half-sides (~0.8 px at 32 px)


def _regular(n: int, radius: float = 1.0, phase: float = np.pi / 2) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _heart(n: int = 32) -> np.ndarray:
    """The classic parametric heart curve, as a polygon (an exact distance inside and out)."""
    t = 2 * np.pi * np.arange(n) / n
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, y + 2.5], axis=1) / 17.0


def _star() -> np.ndarray:
    outer, inner = _regular(5), _regular(5, 0.42, np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


# Polygons in unit coordinates (y up), radius about 1.
POLYGONS = {
    "square": np.array([[-0.75, -0.75], [0.75, -0.75], [0.75, 0.75], [-0.75, 0.75]]),
    "triangle": _regular(3, 1.0) + [0.0, -0.15],
    "star": _star(),
    "cross": np.array([[-0.3, -0.9], [0.3, -0.9], [0.3, -0.3], [0.9, -0.3], [0.9, 0.3], [0.3, 0.3],
                       [0.3, 0.9], [-0.3, 0.9], [-0.3, 0.3], [-0.9, 0.3], [-0.9, -0.3], [-0.3, -0.3]]),  # fmt: skip
    "arrow": np.array([[-0.9, -0.25], [0.2, -0.25], [0.2, -0.65], [0.95, 0.0], [0.2, 0.65], [0.2, 0.25], [-0.9, 0.25]]),
    "hexagon": _regular(6, 0.9, 0.0),
    "heart": _heart(),
    "house": np.array([[-0.7, -0.8], [0.7, -0.8], [0.7, 0.15], [0.0, 0.9], [-0.7, 0.15]]),
}


def _polygon_distance(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Signed distance of [P,2] points to a closed polygon (negative inside, even-odd rule)."""
    x, y = points[:, 0], points[:, 1]
    nearest = np.full(len(points), np.inf)
    inside = np.zeros(len(points), dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        ex, ey = x1 - x0, y1 - y0
        rx, ry = x - x0, y - y0
        t = np.clip((rx * ex + ry * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        np.minimum(nearest, (rx - t * ex) ** 2 + (ry - t * ey) ** 2, out=nearest)
        if ey != 0:  # a horizontal edge never crosses a horizontal ray
            inside ^= ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * ex / ey)
    distance = np.sqrt(nearest)
    return np.where(inside, -distance, distance)


def _circle(points: np.ndarray, centre=(0.0, 0.0), radius: float = 0.85) -> np.ndarray:
    return np.linalg.norm(points - np.asarray(centre), axis=1) - radius


def shape_distance(shape: str, points: np.ndarray) -> np.ndarray:
    """Signed distance of [P,2] unit-coordinate points to `shape`."""
    if shape == "circle":
        return _circle(points)
    if shape == "crescent":
        return np.maximum(_circle(points), -_circle(points, (0.38, 0.2), 0.68))
    return _polygon_distance(points, POLYGONS[shape])


@dataclass(frozen=True)
class Placement:
    """Where one image puts its shape: radius, angle, aspect, offset (unit coordinates), ink."""

    size: float
    angle: float
    aspect: float
    offset: tuple[float, float]
    ink: float
    wobble_phase: tuple[float, float, float, float]  # of the wobble field (wobbly styles only)
    texture_angle: float  # stripes' direction (radians)


def random_placement(rng: np.random.Generator) -> Placement:
    return Placement(
        size=rng.uniform(*SIZE_RANGE), angle=rng.uniform(*ANGLE_RANGE), aspect=rng.uniform(*ASPECT_RANGE),
        offset=(rng.uniform(*OFFSET_RANGE), rng.uniform(*OFFSET_RANGE)), ink=rng.uniform(*INK_RANGE),
        wobble_phase=tuple(rng.uniform(0.0, 2 * np.pi, size=4)), texture_angle=rng.uniform(0.0, np.pi),
    )  # fmt: skip


def draw_shape(shape: str, style: str, placement: Placement, side: int) -> np.ndarray:
    """[side,side] float64 in [0,1]: `shape` drawn in `style` at `placement` (y up, like a plot)."""
    fill, line = style.rsplit("-", 1)
    n = side * SUPERSAMPLE
    axis = (np.arange(n) + 0.5) / n * 2.0 - 1.0  # pixel centres in [-1, 1]
    x, y = np.meshgrid(axis, -axis)
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    if line == "wobbly":
        a, b, c, d = placement.wobble_phase
        points = points + WOBBLE * np.stack([np.sin(3.1 * points[:, 1] + a) + 0.5 * np.sin(5.3 * points[:, 0] + b),
                                             np.sin(2.7 * points[:, 0] + c) + 0.5 * np.sin(4.9 * points[:, 1] + d)], axis=1)  # fmt: skip
    # Into the shape's own frame: undo the offset, the rotation, the aspect and the size.
    theta = np.deg2rad(placement.angle)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    local = (points - np.asarray(placement.offset)) @ rotation.T
    local = local / np.array([placement.size * placement.aspect, placement.size / placement.aspect])
    scale = placement.size  # distances back in canvas units, roughly
    distance = shape_distance(shape, local) * scale
    pixel = 2.0 / side
    outline = np.abs(distance) < 0.6 * pixel
    if fill == "solid":
        ink = distance < 0
    elif fill == "outline":
        ink = outline
    elif fill == "thick-outline":
        ink = np.abs(distance) < 1.3 * pixel
    elif fill == "double-outline":
        ink = outline | (np.abs(distance + 3.0 * pixel) < 0.6 * pixel)
    else:
        along = points @ np.array([np.cos(placement.texture_angle), np.sin(placement.texture_angle)])
        if fill == "stripes":
            pattern = np.sin(2 * np.pi * along / (4.0 * pixel)) > 0
        else:  # dots
            across = points @ np.array([-np.sin(placement.texture_angle), np.cos(placement.texture_angle)])
            pattern = (np.cos(2 * np.pi * along / (3.5 * pixel)) * np.cos(2 * np.pi * across / (3.5 * pixel))) > 0.3
        ink = outline | ((distance < 0) & pattern)
    coverage = ink.reshape(side, SUPERSAMPLE, side, SUPERSAMPLE).mean(axis=(1, 3))
    return coverage * placement.ink
