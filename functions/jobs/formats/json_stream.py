"""The elements of a large top-level JSON array, one at a time: each element is decoded by the standard JSON
decoder from a buffer that grows only until the element is whole, so memory holds one element (at most the cap
and a read chunk), never the whole file. An element over the cap is stepped over unparsed."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from shared.errors import ValidationFailed

_CHUNK = 1024 * 1024
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_OUTSIDE_STRING = re.compile(r'[\[\]{}"]')
_INSIDE_STRING = re.compile(r'["\\]')
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class OversizedElement:
    """An element longer than the cap: stepped over unparsed; `size` is at least the cap."""

    index: int
    size: int


def _not_json(reason: str) -> ValidationFailed:
    return ValidationFailed(f"The file is not valid JSON: {reason}", code="not_json")


def array_elements(stream: IO[bytes], *, max_element_bytes: int) -> Iterator[tuple[int, Any] | OversizedElement]:
    """Each element of the JSON array `stream` holds, as `(index, value)`, or an `OversizedElement` for one over
    `max_element_bytes` (counted in characters). Raises ValidationFailed (`not_json`, or `wrong_shape` when the
    file is JSON but not an array) as soon as the file stops being what it claims: read it through once before
    trusting any element."""
    return _ArrayReader(stream, max_element_bytes).elements()


class _ArrayReader:
    def __init__(self, stream: IO[bytes], max_element: int) -> None:
        self._stream = stream
        self._max = max_element
        self._text = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
        self._buffer = ""
        self._pos = 0
        self._dropped = 0  # characters decoded and dropped from the buffer's front
        self._eof = False

    def _more(self, at_least: int = _CHUNK) -> bool:
        """Reads on (at least `at_least` bytes, unless the file ends); False at the end of the file."""
        if self._eof:
            return False
        raw = self._stream.read(max(at_least, _CHUNK))
        try:
            text = self._text.decode(raw, final=not raw)
        except UnicodeDecodeError as error:
            raise _not_json("it is not UTF-8 text") from error
        self._eof = not raw
        del raw
        # what was decoded already is dropped in the same copy that appends the new text
        self._dropped += self._pos
        self._buffer, self._pos = self._buffer[self._pos :] + text, 0
        return True

    def _next_significant(self) -> str:
        """The next character that is not whitespace ('' at the end of the file), not consumed."""
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]  # `*` always matches
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._more():
                return ""

    def elements(self) -> Iterator[tuple[int, Any] | OversizedElement]:
        first = self._next_significant()
        if first != "[":
            raise self._shape_error()
        self._pos += 1
        index = 0
        if self._next_significant() == "]":
            self._pos += 1
        else:
            while True:
                yield self._element(index)
                index += 1
                separator = self._next_significant()
                self._pos += 1
                if separator == "]":
                    break
                if not separator:
                    raise _not_json("the array never ends (the file is cut short)")
                if separator != ",":
                    raise _not_json(f"element {index} is not followed by a comma or the end of the array")
        if self._next_significant():
            raise _not_json("text after the end of the array")

    def _element(self, index: int) -> tuple[int, Any] | OversizedElement:
        if not self._next_significant():
            raise _not_json("the array never ends (the file is cut short)")
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                if len(self._buffer) - self._pos > self._max:
                    return OversizedElement(index, self._skip_element())
                # doubling: the partial decodes of an element cost about one whole decode more
                if not self._more(len(self._buffer) - self._pos):
                    raise _not_json(f"element {index} does not parse") from error
                continue
            except RecursionError as error:
                raise _not_json(f"element {index} nests too deep") from error
            if end == len(self._buffer) and not self._eof:
                self._more()  # a number may go on in the next chunk
                continue
            if end - self._pos > self._max:
                size, self._pos = end - self._pos, end
                return OversizedElement(index, size)
            self._pos = end
            return index, value

    def _skip_element(self) -> int:
        """Steps over one element without parsing it (strings and nesting tracked); returns its length."""
        start = self._dropped + self._pos
        depth, in_string = 0, False
        while True:
            if self._pos >= len(self._buffer) and not self._more():
                raise _not_json("the array never ends (the file is cut short)")
            if in_string:
                in_string = self._through_string()
                continue
            match = _OUTSIDE_STRING.search(self._buffer, self._pos)
            if match is None:
                self._pos = len(self._buffer)
                continue
            token, self._pos = match.group(), match.end()
            if token == '"':
                in_string = True
            elif token in "[{":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return self._dropped + self._pos - start
                if depth < 0:
                    raise _not_json("a closing bracket without its opening one")

    def _through_string(self) -> bool:
        """Moves on inside a string; whether the scan is still inside it."""
        match = _INSIDE_STRING.search(self._buffer, self._pos)
        if match is None:
            self._pos = len(self._buffer)
            return True
        if match.group() == '"':
            self._pos = match.end()
            return False
        if match.end() == len(self._buffer):
            self._pos = match.start()  # the backslash waits, unconsumed, for the character it escapes
            if not self._more():
                raise _not_json("the array never ends (the file is cut short)")
            return True
        self._pos = match.end() + 1  # past the escaped character
        return True

    def _shape_error(self) -> ValidationFailed:
        head = self._buffer[self._pos : self._pos + 5]
        if head[:1] in ("{", '"', "-") or head[:1].isdigit() or head.startswith(("true", "false", "null")):
            return ValidationFailed("The file is JSON but not a list of conversations", code="wrong_shape")
        if not head:
            return _not_json("the file holds only whitespace")
        return _not_json("it does not start as JSON does")
