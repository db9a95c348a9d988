"""tinyml-tfx's custom TFX components.

Artifact types resolve by their type name (``components.<Class>``), so they are
exposed here, loaded on first use to keep the pure logic modules light.
"""

_ARTIFACT_TYPES = {"TFLiteModel", "DeviceReport", "StreamingEvaluation"}


def __getattr__(name):
    if name in _ARTIFACT_TYPES:
        from components import types

        return getattr(types, name)
    raise AttributeError(f"module 'components' has no attribute '{name}'")
