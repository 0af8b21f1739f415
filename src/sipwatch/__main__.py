import sys

from sipwatch.cli import main

sys.exit(main())
