"""Entry point: ``python -m probe``."""

import sys

sys.dont_write_bytecode = True  # the probe may run on a read-only root filesystem

from probe.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
