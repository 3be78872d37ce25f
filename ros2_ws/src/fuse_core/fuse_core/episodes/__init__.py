"""Episodes: the state machine of demonstration collection and the metadata beside each bag."""

from fuse_core.episodes.machine import (ABORTED, DISCARD, FAILURE, IDLE, OUTCOMES, READY, RECORDING,
                                        RESETTING, STATES, SUCCESS, EpisodeMachine)
from fuse_core.episodes.metadata import (COMPLETE, INTERRUPTED, METADATA_FILE, RECORDING_STATUS,
                                         EpisodeMetadata, load_episode, write_episode)

__all__ = ['ABORTED', 'COMPLETE', 'DISCARD', 'FAILURE', 'IDLE', 'INTERRUPTED', 'METADATA_FILE',
           'OUTCOMES', 'READY', 'RECORDING', 'RECORDING_STATUS', 'RESETTING', 'STATES', 'SUCCESS',
           'EpisodeMachine', 'EpisodeMetadata', 'load_episode', 'write_episode']
