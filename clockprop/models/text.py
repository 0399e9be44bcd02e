"""Character-level text for the recurrent models: a vocabulary and two built-in corpora.

A :class:`Vocab` maps the distinct characters of any UTF-8 text (Japanese included) to the
indices ``0 .. V-1`` in code-point order; a character is fed to a network as a one-hot input
and predicted as one of ``V`` classes.

Built-in corpora (both deterministic, neither needs a file or the network):

``iyoshi_corpus()``
    Words over the three characters い, よ, し, concatenated without separators in a seeded
    random order. Every word ends in し, and its first character picks the word::

        いよよし    よいいし

    Inside a word, the next character is a function of the current *and the previous*
    character (``(し,い)->よ, (い,よ)->よ, (よ,よ)->し, (し,よ)->い, (よ,い)->い,
    (い,い)->し``), while the character after し starts a random word. So 3 of every 4
    positions are determined by context, and none is determined by the current character
    alone: a network that sees only the current character is right about one time in three
    there (the current character has three equally likely successors), an Elman network
    that keeps the previous character in its context can be right every time.

``prose_corpus()``
    About 4 KB of plain lower-case English prose written for this project (dedicated to the
    public domain), for a harder, open-ended run measured in bits per character.
"""

from dataclasses import dataclass

import numpy as np

from ..core.errors import ClockpropError

__all__ = ["Vocab", "IYOSHI_WORDS", "iyoshi_corpus", "prose_corpus", "determined_positions"]


@dataclass(frozen=True)
class Vocab:
    """The characters of a text, in code-point order; index ``i`` is class/input ``i``."""

    chars: tuple

    def __post_init__(self):
        if not self.chars:
            raise ClockpropError("the vocabulary is empty: the corpus has no characters")
        if len(set(self.chars)) != len(self.chars):
            raise ClockpropError("the vocabulary lists a character twice")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text):
        """Every distinct character of ``text`` (a ``str``, or UTF-8 ``bytes``)."""
        text = _as_str(text)
        if not text:
            raise ClockpropError("the corpus is empty; give a text with at least two "
                                 "characters")
        return cls(tuple(sorted(set(text))))

    def __len__(self):
        return len(self.chars)

    def __contains__(self, char):
        return char in self._index

    def missing(self, text):
        """The characters of ``text`` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in _as_str(text) if c not in self._index))

    def encode(self, text, what="text"):
        """Indices (int64) of the characters of ``text``; unknown characters raise."""
        text = _as_str(text)
        missing = self.missing(text)
        if missing:
            shown = " ".join(repr(c) for c in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ClockpropError(f"the {what} has characters outside the vocabulary: "
                                 f"{shown}{more}; the model knows only "
                                 f"{''.join(self.chars)!r}")
        return np.fromiter((self._index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids):
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.chars)):
            raise ClockpropError(f"character indices must be in [0, {len(self.chars) - 1}]")
        return "".join(self.chars[i] for i in ids)

    def one_hot(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        return np.eye(len(self.chars), dtype=np.float64)[ids]


def _as_str(text):
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ClockpropError(f"the text is not valid UTF-8: {e}") from None
    if not isinstance(text, str):
        raise ClockpropError(f"expected text (str or UTF-8 bytes), got {type(text).__name__}")
    return text


IYOSHI_WORDS = ("いよよし", "よいいし")


def iyoshi_corpus(n_words=300, seed=0):
    """``n_words`` words of :data:`IYOSHI_WORDS`, drawn uniformly with ``seed``, concatenated."""
    if not isinstance(n_words, int) or n_words < 1:
        raise ClockpropError(f"the corpus needs at least one word, got n_words={n_words!r}")
    rng = np.random.default_rng(seed)
    return "".join(IYOSHI_WORDS[i] for i in rng.integers(0, len(IYOSHI_WORDS), n_words))


def determined_positions(text, order=2):
    """Which next characters are fixed by the last ``order`` characters, over the whole text.

    Returns a boolean array ``m`` of length ``len(text) - 1``: ``m[t]`` is true when
    position ``t`` predicts ``text[t + 1]`` and every occurrence in ``text`` of the
    ``order``-gram ``text[t - order + 1 : t + 1]`` is followed by the same character
    (positions with fewer than ``order`` characters of history are false). With
    ``order=1`` this is what a network without context can know; the positions that are
    true for ``order=2`` but false for ``order=1`` need the context.
    """
    text = _as_str(text)
    if not isinstance(order, int) or order < 1:
        raise ClockpropError(f"order must be a positive integer, got {order!r}")
    n = len(text) - 1
    successors = {}
    for t in range(order - 1, n):
        successors.setdefault(text[t - order + 1:t + 1], set()).add(text[t + 1])
    mask = np.zeros(max(n, 0), dtype=bool)
    for t in range(order - 1, n):
        mask[t] = len(successors[text[t - order + 1:t + 1]]) == 1
    return mask


_PROSE = """\
the old clock on the station wall had stopped at a quarter past nine, and nobody in the \
village could remember when it had last been right. the children said it was always a \
quarter past nine in the station, and that if you waited there long enough you would stop \
growing older. the stationmaster, a patient man with a grey coat and a small black \
notebook, did not believe this, but he did not argue with it either.

every morning he opened the doors, swept the platform, and wrote the weather in his book. \
wind from the west, light rain. wind from the north, clear and cold. the trains came when \
they came. the first one of the day carried milk and letters, the second carried people \
who were going to the town by the river, and the third, which came in the evening, carried \
the same people home again, tired and quiet, with paper bags of bread and fish.

one spring a young woman stepped off the evening train with a wooden box under her arm. \
she asked the stationmaster whether anyone in the village mended clocks. he told her that \
nobody did, and that the clock on the wall was proof of it. she looked up at the clock for \
a long time. then she asked if she might try.

he found her a ladder. she climbed up, opened the glass face, and looked inside. the \
works were full of dust and the small nests of insects, and one of the wheels had lost a \
tooth. she took the clock down, piece by piece, and laid the pieces on a clean cloth on \
the bench where people waited for the trains. the children came to watch. she showed them \
the wheels, the spring, and the little rocking part that lets the spring go one tooth at \
a time. this is the escapement, she said. it counts. without it the spring would let go \
all at once, and the hands would spin round and round and then stop. with it, the spring \
lets go a little at a time, one tick after another, and that is what we call time.

it took her nine days. she cut a new tooth from a piece of brass with a small file, and \
she cleaned every wheel in a dish of oil. on the tenth morning she climbed the ladder again \
and hung the clock on the wall. she set the hands by the sun at noon, and she pushed the \
pendulum gently with one finger. the clock began to tick.

the children were disappointed. now we will grow older, they said. the stationmaster \
laughed, and wrote in his book: wind from the south, warm. the clock is going.

she stayed in the village for the summer. she mended the clock in the school, the clock \
in the inn, and a small gold watch that had belonged to the grandfather of the baker. she \
did not ask for money, only for bread and a room, and for the names of the trees and the \
birds, which she wrote in a notebook of her own. in the evenings she sat on the bench at \
the station and listened to the clock, and the stationmaster sat beside her and listened \
too.

when the leaves began to turn, she packed her wooden box and bought a ticket for the \
morning train. the stationmaster asked her where she would go. there are clocks \
everywhere, she said, and most of them are stopped. he gave her his old notebook, the one \
with the weather of many years in it, and she gave him a small brass key. if it ever \
stops, she said, wind it. and if that does not help, write to me.

the train came at the right time, because now there was a right time, and she climbed \
aboard. the children waved from the platform. the stationmaster watched until the smoke \
was gone over the hill, and then he went inside and wrote: wind from the east, cool. the \
clock is going. the clockmaker has gone.

the clock did not stop that winter, or the next. every sunday the stationmaster climbed \
the ladder and turned the brass key seven times, no more and no less, as she had shown \
him. the children grew older, as children do, and some of them took the morning train to \
the town by the river and did not come back for a long time. when they did come back, \
they looked up at the clock on the station wall, and it was always the right time, and \
they were glad.
"""


def prose_corpus():
    """The built-in English prose (about 4 KB, lower case, public domain)."""
    return _PROSE
