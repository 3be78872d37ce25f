"""What an Octo/FuSe checkpoint's config describes, resolved against its example batch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatch

import numpy as np

from .errors import ExportError

# Constructor defaults of the supported Octo/FuSe classes (the config stores only overrides).
_SMALL_STEM = dict(
    use_film=False,
    patch_size=32,
    kernel_sizes=(3, 3, 3, 3),
    strides=(2, 2, 2, 2),
    features=(32, 96, 192, 384),
    padding=(1, 1, 1, 1),
    num_features=512,
    img_norm_type='default',
)
_RESNET = dict(
    use_film=False,
    width=1,
    num_layers=(2, 2, 2, 2),
    img_norm_type='default',
    num_classes=None,
    flatten_result=False,
    normalize_input=True,
)
ENCODER_DEFAULTS = {
    'SmallStem': dict(_SMALL_STEM),
    'SmallStem16': dict(_SMALL_STEM, patch_size=16),
    'SmallStem32': dict(_SMALL_STEM, patch_size=32),
    'ViTResnet': dict(_RESNET, num_layers=()),
    'ResNet26': dict(_RESNET),
    'ResNet26FILM': dict(_RESNET, use_film=True),
    'tvlViT': dict(
        img_size=(224, 224),
        patch_size=16,
        in_chans=3,
        num_classes=768,
        global_pool='avg',
        depth=12,
        class_token=True,
        no_embed_class=False,
        pre_norm=False,
        fc_norm=None,
        embed_dim=384,
        init_values=None,
        mlp_ratio=4.0,
        num_heads=6,
        qk_norm=False,
        qkv_bias=True,
        normalization_type='digit_bgs',
    ),
}
ENCODER_KIND = {
    'SmallStem': 'stem',
    'SmallStem16': 'stem',
    'SmallStem32': 'stem',
    'ViTResnet': 'resnet',
    'ResNet26': 'resnet',
    'ResNet26FILM': 'resnet',
    'tvlViT': 'tactile_vit',
}
IMAGE_TOKENIZERS = ('ImageTokenizer', 'ImageTokenizerConcatTokens')
ACTION_HEADS = {
    'MSEActionHead': dict(use_map=True, max_action=5.0),
    'L1ActionHead': dict(use_map=True, max_action=5.0),
    'ContinuousActionHead': dict(use_map=False, max_action=5.0),
}
GEN_HEADS = {
    'SingleHeadContinuousGenerationHead': dict(
        readout_key='readout_language', vocab_size=32218, use_map=True, n_lang_tokens=16
    )
}
# FuSe's modality combinations for the generative head (octo/utils/fuse_constants.py), by index.
MODALITY_COMBINATIONS = (
    'simple',
    '',
    'visual',
    'tactile',
    'audio',
    'visual,tactile',
    'visual,audio',
    'tactile,audio',
    'visual,tactile,audio',
)
MODALITY_KEYS = {
    'visual': ('image_primary', 'image_wrist'),
    'tactile': (
        'image_digit_right',
        'image_digit_right_background',
        'image_digit_left',
        'image_digit_left_background',
    ),
    'audio': ('mic', 'mel_spectro'),
}
NON_OBSERVATION_KEYS = ('pad_mask_dict', 'timestep_pad_mask', 'timestep', 'task_completed', 'pad_mask')


def _spec_name(spec, where: str) -> tuple[str, dict]:
    if not isinstance(spec, dict) or 'name' not in spec:
        raise ExportError(f'config {where}: not a module spec')
    return spec['name'], dict(spec.get('kwargs') or {})


@dataclass
class ObservationGroup:
    """One observation tokenizer: its inputs, its encoder and the tokens it emits per timestep."""

    name: str
    obs_keys: list[str]
    encoder_kind: str
    encoder_class: str
    encoder_kwargs: dict
    goal_channels: bool
    add_channel_dim: bool
    concat_tokens: bool
    n_tokens: int = 0
    token_dim: int = 0

    @property
    def token_name(self) -> str:
        return f'tokens_{self.name}'

    @property
    def param_prefix(self) -> tuple[str, ...]:
        return ('octo_transformer', f'observation_tokenizers_{self.name}', f'{self.encoder_class}_0')


@dataclass
class ModelSpec:
    groups: list[ObservationGroup]
    observation_shapes: dict[str, tuple[tuple[int, ...], str]]
    window_size: int
    token_dim: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    max_horizon: int
    readouts: dict[str, int]
    repeat_task_tokens: bool
    use_correct_attention: bool
    language: bool
    language_length: int
    action_readout: str
    action_use_map: bool
    action_horizon: int
    action_dim: int
    max_action: float
    gen_head: dict | None
    skipped_heads: list[str] = field(default_factory=list)
    language_encoder: str = ''  # the T5 the checkpoint names (hub name or local path)


def _obs_keys(regexes, available: list[str], exclude_backgrounds: bool) -> list[str]:
    keys = [k for k in sorted(available) if any(re.match(r, k) for r in regexes)]
    if exclude_backgrounds:
        keys = [k for k in keys if not k.endswith('background')]
    return keys


def parse_model(config: dict, example_batch: dict) -> ModelSpec:
    """Resolve the model section of config.json; unsupported parts raise ExportError naming them."""
    model = config['model']
    obs = example_batch['observation']
    available = [k for k in obs if k not in NON_OBSERVATION_KEYS]
    shapes = {}
    for k in list(available):
        arr = np.asarray(obs[k])
        if arr.ndim < 3:
            # Per-timestep scalars (e.g. step counters) are not sensor inputs.
            available.remove(k)
            continue
        shapes[k] = (tuple(int(d) for d in arr.shape[2:]), str(arr.dtype))
    window = (
        int(np.asarray(obs['timestep_pad_mask']).shape[1])
        if 'timestep_pad_mask' in obs
        else int(np.asarray(obs[available[0]]).shape[1])
    )

    groups = []
    for name, tspec in (model.get('observation_tokenizers') or {}).items():
        cls, kw = _spec_name(tspec, f'model.observation_tokenizers.{name}')
        if cls not in IMAGE_TOKENIZERS:
            raise ExportError(
                f'observation tokenizer {name!r}: class {cls} is not supported '
                f'(supported: {", ".join(IMAGE_TOKENIZERS)})'
            )
        if kw.get('use_token_learner'):
            raise ExportError(f'observation tokenizer {name!r}: token learners are not supported')
        if kw.get('task_film_keys') or kw.get('repeat_channel_dim'):
            raise ExportError(
                f'observation tokenizer {name!r}: FiLM inputs / repeat_channel_dim are not supported'
            )
        keys = _obs_keys(
            kw.get('obs_stack_keys', ('image_.*', 'depth_.*')), available, kw.get('exclude_backgrounds', True)
        )
        if not keys:
            raise ExportError(
                f'observation tokenizer {name!r}: no example-batch observation matches '
                f'{kw.get("obs_stack_keys")}'
            )
        enc_cls, enc_kw = _spec_name(kw.get('encoder'), f'model.observation_tokenizers.{name}.encoder')
        if enc_cls not in ENCODER_DEFAULTS:
            raise ExportError(
                f'observation tokenizer {name!r}: encoder {enc_cls} is not supported '
                f'(supported: {", ".join(ENCODER_DEFAULTS)})'
            )
        enc = dict(ENCODER_DEFAULTS[enc_cls])
        enc.update(enc_kw)
        if enc.get('use_film'):
            raise ExportError(f'observation tokenizer {name!r}: FiLM-conditioned encoders are not supported')
        if ENCODER_KIND[enc_cls] != 'tactile_vit' and enc.get('img_norm_type', 'default') != 'default':
            raise ExportError(
                f'observation tokenizer {name!r}: img_norm_type {enc["img_norm_type"]!r} is not supported'
            )
        if ENCODER_KIND[enc_cls] == 'resnet' and (
            enc.get('num_classes') is not None
            or enc.get('flatten_result')
            or not enc.get('normalize_input', True)
        ):
            raise ExportError(
                f'observation tokenizer {name!r}: ResNet options num_classes/flatten_result/'
                'normalize_input are not supported'
            )
        task_keys = kw.get('task_stack_keys') or []
        concat = cls == 'ImageTokenizerConcatTokens'
        if concat and task_keys:
            raise ExportError(f'observation tokenizer {name!r}: goal images with concatenated tokens')
        goal = bool(_obs_keys(task_keys, available, False))
        if goal and keys != _obs_keys(task_keys, available, False):
            raise ExportError(f'observation tokenizer {name!r}: goal keys differ from observation keys')
        groups.append(
            ObservationGroup(
                name=name,
                obs_keys=keys,
                encoder_kind=ENCODER_KIND[enc_cls],
                encoder_class=enc_cls,
                encoder_kwargs=enc,
                goal_channels=goal,
                add_channel_dim=bool(kw.get('add_channel_dim', False)),
                concat_tokens=concat,
            )
        )
    if not groups:
        raise ExportError('config has no observation tokenizers')

    tasks = model.get('task_tokenizers') or {}
    unknown_tasks = sorted(set(tasks) - {'language'})
    if unknown_tasks:
        raise ExportError(f'task tokenizers {unknown_tasks} are not supported (only language)')
    language = 'language' in tasks
    lang_len = 0
    lang_encoder = ''
    if language:
        cls, kw = _spec_name(tasks['language'], 'model.task_tokenizers.language')
        if cls != 'LanguageTokenizer' or 't5' not in str(kw.get('encoder', '')).lower():
            raise ExportError(
                f'language tokenizer {cls} with encoder {kw.get("encoder")!r} is not supported '
                '(a T5 encoder is)'
            )
        lang_encoder = str(kw.get('encoder', ''))
        ids = example_batch.get('task', {}).get('language_instruction', {})
        if isinstance(ids, dict) and 'input_ids' in ids:
            lang_len = int(np.asarray(ids['input_ids']).shape[-1])

    heads = model.get('heads') or {}
    if 'action' not in heads:
        raise ExportError('config has no action head')
    cls, kw = _spec_name(heads['action'], 'model.heads.action')
    if cls not in ACTION_HEADS:
        raise ExportError(
            f'action head {cls} is not supported (supported: {", ".join(ACTION_HEADS)}); '
            'diffusion heads have no deterministic single-pass export'
        )
    head = dict(ACTION_HEADS[cls])
    if 'pred_horizon' in kw:  # older Octo configs (Octo's own load shim does the same)
        kw['action_horizon'] = kw.pop('pred_horizon')
    head.update(kw)
    gen = None
    skipped = []
    for hname, hspec in heads.items():
        if hname == 'action':
            continue
        hcls, hkw = _spec_name(hspec, f'model.heads.{hname}')
        if hname == 'gen' and hcls in GEN_HEADS:
            gen = dict(GEN_HEADS[hcls])
            gen.update(hkw)
            if not gen.get('use_map', True):
                raise ExportError('generative head without MAP pooling is not supported')
        else:
            skipped.append(hname)

    tk = model.get('transformer_kwargs') or {}
    if tk.get('add_position_embedding'):
        raise ExportError('transformer_kwargs.add_position_embedding is not supported')
    readouts = {str(k): int(v) for k, v in (model.get('readouts') or {}).items()}
    readout_key = head.get('readout_key', '')
    if not readout_key.startswith('readout_') or readout_key[len('readout_') :] not in readouts:
        raise ExportError(f'action head reads {readout_key!r}, which is not a configured readout')
    if gen is not None and gen['readout_key'][len('readout_') :] not in readouts:
        raise ExportError(f'generative head reads {gen["readout_key"]!r}, which is not a configured readout')
    return ModelSpec(
        groups=groups,
        observation_shapes=shapes,
        window_size=window,
        token_dim=int(model['token_embedding_size']),
        num_layers=int(tk['num_layers']),
        num_heads=int(tk['num_attention_heads']),
        mlp_dim=int(tk['mlp_dim']),
        max_horizon=int(model['max_horizon']),
        readouts=readouts,
        repeat_task_tokens=bool(model.get('repeat_task_tokens', False)),
        use_correct_attention=bool(model.get('use_correct_attention', False)),
        language=language,
        language_length=lang_len,
        action_readout=readout_key,
        action_use_map=bool(head['use_map']),
        action_horizon=int(head['action_horizon']),
        action_dim=int(head['action_dim']),
        max_action=float(head['max_action']),
        gen_head=gen,
        skipped_heads=skipped,
        language_encoder=lang_encoder,
    )


# ---- the block-causal attention mask ---------------------------------------------------


@dataclass
class TokenGroup:
    name: str
    n_tokens: int
    rules: dict  # pattern -> 'causal' | 'never' (first match wins, as in Octo)
    kind: str  # 'task' | 'obs' | 'task_repeat' | 'readout'


def token_groups(spec: ModelSpec) -> tuple[list[TokenGroup], list[TokenGroup]]:
    """Prefix and per-timestep token groups in the order Octo assembles them."""
    prefix, per_step = [], []
    obs_rules = {'task_*': 'causal', 'obs_*': 'causal'}
    if spec.language:
        prefix.append(TokenGroup('task_language', spec.language_length, {'task_*': 'causal'}, 'task'))
    for grp in spec.groups:
        per_step.append(TokenGroup(f'obs_{grp.name}', grp.n_tokens, obs_rules, 'obs'))
    if spec.repeat_task_tokens:
        for p in prefix:
            per_step.append(TokenGroup(f'obs_{p.name}', p.n_tokens, obs_rules, 'task_repeat'))
    for r, n in spec.readouts.items():
        name = f'readout_{r}'
        per_step.append(
            TokenGroup(name, n, {'task_*': 'causal', 'obs_*': 'causal', name: 'causal'}, 'readout')
        )
    return prefix, per_step


@dataclass
class SequenceLayout:
    """Every token of the full Octo sequence: its group, timestep and the static attention rule mask."""

    prefix: list[TokenGroup]
    per_step: list[TokenGroup]
    window: int
    group_of: np.ndarray  # index into prefix + per_step, per token (as laid out in the sequence)
    timestep: np.ndarray  # -1 for prefix tokens
    rule_mask: np.ndarray  # [T, T] bool: token i may attend to token j (before padding)

    @property
    def groups(self) -> list[TokenGroup]:
        return self.prefix + self.per_step

    def positions(self, group_name: str, timestep: int) -> list[int]:
        gi = [g.name for g in self.groups].index(group_name)
        true_group = self._true_group()
        return [int(i) for i in np.nonzero((true_group == gi) & (self.timestep == timestep))[0]]

    def _true_group(self) -> np.ndarray:
        # Group membership by position (independent of Octo's labelling quirk below).
        out = []
        for g_i, g in enumerate(self.prefix):
            out += [g_i] * g.n_tokens
        for _ in range(self.window):
            for g_i, g in enumerate(self.per_step):
                out += [len(self.prefix) + g_i] * g.n_tokens
        return np.array(out)


def sequence_layout(spec: ModelSpec, window: int) -> SequenceLayout:
    """Reproduce BlockTransformer.generate_attention_mask's rule part for this model."""
    prefix, per_step = token_groups(spec)
    side = 'right' if spec.use_correct_attention else 'left'
    groups = prefix + per_step
    n_prefix = sum(g.n_tokens for g in prefix)
    per_t = sum(g.n_tokens for g in per_step)
    total = n_prefix + per_t * window
    group_of = np.empty(total, np.int64)
    timestep = np.empty(total, np.int64)
    # Octo labels token i with searchsorted(cumsum(sizes), i, side); side='left' (the old default)
    # gives the first token of each group the previous group's label. Reproduced as is.
    pc = np.cumsum([g.n_tokens for g in prefix]) if prefix else np.array([], np.int64)
    tc = np.cumsum([g.n_tokens for g in per_step])
    for i in range(total):
        if i < n_prefix:
            group_of[i] = np.searchsorted(pc, i, side=side)
            timestep[i] = -1
        else:
            t, j = divmod(i - n_prefix, per_t)
            group_of[i] = len(prefix) + np.searchsorted(tc, j, side=side)
            timestep[i] = t
    n_groups = len(groups)
    attends = np.zeros((n_groups, n_groups), bool)
    for a, ga in enumerate(groups):
        for b, gb in enumerate(groups):
            rule = 'never'
            for pattern, r in ga.rules.items():
                if fnmatch(gb.name, pattern):
                    rule = r
                    break
            attends[a, b] = rule == 'causal'
    rule_mask = attends[group_of[:, None], group_of[None, :]] & (timestep[None, :] <= timestep[:, None])
    return SequenceLayout(prefix, per_step, window, group_of, timestep, rule_mask)


def needed_tokens(layout: SequenceLayout, targets: list[int]) -> np.ndarray:
    """Tokens whose values can reach the targets through any number of attention layers.

    Every other token can be dropped without changing the targets: no kept token attends to a
    dropped one (checked here, so a checkpoint whose mask breaks this cannot be exported wrongly).
    """
    need = np.zeros(layout.rule_mask.shape[0], bool)
    need[targets] = True
    while True:
        grown = need | layout.rule_mask[need].any(axis=0)
        if (grown == need).all():
            break
        need = grown
    kept = np.nonzero(need)[0]
    dropped = np.nonzero(~need)[0]
    if dropped.size and layout.rule_mask[np.ix_(kept, dropped)].any():
        raise ExportError('internal: pruned tokens are attended to by kept tokens')
    return kept
