"""Former home of objaug's shared input checks; kept importable. The checks live in :mod:`objaug.validation`."""

from objaug.validation import *  # noqa: F403
from objaug.validation import __all__  # noqa: F401
