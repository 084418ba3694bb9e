"""Word vectors for queries: loading word2vec files, tokenising and encoding sentences.

Tokenisation (decided here, used by every reader): lower-case; words are runs of letters and
digits of any script (a typographic apostrophe counts as ``'``), optionally joined by inner
hyphens or apostrophes; a possessive ``'s`` is split off as its own token (``"dog's" -> ["dog",
"'s"]``, as word2vec's GoogleNews vocabulary has ``'s``); all other punctuation is dropped.
A hyphenated word is kept whole (``"left-most"``) and, only if the vocabulary lacks it,
looked up as its parts (``"left", "most"``) by :func:`encode_query`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

log = logging.getLogger(__name__)

# Letters and digits of any script ("café" stays whole, not "caf"); ASCII input is unchanged.
_TOKEN = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_BINARY_SUFFIXES = {".bin"}
_TEXT_SUFFIXES = {".txt", ".vec"}
_NATIVE_SUFFIXES = {".kv", ".model"}


@dataclass
class WordStats:
    """Counts of what :func:`encode_query` had to work around, kept on a dataset and logged."""

    sentences: int = 0
    words: int = 0
    oov: int = 0
    truncated: int = 0
    oov_words: Counter = field(default_factory=Counter)

    def update(self, other: WordStats) -> None:
        self.sentences += other.sentences
        self.words += other.words
        self.oov += other.oov
        self.truncated += other.truncated
        self.oov_words.update(other.oov_words)

    def __str__(self) -> str:
        top = ", ".join(w for w, _ in self.oov_words.most_common(5))
        return (
            f"{self.sentences} sentences, {self.words} words, {self.oov} out of vocabulary"
            f"{f' (most common: {top})' if top else ''}, {self.truncated} truncated"
        )


def _sniff(path: Path) -> str:
    """'binary', 'text' or 'native' from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:1] == b"\x80":  # pickle protocol 2+: gensim's own format
        return "native"
    first, _, rest = head.partition(b"\n")
    if not re.fullmatch(rb"\s*\d+\s+\d+\s*", first):
        raise ValueError(f"{path}: not a word2vec file (no 'count dim' header) nor a gensim model")
    try:
        line = rest.partition(b"\n")[0].decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    dim = int(first.split()[1])
    return "text" if len(line.split()) == dim + 1 else "binary"


def load_word_vectors(path: str | Path, limit: int | None = None) -> KeyedVectors:
    """Load word vectors as gensim ``KeyedVectors``; ``limit`` keeps the first ``limit`` words.

    Format by extension: ``.bin`` word2vec binary, ``.txt``/``.vec`` word2vec text,
    ``.kv``/``.model`` gensim's native format; anything else is sniffed from the header. A missing,
    truncated or corrupt file raises ``ValueError`` naming the file.
    """
    path = Path(path)
    if limit is not None and limit <= 0:
        raise ValueError(f"limit: expected a positive number of words or None, got {limit}")
    if not path.is_file():
        raise ValueError(f"word_vectors: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in _BINARY_SUFFIXES:
        kind = "binary"
    elif suffix in _TEXT_SUFFIXES:
        kind = "text"
    elif suffix in _NATIVE_SUFFIXES:
        kind = "native"
    else:
        kind = _sniff(path)
    try:
        if kind == "native":
            kv = KeyedVectors.load(str(path), mmap="r")
            if not isinstance(kv, KeyedVectors):
                kv = kv.wv  # a full Word2Vec/FastText model
            if limit is not None and limit < len(kv):
                small = KeyedVectors(kv.vector_size)
                small.add_vectors(kv.index_to_key[:limit], kv.vectors[:limit])
                kv = small
        else:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=kind == "binary", limit=limit)
    except (EOFError, ValueError, UnicodeDecodeError, OSError, AttributeError) as err:
        raise ValueError(f"{path}: truncated or corrupt word-vector file ({kind}): {err}") from err
    log.info("loaded %d word vectors of size %d from %s", len(kv), kv.vector_size, path)
    return kv


def word_vector_size(path: str | Path) -> int:
    """The size of the vectors in ``path``, from the word2vec header (no vector is read).

    Lets a caller reject vectors of the wrong size in milliseconds, before the minutes that
    loading 3 million of them takes. Errors as :func:`load_word_vectors`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"word_vectors: file not found: {path}")
    kind = "native" if path.suffix.lower() in _NATIVE_SUFFIXES else _sniff(path)
    if kind == "native":
        return int(load_word_vectors(path).vector_size)
    with open(path, "rb") as f:
        return int(f.readline().split()[1])


def tokenize(sentence: str) -> list[str]:
    """Split a sentence into lower-case word tokens (rules in the module docstring)."""
    tokens = []
    for tok in _TOKEN.findall(sentence.lower().replace("\u2019", "'")):
        if tok.endswith("'s") and len(tok) > 2:
            tokens.extend([tok[:-2], "'s"])
        else:
            tokens.append(tok)
    return tokens


def _lookup(token: str, kv: KeyedVectors) -> list[str | None]:
    """The vocabulary keys for one token: itself, else its hyphen parts; None for OOV."""
    if token in kv.key_to_index:
        return [token]
    if "-" in token:
        return [p if p in kv.key_to_index else None for p in token.split("-") if p]
    return [None]


def encode_query(
    query: str, kv: KeyedVectors, max_words: int = 20
) -> tuple[np.ndarray, np.ndarray, WordStats]:
    """Word vectors of a query: ``words (max_words, D)`` float32, ``word_mask (max_words,)`` bool.

    Out-of-vocabulary words keep their slot as a zero vector (word_mask True) and are counted;
    sentences longer than ``max_words`` are truncated and counted. A query with no words raises
    ``ValueError`` naming it.
    """
    if max_words <= 0:
        raise ValueError(f"max_words: expected a positive number, got {max_words}")
    stats = WordStats(sentences=1)
    keys: list[tuple[str, str | None]] = []
    for tok in tokenize(query):
        keys.extend((tok, k) for k in _lookup(tok, kv))
    if not keys:
        raise ValueError(f"query: no words in {query!r}")
    if len(keys) > max_words:
        stats.truncated = 1
        keys = keys[:max_words]
    words = np.zeros((max_words, kv.vector_size), np.float32)  # (N_T, D)
    word_mask = np.zeros(max_words, bool)  # (N_T,)
    word_mask[: len(keys)] = True
    for i, (tok, key) in enumerate(keys):
        if key is None:
            stats.oov += 1
            stats.oov_words[tok] += 1
        else:
            words[i] = kv[key]
    stats.words = len(keys)
    return words, word_mask, stats


def query_stats(queries: list[str], kv: KeyedVectors, max_words: int = 20) -> WordStats:
    """:class:`WordStats` over many queries (each counted once); empty queries raise."""
    total = WordStats()
    for q in queries:
        total.update(encode_query(q, kv, max_words)[2])
    return total
