"""Built-in, seeded, synthetic keyword-spotting-like sequences (no download).

Shape and label layout follow Google Speech Commands as the trainer sees it (§4.2/§8 of the
training reference): ``T = 61`` frames of ``F = 16`` log-mel-like features per clip, framewise
labels, class 0 = silence.

Generation of one clip (all randomness from ``numpy.random.SeedSequence(seed)``):

* **background**: a smooth noise floor in every channel: a per-clip spectral shape (smooth across
  channels) plus an AR(1) process along time (``rho``) that is also low-passed across channels, a
  per-clip gain, and a small white "sensor" noise;
* **event** (keyword classes 1..K-1 only): class ``k`` has a fixed time-frequency template of 2-3
  Gaussian "formant" ridges, each with a class-specific centre channel, slope (channels per event),
  width, amplitude and active sub-interval (the first ridge spans the whole event); a clip places
  it at a random onset with a random duration (30-65 % of the clip, inside frames 2..T-3), a small
  per-clip jitter of centres, slope and amplitude, and a smooth attack/release;
* **labels**: frames inside the event get ``k``, all others ``0``; the clip label is ``k``
  (``0`` for a silence clip, which has no event);
* **normalisation**: global scalar standardisation with the training-split mean/std.

Splits use independent child seeds, so ``num_train`` does not change the val/test clips and the
class templates depend on ``(seed, num_classes, num_features)`` only.
"""

from __future__ import annotations

import numpy as np

from .base import DatasetSplits, make_split, normalise, scalar_stats, class_names_with_silence

DEFAULTS = dict(
    num_classes=12,
    num_train=2400,
    num_val=480,
    num_test=480,
    num_frames=61,
    num_features=16,
    seed=0,
)


def _templates(rng: np.random.Generator, num_keywords: int, num_features: int, max_tries: int = 2000):
    """Class templates: arrays (K, 3) of centre, slope, width, amp, start, stop (unused ridge: amp 0)."""
    f = np.arange(num_features)[None, :]
    u = (np.arange(30) + 0.5)[:, None] / 30
    rendered: list[np.ndarray] = []
    params: list[np.ndarray] = []
    min_dist = 0.9
    tries = 0
    while len(params) < num_keywords:
        tries += 1
        if tries > max_tries:
            # Too many classes for the spectrum: accept closer templates.
            min_dist *= 0.8
            tries = 0
        n_ridges = int(rng.integers(2, 4))
        p = np.zeros((3, 6))
        p[:, 2] = 1.0  # unused ridges: amp 0, width 1
        for j in range(n_ridges):
            centre = rng.uniform(1.0, num_features - 2.0)
            slope = rng.uniform(-0.35, 0.35) * num_features
            width = rng.uniform(0.7, 1.4)
            amp = rng.uniform(0.6, 1.2)
            if j == 0:   # the "carrier" ridge spans the whole event, so the event is visible throughout
                start, stop = 0.0, 1.0
            else:
                start = rng.uniform(0.0, 0.45)
                stop = rng.uniform(start + 0.45, 1.0)
            p[j] = (centre, slope, width, amp, start, stop)
        img = _render(p[None], u[None], f, np.ones((1, 1)))[0]
        img = img / (np.linalg.norm(img) + 1e-12)
        if all(np.linalg.norm(img - r) > min_dist for r in rendered):
            rendered.append(img)
            params.append(p)
    return np.stack(params) if params else np.zeros((0, 3, 6))


def _render(p: np.ndarray, u: np.ndarray, f: np.ndarray, amp_jitter: np.ndarray) -> np.ndarray:
    """Render ridges ``p`` (B, 3, 6) at event-relative times ``u`` (B, T, 1) -> (B, T, F)."""
    out = 0.0
    for j in range(p.shape[1]):
        centre, slope, width, amp, start, stop = (p[:, j, i][:, None, None] for i in range(6))
        c = centre + slope * (u - 0.5)
        ridge = np.exp(-0.5 * ((f[None] - c) / width) ** 2)
        # smooth on/off of the ridge inside the event
        gate = 1.0 / (1.0 + np.exp(-(u - start) / 0.04)) * 1.0 / (1.0 + np.exp((u - stop) / 0.04))
        out = out + amp * amp_jitter[:, :, None] * ridge * gate
    return out


def _smooth_channels(a: np.ndarray, passes: int = 1) -> np.ndarray:
    """Low-pass across the last axis with a [1, 2, 1]/4 kernel (edge-replicated)."""
    for _ in range(passes):
        pad = np.concatenate([a[..., :1], a, a[..., -1:]], axis=-1)
        a = 0.25 * pad[..., :-2] + 0.5 * pad[..., 1:-1] + 0.25 * pad[..., 2:]
    return a


def _generate(rng: np.random.Generator, templates: np.ndarray, n: int, num_classes: int, num_frames: int,
              num_features: int, rho: float, background_std: float, event_gain: float, noise_std: float):
    T, F = num_frames, num_features
    # Balanced classes (silence included), shuffled.
    labels = np.arange(n) % num_classes
    labels = labels[rng.permutation(n)]

    # Background: spectral shape + AR(1) fluctuation, smooth across channels.
    shape = _smooth_channels(rng.normal(0.0, 1.0, (n, 1, F)), passes=3)
    shape = shape / (shape.std(axis=-1, keepdims=True) + 1e-9)
    gain = rng.normal(0.0, 0.5, (n, 1, 1))
    innov = _smooth_channels(rng.normal(0.0, 1.0, (n, T, F)), passes=2)
    ar = np.empty((n, T, F))
    ar[:, 0] = innov[:, 0]
    k = np.sqrt(1.0 - rho * rho)
    for t in range(1, T):
        ar[:, t] = rho * ar[:, t - 1] + k * innov[:, t]
    ar = ar / (ar.std() + 1e-9)
    x = 0.6 * shape + gain + background_std * ar

    # Events.
    y = np.zeros((n, T), dtype=np.int64)
    is_kw = labels > 0
    dur = rng.integers(int(round(0.30 * T)), int(round(0.65 * T)) + 1, size=n)
    onset = np.array([rng.integers(2, T - 2 - d + 1) for d in dur])
    p = templates[np.maximum(labels, 1) - 1].copy()                        # (n, 3, 6)
    p[:, :, 0] += rng.normal(0.0, 0.4, (n, 1))                              # centre jitter (whole clip)
    p[:, :, 1] *= rng.uniform(0.85, 1.15, (n, 1))                           # slope jitter
    amp_jitter = rng.uniform(0.75, 1.25, (n, 1))
    t = np.arange(T)[None, :]
    inside = (t >= onset[:, None]) & (t < (onset + dur)[:, None])
    u = ((t - onset[:, None] + 0.5) / dur[:, None])[:, :, None]            # event-relative time
    # attack/release of about 2 frames
    env = np.clip((t - onset[:, None] + 1) / 2.5, 0, 1) * np.clip((onset[:, None] + dur[:, None] - t) / 2.5, 0, 1)
    ev = _render(p, u, np.arange(F)[None, :], amp_jitter) * (env * inside)[:, :, None]
    x = x + event_gain * ev * is_kw[:, None, None]
    y[inside & is_kw[:, None]] = np.broadcast_to(labels[:, None], (n, T))[inside & is_kw[:, None]]

    x = x + noise_std * rng.normal(0.0, 1.0, (n, T, F))
    lengths = np.full(n, T, dtype=np.int64)
    return x, y, lengths, labels


def make_synthetic_kws(num_classes: int = DEFAULTS["num_classes"], num_train: int = DEFAULTS["num_train"],
                       num_val: int = DEFAULTS["num_val"], num_test: int = DEFAULTS["num_test"],
                       num_frames: int = DEFAULTS["num_frames"], num_features: int = DEFAULTS["num_features"],
                       seed: int = DEFAULTS["seed"], rho: float = 0.97, background_std: float = 0.4,
                       event_gain: float = 3.0, noise_std: float = 0.01) -> DatasetSplits:
    """Generate the synthetic keyword-spotting-like data set (see the module docstring).

    ``num_classes`` counts silence (class 0) plus ``num_classes - 1`` keywords, balanced.
    ``rho`` is the AR(1) coefficient of the background (closer to 1 = smoother, sparser deltas),
    ``background_std``/``event_gain``/``noise_std`` are in raw (pre-standardisation) units where the
    background spectral shape has std 0.6.
    """
    if num_classes < 2:
        raise ValueError("num_classes must be >= 2 (silence + at least one keyword)")
    if num_frames < 12:
        raise ValueError("num_frames must be >= 12")
    if num_features < 4:
        raise ValueError("num_features must be >= 4")
    for name, v in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1")
    ss = np.random.SeedSequence(int(seed))
    s_templ, s_train, s_val, s_test = ss.spawn(4)
    templates = _templates(np.random.default_rng(s_templ), num_classes - 1, num_features)
    kw = dict(num_classes=num_classes, num_frames=num_frames, num_features=num_features, rho=rho,
              background_std=background_std, event_gain=event_gain, noise_std=noise_std)
    raw = {
        "train": _generate(np.random.default_rng(s_train), templates, num_train, **kw),
        "val": _generate(np.random.default_rng(s_val), templates, num_val, **kw),
        "test": _generate(np.random.default_rng(s_test), templates, num_test, **kw),
    }
    mean, std = scalar_stats(raw["train"][0], raw["train"][2])
    splits = {}
    for name, (x, y, lengths, labels) in raw.items():
        splits[name] = make_split(normalise(x, lengths, mean, std), y, lengths, labels)
    info = dict(
        source="built-in synthetic keyword-spotting-like generator",
        seed=int(seed), num_frames=num_frames, rho=rho, background_std=background_std,
        event_gain=event_gain, noise_std=noise_std,
        normalisation={"kind": "global scalar (train)", "mean": mean, "std": std},
    )
    return DatasetSplits(
        name="synthetic", train=splits["train"], val=splits["val"], test=splits["test"],
        num_features=num_features, num_classes=num_classes,
        class_names=class_names_with_silence([f"kw{k}" for k in range(1, num_classes)]), info=info,
    )


def input_delta_sparsity(x, lengths, theta: float) -> float:
    """Fraction of zero Δx entries of the delta encoder on valid frames.

    x̂ starts at 0 and a unit fires when ``|x − x̂| > θ`` (strict, the convention of
    :mod:`reneta_train.delta`).

    A pure numpy reference used to check that the data are "slowly varying"; the layer statistics
    of :mod:`reneta_train` report the same quantity for layer 0.
    """
    x = np.asarray(x, dtype=np.float64)
    lengths = np.asarray(lengths)
    n, T, F = x.shape
    xhat = np.zeros((n, F))
    zeros = 0
    total = 0
    for t in range(T):
        valid = (t < lengths)[:, None]
        d = x[:, t] - xhat
        fire = (np.abs(d) > theta) & valid
        xhat = np.where(fire, x[:, t], xhat)
        zeros += int((~fire & valid).sum())
        total += int(np.broadcast_to(valid, fire.shape).sum())
    return zeros / max(total, 1)
