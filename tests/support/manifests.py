"""Small model-bundle manifests for tests that need no real model."""

from __future__ import annotations

from typing import Any, Dict, Optional

def camera_and_spectrogram_manifest(name: str, window_size: int, action: Dict[str, Any],
                                    cam_preprocess: Dict[str, Any],
                                    spec: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A 5 Hz manifest with two inputs: 'cam' (4x4 RGB of camera_primary) and 'spec' (a 2x2 float
    spectrogram of audio, passed through; `spec` adds to its entry), and the given action."""
    return {
        'format_version': 1,
        'name': name,
        'control_rate_hz': 5.0,
        'window_size': window_size,
        'graphs': {'policy': 'policy.onnx'},
        'inputs': [
            {'name': 'cam', 'shape': [4, 4, 3], 'dtype': 'uint8', 'stream': 'camera_primary',
             'preprocess': cam_preprocess},
            {'name': 'spec', 'shape': [2, 2], 'dtype': 'float32', 'stream': 'audio',
             'preprocess': {'op': 'passthrough'}, **(spec or {})},
        ],
        'action': action,
    }
