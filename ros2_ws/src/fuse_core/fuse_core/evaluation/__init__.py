"""Evaluation of a policy or the scripted expert over N episodes: results, interval, report directory."""

from fuse_core.evaluation.report import (EPISODES_FILE, SUMMARY_FILE, EpisodeResult, EvaluationReport,
                                         episode_seed, wilson_interval)

__all__ = ['EPISODES_FILE', 'SUMMARY_FILE', 'EpisodeResult', 'EvaluationReport', 'episode_seed',
           'wilson_interval']
