import numpy as np
import pytest
import torch

from ml import audio
from tests.conftest import FIXTURE_AUDIO, speechlike, wav_bytes


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_decodes_every_wav_width(subtype):
    x = speechlike(1.0)
    out = audio.decode(wav_bytes(x, 16_000, subtype))
    assert out.samples.dtype == np.float32 and out.input_sample_rate == 16_000 and out.channels == 1
    tol = 0.02 if subtype == "PCM_U8" else 1e-3
    assert np.abs(out.samples - x).max() < tol


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_decodes_flac_and_ogg(fmt, subtype):
    out = audio.decode(wav_bytes(speechlike(1.0), 16_000, subtype, fmt))
    assert abs(len(out.samples) - 16_000) < 200


def test_resamples_and_mixes_down():
    x = speechlike(1.0, sr=44_100)
    stereo = np.stack([x, x], axis=1)
    out = audio.decode(wav_bytes(stereo, 44_100))
    assert out.channels == 2 and out.input_sample_rate == 44_100
    assert len(out.samples) == 16_000
    assert out.duration_s == pytest.approx(1.0)


def test_decodes_the_fixture_flac_and_a_path():
    path = sorted(FIXTURE_AUDIO.glob("*.flac"))[0]
    assert len(audio.decode(path).samples) == len(audio.decode(path.read_bytes()).samples) > 16_000


@pytest.mark.parametrize("data, error", [
    (np.zeros(16_000, np.float32), audio.SilentAudioError),
    (np.full(16_000, 0.3, np.float32), audio.SilentAudioError),  # DC only
    (speechlike(0.3), audio.AudioTooShortError),
    (np.zeros(0, np.float32), audio.EmptyAudioError),
])
def test_unusable_audio_raises_a_precise_error(data, error):
    with pytest.raises(error):
        audio.from_array(data, 16_000)


def test_nan_samples_are_rejected():
    x = speechlike(1.0)
    x[100] = np.nan
    with pytest.raises(audio.InvalidSamplesError, match="NaN"):
        audio.from_array(x, 16_000)


def test_too_long_stops_reading_early():
    x = np.tile(speechlike(1.0), 5)
    with pytest.raises(audio.AudioTooLongError, match="the maximum is 4 s"):
        audio.decode(wav_bytes(x), max_duration_s=4)


def test_garbage_is_a_decode_error():
    with pytest.raises(audio.AudioDecodeError, match="not decodable"):
        audio.decode(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)


def test_trim_removes_silence_padding():
    x = speechlike(1.5)
    padded = np.concatenate([np.zeros(24_000, np.float32), x, np.zeros(24_000, np.float32)])
    trimmed = audio.trim_silence(torch.from_numpy(padded))
    assert abs(trimmed.shape[-1] - len(x)) < 0.25 * audio.SAMPLE_RATE


def test_split_windows_bounds_each_piece():
    def seconds(total: float) -> list[float]:
        pieces = audio.split_windows(torch.zeros(int(total * audio.SAMPLE_RATE)), 8.0)
        return [round(p.shape[-1] / audio.SAMPLE_RATE, 1) for p in pieces]

    assert seconds(5.0) == [5.0]
    assert seconds(20.5) == [8.0, 8.0, 4.5]
    assert seconds(17.0) == [8.0, 9.0]  # a last piece under 2 s joins the one before


def test_mel_filterbank_equals_librosa():
    import librosa  # a test dependency: the reference implementation
    ref = librosa.filters.mel(sr=audio.SAMPLE_RATE, n_fft=audio.WHISPER_N_FFT, n_mels=audio.WHISPER_N_MELS, fmin=0.0,
                              fmax=audio.SAMPLE_RATE / 2)
    fb = audio.mel_filterbank(audio.WHISPER_N_FFT, audio.WHISPER_N_MELS, 0.0, audio.SAMPLE_RATE / 2)
    np.testing.assert_allclose(fb, ref, atol=1e-7)


def test_resample_equals_librosa_soxr_hq():
    import librosa  # a test dependency: the reference implementation
    x = speechlike(1.0, sr=44_100)
    np.testing.assert_allclose(audio.resample(x, 44_100, 16_000),
                               librosa.resample(x, orig_sr=44_100, target_sr=16_000, res_type="soxr_hq"), atol=1e-6)


def test_change_speed_scales_the_length_and_keeps_factor_one_exact():
    x = torch.from_numpy(speechlike(2.0))
    assert audio.change_speed(x, 1.0) is x
    assert audio.change_speed(x, 1.1).shape[-1] == int(len(x) / 1.1)
    slow = audio.change_speed(x, 0.9)
    assert slow.shape[-1] == int(len(x) / 0.9)
    # slowing down keeps the waveform: resampled back it matches the original (linear interpolation)
    back = torch.nn.functional.interpolate(slow[None, None], size=len(x), mode="linear", align_corners=False)[0, 0]
    assert float((back - x).pow(2).mean() / x.pow(2).mean()) < 0.05


def test_a_bug_in_decoding_is_not_reported_as_bad_audio(monkeypatch):
    """Only libsndfile's own errors mean "not decodable": a TypeError or RuntimeError from our
    code or a library is a bug, and must surface as itself (a logged 500), not as a client's 415."""
    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not bad bytes")

    from ml import decoding

    monkeypatch.setattr(decoding.sf, "SoundFile", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        audio.decode(wav_bytes(speechlike(1.0)))
