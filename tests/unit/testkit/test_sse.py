from testkit.sse import Message, messages


def test_messages_split_on_blank_lines_and_keep_comments() -> None:
    text = (
        'retry: 2000\n\nid: 1-0\nevent: queued\ndata: {"a":1}\n\n'
        ": keepalive\n\ndata: x\ndata: y\n\n"
    )
    assert list(messages(text.split("\n"))) == [
        Message(retry=2000),
        Message(id="1-0", event="queued", data='{"a":1}'),
        Message(comments=["keepalive"]),
        Message(data="x\ny"),
    ]
