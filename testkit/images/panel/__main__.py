"""`python -m testkit.images.panel`: build the panel's image and its stand-ins, print the tags."""

import sys

from testkit.images.panel import main

if __name__ == "__main__":
    sys.exit(main())
