"""Generated blocks of the README: text between an HTML-comment begin marker and an end marker."""
from pathlib import Path


def replace_block(readme: Path, block: str, begin: str, end: str) -> None:
    """Put ``block`` (which starts with ``begin`` and ends with ``end``) in place of the README's
    block between those markers, or append it when the README has none."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    readme.write_text(text, encoding="utf-8")
