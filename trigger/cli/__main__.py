"""``python -m trigger.cli`` runs the ``trigger`` command."""

import sys

from trigger.cli import main

sys.exit(main())
