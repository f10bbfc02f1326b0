"""The code blocks of an assistant reply, as the chat panel shows and copies them. Pure: used
by the assistant service (hashes in ``assistant_response`` events, paste provenance) and by
the synthetic data generator."""

from __future__ import annotations

import re

CODE_BLOCK_RE = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)```", re.DOTALL)
_FENCE_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$")


def reply_code_blocks(reply: str) -> list[str]:
    """The fenced code blocks of a reply, each as the chat panel's Copy button copies it
    (frontend/src/markdown.js: body lines without the fence's indent, each ending in a
    newline; an unclosed fence runs to the end) and as CODE_BLOCK_RE finds it."""
    blocks = list(CODE_BLOCK_RE.findall(reply))
    lines = reply.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        i += 1
        if opening is None:
            continue
        indent, fence = len(opening.group(1)), opening.group(2)
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body = []
        while i < len(lines) and not close.match(lines[i]):
            line = lines[i]
            strip = len(line) - len(line.lstrip(" "))
            body.append(line[min(strip, indent) :])
            i += 1
        i += 1
        blocks.append("".join(f"{line}\n" for line in body))
    return blocks
