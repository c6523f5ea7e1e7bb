"""``python -m sszoo.train`` (see :mod:`sszoo.train.cli`)."""
import sys

from .cli import console_main

sys.exit(console_main())
