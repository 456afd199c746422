import pytest

from ml.labels import (EMOTIONS, EMOTION_TO_FER, FER_CLASSES, RAVDESS_CODE_TO_EMOTION, UnknownEmotionError,
                       fer_index, merge_calm, normalize_emotion)


def test_vocabulary_is_ravdess_order():
    assert EMOTIONS == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert [RAVDESS_CODE_TO_EMOTION[f"{i:02d}"] for i in range(1, 9)] == list(EMOTIONS)


def test_fer_map_follows_the_spec():
    assert EMOTION_TO_FER["calm"] == "neutral"
    assert EMOTION_TO_FER["fearful"] == "fear"
    assert EMOTION_TO_FER["surprised"] == "surprise"
    for e in ("neutral", "happy", "sad", "angry", "disgust"):
        assert EMOTION_TO_FER[e] == e
    assert set(EMOTION_TO_FER.values()) == set(FER_CLASSES)
    assert FER_CLASSES[fer_index("happy")] == "happy"
    assert fer_index("calm") == fer_index("neutral") == 6


@pytest.mark.parametrize("name, expected", [("HAPPY", "happy"), (" Fear ", "fearful"), ("surprise", "surprised")])
def test_normalize_accepts_case_and_aliases(name, expected):
    assert normalize_emotion(name) == expected


def test_unknown_emotion_names_the_choices():
    with pytest.raises(UnknownEmotionError, match="bored.*accepted: neutral"):
        normalize_emotion("bored")


def test_merge_calm():
    assert [merge_calm(i) for i in range(8)] == [0, 0, 1, 2, 3, 4, 5, 6]
