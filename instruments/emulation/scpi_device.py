"""SCPI instrument models: a command table plus IEEE 488.2 status, errors and formatting.

A model subclasses :class:`ScpiDevice` and declares data::

    class Supply(ScpiDevice):
        identity = "ACME,PS-60,0001,1.0"
        number_format = Nr3Format()
        error_format = KEYSIGHT_ERRORS
        commands = (
            setting("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "voltage",
                    Number("V", min=0, max=61.2, default=0)),
            setting("OUTPut[:STATe]", "output", Boolean(default=False)),
            query("MEASure[:SCALar]:VOLTage[:DC]?", lambda dev: dev.voltage, unit="V"),
        )

:func:`setting` binds a command to an attribute (set, query, ``? MIN|MAX|DEF``, and the
``*RST`` default); :func:`query` and :func:`command` take functions of the device for
anything with behaviour. A handler refuses a setting in the current state with
``device.refuse("why")`` (-221) or raises any :class:`ScpiError`. The IEEE 488.2 common
commands and ``SYSTem:ERRor`` are always present; ``status_commands()`` adds the SCPI
``STATus:OPERation``/``QUEStionable`` registers, fed by :meth:`ScpiDevice.operation_condition`
and :meth:`ScpiDevice.questionable_condition`. Transitions are latched whenever status is
read (``STAT:...?``, ``*STB?``) and whenever the model calls ``update_status()`` (do so after
the plant moves, so a CV→CC→CV blip between two queries still leaves its event bit).

Execution rules (IEEE 488.2 / SCPI 1999): errors are queued, not answered; a command error
(-1xx) abandons the rest of the program message, an execution error (-2xx) only its own
unit; the replies of all queries in one message form one line, joined by ``;``. On a socket
the device cannot see when a client reads, so -410/-420 are never raised here.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn, Protocol

from instruments.emulation.scpi_parser import (
    DATA_OUT_OF_RANGE,
    DEVICE_ERROR,
    INVALID_CHARACTER,
    MISSING_PARAMETER,
    PARAMETER_NOT_ALLOWED,
    QUEUE_OVERFLOW,
    SETTINGS_CONFLICT,
    SYNTAX_ERROR,
    UNDEFINED_HEADER,
    BoundedCache,
    BoundQuery,
    Number,
    Param,
    Pattern,
    ScpiError,
    compile_pattern,
    parse_header,
    split_params,
    split_unit,
    split_units,
    words_size,
)

log = logging.getLogger(__name__)

Handler = Callable[..., Any]
"""``handler(device, *parameters)``; a query handler returns the value to answer."""

KEYSIGHT_ERRORS = '{code:+d},"{message}"'
PLAIN_ERRORS = '{code:d},"{message}"'

# IEEE 488.2 standard event status register bits
ESR_OPC = 1
ESR_QYE = 4
ESR_DDE = 8
ESR_EXE = 16
ESR_CME = 32
# status byte bits
STB_EAV = 4
STB_QUES = 8
STB_ESB = 32
STB_MSS = 64
STB_OPER = 128

_BAD_BYTES = re.compile(rb"[^\x20-\x7e\t]")


# ---- number formats --------------------------------------------------------------------


class NumberFormat(Protocol):
    """How a model writes numbers in replies."""

    def real(self, value: float, unit: str) -> str: ...

    def integer(self, value: int) -> str: ...


@dataclass(frozen=True)
class PlainFormat:
    """Shortest faithful decimal (``12.5``), no unit: many SCPI instruments answer so."""

    def real(self, value: float, unit: str) -> str:
        return repr(float(value))

    def integer(self, value: int) -> str:
        return str(value)


@dataclass(frozen=True)
class Nr3Format:
    """Keysight-style NR3 with sign and fixed mantissa digits: ``+1.250000E+01``."""

    digits: int = 6
    #: The printf-style template: ``%`` formatting skips the format-spec machinery that
    #: ``format()`` and f-strings go through, and every measurement reply is formatted.
    template: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", f"%+.{self.digits}E")

    def real(self, value: float, unit: str) -> str:
        return self.template % value

    def integer(self, value: int) -> str:
        return str(value)


@dataclass(frozen=True)
class FixedFormat:
    """Fixed decimals, optionally followed by the unit: EA answers ``5.00 A``."""

    decimals: int = 2
    with_unit: bool = True

    def real(self, value: float, unit: str) -> str:
        text = f"{value:.{self.decimals}f}"
        return f"{text} {unit}" if self.with_unit and unit else text

    def integer(self, value: int) -> str:
        return str(value)


# ---- commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One entry of a command table: a pattern and what a set and a query do.

    ``params`` parse the set form's parameters, ``query_params`` the query form's (missing
    optional ones arrive as None). ``unit`` and ``fmt`` shape the reply of a numeric
    query. ``on_reset`` is what ``*RST`` does for this command.
    """

    pattern: str
    set: Handler | None = None
    query: Handler | None = None
    params: tuple[Param, ...] = ()
    query_params: tuple[Param, ...] = ()
    unit: str = ""
    fmt: NumberFormat | None = None
    on_reset: Callable[[Any], None] | None = None
    compiled: Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = compile_pattern(self.pattern)
        if compiled.query_only and self.set is not None:
            raise ValueError(f"SCPI command {self.pattern!r}: a '?' pattern cannot have a setter")
        if self.set is None and self.query is None:
            raise ValueError(f"SCPI command {self.pattern!r}: needs a setter or a query")
        object.__setattr__(self, "compiled", compiled)


def setting(
    pattern: str,
    attr: str,
    param: Param,
    *,
    guard: Callable[[Any, Any], None] | None = None,
    after: Callable[[Any], None] | None = None,
    fmt: NumberFormat | None = None,
    queryable: bool = True,
) -> Command:
    """A setting stored in ``device.<attr>``: set, query, ``? MIN|MAX|DEF``, ``*RST``.

    ``guard(device, value)`` may refuse the value (``device.refuse(...)`` → -221) before it
    is stored; ``after(device)`` runs once it is stored (e.g. to push it to the plant).
    """

    def set_value(device: Any, value: Any) -> None:
        if guard is not None:
            guard(device, value)
        setattr(device, attr, value)
        if after is not None:
            after(device)

    def get_value(device: Any, which: str | None = None) -> Any:
        if which is None:
            return getattr(device, attr)
        if not isinstance(param, Number):
            raise ScpiError(PARAMETER_NOT_ALLOWED, f"{which} applies to numbers only")
        return param.bound(which, device)

    default = getattr(param, "default", None)

    def reset(device: Any) -> None:
        setattr(device, attr, default)

    unit = param.unit if isinstance(param, Number) else ""
    return Command(
        pattern,
        set=set_value,
        query=get_value if queryable else None,
        params=(param,),
        query_params=(BoundQuery(),) if isinstance(param, Number) else (),
        unit=unit,
        fmt=fmt,
        on_reset=reset if default is not None else None,
    )


def query(
    pattern: str,
    func: Handler,
    *,
    unit: str = "",
    fmt: NumberFormat | None = None,
    params: Sequence[Param] = (),
) -> Command:
    """A query answered by ``func(device, *params)``; numbers are formatted per model."""
    return Command(pattern, query=func, query_params=tuple(params), unit=unit, fmt=fmt)


def command(pattern: str, func: Handler, *params: Param) -> Command:
    """A command without a query form (``OUTPut:PROTection:CLEar``): ``func(device, *params)``."""
    return Command(pattern, set=func, params=tuple(params))


@dataclass(frozen=True, slots=True)
class _Step:
    """One message unit, resolved: the command, its form, its parameter tokens and the
    format of the numbers it answers (the command's own, else the model's)."""

    entry: Command
    suffixes: tuple[int, ...]
    query: bool
    params: tuple[tuple[Param, str], ...]
    padding: int
    fmt: NumberFormat


@dataclass(frozen=True, slots=True)
class _Plan:
    """A compiled program message.

    ``lone`` is its step when the message is a single query typed without parameters
    (``MEAS:VOLT?``, ``VOLT?``): what clients send most, run without the general loop.
    """

    steps: tuple[_Step, ...]
    lone: _Step | None

    @classmethod
    def of(cls, steps: Sequence[_Step]) -> _Plan:
        only = steps[0] if len(steps) == 1 else None
        lone = only if only is not None and only.query and not only.params else None
        return cls(tuple(steps), lone)


class CommandTable:
    """Compiled commands with a cache from typed path to (command, suffixes).

    The first command whose pattern matches and that supports the form (set or query)
    wins, so a model's entries come before the built-in ones and can override them.
    ``plans`` caches compiled program messages by their text, ``lines`` the same plans by
    the bytes of the line they came in (only lines that passed the character check).
    """

    def __init__(self, commands: Iterable[Command]) -> None:
        self.commands = tuple(commands)
        self._cache: BoundedCache[tuple[tuple[str, ...], bool], tuple[Command, tuple[int, ...]]]
        self._cache = BoundedCache(words_size)
        self.plans: BoundedCache[str, _Plan] = BoundedCache(len)
        self.lines: BoundedCache[bytes, _Plan] = BoundedCache(len)

    def resolve(self, words: tuple[str, ...], is_query: bool) -> tuple[Command, tuple[int, ...]]:
        """The command a typed path names; -113 when none does."""
        key = (words, is_query)
        found = self._cache.get(key)
        if found is not None:
            return found
        for entry in self.commands:
            if (entry.query if is_query else entry.set) is None:
                continue
            suffixes = entry.compiled.match(words)
            if suffixes is not None:
                self._cache.put(key, (entry, suffixes))
                return entry, suffixes
        typed = ":".join(words) + ("?" if is_query else "")
        raise ScpiError(UNDEFINED_HEADER, typed[:60])


# ---- status registers ------------------------------------------------------------------


class StatusRegister:
    """A SCPI status register: condition → transition filters → latched event → enable."""

    def __init__(self) -> None:
        self.condition = 0
        self.event = 0
        self.enable = 0
        self.ptr = 0x7FFF
        self.ntr = 0

    def update(self, condition: int) -> None:
        """Latch the event bits the transition from the last condition selects."""
        rising = condition & ~self.condition
        falling = self.condition & ~condition
        self.event |= (rising & self.ptr) | (falling & self.ntr)
        self.condition = condition

    def read_event(self) -> int:
        """Read and clear the event register."""
        value, self.event = self.event, 0
        return value

    def preset(self) -> None:
        """``STATus:PRESet``: enable none, positive transitions only."""
        self.enable = 0
        self.ptr = 0x7FFF
        self.ntr = 0

    @property
    def summary(self) -> bool:
        return bool(self.event & self.enable)


def _register_commands(name: str, attr: str) -> list[Command]:
    mask = Number(min=0, max=65535, integer=True)

    def reg(device: Any) -> StatusRegister:
        device.update_status()
        register: StatusRegister = getattr(device, attr)
        return register

    def setter(field_name: str) -> Handler:
        return lambda device, value: setattr(reg(device), field_name, int(value))

    def getter(field_name: str) -> Handler:
        return lambda device: int(getattr(reg(device), field_name))

    base = f"STATus:{name}"
    return [
        query(f"{base}[:EVENt]?", lambda device: reg(device).read_event()),
        query(f"{base}:CONDition?", getter("condition")),
        Command(f"{base}:ENABle", set=setter("enable"), query=getter("enable"), params=(mask,)),
        Command(f"{base}:PTRansition", set=setter("ptr"), query=getter("ptr"), params=(mask,)),
        Command(f"{base}:NTRansition", set=setter("ntr"), query=getter("ntr"), params=(mask,)),
    ]


def _preset(device: Any) -> None:
    device.operation.preset()
    device.questionable.preset()


def status_commands() -> tuple[Command, ...]:
    """The SCPI ``STATus`` subsystem (OPERation and QUEStionable registers, ``PRESet``)."""
    return (
        *_register_commands("OPERation", "operation"),
        *_register_commands("QUEStionable", "questionable"),
        command("STATus:PRESet", _preset),
    )


# ---- the IEEE 488.2 core ---------------------------------------------------------------

_BYTE = Number(min=0, max=255, integer=True)


def _set_ese(device: ScpiDevice, value: float) -> None:
    device.ese = int(value)


def _set_sre(device: ScpiDevice, value: float) -> None:
    device.sre = int(value) & ~STB_MSS


def _read_esr(device: ScpiDevice) -> int:
    value, device.esr = device.esr, 0
    return value


def _set_opc(device: ScpiDevice) -> None:
    device.esr |= ESR_OPC


COMMON_COMMANDS: tuple[Command, ...] = (
    query("*IDN?", lambda device: device.identity),
    command("*RST", lambda device: device.reset()),
    command("*CLS", lambda device: device.clear_status()),
    command("*OPC", _set_opc),
    query("*OPC?", lambda device: 1),
    command("*WAI", lambda device: None),
    query("*ESR?", _read_esr),
    Command("*ESE", set=_set_ese, query=lambda device: device.ese, params=(_BYTE,)),
    Command("*SRE", set=_set_sre, query=lambda device: device.sre, params=(_BYTE,)),
    query("*STB?", lambda device: device.status_byte()),
    query("*TST?", lambda device: device.self_test()),
    query("SYSTem:ERRor[:NEXT]?", lambda device: device.next_error()),
    query("SYSTem:ERRor:COUNt?", lambda device: len(device.errors)),
    query("SYSTem:VERSion?", lambda device: "1999.0"),
)


class ScpiDevice:
    """An emulated SCPI instrument: state shared by all its connections.

    Subclasses set the class attributes and add behaviour in handlers; they call
    ``super().__init__()`` first in their own ``__init__`` (it applies the ``*RST``
    defaults of every :func:`setting`). :meth:`execute` runs one program message.

    Class attributes: ``identity`` (``*IDN?``), ``commands`` (the model's table, searched
    before the built-in 488.2 one), ``number_format``, ``error_format`` (``KEYSIGHT_ERRORS``
    gives ``+0,"No error"``, ``PLAIN_ERRORS`` ``0,"No error"``), ``error_queue_size`` and
    ``error_details`` (append the reason to queued messages; real instruments mostly don't).
    """

    identity: ClassVar[str] = "Emulated,SCPI device,0,0"
    commands: ClassVar[Sequence[Command]] = ()
    number_format: ClassVar[NumberFormat] = PlainFormat()
    error_format: ClassVar[str] = PLAIN_ERRORS
    error_queue_size: ClassVar[int] = 20
    error_details: ClassVar[bool] = False
    #: Start every message unit of a compound message at the root, as EA's parsers do
    #: (clients send ``SYST:NOM:VOLT?;SYST:NOM:CURR?`` and ``SINK:CURR 2;POW 500``).
    units_from_root: ClassVar[bool] = False
    table: ClassVar[CommandTable] = CommandTable(COMMON_COMMANDS)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.table = CommandTable((*cls.commands, *COMMON_COMMANDS))

    def __init__(self) -> None:
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self.operation = StatusRegister()
        self.questionable = StatusRegister()
        self.suffixes: tuple[int, ...] = ()
        # The table's plans by wire line, held here: an instance attribute is the quickest
        # lookup on the path every query takes.
        self._lines = self.table.lines
        self.apply_defaults()

    # ---- what models override ------------------------------------------------------
    def reset(self) -> None:
        """``*RST``: every setting back to its declared default. Extend with super()."""
        self.apply_defaults()

    def clear_status(self) -> None:
        """``*CLS``: clear the error queue, ESR and event registers. Extend with super()."""
        self.errors.clear()
        self.esr = 0
        self.update_status()
        self.operation.event = 0
        self.questionable.event = 0

    def self_test(self) -> int:
        """``*TST?``: 0 means passed."""
        return 0

    def operation_condition(self) -> int:
        """Current ``STATus:OPERation:CONDition`` bits (e.g. N5700 CV=256, CC=1024)."""
        return 0

    def questionable_condition(self) -> int:
        """Current ``STATus:QUEStionable:CONDition`` bits (e.g. N5700 OV=1, OC=2)."""
        return 0

    # ---- helpers for handlers ------------------------------------------------------
    def refuse(self, detail: str = "") -> NoReturn:
        """Refuse a setting in the current state: SCPI -221 "Settings conflict"."""
        raise ScpiError(SETTINGS_CONFLICT, detail)

    def out_of_range(self, detail: str = "") -> NoReturn:
        """Refuse a value the current state makes out of range: SCPI -222."""
        raise ScpiError(DATA_OUT_OF_RANGE, detail)

    def format_real(self, value: float, unit: str = "", fmt: NumberFormat | None = None) -> str:
        """A number as this model writes it (for handlers that build their own replies)."""
        return (fmt or self.number_format).real(value, unit)

    def apply_defaults(self) -> None:
        """Run the ``*RST`` action of every command in the table."""
        for entry in self.table.commands:
            if entry.on_reset is not None:
                entry.on_reset(self)

    # ---- errors and status ---------------------------------------------------------
    def push_error(self, code: int, detail: str = "") -> None:
        """Queue an error and set its ESR bit; a full queue ends with -350.

        The queued text carries ``detail`` only when the model sets ``error_details``
        (real instruments mostly answer the bare standard message); it is always logged.
        """
        log.debug("%s: SCPI error %d %s", type(self).__name__, code, detail)
        text = ScpiError(code, detail.replace('"', "'") if self.error_details else "").text
        if code <= -100:
            self.esr |= _esr_bit(code)
        else:
            self.esr |= ESR_DDE
        if len(self.errors) >= self.error_queue_size:
            self.errors[-1] = (QUEUE_OVERFLOW, ScpiError(QUEUE_OVERFLOW).text)
            return
        self.errors.append((code, text))

    def next_error(self) -> str:
        """Pop the oldest error, formatted per model; ``0,"No error"`` when empty."""
        code, text = self.errors.popleft() if self.errors else (0, "No error")
        return self.error_format.format(code=code, message=text)

    def update_status(self) -> None:
        """Latch OPERation/QUEStionable transitions from the model's conditions."""
        self.operation.update(self.operation_condition())
        self.questionable.update(self.questionable_condition())

    def status_byte(self) -> int:
        """``*STB?``: EAV, QUES and OPER summaries, ESB and MSS."""
        self.update_status()
        stb = 0
        if self.errors:
            stb |= STB_EAV
        if self.questionable.summary:
            stb |= STB_QUES
        if self.esr & self.ese:
            stb |= STB_ESB
        if self.operation.summary:
            stb |= STB_OPER
        if stb & self.sre:
            stb |= STB_MSS
        return stb

    # ---- execution -----------------------------------------------------------------
    def execute_line(self, line: bytes) -> str | None:
        """Run one program message as read from the wire (terminator removed).

        A byte outside printable ASCII queues -101 "Invalid character"; a blank line does
        nothing. A line seen before runs its cached plan straight away: the character
        check and the compilation depend on the bytes alone.
        """
        plan = self._lines.get(line)
        if plan is None:
            return self._first_line(line)
        step = plan.lone
        if step is None:
            return self._run(plan.steps, None)
        # A lone query without parameters, the common message: the rules of _run, no loop.
        entry = step.entry
        handler = entry.query
        assert handler is not None
        self.suffixes = step.suffixes
        try:
            value = handler(self, *(None,) * step.padding) if step.padding else handler(self)
            if type(value) is float:
                return step.fmt.real(value, entry.unit)
            return self._format(value, entry)
        except Exception as exc:
            self._failed(step, exc)
            return None

    def _first_line(self, line: bytes) -> str | None:
        """A line not seen before: check its bytes, run it as text, remember its plan."""
        if _BAD_BYTES.search(line) is not None:
            self.push_error(INVALID_CHARACTER, "byte outside printable ASCII")
            return None
        message = line.decode("ascii")
        if not message.strip():
            return None
        reply = self.execute(message)
        plan = self.table.plans.get(message)
        if plan is not None:
            self.table.lines.put(line, plan)
        return reply

    def execute(self, message: str) -> str | None:
        """Run one program message; return its reply line (no terminator) or None.

        Resolving headers depends only on the text, so a message is compiled once into
        steps (cached per model) and later runs only parse parameters and call handlers.
        A unit that fails to compile ends the steps; its command error is queued after
        the units before it have run, as if the message had been read unit by unit.
        """
        plans = self.table.plans
        plan = plans.get(message)
        if plan is not None:
            return self._run(plan.steps, None)
        try:
            units = split_units(message)
        except ScpiError as exc:
            self.push_error(exc.code, exc.detail)
            return None
        steps: list[_Step] = []
        path: tuple[str, ...] = ()
        failure: ScpiError | None = None
        for unit in units:
            try:
                step, path = self._compile(unit, path)
            except ScpiError as exc:
                failure = exc
                break
            steps.append(step)
        if failure is None:
            plans.put(message, _Plan.of(steps))
        return self._run(steps, failure)

    def _compile(self, unit: str, path: tuple[str, ...]) -> tuple[_Step, tuple[str, ...]]:
        """Resolve one message unit against the table, following the SCPI path rules."""
        header_text, param_text = split_unit(unit)
        if not header_text:
            raise ScpiError(SYNTAX_ERROR, "empty command")
        header = parse_header(header_text)
        if header.common:
            words = header.words
        else:
            relative = not (header.absolute or self.units_from_root)
            words = path + header.words if relative else header.words
        entry, suffixes = self.table.resolve(words, header.query)
        if not header.common:
            path = words[:-1]
        tokens = tuple(split_params(param_text))
        specs = entry.query_params if header.query else entry.params
        if len(tokens) > len(specs):
            raise ScpiError(PARAMETER_NOT_ALLOWED, f"{len(tokens)} given to {header_text}")
        missing = specs[len(tokens) :]
        if any(not spec.optional for spec in missing):
            raise ScpiError(MISSING_PARAMETER, header_text)
        params = tuple(zip(specs, tokens, strict=False))
        fmt = entry.fmt or self.number_format
        step = _Step(entry, suffixes, header.query, params, len(missing), fmt)
        return step, path

    def _run(self, steps: Sequence[_Step], failure: ScpiError | None) -> str | None:
        replies: list[str] = []
        for step in steps:
            try:
                values: list[Any] = (
                    [spec.parse(token, self) for spec, token in step.params] if step.params else []
                )
                if step.padding:
                    values.extend([None] * step.padding)
                self.suffixes = step.suffixes
                entry = step.entry
                if step.query:
                    assert entry.query is not None
                    replies.append(self._format(entry.query(self, *values), entry))
                else:
                    assert entry.set is not None
                    entry.set(self, *values)
            except Exception as exc:
                if self._failed(step, exc):
                    failure = None
                    break
        if failure is not None:
            self.push_error(failure.code, failure.detail)
        return ";".join(replies) if replies else None

    def _failed(self, step: _Step, exc: Exception) -> bool:
        """Queue the error a handler raised; True when the rest of the message is abandoned.

        A :class:`ScpiError` is queued as is; anything else is a model bug, logged and
        answered with -300 "Device-specific error".
        """
        if isinstance(exc, ScpiError):
            self.push_error(exc.code, exc.detail)
            return exc.is_command_error
        name = step.entry.pattern
        log.exception("%s: handler of %s failed", type(self).__name__, name)
        self.push_error(DEVICE_ERROR, f"{type(exc).__name__} in {name}")
        return False

    def _format(self, value: Any, entry: Command) -> str:
        """A query's value as reply text; numpy scalars (from the plant) count as numbers."""
        if type(value) is float:
            return (entry.fmt or self.number_format).real(value, entry.unit)
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "1" if value else "0"
        fmt = entry.fmt or self.number_format
        if isinstance(value, int):
            return fmt.integer(value)
        if isinstance(value, float):
            return fmt.real(value, entry.unit)
        if isinstance(value, tuple | list):
            return ",".join(self._format(item, entry) for item in value)
        if value is None:
            return ""
        scalar = getattr(value, "item", None)
        if callable(scalar):
            return self._format(scalar(), entry)
        return str(value)


def _esr_bit(code: int) -> int:
    if code <= -400:
        return ESR_QYE
    if code <= -300:
        return ESR_DDE
    if code <= -200:
        return ESR_EXE
    return ESR_CME
