"""``python -m objaug``: the ``objaug`` command line."""

from objaug.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
