
import numpy as np
import pytest

from ml.data import fer2013, ravdess
from tests.conftest import DATA, tiny_fer_csv


def test_parse_ravdess_name():
    clip = ravdess.parse_name("Actor_12/03-01-05-02-01-02-12.wav")
    assert (clip.emotion, clip.intensity, clip.statement, clip.repetition, clip.actor) == ("angry", 2, 1, 2, 12)
    assert clip.label == 4
    assert ravdess.parse_name("03-01-08-01-02-01-01.FLAC").emotion == "surprised"


@pytest.mark.parametrize("name", ["03-01-09-01-01-01-01.wav", "03-01-05-01-01.wav", "03-01-05-01-01-01-30.wav",
                                  "03-01-05-01-01-01-01.mp3", "a-b-c-d-e-f-g.wav"])
def test_bad_ravdess_names_are_rejected(name):
    with pytest.raises(ravdess.RavdessNameError):
        ravdess.parse_name(name)


@pytest.mark.parametrize("gz", [False, True])
def test_fer_csv_and_gz(tmp_path, gz):
    path = tiny_fer_csv(tmp_path / ("fer.csv.gz" if gz else "fer.csv"), gz)
    images, labels = fer2013.load(path, "Training")
    assert images.shape == (14, 48, 48) and images.dtype == np.uint8
    assert labels.tolist() == [i % 7 for i in range(14)]
    assert len(fer2013.load(path, "PublicTest")[1]) == 7
    assert len(fer2013.load(path, "PrivateTest")[1]) == 5
    assert len(fer2013.load(path)[1]) == 26


def test_fer_bad_rows(tmp_path):
    (tmp_path / "bad.csv").write_text("emotion,pixels,Usage\n9," + " ".join(["0"] * 2304) + ",Training\n")
    with pytest.raises(fer2013.FerFormatError, match="outside 0-6"):
        fer2013.load(tmp_path / "bad.csv")
    (tmp_path / "short.csv").write_text("emotion,pixels,Usage\n1,0 0 0,Training\n")
    with pytest.raises(fer2013.FerFormatError, match="3 pixels"):
        fer2013.load(tmp_path / "short.csv")


def test_balanced_weights_equalise_classes():
    labels = np.array([0] * 90 + [1] * 10)
    w = fer2013.balanced_sample_weights(labels)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())


@pytest.mark.data
def test_ravdess_manifest_folds():
    clips = ravdess.load_manifest(DATA / "ravdess")
    assert len(clips) == 1440
    folds = {f: sorted({c.actor for c in clips if c.fold == f}) for f in range(1, 7)}
    assert folds[1] == [1, 11, 20, 21] and folds[6] == [6, 13, 17, 22]
    assert sum(c.emotion == "neutral" for c in clips) == 96


@pytest.mark.data
def test_fer_real_split_sizes():
    images, labels = fer2013.load(DATA / "fer2013" / "fer2013.csv.gz", "PrivateTest")
    assert len(labels) == 3589
