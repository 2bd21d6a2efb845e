"""notigate's benchmarks against its peers: ``python bench/run.py`` (``make bench``)."""
