"""`python -m imgpipe.entrypoints.cli`: the `imgpipe` command, as the tests and benches run it."""

from imgpipe.entrypoints.cli import main

# Not when a spawned process of `process --jobs N` imports this module again as __mp_main__.
if __name__ == "__main__":
    main()
