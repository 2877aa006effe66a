"""The real-signal corpora's fixed feature extractors: VGGish-shaped audio, pool5-shaped video.

Both are fixed like VGGish and VGG19 are: they never depend on a corpus' seed, so two corpora
(or two seeds of one) are described in the same feature space. They have the reference shapes
(audio `[128]` per one-second segment, video `[7,7,512]` per frame, non-negative and sparse) but
are not those networks (docs/real-corpora.md says what they compute and why).
"""

from __future__ import annotations

import numpy as np

from toc.data.base import AUDIO_DIM, VIDEO_CHANNELS, VIDEO_GRID
from toc.errors import ConfigError

SAMPLE_RATE = 16_000  # every corpus' waveforms are made at this rate, one second per segment
EXTRACTOR_SEED = 20230926
VIDEO_QUANTUM = 1.0 / 64.0  # video values are multiples of this, exact in float16/32/64
VIDEO_MAX = 31.0


def _mel_filterbank(n_mels: int, n_fft: int, low_hz: float = 125.0, high_hz: float = 7500.0) -> np.ndarray:
    """HTK-style triangular mel filters [n_fft//2+1, n_mels] (VGGish's 125–7500 Hz range)."""

    def to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * np.expm1(np.asarray(mel) / 1127.0)

    edges = to_hz(np.linspace(to_mel(low_hz), to_mel(high_hz), n_mels + 2))
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, n_fft // 2 + 1)
    bank = np.zeros((freqs.size, n_mels))
    for m in range(n_mels):
        left, centre, right = edges[m : m + 3]
        bank[:, m] = np.maximum(0.0, np.minimum((freqs - left) / (centre - left), (right - freqs) / (right - centre)))
    return bank


_WINDOW = 400  # 25 ms at 16 kHz
_HOP = 160  # 10 ms
_N_FFT = 512
_N_MELS = AUDIO_DIM // 2
MEL_BANK = _mel_filterbank(_N_MELS, _N_FFT)
_HANN = np.hanning(_WINDOW)


def audio_segment_features(segments: np.ndarray) -> np.ndarray:
    """[S,16000] one-second waveforms → [S,128]: energy-gated mean and std of a 64-band log-mel.

    The frames whose energy is at or above the segment's median are kept (the event, or the
    loudest half of background noise); the descriptor is their per-band mean (64) followed by
    their per-band standard deviation (64). Shift-invariant within the second, like VGGish's
    one-second patches are roughly.
    """
    frames = np.lib.stride_tricks.sliding_window_view(segments, _WINDOW, axis=1)[:, ::_HOP] * _HANN
    power = np.abs(np.fft.rfft(frames, _N_FFT, axis=-1)) ** 2
    log_mel = np.log(power @ MEL_BANK + 1e-4)  # [S,F,64]
    energy = log_mel.mean(axis=2)
    keep = energy >= np.median(energy, axis=1, keepdims=True)  # [S,F]
    weights = keep / keep.sum(axis=1, keepdims=True)
    mean = np.einsum("sf,sfm->sm", weights, log_mel)
    var = np.einsum("sf,sfm->sm", weights, (log_mel - mean[:, None, :]) ** 2)
    return np.concatenate([mean, np.sqrt(var)], axis=1)


# Image side → (zero padding, patch side, stride): each gives a 7x7 grid of patches.
PATCH_GEOMETRY = {8: (1, 4, 1), 32: (0, 8, 4)}


class VideoLifter:
    """A fixed random non-negative 'pool5': an image → [7,7,512] by ReLU of random patch filters.

    8x8 images are zero-padded to 10x10 and each of the 7x7 positions sees a 4x4 patch (stride
    1); 32x32 images give 8x8 patches at stride 4. Channel c at position p responds
    `ReLU(gain · (w_c · patch_p + q_c[p]) − θ)`: random unit-norm filters `w_c`, a random
    position term `q_c[p]` (so position survives the spatial pooling downstream encoders apply)
    and a threshold θ that leaves most responses at zero, as pool5 maps are sparse. Values are
    rounded to multiples of 1/64 so every float format stores them exactly.
    """

    def __init__(self, image_side: int = 8, seed: int = EXTRACTOR_SEED):
        if image_side not in PATCH_GEOMETRY:
            raise ConfigError(f"VideoLifter takes images of side {sorted(PATCH_GEOMETRY)}, got {image_side}")
        self.image_side = image_side
        self.pad, self.patch, self.stride = PATCH_GEOMETRY[image_side]
        rng = np.random.default_rng(seed)
        filters = rng.normal(size=(self.patch * self.patch, VIDEO_CHANNELS))
        self.filters = filters / np.linalg.norm(filters, axis=0, keepdims=True)
        self.position = rng.normal(scale=0.5, size=(VIDEO_GRID * VIDEO_GRID, VIDEO_CHANNELS))
        self.gain = 4.0
        self.threshold = 2.0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        pad = self.pad
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (self.patch, self.patch), axis=(1, 2))
        patches = windows[:, :: self.stride, :: self.stride].reshape(len(images), VIDEO_GRID * VIDEO_GRID, -1)
        response = self.gain * (patches @ self.filters + self.position) - self.threshold
        lifted = np.clip(np.round(np.maximum(response, 0.0) / VIDEO_QUANTUM) * VIDEO_QUANTUM, 0.0, VIDEO_MAX)
        return lifted.reshape(len(images), VIDEO_GRID, VIDEO_GRID, VIDEO_CHANNELS).astype(np.float32)
