"""The elements of a large top-level JSON array, one at a time: the array is scanned in chunks for its element
boundaries (strings, escapes and nesting tracked), so memory holds one element, never the whole file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from shared.errors import ValidationFailed

_CHUNK = 1024 * 1024
_OUTSIDE_STRING = re.compile(rb'[\[\]{}",]')
_INSIDE_STRING = re.compile(rb'["\\]')
_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True)
class OversizedElement:
    """An element longer than the cap: skipped unread; `size` is how many bytes it spans."""

    index: int
    size: int


def _not_json(reason: str) -> ValidationFailed:
    return ValidationFailed(f"The file is not valid JSON: {reason}", code="not_json")


def array_elements(stream: IO[bytes], *, max_element_bytes: int) -> Iterator[tuple[int, Any] | OversizedElement]:
    """Each element of the JSON array `stream` holds, as `(index, value)`, or an `OversizedElement` for one over
    `max_element_bytes`. Raises ValidationFailed (`not_json`, or `wrong_shape` when the file is JSON but not an
    array) as soon as the file stops being what it claims; call it through once before trusting any element."""
    scanner = _ArrayScanner(max_element_bytes)
    while chunk := stream.read(_CHUNK):
        yield from scanner.feed(chunk)
    scanner.finish()


class _ArrayScanner:
    def __init__(self, max_element_bytes: int) -> None:
        self._max = max_element_bytes
        self._started = False  # the opening `[` was seen
        self._ended = False  # the closing `]` was seen
        self._depth = 0  # nesting inside the array: 0 between elements
        self._in_string = False
        self._escape = False  # the chunk ended just after a backslash inside a string
        self._element = bytearray()
        self._element_size = 0
        self._index = 0
        self._seen_comma = False

    def feed(self, chunk: bytes) -> Iterator[tuple[int, Any] | OversizedElement]:
        if not self._started:
            chunk = self._begin(chunk)
            if not chunk:
                return
        position = start = 0  # `start`: where the current element's part within this chunk begins
        end = len(chunk)
        while position < end:
            if self._ended:
                if chunk[position:].strip(_WHITESPACE):
                    raise _not_json("text after the end of the array")
                return
            if self._escape or self._in_string:
                position = self._through_string(chunk, position)
                continue
            match = _OUTSIDE_STRING.search(chunk, position)
            if match is None:
                break
            token = match.group()
            position = match.end()
            if self._depth == 0 and token in (b",", b"]"):
                self._keep(chunk[start : match.start()])
                start = position
                self._ended = token == b"]"
                element = self._take(last=self._ended)
                if element is not None:
                    yield element
            else:
                self._nest(token)
        if not self._ended:
            self._keep(chunk[start:end])

    def _begin(self, chunk: bytes) -> bytes:
        """The chunk past the opening `[` (empty while only whitespace has come)."""
        stripped = chunk.lstrip(_WHITESPACE)
        if stripped[:3] == b"\xef\xbb\xbf":
            stripped = stripped[3:].lstrip(_WHITESPACE)
        if not stripped:
            return b""
        if stripped[:1] != b"[":
            raise self._shape_error(stripped[:5])
        self._started = True
        return stripped[1:]

    def _through_string(self, chunk: bytes, position: int) -> int:
        """Where the scan goes on inside a string: past an escaped byte, or past the closing quote."""
        if self._escape:
            self._escape = False
            return position + 1
        match = _INSIDE_STRING.search(chunk, position)
        if match is None:
            return len(chunk)
        if match.group() == b"\\":
            self._escape = match.end() == len(chunk)  # the escaped byte comes with the next chunk
            return min(match.end() + 1, len(chunk))
        self._in_string = False
        return match.end()

    def _nest(self, token: bytes) -> None:
        if token == b'"':
            self._in_string = True
        elif token in (b"[", b"{"):
            self._depth += 1
        elif token in (b"]", b"}"):
            if self._depth == 0:
                raise _not_json("a closing bracket without its opening one")
            self._depth -= 1

    def _keep(self, part: bytes) -> None:
        self._element_size += len(part)
        if self._element_size <= self._max:
            self._element += part

    def _take(self, *, last: bool) -> tuple[int, Any] | OversizedElement | None:
        size, raw = self._element_size, bytes(self._element).strip(_WHITESPACE)
        self._element.clear()
        self._element_size = 0
        if size > self._max:
            element: tuple[int, Any] | OversizedElement = OversizedElement(self._index, size)
        elif not raw:
            if last and self._index == 0 and not self._seen_comma:
                return None  # `[]`
            raise _not_json("an empty element in the array")
        else:
            try:
                element = (self._index, json.loads(raw))
            except (ValueError, RecursionError) as error:
                raise _not_json(f"element {self._index} does not parse") from error
        self._seen_comma = not last
        self._index += 1
        return element

    def finish(self) -> None:
        if not self._started:
            raise _not_json("the file holds only whitespace")
        if not self._ended:
            raise _not_json("the array never ends (the file is cut short)")

    @staticmethod
    def _shape_error(head: bytes) -> ValidationFailed:
        if head[:1] in (b"{", b'"', b"-") or head[:1].isdigit() or head.startswith((b"true", b"false", b"null")):
            return ValidationFailed("The file is JSON but not a list of conversations", code="wrong_shape")
        return _not_json("it does not start as JSON does")
