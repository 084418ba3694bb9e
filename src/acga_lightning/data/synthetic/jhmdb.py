"""Generated J-HMDB-Sentences data in the real on-disk layout (see ``jhmdb.py``).

One stick-figure "puppet" per video performs one J-HMDB action. :func:`write_jhmdb` writes
``jhmdb_annotation.txt`` (``video_id,query``), the frames as ``Rename_Images/<action>/<video>/
%05d.png`` (1-based) and ``puppet_mask/<action>/<video>/puppet_mask.mat`` with ``part_mask``
``(H, W, T)``. As in the real data, some videos have fewer mask frames than images.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acga_lightning.data.synthetic.scenes import (
    COLOURS,
    Scene,
    check_video_settings,
    render_background,
)
from acga_lightning.data.synthetic.text import write_word2vec

#: Action -> verb phrases (``{dir}`` is "left" or "right").
ACTIONS: dict[str, tuple[str, ...]] = {
    "jump": ("jumping", "jumping up and down"),
    "walk": ("walking to the {dir}", "walking slowly"),
    "run": ("running to the {dir}", "running fast"),
    "wave": ("waving his hand", "waving"),
    "climb_stairs": ("climbing stairs", "climbing up the stairs"),
    "stand": ("standing still", "standing"),
}
NOUNS = ("man", "person", "puppet")
#: Horizontal travel (fraction of the width) and rise (fraction of the height) over the clip.
TRAVEL = {"walk": (0.15, 0.0), "run": (0.4, 0.0), "climb_stairs": (0.2, 0.15)}


@dataclass(frozen=True)
class Puppet:
    """A stick figure: its colour, action, size and start (feet centre, fractions of W and H)."""

    colour: str
    action: str
    direction: int  # -1 left, +1 right
    size: float  # figure height, fraction of the frame height
    x0: float
    y0: float
    phase: float


def sample_puppet(rng: np.random.Generator, aspect: float) -> Puppet:
    """Draw a puppet whose whole motion stays inside the frame."""
    action = str(rng.choice(list(ACTIONS)))
    direction = int(rng.choice([-1, 1]))
    size = float(rng.uniform(0.45, 0.7))
    travel, rise = TRAVEL.get(action, (0.0, 0.0))
    margin = 0.25 * size / aspect + 0.02
    lo = margin + (travel if direction < 0 else 0.0)
    hi = 1.0 - margin - (travel if direction > 0 else 0.0)
    top = size + 0.02 + rise + (0.15 if action == "jump" else 0.0)
    return Puppet(
        colour=str(rng.choice(list(COLOURS))),
        action=action,
        direction=direction,
        size=size,
        x0=float(rng.uniform(lo, hi)),
        y0=float(rng.uniform(min(top, 0.97), 0.98)),
        phase=float(rng.uniform(0, math.pi)),
    )


def _segments(p: Puppet, u: float) -> tuple[list[tuple[float, ...]], tuple[float, float, float]]:
    """Limb capsules ``(ax, ay, bx, by, radius)`` and the head ``(x, y, r)`` in figure units.

    Figure units: feet at (0, 0), head top at (0, -1), y down; the caller scales and moves them.
    """
    swing = {"walk": 0.5, "run": 0.9, "climb_stairs": 0.6}.get(p.action, 0.0)
    legs = swing * math.sin(2 * math.pi * 4 * u + p.phase)
    hip, shoulder = (0.0, -0.42), (0.0, -0.72)
    foot_l = (hip[0] + 0.4 * math.sin(0.15 + legs), hip[1] + 0.4 * math.cos(0.15 + legs))
    foot_r = (hip[0] + 0.4 * math.sin(-0.15 - legs), hip[1] + 0.4 * math.cos(-0.15 - legs))
    arm_l = 0.3 + 0.6 * legs  # arms swing against the legs
    arm_r = -0.3 - 0.6 * legs
    if p.action == "wave":
        arm_r = -2.6 + 0.5 * math.sin(2 * math.pi * 5 * u + p.phase)  # raised, waving
    if p.action == "jump":
        arm_l, arm_r = 2.4, -2.4
    hand_l = (shoulder[0] + 0.3 * math.sin(arm_l), shoulder[1] + 0.3 * math.cos(arm_l))
    hand_r = (shoulder[0] + 0.3 * math.sin(arm_r), shoulder[1] + 0.3 * math.cos(arm_r))
    limbs = [
        (*hip, *shoulder, 0.07),
        (*hip, *foot_l, 0.045),
        (*hip, *foot_r, 0.045),
        (*shoulder, *hand_l, 0.04),
        (*shoulder, *hand_r, 0.04),
    ]
    return limbs, (0.0, -0.88, 0.11)


def puppet_mask(p: Puppet, t: int, num_frames: int, height: int, width: int) -> np.ndarray:
    """The puppet's mask ``(H, W)`` bool at frame ``t`` (0-based)."""
    u = t / max(num_frames - 1, 1)
    travel, rise = TRAVEL.get(p.action, (0.0, 0.0))
    fx = (p.x0 + p.direction * travel * u) * width
    fy = (p.y0 - rise * u) * height
    if p.action == "jump":
        fy -= 0.15 * height * abs(math.sin(math.pi * 3 * u + p.phase))
    scale = p.size * height
    limbs, (hx, hy, hr) = _segments(p, u)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    px, py = (xx + 0.5 - fx) / scale, (yy + 0.5 - fy) / scale  # figure units
    mask = (px - hx) ** 2 + (py - hy) ** 2 <= hr * hr
    for ax, ay, bx, by, r in limbs:
        dx, dy = bx - ax, by - ay
        s = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        mask |= (px - ax - s * dx) ** 2 + (py - ay - s * dy) ** 2 <= r * r
    return mask


def puppet_query(p: Puppet, rng: np.random.Generator) -> str:
    """A sentence about the puppet (there is one actor, so any description is unambiguous)."""
    noun = str(rng.choice(NOUNS))
    verb = str(rng.choice(ACTIONS[p.action])).format(dir="left" if p.direction < 0 else "right")
    a_colour = ("an " if p.colour[0] in "aeiou" else "a ") + p.colour
    styles = [f"a {noun} in {p.colour} {verb}", f"the {p.colour} {noun} is {verb}",
              f"{noun} {verb}", f"{a_colour} {noun} {verb}"]  # fmt: skip
    return styles[int(rng.integers(len(styles)))]


def jhmdb_vocabulary() -> list[str]:
    """Sentences that use every word a J-HMDB query can use."""
    out = []
    for colour in COLOURS:
        for noun in NOUNS:
            for phrases in ACTIONS.values():
                for phrase in phrases:
                    for side in ("left", "right"):
                        out.append(f"the {colour} {noun} is {phrase.format(dir=side)}")
                        out.append(f"a {noun} in {colour} {phrase.format(dir=side)}")
                        out.append(f"an {colour} {noun} {phrase.format(dir=side)}")
    return out


def _video_name(rng: np.random.Generator, action: str, k: int) -> str:
    """A J-HMDB-style name: title, action, body part, camera, people, view, quality, clip."""
    title = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=6)).capitalize()
    flags = [str(rng.choice(opts)) for opts in (("f", "u", "h"), ("cm", "nm"), ("np1",),
             ("fr", "ba", "le", "ri"), ("goo", "med", "bad"))]  # fmt: skip
    return "_".join([f"{title}{k}", action, *flags, str(k % 3)])


@dataclass(frozen=True)
class JHMDBSynthetic:
    """Settings of generated J-HMDB-Sentences data: the arguments of :func:`write_jhmdb`."""

    num_videos: int = 6
    seed: int = 0
    height: int = 240
    width: int = 320
    num_frames: tuple[int, int] = (30, 40)
    word2vec: bool = True

    def __post_init__(self) -> None:
        check_video_settings(self.num_videos, self.height, self.width, tuple(self.num_frames))


def write_jhmdb(root: str | Path, settings: JHMDBSynthetic | None = None, **options: Any) -> Path:
    """Write a small J-HMDB-Sentences dataset under ``root`` in the real layout; returns ``root``.

    At least one video's ``part_mask`` covers fewer frames than it has images, as in the real
    data. ``toy_manifest.json`` records each video's action, frame and mask counts and query.
    """
    from PIL import Image
    from scipy.io import savemat

    s = settings if settings is not None else JHMDBSynthetic(**options)
    num_videos, seed, height, width, num_frames = (
        s.num_videos, s.seed, s.height, s.width, s.num_frames)  # fmt: skip
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    short = int(rng.integers(num_videos))  # this video's masks stop before its last frames
    rows, videos = [], {}
    for k in range(num_videos):
        puppet = sample_puppet(rng, width / height)
        name = _video_name(rng, puppet.action, k)
        t_img = int(rng.integers(num_frames[0], num_frames[1] + 1))
        t_mask = t_img - int(rng.integers(1, max(2, t_img // 5) + 1)) if k == short else t_img
        query = puppet_query(puppet, rng)
        background = render_background(
            Scene((), t_img, width / height, int(rng.integers(2**31 - 1))), height, width
        )
        image_dir = root / "Rename_Images" / puppet.action / name
        mask_dir = root / "puppet_mask" / puppet.action / name
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        part_mask = np.zeros((height, width, t_mask), np.uint8)  # (H, W, T)
        for t in range(t_img):
            mask = puppet_mask(puppet, t, t_img, height, width)
            frame = background.copy()
            frame[mask] = COLOURS[puppet.colour]
            Image.fromarray(frame).save(image_dir / f"{t + 1:05d}.png", compress_level=1)
            if t < t_mask:
                part_mask[:, :, t] = mask
        savemat(mask_dir / "puppet_mask.mat", {"part_mask": part_mask}, do_compression=True)
        rows.append([name, query])
        videos[name] = {"action": puppet.action, "num_frames": t_img, "num_mask_frames": t_mask,
                        "query": query, "puppet": asdict(puppet)}  # fmt: skip
    with open(root / "jhmdb_annotation.txt", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["video_id", "query"])
        writer.writerows(rows)
    if s.word2vec:
        sentences = [q for _, q in rows] + jhmdb_vocabulary()
        write_word2vec(root / "word2vec.bin", sentences, seed=seed)
    manifest = {"format": "jhmdb", "seed": seed, "height": height, "width": width,
                "short_mask_videos": [n for n, v in videos.items()
                                      if v["num_mask_frames"] < v["num_frames"]],
                "videos": videos}  # fmt: skip
    (root / "toy_manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return root
