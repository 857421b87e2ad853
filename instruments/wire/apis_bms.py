"""The APIS battery pack's input-register map: register numbers, wire addresses, status bit.

A pure table (no I/O) shared by the BMS driver and the emulated BMS, so that the manual's
register numbers are turned into wire addresses in this one place.

Facts, all from SonyCSL/apis-dcdc_batt_comm (commit c030429a8b584caa93e2024edb255e3e4215f230):

- ``drivers/dcdc_batt_comm.yml``: the battery is Modbus RTU, 9600 baud, unit 1; its
  configuration names the registers by their numbers, ``modbus_adr_rsoc: 30030`` and
  ``modbus_adr_status: 30031``.
- ``drivers/essx_server.py`` (``init_controller``): the address sent is the number - 30001
  (the Modbus "3xxxx" input-register convention), so SoC is at wire address 29, status at 30.
- ``drivers/essx/essx_modbus.py`` (its self-test): function 4; wire 0-2 (30001-30003) hold the
  protocol version as ASCII ``0x3031 0x3030 0x3030`` ("01", "00", "00": "010000"); wire 9
  (30010) starts the vendor name, ASCII two characters a register, high byte first ("HE");
  SoC at 30030 in 0.1 % steps; one read of wire 0 with count 31 covers 30001-30031, so every
  register of that block answers.
- ``drivers/battery_emulator/__init__.py``: SoC and status are read together (wire 29, count 2)
  when adjacent; ``read_status`` notes that the specification's status register is 0 when
  interchange is allowed and 1 when it is not — "the reverse of what one would expect" — and
  tests bit 0 only; ``check_battery`` reports ``battery_operation_status`` 3 (allowed) or 0
  (not allowed), never 1 or 2.

Assumed (no source gives it): the vendor name runs over at most 10 registers (30010-30019,
20 characters) and is padded with NUL bytes or spaces; the registers of the block that no
source names (30004-30009, 30020-30029 before SoC) hold 0.
"""

from __future__ import annotations

from typing import Final

INPUT_REGISTER_BASE: Final = 30001
"""The number of the first input register; wire address = number - this."""
FIRST_NUMBER: Final = 30001
LAST_NUMBER: Final = 39999

PROTOCOL_VERSION_NUMBER: Final = 30001
PROTOCOL_VERSION_WORDS: Final = 3
PROTOCOL_VERSION: Final = (0x3031, 0x3030, 0x3030)
"""What APIS's self-test expects at 30001-30003."""
VENDOR_NAME_NUMBER: Final = 30010
VENDOR_NAME_WORDS: Final = 10
SOC_NUMBER: Final = 30030
STATUS_NUMBER: Final = 30031
BLOCK_WORDS: Final = STATUS_NUMBER - INPUT_REGISTER_BASE + 1
"""30001-30031: the block APIS's self-test reads in one request (count 31)."""

SOC_STEPS_PER_PERCENT: Final = 10
SOC_MAX_RAW: Final = 100 * SOC_STEPS_PER_PERCENT
STATUS_NOT_ALLOWED: Final = 0x0001
"""Status bit 0: set = interchange NOT allowed, clear = allowed."""

OPERATION_STATUS_ALLOWED: Final = 3
OPERATION_STATUS_NOT_ALLOWED: Final = 0


def wire_address(number: int, *, what: str = "register") -> int:
    """The wire address of input register ``number`` (30001…39999); ``ValueError`` otherwise."""
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValueError(f"{what} {number!r} must be an input-register number 30001…39999")
    if not FIRST_NUMBER <= number <= LAST_NUMBER:
        raise ValueError(
            f"{what} {number} is not an input-register number 30001…39999 "
            "(APIS numbers them in the Modbus 3xxxx convention; the wire gets number - 30001)"
        )
    return number - INPUT_REGISTER_BASE


def interchange_allowed(status: int) -> bool:
    """True when status bit 0 is clear (the reversal APIS's ``read_status`` notes)."""
    return not status & STATUS_NOT_ALLOWED


def operation_status(status: int) -> int:
    """APIS's ``battery_operation_status`` for a status word: 3 allowed, 0 not allowed."""
    if interchange_allowed(status):
        return OPERATION_STATUS_ALLOWED
    return OPERATION_STATUS_NOT_ALLOWED


def ascii_words(text: str, words: int) -> tuple[int, ...]:
    """``text`` as ``words`` registers, two ASCII characters each, high byte first, NUL-padded."""
    raw = text.encode("ascii")
    if len(raw) > 2 * words:
        raise ValueError(f"{text!r} is longer than {2 * words} characters")
    raw = raw.ljust(2 * words, b"\0")
    return tuple((raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2))


def words_ascii(words: tuple[int, ...] | list[int]) -> str:
    """The text held in ``words`` (high byte first), cut at the first NUL, spaces stripped."""
    raw = b"".join(bytes(((w >> 8) & 0xFF, w & 0xFF)) for w in words)
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()
