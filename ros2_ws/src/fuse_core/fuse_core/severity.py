"""How bad a state is, for logs and diagnostics; the values are DiagnosticStatus levels."""

from __future__ import annotations

import enum


class Severity(enum.IntEnum):
    """OK, WARN or ERROR, as diagnostic_msgs/DiagnosticStatus numbers them."""

    OK = 0
    WARN = 1
    ERROR = 2
