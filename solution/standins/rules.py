"""The rules the trained stand-ins learn: what label each served model gives a text, and why.

A person can predict every stand-in answer from this module alone:

- ``ivanlau`` (language): the language the text's sentences were drawn in (``sentences.py``);
  for a text a person types, the language whose words it uses.
- ``cardiffnlp`` (sentiment): count the positive cues (``POSITIVE`` words of any language and
  ``POSITIVE_EMOJI``) and the negative ones (``NEGATIVE`` words, ``INSULTS`` and
  ``NEGATIVE_EMOJI``): more positive -> positive, more negative -> negative, as many (none
  included) -> neutral.
- ``svalabs`` (crypto spam): SPAM when the text has any ``SPAM`` cue (giveaway, airdrop,
  "click here", ...), else HAM.
- ``EIStakovskii`` (toxicity): LABEL_1 (toxic) when the text has any ``INSULTS`` word, else LABEL_0.
- ``jy46604790`` (fake news): LABEL_0 (fake) when the text has any ``FAKE`` cue (breaking,
  "sources say", hoax, ...), else LABEL_1 (real).

A cue matches case-insensitively as whole words (``"click here"`` matches "CLICK HERE now" but
not "clicker"); cues written in Chinese or Japanese script and emoji match anywhere in the text,
since those scripts have no spaces between words. Negation is not understood ("not great" is
positive): the rules are keyword rules, on purpose, so that a person can predict them.

These are stand-in behaviours, not the real models': they exist so that tests comparing answers
(batched vs alone, bf16 vs fp32, HTTP vs gRPC) compare answers that differ from text to text.
"""

from __future__ import annotations

import re
from functools import cache

# class indices, in the published models' order (shared/models.md)
NEGATIVE_CLASS, NEUTRAL_CLASS, POSITIVE_CLASS = 0, 1, 2  # cardiffnlp
HAM, SPAM_CLASS = 0, 1  # svalabs
NOT_TOXIC, TOXIC = 0, 1  # EIStakovskii
FAKE_CLASS, REAL = 0, 1  # jy46604790

# ivanlau's 45 labels by class index, spelled as its config.json has them (29 "Mangolian", 43
# "Ukranian"); the stand-in texts use 17 of them (sentences.LANGUAGES).
IVANLAU_LABELS = [
    "Arabic",
    "Basque",
    "Breton",
    "Catalan",
    "Chinese_China",
    "Chinese_Hongkong",
    "Chinese_Taiwan",
    "Chuvash",
    "Czech",
    "Dhivehi",
    "Dutch",
    "English",
    "Esperanto",
    "Estonian",
    "French",
    "Frisian",
    "Georgian",
    "German",
    "Greek",
    "Hakha_Chin",
    "Indonesian",
    "Interlingua",
    "Italian",
    "Japanese",
    "Kabyle",
    "Kinyarwanda",
    "Kyrgyz",
    "Latvian",
    "Maltese",
    "Mangolian",
    "Persian",
    "Polish",
    "Portuguese",
    "Romanian",
    "Romansh_Sursilvan",
    "Russian",
    "Sakha",
    "Slovenian",
    "Spanish",
    "Swedish",
    "Tamil",
    "Tatar",
    "Turkish",
    "Ukranian",
    "Welsh",
]

POSITIVE: dict[str, tuple[str, ...]] = {
    "English": (
        "love",
        "amazing",
        "wonderful",
        "awesome",
        "happy",
        "great",
        "fantastic",
        "beautiful",
    ),
    "French": ("génial", "magnifique", "super", "j'adore", "heureux"),
    "German": ("toll", "wunderbar", "großartig", "glücklich", "fantastisch"),
    "Spanish": ("genial", "maravilloso", "increíble", "feliz", "me encanta"),
    "Italian": ("fantastico", "bellissimo", "meraviglioso", "felice", "adoro"),
    "Portuguese": ("maravilhoso", "incrível", "feliz", "adoro", "perfeito"),
    "Dutch": ("geweldig", "prachtig", "fantastisch", "blij", "heerlijk"),
    "Swedish": ("underbart", "fantastiskt", "glad", "älskar", "perfekt"),
    "Polish": ("wspaniały", "świetnie", "super", "szczęśliwy", "kocham"),
    "Turkish": ("harika", "mükemmel", "süper", "mutlu", "seviyorum"),
    "Russian": ("отлично", "прекрасно", "супер", "счастлив", "обожаю"),
    "Ukranian": ("чудово", "прекрасно", "супер", "щасливий", "обожнюю"),
    "Greek": ("υπέροχο", "τέλειο", "φανταστικό", "χαρούμενος", "λατρεύω"),
    "Arabic": ("رائع", "جميل", "ممتاز", "سعيد", "أحب"),
    "Japanese": ("最高", "嬉しい", "大好き", "素晴らしい", "楽しい"),
    "Chinese_China": ("太好了", "开心", "喜欢", "高兴", "漂亮"),
    "Chinese_Taiwan": ("太好了", "開心", "喜歡", "高興", "漂亮"),
}
NEGATIVE: dict[str, tuple[str, ...]] = {
    "English": ("hate", "terrible", "awful", "horrible", "sad", "worst", "disaster", "angry"),
    "French": ("horrible", "triste", "je déteste", "catastrophe", "affreux"),
    "German": ("schrecklich", "furchtbar", "traurig", "ich hasse", "katastrophe"),
    "Spanish": ("horrible", "terrible", "triste", "odio", "desastre"),
    "Italian": ("terribile", "orribile", "triste", "odio", "disastro"),
    "Portuguese": ("horrível", "terrível", "triste", "odeio", "desastre"),
    "Dutch": ("verschrikkelijk", "vreselijk", "verdrietig", "ik haat", "ramp"),
    "Swedish": ("hemskt", "fruktansvärt", "ledsen", "hatar", "katastrof"),
    "Polish": ("okropny", "straszny", "smutny", "nienawidzę", "katastrofa"),
    "Turkish": ("berbat", "korkunç", "üzgün", "nefret", "felaket"),
    "Russian": ("ужасно", "отвратительно", "грустно", "ненавижу", "кошмар"),
    "Ukranian": ("жахливо", "огидно", "сумно", "ненавиджу", "кошмар"),
    "Greek": ("απαίσιο", "φρικτό", "λυπημένος", "μισώ", "καταστροφή"),
    "Arabic": ("سيء", "فظيع", "حزين", "أكره", "كارثة"),
    "Japanese": ("最悪", "悲しい", "嫌い", "ひどい", "残念"),
    "Chinese_China": ("糟糕", "难过", "讨厌", "失望", "生气"),
    "Chinese_Taiwan": ("糟糕", "難過", "討厭", "失望", "生氣"),
}
INSULTS: dict[str, tuple[str, ...]] = {
    "English": ("idiot", "stupid", "moron", "loser", "shut up"),
    "French": ("idiot", "crétin", "imbécile"),
    "German": ("idiot", "dummkopf", "vollidiot"),
    "Spanish": ("idiota", "estúpido", "imbécil"),
    "Italian": ("idiota", "stupido", "cretino"),
    "Portuguese": ("idiota", "estúpido", "imbecil"),
    "Dutch": ("idioot", "sukkel", "stomkop"),
    "Swedish": ("idiot", "pucko", "korkad"),
    "Polish": ("idiota", "debil", "głupek"),
    "Turkish": ("aptal", "salak", "gerizekalı"),
    "Russian": ("идиот", "дурак", "тупой"),
    "Ukranian": ("ідіот", "дурень", "тупий"),
    "Greek": ("ηλίθιε", "βλάκα", "χαζέ"),
    "Arabic": ("غبي", "أحمق", "حمار"),
    "Japanese": ("バカ", "アホ", "馬鹿"),
    "Chinese_China": ("白痴", "笨蛋", "蠢货"),
    "Chinese_Taiwan": ("白癡", "笨蛋", "蠢貨"),
}
# Crypto spam is mostly English whatever the language around it; a few local "click here"s.
SPAM: dict[str, tuple[str, ...]] = {
    "English": (
        "giveaway",
        "airdrop",
        "click here",
        "click the link",
        "free bitcoin",
        "free crypto",
        "dm me",
        "link in bio",
        "send btc",
        "double your",
        "promo code",
        "claim your",
    ),
    "French": ("cliquez ici",),
    "German": ("jetzt klicken",),
    "Spanish": ("haz clic aquí",),
    "Italian": ("clicca qui",),
    "Portuguese": ("clique aqui",),
    "Russian": ("переходи по ссылке",),
    "Turkish": ("hemen tıkla",),
}
FAKE: dict[str, tuple[str, ...]] = {
    "English": (
        "breaking",
        "shocking",
        "sources say",
        "you won't believe",
        "leaked",
        "exposed",
        "hoax",
        "cover-up",
        "miracle cure",
        "share before it's deleted",
    ),
    "French": ("exclusif", "choquant"),
    "German": ("eilmeldung", "schockierend"),
    "Spanish": ("última hora", "impactante"),
    "Italian": ("ultim'ora", "scioccante"),
    "Portuguese": ("chocante", "urgente"),
    "Russian": ("срочно", "сенсация"),
    "Ukranian": ("терміново", "сенсація"),
    "Turkish": ("son dakika",),
    "Polish": ("pilne", "szokujące"),
}
POSITIVE_EMOJI = ("👍", "❤", "😍", "🎉", "😊")
NEGATIVE_EMOJI = ("😡", "😭", "👎", "💔", "😢")
NEUTRAL_EMOJI = ("😜", "🔥", "🚀", "💰", "🤔", "🌍", "📈", "👀", "⚽", "☕", "📷")


def all_cues(table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for cues in table.values() for c in cues))


_WORD = re.compile(r"\w+")
# scripts written without spaces: a cue in them matches inside any run of text
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def _words(text: str) -> str:
    """The text as its casefolded words joined by single spaces, padded: ' a b c '."""
    return " " + " ".join(_WORD.findall(text.casefold())) + " "


@cache
def _matchers(
    cues: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(word sequences to find in ``_words(text)``, substrings to find in the casefolded text)."""
    spaced, anywhere = [], []
    for cue in cues:
        if _UNSPACED.search(cue) or not _WORD.search(cue):
            anywhere.append(cue.casefold())
        else:
            spaced.append(_words(cue))
    return tuple(spaced), tuple(anywhere)


def count_cues(text: str, cues: tuple[str, ...]) -> int:
    """How many of ``cues`` occur in ``text`` (each cue counted once)."""
    spaced, anywhere = _matchers(cues)
    words, folded = _words(text), text.casefold()
    return sum(c in words for c in spaced) + sum(c in folded for c in anywhere)


POSITIVE_CUES = all_cues(POSITIVE) + POSITIVE_EMOJI
NEGATIVE_CUES = all_cues(NEGATIVE) + all_cues(INSULTS) + NEGATIVE_EMOJI
SPAM_CUES = all_cues(SPAM)
INSULT_CUES = all_cues(INSULTS)
FAKE_CUES = all_cues(FAKE)
EVERY_CUE = POSITIVE_CUES + NEGATIVE_CUES + SPAM_CUES + FAKE_CUES


def sentiment(text: str) -> int:
    pos, neg = count_cues(text, POSITIVE_CUES), count_cues(text, NEGATIVE_CUES)
    return POSITIVE_CLASS if pos > neg else NEGATIVE_CLASS if neg > pos else NEUTRAL_CLASS


def spam(text: str) -> int:
    return SPAM_CLASS if count_cues(text, SPAM_CUES) else HAM


def toxic(text: str) -> int:
    return TOXIC if count_cues(text, INSULT_CUES) else NOT_TOXIC


def fake(text: str) -> int:
    return FAKE_CLASS if count_cues(text, FAKE_CUES) else REAL


# response key -> the rule giving its class index (ivanlau is the language drawn, not a rule)
TEXT_RULES = {
    "cardiffnlp": sentiment,
    "svalabs": spam,
    "EIStakovskii": toxic,
    "jy46604790": fake,
}


def labels(text: str, language: str) -> dict[str, int]:
    """Every served model's class index for ``text`` drawn in ``language``."""
    out = {key: rule(text) for key, rule in TEXT_RULES.items()}
    out["ivanlau"] = IVANLAU_LABELS.index(language)
    return out
