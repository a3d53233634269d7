"""compress_core: prune and quantize real models, and measure them honestly.

Usable from Python (``compress_core.bench.workbench.Workbench``) and the command line
(``python -m compress_core``). Never imports Streamlit.
"""

import os as _os

# Under contention (a Streamlit server with several sessions, a test run beside a benchmark)
# OpenMP's default spin-wait makes 2 threads collapse (4 ms -> 658 ms per ResNet-20 call here).
# PASSIVE must be set before torch is first imported to take effect.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
