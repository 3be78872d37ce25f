"""The trainer runs on a tiny dataset, exports a bundle with ONNX parity < 1e-4, and resumes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch', reason='the trainer needs PyTorch: ./setup.sh --train')
pytest.importorskip('pyarrow', reason="the trainer's dataset reader needs pyarrow: ./setup.sh --train")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.trainer.dataset import write_tiny_dataset  # noqa: E402
from models.trainer.errors import DatasetError, ParityError, TrainerError  # noqa: E402
from models.trainer.export import export_bundle  # noqa: E402
from models.trainer.model import FuseModel  # noqa: E402
from models.trainer.run import export_run, parity_windows  # noqa: E402
from models.trainer.train import TrainConfig, Trainer  # noqa: E402

SMALL = {'layers': 1, 'mlp_dim': 64, 'vocab_size': 64, 'latent_dim': 32, 'lang_readouts': 2}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp('ds') / 'tiny', episodes=3, length=4)


def _cfg(dataset, out, **kw):
    base = dict(dataset=str(dataset), out=str(out), steps=2, batch=2, log_every=1, checkpoint_every=1, workers=1,
                threads=1, model=dict(SMALL))
    base.update(kw)
    return TrainConfig(**base)


def test_every_modality_trains_with_both_auxiliary_losses_and_exports_with_parity(tiny, tmp_path):
    logs = []
    tr = Trainer(_cfg(tiny, tmp_path / 'run'), log=lambda *a, **k: logs.append(' '.join(map(str, a))))
    assert len(tr.contrastive) == 8 and len(tr.generative) == 7
    last = tr.run()
    assert tr.step == 2 and {'action', 'contrastive', 'generative'} <= set(last)
    assert all(np.isfinite(last[k]) for k in ('action', 'contrastive', 'generative'))
    assert (tmp_path / 'run' / 'metrics.csv').read_text().count('\n') == 3  # header + 2 steps
    assert (tmp_path / 'run' / 'checkpoints' / 'last.pt').is_file()
    figures = export_run(tr, tmp_path / 'bundle', log=logs.append)
    assert figures['action'] < 1e-4 and figures['generative'] < 1e-4
    from fuse_core.bundle import PolicyRunner, load_bundle

    bundle = load_bundle(tmp_path / 'bundle', providers='cpu')
    assert bundle.manifest.input_names == tr.model_cfg.inputs
    assert frozenset({'tactile'}) in bundle.modality_index and frozenset({'simple'}) not in bundle.modality_index
    runner = PolicyRunner(bundle)
    runner.set_instruction('pick up the soft cube')
    obs, pad, _ = parity_windows(tr, n=1)[0]
    from fuse_core.bundle import Observation

    res = runner.infer(Observation(obs, pad))
    assert res.actions.shape == (4, 7) and np.isfinite(res.actions).all()
    text = runner.describe(Observation(obs, pad), ['tactile'])
    assert isinstance(text, str)
    # the gripper is left un-normalised: the manifest says so and the statistics agree
    assert bundle.manifest.action.normalization.mask == (True,) * 6 + (False,)


def test_parity_beyond_the_bound_writes_no_bundle(tiny, tmp_path):
    tr = Trainer(_cfg(tiny, tmp_path / 'run', steps=1, inputs=('image_wrist',), contrastive_weight=0.0,
                      generative_weight=0.0))
    tr.run()
    model = FuseModel(tr.model_cfg)
    model.load_state_dict(tr.final_state())
    with pytest.raises(ParityError, match='no bundle written'):
        export_bundle(model, tr.tokenizer_json, tr.stats, tmp_path / 'b', parity_windows(tr, n=1),
                      generative=False, parity_bound=1e-12, log=lambda *a: None)
    assert not (tmp_path / 'b').exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.b.')]


def test_an_interrupted_run_resumes_to_the_same_weights(tiny, tmp_path):
    kw = dict(inputs=('image_wrist',), contrastive_weight=0.0, generative_weight=0.0, steps=4)
    straight = Trainer(_cfg(tiny, tmp_path / 'a', **kw), log=lambda *a, **k: None)
    straight.run()
    first = Trainer(_cfg(tiny, tmp_path / 'b', **kw), log=lambda *a, **k: None)
    first.run(until=2)  # stopped there, as an interrupted run
    resumed = Trainer(_cfg(tiny, tmp_path / 'b', **kw), log=lambda *a, **k: None)
    assert resumed.resume() and resumed.step == 2
    resumed.run()
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert [r['step'] for r in resumed.history] == [1, 2, 3, 4]


def test_finetuning_anchors_the_pretrained_weights_and_adds_new_sensors(tiny, tmp_path):
    kw = dict(contrastive_weight=0.0, generative_weight=0.0, steps=1)
    pre = Trainer(_cfg(tiny, tmp_path / 'pre', inputs=('image_wrist',), **kw), log=lambda *a, **k: None)
    pre.run()
    ckpt = tmp_path / 'pre' / 'checkpoints' / 'last.pt'
    ft = Trainer(_cfg(tiny, tmp_path / 'ft', inputs=('image_wrist', 'image_digit_left'), pretrained=str(ckpt),
                      spd=1.0, l2sp=0.1, tpgm=0.5, wise_alpha=0.5, **kw), log=lambda *a, **k: None)
    assert 'encoder.stems.wrist.conv1.weight' in ft.theta0
    assert not any(k.startswith('encoder.stems.digits') for k in ft.theta0)
    row = ft.run()
    assert row['l2sp'] >= 0.0
    mixed = ft.final_state()
    w_pre = pre.model.state_dict()['head2.weight']
    w_ft = ft.model.state_dict()['head2.weight']
    assert torch.allclose(mixed['head2.weight'], 0.5 * w_pre + 0.5 * w_ft)
    new = 'encoder.stems.digits.proj.weight'
    assert torch.equal(mixed[new], ft.model.state_dict()[new])


def test_heads_the_pretrained_run_never_trained_are_neither_anchored_nor_mixed(tiny, tmp_path):
    """A vision-language generalist trained without the auxiliary losses leaves their heads at
    random values: FuSe finetuning must not pull (L2-SP, SPD) or mix (WiSE-FT) toward those."""
    logs = []
    pre = Trainer(_cfg(tiny, tmp_path / 'pre', inputs=('image_wrist',), contrastive_weight=0.0,
                       generative_weight=0.0, steps=1), log=lambda *a, **k: None)
    pre.run()
    ckpt = str(tmp_path / 'pre' / 'checkpoints' / 'last.pt')
    ft = Trainer(_cfg(tiny, tmp_path / 'ft', inputs=('image_wrist', 'image_digit_left'), pretrained=ckpt,
                      l2sp=0.1, spd=1.0, wise_alpha=0.5, steps=1),
                 log=lambda *a, **k: logs.append(' '.join(map(str, a))))
    heads = ('gen_', 'clip_', 'temperature', 'lang_readout')
    assert not [k for k in ft.theta0 if k.startswith(heads)]
    assert 'head2.weight' in ft.theta0
    assert any('never trained' in line and 'gen_vocab' in line for line in logs)
    ft.run()
    mixed, own = ft.final_state(), ft.model.state_dict()
    assert torch.equal(mixed['gen_vocab.weight'], own['gen_vocab.weight'])          # not mixed with noise
    assert not torch.equal(mixed['head2.weight'], own['head2.weight'])              # the action head is
    # a pretrained run that trained the generative loss (contrastive off): its generative head
    # and the shared readouts are anchored, its contrastive head is not
    pre2 = Trainer(_cfg(tiny, tmp_path / 'pre2', inputs=('image_wrist',), contrastive_weight=0.0, steps=1),
                   log=lambda *a, **k: None)
    pre2.run()
    ft2 = Trainer(_cfg(tiny, tmp_path / 'ft2', inputs=('image_wrist',), steps=1, l2sp=0.1,
                       pretrained=str(tmp_path / 'pre2' / 'checkpoints' / 'last.pt')), log=lambda *a, **k: None)
    assert 'gen_vocab.weight' in ft2.theta0 and 'lang_readout' in ft2.theta0
    assert not [k for k in ft2.theta0 if k.startswith(('clip_', 'temperature'))]


def test_bad_configuration_is_refused_at_start(tiny, tmp_path):
    with pytest.raises(TrainerError, match='need a pretrained checkpoint'):
        _cfg(tiny, tmp_path / 'r', spd=1.0)
    root = write_tiny_dataset(tmp_path / 'noinstr', episodes=2, length=3, inputs=['image_wrist'], instructions=False)
    with pytest.raises(DatasetError, match='generative loss needs modality-specific instructions'):
        Trainer(_cfg(root, tmp_path / 'r', contrastive_weight=0.0))
    # without the auxiliary losses the same dataset trains
    Trainer(_cfg(root, tmp_path / 'r2', contrastive_weight=0.0, generative_weight=0.0), log=lambda *a, **k: None)


def test_held_out_episodes_and_wise_ft_alpha_chosen_on_them(tiny, tmp_path):
    kw = dict(contrastive_weight=0.0, generative_weight=0.0, steps=1, inputs=('image_wrist',))
    pre = Trainer(_cfg(tiny, tmp_path / 'pre', **kw), log=lambda *a, **k: None)
    pre.run()
    ckpt = str(tmp_path / 'pre' / 'checkpoints' / 'last.pt')
    with pytest.raises(TrainerError, match='set val_fraction'):
        _cfg(tiny, tmp_path / 'x', pretrained=ckpt, wise_alpha=-1.0, **kw)
    ft = Trainer(_cfg(tiny, tmp_path / 'ft', pretrained=ckpt, wise_alpha=-1.0, val_fraction=0.34, **dict(kw, steps=2)),
                 log=lambda *a, **k: None)
    assert len(ft.val_episodes) == 1
    held = set(ft.val_frames.tolist())
    assert held and not held & set(ft.batcher.pool.tolist())
    assert not held & {int(i) for s in range(50) for i in ft.batcher.indices(s)}
    row = ft.run()
    assert 'val_action' in row and np.isfinite(row['val_action'])
    ft.final_state()
    losses = {k: v for k, v in ft.wise_choice.items() if k != 'chosen'}
    assert set(losses) == {'0', '0.25', '0.5', '0.75', '1'}
    assert losses[f'{ft.wise_choice["chosen"]:g}'] == min(losses.values())
    # alpha 0 is the pretrained model itself (wrist-only, same inputs): the same held-out loss
    probe = FuseModel(ft.model_cfg)
    probe.load_state_dict(pre.model.state_dict())
    assert losses['0'] == pytest.approx(ft.validate(probe), rel=1e-6)


def test_command_line_refuses_a_bad_dataset_naming_it(tmp_path, capsys):
    from models.trainer.__main__ import main

    root = write_tiny_dataset(tmp_path / 'd', episodes=2, length=3, inputs=['image_wrist'], instructions=False)
    assert main(['--dataset', str(root), '--out', str(tmp_path / 'r'), '--steps', '1']) == 2
    assert 'contrastive loss needs modality-specific instructions' in capsys.readouterr().err
    assert main(['--dataset', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'r')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_torchrun_trains_with_two_processes(tiny, tmp_path):
    """DistributedDataParallel over gloo on the CPU, as torchrun starts it; rank 0 checkpoints."""
    import os
    import subprocess

    torchrun = Path(sys.executable).parent / 'torchrun'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    res = subprocess.run(
        [str(torchrun), '--standalone', '--nproc-per-node', '2',   # standalone: a free port, no collision
         '-m', 'models.trainer', '--dataset', str(tiny), '--out', str(tmp_path / 'run'), '--steps', '2',
         '--batch', '2', '--threads', '1', '--inputs', 'image_wrist', '--contrastive-weight', '0',
         '--generative-weight', '0', '--model', '{"layers": 1, "vocab_size": 64}'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    # each rank's error lines (torchrun's own summary comes last and would hide them)
    assert res.returncode == 0, res.stdout[-2000:] + '\n'.join(
        line for line in res.stderr.splitlines() if 'Error' in line or 'error:' in line)[-3000:]
    assert 'world size 2' in res.stdout
    blob = torch.load(tmp_path / 'run' / 'checkpoints' / 'last.pt', weights_only=False)
    assert blob['step'] == 2


def test_shift_moves_every_step_of_a_window_alike_with_edges_repeated():
    from models.trainer.train import shifted
    w = np.arange(2 * 4 * 5 * 1, dtype=np.uint8).reshape(2, 4, 5, 1)

    class Fixed:
        def integers(self, lo, hi, n):
            return np.array([1, -2])  # dy +1 (content moves up), dx -2 (moves right)
    out, moved = shifted(w, Fixed(), 2)
    assert out.shape == w.shape and moved == (1, -2)
    np.testing.assert_array_equal(out[:, :3, 2:], w[:, 1:, :3])
    np.testing.assert_array_equal(out[:, 3, 2:], w[:, 3, :3])  # the last row repeated
    for c in (0, 1):
        np.testing.assert_array_equal(out[:, :3, c], w[:, 1:, 0])  # the first column repeated


def test_shift_augmentation_changes_camera_images_of_training_batches_only(tiny, tmp_path):
    t = Trainer(_cfg(tiny, tmp_path / 'aug', augment_shift=3, batch=4))
    idx = t.batcher.indices(0)
    plain = t.batcher.make(idx, torch.device('cpu'))
    aug = t.batcher.make(idx, torch.device('cpu'), step=0)
    again = t.batcher.make(idx, torch.device('cpu'), step=0)  # a resumed run sees the same batch
    cams = [k for k in plain if k in ('image_primary', 'image_wrist')]
    assert cams
    for k in cams:
        assert not torch.equal(plain[k], aug[k]), k
        assert torch.equal(aug[k], again[k]), k
    for k in plain:
        if k not in cams:
            assert torch.equal(plain[k], aug[k]), k
    with pytest.raises(TrainerError, match='augment_shift must be >= 0'):
        _cfg(tiny, tmp_path / 'bad', augment_shift=-1)
    t.close()


def test_a_film_model_with_the_conv_stem_exports_with_parity(tiny, tmp_path):
    tr = Trainer(_cfg(tiny, tmp_path / 'run', inputs=('image_primary', 'image_wrist'), contrastive_weight=0.0,
                      generative_weight=0.0, model=dict(SMALL, film=True, stem='conv')))
    tr.run()
    assert tr.model_cfg.film and any(k.startswith('film.') for k in tr.model.state_dict())
    assert any(k.startswith('encoder.stems.primary.convs.') for k in tr.model.state_dict())
    figures = export_run(tr, tmp_path / 'bundle', log=lambda *a: None)
    assert figures['action'] < 1e-4


def test_location_tokens_export_with_parity_and_the_bundle_carries_the_feature_maps(tiny, tmp_path):
    tr = Trainer(_cfg(tiny, tmp_path / 'run', inputs=('image_primary', 'image_wrist', 'image_digit_left'),
                      model=dict(SMALL, locate=2)))
    tr.run()
    figures = export_run(tr, tmp_path / 'bundle', log=lambda *a: None)
    assert figures['action'] < 1e-4 and figures['generative'] < 1e-4
    from fuse_core.bundle import load_bundle

    outs = load_bundle(tmp_path / 'bundle', providers='cpu').encoder_outputs
    # per position its location key (32) and value (16), computed once per frame in the encoder
    assert outs['tokens_primary_map'].shape[1:] == (32 * 32, 48) and outs['tokens_wrist_map'].shape[1:] == (16 * 16, 48)


def test_the_grasp_loss_teaches_the_location_queries_and_stays_out_of_the_bundle(tiny, tmp_path):
    with pytest.raises(TrainerError, match='grasp_head .*locate'):
        Trainer(_cfg(tiny, tmp_path / 'no', inputs=('image_primary',), grasp_weight=1.0), log=lambda *a, **k: None)
    tr = Trainer(_cfg(tiny, tmp_path / 'run', inputs=('image_primary', 'image_wrist'), contrastive_weight=0.0,
                      generative_weight=0.0, grasp_weight=1.0, val_fraction=0.34, model=dict(SMALL, locate=2)),
                 log=lambda *a, **k: None)
    batch = tr.batcher.make(np.arange(len(tr.data)), tr.device)
    assert batch['grasp_valid'].any() and not batch['grasp_valid'].all()
    # the grasp loss alone reaches the queries that choose where to point
    tr.model.zero_grad()
    out = tr.model(batch, grasp=True)
    from models.trainer import losses as LS

    LS.grasp_loss(out['grasp'], batch['grasp'], batch['grasp_valid']).backward()
    head = tr.model.locate['primary']
    assert float(head.query.weight.grad[:head.key_dim].abs().sum()) > 0
    assert float(head.key2.weight.grad.abs().sum()) > 0
    # the action loss reads the taught (first) query's point but does not move it
    tr.model.zero_grad()
    LS.action_loss(tr.model(batch)['action'], batch['action'], batch['action_mask']).backward()
    assert float(head.query.weight.grad[:head.key_dim].abs().sum()) == 0.0
    assert float(head.query.weight.grad[head.key_dim:].abs().sum()) > 0
    assert not batch['grasp_undo_shift'].any()       # no shift outside training batches
    tr.run()
    assert 'grasp' in tr.history[-1] and tr.history[-1]['val_grasp_cm'] > 0
    assert any(k.startswith('grasp.') for k in tr.model.state_dict())
    figures = export_run(tr, tmp_path / 'bundle', log=lambda *a: None)
    assert figures['action'] < 1e-4


def test_the_grasp_head_reads_its_point_with_the_shift_undone(tiny, tmp_path):
    tr = Trainer(_cfg(tiny, tmp_path / 'run', inputs=('image_primary',), contrastive_weight=0.0, generative_weight=0.0,
                      grasp_weight=1.0, augment_shift=3, batch=8, model=dict(SMALL, locate=1)),
                 log=lambda *a, **k: None)
    idx = tr.batcher.indices(0)
    plain = tr.batcher.make(idx, tr.device)
    aug = tr.batcher.make(idx, tr.device, step=0)
    h, w = plain['image_primary'].shape[2:4]
    undo = aug['grasp_undo_shift'].numpy()
    assert np.abs(undo).max() > 0
    for j in range(len(idx)):   # the undo is the shift that maps this sample's plain image onto the shifted one
        dx, dy = int(round(undo[j, 0] * (w - 1) / 2)), int(round(undo[j, 1] * (h - 1) / 2))
        a, p = aug['image_primary'][j], plain['image_primary'][j]
        assert torch.equal(a[:, 3:h - 3, 3:w - 3], p[:, 3 + dy:h - 3 + dy, 3 + dx:w - 3 + dx]), (j, dx, dy)
    # a later run without the grasp loss has no head, and its first query is the action loss's again
    plain_run = Trainer(_cfg(tiny, tmp_path / 'ft', inputs=('image_primary',), contrastive_weight=0.0,
                             generative_weight=0.0, model=dict(SMALL, locate=1, grasp_head=True)),
                        log=lambda *a, **k: None)
    assert not plain_run.model_cfg.grasp_head and plain_run.model.locate['primary'].taught == 0
