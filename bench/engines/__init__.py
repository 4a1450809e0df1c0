"""The engines `make bench` compares, each a function bytes -> renditions, run by worker.py."""
