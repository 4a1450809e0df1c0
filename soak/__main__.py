"""`python -m soak`: the command line of the soak harness."""

from soak.run import main

raise SystemExit(main())
