"""Server-Sent Events lines end at CR LF, CR or LF only, however the text is chunked."""

from collections.abc import AsyncIterator

import pytest

from lightning_ui import sse


async def chunked(*chunks: str) -> AsyncIterator[str]:
    for chunk in chunks:
        yield chunk


async def read_lines(*chunks: str) -> list[str]:
    return [line async for line in sse.lines(chunked(*chunks))]


@pytest.mark.parametrize(
    "chunks",
    [
        ("a\r\nb\rc\nd\n",),
        ("a\r", "\nb\r", "c\n", "d\n"),  # a CR LF split between chunks is one line end
        ("a", "\r\n", "b", "\r", "c", "\n", "d", "\n"),
        ("a\r\nb\rc\nd\n", "unterminated"),  # an unfinished last line is not a line
    ],
)
async def test_lines_end_at_cr_lf_cr_or_lf(chunks: tuple[str, ...]) -> None:
    assert await read_lines(*chunks) == ["a", "b", "c", "d"]


async def test_other_unicode_line_breaks_are_text() -> None:
    odd = "x\u2028\u2029\u0085\x1c\x1d\x1e\x0b\x0cy"
    assert await read_lines(f"data: {odd}\n") == [f"data: {odd}"]
    assert sse.lines_of(f"{odd}\r\n{odd}\n") == [odd, odd]
    assert sse.message("row", f"<td>{odd}</td>\n<td>2</td>") == (
        f"event: row\ndata: <td>{odd}</td>\ndata: <td>2</td>\n\n"
    )


async def test_messages_join_data_lines_and_skip_comments_ids_and_retry() -> None:
    stream = chunked(
        "retry: 1000\nevent: ready\ndata: {}\nid: 7\n\n",
        ": ping\n\n",
        'event: received\ndata:{"a":\ndata:  1}\n\n',
        "data: no event named\n\n",
    )
    assert [message async for message in sse.messages(stream)] == [
        sse.Message("ready", "{}"),
        sse.Message("", ""),  # a keep-alive
        sse.Message("received", '{"a":\n 1}'),
        sse.Message("", "no event named"),
    ]
