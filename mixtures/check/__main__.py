"""``python -m mixtures.check TARGET CONVENTION OUTPUT``: the child of run_isolated."""

import sys

from mixtures.check.runner import _child_main

if __name__ == "__main__":
    _child_main(sys.argv[1:])
