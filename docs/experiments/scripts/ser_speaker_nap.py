"""Speaker directions taken out of the SER head's features (docs/experiments/ser.md, 2026-12-07).

A live stream gains 7 points of LOCO UA when each clip is heard relative to its speaker's own
mean (``ml.recognize.SpeakerNorm``): much of what the head gets wrong off its corpora is where a
speaker, a language or a microphone sits, not the emotion. A clip heard alone has no speaker
history, but the directions along which speakers' means differ can be learnt on the training
speakers and removed from every clip (nuisance attribute projection with speakers, not channels,
as the nuisance: the 2026-12-04 channel projection removed emotion with the channel, because a
clip's training view moves pitch and spectral balance; a speaker's mean over all its emotions
carries little emotion).

In each split, on its training clips only, in the head's standardised space: each speaker's mean
is the mean of its per-class means (so a speaker's mean does not lean toward its commonest class),
the top RANK right singular vectors of those means about their centre are projected out of every
clip (training, views and scored clips alike), and then the recipe's head is trained as shipped.
RANK is capped at the number of training speakers less one.

``voice16`` predicts instead each clip's speaker mean (the same class-balanced means, as
targets) from the clip's own GE2E voice print (``weights/voice.pt``, which ``/speech-to-face``
already hears), by least squares on its 16 speaker directions (an LDA of the training speakers,
``ml.import_voice.fit_map``), and subtracts the prediction: an estimate of the stream's speaker
normalisation for a clip heard alone, which removes only what the voice says about the speaker.

Candidates, fixed before any was scored: ``recipe`` (the shipped recipe, rerun here so the
comparison needs no other file), ``spk8``, ``spk16`` and ``voice16``. Rule, fixed before any figure, the one
every head change since the layer mix has used: a candidate replaces the recipe only if its nested
UA is at least 0.5 points higher and its nested ECE (``distance`` calibration) is not worse by more
than 0.005; of two that pass, the higher nested UA. LOCO is read after the rule has decided.

    PYTHONPATH=. python docs/experiments/scripts/ser_speaker_nap.py heads ../shared/data runs/ser_spk recipe 0 2
    PYTHONPATH=. python docs/experiments/scripts/ser_speaker_nap.py heads ../shared/data runs/ser_spk spk8 0 2   # and spk16, voice16
    PYTHONPATH=. python docs/experiments/scripts/ser_speaker_nap.py report ../shared/data runs/ser_spk [--loco]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ml.data import speech
from ml.embed import cached_embeddings
from ml.import_voice import fit_map
from ml.labels import EMOTIONS
from ml.models.ser import SERHeadConfig
from ml.ser_head import fit_head, head_raw
from ml.voice import VoicePrint
from ser_corpus_bag import recipe_head, run_heads  # this directory's: the same features, files and loop
from ser_layer_mix import jobs, load_heads, print_candidates  # the same heads and report

RANKS = {"spk8": 8, "spk16": 16}
VOICE_DIMS = 16  # the voice print's speaker directions (LDA) the speaker's mean is predicted from


def rows(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).flatten(1).double()


def speaker_means(z: torch.Tensor, speakers: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """The speakers (S,) and their means (S, F) of ``z``, each the mean of its per-class means (so a
    speaker's mean does not lean toward its commonest class)."""
    names = np.unique(speakers)
    return names, torch.stack([torch.stack([z[(speakers == s) & (labels == k)].mean(0)
                                            for k in np.unique(labels[speakers == s])]).mean(0) for s in names])


def speaker_directions(z: torch.Tensor, speakers: np.ndarray, labels: np.ndarray, rank: int) -> torch.Tensor:
    """(F, rank) orthonormal: the top principal directions of the speakers' class-balanced means."""
    M = speaker_means(z, speakers, labels)[1]
    M = M - M.mean(0)
    return torch.linalg.svd(M, full_matrices=False)[2][:min(rank, len(M) - 1)].T


def voice_prints(clips) -> np.ndarray:
    """The shipped GE2E network's embedding of every clip (``runs/voice_cache``, as ml.evaluate_voice)."""
    voice, _ = VoicePrint.from_checkpoint("weights/voice.pt")
    return cached_embeddings([c.path for c in clips], voice, Path("runs/voice_cache")).astype(np.float64)


def transformed_head(fit):
    """The recipe's head on features standardised with the training set's statistics and then moved
    by ``fit(z, train, clips)``, which sees the training clips' standardised features ``z`` and
    returns the move ``(z, idx) -> z'`` applied alike to training clips, views and scored clips."""
    def head_logits(clips, X, V, train, test) -> tuple[np.ndarray, np.ndarray]:
        y = np.array([c.label for c in clips])
        x = torch.cat([rows(X[train]), rows(V[train])])
        mean, std = x.mean(0), x.std(0).clamp(min=1e-4)
        move = fit((rows(X[train]) - mean) / std, train, clips)

        def features(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return move((rows(a) - mean) / std, idx).float().numpy().reshape(len(idx), 1, 2, -1)  # fit_head flattens it

        w = speech.balanced_weights([clips[i] for i in train], by="class")
        config = SERHeadConfig(encoder="whisper-tiny-en", layers=1, width=x.shape[1] // 2)
        head = fit_head(np.concatenate([features(X[train], train), features(V[train], train)]),
                        np.concatenate([y[train], y[train]]), np.concatenate([w, w]), config)
        return head_raw(head, features(X[test], test))
    return head_logits


def projection(rank: int):
    """``spk8``, ``spk16``: the speakers' top ``rank`` directions projected out."""
    def fit(z: torch.Tensor, train: np.ndarray, clips):
        speakers = np.array([clips[i].speaker for i in train])
        u = speaker_directions(z, speakers, np.array([clips[i].label for i in train]), rank)
        print(f"{len(np.unique(speakers))} speakers, {u.shape[1]} directions out", flush=True)
        return lambda z, idx: z - (z @ u) @ u.T
    return fit


def voice_shift(z: torch.Tensor, train: np.ndarray, clips):
    """``voice16``: each clip less its speaker's mean as predicted from the clip's voice print."""
    speakers = np.array([clips[i].speaker for i in train])
    names, M = speaker_means(z, speakers, np.array([clips[i].label for i in train]))
    target = M[np.searchsorted(names, speakers)]
    G = voice_prints(clips)
    center, spread = fit_map(G[train], speakers, VOICE_DIMS, VOICE_DIMS)

    def inputs(idx: np.ndarray) -> torch.Tensor:
        h = torch.from_numpy((G[idx] - center) @ spread.T.astype(np.float64))
        return torch.cat([torch.ones(len(idx), 1, dtype=torch.float64), h], 1)
    B = torch.linalg.lstsq(inputs(train), target).solution  # E[speaker mean | the clip's voice print]
    return lambda z, idx: z - inputs(idx) @ B


def head_for(candidate: str):
    if candidate == "recipe":
        return recipe_head
    return transformed_head(voice_shift if candidate == "voice16" else projection(RANKS[candidate]))


def shares(outer: dict) -> str:
    answers = np.concatenate([h.logits.argmax(1) for h in outer.values()])
    return ", ".join(f"{e} {100 * np.mean(answers == i):.1f}%" for i, e in enumerate(EMOTIONS))


def report(data: str, out: Path, loco: bool) -> None:
    candidates = {cand: load_heads(out / cand) for cand in ["recipe", *RANKS, "voice16"]
                  if len(list((out / cand).glob("*.npz"))) == len(jobs())}
    print_candidates(candidates, speech.load_all(data), loco)
    if loco:
        for cand, (outer, _) in candidates.items():
            print(f"{cand} LOCO answers (raw): {shares(outer)}")


if __name__ == "__main__":
    phase, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if phase == "heads":
        run_heads(data, out / sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), jobs(), head_for(sys.argv[4]))
    else:
        report(data, out, "--loco" in sys.argv)
