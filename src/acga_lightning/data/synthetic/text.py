"""Referring sentences for synthetic scenes, and a small word2vec file that covers them.

A query names one actor by its shape noun plus some of colour, motion and position, chosen so
that no other actor in the clip fits the words (:func:`describe`). :func:`write_word2vec`
trains gensim word2vec on the queries and paraphrases and saves it in the binary format of
``GoogleNews-vectors-negative300.bin``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from acga_lightning.data.synthetic.scenes import COLOURS, SHAPES, Actor, Scene, position_terms

#: Motion -> verb phrases; ``{dir}`` is "left" or "right" for motions with a direction.
VERB_PHRASES: dict[str, tuple[str, ...]] = {
    "flying": ("flying to the {dir}", "flying up to the {dir}", "flying upwards to the {dir}"),
    "jumping": ("jumping", "jumping up and down", "bouncing"),
    "rolling": ("rolling to the {dir}", "rolling {dir}", "rolling towards the {dir}"),
    "running": ("running to the {dir}", "running fast to the {dir}", "moving fast to the {dir}"),
    "walking": ("walking to the {dir}", "walking slowly to the {dir}", "moving slowly {dir}"),
    "standing": ("standing still", "standing", "not moving"),
}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left"),
    "right": ("on the right", "at the right"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
}
#: Extra wordings used only in the sentence-only mode (``write_a2d(sentence_only=True)``).
SENTENCE_POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top": ("on the top",),
    "left": ("on the left side",),
    "right": ("on the right side",),
    "middle": ("in the middle", "in the centre", "between the others"),
}
ATTRIBUTES = ("colour", "motion", "position")
WORD2VEC_DIM = 300


def _matches(actor: Actor, other: Actor, used: Iterable[str]) -> bool:
    """Whether ``other`` fits a description of ``actor`` that names its shape and ``used``."""
    if other.shape != actor.shape:
        return False
    for name in used:
        if name == "colour" and other.colour != actor.colour:
            return False
        if name == "motion" and (other.motion, other.direction) != (actor.motion, actor.direction):
            return False
        if name == "position":  # position terms are unique by construction (position_terms)
            return False
    return True


def unique_attribute_sets(
    scene: Scene, index: int, positions: Sequence[str | None] | None = None
) -> list[tuple[str, ...]]:
    """Every non-empty attribute set (besides the shape noun) that singles out actor ``index``.

    A bare noun ("the ball") is left out even where it would be unique: real queries name
    more than the actor's class. ``positions`` are the actors' position words (default:
    :func:`position_terms` of the scene).
    """
    actor = scene.actors[index]
    positions = position_terms(scene) if positions is None else positions
    has_position = positions[index] is not None
    names = [n for n in ATTRIBUTES if n != "position" or has_position]
    found = []
    for k in range(1, len(names) + 1):
        for used in itertools.combinations(names, k):
            others = [a for j, a in enumerate(scene.actors) if j != index]
            if not any(_matches(actor, o, used) for o in others):
                found.append(used)
    return found


def render_query(
    actor: Actor,
    used: Sequence[str],
    position: str | None,
    rng: np.random.Generator,
    paraphrases: bool = False,
) -> str:
    """One wording of a description of ``actor`` naming its shape and the ``used`` attributes.

    ``paraphrases`` adds the wordings of :data:`SENTENCE_POSITION_PHRASES` (and "middle").
    """
    noun = str(rng.choice(SHAPES[actor.shape]))
    phrase = noun
    if "colour" in used:
        phrase = f"{actor.colour} {noun}" if rng.random() < 0.6 else f"{noun} in {actor.colour}"
    article = str(rng.choice(["", "the ", "a "]))
    if article == "a " and phrase[0] in "aeiou":
        article = "an "
    words = [article + phrase]
    if "position" in used:
        if position is None:
            raise ValueError("position: the actor has no unique position term")
        phrases = POSITION_PHRASES.get(position, ())
        if paraphrases:
            phrases = phrases + SENTENCE_POSITION_PHRASES.get(position, ())
        words.append(str(rng.choice(phrases)))
    if "motion" in used:
        side = "left" if actor.direction < 0 else "right"
        verb = str(rng.choice(VERB_PHRASES[actor.motion])).format(dir=side)
        link = str(rng.choice(["", "", "that is ", "which is ", "is "]))
        words.append(link + verb)
    return " ".join(words)


def describe(
    scene: Scene,
    index: int,
    rng: np.random.Generator,
    frames: Sequence[int] | None = None,
    sentence_only: bool = False,
    contrast: str | None = None,
) -> tuple[str, tuple[str, ...]]:
    """A query that fits actor ``index`` and no other actor and the attributes it uses.

    With ``sentence_only`` (the mode of ``write_a2d(sentence_only=True)``) a position word must
    hold at each of ``frames`` (0-based; the annotated frames), not only on average, "in the
    middle" joins the position words, and the extra paraphrases are used. ``contrast`` (a
    single-contrast scene's attribute, see ``sample_scene(vary=...)``): the query names the
    shape and that attribute alone (``shape``: the noun alone).
    """
    positions = position_terms(scene, frames, middle=sentence_only)
    if contrast is not None:  # a single-contrast scene: name the shape and that one attribute
        used = () if contrast == "shape" else (contrast,)
        actor = scene.actors[index]
        return render_query(actor, used, positions[index], rng, paraphrases=sentence_only), used
    options = unique_attribute_sets(scene, index, positions)
    if not options:  # sample_scene guarantees colour + shape + motion is unique
        raise ValueError(f"index: actor {index} cannot be told apart from the others by words")
    used = options[int(rng.integers(len(options)))]
    actor = scene.actors[index]
    return render_query(actor, used, positions[index], rng, paraphrases=sentence_only), used


def vocabulary_sentences(sentence_only: bool = False) -> list[str]:
    """Sentences that use every word any query can use (so the word vectors cover all seeds).

    ``sentence_only`` adds the words of the sentence-only mode's paraphrases.
    """
    sentences = []
    for colour, nouns in itertools.product(COLOURS, SHAPES.values()):
        for noun, phrases in itertools.product(nouns, VERB_PHRASES.values()):
            for phrase, side in itertools.product(phrases, ("left", "right")):
                verb = phrase.format(dir=side)
                sentences.append(f"the {colour} {noun} {verb}")
                sentences.append(f"a {noun} in {colour} that is {verb}")
                sentences.append(f"an {colour} {noun} {verb}")
    for position, phrases in POSITION_PHRASES.items():
        for phrase in phrases:
            sentences.append(f"the ball {phrase} which is standing {position}")
    if sentence_only:
        for position, phrases in SENTENCE_POSITION_PHRASES.items():
            for phrase in phrases:
                sentences.append(f"the box {phrase} which is standing {position}")
    return sentences


def _stable_hash(text: str) -> int:
    """A per-word number that, unlike ``hash``, does not change with PYTHONHASHSEED.

    It seeds the random part of each vector; it is also given to gensim as ``hashfxn``, which
    older gensim releases used to seed the initial vectors.
    """
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "little")


def write_word2vec(path: Path, sentences: Iterable[str], seed: int = 0) -> Path:
    """Train word2vec (300-d) on ``sentences`` and save it in word2vec binary format.

    One worker, a fixed seed and a process-independent hash make the bytes a function of the
    sentences and the seed alone. In a corpus this small "red" and "green" share every context,
    so trained vectors come out near-twins (cosine > 0.99) and a model could not tell the words
    apart. Each trained vector is therefore mixed half and half (by norm) with a random
    direction seeded by the word, which brings cosines between words to about 0.5, near what
    GoogleNews vectors give for related words.
    """
    from gensim.models import Word2Vec

    tokens = [s.lower().split() for s in sentences]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise ValueError("sentences: nothing to train on")
    model = Word2Vec(
        tokens,
        vector_size=WORD2VEC_DIM,
        window=4,
        min_count=1,
        workers=1,
        seed=seed,
        epochs=2,
        hashfxn=_stable_hash,
    )
    for i, word in enumerate(model.wv.index_to_key):
        trained = model.wv.vectors[i] / max(float(np.linalg.norm(model.wv.vectors[i])), 1e-8)
        noise = np.random.default_rng([seed, _stable_hash(word)]).standard_normal(WORD2VEC_DIM)
        model.wv.vectors[i] = 1.5 * (trained + noise / np.linalg.norm(noise))
    path.parent.mkdir(parents=True, exist_ok=True)
    model.wv.save_word2vec_format(str(path), binary=True)
    return path
