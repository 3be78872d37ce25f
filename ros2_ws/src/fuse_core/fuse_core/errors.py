"""Typed exceptions shared by the core and the nodes."""


class FuseError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(FuseError, ValueError):
    """A configuration value is invalid; the message names the parameter."""


class DeviceError(FuseError):
    """A hardware device is missing, disconnected or misbehaving."""


class DeviceNotFoundError(DeviceError):
    """The configured device does not exist (yet)."""


class SourceExhaustedError(FuseError):
    """A file source reached its end and is not set to loop."""


class BundleError(FuseError):
    """A model bundle is incomplete or does not match its manifest."""


class BagError(FuseError):
    """A recording is corrupt or lacks what the caller needs."""


class EpisodeError(FuseError):
    """An episode step was asked for in a state that does not allow it, or its data is unusable."""


class EvaluationError(FuseError):
    """An evaluation cannot start or continue: its report directory, its configuration or its graph."""
