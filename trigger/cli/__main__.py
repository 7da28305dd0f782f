"""``python -m trigger.cli`` runs the ``trigger`` command."""
from __future__ import annotations

import sys

from trigger.cli import main

sys.exit(main())
