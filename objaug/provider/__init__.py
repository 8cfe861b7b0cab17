"""Where a batch's objects come from at training time: given, a store, or online ContraCAM with a cache.

:class:`ObjectProvider` is the one provider both training adapters call; :class:`IndexCache` its per-index
cache; :func:`read_store` one validated store read.
"""

from .cache import CacheSizeError, IndexCache
from .provider import ObjectProvider, check_cam_setup
from .store import read_store, unpack_objects

__all__ = ["CacheSizeError", "IndexCache", "ObjectProvider", "check_cam_setup", "read_store", "unpack_objects"]
