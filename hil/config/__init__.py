"""The configuration layer: bench files, APIS policy and scenario files, read and checked.

Nothing here opens an instrument: :func:`hil.config.benchfile.load_bench_file` turns a bench
file into the frozen :mod:`hil.config.bench` description that the layers above use. See
``docs/bench-file.md``.
"""
