import sys

from testkit.standins.oneapi.app import main

sys.exit(main())
