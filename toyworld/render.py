"""Render a :class:`~oodbench.toyworld.scene.Scene` to an RGB PIL image (pure and deterministic).

Drawing happens at ``supersample`` times the output size and is box-filtered down, which gives
anti-aliased edges without depending on PIL's (version-specific) anti-aliasing.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from oodbench.toyworld.geometry import primitive_points, transform
from oodbench.toyworld.scene import Scene
from oodbench.toyworld.textures import render_texture
from oodbench.toyworld.world import World


def object_mask(world: World, scene: Scene) -> Image.Image:
    """The object's coverage as an ``L`` image at the supersampled size (255 = object)."""
    n = world.image_size * world.supersample
    mask = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(mask)
    scale = scene.scale * n
    cx, cy = (0.5 + scene.center[0]) * n, (0.5 + scene.center[1]) * n
    for op in world.objects[scene.object or ""]:
        kind = next(k for k in ("fill", "erase", "stroke") if k in op)
        pts = transform(primitive_points(op[kind]), scale, scene.rotation, cx, cy)
        if kind == "stroke":
            draw.line(pts, fill=255, width=max(1, round(float(op["width"]) * scale)), joint="curve")
        else:
            draw.polygon(pts, fill=255 if kind == "fill" else 0)
    return mask


def render_scene(world: World, scene: Scene) -> Image.Image:
    """The RGB image of ``scene`` at ``world.image_size`` pixels."""
    n = world.image_size
    if scene.is_object:
        bg = render_texture(scene.texture, n, world.supersample, scene.texture_params,
                            scene.base_rgb, scene.pattern_rgb)
        canvas = Image.fromarray(bg, "RGB")
        paint = Image.new("RGB", canvas.size, scene.rgb)
        canvas = Image.composite(paint, canvas, object_mask(world, scene))
    else:
        tex = render_texture(scene.texture, n, world.supersample, scene.texture_params,
                             scene.base_rgb, scene.rgb)
        canvas = Image.fromarray(tex, "RGB")
    return canvas.resize((n, n), Image.Resampling.BOX)
