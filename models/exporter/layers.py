"""ONNX builders for the Octo/FuSe modules, reading their Flax parameters."""

from __future__ import annotations

import numpy as np

from .errors import ExportError
from .graph import Graph, conv_output_size, same_padding
from .params import Scope

LN_EPS = 1e-6  # flax.linen.LayerNorm and GroupNorm default
GN_GROUPS = 32
STD_CONV_EPS = 1e-5


def weight_standardize(kernel: np.ndarray) -> np.ndarray:
    """StdConv's (w - mean) / (std + eps) over H, W and input channels, baked into the kernel."""
    k = kernel.astype(np.float64)
    k = k - k.mean(axis=(0, 1, 2), keepdims=True)
    k = k / (k.std(axis=(0, 1, 2), keepdims=True) + STD_CONV_EPS)
    return k.astype(np.float32)


def layer_norm(g: Graph, x: str, p: Scope, eps: float = LN_EPS) -> str:
    dim = p.shape('scale')[0]
    return g.layer_norm(x, p.take('scale', shape=(dim,)), p.take('bias', shape=(dim,)), eps)


def dense(
    g: Graph, x: str, p: Scope, in_dim: int | None = None, out_dim: int | None = None, bias: bool = True
) -> str:
    kshape = p.shape('kernel')
    if len(kshape) != 2:
        raise ExportError(f'parameter {"/".join(p.prefix)}/kernel has shape {kshape}, expected a matrix')
    shape = (in_dim if in_dim is not None else kshape[0], out_dim if out_dim is not None else kshape[1])
    kernel = p.take('kernel', shape=shape)
    b = p.take('bias', shape=(shape[1],)) if bias else None
    return g.dense(x, kernel, b)


def mlp_block(g: Graph, x: str, p: Scope, dim: int, hidden: int) -> str:
    """Octo's MlpBlock: Dense, GELU (tanh), Dense."""
    h = g.gelu_tanh(dense(g, x, p / 'Dense_0', dim, hidden))
    return dense(g, h, p / 'Dense_1', hidden, dim)


def mha_projections(p: Scope, dim: int, heads: int):
    """Flax MultiHeadDotProductAttention weights as [dim, dim] matrices, 1/sqrt(head_dim) folded into q."""
    head_dim = dim // heads
    if head_dim * heads != dim:
        raise ExportError(f'{"/".join(p.prefix)}: width {dim} is not divisible by {heads} heads')
    out = {}
    for name in ('query', 'key', 'value'):
        k = p.take(name, 'kernel', shape=(dim, heads, head_dim)).reshape(dim, dim)
        b = p.take(name, 'bias', shape=(heads, head_dim)).reshape(dim)
        out[name] = (k, b)
    scale = np.float32(1.0 / np.sqrt(head_dim))
    out['query'] = (out['query'][0] * scale, out['query'][1] * scale)
    ok = p.take('out', 'kernel', shape=(heads, head_dim, dim)).reshape(dim, dim)
    ob = p.take('out', 'bias', shape=(dim,))
    out['out'] = (ok, ob)
    return out, head_dim


def self_attention_block(
    g: Graph,
    x: str,
    p: Scope,
    dim: int,
    heads: int,
    mlp_dim: int,
    n_tokens: int,
    mask: str | None,
    query_index: int | None = None,
) -> str:
    """Octo's Encoder1DBlock (pre-LN). With query_index, only that token's output is computed."""
    w, head_dim = mha_projections(p / 'MultiHeadDotProductAttention_0', dim, heads)
    y = layer_norm(g, x, p / 'LayerNorm_0')
    if query_index is None:
        n_q, x_res, y_q, q_mask = n_tokens, x, y, mask
    else:
        n_q = 1
        x_res = g.gather(x, [query_index], axis=1)
        y_q = g.gather(y, [query_index], axis=1)
        q_mask = g.gather(mask, [query_index], axis=2) if mask is not None else None
    q = g.dense(y_q, *w['query'])
    k = g.dense(y, *w['key'])
    v = g.dense(y, *w['value'])
    a = g.attention(q, k, v, heads, head_dim, n_q, n_tokens, mask=q_mask)
    x2 = g.add(x_res, g.dense(a, *w['out']))
    z = layer_norm(g, x2, p / 'LayerNorm_1')
    return g.add(x2, mlp_block(g, z, p / 'MlpBlock_0', dim, mlp_dim))


def map_head(g: Graph, x: str, p: Scope, dim: int, n_tokens: int, batch: int, heads: int = 8) -> str:
    """Octo's MAPHead on x [batch, n_tokens, dim] (no mask) -> [batch, num_readouts, dim]."""
    probe = p.take('probe')
    if probe.ndim != 3 or probe.shape[0] != 1 or probe.shape[2] != dim:
        raise ExportError(
            f'parameter {"/".join(p.prefix)}/probe has shape {probe.shape}, expected (1, n, {dim})'
        )
    n_readouts = probe.shape[1]
    w, head_dim = mha_projections(p / 'MultiHeadDotProductAttention_0', dim, heads)
    # The probe is a constant, so its query projection is folded at export time.
    q_const = (probe.reshape(n_readouts, dim) @ w['query'][0] + w['query'][1]).astype(np.float32)
    q = g.const(np.broadcast_to(q_const, (batch, n_readouts, dim)).copy(), name='map_query')
    k = g.dense(x, *w['key'])
    v = g.dense(x, *w['value'])
    a = g.attention(q, k, v, heads, head_dim, n_readouts, n_tokens)
    out = g.dense(a, *w['out'])
    y = layer_norm(g, out, p / 'LayerNorm_0')
    mlp_dim = (p / 'MlpBlock_0' / 'Dense_0').shape('kernel')[1]
    return g.add(out, mlp_block(g, y, p / 'MlpBlock_0', dim, mlp_dim)), n_readouts


# ---- observation encoders (NCHW inside the graph) ----------------------------------


def small_stem(g: Graph, x_nchw: str, p: Scope, kw: dict, in_ch: int, size: tuple[int, int]):
    """Octo's SmallStem: StdConv/GroupNorm/ReLU stages with symmetric integer padding, then a patch conv."""
    h, w = size
    ch = in_ch
    for i, (k, s, f, pad) in enumerate(zip(kw['kernel_sizes'], kw['strides'], kw['features'], kw['padding'])):
        conv = p / f'StdConv_{i}'
        kernel = weight_standardize(conv.take('kernel', shape=(k, k, ch, f)))
        x_nchw = g.conv(x_nchw, kernel, conv.take('bias', shape=(f,)), (s, s), (pad, pad, pad, pad))
        gn = p / f'GroupNorm_{i}'
        x_nchw = g.relu(
            g.group_norm(
                x_nchw, f, GN_GROUPS, gn.take('scale', shape=(f,)), gn.take('bias', shape=(f,)), LN_EPS
            )
        )
        h, w, ch = conv_output_size(h, k, s, pad, pad), conv_output_size(w, k, s, pad, pad), f
    patch = kw['patch_size'] // 16
    emb = p / 'embedding'
    n_feat = kw['num_features']
    x_nchw = g.conv(
        x_nchw,
        emb.take('kernel', shape=(patch, patch, ch, n_feat)),
        emb.take('bias', shape=(n_feat,)),
        (patch, patch),
        (0, 0, 0, 0),
    )
    return x_nchw, (h // patch, w // patch), n_feat


def _std_conv_same(g: Graph, x: str, p: Scope, k: int, stride: int, cin: int, cout: int, size):
    kernel = weight_standardize(p.take('kernel', shape=(k, k, cin, cout)))
    ph, pw = same_padding(size[0], k, stride), same_padding(size[1], k, stride)
    y = g.conv(x, kernel, None, (stride, stride), (ph[0], pw[0], ph[1], pw[1]))
    return y, (conv_output_size(size[0], k, stride, *ph), conv_output_size(size[1], k, stride, *pw))


def _gn(g: Graph, x: str, p: Scope, ch: int) -> str:
    return g.group_norm(x, ch, GN_GROUPS, p.take('scale', shape=(ch,)), p.take('bias', shape=(ch,)), LN_EPS)


def resnet_v2(g: Graph, x: str, p: Scope, kw: dict, in_ch: int, size: tuple[int, int]):
    """Octo's ViTResnet (bottleneck units, StdConv, GroupNorm) with Flax 'SAME' padding."""
    width = int(64 * kw['width'])
    x, size = _std_conv_same(g, x, p / 'conv_root', 7, 2, in_ch, width, size)
    x = g.relu(_gn(g, x, p / 'gn_root', width))
    ph, pw = same_padding(size[0], 3, 2), same_padding(size[1], 3, 2)
    x = g.op('MaxPool', x, kernel_shape=[3, 3], strides=[2, 2], pads=[ph[0], pw[0], ph[1], pw[1]])
    size = (conv_output_size(size[0], 3, 2, *ph), conv_output_size(size[1], 3, 2, *pw))
    ch = width
    for stage, n_units in enumerate(kw['num_layers']):
        nout = width * 2**stage
        for u in range(n_units):
            stride = 2 if (stage > 0 and u == 0) else 1
            unit = p / f'block{stage + 1}' / f'unit{u + 1}'
            needs_proj = ch != nout * 4 or stride != 1
            residual = x
            if needs_proj:
                residual, _ = _std_conv_same(g, x, unit / 'conv_proj', 1, stride, ch, nout * 4, size)
                residual = _gn(g, residual, unit / 'gn_proj', nout * 4)
            y, _ = _std_conv_same(g, x, unit / 'conv1', 1, 1, ch, nout, size)
            y = g.relu(_gn(g, y, unit / 'gn1', nout))
            y, new_size = _std_conv_same(g, y, unit / 'conv2', 3, stride, nout, nout, size)
            y = g.relu(_gn(g, y, unit / 'gn2', nout))
            y, _ = _std_conv_same(g, y, unit / 'conv3', 1, 1, nout, nout * 4, new_size)
            y = _gn(g, y, unit / 'gn3', nout * 4)
            x = g.relu(g.add(residual, y))
            size, ch = new_size, nout * 4
    return x, size, ch


DIGIT_MEAN = np.array([-0.0005905, -0.00049817, -0.00018213], np.float32)
DIGIT_STD = np.array([0.02178901, 0.01295662, 0.01864144], np.float32)


def tactile_vit(g: Graph, x_nhwc_float: str, p: Scope, kw: dict, batch: int, size: tuple[int, int]):
    """FuSe's tvlViT: patch embedding, class token, pre-LN blocks, mean over patches, fc_norm, head."""
    if kw['normalization_type'] != 'digit_bgs':
        raise ExportError(f'tactile encoder normalisation {kw["normalization_type"]!r} is not supported')
    x = g.op('Div', x_nhwc_float, g.const(255.0))
    x = g.op(
        'Div', g.op('Sub', x, g.const(DIGIT_MEAN.reshape(1, 1, 1, 3))), g.const(DIGIT_STD.reshape(1, 1, 1, 3))
    )
    x = g.transpose(x, (0, 3, 1, 2))
    dim, ps, heads, depth = kw['embed_dim'], kw['patch_size'], kw['num_heads'], kw['depth']
    proj = p / 'patch_embed' / 'proj'
    x = g.conv(
        x,
        proj.take('kernel', shape=(ps, ps, 3, dim)),
        proj.take('bias', shape=(dim,)),
        (ps, ps),
        (0, 0, 0, 0),
    )
    n_patches = (size[0] // ps) * (size[1] // ps)
    x = g.transpose(g.reshape(x, [batch, dim, n_patches]), (0, 2, 1))
    cls = p.take('cls_token', shape=(1, 1, dim))
    pos = p.take('pos_embed', shape=(1, n_patches + 1, dim))
    x = g.concat([g.const(np.broadcast_to(cls, (batch, 1, dim)).copy(), name='cls_token'), x], axis=1)
    x = g.add(x, g.const(pos, name='pos_embed'))
    n = n_patches + 1
    hidden = int(dim * kw['mlp_ratio'])
    head_dim = dim // heads
    for i in range(depth):
        b = p / f'blocks_{i}' if p.has_prefix(f'blocks_{i}') else p / f'block{i}'
        y = layer_norm(g, x, b / 'norm1')
        qkv_k = b.take('attn', 'qkv', 'kernel', shape=(dim, 3 * dim))
        qkv_b = (
            b.take('attn', 'qkv', 'bias', shape=(3 * dim,))
            if kw['qkv_bias']
            else np.zeros(3 * dim, np.float32)
        )
        # qkv columns are laid out (3, heads, head_dim): split into q, k, v and scale q.
        scale = np.float32(1.0 / np.sqrt(head_dim))
        q = g.dense(y, qkv_k[:, :dim] * scale, qkv_b[:dim] * scale)
        k = g.dense(y, qkv_k[:, dim : 2 * dim], qkv_b[dim : 2 * dim])
        v = g.dense(y, qkv_k[:, 2 * dim :], qkv_b[2 * dim :])
        a = g.attention(q, k, v, heads, head_dim, n, n)
        x = g.add(x, dense(g, a, b / 'attn' / 'proj', dim, dim))
        y = layer_norm(g, x, b / 'norm2')
        h = g.gelu_tanh(dense(g, y, b / 'mlp' / 'fc1', dim, hidden))
        x = g.add(x, dense(g, h, b / 'mlp' / 'fc2', hidden, dim))
    x = g.op('ReduceMean', g.slice(x, [1], [n], [1]), axes=[1], keepdims=0)
    x = layer_norm(g, x, p / 'fc_norm')
    out_dim = kw['num_classes']
    return dense(g, x, p / 'head', dim, out_dim), out_dim


# ---- T5 encoder -------------------------------------------------------------------------


def t5_relative_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """Bidirectional relative-position buckets as the Flax T5 encoder computes them (float32)."""
    ctx = np.arange(length)[:, None]
    mem = np.arange(length)[None, :]
    rel = mem - ctx
    nb = num_buckets // 2
    buckets = (rel > 0).astype(np.int64) * nb
    rel = np.abs(rel)
    max_exact = nb // 2
    is_small = rel < max_exact
    with np.errstate(divide='ignore'):
        ratio = (rel.astype(np.float32) / np.float32(max_exact)).astype(np.float32)
        large = np.float32(max_exact) + (
            np.log(ratio)
            / np.float32(np.log(np.float32(max_distance / max_exact)))
            * np.float32(nb - max_exact)
        )
    large = np.minimum(large, nb - 1)
    large = np.where(is_small, 0, large).astype(np.int64)
    return buckets + np.where(is_small, rel, large)


def t5_encoder(g: Graph, ids: str, mask_i64: str, p: Scope, length: int, settings) -> tuple[str, int]:
    """Flax T5 encoder stack: RMS layer norms, unscaled attention with a shared relative position bias.

    `settings` (t5config.T5Settings) carries what the parameters do not: the relative-position
    max distance and the layer-norm epsilon; it is checked against the parameters here.
    """
    from .t5config import check_against_parameters

    max_distance, eps = settings.relative_attention_max_distance, settings.layer_norm_epsilon
    emb = p.take('shared', 'embedding')
    vocab, d_model = emb.shape
    enc = p / 'encoder'
    n_layers = 0
    while enc.has_prefix('block', str(n_layers)):
        n_layers += 1
    if n_layers == 0:
        raise ExportError(f'missing parameter {"/".join(enc.prefix)}/block/0 (T5 encoder layers)')
    attn0 = enc / 'block' / '0' / 'layer' / '0' / 'SelfAttention'
    rel = attn0.take('relative_attention_bias', 'embedding')
    num_buckets, heads = rel.shape
    inner = attn0.shape('q', 'kernel')[1]
    d_kv = inner // heads
    ff0 = enc / 'block' / '0' / 'layer' / '1'
    check_against_parameters(settings, num_buckets, (num_buckets // 2) // 2, d_model,
                             gated=ff0.has_prefix('DenseReluDense', 'wi_0'))
    x = g.op('Gather', g.const(emb, name='t5_shared'), ids, axis=0)
    buckets = t5_relative_buckets(length, num_buckets, max_distance)
    pos_bias = np.transpose(rel[buckets], (2, 0, 1))[None].astype(np.float32)  # [1, heads, L, L]
    key_ok = g.op('Greater', mask_i64, g.const(0, np.int64))
    mask_bias = g.op('Where', key_ok, g.const(0.0), g.const(np.finfo(np.float32).min))
    bias = g.add(g.const(pos_bias, name='t5_position_bias'), g.reshape(mask_bias, [1, 1, 1, length]))
    for i in range(n_layers):
        blk = enc / 'block' / str(i) / 'layer'
        sa = blk / '0' / 'SelfAttention'
        y = g.rms_norm(x, (blk / '0' / 'layer_norm').take('weight', shape=(d_model,)), eps)
        q = g.dense(y, sa.take('q', 'kernel', shape=(d_model, inner)))
        k = g.dense(y, sa.take('k', 'kernel', shape=(d_model, inner)))
        v = g.dense(y, sa.take('v', 'kernel', shape=(d_model, inner)))
        a = g.attention(q, k, v, heads, d_kv, length, length, bias=bias)
        x = g.add(x, g.dense(a, sa.take('o', 'kernel', shape=(inner, d_model))))
        ff = blk / '1'
        y = g.rms_norm(x, (ff / 'layer_norm').take('weight', shape=(d_model,)), eps)
        if ff.has_prefix('DenseReluDense', 'wi'):
            d_ff = ff.shape('DenseReluDense', 'wi', 'kernel')[1]
            h = g.relu(g.dense(y, ff.take('DenseReluDense', 'wi', 'kernel', shape=(d_model, d_ff))))
            x = g.add(x, g.dense(h, ff.take('DenseReluDense', 'wo', 'kernel', shape=(d_ff, d_model))))
        elif ff.has_prefix('DenseReluDense', 'wi_0'):
            # Gated GELU (T5 v1.1); HF's "gelu_new" is the tanh approximation.
            d_ff = ff.shape('DenseReluDense', 'wi_0', 'kernel')[1]
            gate = g.gelu_tanh(g.dense(y, ff.take('DenseReluDense', 'wi_0', 'kernel', shape=(d_model, d_ff))))
            lin = g.dense(y, ff.take('DenseReluDense', 'wi_1', 'kernel', shape=(d_model, d_ff)))
            x = g.add(
                x, g.dense(g.mul(gate, lin), ff.take('DenseReluDense', 'wo', 'kernel', shape=(d_ff, d_model)))
            )
        else:
            raise ExportError(f'missing parameter {"/".join(ff.prefix)}/DenseReluDense/wi (T5 feed-forward)')
    x = g.rms_norm(x, enc.take('final_layer_norm', 'weight', shape=(d_model,)), eps)
    return x, d_model
