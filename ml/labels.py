"""The one emotion vocabulary of the project and its maps to RAVDESS codes and FER-2013 classes."""

from __future__ import annotations

#: The project's emotions, in RAVDESS order (code 01..08). Index i is RAVDESS code i + 1.
EMOTIONS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
)

#: FER-2013 classes, in the dataset's index order (0 angry .. 6 neutral).
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: RAVDESS two-digit emotion code -> project emotion.
RAVDESS_CODE_TO_EMOTION: dict[str, str] = {f"{i + 1:02d}": e for i, e in enumerate(EMOTIONS)}

#: Project emotion -> the FER-2013 class the face generator draws for it. RAVDESS has "calm",
#: FER-2013 has no such class: calm is drawn as neutral, the nearest expression.
EMOTION_TO_FER: dict[str, str] = {
    "neutral": "neutral",
    "calm": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fearful": "fear",
    "disgust": "disgust",
    "surprised": "surprise",
}

#: Extra names accepted from users: the FER spellings of two emotions.
ALIASES: dict[str, str] = {"fear": "fearful", "surprise": "surprised"}


class UnknownEmotionError(ValueError):
    """An emotion name outside the vocabulary (and its aliases)."""


def normalize_emotion(name: str) -> str:
    """Return the project emotion for ``name`` (case-insensitive, aliases accepted)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in EMOTIONS:
        accepted = ", ".join(list(EMOTIONS) + list(ALIASES))
        raise UnknownEmotionError(f"unknown emotion {name!r}; accepted: {accepted}")
    return key


def fer_index(emotion: str) -> int:
    """FER-2013 class index (0..6) that the generator draws for a project emotion or alias."""
    return FER_CLASSES.index(EMOTION_TO_FER[normalize_emotion(emotion)])


def merge_calm(index: int) -> int:
    """Map an 8-class index to the 7-class scheme in which calm is merged into neutral.

    The 7-class indices are those of ``EMOTIONS`` without "calm" (neutral 0, happy 1, ...).
    """
    if index <= 1:
        return 0
    return index - 1
