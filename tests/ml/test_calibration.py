"""The SER's calibration: fitting recovers what made the data, the head applies what was fitted,
the scores read answers the way the corpus scores do."""

import numpy as np
import pytest
import torch

from ml import calibration
from ml.labels import EMOTIONS
from ml.models.ser import SERHead, SERHeadConfig

N, C = 6000, len(EMOTIONS)
ALL = tuple(range(C))


def sampled(temperature: float, bias: np.ndarray | None = None, seed: int = 0, slope: float = 0.0):
    """Logits, distances, and labels drawn from softmax(logits * exp(-log T + slope * d) + bias)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=4.0, size=(N, C))
    distance = rng.normal(size=N)
    z = logits * np.exp(np.log(1 / temperature) + slope * distance)[:, None] + (0 if bias is None else bias)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(C, p=row) for row in p])
    return logits, distance, labels


def fitted(kind: str, logits, distance, labels) -> calibration.Calibration:
    right = calibration.correct_mask(labels, [ALL] * len(labels))
    return calibration.fit(kind, logits, distance, right, np.ones(len(labels)))


def test_fit_recovers_the_temperature_the_labels_were_drawn_with():
    logits, distance, labels = sampled(3.0)
    cal = fitted("temperature", logits, distance, labels)
    assert np.exp(-cal.log_scale) == pytest.approx(3.0, rel=0.08) and cal.slope == 0 and not any(cal.bias)


def test_fit_recovers_a_class_bias_and_a_distance_slope():
    bias = np.array([1.0, -1.0, 0, 0, 0.5, -0.5, 0, 0])
    logits, distance, labels = sampled(2.0, bias, slope=-0.5)
    cal = fitted("distance_bias", logits, distance, labels)
    assert cal.slope == pytest.approx(-0.5, abs=0.1) and np.exp(-cal.log_scale) == pytest.approx(2.0, rel=0.15)
    np.testing.assert_allclose(cal.bias, bias - bias.mean(), atol=0.2)


def test_calibrated_probabilities_are_better_calibrated_than_raw_ones():
    logits, distance, labels = sampled(4.0, seed=1)
    cal = fitted("temperature", *sampled(4.0, seed=2))  # fitted on other draws, scored on these
    ece = {name: calibration.confidence_report(c.apply(logits, distance), labels, ALL)["ece"]
           for name, c in (("raw", calibration.Calibration()), ("fitted", cal))}
    assert ece["fitted"] < 0.03 < 0.2 < ece["raw"]


def test_the_head_applies_the_calibration_it_carries():
    """SERHead.forward equals Calibration.apply on the head's raw logits and distances."""
    torch.manual_seed(0)
    head = SERHead(SERHeadConfig(layers=2, width=8)).eval()
    head.fc.weight.data.normal_(std=0.5)
    cal = calibration.Calibration("distance_bias", log_scale=-0.7, slope=0.3, bias=[0.2, -0.1, 0, 0, 0.4, -0.5, 0, 0])
    cal.install(head)
    pooled = torch.randn(5, 2, 2, 8)
    with torch.inference_mode():
        logits, distance = head.raw(pooled)
        served = torch.softmax(head(pooled), -1).numpy()
    np.testing.assert_allclose(served, cal.apply(logits.numpy(), distance.numpy()), atol=1e-6)
    assert not np.allclose(served, calibration.Calibration().apply(logits.numpy(), distance.numpy()), atol=1e-3)


def test_answers_count_as_the_corpus_scores_count_them():
    """On a corpus without calm, a calm answer is right for a neutral clip; on TurEV-DB (calm, no
    neutral), a neutral answer is right for a calm clip."""
    neutral, calm, happy = (EMOTIONS.index(e) for e in ("neutral", "calm", "happy"))
    emodb = (neutral, happy, EMOTIONS.index("sad"))
    turev = (calm, happy)
    right = calibration.correct_mask(np.array([neutral, calm, happy]), [emodb, turev, emodb])
    assert set(np.flatnonzero(right[0])) == {neutral, calm}
    assert set(np.flatnonzero(right[1])) == {neutral, calm}
    assert set(np.flatnonzero(right[2])) == {happy}


def test_ece_and_reliability_on_a_hand_worked_case():
    confidence = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    bins = calibration.reliability(confidence, correct)
    assert bins[9] == (0.95, 0.5, 2) and bins[5] == (0.55, 1.0, 2) and sum(n for *_, n in bins) == 4
    assert calibration.ece(confidence, correct) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


def test_the_report_counts_answers_and_neutral_recall():
    neutral, sad = EMOTIONS.index("neutral"), EMOTIONS.index("sad")
    probs = np.full((4, C), 0.01)
    for i, k in enumerate([neutral, sad, sad, neutral]):
        probs[i, k] = 0.93
    report = calibration.confidence_report(probs, np.array([neutral, neutral, sad, sad]), (neutral, sad))
    assert report["neutral_recall"] == 0.5 and report["answers"]["sad"] == 2 and report["accuracy"] == 0.5
    assert "neutral_recall" not in calibration.confidence_report(probs, np.array([sad] * 4), (sad,))
