"""``python -m experiments`` runs the ``gmmlab`` command line."""

import sys

from experiments.cli import main

sys.exit(main())
