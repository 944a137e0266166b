"""`python -m dreamkit` is `dreamkit`."""

import sys

from dreamkit.cli import main

sys.exit(main())
