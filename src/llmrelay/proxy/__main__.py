"""``python -m llmrelay.proxy`` = ``llmrelay proxy``."""

import sys

from .cli import main

sys.exit(main())
