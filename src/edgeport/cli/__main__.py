"""``python -m edgeport.cli``: the same as the ``edgeport`` console script."""

import sys

from . import main

sys.exit(main())  # pragma: no cover
