"""Task families by name: the built-in ones, those registered in code, and those of installed packages.

``get_family(config.task)`` is how generic code reaches a family (see ``pipeline/tasks/base.py``).
A third-party package adds one with an entry point in the ``tinyml_tfx.task_families`` group
(``name = "package.module:FamilyClass"``); a test or a notebook calls ``register``.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Dict, List

from pipeline.tasks.base import TaskFamily

ENTRY_POINT_GROUP = "tinyml_tfx.task_families"
_BUILT_IN = {
    "keyword_spotting": "pipeline.tasks.kws.family:KeywordSpotting",
    "motion": "pipeline.tasks.motion.family:Motion",
}
_registered: Dict[str, TaskFamily] = {}


class UnknownTaskFamily(KeyError):
    """No family of that name; ``str()`` lists the known ones."""

    def __str__(self) -> str:
        return self.args[0]


def register(family: TaskFamily) -> TaskFamily:
    """Makes ``family`` available as ``task: <family.name>`` (replacing one of the same name)."""
    if not family.name:
        raise ValueError(f"{type(family).__name__} has no name: set the class attribute 'name'.")
    _registered[family.name] = family
    return family


def unregister(name: str) -> None:
    """Forgets a family registered with ``register`` (built-in ones come back on the next lookup)."""
    _registered.pop(name, None)


def _declared() -> Dict[str, str]:
    """Built-in families and the entry points of installed packages: name -> "module:Class"."""
    declared = dict(_BUILT_IN)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        declared.setdefault(entry.name, entry.value)
    return declared


def family_names() -> List[str]:
    """Every family a config may name, sorted."""
    return sorted(set(_declared()) | set(_registered))


def get_family(name: str) -> TaskFamily:
    """The family called ``name``.

    Raises:
        UnknownTaskFamily: naming the known families.
    """
    if name not in _registered:
        target = _declared().get(name)
        if target is None:
            raise UnknownTaskFamily(f"There is no task family '{name}'; the known ones are "
                                    f"{', '.join(family_names())}.")
        module_name, _, class_name = target.partition(":")
        _registered[name] = getattr(importlib.import_module(module_name), class_name)()
    return _registered[name]
