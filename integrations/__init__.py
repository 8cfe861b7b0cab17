"""Adapters that plug objaug into SSL libraries: ``objaug.integrations.lightly`` and
``objaug.integrations.solo_learn``. Each imports its library only when it is itself imported."""
