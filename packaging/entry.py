"""Entry point of the one-file binary: the same `desktopmate` command as the console script."""

import multiprocessing
import sys

from server.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # Windows: child processes re-enter the binary
    sys.exit(main())
