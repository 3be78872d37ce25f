"""In-process episodes: expert -> the arm's safety filter and IK -> world, at 5 Hz of sim time.

The same command path as the ROS graph (fuse_core's SafetyFilter with the arm node's
default limits), without processes or DDS: for benchmarks and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from fuse_core.arm.config import ArmConfig
from fuse_core.arm.safety import SafetyFilter
from fuse_core.gripper import gripper_open
from fuse_sim.audio import AudioSynth
from fuse_sim.config import WorldConfig
from fuse_sim.expert import ExpertObservation, ScriptedExpert
from fuse_sim.world import World

CONTROL_PERIOD_S = 0.2
AUDIO_WINDOW_S = 0.5


@dataclass
class EpisodeResult:
    task: str
    seed: int
    instruction: str
    state: str
    detail: str
    duration_s: float
    ticks: int
    applied: int
    holds: int
    decisions: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.state == 'success'


class EpisodeRunner:
    """Runs expert episodes on one World (reused across seeds of one task)."""

    def __init__(self, task: str, cfg: Optional[WorldConfig] = None, arm: Optional[ArmConfig] = None) -> None:
        cfg = cfg or WorldConfig(task=task)
        if cfg.task != task:
            cfg = WorldConfig(**{**cfg.__dict__, 'task': task})
        self.world = World(cfg)
        self.arm = arm or ArmConfig(start_pose_xyz=list(cfg.start_pose_xyz), start_pose_rpy=list(cfg.start_pose_rpy))
        self.audio = AudioSynth(seed=cfg.seed)
        self._steps = int(round(CONTROL_PERIOD_S / self.world.model.opt.timestep))

    def run(self, seed: int, on_tick: Optional[Callable[[World, np.ndarray], None]] = None,
            extra_time_s: float = 0.0) -> EpisodeResult:
        w = self.world
        instruction = w.reset(seed=seed)
        self.audio.reset(seed, w.time_s)
        filt = SafetyFilter(limits=self.arm.safety_limits())
        expert = ScriptedExpert(w.task.name)
        ring: List[np.ndarray] = []
        ticks = holds = 0
        end_after: Optional[float] = None
        while True:
            now_ns = int(round(w.episode_time_s * 1e9))     # the filter's clock: episode time
            obs = ExpertObservation(
                ee_xyz=w.ee_pose()[:3, 3], gripper_opening=w.gripper_opening(),
                objects=w.task.visible_objects(w), instruction=instruction,
                target_xyz=None if filt.target is None else filt.target[:3, 3].copy(),
                audio=np.concatenate(ring) if ring else np.zeros(0, np.float32),
                sample_rate=self.audio.sample_rate)
            action = expert.act(obs)
            d = filt.command(action[:3], action[3:6], action[6], w.joint_positions(), now_ns, stamp_ns=now_ns)
            if d.applied:
                if not w.set_joint_targets(d.joints):
                    filt.backend_refused(d, w.counters.last_refusal)
                w.set_gripper(gripper_open(d.gripper))
            else:
                holds += 1
            ticks += 1
            if on_tick is not None:
                on_tick(w, action)
            for _ in range(4):       # 4 audio blocks per tick keep the listening window fresh
                w.step(self._steps // 4)
                for ev in w.take_events():
                    self.audio.add_event(ev.time_s, ev.material, ev.speed)
                block = self.audio.render_until(w.time_s, float(np.abs(w.joint_velocities()).sum()),
                                                float(np.abs(w.finger_velocities()).sum()))
                ring.append(block)
            keep = int(AUDIO_WINDOW_S * self.audio.sample_rate)
            while ring and sum(len(b) for b in ring) - len(ring[0]) >= keep:
                ring.pop(0)
            if w.status.state != 'running':
                if end_after is None:
                    end_after = w.episode_time_s + extra_time_s
                if w.episode_time_s >= end_after:
                    break
        return EpisodeResult(w.task.name, seed, instruction, w.status.state, w.status.detail,
                             w.episode_time_s, ticks, filt.counters.applied, holds, dict(expert.decisions))


def run_episodes(task: str, seeds, cfg: Optional[WorldConfig] = None) -> List[EpisodeResult]:
    runner = EpisodeRunner(task, cfg)
    return [runner.run(int(s)) for s in seeds]
