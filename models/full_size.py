"""A full-size FuSe bundle (Octo-small-FuSe architecture and sizes, random weights) for benchmarks.

The configuration is FuSe's: SmallStem16 camera stems (256 and 128 px), the shared tactile
ViT-S (384-d, 12 blocks, one 768-d token per DIGIT), ResNet-26 on the spectrogram, T5-base as
the language encoder, the 12-layer 384-d Octo transformer, the MSE action head (4 x 7) and the
generative head (vocabulary 32,218); about 190 M parameters. The parameters are random (scaled
normal kernels, unit norm scales), written in Octo's checkpoint layout in memory and exported
with the project's own exporter, so a benchmark runs the real graph sizes on a fresh machine
without the original training code. Not a trained model: its actions mean nothing.

    .venv/bin/python -m models.full_size [--precision int8] [--out DIR]

The bundle is cached under ~/.cache/fuse-ros/full_size/<precision>/ (about 0.8 GB for
float32); building it takes a minute or two. Never used by the tests (too slow).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.exporter import Checkpoint, export_checkpoint, load_checkpoint  # noqa: E402

FIXTURE = REPO / 'tests' / 'fixtures' / 'fuse_small'
CACHE = Path.home() / '.cache' / 'fuse-ros' / 'full_size'
#: Bump when the generated architecture changes, so a stale cache is rebuilt.
VERSION = 2

TOKEN = 384  # Octo-small
LAYERS, HEADS, MLP = 12, 6, 1536
MAX_HORIZON = 10
T5 = dict(d_model=768, layers=12, heads=12, d_ff=3072, vocab=32128, buckets=32)
VIT = dict(dim=384, depth=12, heads=6, out=768, patch=16, size=224)
STEM = dict(features=(32, 96, 192, 384), num_features=512)
RESNET = dict(width=64, layers=(2, 2, 2, 2))
GEN_VOCAB, LANG_TOKENS = 32218, 24


class _Init:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def kernel(self, *shape, fan_in=None):
        fan_in = fan_in or int(np.prod(shape[:-1]))
        return (self.rng.standard_normal(shape, dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)

    def small(self, *shape, scale=0.02):
        return (self.rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

    def norm(self, d):
        return {'scale': (1.0 + self.small(d, scale=0.1)), 'bias': self.small(d, scale=0.1)}

    def dense(self, fin, fout):
        return {'kernel': self.kernel(fin, fout), 'bias': self.small(fout)}

    def mha(self, d, heads):
        hd = d // heads
        out = {n: {'kernel': self.kernel(d, heads, hd, fan_in=d), 'bias': self.small(heads, hd)}
               for n in ('query', 'key', 'value')}
        out['out'] = {'kernel': self.kernel(heads, hd, d, fan_in=d), 'bias': self.small(d)}
        return out

    def mlp(self, d, m):
        return {'Dense_0': self.dense(d, m), 'Dense_1': self.dense(m, d)}

    def map_head(self, d, probes):
        return {'LayerNorm_0': self.norm(d), 'MlpBlock_0': self.mlp(d, 4 * d),
                'MultiHeadDotProductAttention_0': self.mha(d, 8), 'probe': self.small(1, probes, d)}


def _stem(i: _Init, in_ch: int) -> dict:
    out, ch = {}, in_ch
    for n, f in enumerate(STEM['features']):
        out[f'StdConv_{n}'] = {'kernel': i.kernel(3, 3, ch, f), 'bias': i.small(f)}
        out[f'GroupNorm_{n}'] = i.norm(f)
        ch = f
    out['embedding'] = {'kernel': i.kernel(1, 1, ch, STEM['num_features']), 'bias': i.small(STEM['num_features'])}
    return out


def _resnet(i: _Init) -> dict:
    w = RESNET['width']
    out = {'conv_root': {'kernel': i.kernel(7, 7, 1, w)}, 'gn_root': i.norm(w)}
    ch = w
    for stage, units in enumerate(RESNET['layers']):
        nout = w * 2**stage
        block = {}
        for u in range(units):
            stride = 2 if (stage > 0 and u == 0) else 1
            unit = {'conv1': {'kernel': i.kernel(1, 1, ch, nout)}, 'gn1': i.norm(nout),
                    'conv2': {'kernel': i.kernel(3, 3, nout, nout)}, 'gn2': i.norm(nout),
                    'conv3': {'kernel': i.kernel(1, 1, nout, 4 * nout)}, 'gn3': i.norm(4 * nout)}
            if ch != 4 * nout or stride != 1:
                unit['conv_proj'] = {'kernel': i.kernel(1, 1, ch, 4 * nout)}
                unit['gn_proj'] = i.norm(4 * nout)
            block[f'unit{u + 1}'] = unit
            ch = 4 * nout
        out[f'block{stage + 1}'] = block
    return out


def _vit(i: _Init) -> dict:
    d, p = VIT['dim'], VIT['patch']
    n = (VIT['size'] // p) ** 2 + 1
    out = {'patch_embed': {'proj': {'kernel': i.kernel(p, p, 3, d), 'bias': i.small(d)}},
           'cls_token': i.small(1, 1, d), 'pos_embed': i.small(1, n, d), 'fc_norm': i.norm(d),
           'head': i.dense(d, VIT['out'])}
    for b in range(VIT['depth']):
        out[f'block{b}'] = {'norm1': i.norm(d), 'norm2': i.norm(d),
                            'attn': {'qkv': i.dense(d, 3 * d), 'proj': i.dense(d, d)},
                            'mlp': {'fc1': i.dense(d, 4 * d), 'fc2': i.dense(4 * d, d)}}
    return out


def _t5(i: _Init) -> dict:
    d, ff = T5['d_model'], T5['d_ff']
    blocks = {}
    for b in range(T5['layers']):
        sa = {n: {'kernel': i.kernel(d, d)} for n in ('q', 'k', 'v', 'o')}
        if b == 0:
            sa['relative_attention_bias'] = {'embedding': i.small(T5['buckets'], T5['heads'], scale=0.5)}
        blocks[str(b)] = {'layer': {
            '0': {'SelfAttention': sa, 'layer_norm': {'weight': 1.0 + i.small(d, scale=0.1)}},
            '1': {'DenseReluDense': {'wi': {'kernel': i.kernel(d, ff)}, 'wo': {'kernel': i.kernel(ff, d)}},
                  'layer_norm': {'weight': 1.0 + i.small(d, scale=0.1)}},
        }}
    return {'shared': {'embedding': i.small(T5['vocab'], d, scale=1.0)},
            'encoder': {'block': blocks, 'final_layer_norm': {'weight': 1.0 + i.small(d, scale=0.1)}}}


#: observation group -> (token dim, tokens per step)
GROUP_TOKENS = {'digits': (VIT['out'], 2), 'mel_spectro': (4 * RESNET['width'] * 8, 16),
                'primary': (STEM['num_features'], 256), 'wrist': (STEM['num_features'], 64)}


def full_size_params(seed: int = 0) -> dict:
    """The nested parameter tree of Octo-small-FuSe, random."""
    i = _Init(seed)
    ot = {
        'observation_tokenizers_digits': {'tvlViT_0': _vit(i)},
        'observation_tokenizers_mel_spectro': {'ResNet26FILM_0': _resnet(i)},
        'observation_tokenizers_primary': {'SmallStem16_0': _stem(i, 6)},
        'observation_tokenizers_wrist': {'SmallStem16_0': _stem(i, 6)},
        'task_tokenizers_language': {'hf_model': _t5(i)},
        'task_language_projection': i.dense(T5['d_model'], TOKEN),
        'task_language_pos_embedding': i.small(1, LANG_TOKENS, TOKEN),
        'readout_action_pos_embedding': i.small(1, MAX_HORIZON, 1, TOKEN),
        'readout_language_pos_embedding': i.small(1, MAX_HORIZON, LANG_TOKENS, TOKEN),
        'BlockTransformer_0': {'Transformer_0': {
            'encoder_norm': i.norm(TOKEN),
            **{f'encoderblock_{n}': {'LayerNorm_0': i.norm(TOKEN), 'LayerNorm_1': i.norm(TOKEN),
                                     'MlpBlock_0': i.mlp(TOKEN, MLP),
                                     'MultiHeadDotProductAttention_0': i.mha(TOKEN, HEADS)}
               for n in range(LAYERS)},
        }},
    }
    for group, (dim, n) in GROUP_TOKENS.items():
        ot[f'obs_{group}_projection'] = i.dense(dim, TOKEN)
        ot[f'obs_{group}_pos_embedding'] = i.small(1, MAX_HORIZON, n, TOKEN)
    return {
        'octo_transformer': ot,
        'heads_action': {'map_head': i.map_head(TOKEN, 1), 'mean_proj': i.dense(TOKEN, 4 * 7)},
        'heads_gen': {'decode_map_head': i.map_head(TOKEN, LANG_TOKENS),
                      'latent_to_vocab': i.dense(TOKEN, GEN_VOCAB),
                      'modality_class_tokens': {'embedding': i.small(9, TOKEN)}},
    }


def full_size_config(template: dict) -> dict:
    """The fixture's configuration with FuSe's full sizes (the constructors' defaults)."""
    cfg = copy.deepcopy(template)
    m = cfg['model']
    tok = m['observation_tokenizers']
    tok['digits']['kwargs']['encoder']['kwargs'] = {'img_size': [VIT['size'], VIT['size']]}
    tok['mel_spectro']['kwargs']['encoder']['kwargs'] = {'use_film': False}
    for cam in ('primary', 'wrist'):
        tok[cam]['kwargs']['encoder']['kwargs'] = {}
    m['task_tokenizers']['language']['kwargs']['encoder'] = 't5-base'
    m['heads'].pop('clip', None)  # training only: the exporter skips it anyway
    m['heads']['gen']['kwargs'] = {'n_lang_tokens': LANG_TOKENS, 'vocab_size': GEN_VOCAB,
                                   'token_embedding_shape': TOKEN}
    m['token_embedding_size'] = TOKEN
    m['transformer_kwargs'].update(num_layers=LAYERS, mlp_dim=MLP, num_attention_heads=HEADS)
    m['max_horizon'] = MAX_HORIZON
    return cfg


def _flatten(tree: dict, prefix=()) -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def build_full_size(out_dir: str | Path, precision: str = 'float32', seed: int = 0, log=print, **export_kw) -> dict:
    """Export the random full-size model to out_dir; returns the manifest."""
    fixture = load_checkpoint(FIXTURE / 'checkpoint')
    ckpt = Checkpoint(path=Path('full_size_random'), step=0, config=full_size_config(fixture.config),
                      example_batch=fixture.example_batch, dataset_statistics=fixture.dataset_statistics,
                      params=_flatten(full_size_params(seed)))
    log(f'full-size FuSe (random weights): {sum(v.size for v in ckpt.params.values()) / 1e6:.1f} M parameters')
    return export_checkpoint(ckpt, out_dir, tokenizer=FIXTURE / 'tokenizer.json',
                             name=f'fuse-full-size-random-{precision}', precision=precision, log=log, **export_kw)


def cached_full_size(precision: str = 'float32', log=print, **export_kw) -> Path:
    """The cached bundle for `precision`, built on first use."""
    out = CACHE / precision
    stamp = out / 'full_size_version.json'
    if stamp.is_file() and json.loads(stamp.read_text()).get('version') == VERSION:
        return out
    build_full_size(out, precision, log=log, overwrite=True, **export_kw)
    stamp.write_text(json.dumps({'version': VERSION}) + '\n')
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--precision', default='float32', choices=['float32', 'float16', 'int8'])
    ap.add_argument('--out', default=None, help='bundle directory (default: the cache)')
    ap.add_argument('--keep-over-bound', action='store_true', help='write it even when parity exceeds the bound')
    args = ap.parse_args(argv)
    if args.out:
        build_full_size(args.out, args.precision, overwrite=True, keep_over_bound=args.keep_over_bound)
        print(args.out)
    else:
        print(cached_full_size(args.precision, keep_over_bound=args.keep_over_bound))
    return 0


if __name__ == '__main__':
    sys.exit(main())
