"""Benchmarks (`make bench`, `python -m bench`): the producer and the jobs against their floors
and a peer. Results in bench/results.json and bench/RESULTS.md; never part of `make test`."""
