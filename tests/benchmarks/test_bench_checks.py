import pytest

from solution.benchmarks.checks import check_http, check_result, expected_labels

KEYS = ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]


@pytest.fixture(scope="module")
def labels():
    return expected_labels()


def good():
    return {
        "cardiffnlp": {"score": 0.9, "label": "POSITIVE"},
        "ivanlau": {"score": 0.5, "label": "Mongolian"},
        "svalabs": {"score": 0.7, "label": "SPAM"},
        "EIStakovskii": {"score": 0.6, "label": "LABEL_1"},
        "jy46604790": {"score": 0.51, "label": "LABEL_0"},
    }


def test_label_sets_come_from_the_model_config_and_its_overrides(labels):
    assert list(labels) == KEYS
    assert labels["cardiffnlp"] == {"NEGATIVE", "NEUTRAL", "POSITIVE"}  # override of lowercase
    assert "Mongolian" in labels["ivanlau"] and "Mangolian" not in labels["ivanlau"]
    assert "Ukranian" in labels["ivanlau"] and len(labels["ivanlau"]) == 45
    assert labels["svalabs"] == {"HAM", "SPAM"}
    assert labels["EIStakovskii"] == labels["jy46604790"] == {"LABEL_0", "LABEL_1"}


def test_label_sets_read_from_model_folders_agree(labels, standins_tiny):
    assert expected_labels(models_dir=standins_tiny) == labels


def test_a_good_result_passes(labels):
    assert check_result(good(), labels) is None


@pytest.mark.parametrize(
    "mutate, kind",
    [
        (lambda r: r.pop("svalabs"), "check_keys"),
        (lambda r: r.update(extra={"score": 1.0, "label": "X"}), "check_keys"),
        (lambda r: r["ivanlau"].update(label="Mangolian"), "check_label"),
        (lambda r: r["cardiffnlp"].update(label="positive"), "check_label"),
        (lambda r: r["svalabs"].update(score=0.0), "check_score"),
        (lambda r: r["svalabs"].update(score="0.9"), "check_score"),
        (lambda r: r["svalabs"].update(score=True), "check_score"),
        (lambda r: r["jy46604790"].pop("score"), "check_score"),
        (lambda r: r.update(svalabs="HAM"), "check_shape"),
    ],
)
def test_a_wrong_key_label_or_score_is_caught(labels, mutate, kind):
    result = good()
    mutate(result)
    outcome = check_result(result, labels)
    assert outcome is not None and outcome[0] == kind


def test_http_checks_status_and_json(labels):
    import orjson

    assert check_http(200, orjson.dumps(good()), labels) is None
    refused = b'{"error":"queue full"}'
    assert check_http(503, refused, labels) == ("http_503", refused.decode())
    assert check_http(200, b"{not json", labels)[0] == "check_json"
    assert check_http(200, b"[]", labels)[0] == "check_shape"
