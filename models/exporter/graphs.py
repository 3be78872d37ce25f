"""The bundle's ONNX graphs for an Octo/FuSe model: encoders, language, policy and generative head."""

from __future__ import annotations

import numpy as np

from . import layers as L
from .errors import ExportError
from .graph import Graph
from .params import ParamStore, Scope
from .spec import (
    MODALITY_COMBINATIONS,
    MODALITY_KEYS,
    ModelSpec,
    ObservationGroup,
    needed_tokens,
    sequence_layout,
)

OT = 'octo_transformer'


# ---- observation encoders ---------------------------------------------------------------


def _encode_group(g: Graph, grp: ObservationGroup, spec: ModelSpec, store: ParamStore, inputs: dict) -> str:
    """Tokens [1, n, d] of one tokenizer for one timestep; sets grp.n_tokens and grp.token_dim."""
    p = Scope(store, *grp.param_prefix)
    kw = grp.encoder_kwargs
    if grp.encoder_kind == 'tactile_vit':
        # One ViT shared by all sensors of the group, one token per sensor, in sorted key order.
        shape, _ = spec.observation_shapes[grp.obs_keys[0]]
        for k in grp.obs_keys:
            if spec.observation_shapes[k][0] != shape:
                raise ExportError(f'tokenizer {grp.name!r}: inputs {grp.obs_keys} differ in shape')
        if tuple(shape[:2]) != tuple(kw['img_size']) or shape[2] != 3:
            raise ExportError(
                f'tokenizer {grp.name!r}: input shape {shape} does not match the ViT '
                f'img_size {tuple(kw["img_size"])} with 3 channels'
            )
        x = g.concat([g.cast(inputs[k], np.float32) for k in grp.obs_keys], axis=0)
        n = len(grp.obs_keys)
        tokens, dim = L.tactile_vit(g, x, p, kw, n, tuple(shape[:2]))
        grp.n_tokens, grp.token_dim = n, dim
        return g.reshape(tokens, [1, n, dim])
    if grp.concat_tokens:
        raise ExportError(f'tokenizer {grp.name!r}: concatenated tokens need the tactile ViT encoder')
    parts = []
    for k in grp.obs_keys:
        x = g.cast(inputs[k], np.float32)
        if grp.add_channel_dim:
            x = g.op('Unsqueeze', x, g.const([-1], np.int64))
        parts.append(x)
    x = g.concat(parts, axis=-1)
    shape = spec.observation_shapes[grp.obs_keys[0]][0]
    h, w = shape[0], shape[1]
    channels = sum((1 if grp.add_channel_dim else spec.observation_shapes[k][0][-1]) for k in grp.obs_keys)
    if grp.goal_channels:
        # Language-conditioned Octo feeds an all-zero goal image stacked on the channels.
        x = g.concat([x, g.const(np.zeros((1, h, w, channels), np.float32), name='zero_goal')], axis=-1)
        channels *= 2
    x = g.transpose(g.affine(x, 1.0 / 127.5, -1.0), (0, 3, 1, 2))
    if grp.encoder_kind == 'stem':
        x, (oh, ow), dim = L.small_stem(g, x, p, kw, channels, (h, w))
    else:
        x, (oh, ow), dim = L.resnet_v2(g, x, p, kw, channels, (h, w))
    grp.n_tokens, grp.token_dim = oh * ow, dim
    return g.reshape(g.transpose(x, (0, 2, 3, 1)), [1, oh * ow, dim])


def observation_encoder(spec: ModelSpec, store: ParamStore) -> Graph:
    g = Graph('fuse_observation_encoder')
    inputs = {}
    for grp in spec.groups:
        for k in grp.obs_keys:
            if k not in inputs:
                shape, dtype = spec.observation_shapes[k]
                inputs[k] = g.input(k, np.dtype(dtype), [1, *shape])
    for grp in spec.groups:
        tokens = _encode_group(g, grp, spec, store, inputs)
        g.output(grp.token_name, tokens, np.float32, [1, grp.n_tokens, grp.token_dim])
    return g


# ---- language ---------------------------------------------------------------------------


def language_encoder(spec: ModelSpec, store: ParamStore, t5) -> tuple[Graph, int]:
    g = Graph('fuse_language_encoder')
    n = spec.language_length
    ids = g.input('input_ids', np.int64, [1, n])
    mask = g.input('attention_mask', np.int64, [1, n])
    out, d_model = L.t5_encoder(g, ids, mask, Scope(store, OT, 'task_tokenizers_language', 'hf_model'), n, t5)
    g.output('language_embedding', out, np.float32, [1, n, d_model])
    return g, d_model


# ---- transformer ------------------------------------------------------------------------


def _transformer(
    g: Graph,
    spec: ModelSpec,
    store: ParamStore,
    token_inputs: dict,
    pad_mask: str,
    language: str | None,
    lang_dim: int,
    targets_of,
    group_mask: str | None = None,
):
    """Project, position-embed and run the block-causal transformer on the tokens the targets need.

    targets_of(layout) -> positions in the full sequence whose final embeddings are returned, in order.
    group_mask: optional bool [n_groups] that switches whole observation groups off (generative head).
    Returns the final-norm embeddings [1, len(targets), d].
    """
    W, d = spec.window_size, spec.token_dim
    ot = Scope(store, OT)
    layout = sequence_layout(spec, W)
    targets = targets_of(layout)
    kept = needed_tokens(layout, targets)

    def pos_embedding(name: str, n_tokens: int) -> np.ndarray:
        pe = ot.take(name, shape=(1, spec.max_horizon, n_tokens, d))
        if W > spec.max_horizon:
            raise ExportError(f'window {W} exceeds the model max_horizon {spec.max_horizon}')
        return pe[:, :W]

    prefix_tokens = None
    if spec.language:
        lang = g.dense(
            language,
            ot.take('task_language_projection', 'kernel', shape=(lang_dim, d)),
            ot.take('task_language_projection', 'bias', shape=(d,)),
        )
        lang_pe = ot.take('task_language_pos_embedding', shape=(1, spec.language_length, d))
        prefix_tokens = g.add(lang, g.const(lang_pe, name='task_language_pos'))
    parts = []
    for grp_t in layout.per_step:
        if grp_t.kind == 'obs':
            name = grp_t.name[len('obs_') :]
            grp = next(x for x in spec.groups if x.name == name)
            x = g.dense(
                token_inputs[grp.token_name],
                ot.take(f'obs_{name}_projection', 'kernel', shape=(grp.token_dim, d)),
                ot.take(f'obs_{name}_projection', 'bias', shape=(d,)),
            )
            parts.append(
                g.add(x, g.const(pos_embedding(f'obs_{name}_pos_embedding', grp.n_tokens), name='pos'))
            )
        elif grp_t.kind == 'task_repeat':
            rep = g.op('Unsqueeze', prefix_tokens, g.const([1], np.int64))
            parts.append(g.op('Tile', rep, g.const([1, W, 1, 1], np.int64)))
        else:
            pe = pos_embedding(f'{grp_t.name}_pos_embedding', grp_t.n_tokens)
            parts.append(g.const(pe, name=grp_t.name))
    per_t = sum(x.n_tokens for x in layout.per_step)
    seq = g.reshape(g.concat(parts, axis=2), [1, W * per_t, d])
    if prefix_tokens is not None:
        seq = g.concat([prefix_tokens, seq], axis=1)
    seq = g.gather(seq, kept, axis=1)

    # Key padding: prefix and repeated language follow the instruction's single flag (always set for
    # a text instruction); observation tokens follow their timestep's pad flag (and the group switch).
    n_groups = len(spec.groups)
    flags = [g.const([True], np.bool_), g.reshape(pad_mask, [W])]
    if group_mask is not None:
        per_group = g.op('And', g.reshape(pad_mask, [W, 1]), g.reshape(group_mask, [1, n_groups]))
        flags.append(g.reshape(per_group, [W * n_groups]))
    flag_vec = g.concat(flags, axis=0)
    true_group = layout._true_group()
    index = np.zeros(len(true_group), np.int64)
    for i, gi in enumerate(true_group):
        grp_t = layout.groups[gi]
        if grp_t.kind == 'obs':
            t = layout.timestep[i]
            if group_mask is None:
                index[i] = 1 + t
            else:
                index[i] = 1 + W + t * n_groups + [f'obs_{x.name}' for x in spec.groups].index(grp_t.name)
    key_ok = g.op('Gather', flag_vec, g.const(index[kept], np.int64), axis=0)
    static = layout.rule_mask[np.ix_(kept, kept)]
    mask = g.op(
        'And',
        g.const(static[None, None], np.bool_, name='block_causal_mask'),
        g.reshape(key_ok, [1, 1, 1, len(kept)]),
    )

    where = {int(pos): i for i, pos in enumerate(kept)}
    query_rows = [where[t] for t in targets]
    x = seq
    tr = Scope(store, OT, 'BlockTransformer_0', 'Transformer_0')
    for layer in range(spec.num_layers):
        last = layer == spec.num_layers - 1
        blk = tr / f'encoderblock_{layer}'
        if last:
            x = _last_block(g, x, blk, spec, len(kept), mask, query_rows)
        else:
            x = L.self_attention_block(g, x, blk, d, spec.num_heads, spec.mlp_dim, len(kept), mask)
    if spec.num_layers == 0:
        x = g.gather(x, query_rows, axis=1)
    x = L.layer_norm(g, x, tr / 'encoder_norm')
    return x, layout, kept


def _last_block(g, x, blk, spec, n_kept, mask, rows):
    """The final layer only for the rows that are read out (the others feed nothing)."""
    d = spec.token_dim
    if len(rows) == 1:
        return L.self_attention_block(
            g, x, blk, d, spec.num_heads, spec.mlp_dim, n_kept, mask, query_index=rows[0]
        )
    w, head_dim = L.mha_projections(blk / 'MultiHeadDotProductAttention_0', d, spec.num_heads)
    y = L.layer_norm(g, x, blk / 'LayerNorm_0')
    x_q = g.gather(x, rows, axis=1)
    y_q = g.gather(y, rows, axis=1)
    q_mask = g.gather(mask, rows, axis=2)
    a = g.attention(
        g.dense(y_q, *w['query']),
        g.dense(y, *w['key']),
        g.dense(y, *w['value']),
        spec.num_heads,
        head_dim,
        len(rows),
        n_kept,
        mask=q_mask,
    )
    x2 = g.add(x_q, g.dense(a, *w['out']))
    z = L.layer_norm(g, x2, blk / 'LayerNorm_1')
    return g.add(x2, L.mlp_block(g, z, blk / 'MlpBlock_0', d, spec.mlp_dim))


def _token_inputs(g: Graph, spec: ModelSpec) -> dict:
    W = spec.window_size
    return {
        grp.token_name: g.input(grp.token_name, np.float32, [1, W, grp.n_tokens, grp.token_dim])
        for grp in spec.groups
    }


def policy(spec: ModelSpec, store: ParamStore, lang_dim: int) -> tuple[Graph, dict]:
    """Transformer + action head for one tick; only what the last action readout depends on."""
    g = Graph('fuse_policy')
    W, d = spec.window_size, spec.token_dim
    tokens = _token_inputs(g, spec)
    pad = g.input('timestep_pad_mask', np.bool_, [1, W])
    language = (
        g.input('language_embedding', np.float32, [1, spec.language_length, lang_dim])
        if spec.language
        else None
    )
    readout = spec.action_readout
    x, layout, kept = _transformer(
        g, spec, store, tokens, pad, language, lang_dim, lambda lay: lay.positions(readout, W - 1)
    )
    n_r = spec.readouts[readout[len('readout_') :]]
    head = Scope(store, 'heads_action')
    if spec.action_use_map:
        emb, _ = L.map_head(g, x, head / 'map_head', d, n_r, 1)
    else:
        emb = g.op('ReduceMean', x, axes=[1], keepdims=1)
    out_dim = spec.action_horizon * spec.action_dim
    mean = g.dense(
        g.reshape(emb, [1, d]),
        head.take('mean_proj', 'kernel', shape=(d, out_dim)),
        head.take('mean_proj', 'bias', shape=(out_dim,)),
    )
    m = spec.max_action
    action = g.mul(g.op('Tanh', g.mul(mean, g.const(1.0 / m))), g.const(m))
    g.output(
        'action',
        g.reshape(action, [1, spec.action_horizon, spec.action_dim]),
        np.float32,
        [1, spec.action_horizon, spec.action_dim],
    )
    g.output('action_readout_embedding', x, np.float32, [1, n_r, d])
    info = {'sequence_tokens': int(layout.rule_mask.shape[0]), 'kept_tokens': int(len(kept))}
    return g, info


def modality_table(spec: ModelSpec) -> np.ndarray:
    """[9, n_groups] bool: which observation groups each FuSe modality combination keeps."""
    table = np.zeros((len(MODALITY_COMBINATIONS), len(spec.groups)), bool)
    all_keys = {k for keys in MODALITY_KEYS.values() for k in keys}
    for i, combo in enumerate(MODALITY_COMBINATIONS):
        keys = all_keys if combo == 'simple' else {k for m in combo.split(',') if m for k in MODALITY_KEYS[m]}
        for j, grp in enumerate(spec.groups):
            table[i, j] = any(k in keys for k in grp.obs_keys)
    return table


def generative_head(
    spec: ModelSpec, store: ParamStore, lang_dim: int, empty_instruction_embedding: np.ndarray | None
) -> Graph:
    """FuSe's generative head: instruction tokens predicted from the observation groups one modality keeps."""
    gen = spec.gen_head
    g = Graph('fuse_generative_head')
    W, d = spec.window_size, spec.token_dim
    tokens = _token_inputs(g, spec)
    pad = g.input('timestep_pad_mask', np.bool_, [1, W])
    index = g.input('modality_index', np.int64, [1])
    table = g.const(modality_table(spec), np.bool_, name='modality_groups')
    group_mask = g.reshape(g.op('Gather', table, index, axis=0), [len(spec.groups)])
    language = None
    if spec.language:
        language = g.const(
            empty_instruction_embedding.reshape(1, spec.language_length, lang_dim),
            name='empty_instruction_embedding',
        )
    readout = gen['readout_key']
    n_r = spec.readouts[readout[len('readout_') :]]
    x, _, _ = _transformer(
        g,
        spec,
        store,
        tokens,
        pad,
        language,
        lang_dim,
        lambda lay: lay.positions(readout, W - 1),
        group_mask=group_mask,
    )
    head = Scope(store, 'heads_gen')
    classes = head.take('modality_class_tokens', 'embedding', shape=(len(MODALITY_COMBINATIONS), d))
    cls = g.reshape(g.op('Gather', g.const(classes, name='modality_class_tokens'), index, axis=0), [1, 1, d])
    feats = g.concat([x, cls], axis=1)
    emb, n_out = L.map_head(g, feats, head / 'decode_map_head', d, n_r + 1, 1)
    if n_out != int(gen['n_lang_tokens']):
        raise ExportError(f'generative head probe has {n_out} readouts, config says {gen["n_lang_tokens"]}')
    vocab = int(gen['vocab_size'])
    logits = g.dense(
        emb,
        head.take('latent_to_vocab', 'kernel', shape=(d, vocab)),
        head.take('latent_to_vocab', 'bias', shape=(vocab,)),
    )
    g.output('logits', logits, np.float32, [1, n_out, vocab])
    g.output('token_ids', g.op('ArgMax', logits, axis=-1, keepdims=0), np.int64, [1, n_out])
    return g


__all__ = ['observation_encoder', 'language_encoder', 'policy', 'generative_head', 'modality_table']
