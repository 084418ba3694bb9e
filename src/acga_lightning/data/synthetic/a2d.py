"""Generated A2D-Sentences data in the real on-disk layout (see ``a2d.py``).

:func:`write_a2d` writes ``Release/videoset.csv`` (no header, 9 columns), H.264 videos in
``Release/clips320H/``, ``text_annotations/a2d_annotation.txt``, ``a2d_missed_videos.txt`` and
one h5 file per annotated frame with the real keys and the real transposed mask layout. With
``quirks=True`` it also reproduces the faults of the real release, and records where it put
them in ``toy_manifest.json`` (the real data has no such file; readers must not need it).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from acga_lightning.data.synthetic.scenes import (
    CONTRASTS,
    Scene,
    actor_masks,
    check_video_settings,
    position_terms,
    render_frame,
    sample_scene,
)
from acga_lightning.data.synthetic.text import describe, vocabulary_sentences, write_word2vec

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: Width / height of typical A2D clips (4:3, 3:2, 16:10, 16:9).
ASPECTS = (4 / 3, 3 / 2, 16 / 10, 16 / 9)
FPS = 24
COPY_INSTANCE = "1 (copy)"
#: Sentence-only mode: every actor shows at least this share of its area in each annotated frame.
MIN_VISIBLE_SHARE = 0.4
SCENE_TRIES = 200


@dataclass
class PlannedVideo:
    """What one generated video will hold, decided before anything is rendered."""

    video_id: str
    scene: Scene
    width: int
    subset: int  # 0 train, 1 test
    annotated_frames: list[int]  # 1-based
    queries: list[str] = field(default_factory=list)  # one per actor, as written (raw)
    attributes: list[tuple[str, ...]] = field(default_factory=list)
    instances: dict[int, list[int]] = field(default_factory=dict)  # fid -> instance ids shown


def video_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct 11-character YouTube-like ids."""
    ids: list[str] = []
    while len(ids) < n:
        vid = "".join(rng.choice(list(ID_ALPHABET), size=11))
        if vid not in ids:
            ids.append(vid)
    return ids


def spread_frames(num_frames: int, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` distinct 1-based frame numbers spread evenly over the video, slightly jittered."""
    count = min(count, num_frames)
    step = num_frames / (count + 1)
    fids = []
    for k in range(count):
        fid = int(round((k + 1) * step + rng.integers(-1, 2))) if step >= 3 else k + 1
        fids.append(min(max(fid, 1), num_frames))
    return sorted(set(fids))


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = FPS) -> None:
    """Encode ``(H, W, 3)`` uint8 frames as H.264 yuv420p, the same bytes on every run.

    One thread, and x264's macroblock-tree rate control off: with it on, the same frames
    sometimes came out as a different (valid) stream, even single-threaded in one process
    (about 5% of 64 x 64 clips when a dataset was written twice, decoded pixels about one grey
    level apart on average), so two runs of the demo trained on different data. Without it
    2 x 300 clips matched byte for byte; files are about 40% larger, and closer to the frames.
    """
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1", "g": "24",
                          "x264-params": "mbtree=0"}  # fmt: skip
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frame_h5(
    path: Path,
    instance_ids: list[int],
    masks: list[np.ndarray],
    codes: list[int],
) -> None:
    """One A2D annotation file: masks transposed to ``(N, W, H)``, or ``(W, H)`` when N == 1.

    ``masks`` may hold more entries than ``instance_ids`` (a real fault); ``reBBox`` and ``id``
    follow the masks. Numbers are float64 and masks uint8, as in the MATLAB-made originals.
    """
    stack = np.stack(masks).astype(np.uint8)  # (N, H, W)
    boxes = np.zeros((4, len(masks)), np.float64)  # x1, y1, x2, y2
    for k, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            boxes[:, k] = (xs.min(), ys.min(), xs.max(), ys.max())
    remask = np.ascontiguousarray(stack.transpose(0, 2, 1))  # (N, W, H)
    if len(masks) == 1:
        remask = remask[0]  # (W, H)
    with h5py.File(path, "w") as f:
        f.create_dataset("instance", data=np.asarray(instance_ids, np.float64), track_times=False)
        # MATLAB v7.3 files compress large variables; gzip keeps 320p masks small here too
        f.create_dataset("reMask", data=remask, compression="gzip", track_times=False)
        f.create_dataset("reBBox", data=boxes, track_times=False)
        f.create_dataset("id", data=np.asarray([codes], np.float64), track_times=False)


def min_pixels_for(height: int) -> int:
    """The fewest visible pixels for an actor to be annotated in a frame of this height."""
    return max(4, round(0.003 * height * height))


def all_actors_visible(scene: Scene, fids: list[int], height: int, width: int) -> bool:
    """Whether every actor shows ``MIN_VISIBLE_SHARE`` of its area in every frame of ``fids``."""
    for fid in fids:
        full, visible = actor_masks(scene, fid - 1, height, width)
        for whole, mask in zip(full, visible, strict=True):
            shown = int(mask.sum())
            if shown < min_pixels_for(height) or shown < MIN_VISIBLE_SHARE * int(whole.sum()):
                return False
    return True


def plan_videos(
    rng: np.random.Generator,
    num_videos: int,
    height: int,
    width: int | None,
    num_frames: tuple[int, int],
    annotated_per_video: int,
    test_fraction: float,
    min_actors: int,
    max_actors: int,
    exit_video: int | None,
    sentence_only: bool = False,
    single_contrast: bool = False,
    contrasts: Sequence[str] = CONTRASTS,
) -> list[PlannedVideo]:
    """Draw every video's id, size, length, scene, split, annotated frames and queries.

    ``sentence_only``: scenes are redrawn until every actor is clearly visible in every
    annotated frame, and queries are written by ``describe(..., sentence_only=True)``.
    ``single_contrast``: video ``i``'s actors differ only in ``contrasts[i % len(contrasts)]``
    (colour, shape, motion or position; for position, scenes are also redrawn until each actor
    has a position word of its own at every annotated frame) and each query names that alone.
    """
    ids = video_ids(rng, num_videos)
    num_test = int(round(num_videos * test_fraction))
    if test_fraction > 0 and num_videos >= 2:
        num_test = min(max(num_test, 1), num_videos - 1)
    test = set(rng.permutation(num_videos)[:num_test].tolist())
    planned = []
    for i, vid in enumerate(ids):
        w = width or int(round(height * float(rng.choice(ASPECTS)) / 2)) * 2
        t = int(rng.integers(num_frames[0], num_frames[1] + 1))
        n = int(rng.integers(min_actors, max_actors + 1))
        exits = n - 1 if i == exit_video else 0
        vary = contrasts[i % len(contrasts)] if single_contrast else None
        scene = sample_scene(rng, num_actors=n, num_frames=t, aspect=w / height, exits=exits,
                             vary=vary)  # fmt: skip
        fids = spread_frames(t, annotated_per_video, rng)
        frames = [fid - 1 for fid in fids] if sentence_only else None
        tries = 1
        while sentence_only and not (
            all_actors_visible(scene, fids, height, w)
            and (vary != "position" or None not in position_terms(scene, frames, middle=True))
        ):
            if tries == SCENE_TRIES:
                raise ValueError(
                    f"sentence_only: no scene of {n} actors in {tries} tries shows them all at "
                    f"height {height}, width {w}; use fewer actors or larger frames"
                )
            scene = sample_scene(rng, num_actors=n, num_frames=t, aspect=w / height, vary=vary)
            tries += 1
        video = PlannedVideo(vid, scene, w, int(i in test), fids)
        for k in range(n):
            query, used = describe(
                scene, k, rng, frames=frames, sentence_only=sentence_only, contrast=vary
            )
            video.queries.append(query)
            video.attributes.append(used)
        planned.append(video)
    return planned


def render_video(video: PlannedVideo, root: Path, height: int) -> dict[int, list[np.ndarray]]:
    """Write the mp4 and return the visible masks of every actor at each annotated frame."""
    frames, masks = [], {}
    for t in range(video.scene.num_frames):
        rgb, visible = render_frame(video.scene, t, height, video.width)
        frames.append(rgb)
        if t + 1 in video.annotated_frames:
            masks[t + 1] = visible
    write_mp4(root / "Release" / "clips320H" / f"{video.video_id}.mp4", frames)
    return masks


def write_annotations(
    video: PlannedVideo,
    root: Path,
    masks: dict[int, list[np.ndarray]],
    min_pixels: int,
    rng: np.random.Generator,
    duplicate: bool = False,
    extra_mask: bool = False,
) -> dict[str, int]:
    """Write the h5 files of one video; returns the frames that got an injected fault.

    ``duplicate`` repeats an instance id in the first frame with two or more instances;
    ``extra_mask`` gives the next such frame one mask more than it lists instances.
    """
    folder = root / "text_annotations" / "a2d_annotation_with_instances" / video.video_id
    folder.mkdir(parents=True, exist_ok=True)
    codes = [a.code for a in video.scene.actors]
    faults: dict[str, int] = {}
    for fid, visible in masks.items():
        shown = [k for k, m in enumerate(visible) if m.sum() >= min_pixels]
        if not shown:  # the front actor is never hidden, but it may have flown away
            shown = [int(np.argmax([m.sum() for m in visible]))]
        video.instances[fid] = shown
        ids, frame_masks, frame_codes = (
            list(shown),
            [visible[k] for k in shown],
            [codes[k] for k in shown],
        )
        if len(shown) >= 2 and duplicate and "duplicate" not in faults:
            # a second entry for the last instance, holding part of its mask (union = first entry)
            part = visible[shown[-1]].copy()
            part[: int(np.median(np.nonzero(part)[0])) if part.any() else 0] = False
            ids.append(shown[-1])
            frame_masks.append(part)
            frame_codes.append(codes[shown[-1]])
            faults["duplicate"] = fid
        elif len(shown) >= 2 and extra_mask and "extra_mask" not in faults:
            blob = np.zeros_like(visible[0])  # a mask that belongs to no listed instance
            h, w = blob.shape
            y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
            blob[y : y + h // 4 + 1, x : x + w // 4 + 1] = True
            frame_masks.append(blob)
            frame_codes.append(codes[0])
            faults["extra_mask"] = fid
        write_frame_h5(folder / f"{fid:05d}.h5", ids, frame_masks, frame_codes)
    return faults


def write_tables(
    root: Path, videos: list[PlannedVideo], height: int, rows: list[list[str]], missed: list[str]
) -> None:
    """Write videoset.csv (headerless), a2d_annotation.txt and a2d_missed_videos.txt."""
    with open(root / "Release" / "videoset.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        for k, v in enumerate(videos):
            start = 5 + 7 * k % 50
            end = start + max(1, round(v.scene.num_frames / FPS))
            writer.writerow([
                v.video_id, v.scene.actors[0].code, f"00:{start // 60:02d}:{start % 60:02d}",
                f"00:{end // 60:02d}:{end % 60:02d}", height, v.width, v.scene.num_frames,
                len(v.annotated_frames), v.subset,
            ])  # fmt: skip
    text = root / "text_annotations"
    with open(text / "a2d_annotation.txt", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["video_id", "instance_id", "query"])
        writer.writerows(rows)
    (text / "a2d_missed_videos.txt").write_text("".join(f"{vid}\n" for vid in missed))


def _raw_query(query: str, style: int) -> str:
    """The real file's untidy spellings: a leading space and capitals, or Title Case."""
    if style == 0:
        return " " + query[:1].upper() + query[1:]
    return query.title()


def render_all(
    videos: list[PlannedVideo],
    order: list[int],
    root: Path,
    height: int,
    quirks: bool,
    rng: np.random.Generator,
    progress: bool = False,
) -> dict[str, Any]:
    """Write every video and its h5 files; returns where the h5 faults were put."""
    from tqdm.auto import tqdm

    min_pixels = min_pixels_for(height)
    placed: dict[str, Any] = {}
    ranked = tqdm(
        enumerate(order), total=len(order), desc=f"writing generated videos to {root.name}",
        unit="video", disable=not progress, leave=False,
    )  # fmt: skip
    for rank, i in ranked:  # the exit video first; faults go to the videos after it
        may_fault = quirks and (rank > 0 or len(videos) == 1)
        masks = render_video(videos[i], root, height)
        faults = write_annotations(
            videos[i], root, masks, min_pixels, rng,
            duplicate=may_fault and "duplicate_instance" not in placed,
            extra_mask=may_fault and "extra_mask" not in placed,
        )  # fmt: skip
        vid = videos[i].video_id
        if "duplicate" in faults:
            dup = videos[i].instances[faults["duplicate"]][-1]
            placed["duplicate_instance"] = {"video_id": vid, "frame": faults["duplicate"],
                                            "instance_id": dup}  # fmt: skip
        if "extra_mask" in faults:
            placed["extra_mask"] = {"video_id": vid, "frame": faults["extra_mask"]}
    return placed


def annotation_rows(
    videos: list[PlannedVideo], order: list[int], quirks: bool, placed: dict[str, Any]
) -> list[list[str]]:
    """Rows of a2d_annotation.txt, with the ``1 (copy)`` row and untidy queries if ``quirks``."""
    n = len(videos)
    raw_rows = {order[(3 + k) % n]: k for k in range(min(2, n))} if quirks else {}
    with_two = [order[(1 + k) % n] for k in range(n) if len(videos[order[(1 + k) % n]].queries) > 1]
    copy_video = with_two[0] if quirks and with_two else None
    rows: list[list[str]] = []
    for i, v in enumerate(videos):
        for k, query in enumerate(v.queries):
            raw = _raw_query(query, raw_rows[i]) if k == 0 and i in raw_rows else query
            rows.append([v.video_id, str(k), raw])
            if raw != query:
                placed.setdefault("raw_queries", []).append(
                    {"video_id": v.video_id, "instance_id": k, "raw": raw, "query": query}
                )
            if i == copy_video and k == 1:
                rows.append([v.video_id, COPY_INSTANCE, query])
                placed["copy_row"] = {"video_id": v.video_id, "instance_id": COPY_INSTANCE}
    return rows


@dataclass(frozen=True)
class A2DSynthetic:
    """Settings of generated A2D-Sentences data: the arguments of :func:`write_a2d`."""

    num_videos: int = 12
    seed: int = 0
    height: int = 320
    width: int | None = None
    num_frames: tuple[int, int] = (40, 64)
    annotated_per_video: int = 3
    test_fraction: float = 0.25
    quirks: bool = True
    word2vec: bool = True
    min_actors: int = 2
    max_actors: int = 4
    sentence_only: bool = False
    single_contrast: bool = False
    #: What single-contrast clips differ in, taken in turn (default: all of CONTRASTS).
    contrasts: tuple[str, ...] = CONTRASTS

    def __post_init__(self) -> None:
        check_video_settings(self.num_videos, self.height, self.width, tuple(self.num_frames))
        if self.height % 2 or (self.width is not None and self.width % 2):
            raise ValueError(f"height/width must be even, got {self.height}/{self.width}")
        if not 1 <= self.min_actors <= self.max_actors:
            raise ValueError(
                f"need 1 <= min_actors <= max_actors, got {self.min_actors}, {self.max_actors}"
            )
        if self.single_contrast and not (self.sentence_only and self.max_actors <= 3):
            raise ValueError("single_contrast: needs sentence_only and max_actors <= 3")
        object.__setattr__(self, "contrasts", tuple(self.contrasts))
        unknown = [c for c in self.contrasts if c not in CONTRASTS]
        if not self.contrasts or unknown:
            raise ValueError(f"contrasts: expected some of {CONTRASTS}, got {self.contrasts!r}")
        if self.sentence_only and self.min_actors < 2:
            raise ValueError(
                f"min_actors: sentence_only needs >= 2 actors per clip, got {self.min_actors}"
            )
        if self.annotated_per_video < 1 or not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(
                f"annotated_per_video must be >= 1 and test_fraction in [0, 1], "
                f"got {self.annotated_per_video}, {self.test_fraction}"
            )


def write_a2d(
    root: str | Path,
    settings: A2DSynthetic | None = None,
    *,
    progress: bool = False,
    **options: Any,
) -> Path:
    """Write a small A2D-Sentences dataset under ``root`` in the real layout; returns ``root``.

    Every actor of every clip gets one query that fits it alone. ``width=None`` gives each video
    its own width (4:3 to 16:9, even). With ``quirks`` the real release's faults are copied:
    a ``1 (copy)`` row, untidy queries, a missed video (its rows kept), a duplicate instance id,
    a frame with more masks than instances, and frames with one instance (2-D ``reMask``).
    ``toy_manifest.json`` records the scenes, the samples per split and where each quirk went.

    Every actor of a clip is queried once, so the target is the largest, the front or the most
    central actor of its frame no more often than any other actor. ``sentence_only=True`` goes
    further, so that only the sentence tells the target apart (the Table 3 ablation benchmark
    uses it): clips hold ``min_actors`` >= 2 actors and no actor flies out of view (every
    annotated frame shows every actor, at least ``MIN_VISIBLE_SHARE`` of it unoccluded), a
    position word must be true at each annotated frame, not only on average over the clip,
    "in the middle" (of three actors) and more paraphrases ("on the top", "in the centre") are
    added, and the word vectors cover them. The default (False) keeps the scenes, queries and
    annotations of earlier releases byte for byte. ``progress`` shows a progress bar over the
    videos (the data does not depend on it). The same arguments write the same bytes.
    """
    s = settings if settings is not None else A2DSynthetic(**options)
    num_videos, seed, height, width, num_frames = (
        s.num_videos, s.seed, s.height, s.width, s.num_frames)  # fmt: skip
    annotated_per_video, test_fraction, quirks = s.annotated_per_video, s.test_fraction, s.quirks
    min_actors, max_actors, sentence_only = s.min_actors, s.max_actors, s.sentence_only
    root = Path(root)
    for sub in ("Release/clips320H", "text_annotations/a2d_annotation_with_instances"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(num_videos)]  # quirks go to order[0], order[1], ...
    videos = plan_videos(
        rng, num_videos, height, width, num_frames, annotated_per_video, test_fraction,
        min_actors, max_actors,
        exit_video=order[0] if quirks and max_actors > 1 and not sentence_only else None,
        sentence_only=sentence_only, single_contrast=s.single_contrast, contrasts=s.contrasts,
    )  # fmt: skip
    placed = render_all(videos, order, root, height, quirks, rng, progress)
    rows = annotation_rows(videos, order, quirks, placed)
    missed = [videos[order[2 % num_videos]].video_id] if quirks else []
    if missed:
        placed["missed_videos"] = missed
    write_tables(root, videos, height, rows, missed)
    placed["single_instance_frames"] = [
        [v.video_id, fid] for v in videos for fid, shown in sorted(v.instances.items())
        if len(shown) == 1
    ]  # fmt: skip
    if s.word2vec:
        sentences = [" ".join(q.lower().split()) for v in videos for q in v.queries]
        vocabulary = vocabulary_sentences(sentence_only)
        write_word2vec(root / "word2vec.bin", sentences + vocabulary, seed=seed)
    write_manifest(root, videos, height, seed, placed, missed, sentence_only)
    return root


def write_manifest(
    root: Path,
    videos: list[PlannedVideo],
    height: int,
    seed: int,
    quirks: dict[str, Any],
    missed: list[str],
    sentence_only: bool = False,
) -> None:
    """``toy_manifest.json``: what was generated, for tests; no reader may depend on it."""
    samples = {"train": 0, "test": 0}
    described = {}
    for v in videos:
        actors = []
        for k, actor in enumerate(v.scene.actors):
            frames = [fid for fid, shown in sorted(v.instances.items()) if k in shown]
            if v.video_id not in missed:
                samples["test" if v.subset else "train"] += len(frames)
            actors.append({**asdict(actor), "instance_id": k, "code": actor.code,
                           "query": " ".join(v.queries[k].lower().split()),
                           "attributes": list(v.attributes[k]), "frames": frames})  # fmt: skip
        described[v.video_id] = {
            "subset": v.subset, "height": height, "width": v.width,
            "num_frames": v.scene.num_frames, "annotated_frames": v.annotated_frames,
            "instances": {str(fid): ids for fid, ids in sorted(v.instances.items())},
            "actors": actors,
        }  # fmt: skip
    manifest = {"format": "a2d", "seed": seed, "fps": FPS, "num_samples": samples,
                "quirks": quirks, "videos": described}  # fmt: skip
    if sentence_only:  # absent otherwise, so that default data keeps its bytes
        manifest["sentence_only"] = True
    (root / "toy_manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
