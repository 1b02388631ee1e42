"""``python -m gpu_act``: the ``gpu-act`` command."""

import sys

from .cli import main

sys.exit(main())
