"""`python -m memkit.cli ...` is the `memkit` command."""

import sys

from . import main

sys.exit(main())
