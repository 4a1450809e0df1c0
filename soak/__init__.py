"""The soak harness: `imgpipe serve` driven from outside as users drive it, through faults.

`python -m soak` (or `make soak`) uploads N generated files, some of them hostile, by the three
routes (multipart, signed PUT, a file dropped into `uploads/`) while it kills the server and its
rendering processes, makes the database read-only, holds it locked and fills the disk; then it
checks what a user would check (docs/operations.md, Soak) and exits non-zero on a violation.

Modules: `plan` (what is uploaded), `client` (the well-behaved uploader), `server` (the
`imgpipe serve` process), `faults` (each fault, always undone), `phases` (the timeline),
`check` (the invariants and the report), `run` (the command line).
"""
