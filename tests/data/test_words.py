"""Word vectors: loading every format, tokenising, encoding with OOV and truncation counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from acga_lightning.data.io.words import (
    WordStats,
    encode_query,
    load_word_vectors,
    query_stats,
    tokenize,
)

VOCAB = ["dog", "'s", "left", "most", "red", "ball", "man", "in", "a", "left-handed", "the"]


@pytest.fixture(scope="module")
def kv() -> KeyedVectors:
    rng = np.random.default_rng(0)
    kv = KeyedVectors(300)
    kv.add_vectors(VOCAB, rng.standard_normal((len(VOCAB), 300)).astype(np.float32))
    return kv


@pytest.fixture(scope="module")
def files(kv: KeyedVectors, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("w2v")
    kv.save_word2vec_format(str(d / "v.bin"), binary=True)
    kv.save_word2vec_format(str(d / "v.txt"), binary=False)
    kv.save(str(d / "v.kv"))
    shutil.copy(d / "v.bin", d / "binary_noext")
    shutil.copy(d / "v.txt", d / "text_noext")
    shutil.copy(d / "v.kv", d / "native_noext")
    return {p.name: p for p in d.iterdir()}


@pytest.mark.parametrize("name", ["v.bin", "v.txt", "v.kv", "binary_noext", "text_noext"])
def test_every_format_loads_the_same_vectors(
    files: dict[str, Path], kv: KeyedVectors, name: str
) -> None:
    loaded = load_word_vectors(files[name])
    assert loaded.index_to_key == kv.index_to_key
    np.testing.assert_allclose(loaded.vectors, kv.vectors, atol=1e-5)


def test_native_without_extension_is_sniffed(files: dict[str, Path], kv: KeyedVectors) -> None:
    loaded = load_word_vectors(files["native_noext"])
    assert loaded.index_to_key == kv.index_to_key


@pytest.mark.parametrize("name", ["v.bin", "v.txt", "v.kv"])
def test_limit_keeps_the_first_words(files: dict[str, Path], name: str) -> None:
    loaded = load_word_vectors(files[name], limit=4)
    assert loaded.index_to_key == VOCAB[:4]


@pytest.mark.parametrize("name", ["v.bin", "v.txt"])
def test_truncated_file_is_a_clear_error(files: dict[str, Path], tmp_path: Path, name: str) -> None:
    data = files[name].read_bytes()
    cut = tmp_path / f"cut{files[name].suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match=f"cut{files[name].suffix}.*truncated or corrupt"):
        load_word_vectors(cut)


def test_missing_or_unknown_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_word_vectors(tmp_path / "none.bin")
    (tmp_path / "weird").write_text("hello world\n")
    with pytest.raises(ValueError, match="weird.*not a word2vec"):
        load_word_vectors(tmp_path / "weird")


def test_tokenize_rules() -> None:
    assert tokenize("The dog's LEFT-most, red ball.") == [
        "the",
        "dog",
        "'s",
        "left-most",
        "red",
        "ball",
    ]
    assert tokenize("  man   in a   hat ") == ["man", "in", "a", "hat"]
    assert tokenize("number 2 player!") == ["number", "2", "player"]
    assert tokenize("?!,") == []


def test_encode_query_shapes_oov_and_hyphen_parts(kv: KeyedVectors) -> None:
    words, mask, stats = encode_query("The dog's left-most zebra", kv, max_words=8)
    assert words.shape == (8, 300) and words.dtype == np.float32 and mask.dtype == bool
    # the, dog, 's, left, most (hyphen parts: "left-most" is not in the vocabulary), zebra
    assert mask.tolist() == [True] * 6 + [False] * 2
    for i, w in enumerate(["the", "dog", "'s", "left", "most"]):
        np.testing.assert_array_equal(words[i], kv[w])
    assert not words[5].any() and not words[6:].any()  # OOV slot and padding are zero
    assert (stats.oov, stats.truncated, stats.words) == (1, 0, 6)
    assert stats.oov_words == {"zebra": 1}
    words, _, _ = encode_query("left-handed man", kv)
    np.testing.assert_array_equal(words[0], kv["left-handed"])  # kept whole when known


def test_encode_query_truncates_and_counts(kv: KeyedVectors) -> None:
    words, mask, stats = encode_query("a red ball " * 10, kv, max_words=20)
    assert mask.all() and stats.truncated == 1 and stats.words == 20
    np.testing.assert_array_equal(words[19], kv["red"])  # 20th word: a red ball a red ball ...


def test_empty_query_names_it(kv: KeyedVectors) -> None:
    with pytest.raises(ValueError, match="'  ... '"):
        encode_query("  ... ", kv)


def test_query_stats_sums(kv: KeyedVectors) -> None:
    stats = query_stats(["red ball", "zebra dog", "a " * 25], kv, max_words=20)
    assert isinstance(stats, WordStats)
    assert (stats.sentences, stats.oov, stats.truncated, stats.words) == (3, 1, 1, 24)
    assert "1 out of vocabulary" in str(stats) and "zebra" in str(stats)
