"""The sections of `make bench`, one module each, measured in order by bench/run.py; the page
is written from their results by bench/report/."""
