"""``python -m mlops_nb.sandbox ARGS`` is ``mlops-nb ARGS``, e.g. ``python -m mlops_nb.sandbox sandbox --port 0``."""

import sys

from mlops_nb.cli import main

sys.exit(main())
