import sys

from srpsa.cli import main

sys.exit(main())
