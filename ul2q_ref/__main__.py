"""``python -m ul2q_ref``: the same as the ``ul2q-ref`` command."""

import sys

from .cli import main

sys.exit(main())
