import pytest

from bot.outbound.formatting import open_fence_at_end, split_markdown


def test_short_text_is_one_piece() -> None:
    assert split_markdown("hello", 100) == ["hello"]


def test_cuts_at_paragraphs_within_limit() -> None:
    text = "\n\n".join(f"paragraph {i} " + "word " * 10 for i in range(40))
    pieces = split_markdown(text, 200)
    assert all(len(p) <= 200 for p in pieces)
    assert "".join(pieces) == text
    assert all(p.endswith("\n\n") for p in pieces[:-1])


def test_hard_cut_without_spaces() -> None:
    text = "x" * 1000
    pieces = split_markdown(text, 100)
    assert all(len(p) <= 100 for p in pieces)
    assert "".join(pieces) == text


def test_code_block_closed_and_reopened() -> None:
    code = "\n".join(f"    line_{i} = {i}" for i in range(200))
    text = "Here is code:\n\n```python\n" + code + "\n```\n\nDone."
    pieces = split_markdown(text, 500)
    assert len(pieces) > 3
    assert all(len(p) <= 500 for p in pieces)
    for piece in pieces:
        # every piece is balanced Markdown: no code block left open
        assert open_fence_at_end(piece) is None, piece
    for piece in pieces[1:-1]:
        assert piece.startswith("```python\n")
    # Every cut here falls after a line break, so each piece ends with the added "```" alone;
    # removing the added fences gives the original text back.
    rebuilt = pieces[0].removesuffix("```")
    for piece in pieces[1:]:
        body = piece.removeprefix("```python\n")
        rebuilt += body.removesuffix("```") if piece is not pieces[-1] else body
    assert rebuilt == text


def test_tilde_fence_and_longer_backtick_runs() -> None:
    text = "~~~~\n" + "a ```b``` c\n" * 100 + "~~~~\nafter"
    pieces = split_markdown(text, 300)
    assert all(open_fence_at_end(p) is None for p in pieces)
    assert all(p.startswith("~~~~\n") for p in pieces[:-1])


def test_prefix_stable_as_text_grows() -> None:
    text = "```\n" + "\n".join(f"row {i}" for i in range(3000)) + "\n```\nend"
    full = split_markdown(text, 1000)
    for length in range(2000, len(text), 977):
        partial = split_markdown(text[:length], 1000)
        assert partial[:-1] == full[: len(partial) - 1]


@pytest.mark.parametrize("limit", [64, 100, 12_000])
def test_pieces_respect_limit(limit: int) -> None:
    text = ("```js\n" + "let a = 1;\n" * 50 + "```\n" + "prose " * 80 + "\n") * 30
    assert all(len(p) <= limit for p in split_markdown(text, limit))


def test_open_fence_at_end() -> None:
    assert open_fence_at_end("```py\nx") is not None
    assert open_fence_at_end("```py\nx\n```") is None
    assert open_fence_at_end("inline ```code``` here") is None
