import sys

from tooling.doctor import main

sys.exit(main())
