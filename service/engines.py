"""The models behind the routes: loaded once, each behind its own micro-batcher, warmed up
before the service reports ready. No FastAPI here."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ml.audio import SAMPLE_RATE
from ml.edit import ExpressionEditor
from ml.checkpoint import CheckpointError
from ml.enlarge import Enlarger
from ml.generate import FaceGenerator, one_thread
from ml.recognize import EmotionRecognizer, SpeakerNorm
from ml.runtime import select_device
from ml.voice import VoicePrint
from service.config import Settings
from service.decoding import Decoder
from service.admission import Budget, Drain, StreamTable
from service.inference import InvalidOutput, MicroBatcher, render_items, timed
from service.metrics import Metrics
from service.models import FaceModel, PhotoModel, SpeechModel, VoiceModel
from service.schemas import ModelCard

log = logging.getLogger(__name__)


@dataclass
class Engines:
    """Everything the routes need once the app has started."""

    settings: Settings
    device: torch.device
    ser: MicroBatcher  # holds the EmotionRecognizer and the VoicePrint
    faces: MicroBatcher  # holds the FaceGenerator
    models: list[ModelCard]
    clips: Budget  # recordings admitted at once: decoding, queued or being heard
    face_work: Budget  # face work admitted at once, in single-48px-face units
    decoder: Decoder  # recordings decoded at once: libsndfile and FFmpeg slots, bounded apart
    speech: SpeechModel  # what the routes and the live stream call: decode, predict, encode
    face: FaceModel
    photos: Budget  # photos admitted at once: decoding, queued or being edited
    photo: PhotoModel
    voice: VoiceModel  # a recording's voice -> its face's latent (a face per voice)
    drain: Drain
    recognizer: EmotionRecognizer  # its embedding workers, shut down by stop()
    listener: ThreadPoolExecutor  # the voice's thread beside the SER's, shut down by stop()
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    streams: StreamTable = field(default_factory=lambda: StreamTable(0, 0, 0.0))  # live WebSocket streams

    async def stop(self) -> None:
        """Stop the batchers (letting the batches in hand finish), then the threads they used."""
        await self.ser.stop()
        await self.faces.stop()
        self.listener.shutdown(wait=True)
        self.recognizer.close()


def _info(name: str, path: Path, loaded, seconds: float, device: torch.device) -> ModelCard:
    params = sum(p.numel() for p in loaded.model.parameters())
    return ModelCard(name=name, path=path.name, sha256=loaded.sha256, arch=loaded.meta["arch"], device=str(device),
                     parameters=params, load_seconds=round(seconds, 3), metrics=loaded.meta.get("metrics", {}),
                     data=loaded.meta.get("data", {}))


def embed_alone(voice: VoicePrint, wave: np.ndarray) -> np.ndarray:
    """One clip's speaker embedding on one intra-op thread (the calling thread's setting, restored after)."""
    with one_thread():
        return voice.embed(wave)


def hear(recognizer: EmotionRecognizer, voice: VoicePrint, listener: ThreadPoolExecutor,
         items: list[tuple[np.ndarray, SpeakerNorm | None, bool]]) -> list[tuple[np.ndarray, np.ndarray | None] | Exception]:
    """The SER batcher's work: (clip, its live stream's speaker or None, whether to hear its voice)
    items -> (probabilities, the speaker embedding or None). The voices are embedded on
    ``listener``'s thread, clip by clip, while the SER hears the batch: one hop, and a clip's
    embedding is the same alone and in any batch. A clip whose probabilities are not numbers fails
    alone (a 500 for that request, logged), never sent on as a number."""
    voices = [listener.submit(embed_alone, voice, wave) if listen else None for wave, _, listen in items]
    probs = recognizer.predict([wave for wave, _, _ in items], [speaker for _, speaker, _ in items])
    return [(p, v.result() if v is not None else None) if np.isfinite(p).all()
            else InvalidOutput(f"the emotion model's output is not finite: {p.tolist()}")
            for p, v in zip(probs, voices, strict=True)]


def load_engines(settings: Settings, metrics: Metrics, drain: Drain | None = None) -> Engines:
    """Load the checkpoints (raising ``CheckpointError`` with a clear message) and build batchers."""
    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    device = select_device(settings.device)
    # the SER's encoder runs on the device (int8 on a CPU, float32 on CUDA; ml.recognize): /ready says where
    (recognizer, ser_loaded), ser_s = timed(lambda: EmotionRecognizer.from_checkpoint(settings.ser_weights, device))
    (generator, gen_loaded), gen_s = timed(lambda: FaceGenerator.from_checkpoint(settings.generator_weights, device))
    (editor, edit_loaded), edit_s = timed(lambda: ExpressionEditor.from_checkpoint(settings.editor_weights))
    (voiceprint, voice_loaded), voice_s = timed(lambda: VoicePrint.from_checkpoint(settings.voice_weights))
    (enlarger, up_loaded), up_s = timed(lambda: Enlarger.from_checkpoint(settings.upsampler_weights))
    if voiceprint.model.config.latent_dim != generator.model.config.latent_dim:
        raise CheckpointError(f"{settings.voice_weights} maps voices to a latent of {voiceprint.model.config.latent_dim}, "
                              f"the generator's is {generator.model.config.latent_dim}: re-run python -m ml.import_voice")
    cpu = torch.device("cpu")
    files = [("ser", settings.ser_weights, ser_loaded, ser_s, recognizer.device),
             ("generator", settings.generator_weights, gen_loaded, gen_s, generator.device),
             ("editor", settings.editor_weights, edit_loaded, edit_s, cpu),
             ("voice", settings.voice_weights, voice_loaded, voice_s, cpu),
             ("upsampler", settings.upsampler_weights, up_loaded, up_s, cpu)]
    models = [_info(*file) for file in files]
    for m, (_, path, *_) in zip(models, files, strict=True):
        # the log (the operator's) names the full path; /ready (anyone's) only the file name
        log.info("loaded %s from %s sha256=%s device=%s parameters=%d in %.3fs", m.name, path, m.sha256, m.device,
                 m.parameters, m.load_seconds)
    wait = settings.max_batch_wait_ms / 1000
    # the budgets below bound what is queued; the queues' own bounds are a backstop
    # one thread of one intra-op thread hears the voices beside the SER's own workers
    listener = ThreadPoolExecutor(1, thread_name_prefix="voice")
    ser = MicroBatcher(functools.partial(hear, recognizer, voiceprint, listener), name="ser", max_batch=settings.max_batch_size,
                       max_wait_s=wait, on_batch=metrics.observe_batch, max_queue=4 * settings.max_queue_clips,
                       timeout_s=settings.queue_timeout_s)
    # on a CPU each face is drawn on one thread (bit-exactness, ml.generate), so it takes one batch
    # per core to use the machine; on a GPU one stream of batches
    workers = settings.generator_workers or (1 if device.type != "cpu" else os.cpu_count() or 1)
    faces = MicroBatcher(functools.partial(render_items, generator, enlarger), name="generator",
                         max_batch=settings.max_batch_size, max_wait_s=wait, on_batch=metrics.observe_batch,
                         max_queue=4 * settings.max_queue_faces, timeout_s=settings.queue_timeout_s, workers=workers)
    cores = os.cpu_count() or 1
    decoder = Decoder(max_decodes=settings.max_decodes or cores, max_ffmpeg=settings.max_ffmpeg_decodes or max(1, cores // 2),
                      ffmpeg_wait_s=settings.ffmpeg_wait_s, timeout_s=settings.decode_timeout_s,
                      memory_bytes=int(settings.decode_memory_mb * 1024 * 1024))
    streams = StreamTable(settings.max_streams, settings.stream_max_per_client, settings.stream_min_rate)
    clips, face_work = Budget("emotion", settings.max_queue_clips), Budget("face", settings.max_queue_faces)
    photos = Budget("photo", settings.max_queue_photos)
    metrics.watch({b.name: (lambda b=b: (b.used, b.capacity)) for b in (clips, face_work, photos)},
                  lambda: (len(streams.slots), streams.capacity))
    return Engines(settings, device, ser, faces, models, clips=clips, face_work=face_work, decoder=decoder,
                   speech=SpeechModel(decoder, ser, settings.max_audio_s, recognizer.speaker), face=FaceModel(faces, enlarger),
                   photos=photos, photo=PhotoModel(editor, settings.max_edits or cores),
                   voice=VoiceModel(voiceprint),
                   drain=drain or Drain(), recognizer=recognizer, listener=listener, streams=streams)


async def warm_up(engines: Engines) -> None:
    """One pass through each model (and the audio front-end) before reporting ready."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(4 * SAMPLE_RATE)).astype(np.float32)  # a 4 s clip
    await engines.ser.run_direct([(wave, None, True)])
    await engines.faces.run_direct([(0, 0, 96)])  # 96 px: the upsampler too
    engines.photo.editor.edit_crops(np.full((1, 48, 48), 128, np.float32), [0])
    engines.ready.set()
    log.info("warm-up done in %.3fs; ready", time.perf_counter() - t0)
