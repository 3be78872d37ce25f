"""Parameters of the episode manager node (`episodes`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from fuse_core.config import ValidatedConfig, param


@dataclass
class EpisodesConfig(ValidatedConfig):
    operator: str = param('', 'who collects (written into every episode)')
    action_source: str = param('keyboard', 'where the actions come from: keyboard, spacemouse, gamepad, '
                               'expert, scripted, fake or bundle:<path>')
    world: str = param('robot', 'robot, or twin (the MuJoCo world)', choices=('robot', 'twin'))
    task: str = param('', 'task name (twin: one of the world\'s tasks; robot: free text)')
    seed: int = param(-1, 'twin: first reset seed (-1 = the world\'s next)', min=-1, max=2**31 - 1)
    instruction: str = param('', 'initial language instruction (twin: the task\'s own if empty)')
    modalities_file: str = param('', 'YAML/JSON file: instruction or task -> {combination: text}, FuSe\'s '
                                 'modality-specific instructions of the episodes with that instruction '
                                 '(else task); they replace the twin\'s own. "" = none')
    id_prefix: str = param('episode', 'episode ids are <prefix>_<utc time>_<n>')
    world_reset: bool = param(False, 'reset the twin\'s task through reset_service at every reset')
    reset_service: str = param('/world/reset', 'the twin\'s reset (fuse_interfaces/ResetTask)')
    move_to_start: bool = param(True, 'move the arm to the start pose at every reset')
    arm_name: str = param('/arm', 'the arm node (its ~/move_to_start and ~/status)')
    capture_backgrounds: bool = param(True, 'capture both DIGIT backgrounds at the start pose')
    digits: List[str] = param(['/digit_left', '/digit_right'], 'DIGIT nodes whose ~/capture_background '
                              'is called at the start pose')
    recorder: str = param('/recorder', 'recorder node in mode episodes (its ~/start, ~/stop); '
                          '"" = do not record')
    key_topic: str = param('/teleop/episode_key', 'episode keys from the teleop device (std_msgs/String)')
    follow_world: bool = param(False, 'twin with the expert: every episode of /world/task_state is '
                               'recorded and ends with the task\'s outcome')
    auto_start: bool = param(True, 'start recording as soon as a reset is done')
    auto_reset: bool = param(False, 'reset for the first episode as soon as the recorder is ready, and for '
                             'the next as soon as one ended (not with follow_world)')
    auto_outcome: bool = param(False, 'twin: end the episode with the task\'s success/failure')
    episodes: int = param(0, 'stop the node after this many episodes with an outcome (0 = never)',
                          min=0, max=1_000_000)
    step_timeout_s: float = param(30.0, 'a reset step (its service appearing, the call, the move to start) '
                                  'waits this long',
                                  min=1.0, max=600.0)
    state_rate_hz: float = param(2.0, '~/state publish rate (and on every change)', min=0.1, max=50.0)
