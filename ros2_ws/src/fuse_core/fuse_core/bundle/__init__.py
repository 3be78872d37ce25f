"""Model bundles: manifest, loader and checks, tokenizers, and the PolicyRunner."""

from fuse_core.bundle.loader import (
    DEFAULT_BUNDLE,
    Bundle,
    load_bundle,
    resolve_bundle_path,
    select_providers,
    validate_graphs,
)
from fuse_core.bundle.manifest import DELTA_EE_LAYOUT, InputSpec, Manifest, parse_manifest, read_manifest
from fuse_core.bundle.runner import (
    InferenceResult,
    Observation,
    ObservationError,
    PolicyRunner,
    check_observation,
    unnormalize,
)
from fuse_core.bundle.tokenizers import HashWordsTokenizer, InstructionError, make_tokenizer

__all__ = [
    'DEFAULT_BUNDLE',
    'Bundle',
    'load_bundle',
    'resolve_bundle_path',
    'select_providers',
    'validate_graphs',
    'DELTA_EE_LAYOUT',
    'InputSpec',
    'Manifest',
    'parse_manifest',
    'read_manifest',
    'InferenceResult',
    'Observation',
    'ObservationError',
    'PolicyRunner',
    'check_observation',
    'unnormalize',
    'HashWordsTokenizer',
    'InstructionError',
    'make_tokenizer',
]
