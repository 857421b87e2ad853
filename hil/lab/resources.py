"""Our labgrid resource classes, registered with labgrid's ``target_factory`` (needs the
extra).

labgrid has no generic "instrument at host:port" class and no Modbus class, and its
``PyVISADevice`` cannot open ``::SOCKET`` resources (labgrid 26.0.1,
``labgrid/resource/pyvisa.py``), so a bench's LAN instruments travel as
:class:`HilNetworkInstrument`. The exporter passes unknown classes through unchanged
(``labgrid/remote/exporter.py``, ``add_resource``); registering them here lets a labgrid
environment file (``RemotePlace``) build them too. The field names are the parameters
:mod:`hil.lab.places` writes into the exporter configuration.
"""

from __future__ import annotations

import attr
from labgrid.factory import target_factory
from labgrid.resource.common import NetworkResource

from hil.lab.places import CONTROL_CLASS, INSTRUMENT_CLASS


@target_factory.reg_resource
@attr.s(eq=False)
class HilNetworkInstrument(NetworkResource):  # type: ignore[misc]
    """An instrument at ``host:port``; ``form`` rebuilds the bench's resource string
    (``TCPIP0::{host}::{port}::SOCKET``, ``{host}:{port}`` …), ``transport`` and ``driver``
    say how the toolkit talks to it."""

    port: int = attr.ib(validator=attr.validators.instance_of(int))
    form: str = attr.ib(validator=attr.validators.instance_of(str))
    transport: str = attr.ib(default="", validator=attr.validators.instance_of(str))
    driver: str = attr.ib(default="", validator=attr.validators.instance_of(str))

    @property
    def resource(self) -> str:
        return str(self.form).format(host=self.host, port=self.port)


@target_factory.reg_resource
@attr.s(eq=False)
class HilEmulatorControl(NetworkResource):  # type: ignore[misc]
    """The control channel (JSON lines over TCP) of an emulated bench served by
    ``hil emulate``; see docs/emulator-control.md."""

    port: int = attr.ib(validator=attr.validators.instance_of(int))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


assert HilNetworkInstrument.__name__ == INSTRUMENT_CLASS
assert HilEmulatorControl.__name__ == CONTROL_CLASS
