"""``python -m sszoo.train`` (see :mod:`sszoo.train.cli`)."""
from .cli import _cli

_cli()
