"""Typed configs: frozen dataclasses that round-trip through the JSON beside every checkpoint."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


class ConfigMixin:
    """``to_dict``/``from_dict`` for a dataclass; unknown keys are an error naming them.

    Lists in the JSON become tuples (configs are frozen and hashable); a field typed
    as another config dataclass is built from its nested dict.
    """

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; accepted keys are {sorted(known)}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for k, v in data.items():
            t = hints.get(k)
            if isinstance(t, type) and dataclasses.is_dataclass(t) and isinstance(v, Mapping):
                v = t.from_dict(v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[k] = v
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ValueError(f"{cls.__name__}: {e}") from None
