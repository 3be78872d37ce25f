"""Build, fit on synthetic data, export and check the small FuSe-shaped reference bundle.

    pip install -r models/requirements-reference.txt
    python models/make_reference_model.py [--out models/reference] [--steps 240] [--batch 8]

Only this script needs PyTorch; the nodes and tests read the exported ONNX graphs with
ONNX Runtime. See models/README.md for what the model is and what it was fitted on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fuse_core.bundle.manifest import FUSE_OBSERVATION_INPUTS
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'ros2_ws' / 'src' / 'fuse_core'))

from fuse_core.bundle import Observation, PolicyRunner, load_bundle, parse_manifest  # noqa: E402
sys.path.insert(0, str(REPO))
from models.trainer.model import (  # noqa: E402
    Block as _Block, CameraStem as _CameraStem, LanguageEncoder as _LanguageEncoder, ModelConfig,
    SpectroEncoder as _SpectroEncoder, TactileEncoder as _TactileEncoder,
    block_causal_mask as _block_causal_mask, gelu,
)
from fuse_core.bundle.tokenizers import HashWordsTokenizer  # noqa: E402

# --- the FuSe observation and action spec (docs/FACTS.md section 1) ---------------------------
W = 2  # observation window
HORIZON, ACTION_DIM = 4, 7
L, VOCAB, LANG_D = 24, 4096, 64
D = 64  # token width of the reference transformer
HEADS, LAYERS = 4, 2
# Normalisation of dims 0..5: Bridge-like magnitudes chosen by hand (metres, radians per 0.2 s
# step); the synthetic data below is generated in normalised units, so these only scale it.
ACTION_MEAN = [2.0e-4, 1.3e-4, -1.5e-4, -1.6e-4, -2.4e-4, 2.3e-4, 0.5]
ACTION_STD = [9.0e-3, 1.3e-2, 1.3e-2, 2.8e-2, 3.1e-2, 7.6e-2, 0.5]
ACTION_MASK = [True] * 6 + [False]
LAYOUT = ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']

OBS_TOKENS = {'tokens_digits': 2, 'tokens_spectro': 16, 'tokens_primary': 64, 'tokens_wrist': 16}
INPUTS = FUSE_OBSERVATION_INPUTS
INPUT_NAMES = [i['name'] for i in INPUTS]


# --- model: the trainer's building blocks (models/trainer/model.py) at the reference sizes ----------
def CameraStem(patch1: int, patch2: int) -> nn.Module:
    return _CameraStem(D, patch1, patch2)


def TactileEncoder() -> nn.Module:
    return _TactileEncoder(D)


def SpectroEncoder() -> nn.Module:
    return _SpectroEncoder(D)


class ObservationEncoder(nn.Module):
    """One timestep of every input -> token tensors (exported as observation_encoder.onnx)."""

    def __init__(self) -> None:
        super().__init__()
        self.primary = CameraStem(8, 4)  # 256 -> 8x8 = 64 tokens
        self.wrist = CameraStem(8, 4)  # 128 -> 4x4 = 16 tokens
        self.tactile = TactileEncoder()
        self.spectro = SpectroEncoder()

    def forward(self, image_primary, image_wrist, image_digit_left, image_digit_right, mel_spectro):
        digits = torch.stack([self.tactile(image_digit_left), self.tactile(image_digit_right)], dim=1)
        return digits, self.spectro(mel_spectro), self.primary(image_primary), self.wrist(image_wrist)


def LanguageEncoder() -> nn.Module:
    """input_ids, attention_mask (1, L) -> (1, L, LANG_D) (exported as language.onnx)."""
    return _LanguageEncoder(ModelConfig(vocab_size=VOCAB, lang_dim=LANG_D, max_length=L))


def Block() -> nn.Module:
    return _Block(D, HEADS, 4 * D)


def block_causal_mask(n_obs: int) -> torch.Tensor:
    """The trainer's block-causal rule with one readout per step (the action readout)."""
    return _block_causal_mask(n_obs, L, W, 0)


class Policy(nn.Module):
    """Window tokens + pad mask + language -> normalised (1, HORIZON, ACTION_DIM), tanh-squashed."""

    def __init__(self) -> None:
        super().__init__()
        self.n_obs = sum(OBS_TOKENS.values())
        self.lang_proj = nn.Linear(LANG_D, D)
        self.lang_pos = nn.Parameter(torch.randn(L, D) * 0.02)
        self.obs_pos = nn.Parameter(torch.randn(self.n_obs, D) * 0.02)
        self.step_pos = nn.Parameter(torch.randn(W, D) * 0.02)
        self.readout = nn.Parameter(torch.randn(D) * 0.02)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.ln = nn.LayerNorm(D, eps=1e-6)
        self.head1 = nn.Linear(D, 256)
        self.head2 = nn.Linear(256, HORIZON * ACTION_DIM)
        self.register_buffer('allowed', block_causal_mask(self.n_obs))

    def forward(
        self,
        tokens_digits,
        tokens_spectro,
        tokens_primary,
        tokens_wrist,
        timestep_pad_mask,
        language_embedding,
    ):
        b = tokens_primary.shape[0]
        obs = torch.cat([tokens_digits, tokens_spectro, tokens_primary, tokens_wrist], dim=2)
        obs = obs + self.obs_pos + self.step_pos.unsqueeze(1)
        readout = (self.readout + self.step_pos).unsqueeze(0).unsqueeze(2).expand(b, W, 1, D)
        steps = torch.cat([obs, readout], dim=2).reshape(b, W * (self.n_obs + 1), D)
        lang = self.lang_proj(language_embedding) + self.lang_pos
        x = torch.cat([lang, steps], dim=1)
        key_ok = torch.cat(
            [
                torch.ones(b, L, dtype=torch.bool, device=x.device),
                timestep_pad_mask.unsqueeze(-1).expand(b, W, self.n_obs + 1).reshape(b, -1),
            ],
            dim=1,
        )
        allowed = self.allowed.unsqueeze(0) & key_ok.unsqueeze(1)
        bias = torch.where(allowed, 0.0, -1e9).unsqueeze(1)
        for blk in self.blocks:
            x = blk(x, bias)
        out = self.ln(x[:, -1])  # the newest step's readout token
        return torch.tanh(self.head2(gelu(self.head1(out)))).reshape(b, HORIZON, ACTION_DIM)


# --- synthetic data -----------------------------------------------------------------------------
OBJECTS = ['cup', 'sponge', 'ball', 'block', 'bag', 'marker', 'towel', 'can']
SIDES = ['left', 'right', '']


def make_instruction(rng) -> str:
    obj = OBJECTS[rng.integers(len(OBJECTS))]
    side = SIDES[rng.integers(len(SIDES))]
    verb = ['pick up', 'grasp', 'touch', 'push'][rng.integers(4)]
    return f'{verb} the {obj} on the {side}' if side else f'{verb} the {obj}'


def synthetic_batch(rng, n: int, tokenizer: HashWordsTokenizer):
    """Random scenes whose targets are simple functions of the inputs (see models/README.md)."""
    prim_col = rng.uniform(0, 255, (n, W, 1, 1, 3))
    prim = prim_col + rng.integers(-25, 26, (n, W, 256, 256, 3))
    # a random patch of another colour, so the mean colour is not the whole story
    for i in range(n):
        for t in range(W):
            y, x = rng.integers(0, 192, 2)
            prim[i, t, y : y + 64, x : x + 64] = rng.uniform(0, 255, 3)
    prim = np.clip(prim, 0, 255).astype(np.uint8)
    wrist_col = rng.uniform(0, 255, (n, W, 1, 1, 3))
    wrist = np.clip(wrist_col + rng.integers(-25, 26, (n, W, 128, 128, 3)), 0, 255).astype(np.uint8)
    contact = rng.random((n, 2)) < 0.5  # left, right, constant over the window
    digits = []
    for side in range(2):
        frames = rng.integers(-4, 5, (n, W, 224, 224, 3)).astype(np.int16)
        for i in range(n):
            if contact[i, side]:
                y, x = rng.integers(20, 140, 2)
                amp = rng.uniform(25, 90) * rng.choice([-1, 1])
                frames[i, :, y : y + 64, x : x + 64] += np.int16(amp)
        digits.append(frames)
    level = rng.uniform(-80, 0, (n, 1, 1, 1))
    spec = (level + rng.normal(0, 3, (n, W, 128, 128))).astype(np.float32)
    pad = np.ones((n, W), dtype=bool)
    pad[:, 0] = rng.random(n) > 0.15
    texts = [make_instruction(rng) for _ in range(n)]
    ids = np.zeros((n, L), np.int64)
    mask = np.zeros((n, L), np.int64)
    for i, s in enumerate(texts):
        ids[i], mask[i] = (a[0] for a in tokenizer(s))

    pm = prim.astype(np.float64).mean(axis=(2, 3))  # (n, W, 3) per-step mean colour
    base = np.zeros((n, 7))
    base[:, 0] = 0.8 * np.tanh((pm[:, -1, 0] - pm[:, -1, 2]) / 60.0)  # red minus blue
    base[:, 1] = 0.8 * (wrist.astype(np.float64)[:, -1, ..., 1].mean(axis=(1, 2)) / 127.5 - 1.0)
    base[:, 2] = 0.8 * (level[:, 0, 0, 0] + 40.0) / 40.0  # loudness
    base[:, 3] = 0.6 * (contact[:, 0].astype(float) - contact[:, 1].astype(float))
    base[:, 4] = [0.6 if 'left' in s.split() else -0.6 if 'right' in s.split() else 0.0 for s in texts]
    motion = pm[:, -1].mean(axis=1) - pm[:, 0].mean(axis=1)
    base[:, 5] = np.where(pad[:, 0], 0.8 * np.tanh(motion / 60.0), 0.0)  # needs both steps
    base[:, 6] = np.where(contact.any(axis=1), 0.0, 1.0)  # close on contact
    decay = np.array([1.0, 0.85, 0.7, 0.55])
    target = np.repeat(base[:, None, :], HORIZON, axis=1)
    target[..., :6] *= decay[None, :, None]
    obs = {
        'image_primary': prim,
        'image_wrist': wrist,
        'image_digit_left': digits[0],
        'image_digit_right': digits[1],
        'mel_spectro': spec,
    }
    return obs, pad, ids, mask, target.astype(np.float32)


class FullModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = ObservationEncoder()
        self.language = LanguageEncoder()
        self.policy = Policy()

    def forward(self, obs, pad, ids, mask):
        n = pad.shape[0]
        flat = {k: v.reshape(n * W, *v.shape[2:]) for k, v in obs.items()}
        toks = self.encoder(*(flat[k] for k in INPUT_NAMES))
        toks = [t.reshape(n, W, *t.shape[1:]) for t in toks]
        return self.policy(*toks, pad, self.language(ids, mask))


def predict(model: FullModel, obs, pad, ids, mask) -> torch.Tensor:
    """The model on one synthetic batch (numpy arrays in, a torch tensor out)."""
    return model({k: torch.from_numpy(v) for k, v in obs.items()}, torch.from_numpy(pad),
                 torch.from_numpy(ids), torch.from_numpy(mask))


def train(model: FullModel, steps: int, batch: int, seed: int, log_every: int = 50) -> list:
    rng = np.random.default_rng(seed)
    tok = HashWordsTokenizer(VOCAB, L, 512)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []
    t0 = time.time()
    for step in range(steps):
        obs, pad, ids, mask, target = synthetic_batch(rng, batch, tok)
        pred = predict(model, obs, pad, ids, mask)
        loss = F.mse_loss(pred, torch.from_numpy(target))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(loss.item())
        if step % log_every == 0 or step == steps - 1:
            print(
                f'step {step:4d}  loss {np.mean(history[-log_every:]):.4f}  ({time.time() - t0:.0f} s)',
                flush=True,
            )
    return history


def evaluate(model: FullModel, seed: int, n: int = 64):
    """Per-dim RMSE on fresh synthetic data (normalised units)."""
    rng = np.random.default_rng(seed)
    tok = HashWordsTokenizer(VOCAB, L, 512)
    obs, pad, ids, mask, target = synthetic_batch(rng, n, tok)
    with torch.no_grad():
        pred = predict(model, obs, pad, ids, mask).numpy()
    rmse = np.sqrt(((pred - target) ** 2).mean(axis=(0, 1)))
    spread = target.std(axis=(0, 1))
    return rmse, spread, target


# --- export ---------------------------------------------------------------------------------------
def export(model: FullModel, out: Path, opset: int) -> None:
    model.eval()
    enc_args = tuple(torch.zeros(1, *i['shape'], dtype=getattr(torch, i['dtype'])) for i in INPUTS)
    torch.onnx.export(
        model.encoder,
        enc_args,
        str(out / 'observation_encoder.onnx'),
        dynamo=False,
        input_names=INPUT_NAMES,
        output_names=list(OBS_TOKENS),
        opset_version=opset,
    )
    pol_args = tuple(torch.zeros(1, W, n, D) for n in OBS_TOKENS.values()) + (
        torch.ones(1, W, dtype=torch.bool),
        torch.zeros(1, L, LANG_D),
    )
    torch.onnx.export(
        model.policy,
        pol_args,
        str(out / 'policy.onnx'),
        dynamo=False,
        input_names=list(OBS_TOKENS) + ['timestep_pad_mask', 'language_embedding'],
        output_names=['action'],
        opset_version=opset,
    )
    lang_args = (torch.zeros(1, L, dtype=torch.int64), torch.ones(1, L, dtype=torch.int64))
    torch.onnx.export(
        model.language,
        lang_args,
        str(out / 'language.onnx'),
        dynamo=False,
        input_names=['input_ids', 'attention_mask'],
        output_names=['language_embedding'],
        opset_version=opset,
    )


def write_metadata(out: Path, target: np.ndarray, n_train: int, batch: int, steps: int) -> None:
    manifest = {
        'format_version': 1,
        'name': 'fuse-reference-small',
        'description': (
            'Small FuSe-shaped reference policy fitted on synthetic data; not a robot '
            'policy. See models/README.md.'
        ),
        'control_rate_hz': 5.0,
        'window_size': W,
        'graphs': {
            'policy': 'policy.onnx',
            'observation_encoder': 'observation_encoder.onnx',
            'language': 'language.onnx',
        },
        'inputs': INPUTS,
        'language': {
            'max_length': L,
            'tokenizer': {'type': 'hash_words', 'vocab_size': VOCAB},
            'embedding_shape': [L, LANG_D],
            'max_chars': 512,
        },
        'action': {
            'horizon': HORIZON,
            'dim': ACTION_DIM,
            'layout': LAYOUT,
            'normalization': {'mean': ACTION_MEAN, 'std': ACTION_STD, 'mask': ACTION_MASK},
            'gripper_index': 6,
        },
        'statistics': 'dataset_statistics.json',
    }
    parse_manifest(manifest)  # the script must never write a manifest the runtime refuses
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=2) + '\n')
    mean, std, mask = np.array(ACTION_MEAN), np.array(ACTION_STD), np.array(ACTION_MASK)
    flat = target.reshape(-1, ACTION_DIM).astype(np.float64)
    raw = np.where(mask, flat * std + mean, flat)
    stats = {
        'action': {
            'mean': ACTION_MEAN,
            'std': ACTION_STD,
            'max': raw.max(axis=0).tolist(),
            'min': raw.min(axis=0).tolist(),
            'p99': np.percentile(raw, 99, axis=0).tolist(),
            'p01': np.percentile(raw, 1, axis=0).tolist(),
            'mask': ACTION_MASK,
        },
        'num_transitions': int(n_train),
        'num_trajectories': int(steps * batch),
    }
    (out / 'dataset_statistics.json').write_text(json.dumps(stats, indent=2) + '\n')


def parity_check(model: FullModel, out: Path, seed: int) -> float:
    """ONNX Runtime (through the project's own runner) against PyTorch on fresh synthetic windows."""
    runner = PolicyRunner(load_bundle(out, providers='cpu', threads=2))
    rng = np.random.default_rng(seed)
    tok = HashWordsTokenizer(VOCAB, L, 512)
    worst = 0.0
    for i in range(4):
        obs, pad, ids, mask, _ = synthetic_batch(rng, 1, tok)
        text = make_instruction(rng)
        ids[0], mask[0] = (a[0] for a in tok(text))
        runner.set_instruction(text)
        with torch.no_grad():
            ref = predict(model, obs, pad, ids, mask).numpy()[0]
        res = runner.infer(Observation({k: v[0] for k, v in obs.items()}, pad[0]))
        worst = max(worst, float(np.abs(res.normalized - ref).max()))
    return worst


def time_bundle(out: Path, threads: int = 2, n: int = 30) -> dict:
    runner = PolicyRunner(load_bundle(out, providers='cpu', threads=threads))
    runner.set_instruction('pick up the cup')
    obs = runner.example_observation()
    for _ in range(3):
        runner.infer(obs, reuse_encodings=False)
    times = [runner.infer(obs, reuse_encodings=False).timing_ms['total'] for _ in range(n)]
    return {'p50': float(np.percentile(times, 50)), 'p99': float(np.percentile(times, 99))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', type=Path, default=REPO / 'models' / 'reference')
    ap.add_argument('--steps', type=int, default=240)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--opset', type=int, default=17)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = FullModel()
    history = train(model, args.steps, args.batch, args.seed)
    model.eval()
    rmse, spread, target = evaluate(model, args.seed + 1)
    print('held-out RMSE per dim (normalised units):', np.round(rmse, 3).tolist())
    print('target std per dim                      :', np.round(spread, 3).tolist())
    tmp = args.out.with_name(args.out.name + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    export(model, tmp, args.opset)
    write_metadata(tmp, target, args.steps * args.batch, args.batch, args.steps)
    worst = parity_check(model, tmp, args.seed + 2)
    print(f'ONNX Runtime vs PyTorch: max |diff| = {worst:.2e}')
    if worst > 1e-4:
        print('parity check FAILED; bundle not written', file=sys.stderr)
        return 1
    timing = time_bundle(tmp, threads=args.threads)
    print(
        f'forward (encode 2 steps + policy), {args.threads} threads: p50 {timing["p50"]:.1f} ms, '
        f'p99 {timing["p99"]:.1f} ms'
    )
    report = {
        'steps': args.steps,
        'batch': args.batch,
        'seed': args.seed,
        'final_loss': float(np.mean(history[-50:])),
        'heldout_rmse': [round(float(x), 4) for x in rmse],
        'target_std': [round(float(x), 4) for x in spread],
        'onnx_parity_max_abs': worst,
        'torch_version': torch.__version__,
    }
    (tmp / 'training_report.json').write_text(json.dumps(report, indent=2) + '\n')
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f'bundle written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
