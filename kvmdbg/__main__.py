"""``python -m kvmdbg``: the same as the ``kvmdbg`` command."""

import sys

from kvmdbg.cli import main

if __name__ == "__main__":
    sys.exit(main())
