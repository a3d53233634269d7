"""python -m compress_core: the command line (``cli.main``)."""

import sys

from compress_core.cli.main import main

sys.exit(main())
