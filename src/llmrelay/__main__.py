"""``python -m llmrelay``: the same as the ``llmrelay`` command."""

import sys

from .cli import main

sys.exit(main())
