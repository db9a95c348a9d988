"""tinyml-tfx's custom TFX components.

Artifact types resolve by their type name (``components.<Class>``): the Kubeflow
container entrypoint imports that path. Every artifact class in
:mod:`components.types` is therefore reachable here, loaded on first use to keep
the pure logic modules light.
"""


def __getattr__(name):
    if name[:1].isupper():
        from components import types
        from tfx.types import artifact

        value = getattr(types, name, None)
        if isinstance(value, type) and issubclass(value, artifact.Artifact):
            return value
    raise AttributeError(f"module 'components' has no attribute '{name}'")
