"""`python -m flows` runs the `racemine` command."""

import sys

from flows.entry import main

if __name__ == "__main__":
    sys.exit(main())
