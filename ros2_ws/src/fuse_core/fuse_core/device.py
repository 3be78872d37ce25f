"""The one shape every piece of hardware has here: connect, close, and a ``with`` block."""

from __future__ import annotations

import abc
from typing import TypeVar

D = TypeVar('D', bound='Device')


class Device(abc.ABC):
    """Something opened with :meth:`connect` and released with :meth:`close`.

    Sensor sources, arm backends and teleoperation devices all are; ``with device:`` connects
    on entry and closes on exit, also when the block raises.
    """

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device; raises DeviceError naming it when it cannot be used."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice, when never connected, or after a failure."""

    def __enter__(self: D) -> D:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
