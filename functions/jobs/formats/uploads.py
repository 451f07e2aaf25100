"""Opening an uploaded file safely: its size checked against `maxBytes`, a ZIP's entries against bombs (declared
sizes, compression ratio and the bytes actually inflated) and path traversal names."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import IO

from functions.jobs.formats.limits import ImportLimits
from shared.errors import ValidationFailed

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_READ_CHUNK = 1024 * 1024
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def upload_size(upload: IO[bytes], limits: ImportLimits) -> int:
    """The upload's size in bytes, refused over `max_bytes`; the file is left at its start."""
    upload.seek(0, io.SEEK_END)
    size = upload.tell()
    upload.seek(0)
    if size > limits.max_bytes:
        raise ValidationFailed(
            f"The file is {size} bytes, over the {limits.max_bytes} bytes an import may be", code="import_too_large"
        )
    if size == 0:
        raise ValidationFailed("The file is empty", code="import_empty")
    return size


def looks_like_zip(upload: IO[bytes]) -> bool:
    """Whether the upload starts as a ZIP does; the file is left at its start."""
    upload.seek(0)
    head = upload.read(4)
    upload.seek(0)
    return head in (ZIP_MAGIC, EMPTY_ZIP_MAGIC)


def is_safe_entry_name(name: str) -> bool:
    """A relative POSIX path with no `..`, no drive and no backslash: a name that cannot climb out of a folder."""
    if not name or "\\" in name or name.startswith("/") or "\x00" in name:
        return False
    path = PurePosixPath(name)
    return not any(part in ("..", "") for part in path.parts) and ":" not in path.parts[0]


class _CountedEntry(io.RawIOBase):
    """One entry's inflated bytes, refused as soon as more have been read than its own cap or the archive's
    remaining budget allows: the count is of bytes actually produced, whatever the headers declared."""

    def __init__(self, inner: IO[bytes], name: str, entry_cap: int, budget: UnpackBudget) -> None:
        self._inner = inner
        self._name = name
        self._entry_cap = entry_cap
        self._budget = budget
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as error:
            raise ValidationFailed(f"The archive entry {self._name} is corrupt", code="archive_corrupt") from error
        self._read += len(data)
        if self._read > self._entry_cap:
            raise ValidationFailed(
                f"The archive entry {self._name} unpacks to more than {self._entry_cap} bytes", code="archive_too_large"
            )
        self._budget.spend(len(data))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


class UnpackBudget:
    """The bytes all the entries read from one archive may inflate to, together."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.spent = 0

    def spend(self, count: int) -> None:
        self.spent += count
        if self.spent > self.total:
            raise ValidationFailed(f"The archive unpacks to more than {self.total} bytes", code="archive_too_large")


class SafeZip:
    """A ZIP upload whose directory has been checked: the entries with safe names, each under the caps."""

    def __init__(self, upload: IO[bytes], limits: ImportLimits) -> None:
        upload_size(upload, limits)
        try:
            self._zip = zipfile.ZipFile(upload)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ValidationFailed("The file is not a readable ZIP archive", code="not_a_zip") from error
        self._limits = limits
        self.budget = UnpackBudget(limits.max_unpacked_bytes)
        infos = self._zip.infolist()
        if len(infos) > limits.max_entries:
            raise ValidationFailed(
                f"The archive holds more than {limits.max_entries} entries", code="archive_too_large"
            )
        self.entries: dict[str, zipfile.ZipInfo] = {}
        declared = 0
        for info in infos:
            if info.is_dir() or not is_safe_entry_name(info.filename):
                continue  # a traversal name is never read, so it can neither be written nor shadow a real entry
            self._check_declared(info)
            declared += info.file_size
            self.entries.setdefault(info.filename, info)
        if declared > limits.max_unpacked_bytes:
            raise ValidationFailed(
                f"The archive unpacks to more than {limits.max_unpacked_bytes} bytes", code="archive_too_large"
            )

    def _check_declared(self, info: zipfile.ZipInfo) -> None:
        limits = self._limits
        if info.flag_bits & 0x1:
            raise ValidationFailed("The archive is encrypted", code="archive_unsupported")
        if info.compress_type not in _METHODS:
            # bzip2 and LZMA reach ratios no text has; stored and deflate are what exports use
            raise ValidationFailed(
                f"The archive entry {info.filename} uses a compression other than deflate", code="archive_unsupported"
            )
        if info.file_size > limits.max_entry_bytes:
            raise ValidationFailed(
                f"The archive entry {info.filename} unpacks to more than {limits.max_entry_bytes} bytes",
                code="archive_too_large",
            )
        if info.file_size > limits.max_ratio * max(info.compress_size, 1) and info.file_size > _READ_CHUNK:
            raise ValidationFailed(
                f"The archive entry {info.filename} is compressed over {limits.max_ratio} times: refused as a ZIP bomb",
                code="archive_too_large",
            )

    def restart_budget(self) -> None:
        """Starts counting inflated bytes afresh: for a second pass over the same entries."""
        self.budget = UnpackBudget(self._limits.max_unpacked_bytes)

    def find(self, basename: str) -> str | None:
        """The shallowest entry called `basename` (at the root, or in the one folder an export unpacks to)."""
        matches = [name for name in self.entries if PurePosixPath(name).name == basename]
        return min(matches, key=lambda name: (name.count("/"), name)) if matches else None

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """The entry's bytes, buffered, counted against the caps as they inflate."""
        info = self.entries[name]
        try:
            inner = self._zip.open(info)
        except (zipfile.BadZipFile, NotImplementedError, OSError) as error:
            raise ValidationFailed(f"The archive entry {name} cannot be read", code="archive_corrupt") from error
        counted = _CountedEntry(inner, name, self._limits.max_entry_bytes, self.budget)
        reader = io.BufferedReader(counted, buffer_size=_READ_CHUNK)
        try:
            yield reader
        finally:
            reader.close()

    def close(self) -> None:
        self._zip.close()
