"""``python -m sszoo.hub``: see :mod:`sszoo.hub.cli`."""
import sys

from .cli import main

sys.exit(main())
