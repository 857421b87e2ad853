"""Hardware-in-the-loop benches for peer-to-peer DC power interchange.

The core layer: control abstraction, bench, exchange engine, supervisor, clock, records and
the ``hil`` command line. See ``docs/architecture.md`` for how the layers fit together.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pp2p-hil")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
