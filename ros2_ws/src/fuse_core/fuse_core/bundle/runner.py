"""PolicyRunner: infer(observation) -> un-normalised action chunk, with per-sample encoder reuse."""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from fuse_core.bundle.loader import Bundle
from fuse_core.bundle.tokenizers import InstructionError
from fuse_core.errors import BundleError, FuseError


class ObservationError(FuseError, ValueError):
    """An observation does not match the bundle manifest (names, dtypes, shapes)."""


@dataclass
class Observation:
    """One observation window.

    tensors: manifest input name -> (W, *shape) array of the manifest dtype, oldest step first.
    timestep_pad_mask: (W,) bool, False for padded history.
    sample_stamps: input name -> W capture stamps (ns; 0 = no sample). With stamps, the
    encoder output of a step is reused while the stamps of that step are unchanged.
    sample_ids: input name -> W ids of the steps' data (fuse_core.sync.TensorWindow.sample_ids;
    0 = none). With ids, equal stamps and ids are the same data, so a step is reused without
    looking at its bytes; without them, a fingerprint of the data guards the stamps.
    """

    tensors: Mapping[str, np.ndarray]
    timestep_pad_mask: np.ndarray
    sample_stamps: Optional[Mapping[str, Sequence[int]]] = None
    sample_ids: Optional[Mapping[str, Sequence[int]]] = None


@dataclass
class InferenceResult:
    actions: np.ndarray  # (horizon, dim) un-normalised
    normalized: np.ndarray  # (horizon, dim) as the graph returned it
    timing_ms: Dict[str, float]  # encode, policy, total (language is encoded per instruction)
    encoder_runs: int = 0
    encoder_reused: int = 0


@dataclass
class _CacheStats:
    encoder_runs: int = 0
    encoder_reused: int = 0
    language_runs: int = 0


def unnormalize(actions: np.ndarray, mean, std, mask) -> np.ndarray:
    """a * std + mean on the masked dims; the others (e.g. the gripper) pass unchanged."""
    a = np.asarray(actions, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    out = a.copy()
    out[..., mask] = (
        a[..., mask] * np.asarray(std, dtype=np.float64)[mask] + np.asarray(mean, dtype=np.float64)[mask]
    )
    return out.astype(np.float32)


def check_observation(bundle: Bundle, obs: Observation) -> None:
    """Refuse an observation whose tensors differ from the manifest, naming the input."""
    m = bundle.manifest
    W = m.window_size
    expected = set(m.input_names)
    got = set(obs.tensors)
    if expected - got:
        raise ObservationError(f'observation lacks input(s) {sorted(expected - got)}')
    if got - expected:
        raise ObservationError(
            f'observation has unexpected input(s) {sorted(got - expected)}; '
            f'the bundle takes {sorted(expected)}'
        )
    for spec in m.inputs:
        arr = obs.tensors[spec.name]
        want = (W, *spec.shape)
        if arr.dtype != np.dtype(spec.dtype) or tuple(arr.shape) != want:
            raise ObservationError(
                f'input {spec.name!r}: expected {spec.dtype} {list(want)}, '
                f'actual {arr.dtype.name} {list(arr.shape)}'
            )
    mask = np.asarray(obs.timestep_pad_mask)
    if mask.shape != (W,):
        raise ObservationError(f'timestep_pad_mask: expected shape [{W}], actual {list(mask.shape)}')
    for field, per_input in (('sample_stamps', obs.sample_stamps), ('sample_ids', obs.sample_ids)):
        if per_input is None:
            continue
        for name in m.input_names:
            values = per_input.get(name)
            if values is None or len(values) != W:
                raise ObservationError(
                    f'{field}[{name!r}]: expected {W} entries, '
                    f'actual {None if values is None else len(values)}'
                )


class PolicyRunner:
    """Runs a bundle: encode_instruction(text) once per instruction, infer(observation) per tick.

    Thread-safe: set_instruction may run while infer runs (ONNX Runtime sessions accept
    concurrent runs; the instruction swap is a single reference assignment).
    """

    def __init__(self, bundle: Bundle, language_cache_size: int = 16) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.stats = _CacheStats()
        self._lang_cache: 'OrderedDict[str, np.ndarray]' = OrderedDict()
        self._lang_cache_size = language_cache_size
        self._lang_lock = threading.Lock()
        self._instruction: Optional[Tuple[str, np.ndarray]] = None
        self._enc_cache: Dict[tuple, Dict[str, np.ndarray]] = {}
        self._enc_lock = threading.Lock()
        self._zero_tokens = {
            name: np.zeros([int(d) for d in info.shape[1:]], dtype=info.dtype)
            for name, info in bundle.encoder_outputs.items()
        }
        n = self.manifest.action.normalization
        self._norm = (np.asarray(n.mean), np.asarray(n.std), np.asarray(n.mask))

    # --- language -------------------------------------------------------------------------
    @property
    def instruction(self) -> Optional[str]:
        current = self._instruction
        return current[0] if current is not None else None

    def encode_instruction(self, text: str) -> np.ndarray:
        """Tokenise and encode an instruction -> [1, L, D]; cached per instruction text."""
        if self.bundle.tokenizer is None:
            raise InstructionError('this bundle takes no language instruction')
        key = text.strip() if isinstance(text, str) else text
        with self._lang_lock:
            cached = self._lang_cache.get(key)
            if cached is not None:
                self._lang_cache.move_to_end(key)
                return cached
        input_ids, attention_mask = self.bundle.tokenizer(text)
        out = self.bundle.sessions['language'].run(
            ['language_embedding'], {'input_ids': input_ids, 'attention_mask': attention_mask}
        )[0]
        with self._lang_lock:
            self.stats.language_runs += 1
            self._lang_cache[key] = out
            while len(self._lang_cache) > self._lang_cache_size:
                self._lang_cache.popitem(last=False)
        return out

    def set_instruction(self, text: str) -> None:
        """Encode and make current; a bad instruction raises and leaves the current one in place."""
        embedding = self.encode_instruction(text)
        self._instruction = (text.strip(), embedding)

    # --- inference ------------------------------------------------------------------------
    def infer(self, obs: Observation, reuse_encodings: bool = True, checked: bool = False) -> InferenceResult:
        """One forward pass over the window -> un-normalised (horizon, dim) chunk and timings.

        checked=True: the caller has already run check_observation on this observation.
        """
        t0 = time.perf_counter()
        if not checked:
            check_observation(self.bundle, obs)
        feeds: Dict[str, np.ndarray] = {}
        if 'language' in self.bundle.sessions:
            current = self._instruction
            if current is None:
                raise InstructionError('no instruction set')
            feeds['language_embedding'] = current[1]
        pad = np.asarray(obs.timestep_pad_mask, dtype=bool)
        feeds['timestep_pad_mask'] = pad[None]
        t1 = time.perf_counter()
        runs = reused = 0
        if self.bundle.has_encoder:
            tokens, runs, reused = self._encode_window(obs, pad, reuse_encodings)
            feeds.update(tokens)
        else:
            for name in self.manifest.input_names:
                feeds[name] = np.ascontiguousarray(obs.tensors[name])[None]
        t2 = time.perf_counter()
        normalized = self.bundle.sessions['policy'].run(['action'], feeds)[0][0]
        t3 = time.perf_counter()
        actions = unnormalize(normalized, *self._norm)
        t4 = time.perf_counter()
        timing = {'encode': (t2 - t1) * 1e3, 'policy': (t3 - t2) * 1e3, 'total': (t4 - t0) * 1e3}
        return InferenceResult(
            actions=actions,
            normalized=np.asarray(normalized, dtype=np.float32),
            timing_ms=timing,
            encoder_runs=runs,
            encoder_reused=reused,
        )

    def _step_key(self, obs: Observation, t: int) -> Optional[tuple]:
        """(input name, sample stamp, data id or fingerprint) for every input of step t, or None:
        not cacheable.

        The stamp identifies the sample. With sample ids, the id names the data; without, a
        fingerprint (CRC of every 509th byte) guards the rare case of the same sample arriving
        with different data, e.g. a DIGIT frame after its background was recaptured.
        """
        if obs.sample_stamps is None:
            return None
        key = []
        for name in self.manifest.input_names:
            stamp = int(obs.sample_stamps[name][t])
            if stamp == 0:
                # A zero stamp means "no sample": its data is filler and must not be cached.
                return None
            if obs.sample_ids is not None:
                data_id = int(obs.sample_ids[name][t])
                if data_id == 0:
                    return None
                key.append((name, stamp, 'id', data_id))
            else:
                raw = np.ascontiguousarray(obs.tensors[name][t]).reshape(-1).view(np.uint8)
                key.append((name, stamp, 'crc', zlib.crc32(raw[::509].tobytes())))
        return tuple(key)

    def _encode_window(self, obs: Observation, pad: np.ndarray, reuse: bool):
        W = self.manifest.window_size
        encoder = self.bundle.sessions['observation_encoder']
        names = list(self.bundle.encoder_outputs)
        per_step = []
        runs = reused = 0
        keep = {}
        with self._enc_lock:
            for t in range(W):
                if not pad[t]:
                    # Padded steps are masked out inside the policy; zeros save an encoder run.
                    per_step.append(self._zero_tokens)
                    continue
                key = self._step_key(obs, t) if reuse else None
                if key is not None and key in self._enc_cache:
                    out = self._enc_cache[key]
                    reused += 1
                else:
                    feed = {
                        name: np.ascontiguousarray(obs.tensors[name][t])[None]
                        for name in self.manifest.input_names
                    }
                    values = encoder.run(names, feed)
                    out = {n: v[0] for n, v in zip(names, values)}
                    runs += 1
                if key is not None:
                    keep[key] = out
                per_step.append(out)
            # Only this window's steps can recur in the next window (it shifts by one tick).
            self._enc_cache = keep
            self.stats.encoder_runs += runs
            self.stats.encoder_reused += reused
        tokens = {n: np.stack([step[n] for step in per_step])[None] for n in names}
        return tokens, runs, reused

    def clear_cache(self) -> None:
        with self._enc_lock:
            self._enc_cache = {}

    # --- generative head ------------------------------------------------------------------
    def describe(self, obs: Optional[Observation], modalities: Sequence[str]) -> str:
        """Describe the window in words from the given modalities only (FuSe's generative head).

        `modalities` is a set of 'visual', 'tactile', 'audio' (e.g. ['tactile'] = from touch
        only). The window's encodings come from the same cache as infer(), so describing the
        current window costs the head alone. Raises BundleError when the bundle has no
        generative head, ObservationError when there is no window yet or the modality set
        is not one the head was trained on.
        """
        if 'generative' not in self.bundle.sessions:
            raise BundleError('bundle has no generative head')
        if obs is None:
            raise ObservationError('no observation window has arrived yet')
        wanted = frozenset(m.strip().lower() for m in modalities if m.strip())
        table = self.bundle.modality_index
        if wanted not in table:
            known = sorted(','.join(sorted(k)) for k in table if k)
            raise ObservationError(f'modalities {sorted(wanted)} are not a combination the head knows; '
                                   f'known: {known}')
        check_observation(self.bundle, obs)
        pad = np.asarray(obs.timestep_pad_mask, dtype=bool)
        tokens, _, _ = self._encode_window(obs, pad, reuse=True)
        feeds = dict(tokens)
        feeds['timestep_pad_mask'] = pad[None]
        feeds['modality_index'] = np.array([table[wanted]], dtype=np.int64)
        ids = self.bundle.sessions['generative'].run(['token_ids'], feeds)[0][0]
        return self.bundle.tokenizer.decode(ids)

    # --- schema ---------------------------------------------------------------------------
    def example_observation(self, seed: int = 0, stamp0_ns: int = 1) -> Observation:
        """A random observation of the right names, dtypes and shapes (the published schema)."""
        rng = np.random.default_rng(seed)
        W = self.manifest.window_size
        tensors = {}
        for spec in self.manifest.inputs:
            shape = (W, *spec.shape)
            dt = np.dtype(spec.dtype)
            if dt == np.uint8:
                tensors[spec.name] = rng.integers(0, 256, shape, dtype=np.uint8)
            elif dt.kind in 'iu':
                tensors[spec.name] = rng.integers(-20, 21, shape).astype(dt)
            elif dt.kind == 'b':
                tensors[spec.name] = rng.random(shape) > 0.5
            else:
                tensors[spec.name] = (rng.standard_normal(shape) * 10 - 40).astype(dt)
        stamps = {spec.name: [stamp0_ns + t for t in range(W)] for spec in self.manifest.inputs}
        return Observation(tensors=tensors, timestep_pad_mask=np.ones(W, dtype=bool), sample_stamps=stamps)
