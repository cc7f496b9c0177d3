import sys

from modelzoo.cli import main

sys.exit(main())
