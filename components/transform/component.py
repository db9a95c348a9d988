"""Transform: TFX's component, with the transformed examples' compression as a setting."""

from __future__ import annotations

from typing import Any, Dict, Optional

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.transform import executor


class Transform(tfx.components.Transform):
    """TFX's Transform; ``compression`` (``none`` or ``gzip``, TFX's) is how its transformed examples are written.

    Every other argument is TFX's. The compression travels in ``custom_config`` under
    ``executor.COMPRESSION_CONFIG_KEY``, the one way into TFX's ``TransformSpec``, so the
    ``preprocessing_fn`` receives it as well.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, *, compression: str = executor.DEFAULT_COMPRESSION,
                 custom_config: Optional[Dict[str, Any]] = None, **kwargs: Any):
        executor.processor_class(compression)   # an unknown compression fails when the pipeline is built
        super().__init__(custom_config={**(custom_config or {}), executor.COMPRESSION_CONFIG_KEY: compression},
                         **kwargs)
