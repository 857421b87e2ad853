"""The live page's HTTP server on a real loopback socket (ephemeral port): the page, the
event stream and its reconnect, Stop, operator prompts answered on the page, on the
terminal or refused; bad requests get one-line errors and the server keeps serving."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from child_process import until

from hil.errors import ConfigError
from hil.live.client import EventStream
from hil.live.events import EventHub
from hil.live.prompts import Operator, PromptDesk, PromptRefused
from hil.live.server import LiveApp, LiveServer, parse_address
from hil.recorder import MemoryRecorder

PATIENCE_S = 30.0


class Live:
    """A hub, its prompt desk and a served page; ``stops`` lists who pressed Stop."""

    def __init__(self, *, watch_only: bool = False) -> None:
        self.hub = EventHub()
        self.desk = PromptDesk(self.hub)
        self.stops: list[str] = []
        handler = None if watch_only else self.stops.append
        self.server = LiveServer(LiveApp(self.hub, self.desk, handler), "127.0.0.1", 0).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=PATIENCE_S)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def live() -> Iterator[Live]:
    served = Live()
    try:
        yield served
    finally:
        served.close()


def test_the_page_is_one_offline_file_with_a_stop_button(live: Live) -> None:
    page = live.http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'id="stop"' in html and 'new EventSource("/events")' in html
    assert "<script src" not in html and "https://" not in html and "<link" not in html


def test_a_new_client_gets_the_state_then_every_event_in_order(live: Live) -> None:
    live.hub.publish({"type": "progress", "total": 7})
    with EventStream(live.server.url) as stream:
        events = iter(stream)
        first = next(events)
        assert first.data["type"] == "state" and first.data["total"] == 7
        assert first.id == live.hub.last_id
        for n in range(5):
            live.hub.publish({"type": "note", "message": f"n{n}"})
        got = [next(events) for _ in range(5)]
    assert [e.data["message"] for e in got] == ["n0", "n1", "n2", "n3", "n4"]
    assert [e.id for e in got] == list(range(first.id + 1, first.id + 6))


def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed(live: Live) -> None:
    with EventStream(live.server.url) as stream:
        events = iter(stream)
        next(events)  # the state
        live.hub.publish({"type": "note", "message": "seen"})
        seen = next(events)
        stream.reconnect()
        for n in range(3):
            live.hub.publish({"type": "note", "message": f"missed {n}"})
        again = iter(stream)
        got = [next(again) for _ in range(3)]
    assert seen.data["message"] == "seen"
    assert [e.data["message"] for e in got] == ["missed 0", "missed 1", "missed 2"]
    assert got[0].id == seen.id + 1


def test_a_bad_last_event_id_is_one_line_and_the_server_keeps_serving(live: Live) -> None:
    bad = live.http.get("/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 400 and "Last-Event-ID 'abc'" in bad.json()["error"]
    assert live.http.get("/state").json()["type"] == "state"


def test_stop_needs_a_confirmation_and_runs_once(live: Live) -> None:
    assert live.http.post("/stop", content=b"{").status_code == 400
    assert live.http.post("/stop", json=[1]).json()["error"].endswith("a JSON object")
    refused = live.http.post("/stop", json={"by": "ann"})
    assert refused.status_code == 400 and "confirm" in refused.json()["error"]
    assert live.stops == []
    done = live.http.post("/stop", json={"confirm": True, "by": "ann"})
    assert done.status_code == 202
    assert live.stops == ["ann (page, 127.0.0.1)"]
    again = live.http.post("/stop", json={"confirm": True, "by": "bob"})
    assert again.status_code == 409 and "already stopping (asked by ann" in again.json()["error"]
    assert live.stops == ["ann (page, 127.0.0.1)"]
    assert live.hub.state().data["stopping"]["by"] == "ann (page, 127.0.0.1)"


def test_a_watching_page_has_nothing_to_stop() -> None:
    watching = Live(watch_only=True)
    try:
        answer = watching.http.post("/stop", json={"confirm": True})
        assert answer.status_code == 409 and "only watches" in answer.json()["error"]
    finally:
        watching.close()


def test_a_prompt_answered_on_the_page_is_recorded_with_who_and_when(live: Live) -> None:
    record = MemoryRecorder()
    operator = Operator("page", recorder=record, desk=live.desk, test="t::x")
    answers: list[bool] = []
    asking = threading.Thread(
        target=lambda: answers.append(operator.confirm("Connect the battery to E003"))
    )
    asking.start()
    try:
        (prompt,) = until("the prompt", lambda: live.http.get("/prompts").json(), PATIENCE_S)
        assert prompt["text"] == "Connect the battery to E003"
        assert prompt["choices"] == ["yes", "no"] and prompt["test"] == "t::x"
        assert (
            live.http.post(f"/prompts/{prompt['id']}", json={"answer": "maybe"}).status_code == 400
        )
        assert live.http.post("/prompts/99", json={"answer": "yes"}).status_code == 404
        assert live.http.post("/prompts/x", json={"answer": "yes"}).status_code == 404
        assert live.http.post(f"/prompts/{prompt['id']}", json={}).status_code == 400
        ok = live.http.post(f"/prompts/{prompt['id']}", json={"answer": "yes", "by": "ann"})
        assert ok.status_code == 200
    finally:
        asking.join(PATIENCE_S)
    assert answers == [True]
    (note,) = record.of_type("note")
    assert note["kind"] == "prompt" and note["answer"] == "yes"
    assert note["by"] == "ann (page, 127.0.0.1)" and note["asked_at"] and note["answered_at"]
    assert live.http.get("/prompts").json() == []
    assert [e.data["type"] for e in live.hub.since(0)[0]] == ["prompt", "answer"]


def test_a_page_prompt_not_answered_in_time_is_refused_and_withdrawn(live: Live) -> None:
    record = MemoryRecorder()
    operator = Operator("page", recorder=record, desk=live.desk, timeout_s=0.25)
    with pytest.raises(PromptRefused, match=r"no answer within 0\.25 s"):
        operator.ask("Which battery?", ["A", "B"])
    assert live.desk.pending() == []
    assert [note["status"] for note in record.of_type("note")] == ["no answer within 0.25 s"]


def test_no_prompts_refuses_every_question_and_says_so() -> None:
    record = MemoryRecorder()
    operator = Operator("refuse", recorder=record)
    assert operator.confirm("Energise the bench?") is False
    with pytest.raises(PromptRefused, match="--no-prompts"):
        operator.ask("Serial number?")
    assert [n["by"] for n in record.of_type("note")] == ["--no-prompts", "--no-prompts"]


def test_the_terminal_asks_again_until_the_answer_fits() -> None:
    lines = iter(["maybe", " Y "])
    questions: list[str] = []

    def terminal(question: str) -> str:
        questions.append(question)
        return next(lines)

    record = MemoryRecorder()
    assert Operator("terminal", recorder=record, terminal=terminal).confirm("Ready?")
    assert questions == ["operator: Ready? [y/n] "] * 2
    (note,) = record.of_type("note")
    assert note["answer"] == "yes" and note["by"].endswith("(terminal)")


def test_a_terminal_without_input_refuses() -> None:
    def closed(question: str) -> str:
        raise EOFError

    record = MemoryRecorder()
    with pytest.raises(PromptRefused, match="no terminal"):
        Operator("terminal", recorder=record, terminal=closed).ask("Serial?")
    assert [n["status"] for n in record.of_type("note")] == ["refused: no terminal input"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0.0.0.0:8765", "not a loopback address"),
        ("192.168.1.5:80", "not a loopback address"),
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:99999", "expected HOST:PORT"),
        (":80", "expected HOST:PORT"),
    ],
)
def test_addresses_are_checked(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_address(text)


def test_addresses_that_may_serve() -> None:
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address("localhost:8765") == ("localhost", 8765)
    assert parse_address("[::1]:8765") == ("::1", 8765)
    assert parse_address("0.0.0.0:8765", allow_remote=True) == ("0.0.0.0", 8765)


def test_a_busy_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        hub = EventHub()
        with pytest.raises(ConfigError, match=f"--live 127.0.0.1:{port}: cannot serve there"):
            LiveServer(LiveApp(hub, PromptDesk(hub), None), "127.0.0.1", port)
