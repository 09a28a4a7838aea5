"""Cache serializers: one base class (``base.py``), one module per serializer, and this one place that chooses.

``OPTIONS["SERIALIZER"]`` is ``"pickle"`` (the default: Django's contract, any picklable value),
``"json"``, or the dotted path of a ``CacheSerializer`` subclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from lizzy.cache_backend.serializers.base import CacheSerializer

SERIALIZERS = {
    "pickle": "lizzy.cache_backend.serializers.pickle.PickleSerializer",
    "json": "lizzy.cache_backend.serializers.json.JSONSerializer",
}
DEFAULT_SERIALIZER = "pickle"
ERR_SERIALIZER = "Cache OPTIONS['SERIALIZER'] = {name!r} is not {choices} or the dotted path of a CacheSerializer."


def serializer_from_options(options: Mapping[str, Any]) -> CacheSerializer:
    name = options.get("SERIALIZER", DEFAULT_SERIALIZER)
    error = ERR_SERIALIZER.format(name=name, choices=" or ".join(map(repr, SERIALIZERS)))
    try:
        cls = import_string(SERIALIZERS.get(name, name))
    except ImportError as exc:
        raise ImproperlyConfigured(error) from exc
    if not (isinstance(cls, type) and issubclass(cls, CacheSerializer)):
        raise ImproperlyConfigured(error)
    return cls(options)


__all__ = ["SERIALIZERS", "CacheSerializer", "serializer_from_options"]
