import pytest
import torch

from ml import audio, checkpoint
from ml.labels import EMOTIONS, FER_CLASSES
from ml.models.gan import Generator, GeneratorConfig
from ml.models.ser import SERHead, SERHeadConfig


def tiny_head() -> SERHead:
    """A small SER head of the shipped architecture, random weights."""
    return SERHead(SERHeadConfig(layers=2, width=8)).eval()


def test_round_trip_rebuilds_the_same_network(tmp_path):
    torch.manual_seed(0)
    model = tiny_head()
    model.mean.normal_()
    path = checkpoint.save(tmp_path / "ser.pt", model, labels=EMOTIONS, data={"dataset": "x"}, metrics={"ua": 0.5})
    loaded = checkpoint.load(path, arch="ser-whisper")
    assert loaded.model.config == model.config
    assert loaded.meta["labels"] == list(EMOTIONS) and loaded.meta["metrics"] == {"ua": 0.5}
    assert loaded.meta["feature_params"] == audio.WHISPER_FEATURE_PARAMS
    assert len(loaded.sha256) == 64
    pooled = torch.randn(2, 2, 2, 8)
    torch.testing.assert_close(loaded.model(pooled), model(pooled))  # buffers (the standardisation) included


def test_generator_round_trip(tmp_path):
    g = Generator(GeneratorConfig(base_channels=4, latent_dim=8)).eval()
    path = checkpoint.save(tmp_path / "g.pt", g, labels=FER_CLASSES)
    z, y = torch.randn(2, 8), torch.tensor([1, 2])
    torch.testing.assert_close(checkpoint.load(path).model(z, y), g(z, y))


def test_generator_round_trip_keeps_how_it_draws(tmp_path):
    """A generator's drawing travels under its own key, apart from the network's config: a file
    drawing each class from its own latent scale draws what scaling z by hand draws."""
    from ml.generate import Drawing, FaceGenerator, latent_for_seed

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(base_channels=4, latent_dim=8)).eval()
    scales = (0.8, 1.0, 1.3, 1.6, 1.9, 1.0, 1.0)
    path = checkpoint.save(tmp_path / "g.pt", g, labels=FER_CLASSES, drawing={"latent_scale": scales})
    gen, loaded = FaceGenerator.from_checkpoint(path)
    assert loaded.meta["drawing"] == {"latent_scale": list(scales)} and gen.drawing == Drawing(scales)
    z = torch.stack([latent_for_seed(s, 8) for s in (5, 6)])
    assert torch.equal(gen.draw([3, 4], [5, 6]), g(z * torch.tensor([[1.6], [1.9]]), torch.tensor([3, 4])))
    plain = checkpoint.save(tmp_path / "plain.pt", g, labels=FER_CLASSES)
    assert FaceGenerator.from_checkpoint(plain)[0].drawing == Drawing()  # as trained
    assert not torch.equal(FaceGenerator.from_checkpoint(plain)[0].draw([3], [5]), gen.draw([3], [5]))


def test_a_format_1_file_is_refused_naming_both_formats(tmp_path):
    path = checkpoint.save(tmp_path / "g.pt", Generator(GeneratorConfig(base_channels=4)), labels=FER_CLASSES)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    torch.save(payload, path)
    with pytest.raises(checkpoint.CheckpointError, match="checkpoint format 1, expected 2"):
        checkpoint.load(path)


def test_feature_mismatch_says_what_differs(tmp_path):
    path = checkpoint.save(tmp_path / "ser.pt", tiny_head(), labels=EMOTIONS)
    payload = torch.load(path, weights_only=True)
    payload["feature_params"]["n_mels"] = 64
    payload["feature_params"]["hop_length"] = 256
    torch.save(payload, path)
    with pytest.raises(checkpoint.FeatureMismatchError) as err:
        checkpoint.load(path)
    assert "n_mels: checkpoint 64 != code 80" in str(err.value)
    assert "hop_length: checkpoint 256 != code 160" in str(err.value)


def test_wrong_arch_missing_and_corrupt_files(tmp_path):
    g = Generator(GeneratorConfig(base_channels=4))
    path = checkpoint.save(tmp_path / "g.pt", g, labels=FER_CLASSES)
    with pytest.raises(checkpoint.CheckpointError, match="expected 'ser-whisper'"):
        checkpoint.load(path, arch="ser-whisper")
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load(tmp_path / "bad.pt")
    torch.save({"state_dict": {}}, tmp_path / "bare.pt")
    with pytest.raises(checkpoint.CheckpointError, match="format"):
        checkpoint.load(tmp_path / "bare.pt")


@pytest.mark.parametrize("key", sorted(audio.WHISPER_FEATURE_PARAMS))
def test_every_parameter_that_changes_what_the_model_hears_is_checked(tmp_path, key):
    path = checkpoint.save(tmp_path / "ser.pt", tiny_head(), labels=EMOTIONS)
    payload = torch.load(path, weights_only=True)
    payload["feature_params"][key] = "something else"
    torch.save(payload, path)
    with pytest.raises(checkpoint.FeatureMismatchError, match=key):
        checkpoint.load(path)


def test_save_goes_through_a_unique_temporary_file(tmp_path, monkeypatch):
    model = tiny_head()
    good = checkpoint.save(tmp_path / "ser.pt", model, labels=EMOTIONS)
    before = good.read_bytes()
    written: list[object] = []

    def failing_save(payload, fh):
        written.append(fh.name)
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(good, model, labels=EMOTIONS)
    assert good.read_bytes() == before, "a failed save must leave the old file whole"
    assert written and written[0] != str(good) and not str(written[0]).endswith("ser.pt.tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ser.pt"], "the temporary file must be removed"
