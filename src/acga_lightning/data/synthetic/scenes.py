"""Synthetic scenes of coloured moving shapes, for generated A2D-style data and benchmarks.

A :class:`Scene` is a few :class:`Actor` s that differ in colour, shape, motion, size and place.
Everything is in frame-relative units (``x`` a fraction of the width, ``y`` and sizes fractions
of the height), so one scene renders at any resolution. :func:`sample_scene` draws a scene from
a ``numpy.random.Generator``; :func:`render_frame` draws frame ``t`` and the visible mask of
every actor (actors hide one another by depth, so a mask is the visible part only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

#: Saturated colours, far apart in hue, and far from the grey-brown background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (35, 185, 60),
    "blue": (40, 80, 235),
    "yellow": (240, 220, 30),
    "purple": (155, 50, 205),
    "orange": (250, 135, 20),
}
#: Shape -> the nouns a query may call it by.
SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("ball", "circle"),
    "square": ("box", "square"),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond",),
}
#: Shape -> A2D actor code (ball, car, bird, cat, dog) for the ``id`` field (actor * 10 + action).
ACTOR_CODES: dict[str, int] = {"circle": 3, "square": 5, "triangle": 4, "star": 6, "diamond": 7}
#: Motion -> A2D action code (flying 4, jumping 5, rolling 6, running 7, walking 8, none 9).
ACTION_CODES: dict[str, int] = {
    "flying": 4,
    "jumping": 5,
    "rolling": 6,
    "running": 7,
    "walking": 8,
    "standing": 9,
}
#: Horizontal travel over the whole clip (fraction of the width) for each motion.
TRAVEL: dict[str, float] = {
    "flying": 0.25,
    "jumping": 0.0,
    "rolling": 0.3,
    "running": 0.45,
    "walking": 0.15,
    "standing": 0.0,
}
DIRECTED = ("flying", "rolling", "running", "walking")
JUMP_HEIGHT = 0.22
FLY_RISE = 0.35
EXIT_RISE = 1.6
#: Two actors' mean positions must differ by this much for "left"/"top"... to name one of them.
POSITION_MARGIN = 0.2


@dataclass(frozen=True)
class Actor:
    """One moving shape: its look, its motion and its start."""

    colour: str
    shape: str
    motion: str
    direction: int  # -1 left, +1 right, 0 for motions without a direction
    size: float  # circumradius, fraction of the frame height
    x0: float  # start centre, fraction of the width
    y0: float  # start centre, fraction of the height
    phase: float  # radians, for jumping and bobbing
    depth: int  # drawing order: higher is in front
    exits: bool = False  # flies out of the top of the frame during the clip

    @property
    def code(self) -> int:
        """A2D actor-action code (``actor * 10 + action``)."""
        return ACTOR_CODES[self.shape] * 10 + ACTION_CODES[self.motion]


@dataclass(frozen=True)
class Scene:
    """A clip: its actors, its length and its background."""

    actors: tuple[Actor, ...]
    num_frames: int
    aspect: float  # width / height the trajectories were planned for
    background_seed: int


def actor_state(actor: Actor, t: int, num_frames: int, aspect: float) -> tuple[float, float, float]:
    """Centre ``(x, y)`` (fractions of width and height) and rotation of ``actor`` at frame t."""
    u = t / max(num_frames - 1, 1)
    x = actor.x0 + actor.direction * TRAVEL[actor.motion] * u
    y = actor.y0
    angle = 0.0
    if actor.motion == "walking":
        y += 0.012 * math.sin(2 * math.pi * 5 * u + actor.phase)
    elif actor.motion == "running":
        y -= 0.03 * abs(math.sin(2 * math.pi * 4 * u + actor.phase))
    elif actor.motion == "rolling":
        # rolling without slipping: distance travelled (in heights) over the radius
        angle = -actor.direction * TRAVEL["rolling"] * u * aspect / actor.size
    elif actor.motion == "jumping":
        y -= JUMP_HEIGHT * abs(math.sin(math.pi * 3 * u + actor.phase))
    elif actor.motion == "flying":
        y -= (EXIT_RISE if actor.exits else FLY_RISE) * u
        angle = 0.15 * math.sin(2 * math.pi * 3 * u + actor.phase)
    return x, y, angle


def mean_position(actor: Actor, num_frames: int, aspect: float) -> tuple[float, float]:
    """The actor's centre averaged over the frames where it is in view (what "left" refers to)."""
    states = [actor_state(actor, t, num_frames, aspect) for t in range(num_frames)]
    states = [s for s in states if 0.0 <= s[0] <= 1.0 and 0.0 <= s[1] <= 1.0] or states
    return float(np.mean([s[0] for s in states])), float(np.mean([s[1] for s in states]))


def _positions(scene: Scene, frames: Sequence[int] | None) -> list[list[tuple[float, float]]]:
    """Per actor, the points a position word must hold at: its mean, or its centre per frame."""
    if frames is None:
        return [[mean_position(a, scene.num_frames, scene.aspect)] for a in scene.actors]
    return [
        [actor_state(a, t, scene.num_frames, scene.aspect)[:2] for t in frames]
        for a in scene.actors
    ]


def _term_at(i: int, points: list[tuple[float, float]], middle: bool) -> str | None:
    """The position word that singles out actor ``i`` among ``points`` (one per actor), if any."""
    (x, y), others = points[i], [p for j, p in enumerate(points) if j != i]
    if not others:
        return None
    if all(x < ox - POSITION_MARGIN for ox, _ in others):
        return "left"
    if all(x > ox + POSITION_MARGIN for ox, _ in others):
        return "right"
    if all(y < oy - POSITION_MARGIN for _, oy in others):
        return "top"
    if all(y > oy + POSITION_MARGIN for _, oy in others):
        return "bottom"
    if middle and len(others) == 2:  # between the other two, by the margin on both sides
        lo, hi = sorted(ox for ox, _ in others)
        if lo + POSITION_MARGIN < x < hi - POSITION_MARGIN:
            return "middle"
    return None


def position_terms(
    scene: Scene, frames: Sequence[int] | None = None, middle: bool = False
) -> list[str | None]:
    """Per actor, "left", "right", "top" or "bottom" where that alone singles it out, else None.

    An actor is "on the left" only when its x is below every other actor's by
    ``POSITION_MARGIN``, so the word is true for no other actor. With ``frames`` None the test
    is on the positions averaged over the clip; with ``frames`` (0-based) it must hold, with
    the same word, at each of those frames. ``middle`` adds "middle" for the actor of a
    three-actor scene that lies between the other two horizontally (by the margin each side).
    """
    points = _positions(scene, frames)
    terms: list[str | None] = []
    for i in range(len(scene.actors)):
        found = {_term_at(i, [p[k] for p in points], middle) for k in range(len(points[i]))}
        terms.append(found.pop() if len(found) == 1 else None)
    return terms


def _sample_actor(
    rng: np.random.Generator,
    aspect: float,
    depth: int,
    exits: bool,
    like: Actor | None = None,
    vary: str | None = None,
) -> Actor:
    """A random actor; with ``like``, one that shares its colour, shape and motion (with
    direction) but for the ``vary`` attribute (``colour``, ``shape``, ``motion`` or none:
    ``position``), drawn anew (the caller keeps it distinct)."""
    motion = "flying" if exits else str(rng.choice(list(ACTION_CODES)))
    if like is not None and vary != "motion":
        motion = like.motion
    direction = int(rng.choice([-1, 1])) if motion in DIRECTED else 0
    if like is not None and vary != "motion":
        direction = like.direction
    size = float(rng.uniform(0.08, 0.16))
    margin_x = size / aspect + 0.02
    travel = TRAVEL[motion]
    lo = margin_x + (travel if direction < 0 else 0.0)
    hi = 1.0 - margin_x - (travel if direction > 0 else 0.0)
    top = size + 0.02 + {"jumping": JUMP_HEIGHT, "flying": FLY_RISE}.get(motion, 0.0)
    if exits:
        top = 0.45  # starts low enough to be seen, rises fast enough to leave
    colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(list(SHAPES)))
    if like is not None:
        colour = colour if vary == "colour" else like.colour
        shape = shape if vary == "shape" else like.shape
    return Actor(
        colour=colour,
        shape=shape,
        motion=motion,
        direction=direction,
        size=size,
        x0=float(rng.uniform(lo, hi)),
        y0=float(rng.uniform(top, 1.0 - size - 0.02)),
        phase=float(rng.uniform(0, math.pi)),
        depth=depth,
        exits=exits,
    )


def _identity(actor: Actor) -> tuple[str, str, str, int]:
    return actor.colour, actor.shape, actor.motion, actor.direction


#: What a single-contrast scene's actors differ in (``sample_scene(vary=...)``).
CONTRASTS = ("colour", "shape", "motion", "position")


def _varied(actor: Actor, vary: str) -> object:
    return {"colour": actor.colour, "shape": actor.shape, "motion": actor.motion}[vary]


def sample_scene(
    rng: np.random.Generator,
    num_actors: int = 3,
    num_frames: int = 48,
    aspect: float = 1.5,
    exits: int = 0,
    vary: str | None = None,
) -> Scene:
    """Draw a scene of ``num_actors`` actors that can each be told apart by words.

    No two actors share colour, shape and motion (with direction) all at once, so each has a
    description that fits it alone. ``vary`` (one of :data:`CONTRASTS`) draws a single-contrast
    scene instead: the actors share all of colour, shape and motion but the one named, which
    differs between every two (``position``: they share all three, and only where they are
    tells them apart). Colours, shapes and motions are drawn with replacement, so
    clips often hold two red actors or two balls and a query must use more than one word.
    Sizes and depth order are drawn independently of everything else. ``exits`` actors (the
    last ones) fly out of the top of the frame, so late frames show fewer actors.
    """
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1, got {num_actors}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if not 0 <= exits < max(num_actors, 1):
        raise ValueError(f"exits must be in [0, num_actors), got {exits}")
    if vary is not None and (vary not in CONTRASTS or exits):
        raise ValueError(f"vary: expected one of {CONTRASTS} (and no exits), got {vary!r}")
    depths = rng.permutation(num_actors)
    actors: list[Actor] = []
    for i in range(num_actors):
        exiting = i >= num_actors - exits
        like = actors[0] if vary is not None and actors else None
        actor = _sample_actor(rng, aspect, int(depths[i]), exiting, like, vary)
        if vary in ("colour", "shape", "motion"):  # the one attribute differs between all
            while any(_varied(actor, vary) == _varied(a, vary) for a in actors):
                actor = _sample_actor(rng, aspect, int(depths[i]), exiting, like, vary)
        elif vary is None:
            while any(_identity(actor) == _identity(a) for a in actors):
                actor = _sample_actor(rng, aspect, int(depths[i]), exiting)
        actors.append(actor)
    background_seed = int(rng.integers(0, 2**31 - 1))
    return Scene(tuple(actors), num_frames, aspect, background_seed)


def with_aspect(scene: Scene, aspect: float) -> Scene:
    """The same scene planned for another width/height ratio (trajectories use fractions)."""
    return replace(scene, aspect=aspect)


@lru_cache(maxsize=8)
def render_background(scene: Scene, height: int, width: int) -> np.ndarray:
    """A static, mildly textured background ``(H, W, 3)`` uint8 for the scene."""
    rng = np.random.default_rng(scene.background_seed)
    base = rng.uniform(95, 150, size=3) * np.array([1.0, 0.95, 0.85])  # grey-brown
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = np.zeros((height, width), np.float32)
    for _ in range(3):  # a few low-frequency waves
        fx, fy = rng.uniform(0.5, 3.0, size=2) * 2 * math.pi
        texture += 8 * np.sin(fx * xx / width + fy * yy / height + rng.uniform(0, 2 * math.pi))
    texture += rng.normal(0, 5, size=(height, width)).astype(np.float32)
    image = base[None, None, :] + texture[..., None]  # (H, W, 3)
    out = np.clip(image, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Inside-test of a shape of circumradius r, centred at 0, in rotated coordinates (u, v)."""
    if shape == "circle":
        return u * u + v * v <= r * r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.78 * r
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= r
    if shape == "triangle":  # apex up (v grows downwards); three edges at distance r/2
        s3 = math.sqrt(3) / 2
        return (v <= r / 2) & (-s3 * u - 0.5 * v <= r / 2) & (s3 * u - 0.5 * v <= r / 2)
    if shape == "star":  # five points up; radius between 0.45 r and r, linear in angle
        theta = np.mod(np.arctan2(u, -v), 2 * math.pi / 5)
        frac = np.abs(theta - math.pi / 5) / (math.pi / 5)  # 1 at a point, 0 between points
        return np.sqrt(u * u + v * v) <= r * (0.45 + 0.55 * frac)
    raise ValueError(f"shape: unknown {shape!r}; known: {sorted(SHAPES)}")


def actor_mask(actor: Actor, t: int, scene: Scene, height: int, width: int) -> np.ndarray:
    """The full (unoccluded) mask ``(H, W)`` bool of ``actor`` at frame ``t``."""
    cx, cy, angle = actor_state(actor, t, scene.num_frames, scene.aspect)
    cx_px, cy_px, r_px = cx * width, cy * height, actor.size * height
    mask = np.zeros((height, width), bool)
    x0, x1 = max(int(cx_px - r_px) - 1, 0), min(int(cx_px + r_px) + 2, width)
    y0, y1 = max(int(cy_px - r_px) - 1, 0), min(int(cy_px + r_px) + 2, height)
    if x0 >= x1 or y0 >= y1:
        return mask  # off screen
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - cx_px, yy + 0.5 - cy_px
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # rotate the sample points into the actor's frame
    mask[y0:y1, x0:x1] = _shape_mask(actor.shape, u, v, r_px)
    return mask


def actor_masks(
    scene: Scene, t: int, height: int, width: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every actor's full and visible mask ``(H, W)`` bool at frame ``t``, in actor order.

    The visible mask is the full one minus the actors drawn in front of it (higher depth).
    """
    if not 0 <= t < scene.num_frames:
        raise ValueError(f"t must be in [0, {scene.num_frames}), got {t}")
    full = [actor_mask(a, t, scene, height, width) for a in scene.actors]
    visible = [m.copy() for m in full]
    order = sorted(range(len(scene.actors)), key=lambda i: scene.actors[i].depth)
    for rank, i in enumerate(order):
        for j in order[rank + 1 :]:  # actors in front hide this one
            visible[i] &= ~full[j]
    return full, visible


def render_frame(
    scene: Scene, t: int, height: int, width: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Frame ``t`` as ``(rgb (H, W, 3) uint8, [visible mask (H, W) bool per actor])``.

    Masks are in the order of ``scene.actors``; an actor hidden by one in front of it loses
    those pixels, so every mask is exactly where the actor's colour was painted.
    """
    full, visible = actor_masks(scene, t, height, width)
    frame = render_background(scene, height, width).copy()
    for i in sorted(range(len(scene.actors)), key=lambda i: scene.actors[i].depth):
        frame[full[i]] = COLOURS[scene.actors[i].colour]  # back to front
    return frame, visible


def check_video_settings(
    num_videos: int,
    height: int,
    width: int | None,
    num_frames: tuple[int, int],
    min_videos: int = 1,
) -> None:
    """The checks every generator's settings share: enough videos, frames of at least 16 pixels,
    and a clip-length range ``(lo, hi)`` with ``2 <= lo <= hi``."""
    if num_videos < min_videos:
        raise ValueError(f"num_videos must be >= {min_videos}, got {num_videos}")
    if height < 16 or (width is not None and width < 16):
        raise ValueError(f"height/width must be >= 16, got {height}/{width}")
    if not 2 <= num_frames[0] <= num_frames[1]:
        raise ValueError(f"num_frames must be (lo, hi) with 2 <= lo <= hi, got {num_frames}")
