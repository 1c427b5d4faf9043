"""The event-stream parser: what a server may send, cut into chunks anywhere."""

from __future__ import annotations

import pytest

from ocrq_client.sse import MAX_LINE_CHARS, EventStreamDecoder, EventStreamError, ServerSentEvent

# What the ocrq server sends (contracts: retry once, then id/event/data, keepalive comments),
# with CRLF, CR and LF line ends mixed, a multi-line data, a field without a space, a
# non-ASCII job name and a BOM.
STREAM = (
    "\ufeffretry: 2000\r\n"
    "\r\n"
    'id: 1718000000000-0\r\nevent: queued\r\ndata: {"status": "queued"}\r\n\r\n'
    ": keepalive\n\n"
    'id: 1718000000001-0\revent: page\rdata: {"status": "running",\rdata:  "name": "é€"}\r\r'
    "event: succeeded\nid:1718000000002-0\ndata:{}\nunknown: field\n\n"
)
EXPECTED = [
    ServerSentEvent("queued", '{"status": "queued"}', "1718000000000-0"),
    ServerSentEvent("page", '{"status": "running",\n "name": "é€"}', "1718000000001-0"),
    ServerSentEvent("succeeded", "{}", "1718000000002-0"),
]


def decode(chunks: list[bytes]) -> tuple[list[ServerSentEvent], EventStreamDecoder]:
    decoder = EventStreamDecoder()
    return [m for chunk in chunks for m in decoder.feed(chunk)], decoder


def test_the_whole_stream_at_once() -> None:
    messages, decoder = decode([STREAM.encode()])

    assert messages == EXPECTED
    assert decoder.retry_ms == 2000 and decoder.last_event_id == "1718000000002-0"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_chunks_of_any_size_give_the_same_messages(size: int) -> None:
    data = STREAM.encode()  # cut inside CRLFs, inside "é€" (2 and 3 bytes), inside the BOM

    messages, _ = decode([data[i : i + size] for i in range(0, len(data), size)])

    assert messages == EXPECTED


def test_every_single_cut_point_gives_the_same_messages() -> None:
    data = STREAM.encode()
    for cut in range(len(data) + 1):
        assert decode([data[:cut], data[cut:]])[0] == EXPECTED, cut


def test_cr_at_a_chunk_end_then_lf_is_one_line_end() -> None:
    messages, _ = decode([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])

    assert messages == [ServerSentEvent("message", "a\nb", "")]


def test_a_message_is_dispatched_only_at_its_blank_line() -> None:
    decoder = EventStreamDecoder()

    assert decoder.feed(b"id: 7\nevent: page\ndata: x\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("page", "x", "7")]


def test_blank_lines_without_data_dispatch_nothing_but_id_and_retry_stay() -> None:
    messages, decoder = decode([b"\n\nid: 42\n\nretry: 1500\n\nevent: page\n\ndata: y\n\n"])

    # the lone `event:` was reset by its blank line; the id persists for later messages
    assert messages == [ServerSentEvent("message", "y", "42")]
    assert decoder.retry_ms == 1500


def test_bad_retry_and_ids_with_nul_are_ignored() -> None:
    messages, decoder = decode([b"retry: 2s\nretry: -1\nid: a\x00b\ndata: z\n\n"])

    assert messages == [ServerSentEvent("message", "z", "")] and decoder.retry_ms is None


def test_data_without_a_space_or_value_and_a_colon_in_the_value() -> None:
    messages, _ = decode([b"data\ndata:a:b\ndata:  two spaces\n\n"])

    assert messages == [ServerSentEvent("message", "\na:b\n two spaces", "")]


def test_an_unfinished_message_at_the_end_is_not_dispatched() -> None:
    messages, decoder = decode([b"data: done\n\nid: 9\ndata: half"])

    assert messages == [ServerSentEvent("message", "done", "")]
    assert decoder.last_event_id == "9"  # seen, but its message never came


def test_a_line_without_end_past_the_limit_is_an_error() -> None:
    decoder = EventStreamDecoder()
    decoder.feed(b"data: " + b"x" * (MAX_LINE_CHARS - 10))

    with pytest.raises(EventStreamError):
        decoder.feed(b"x" * 100)
