"""The trainer's model (models/trainer/model.py): the input stems compute FuSe's normalisation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip('torch', reason='the trainer needs PyTorch: ./setup.sh --train')

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.trainer.model import CameraStem, TactileEncoder, gelu  # noqa: E402


def test_camera_stem_is_its_convolutions_over_the_zero_goal_image_scaled_to_minus_one_one():
    torch.manual_seed(0)
    stem = CameraStem(32, 8, 4)
    image = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    x = image.to(torch.float32)
    x = torch.cat([x, torch.zeros_like(x)], dim=-1) / 127.5 - 1.0   # the image and FuSe's zero goal image
    want = stem.conv2(gelu(stem.conv1(x.permute(0, 3, 1, 2)))).flatten(2).transpose(1, 2)
    got = stem(image)
    assert got.shape == want.shape == (3, 4, 32)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    got.sum().backward()                     # the goal half of conv1 still learns (through the constant)
    assert stem.conv1.weight.grad[:, 3:].abs().sum() > 0


def test_tactile_encoder_standardises_the_difference_image_as_fuse_does():
    torch.manual_seed(0)
    enc = TactileEncoder(32)
    frame = torch.randint(-255, 256, (3, 224, 224, 3), dtype=torch.int16)
    x = (frame.to(torch.float32).permute(0, 3, 1, 2) / 255.0 - enc.mean) / enc.std
    want = enc.proj(enc.conv2(gelu(enc.conv1(x))).mean(dim=(2, 3)))
    got = enc(frame)
    assert torch.allclose(got, want, atol=1e-4 * float(want.abs().max()), rtol=1e-5)


def test_film_scales_and_shifts_every_observation_token_by_the_instruction():
    from models.trainer.model import FuseModel, ModelConfig

    cfg = ModelConfig(inputs=('image_wrist',), layers=1, mlp_dim=32, vocab_size=32, film=True)
    torch.manual_seed(0)
    model = FuseModel(cfg).eval()
    tokens = {'wrist': torch.randn(2, cfg.window, 16, cfg.token_dim)}
    pad = torch.ones(2, cfg.window, dtype=torch.bool)
    lang_a, lang_b = torch.randn(2, cfg.max_length, cfg.lang_dim), torch.randn(2, cfg.max_length, cfg.lang_dim)
    with torch.no_grad():
        # It starts as the identity: the same readout as without FiLM.
        plain = FuseModel(ModelConfig(**{**cfg.to_dict(), 'film': False})).eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith('film.')})
        torch.testing.assert_close(model.transformer(tokens, pad, lang_a)[0], plain.transformer(tokens, pad, lang_a)[0])
        # Trained, each token becomes x * (1 + scale) + shift from the mean embedding: the hand
        # computation through the FiLM-less model gives the same readout.
        model.film.weight.normal_(0, 0.1)
        model.film.bias.normal_(0, 0.1)
        scale, shift = model.film(lang_a.mean(dim=1)).chunk(2, dim=-1)
        by_hand = {'wrist': tokens['wrist'] * (1 + scale[:, None, None]) + shift[:, None, None]}
        torch.testing.assert_close(model.transformer(tokens, pad, lang_a)[0],
                                   plain.transformer(by_hand, pad, lang_a)[0])
        assert not torch.allclose(model.transformer(tokens, pad, lang_a)[0], model.transformer(tokens, pad, lang_b)[0])
        # Without an instruction (the auxiliary heads' passes) nothing is modulated.
        torch.testing.assert_close(model.transformer(tokens, pad, None)[0], plain.transformer(tokens, pad, None)[0])


def test_the_conv_stem_gives_the_patch_stems_tokens_and_a_bad_stem_is_named():
    from models.trainer.model import ConvCameraStem, ModelConfig

    stem = ConvCameraStem(64)
    for size, tokens in ((256, 64), (128, 16)):
        img = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
        assert stem(img).shape == (2, tokens, 64) == CameraStem(64, 8, 4)(img).shape
    # over x/127.5-1, as FuSe scales images: the same function by hand
    x = img.to(torch.float32).permute(0, 3, 1, 2) / 127.5 - 1.0
    for conv in stem.convs:
        x = gelu(conv(x))
    torch.testing.assert_close(stem(img), stem.patch(x).flatten(2).transpose(1, 2))
    with pytest.raises(ValueError, match="unknown camera stem 'resnet'"):
        ModelConfig(stem='resnet')


def test_location_tokens_say_where_the_instruction_points_in_the_feature_map():
    from models.trainer.model import LocateHead

    torch.manual_seed(0)
    head = LocateHead(channels=4, lang_dim=8, d=16, queries=1)
    # a 4x4 map, all positions alike but one, which shows channel 0 at row 1, column 3
    fmap = torch.zeros(1, 1, 16, 4)
    fmap[0, 0, 1 * 4 + 3, 0] = 1.0
    with torch.no_grad():
        # keys: channel 0 scored strongly, and a query that asks for it
        head.key1.weight.zero_(), head.key1.bias.zero_(), head.key1.weight[0, 0].fill_(10.0)
        head.key2.weight.zero_(), head.key2.bias.zero_(), head.key2.weight[0, 0].fill_(10.0)
        head.query.weight.zero_(), head.query.bias.zero_(), head.query.bias[0].fill_(10.0)
        head.token.weight.zero_(), head.token.bias.zero_()
        head.token.weight[0, 0] = head.token.weight[1, 1] = 1.0   # token[:2] = the expected (x, y)
        xy = head(head.keys(fmap), torch.zeros(1, 3, 8))[0, 0, 0, :2]
        torch.testing.assert_close(xy, torch.tensor([1.0, -1.0 / 3.0]), atol=1e-3, rtol=0)
        # Without an instruction the learned null query (near zero: no preference) averages the map.
        head.null_query.zero_()
        torch.testing.assert_close(head(head.keys(fmap), None)[0, 0, 0, :2], torch.zeros(2), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match='not square'):
        LocateHead.grid(12, fmap)


def test_location_tokens_without_values_are_made_from_the_coordinates_alone():
    from models.trainer.model import LocateHead

    torch.manual_seed(0)
    head = LocateHead(channels=4, lang_dim=8, d=16, queries=2, value_dim=0)
    assert head.value is None and head.token.in_features == 2 + 4 * len(LocateHead.FREQUENCIES)
    a, b = torch.randn(1, 1, 16, 4), torch.randn(1, 1, 16, 4)
    lang = torch.randn(1, 3, 8)
    with torch.no_grad():
        # one map's features scored alike everywhere: the same (uniform) softmax, the same token,
        # whatever the features are
        head.key1.weight.zero_()
        torch.testing.assert_close(head(head.keys(a), lang), head(head.keys(b), lang))
