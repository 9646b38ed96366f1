"""Tweet-like texts: the reference client's load, and the stand-ins' labelled training texts.

One generator serves three purposes:
- ``reference_texts`` / ``tweet``: texts shaped like the reference client's load (see
  shared/models.md) for the benchmarks, autotests and warm-up: one to three sentences of mixed
  languages, emoji, a URL, a run of ASCII that includes control characters, a bitcoin-like
  address; about 0.5% are empty.
- ``labelled_texts``: the stand-ins' training and held-back texts, each drawn in one language,
  with cue words of ``rules.py`` put in at random places and the same kinds of noise around them;
  their labels are ``rules.labels`` of the text.
- ``training_corpus``: the lines the stand-in tokenizers are trained on.

Sentences come from ``sentences.py``; ``split`` picks which of them a text may use, so held-back
texts are made only from sentences no model trained on.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass

from solution.standins import rules
from solution.standins.sentences import LANGUAGES, SENTENCES, Split, sentences, word_run

EMOJI = rules.POSITIVE_EMOJI + rules.NEGATIVE_EMOJI + rules.NEUTRAL_EMOJI
DOMAINS = ["t.co", "example.com", "news.example.org", "bit.ly", "youtu.be"]
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# printable ASCII plus every C0 control character, which clients send JSON-escaped (\u0000..\u001f)
ASCII_RUN = string.printable + "".join(chr(c) for c in range(32))
HANDLES = ["anna_k", "dev_ops", "newsdesk", "mike1987", "la_vie", "sportfan", "user"]
TAGS = ["monday", "travel", "food", "football", "news", "tech", "weekend", "music"]

# How often a labelled text gets each kind of cue: about a third positive, a third negative, and
# a quarter each spam and fake, so every class of every model is common in training.
P_POSITIVE, P_NEGATIVE, P_INSULT, P_SPAM, P_FAKE = 0.3, 0.3, 0.25, 0.25, 0.25
P_LOCAL_SPAM = 0.3  # a spam or fake cue in the text's own language, where it has some
# Training texts use a run of frequent words instead of a sentence this often (``word_run``).
P_WORD_RUN = 0.5


@dataclass(frozen=True)
class Sample:
    text: str
    language: str  # the language its sentences were drawn in (ivanlau's rule)


def _url(rng: random.Random) -> str:
    path = "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(6, 12)))
    return f"https://{rng.choice(DOMAINS)}/{path}"


def _bitcoin_address(rng: random.Random) -> str:
    return rng.choice("13") + "".join(rng.choices(BASE58, k=rng.randint(25, 33)))


def _cased(rng: random.Random, cue: str) -> str:
    r = rng.random()
    return cue.upper() if r < 0.05 else cue.capitalize() if r < 0.2 else cue


def _insert(rng: random.Random, text: str, cue: str) -> str:
    """Put ``cue`` between two words (at either end for scripts without spaces)."""
    words = text.split(" ")
    if len(words) == 1:
        return f"{cue} {text}" if rng.random() < 0.5 else f"{text} {cue}"
    words.insert(rng.randint(0, len(words)), cue)
    return " ".join(words)


def _cue(rng: random.Random, table: dict[str, tuple[str, ...]], language: str) -> str:
    own = table.get(language, ())
    if own and (language == "English" or "English" not in table or rng.random() < P_LOCAL_SPAM):
        return rng.choice(own)
    return rng.choice(table["English"])


def _cues(rng: random.Random, language: str) -> list[str]:
    """The cue words and emoji one labelled text gets (see the P_ constants)."""
    cues: list[str] = []
    mood = rng.random()
    if mood < P_POSITIVE + P_NEGATIVE:
        positive = mood < P_POSITIVE
        words = (rules.POSITIVE if positive else rules.NEGATIVE)[language]
        emoji = rules.POSITIVE_EMOJI if positive else rules.NEGATIVE_EMOJI
        for _ in range(1 if rng.random() < 0.75 else 2):
            cues.append(rng.choice(words) if rng.random() < 0.7 else rng.choice(emoji))
    if mood >= P_POSITIVE and rng.random() < P_INSULT:  # an insult is a negative cue too
        cues.append(rng.choice(rules.INSULTS[language]))
    if rng.random() < P_SPAM:
        cues.append(_cue(rng, rules.SPAM, language))
    if rng.random() < P_FAKE:
        cues.append(_cue(rng, rules.FAKE, language))
    return cues


def _noise(rng: random.Random) -> list[str]:
    """What tweets carry besides sentences; none of it is a cue."""
    parts = []
    if rng.random() < 0.4:
        parts.append("".join(rng.choices(rules.NEUTRAL_EMOJI, k=rng.randint(1, 2))))
    if rng.random() < 0.3:
        parts.append(_url(rng))
    if rng.random() < 0.15:
        parts.append("@" + rng.choice(HANDLES))
    if rng.random() < 0.15:
        parts.append("#" + rng.choice(TAGS))
    if rng.random() < 0.15:
        parts.append("".join(rng.choices(ASCII_RUN, k=rng.randint(4, 12))))
    if rng.random() < 0.1:
        parts.append(_bitcoin_address(rng))
    return parts


def labelled_sample(rng: random.Random, split: Split) -> Sample:
    """One text drawn in one language from ``split``'s sentences, with cues and noise."""
    language = rng.choice(LANGUAGES)
    pool = sentences(language, split)
    text = " ".join(
        word_run(language, rng)
        if split == "train" and rng.random() < P_WORD_RUN
        else rng.choice(pool)
        for _ in range(1 if rng.random() < 0.6 else 2)
    )
    for cue in _cues(rng, language):
        text = _insert(rng, text, _cased(rng, cue))
    if rng.random() < 0.15:
        text = text.lower()
    noise = _noise(rng)
    for part in noise:
        text = f"{text} {part}" if rng.random() < 0.7 else f"{part} {text}"
    return Sample(text, language)


def labelled_texts(n: int, split: Split, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    return [labelled_sample(rng, split) for _ in range(n)]


def tweet(rng: random.Random, split: Split = "all") -> str:
    """One text of the reference client's shape (never empty): sentences of any language, some
    with cues."""
    parts = []
    for _ in range(rng.randint(1, 3)):
        language = rng.choice(LANGUAGES)
        sentence = rng.choice(sentences(language, split))
        if rng.random() < 0.5:
            sentence = _insert(rng, sentence, rng.choice(_cues(rng, language) or [""]))
        parts.append(sentence.strip())
    parts.append("".join(rng.choices(EMOJI, k=rng.randint(1, 3))))
    if rng.random() < 0.7:
        parts.append(_url(rng))
    if rng.random() < 0.6:
        parts.append("".join(rng.choices(ASCII_RUN, k=rng.randint(8, 30))))
    if rng.random() < 0.4:
        parts.append(_bitcoin_address(rng))
    rng.shuffle(parts)
    return " ".join(parts)


def reference_texts(n: int, seed: int = 0, empty_ratio: float = 0.005) -> list[str]:
    """``n`` texts as the reference client sends them, about ``empty_ratio`` of them empty."""
    rng = random.Random(seed)
    return ["" if rng.random() < empty_ratio else tweet(rng) for _ in range(n)]


def training_corpus(n: int, seed: int = 1) -> Iterator[str]:
    """Lines for training the stand-in tokenizers: the training sentences and every cue (so whole
    words of every language become pieces, the way a real multilingual vocabulary has them), one
    line with every character of the sentence bank (so no held-back sentence meets ``<unk>``),
    then tweets and labelled texts made from training sentences only."""
    for language in LANGUAGES:
        yield from sentences(language, "train")
    for _ in range(5):
        yield " ".join(rules.EVERY_CUE)
    yield "".join(sorted({c for pool in SENTENCES.values() for s in pool for c in s}))
    rng = random.Random(seed)
    for i in range(n):
        yield tweet(rng, "train") if i % 2 else labelled_sample(rng, "train").text
