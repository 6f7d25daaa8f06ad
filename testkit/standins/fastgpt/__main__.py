import sys

from testkit.standins.fastgpt.app import main

sys.exit(main())
