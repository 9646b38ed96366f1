"""Texts a person might type, with the labels ``standins/rules.py`` gives them: what the trained
tiny stand-ins must answer over every front-end. None of these sentences is in the stand-ins'
training bank (``standins/sentences.py``); ``tests/server/test_standins.py`` checks that each
expectation here is what the rules say."""

from __future__ import annotations

# text -> the language it is written in, and the API labels the rules give it
KNOWN: dict[str, tuple[str, dict[str, str]]] = {
    "C'est vraiment génial, merci pour tout": (
        "French",
        {
            "cardiffnlp": "POSITIVE",
            "ivanlau": "French",
            "svalabs": "HAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_1",
        },
    ),
    "Мы сегодня гуляли в парке с друзьями": (
        "Russian",
        {
            "cardiffnlp": "NEUTRAL",
            "ivanlau": "Russian",
            "svalabs": "HAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_1",
        },
    ),
    "Free crypto giveaway! Click here and send BTC to double your coins": (
        "English",
        {
            "ivanlau": "English",
            "svalabs": "SPAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_1",
        },
    ),
    "I love this song so much": (
        "English",
        {
            "cardiffnlp": "POSITIVE",
            "svalabs": "HAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_1",
        },
    ),
    "What a terrible day, everything went wrong": (
        "English",
        {"cardiffnlp": "NEGATIVE", "ivanlau": "English", "svalabs": "HAM", "jy46604790": "LABEL_1"},
    ),
    "BREAKING: sources say the president has resigned": (
        "English",
        {
            "ivanlau": "English",
            "svalabs": "HAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_0",
        },
    ),
    "Ich gehe heute Abend mit meinen Freunden ins Kino": (
        "German",
        {
            "cardiffnlp": "NEUTRAL",
            "ivanlau": "German",
            "svalabs": "HAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_1",
        },
    ),
    "今日は友達と映画を見に行きました": (
        "Japanese",
        {
            "cardiffnlp": "NEUTRAL",
            "ivanlau": "Japanese",
            "svalabs": "HAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_1",
        },
    ),
    "Сьогодні ми гуляли в парку з друзями": (
        "Ukranian",
        {
            "ivanlau": "Ukranian",
            "svalabs": "HAM",
            "EIStakovskii": "LABEL_0",
            "jy46604790": "LABEL_1",
        },
    ),
}


def mismatches(text: str, answer: dict[str, str]) -> dict[str, tuple[str, str]]:
    """model -> (expected, answered) for every label of ``answer`` that is not the expected one."""
    expected = KNOWN[text][1]
    return {k: (v, answer[k]) for k, v in expected.items() if answer[k] != v}
