"""Reading a text/event-stream (GET /jobs/{id}/events) in tests and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class Message:
    """One block of the stream: an event (data set), a `retry:` or a comment alone."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def job(self) -> dict:
        assert self.data is not None, self
        return json.loads(self.data)


def messages(lines: Iterable[str]) -> Iterator[Message]:
    """The stream's blocks, as the SSE spec splits them (a blank line ends one)."""
    block = Message()
    seen = False
    for line in lines:
        if line == "":
            if seen:
                yield block
            block, seen = Message(), False
            continue
        seen = True
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            block.comments.append(value)
        elif name == "data":
            block.data = value if block.data is None else f"{block.data}\n{value}"
        elif name == "id":
            block.id = value
        elif name == "event":
            block.event = value
        elif name == "retry":
            block.retry = int(value)
    if seen:
        yield block


def events(lines: Iterable[str]) -> Iterator[Message]:
    """Only the blocks that carry an event."""
    return (m for m in messages(lines) if m.data is not None)
