"""The trainer's errors: each names what is wrong."""

from __future__ import annotations


class TrainerError(Exception):
    """Bad configuration or a run that cannot go on."""


class DatasetError(TrainerError):
    """A dataset the trainer refuses: missing keys, mismatched shapes, missing instructions."""


class ParityError(TrainerError):
    """The exported graphs differ from the trained model by more than the bound."""
