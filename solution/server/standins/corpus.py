"""Tweet-like texts shaped like the reference client's load (see shared/models.md).

One generator serves two purposes: it is the training corpus of the stand-in tokenizers (so their
token counts resemble a real vocabulary's on this kind of text) and the text source of the
benchmarks and autotests. Each text mixes short multilingual sentences, emoji, a URL, a run of
ASCII that includes control characters, and a bitcoin-like address; about 0.5% are empty.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

SENTENCES = [
    "This is how true happiness looks like",
    "I can't believe the game last night, what a comeback!",
    "Bitcoin to the moon, buy now before it is too late",
    "The weather in London is terrible again today",
    "Just finished my morning run and feeling great",
    "Nobody reads the terms and conditions anyway",
    "Breaking news: the minister resigned after the scandal",
    "Free crypto giveaway, send 1 BTC and get 2 back",
    "Ce film était vraiment magnifique, je le recommande",
    "Je pense que le gouvernement doit agir maintenant",
    "Das Essen in diesem Restaurant war ausgezeichnet",
    "Ich habe heute keine Lust zu arbeiten",
    "El partido de ayer fue increíble, qué golazo",
    "No puedo creer lo que dijo el presidente",
    "Questa è la pizza più buona che abbia mai mangiato",
    "O jogo de hoje foi uma vergonha total",
    "Это был лучший концерт в моей жизни",
    "Я не понимаю, почему все так злятся",
    "Це найкращий день у моєму житті",
    "Dzisiaj jest piękna pogoda na spacer",
    "Bugün hava çok güzel, dışarı çıkalım",
    "هذا أجمل يوم في حياتي",
    "今日はとても楽しい一日でした",
    "我今天很高兴，天气也很好",
    "我們明天一起去吃飯吧",
    "Το φαγητό ήταν υπέροχο χθες βράδυ",
    "Dit is echt het beste nieuws van de week",
    "Det här är den bästa dagen någonsin",
    "Tämä on paras päivä ikinä",
    "You are an idiot and everyone hates you",
    "Scientists confirm the moon is made of cheese, sources say",
    "Thanks for the support everyone, love you all",
    "Monday again... why does the weekend go so fast",
    "New blog post about machine learning in production",
    "Vote for change, vote for the future of our children",
]
EMOJI = ["👍", "😜", "😂", "🔥", "🚀", "💰", "❤️", "😡", "🙏", "🎉", "🤔", "😭", "✨", "🌍", "📈"]
DOMAINS = ["t.co", "example.com", "news.example.org", "bit.ly", "youtu.be"]
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# printable ASCII plus every C0 control character, which clients send JSON-escaped (\u0000..\u001f)
ASCII_RUN = string.printable + "".join(chr(c) for c in range(32))


def _url(rng: random.Random) -> str:
    path = "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(6, 12)))
    return f"https://{rng.choice(DOMAINS)}/{path}"


def _bitcoin_address(rng: random.Random) -> str:
    return rng.choice("13") + "".join(rng.choices(BASE58, k=rng.randint(25, 33)))


def tweet(rng: random.Random) -> str:
    """One text of the reference client's shape (never empty)."""
    parts = [rng.choice(SENTENCES) for _ in range(rng.randint(1, 3))]
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
    """Lines for training the stand-in tokenizers: tweets plus the bare sentences, so that whole
    words of every language become pieces, the way a real multilingual vocabulary has them."""
    yield from SENTENCES
    rng = random.Random(seed)
    for _ in range(n):
        yield tweet(rng)
