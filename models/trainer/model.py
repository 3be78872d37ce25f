"""Compact FuSe-shaped models (the reference model's family) with FuSe's auxiliary heads.

Camera stems, a tactile encoder shared by both DIGITs and a spectrogram encoder turn one
timestep into token groups; a small language encoder embeds the instruction; a block-causal
transformer over [language | step 0: groups, readouts | step 1: ...] gives an action readout
(-> a chunk of `horizon` actions, Octo's tanh-bounded MSE head) and language readouts (->
FuSe's contrastive head, and with a per-combination class token the generative head that
predicts the instruction's token ids from the observations of some modalities only).
The graphs exported for the bundle are thin wrappers around these modules (export.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .losses import MODALITY_COMBINATIONS, combination_modalities

TACTILE_MEAN = (-5.905e-4, -4.9817e-4, -1.8213e-4)
TACTILE_STD = (0.021789, 0.012957, 0.018641)
#: token group -> (model inputs, modality), in sequence order (as the reference bundle).
GROUPS = {
    'digits': (('image_digit_left', 'image_digit_right'), 'tactile'),
    'spectro': (('mel_spectro',), 'audio'),
    'primary': (('image_primary',), 'visual'),
    'wrist': (('image_wrist',), 'visual'),
}
CAMERAS = ('primary', 'wrist')


@dataclass
class ModelConfig:
    inputs: Tuple[str, ...] = ('image_primary', 'image_wrist', 'image_digit_left', 'image_digit_right', 'mel_spectro')
    window: int = 2
    horizon: int = 4
    action_dim: int = 7
    token_dim: int = 64
    layers: int = 2
    heads: int = 4
    mlp_dim: int = 256
    lang_dim: int = 64
    max_length: int = 24
    vocab_size: int = 512
    lang_readouts: int = 4
    latent_dim: int = 128
    max_action: float = 5.0  # Octo's MSE head: tanh(x / max) * max
    # FiLM of every observation token by the instruction (per-channel scale and shift from the
    # mean language embedding, as RT-1 conditions its image tokens): lets the first attention
    # layer pick the tokens the instruction names. Off: the original architecture.
    film: bool = False
    # Camera stem: 'patch' (two patch convolutions: an 8x8 stride-8 one, then 4x4) or 'conv' (three
    # 3x3 stride-2 convolutions, then 4x4 patches: the same tokens from features that can see an
    # object a few pixels wide, at about ten times the stem's compute).
    stem: str = 'patch'
    # Instruction-conditioned location tokens per camera (0: none). The camera stem also emits its
    # fine feature map (1/8 of the image: 32x32 for the primary camera); in the policy graph each
    # of `locate` queries from the instruction scores every map position, and the softmax's
    # expected image coordinates (and the features there) become one more token of that camera.
    # The pixels of a cube ~8 px wide then reach the transformer as where the named one is,
    # which the 4x4-patch tokens leave the attention layers to work out. The newest step's
    # location tokens also feed the action head directly. The encoder stays instruction-free, so
    # its per-frame cache and the bundle contract are unchanged.
    locate: int = 0
    # With location tokens: the mean features under each query's softmax join its coordinates
    # (0: coordinates only, so a query is of use only where it points).
    locate_values: int = 16
    # A training-only head from the primary camera's first located point (the newest step's
    # expected coordinates of its first query) to where the episode will grasp, in the arm's base
    # frame (LeRobotWindows.grasp_points): its loss (the trainer's grasp_weight) is a direct signal
    # for that query to point at the object the instruction names, which the action loss alone
    # did not give. The action path reads that query's point but does not move it (with both
    # losses on both queries, measured, the head had not learned in 1250 steps). The trainer sets
    # it exactly when its grasp_weight > 0. Not exported: the bundle's graphs and contract do not
    # change.
    grasp_head: bool = False

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)
        known = {n for ins, _ in GROUPS.values() for n in ins}
        bad = [n for n in self.inputs if n not in known]
        if bad:
            raise ValueError(f'unknown model input(s) {bad}; known: {sorted(known)}')
        if self.stem not in STEMS:
            raise ValueError(f'unknown camera stem {self.stem!r}; one of {list(STEMS)}')
        if self.token_dim % self.heads:
            raise ValueError(f'token_dim {self.token_dim} must be a multiple of heads {self.heads}')
        if self.locate < 0:
            raise ValueError(f'locate must be 0 (off) or a number of queries per camera, not {self.locate}')
        if self.grasp_head and 'primary' not in self.located:
            raise ValueError('grasp_head reads the primary camera\'s location tokens: it needs locate > 0 and '
                             'the image_primary input')

    def to_dict(self) -> dict:
        d = asdict(self)
        d['inputs'] = list(self.inputs)
        return d

    @property
    def groups(self) -> Tuple[str, ...]:
        return tuple(g for g, (ins, _) in GROUPS.items() if any(n in self.inputs for n in ins))

    @property
    def located(self) -> Tuple[str, ...]:
        """The camera groups with location tokens (each also has a '<group>_map' encoder output)."""
        return tuple(g for g in self.groups if self.locate and g in CAMERAS)

    @property
    def encoder_outputs(self) -> Tuple[str, ...]:
        """What the observation encoder emits per timestep, in graph order."""
        return self.groups + tuple(f'{g}_map' for g in self.located)

    @property
    def modalities(self) -> frozenset:
        return frozenset(GROUPS[g][1] for g in self.groups)


def gelu(x):
    return F.gelu(x, approximate='tanh')


class CameraStem(nn.Module):
    """uint8 RGB (B, H, W, 3) -> tokens (B, N, D); tokens_and_map also gives the feature map under
    them (B, 16, H/8, W/8). The zero goal image and x/127.5-1 as in FuSe."""

    channels = 16

    def __init__(self, d: int, patch1: int, patch2: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(6, self.channels, patch1, stride=patch1)
        self.conv2 = nn.Conv2d(self.channels, d, patch2, stride=patch2)

    def forward(self, image):
        return self.tokens_and_map(image)[0]

    def tokens_and_map(self, image):
        # conv1 over cat([x, 0]) / 127.5 - 1, with patches that tile the image (stride = kernel, no
        # padding), is conv1's image half over the raw pixels scaled by 1/127.5 plus a constant
        # (each weight times -1): the same function without building and rescaling the
        # 6-channel float copy of every image, which took a third of the forward pass.
        w = self.conv1.weight
        x = F.conv2d(image.to(torch.float32).permute(0, 3, 1, 2), w[:, :3] / 127.5,
                     self.conv1.bias - w.sum(dim=(1, 2, 3)), stride=self.conv1.stride)
        fine = gelu(x)
        return self.conv2(fine).flatten(2).transpose(1, 2), fine


class ConvCameraStem(nn.Module):
    """uint8 RGB (B, H, W, 3) -> tokens (B, N, D): three 3x3 stride-2 convolutions over x/127.5-1,
    then 4x4 patches (H/32 x W/32 tokens, as CameraStem's); tokens_and_map also gives the feature
    map under them (B, 32, H/8, W/8)."""

    channels = 32

    def __init__(self, d: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                                    nn.Conv2d(32, 32, 3, stride=2, padding=1)])
        self.patch = nn.Conv2d(32, d, 4, stride=4)

    def forward(self, image):
        return self.tokens_and_map(image)[0]

    def tokens_and_map(self, image):
        x = image.to(torch.float32).permute(0, 3, 1, 2) / 127.5 - 1.0
        for conv in self.convs:
            x = gelu(conv(x))
        return self.patch(x).flatten(2).transpose(1, 2), x


STEMS = {'patch': lambda d: CameraStem(d, 8, 4), 'conv': ConvCameraStem}


class LocateHead(nn.Module):
    """Where in a camera's feature map the instruction points: (..., HW, C) map -> (..., q, D) tokens.

    Each query (from the mean language embedding; a learned one without an instruction) scores
    every position's features; the softmax over positions gives the expected image coordinates
    (x, y in [-1, 1], with sin/cos features at 4 frequencies) and the mean features there, and a
    linear layer makes them a token. Keys do not see coordinates: what is scored is what a
    position shows, and where it is comes out of the softmax.
    """

    FREQUENCIES = (1.0, 2.0, 4.0, 8.0)

    def __init__(self, channels: int, lang_dim: int, d: int, queries: int, key_dim: int = 32, value_dim: int = 16,
                 taught: int = 0):
        super().__init__()
        # The first `taught` queries are taught where to point by another loss (the grasp head's):
        # the action path reads their coordinates but does not move them.
        self.queries, self.key_dim, self.taught = queries, key_dim, taught
        self.key1 = nn.Linear(channels, 64)
        self.key2 = nn.Linear(64, key_dim)
        self.value = nn.Linear(channels, value_dim) if value_dim else None
        self.query = nn.Linear(lang_dim, queries * key_dim)
        self.null_query = nn.Parameter(torch.randn(queries, key_dim) * 0.02)
        self.sharpness = nn.Parameter(torch.tensor(math.log(10.0)))
        self.token = nn.Linear(2 + 4 * len(self.FREQUENCIES) + value_dim, d)

    @staticmethod
    def grid(positions: int, like: torch.Tensor) -> torch.Tensor:
        """(HW, 2) x, y of a square map's cells, row-major, in [-1, 1]."""
        side = math.isqrt(positions)
        if side * side != positions:
            raise ValueError(f'feature map of {positions} positions is not square')
        c = torch.linspace(-1.0, 1.0, side, dtype=like.dtype, device=like.device)
        y, x = torch.meshgrid(c, c, indexing='ij')
        return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)

    def keys(self, fmap: torch.Tensor) -> torch.Tensor:
        """A camera's feature map (..., HW, C) -> what each position offers the queries: its unit key
        and, with values, its value (..., HW, K [+ V]). Instruction-free, so it runs in the
        observation encoder, once per frame, not in the policy graph at every tick."""
        k = F.normalize(self.key2(gelu(self.key1(fmap))), dim=-1)
        return k if self.value is None else torch.cat([k, self.value(fmap)], dim=-1)

    def where(self, keys: torch.Tensor, language: Optional[torch.Tensor]):
        """keys (B, W, HW, K [+ V]) from keys(); language (B, L, lang_dim) or None -> the softmax
        over positions (B, W, queries, HW) and its expected (x, y) (B, W, queries, 2)."""
        b = keys.shape[0]
        k = keys[..., :self.key_dim]
        if language is None:
            q = self.null_query.unsqueeze(0).expand(b, -1, -1)
        else:
            q = self.query(language.mean(dim=1)).view(b, self.queries, self.key_dim)
        # Cosine scores times a learned sharpness that starts high: a near-uniform softmax over a
        # thousand positions puts its mean at the image's centre whatever the keys, and its
        # gradient (each position's weight, ~1e-3) is too small to teach the keys anything.
        logits = torch.einsum('bwnk,bqk->bwqn', k, F.normalize(q, dim=-1)) * self.sharpness.exp()
        p = torch.softmax(logits, dim=-1)
        return p, p @ self.grid(keys.shape[2], keys)

    def forward(self, keys: torch.Tensor, language: Optional[torch.Tensor]) -> torch.Tensor:
        """keys (B, W, HW, K [+ V]) from keys(); language (B, L, lang_dim) or None -> (B, W, queries, D)."""
        p, xy = self.where(keys, language)
        if self.taught and torch.is_grad_enabled():  # the softmax too: the values under it would move it
            t = self.taught
            p = torch.cat([p[..., :t, :].detach(), p[..., t:, :]], dim=-2)
            xy = torch.cat([xy[..., :t, :].detach(), xy[..., t:, :]], dim=-2)
        angles = torch.cat([xy * f * math.pi for f in self.FREQUENCIES], dim=-1)
        parts = [xy, torch.sin(angles), torch.cos(angles)]
        if self.value is not None:
            parts.append(p @ keys[..., self.key_dim:])                         # (B, W, q, V)
        return self.token(torch.cat(parts, dim=-1))


class TactileEncoder(nn.Module):
    """int16 frame-minus-background (B, 224, 224, 3) -> one (B, D) token; FuSe's x/255 standardisation."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.register_buffer('mean', torch.tensor(TACTILE_MEAN).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(TACTILE_STD).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, 16, 16, stride=16)
        self.conv2 = nn.Conv2d(16, d, 2, stride=2)
        self.proj = nn.Linear(d, d)

    def forward(self, frame):
        # conv1 over (x / 255 - mean) / std (per channel; patches tile the frame) is conv1 over x
        # with each channel's weights divided by 255 std and a bias less sum(w mean / std): the
        # same function without three passes over every 224x224 float frame.
        w = self.conv1.weight
        scale = 1.0 / (255.0 * self.std)
        shift = (w * (self.mean / self.std)).sum(dim=(1, 2, 3))
        x = F.conv2d(frame.to(torch.float32).permute(0, 3, 1, 2), w * scale, self.conv1.bias - shift,
                     stride=self.conv1.stride)
        x = self.conv2(gelu(x))
        return self.proj(x.mean(dim=(2, 3)))


class SpectroEncoder(nn.Module):
    """dB mel spectrogram (B, 128, 128) -> (B, 16, D); scaled x/127.5-1 as in FuSe."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 8, stride=8)
        self.conv2 = nn.Conv2d(16, d, 4, stride=4)

    def forward(self, spec):
        x = self.conv2(gelu(self.conv1((spec / 127.5 - 1.0).unsqueeze(1))))
        return x.flatten(2).transpose(1, 2)


class ObservationEncoder(nn.Module):
    """One timestep of every input (B, *shape) -> {group: (B, n, D)}, and with `locate` each
    camera's feature map as {'<group>_map': (B, HW, C)}."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.token_dim
        self.cfg = cfg
        mods = {}
        camera = STEMS[cfg.stem]
        if 'image_primary' in cfg.inputs:
            mods['primary'] = camera(d)  # 256 -> 8x8 = 64 tokens (a 32x32 map)
        if 'image_wrist' in cfg.inputs:
            mods['wrist'] = camera(d)  # 128 -> 4x4 = 16 tokens (a 16x16 map)
        if 'image_digit_left' in cfg.inputs or 'image_digit_right' in cfg.inputs:
            mods['digits'] = TactileEncoder(d)  # shared by both DIGITs, one token each
        if 'mel_spectro' in cfg.inputs:
            mods['spectro'] = SpectroEncoder(d)
        self.stems = nn.ModuleDict(mods)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        out = {}
        for g in self.cfg.groups:
            if g == 'digits':
                names = [n for n in GROUPS['digits'][0] if n in self.cfg.inputs]
                out[g] = torch.stack([self.stems[g](obs[n]) for n in names], dim=1)
            elif g in CAMERAS:
                out[g], fmap = self.stems[g].tokens_and_map(obs[GROUPS[g][0][0]])
                if g in self.cfg.located:
                    out[f'{g}_map'] = fmap.flatten(2).transpose(1, 2)
            else:
                out[g] = self.stems[g](obs[GROUPS[g][0][0]])
        return out


TOKENS_PER_GROUP = {'primary': 64, 'wrist': 16, 'spectro': 16}


def group_tokens(cfg: ModelConfig, group: str) -> int:
    """Tokens of a group in the transformer's sequence (location tokens included)."""
    if group == 'digits':
        return sum(n in cfg.inputs for n in GROUPS['digits'][0])
    return TOKENS_PER_GROUP[group] + (cfg.locate if group in cfg.located else 0)


class LanguageEncoder(nn.Module):
    """input_ids, attention_mask (B, L) -> (B, L, lang_dim)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.lang_dim)
        self.pos = nn.Parameter(torch.randn(cfg.max_length, cfg.lang_dim) * 0.02)
        self.mix = nn.Linear(2 * cfg.lang_dim, cfg.lang_dim)
        self.norm = nn.LayerNorm(cfg.lang_dim, eps=1e-6)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.to(torch.float32).unsqueeze(-1)
        x = (self.embed(input_ids) + self.pos) * m
        pooled = x.sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp(min=1.0)
        x = x + gelu(self.mix(torch.cat([x, pooled.expand_as(x)], dim=-1)))
        return self.norm(x)


class Block(nn.Module):
    def __init__(self, d: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, mlp)
        self.fc2 = nn.Linear(mlp, d)

    def forward(self, x, bias):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h) + bias, dim=-1)
        x = x + self.out((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(gelu(self.fc1(self.ln2(x))))


class AttentionPool(nn.Module):
    """Multi-head attention pooling (Octo's MAP head): n learned queries over (B, T, D) tokens."""

    def __init__(self, d: int, heads: int, queries: int = 1) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Parameter(torch.randn(queries, d) * 0.02)
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, x, key_ok: Optional[torch.Tensor] = None):
        b, t, d = x.shape
        h, n = self.heads, self.query.shape[0]
        q = self.q(self.query).reshape(1, n, h, d // h).permute(0, 2, 1, 3)
        k, v = self.kv(x).reshape(b, t, 2, h, d // h).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        if key_ok is not None:
            logits = logits + torch.where(key_ok, 0.0, -1e9)[:, None, None, :]
        y = (torch.softmax(logits, dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        y = self.out(y)
        return y + self.fc2(gelu(self.fc1(self.ln(y))))


def block_causal_mask(n_obs: int, length: int, window: int, lang_readouts: int) -> torch.Tensor:
    """(T, T) allowed pairs over [language | per step: n_obs observation tokens, the action readout,
    `lang_readouts` language readouts]: language is a prefix all see; observation tokens see
    language and observations of their own and earlier steps; a readout sees the same plus itself;
    nothing else attends to a readout (Octo's block-causal rule)."""
    per = n_obs + 1 + lang_readouts
    T = length + window * per
    allowed = torch.zeros(T, T, dtype=torch.bool)
    allowed[:, :length] = True
    for t in range(window):
        q0 = length + t * per
        for s in range(t + 1):
            k0 = length + s * per
            allowed[q0: q0 + per, k0: k0 + n_obs] = True
        for r in range(1 + lang_readouts):
            allowed[q0 + n_obs + r, q0 + n_obs + r] = True
    return allowed


class FuseModel(nn.Module):
    """The whole trainable model. forward(batch) returns the heads' outputs for the losses."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, W, R = cfg.token_dim, cfg.window, cfg.lang_readouts
        self.encoder = ObservationEncoder(cfg)
        self.language = LanguageEncoder(cfg)
        self.lang_proj = nn.Linear(cfg.lang_dim, d)
        self.lang_pos = nn.Parameter(torch.randn(cfg.max_length, d) * 0.02)
        # one positional table per group, so adding a sensor keeps the other tables' shapes
        self.group_pos = nn.ParameterDict({g: nn.Parameter(torch.randn(group_tokens(cfg, g), d) * 0.02)
                                           for g in cfg.groups})
        self.step_pos = nn.Parameter(torch.randn(W, d) * 0.02)
        self.action_readout = nn.Parameter(torch.randn(d) * 0.02)
        self.lang_readout = nn.Parameter(torch.randn(R, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, cfg.heads, cfg.mlp_dim) for _ in range(cfg.layers)])
        if cfg.film:
            self.film = nn.Linear(cfg.lang_dim, 2 * d)
            nn.init.zeros_(self.film.weight)   # starts as the identity: scale 1, shift 0
            nn.init.zeros_(self.film.bias)
        if cfg.located:
            self.locate = nn.ModuleDict({g: LocateHead(self.encoder.stems[g].channels, cfg.lang_dim, d, cfg.locate,
                                                       value_dim=cfg.locate_values,
                                                       taught=int(cfg.grasp_head and g == 'primary'))
                                         for g in cfg.located})
        if cfg.grasp_head:
            self.grasp = nn.Sequential(nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 2))
        self.ln = nn.LayerNorm(d, eps=1e-6)
        # the location tokens of the newest step also go straight to the action head, as
        # robomimic's spatial-softmax keypoints go to its policy MLP: through the attention
        # layers alone (at first ~1/170 of what the readout attends to) their gradient was too
        # weak for the keys to learn where the named object is.
        self.head1 = nn.Linear(d * (1 + cfg.locate * len(cfg.located)), 256)
        self.head2 = nn.Linear(256, cfg.horizon * cfg.action_dim)
        # contrastive head (FuSe's CLIP head): readouts and instruction, each pooled and projected
        self.clip_obs_pool = AttentionPool(d, cfg.heads)
        self.clip_text_pool = AttentionPool(cfg.lang_dim, 4 if cfg.lang_dim % 4 == 0 else 1)
        self.clip_obs_proj = nn.Linear(d, cfg.latent_dim)
        self.clip_text_proj = nn.Linear(cfg.lang_dim, cfg.latent_dim)
        self.temperature = nn.Parameter(torch.tensor(1.0))
        # generative head: readouts + a class token per combination -> max_length token ids
        self.gen_class = nn.Parameter(torch.randn(len(MODALITY_COMBINATIONS), d) * 0.02)
        self.gen_pool = AttentionPool(d, cfg.heads, queries=cfg.max_length)
        self.gen_vocab = nn.Linear(d, cfg.vocab_size)
        n_obs = sum(group_tokens(cfg, g) for g in cfg.groups)
        self.n_obs = n_obs
        self.register_buffer('allowed', block_causal_mask(n_obs, cfg.max_length, cfg.window, cfg.lang_readouts),
                             persistent=False)
        table = torch.zeros(len(MODALITY_COMBINATIONS), len(cfg.groups), dtype=torch.bool)
        for i, combo in enumerate(MODALITY_COMBINATIONS):
            keep = combination_modalities(combo) if combo else frozenset()
            for j, g in enumerate(cfg.groups):
                table[i, j] = GROUPS[g][1] in keep
        self.register_buffer('modality_groups', table, persistent=False)

    # --- the block-causal transformer ----------------------------------------------------------
    def transformer(self, tokens: Mapping[str, torch.Tensor], pad: torch.Tensor,
                    language: Optional[torch.Tensor], keep: Optional[torch.Tensor] = None):
        """tokens: {group: (B, W, n, D)} (and with `locate`, {'<camera>_map': (B, W, HW, K [+ V])},
        the location keys from encode()); pad
        (B, W) bool; language (B, L, lang_dim) or None (no instruction: the language keys are
        masked, and the location queries are the learned instruction-free ones); keep (n_groups,)
        bool: groups visible.
        Returns (action readout (B, D), with `locate` the newest step's location tokens appended:
        (B, D + located tokens * D), language readouts (B, R, D)) of the newest step."""
        cfg = self.cfg
        L, W, R, d = cfg.max_length, cfg.window, cfg.lang_readouts, cfg.token_dim
        first = tokens[cfg.groups[0]]
        b = first.shape[0]
        scale = shift = None
        if cfg.film and language is not None:
            # The policy graph gets the embedding without its mask: the mean over every position
            # (padding included, a function of the instruction too) is what both sides compute.
            scale, shift = self.film(language.mean(dim=1)).view(b, 1, 1, 2 * d).chunk(2, dim=-1)
        parts, oks, newest = [], [], []
        for j, g in enumerate(cfg.groups):
            x = tokens[g]
            if g in cfg.located:
                located = self.locate[g](tokens[f'{g}_map'], language)
                newest.append(located[:, -1].reshape(b, -1))
                x = torch.cat([x, located], dim=2)
            if scale is not None:
                x = x * (1.0 + scale) + shift
            x = x + self.group_pos[g]
            parts.append(x)
            ok = pad.unsqueeze(-1).expand(b, W, x.shape[2])
            if keep is not None:
                ok = ok & keep[j]
            oks.append(ok)
        readouts = torch.cat([self.action_readout.unsqueeze(0), self.lang_readout], dim=0)
        parts.append(readouts.view(1, 1, 1 + R, d).expand(b, W, 1 + R, d))
        oks.append(torch.ones(b, W, 1 + R, dtype=torch.bool, device=first.device))
        steps = (torch.cat(parts, dim=2) + self.step_pos.view(1, W, 1, d)).reshape(b, -1, d)
        step_ok = torch.cat(oks, dim=2).reshape(b, -1)
        if language is None:
            lang = self.lang_pos.unsqueeze(0).expand(b, L, d)
            lang_ok = torch.zeros(b, L, dtype=torch.bool, device=first.device)
        else:
            lang = self.lang_proj(language) + self.lang_pos
            lang_ok = torch.ones(b, L, dtype=torch.bool, device=first.device)
        x = torch.cat([lang, steps], dim=1)
        key_ok = torch.cat([lang_ok, step_ok], dim=1)
        allowed = self.allowed.unsqueeze(0) & key_ok.unsqueeze(1)
        bias = torch.where(allowed, 0.0, -1e9).unsqueeze(1)
        for blk in self.blocks:
            x = blk(x, bias)
        x = self.ln(x)
        r0 = L + (W - 1) * (self.n_obs + 1 + R) + self.n_obs
        return torch.cat([x[:, r0]] + newest, dim=-1), x[:, r0 + 1: r0 + 1 + R]

    # --- heads ----------------------------------------------------------------------------------
    def action_head(self, readout):
        m = self.cfg.max_action
        out = torch.tanh(self.head2(gelu(self.head1(readout))) / m) * m
        return out.reshape(readout.shape[0], self.cfg.horizon, self.cfg.action_dim)

    def obs_latent(self, lang_readouts):
        return self.clip_obs_proj(self.clip_obs_pool(lang_readouts)[:, 0])

    def text_latent(self, embedding, attention_mask):
        return self.clip_text_proj(self.clip_text_pool(embedding, attention_mask.bool())[:, 0])

    def gen_logits(self, lang_readouts, combo_index):
        """(B, R, D) readouts and a (B,) int64 combination index -> (B, L, vocab) logits."""
        cls = self.gen_class[combo_index].unsqueeze(1)
        return self.gen_vocab(self.gen_pool(torch.cat([lang_readouts, cls], dim=1)))

    def encode_window(self, obs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """{input: (B, W, *shape)} -> {group: (B, W, n, D)} (the encoder runs per timestep)."""
        any_x = obs[self.cfg.inputs[0]]
        b, W = any_x.shape[:2]
        flat = {n: obs[n].reshape(b * W, *obs[n].shape[2:]) for n in self.cfg.inputs}
        return {g: t.reshape(b, W, *t.shape[1:]) for g, t in self.encode(flat).items()}

    def encode(self, obs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """One timestep (B, *shape) -> the observation encoder graph's outputs: the token groups
        and, with `locate`, each camera's map as its location keys ('<group>_map': (B, HW, K [+ V]))."""
        out = self.encoder(obs)
        for g in self.cfg.located:
            out[f'{g}_map'] = self.locate[g].keys(out[f'{g}_map'])
        return out

    def grasp_point(self, tokens: Mapping[str, torch.Tensor], language: Optional[torch.Tensor],
                    undo_shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The grasp head: the newest step's first primary located point -> (B, 2), where the
        episode grasps (normalised base-frame x, y). undo_shift (B, 2): added to the point's (x, y)
        first, to read it in the coordinates of the image before the shift augmentation."""
        _, xy = self.locate['primary'].where(tokens['primary_map'][:, -1:], language)
        xy = xy[:, 0, 0]                                                     # (B, 2): the first query's
        if undo_shift is not None:
            xy = xy + undo_shift
        return self.grasp(xy)

    def forward(self, batch: Mapping[str, torch.Tensor], contrastive: Sequence[str] = (),
                generative: Sequence[str] = (), grasp: bool = False) -> Dict[str, object]:
        """Action chunk for the instruction, and (when asked) the auxiliary heads' outputs.

        batch: inputs (B, W, ...), timestep_pad_mask, input_ids/attention_mask (B, L), and per
        combination c: ids_<c>, mask_<c> (B, L). Returns {'action': (B, H, A), 'obs_latent',
        'text_latent': {c: (B, E)}, 'gen_logits': {c: (B, L, V)}, 'grasp': (B, 2)}.
        """
        tokens = self.encode_window(batch)
        pad = batch['timestep_pad_mask']
        lang = self.language(batch['input_ids'], batch['attention_mask'])
        readout, _ = self.transformer(tokens, pad, lang)
        out: Dict[str, object] = {'action': self.action_head(readout)}
        if grasp:
            out['grasp'] = self.grasp_point(tokens, lang, batch.get('grasp_undo_shift'))
        if contrastive or generative:
            full = torch.ones(len(self.cfg.groups), dtype=torch.bool, device=pad.device)
            _, lang_r = self.transformer(tokens, pad, None, full)  # no instruction, every modality
            passes = {tuple(full.tolist()): lang_r}
        if contrastive:
            out['obs_latent'] = self.obs_latent(lang_r)
            out['text_latent'] = {c: self.text_latent(self.language(batch[f'ids_{c}'], batch[f'mask_{c}']),
                                                      batch[f'mask_{c}']) for c in contrastive}
        if generative:
            gl = {}
            for c in generative:
                i = MODALITY_COMBINATIONS.index(c)
                keep = self.modality_groups[i]
                key = tuple(keep.tolist())
                if key not in passes:
                    passes[key] = self.transformer(tokens, pad, None, keep)[1]
                idx = torch.full((pad.shape[0],), i, dtype=torch.long, device=pad.device)
                gl[c] = self.gen_logits(passes[key], idx)
            out['gen_logits'] = gl
        return out
