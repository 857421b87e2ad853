"""Operator prompts: a bench or a test asks the person at the bench, and the answer is kept.

``operator.confirm("Connect the battery to E003")`` and ``operator.ask(...)`` are answered
on the live page when there is one (:class:`PromptDesk`: the prompt is an event, the page
POSTs the answer), otherwise on the terminal; with ``--no-prompts`` (CI) every prompt is
refused at once. Every prompt and its answer — who answered, where and when — is written
into the run record as a ``note`` (``kind = "prompt"``), so the report shows it.
"""

from __future__ import annotations

import getpass
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from hil.errors import HilError
from hil.live.events import EventHub
from hil.recorder import Recorder, safe_write

Mode = Literal["page", "terminal", "refuse"]
YES, NO = "yes", "no"
#: How long one wait for the page lasts before it looks again (a signal, e.g. the page's
#: own Stop, interrupts the waiting thread between two waits).
POLL_S = 0.25


class PromptRefused(HilError):
    """A question could not be answered: prompts are off (``--no-prompts``), no terminal,
    or no answer within the prompt's timeout."""


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class Prompt:
    """One question to the operator and, once given, its answer."""

    id: int
    kind: Literal["confirm", "ask"]
    text: str
    choices: tuple[str, ...]
    test: str | None
    asked_at: str = field(default_factory=_now)
    answer: str | None = None
    by: str | None = None
    answered_at: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "choices": list(self.choices),
            "test": self.test,
            "asked_at": self.asked_at,
        }


class PromptDesk:
    """The page's side: prompts waiting for an answer, and :meth:`answer` (the POST)."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub
        self._ids = itertools.count(1)
        self._open: dict[int, Prompt] = {}
        self._lock = threading.Lock()

    def open(
        self, kind: Literal["confirm", "ask"], text: str, choices: Sequence[str], test: str | None
    ) -> Prompt:
        with self._lock:
            prompt = Prompt(next(self._ids), kind, text, tuple(choices), test)
            self._open[prompt.id] = prompt
        self.hub.publish({"type": "prompt", **prompt.as_dict()})
        return prompt

    def pending(self) -> list[Prompt]:
        with self._lock:
            return list(self._open.values())

    def answer(self, prompt_id: int, answer: str, by: str) -> Prompt:
        """Answer an open prompt; ``KeyError`` if none has that id (or it was answered),
        ``ValueError`` if the answer is not one of its choices."""
        with self._lock:
            prompt = self._open.get(prompt_id)
            if prompt is None:
                raise KeyError(f"no open prompt {prompt_id}")
            if prompt.choices and answer not in prompt.choices:
                raise ValueError(
                    f"prompt {prompt_id}: answer {answer!r} is not one of "
                    f"{', '.join(prompt.choices)}"
                )
            del self._open[prompt_id]
        self._close(prompt, answer, by)
        return prompt

    def withdraw(self, prompt: Prompt, why: str) -> None:
        """Take an unanswered prompt off the page (timed out, interrupted)."""
        with self._lock:
            if self._open.pop(prompt.id, None) is None:
                return
        self._close(prompt, None, why)

    def _close(self, prompt: Prompt, answer: str | None, by: str) -> None:
        prompt.answer, prompt.by, prompt.answered_at = answer, by, _now()
        self.hub.publish(
            {"type": "answer", "id": prompt.id, "answer": answer, "by": by, "text": prompt.text}
        )
        prompt.done.set()


class Operator:
    """The person at the bench, as a bench or a test asks them (the ``operator`` fixture).

    ``mode`` is ``page`` (the live page answers, through ``desk``), ``terminal``
    (``terminal(question) -> answer line``; ``EOFError`` when there is none) or ``refuse``
    (``--no-prompts``). ``timeout_s`` bounds a wait (None: wait until answered or stopped).
    """

    def __init__(
        self,
        mode: Mode,
        *,
        recorder: Recorder | None = None,
        desk: PromptDesk | None = None,
        terminal: Callable[[str], str] | None = None,
        test: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if mode == "page" and desk is None:
            raise ValueError("an operator on the page needs the page's PromptDesk")
        if mode == "terminal" and terminal is None:
            raise ValueError("an operator on the terminal needs a terminal")
        self.mode = mode
        self.recorder = recorder
        self.desk = desk
        self.terminal = terminal
        self.test = test
        self.timeout_s = timeout_s

    def confirm(self, text: str) -> bool:
        """Ask a yes/no question; True only for a yes. A refused prompt is a no."""
        try:
            return self._ask("confirm", text, (YES, NO)) == YES
        except PromptRefused:
            return False

    def ask(self, text: str, choices: Sequence[str] = ()) -> str:
        """Ask a question (one of ``choices`` if given); ``PromptRefused`` when it cannot
        be answered."""
        return self._ask("ask", text, tuple(choices))

    # -- the three ways ------------------------------------------------------------------
    def _ask(self, kind: Literal["confirm", "ask"], text: str, choices: tuple[str, ...]) -> str:
        asked_at = _now()
        if self.mode == "refuse":
            self._record(kind, text, None, "--no-prompts", asked_at, "refused: prompts are off")
            raise PromptRefused(f"operator prompt refused (--no-prompts): {text}")
        if self.mode == "terminal":
            answer, by = self._on_terminal(kind, text, choices, asked_at)
        else:
            answer, by = self._on_page(kind, text, choices, asked_at)
        self._record(kind, text, answer, by, asked_at, "answered")
        return answer

    def _on_page(
        self, kind: Literal["confirm", "ask"], text: str, choices: tuple[str, ...], asked_at: str
    ) -> tuple[str, str]:
        assert self.desk is not None
        prompt = self.desk.open(kind, text, choices, self.test)
        waited = 0.0
        try:
            while not prompt.done.wait(POLL_S):
                waited += POLL_S
                if self.timeout_s is not None and waited >= self.timeout_s:
                    why = f"no answer within {self.timeout_s:g} s"
                    self.desk.withdraw(prompt, why)
                    self._record(kind, text, None, "timeout", asked_at, why)
                    raise PromptRefused(f"operator prompt: {why}: {text}")
        except BaseException:
            self.desk.withdraw(prompt, "withdrawn: the test stopped")
            raise
        if prompt.answer is None:
            raise PromptRefused(f"operator prompt withdrawn ({prompt.by}): {text}")
        return prompt.answer, str(prompt.by)

    def _on_terminal(
        self, kind: Literal["confirm", "ask"], text: str, choices: tuple[str, ...], asked_at: str
    ) -> tuple[str, str]:
        assert self.terminal is not None
        hint = " [y/n]" if kind == "confirm" else (f" [{'/'.join(choices)}]" if choices else "")
        by = f"{getpass.getuser()} (terminal)"
        while True:
            try:
                line = self.terminal(f"operator: {text}{hint} ").strip()
            except EOFError:
                self._record(kind, text, None, "terminal", asked_at, "refused: no terminal input")
                raise PromptRefused(f"operator prompt: no terminal to answer on: {text}") from None
            if kind == "confirm" and line.lower() in ("y", "yes", "n", "no"):
                return (YES if line.lower().startswith("y") else NO), by
            if kind == "ask" and line and (not choices or line in choices):
                return line, by

    def _record(
        self,
        kind: str,
        text: str,
        answer: str | None,
        by: str,
        asked_at: str,
        status: str,
    ) -> None:
        shown = answer if answer is not None else status
        safe_write(
            self.recorder,
            "note",
            message=f"operator {kind}: {text} -> {shown} ({by})",
            kind="prompt",
            prompt=kind,
            text=text,
            answer=answer,
            by=by,
            status=status,
            asked_at=asked_at,
            answered_at=_now(),
            test=self.test,
        )
