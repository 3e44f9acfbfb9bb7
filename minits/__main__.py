"""python -m minits ...: the same as the `minits` command (see minits.cli)."""

import sys

from .cli import main

sys.exit(main())
