"""Window decoding: clip indices, seeking reads the same frames as a full decode, bad files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from acga_lightning.data.io.video import VideoReadError, clip_indices, probe_video, read_window


def write_video(
    path: Path,
    num_frames: int,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] = (32, 48),
    gop: int = 6,
    faststart: bool = False,
) -> list[np.ndarray]:
    """Write random frames (keyframe every ``gop``); return them as decoded from the file."""
    rng = np.random.default_rng(num_frames)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as c:
        s = c.add_stream(codec, rate=24)
        s.height, s.width, s.pix_fmt = *size, pix_fmt
        s.codec_context.gop_size = gop
        for _ in range(num_frames):
            rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    return path, write_video(path, 40)


@pytest.mark.parametrize("t", [1, 2, 7, 8, 16])
def test_clip_indices_put_the_annotated_frame_at_t_half(t: int) -> None:
    for f in (1, 5, 30):
        idx = clip_indices(f, t)
        assert len(idx) == t and idx == list(range(idx[0], idx[0] + t))
        assert idx[t // 2] == f - 1
    assert clip_indices(25, 16) == list(range(16, 32))  # f-1-T//2 ... f-1+(T+1)//2-1


@pytest.mark.parametrize(("t", "stride"), [(1, 3), (4, 2), (4, 4), (5, 3)])
def test_a_stride_spreads_the_clip_around_the_annotated_frame(t: int, stride: int) -> None:
    idx = clip_indices(20, t, stride)
    assert len(idx) == t and idx[t // 2] == 19
    assert all(b - a == stride for a, b in zip(idx, idx[1:], strict=False))
    assert clip_indices(20, 4, 2) == [15, 17, 19, 21]


def test_clip_indices_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frame_idx"):
        clip_indices(0, 16)
    with pytest.raises(ValueError, match="num_frames"):
        clip_indices(3, 0)
    with pytest.raises(ValueError, match="frame_stride"):
        clip_indices(3, 4, 0)


def test_probe_reads_the_header(video: tuple[Path, list[np.ndarray]]) -> None:
    path, frames = video
    info = probe_video(path)
    assert (info.num_frames, info.height, info.width) == (len(frames), 32, 48)


@pytest.mark.parametrize("first_frame", [1, 6, 13, 20, 33, 40])
def test_window_equals_full_decode_clamped(
    video: tuple[Path, list[np.ndarray]], first_frame: int
) -> None:
    path, frames = video
    idx = clip_indices(first_frame, 16)
    window = read_window(path, idx)
    expected = np.stack([frames[min(max(i, 0), len(frames) - 1)] for i in idx])
    assert window.dtype == np.uint8 and window.shape == (16, 32, 48, 3)
    np.testing.assert_array_equal(window, expected)


def test_window_keeps_the_requested_order(video: tuple[Path, list[np.ndarray]]) -> None:
    path, frames = video
    window = read_window(path, [30, 2, 30, 17])
    np.testing.assert_array_equal(window, np.stack([frames[i] for i in (30, 2, 30, 17)]))


def test_video_shorter_than_window_repeats_edge_frames(tmp_path: Path) -> None:
    frames = write_video(tmp_path / "short.mp4", 5)
    window = read_window(tmp_path / "short.mp4", clip_indices(3, 16))  # indices -6 .. 9
    assert window.shape[0] == 16
    for k, i in enumerate(range(-6, 10)):
        np.testing.assert_array_equal(window[k], frames[min(max(i, 0), 4)])


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "suffix"), [("ffv1", "gray", ".mkv"), ("png", "rgba", ".mov")]
)
def test_gray_and_rgba_become_rgb(tmp_path: Path, codec: str, pix_fmt: str, suffix: str) -> None:
    path = tmp_path / f"v{suffix}"
    frames = write_video(path, 9, codec=codec, pix_fmt=pix_fmt)
    window = read_window(path, [0, 4, 8])
    assert window.shape == (3, 32, 48, 3)
    np.testing.assert_array_equal(window, np.stack([frames[0], frames[4], frames[8]]))
    assert probe_video(path).num_frames == 9  # mkv has no frame count: packets are counted


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="garbage.mp4"):
        read_window(path, [0])
    with pytest.raises(VideoReadError, match="garbage.mp4"):
        probe_video(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="nope.mp4.*not found"):
        read_window(tmp_path / "nope.mp4", [0])


def test_truncated_file_is_a_clear_error(
    video: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    # moov at the end (the default): the truncated file cannot be opened at all.
    data = video[0].read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="cut.mp4"):
        read_window(tmp_path / "cut.mp4", [0])
    # moov first (faststart): the header opens, decoding the missing tail fails.
    write_video(tmp_path / "fs.mp4", 40, faststart=True)
    data = (tmp_path / "fs.mp4").read_bytes()
    (tmp_path / "fs_cut.mp4").write_bytes(data[: len(data) // 2])
    assert probe_video(tmp_path / "fs_cut.mp4").num_frames == 40
    with pytest.raises(VideoReadError, match="fs_cut.mp4"):
        read_window(tmp_path / "fs_cut.mp4", range(30, 40))


def test_shared_reformatter_follows_size_and_format_changes(tmp_path: Path) -> None:
    """to_rgb keeps one swscale context per thread: videos of other sizes and pixel formats,
    read alternately, must still come out exactly as PyAV's own to_ndarray gives them."""
    videos = [
        (tmp_path / "a.mp4", write_video(tmp_path / "a.mp4", 9, size=(32, 48))),
        (tmp_path / "b.mp4", write_video(tmp_path / "b.mp4", 9, size=(40, 24))),
        (tmp_path / "c.mkv", write_video(tmp_path / "c.mkv", 9, "ffv1", "gray", (16, 16))),
    ]
    for _ in range(2):
        for path, expected in videos:
            window = read_window(path, [2, 3, 4])
            assert window.shape == (3, *expected[0].shape)
            assert np.array_equal(window, np.stack(expected[2:5]))
