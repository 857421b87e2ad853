"""``python -m hil.cli``: the ``hil`` command, for subprocesses that must use this interpreter."""

import sys

from hil.cli import main

sys.exit(main())
