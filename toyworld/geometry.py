"""Drawing primitives for toyworld objects, in unit coordinates (the object fits [-1, 1]^2, y down).

Each primitive named in ``world.json`` maps through :data:`PRIMITIVES` to a function returning a
polyline (list of ``(x, y)`` points). ``fill`` / ``erase`` operations treat it as a closed polygon,
``stroke`` as an open line of a given width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Point = tuple[float, float]

#: Vertices used to approximate curves (circles, arcs, spirals).
CURVE_STEPS = 64


def rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    """Axis-aligned rectangle from its corners."""
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def poly(*points: Sequence[float]) -> list[Point]:
    """A polygon (or polyline) given by its vertices."""
    return [(float(p[0]), float(p[1])) for p in points]


def ellipse(cx: float, cy: float, rx: float, ry: float) -> list[Point]:
    """Ellipse with centre (cx, cy) and radii rx, ry."""
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t))
            for t in (2 * math.pi * k / CURVE_STEPS for k in range(CURVE_STEPS))]


def regular(n: int, r: float, phase_deg: float = 0.0) -> list[Point]:
    """Regular n-gon of circumradius r; the first vertex sits at angle ``phase_deg`` (-90 = top)."""
    return [(r * math.cos(a), r * math.sin(a))
            for a in (math.radians(phase_deg) + 2 * math.pi * k / n for k in range(int(n)))]


def star(n: int, r_out: float, r_in: float, phase_deg: float = -90.0) -> list[Point]:
    """n-pointed star alternating between radii r_out and r_in."""
    pts = []
    for k in range(2 * int(n)):
        a = math.radians(phase_deg) + math.pi * k / n
        r = r_out if k % 2 == 0 else r_in
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def pie(cx: float, cy: float, r: float, start_deg: float, end_deg: float) -> list[Point]:
    """Circular sector from ``start_deg`` to ``end_deg`` (a semicircle for 180 degrees)."""
    steps = max(2, int(CURVE_STEPS * abs(end_deg - start_deg) / 360))
    arc = [(cx + r * math.cos(math.radians(start_deg + (end_deg - start_deg) * k / steps)),
            cy + r * math.sin(math.radians(start_deg + (end_deg - start_deg) * k / steps)))
           for k in range(steps + 1)]
    return [(cx, cy), *arc]


def heart(r: float = 1.0) -> list[Point]:
    """The classic parametric heart curve, scaled to fit radius r."""
    pts = []
    for k in range(CURVE_STEPS):
        t = 2 * math.pi * k / CURVE_STEPS
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((r * x / 17, r * (y + 2.5) / 17))
    return pts


def gear(teeth: int, r_out: float, r_in: float) -> list[Point]:
    """Cog wheel: ``teeth`` flat-topped teeth between radii r_in and r_out."""
    pts = []
    step = 2 * math.pi / teeth
    for k in range(int(teeth)):
        a = k * step
        for frac, r in ((0.0, r_in), (0.15, r_out), (0.5, r_out), (0.65, r_in)):
            pts.append((r * math.cos(a + frac * step), r * math.sin(a + frac * step)))
    return pts


def spiral(turns: float, r: float) -> list[Point]:
    """Archimedean spiral from the centre out to radius r (an open line)."""
    n = int(CURVE_STEPS * turns)
    angles = [2 * math.pi * turns * k / n for k in range(n + 1)]
    return [(r * (k / n) * math.cos(a), r * (k / n) * math.sin(a)) for k, a in enumerate(angles)]


def wave(cycles: float, amplitude: float) -> list[Point]:
    """Horizontal sine wave across [-1, 1] (an open line)."""
    n = int(CURVE_STEPS * cycles)
    return [(-1 + 2 * k / n, amplitude * math.sin(2 * math.pi * cycles * k / n)) for k in range(n + 1)]


PRIMITIVES: dict[str, Callable[..., list[Point]]] = {
    "rect": rect,
    "poly": poly,
    "ellipse": ellipse,
    "regular": regular,
    "star": star,
    "pie": pie,
    "heart": heart,
    "gear": gear,
    "spiral": spiral,
    "wave": wave,
}


def primitive_points(spec: dict[str, list]) -> list[Point]:
    """Points of a one-key primitive spec such as ``{"regular": [6, 1.0, 0]}``."""
    if len(spec) != 1:
        raise ValueError(f"toyworld: a primitive spec has exactly one key, got {sorted(spec)}")
    (name, args), = spec.items()
    return PRIMITIVES[name](*args)


def transform(points: Sequence[Point], scale: float, angle_deg: float, cx: float, cy: float) -> list[Point]:
    """Rotate by ``angle_deg``, scale, then translate to (cx, cy)."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return [(cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)) for x, y in points]
