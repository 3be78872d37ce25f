"""Errors raised while exporting a checkpoint."""


class ExportError(Exception):
    """The checkpoint, the requested bundle or the tokenizer cannot be exported; the message says why."""
