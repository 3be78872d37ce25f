"""Export a trained FuseModel to a model bundle (models/README.md) and check it against the model.

Graphs: observation_encoder.onnx (one timestep -> token groups), policy.onnx (window tokens,
pad mask, instruction embedding -> normalised action chunk), language.onnx (token ids ->
embedding), gen_head.onnx (window tokens, pad mask, FuSe modality index -> instruction token ids,
with the modality table in its metadata) and the word-level tokenizer.json that decodes them.
The bundle is written to a temporary directory, opened with fuse_core's loader and runner,
compared with the torch model on the given windows; beyond the bound nothing is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from fuse_core.bundle.manifest import FUSE_OBSERVATION_INPUTS, parse_manifest

from .errors import ParityError, TrainerError
from .losses import GENERATIVE_COMBINATIONS, MODALITY_COMBINATIONS, allowed_combinations
from .model import FuseModel

LAYOUT = ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper']
PARITY_BOUND = 1e-4


class _Graph(nn.Module):
    """One exported graph: a forward around the trained model."""

    def __init__(self, model: FuseModel) -> None:
        super().__init__()
        self.model = model

    def _window(self, args) -> Tuple[Dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """A window graph's inputs: the encoder's outputs, then the pad mask and one more input."""
        groups = self.model.cfg.encoder_outputs
        return dict(zip(groups, args[: len(groups)])), args[len(groups)], args[len(groups) + 1]


class _Encoder(_Graph):
    def forward(self, *inputs):
        obs = dict(zip(self.model.cfg.inputs, inputs))
        out = self.model.encode(obs)
        return tuple(out[g] for g in self.model.cfg.encoder_outputs)


class _Policy(_Graph):
    def forward(self, *args):
        tokens, pad, language = self._window(args)
        readout, _ = self.model.transformer(tokens, pad, language)
        return self.model.action_head(readout)


class _Language(_Graph):
    def forward(self, input_ids, attention_mask):
        return self.model.language(input_ids, attention_mask)


class _Generative(_Graph):
    def forward(self, *args):
        tokens, pad, index = self._window(args)
        keep = self.model.modality_groups[index].reshape(len(self.model.cfg.groups))
        _, lang_r = self.model.transformer(tokens, pad, None, keep)
        logits = self.model.gen_logits(lang_r, index)
        return torch.argmax(logits, dim=-1), logits


def token_names(model: FuseModel) -> List[str]:
    return [f'tokens_{g}' for g in model.cfg.encoder_outputs]


def manifest_inputs(model: FuseModel) -> List[dict]:
    return [dict(i) for i in FUSE_OBSERVATION_INPUTS if i['name'] in model.cfg.inputs]


def _export_graphs(model: FuseModel, tmp: Path, opset: int, generative: bool) -> None:
    cfg = model.cfg
    W, L = cfg.window, cfg.max_length
    specs = manifest_inputs(model)
    enc_args = tuple(torch.zeros(1, *i['shape'], dtype=getattr(torch, i['dtype'])) for i in specs)
    with torch.no_grad():
        toks = _Encoder(model)(*enc_args)
    names = token_names(model)
    kw = dict(dynamo=False, opset_version=opset)
    torch.onnx.export(_Encoder(model), enc_args, str(tmp / 'observation_encoder.onnx'),
                      input_names=[i['name'] for i in specs], output_names=names, **kw)
    win = tuple(torch.zeros(1, W, *t.shape[1:]) for t in toks)
    pad = torch.ones(1, W, dtype=torch.bool)
    torch.onnx.export(_Policy(model), win + (pad, torch.zeros(1, L, cfg.lang_dim)), str(tmp / 'policy.onnx'),
                      input_names=names + ['timestep_pad_mask', 'language_embedding'], output_names=['action'], **kw)
    torch.onnx.export(_Language(model), (torch.zeros(1, L, dtype=torch.int64), torch.ones(1, L, dtype=torch.int64)),
                      str(tmp / 'language.onnx'), input_names=['input_ids', 'attention_mask'],
                      output_names=['language_embedding'], **kw)
    if generative:
        torch.onnx.export(_Generative(model), win + (pad, torch.tensor([3], dtype=torch.int64)),
                          str(tmp / 'gen_head.onnx'), input_names=names + ['timestep_pad_mask', 'modality_index'],
                          output_names=['token_ids', 'logits'], **kw)
        import onnx
        from onnx import helper

        g = onnx.load(str(tmp / 'gen_head.onnx'))
        table = {c: i for i, c in enumerate(MODALITY_COMBINATIONS)
                 if c in allowed_combinations(cfg.modalities, GENERATIVE_COMBINATIONS)}
        helper.set_model_props(g, {
            'modality_index': json.dumps(table),
            'instruction': '',
            'decode': 'token_ids with the bundle tokenizer.json, special tokens skipped',
        })
        onnx.save(g, str(tmp / 'gen_head.onnx'))


def build_manifest(model: FuseModel, stats: Mapping, name: str, description: str, generative: bool,
                   control_rate_hz: float = 5.0) -> dict:
    cfg = model.cfg
    a = stats['action']
    manifest = {
        'format_version': 1,
        'name': name,
        'description': description,
        'control_rate_hz': float(control_rate_hz),
        'window_size': cfg.window,
        'graphs': {'policy': 'policy.onnx', 'observation_encoder': 'observation_encoder.onnx',
                   'language': 'language.onnx'},
        'inputs': manifest_inputs(model),
        'language': {
            'max_length': cfg.max_length,
            'tokenizer': {'type': 'hf_tokenizers', 'file': 'tokenizer.json', 'pad_id': 0},
            'embedding_shape': [cfg.max_length, cfg.lang_dim],
            'max_chars': 512,
        },
        'action': {
            'horizon': cfg.horizon,
            'dim': cfg.action_dim,
            'layout': LAYOUT if cfg.action_dim == 7 else [f'a{i}' for i in range(cfg.action_dim)],
            'normalization': {'mean': [float(x) for x in a['mean']], 'std': [float(x) for x in a['std']],
                              'mask': [bool(x) for x in a['mask']]},
            'gripper_index': 6 if cfg.action_dim == 7 else None,
        },
        'statistics': 'dataset_statistics.json',
    }
    if generative:
        manifest['graphs']['generative'] = 'gen_head.onnx'
    parse_manifest(manifest)  # never write a manifest the runtime refuses
    return manifest


def parity(model: FuseModel, bundle_dir: Path, windows: Sequence[Tuple[Mapping[str, np.ndarray], np.ndarray, str]],
           tokenizer_file: Path) -> Dict[str, float]:
    """Max |ONNX - torch| of the action (through fuse_core's PolicyRunner) and of the generative
    head's logits (every combination the head has, divided by max(1, max |logit|)) on the given
    windows (obs, pad, instruction)."""
    from fuse_core.bundle import Observation, PolicyRunner, load_bundle
    from fuse_core.bundle.tokenizers import HFTokenizer

    bundle = load_bundle(bundle_dir, providers='cpu', threads=1)
    runner = PolicyRunner(bundle)
    tok = HFTokenizer(tokenizer_file, model.cfg.max_length, 512, 0)
    worst = {'action': 0.0}
    model.eval()
    enc = bundle.sessions['observation_encoder']
    names = token_names(model)
    for obs, pad, text in windows:
        runner.set_instruction(text)
        res = runner.infer(Observation({k: obs[k] for k in model.cfg.inputs}, pad), reuse_encodings=False)
        ids, mask = tok(text)
        with torch.no_grad():
            t_obs = {k: torch.from_numpy(np.ascontiguousarray(obs[k]))[None] for k in model.cfg.inputs}
            t_pad = torch.from_numpy(np.asarray(pad, bool))[None]
            tokens = model.encode_window(t_obs)
            readout, _ = model.transformer(tokens, t_pad, model.language(torch.from_numpy(ids), torch.from_numpy(mask)))
            ref = model.action_head(readout).numpy()[0]
        worst['action'] = max(worst['action'], float(np.abs(res.normalized - ref).max()))
        if 'generative' not in bundle.sessions:
            continue
        # the ONNX encoder on every real step (padded steps' tokens are never read)
        steps = []
        for t in range(model.cfg.window):
            feed = {k: np.ascontiguousarray(obs[k][t])[None] for k in model.cfg.inputs}
            steps.append(enc.run(names, feed))
        feeds = {n: np.stack([s[j][0] for s in steps])[None] for j, n in enumerate(names)}
        feeds['timestep_pad_mask'] = np.asarray(pad, bool)[None]
        for mods, index in bundle.modality_index.items():
            feeds['modality_index'] = np.array([index], np.int64)
            logits = bundle.sessions['generative'].run(['logits'], feeds)[0]
            with torch.no_grad():
                keep = model.modality_groups[index]
                _, lang_r = model.transformer(tokens, t_pad, None, keep)
                ref = model.gen_logits(lang_r, torch.tensor([index])).numpy()
            # logits grow with training: their error is taken relative to their size (at least 1)
            key = 'generative'
            err = float(np.abs(logits - ref).max()) / max(1.0, float(np.abs(ref).max()))
            worst[key] = max(worst.get(key, 0.0), err)
        worst.setdefault('describe_checked', 0.0)
        runner.describe(Observation({k: obs[k] for k in model.cfg.inputs}, pad), ['visual'] if 'visual' in
                        model.cfg.modalities else sorted(model.cfg.modalities)[:1])
    return worst


def export_bundle(model: FuseModel, tokenizer_json: str, stats: Mapping, out_dir, windows, *,
                  name: str = 'fuse-trained',
                  description: str = '', report: Optional[dict] = None, generative: bool = True,
                  parity_bound: float = PARITY_BOUND, opset: int = 17, overwrite: bool = False,
                  control_rate_hz: float = 5.0, log=print) -> dict:
    """Write the bundle atomically after the parity check; returns the parity figures.

    windows: [(obs {input: (W, *shape)}, pad (W,), instruction)], e.g. training windows.
    Raises ParityError (and writes nothing) when any figure exceeds parity_bound.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise TrainerError(f'{out_dir} already exists (overwrite to replace it)')
    if not windows:
        raise TrainerError('the parity check needs at least one window')
    model = model.cpu().eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        _export_graphs(model, tmp, opset, generative)
        (tmp / 'tokenizer.json').write_text(tokenizer_json)
        (tmp / 'dataset_statistics.json').write_text(json.dumps(stats, indent=1) + '\n')
        manifest = build_manifest(model, stats, name, description or 'FuSe-shaped policy from models/trainer',
                                  generative, control_rate_hz)
        (tmp / 'manifest.json').write_text(json.dumps(manifest, indent=2) + '\n')
        figures = parity(model, tmp, windows, tmp / 'tokenizer.json')
        figures.pop('describe_checked', None)
        log('ONNX Runtime vs PyTorch, max |diff|: ' + ', '.join(f'{k} {v:.2e}' for k, v in figures.items()))
        over = {k: v for k, v in figures.items() if not v <= parity_bound}
        if over:
            raise ParityError(f'export parity beyond the bound {parity_bound:g}: {over}; no bundle written')
        rep = dict(report or {})
        rep.update({'onnx_parity_max_abs': figures, 'parity_bound': parity_bound, 'torch_version': torch.__version__})
        (tmp / 'training_report.json').write_text(json.dumps(rep, indent=2) + '\n')
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f'bundle written to {out_dir}')
    return figures
