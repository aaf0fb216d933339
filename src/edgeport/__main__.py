"""``python -m edgeport``: the same CLI as the ``edgeport`` script, for machines where only the
interpreter is on the PATH."""

import sys

from edgeport.cli import main

sys.exit(main())
