"""Stream COPY data from one connection into another, in bounded memory.

psycopg2 pushes COPY TO STDOUT output into a file-like ``write()``, one row
per call, and pulls COPY FROM STDIN input from a file-like ``read()``.  The
source side runs in a helper thread writing into a CopyPipe; the target side
reads from it in the calling thread.  The pipe collects rows into chunks and
holds at most ``max_chunks`` of them, so a batch of any size passes through in
a few MiB (one row larger than a chunk is passed on as it is).

The driver passes the COPY stream through unread, so both ends must speak
the same format: binary when source and target run the same PostgreSQL
major (no timestamp or number is printed on the source and parsed again on
the target: ~20% less CPU for the COPY on either side, see
docs/benchmark.md), text otherwise, because a binary COPY is only promised
to read back on the major that wrote it.  Text fields pass the sessions'
client_encoding conversion (and its check) in both formats alike.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Protocol

CHUNK_BYTES = 256 * 1024
MAX_CHUNKS = 8
_END = b""


def copy_binary(source_version: int, target_version: int) -> bool:
    """Whether to COPY a batch in binary between servers of these
    versions (psycopg2's ``connection.server_version``, e.g. 150020):
    only when both run the same major."""
    return source_version // 10000 == target_version // 10000


def describe_copy_format(source_version: int, target_version: int) -> str:
    """The format, and why, for the log line at connect."""
    src, dst = source_version // 10000, target_version // 10000
    if copy_binary(source_version, target_version):
        return f"binary (source and target both PostgreSQL {src})"
    return f"text (source PostgreSQL {src}, target PostgreSQL {dst}: binary needs the same major)"


class _Aborted(Exception):
    """The other side of the pipe has failed."""


class CopyPipe:
    """*on_first_chunk* is called once the reader has passed the first chunk
    on and asks for more (the failpoint ``mid_copy``)."""

    def __init__(self, chunk_bytes: int = CHUNK_BYTES, max_chunks: int = MAX_CHUNKS,
                 on_first_chunk: Callable[[], None] | None = None) -> None:
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=max_chunks)
        self._buf = bytearray()
        self._chunk_bytes = chunk_bytes
        self._aborted = threading.Event()
        self._on_first_chunk = on_first_chunk
        self._chunks_read = 0
        self.bytes_written = 0

    # writer side (source thread) ---------------------------------------
    def write(self, data: bytes) -> int:
        self._buf += data
        if len(self._buf) >= self._chunk_bytes:
            self._put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def close_writer(self, error: BaseException | None = None) -> None:
        """End the stream: flush, then the reader sees EOF (or *error*)."""
        try:
            if error is None:
                if self._buf:
                    self._put(bytes(self._buf))
                    self._buf.clear()
                self._put(_END)
            else:
                self._put(error)
        except _Aborted:
            pass

    def _put(self, item: bytes | BaseException) -> None:
        self.bytes_written += len(item) if isinstance(item, bytes) else 0
        while True:
            if self._aborted.is_set():
                raise _Aborted("the target side of the COPY stream stopped")
            try:
                self._chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # reader side (target, calling thread) -------------------------------
    def read(self, size: int = -1) -> bytes:
        # the reader asks again only after it has passed the previous chunk
        # on: on the second call the target holds part of the batch
        if self._chunks_read == 1 and self._on_first_chunk is not None:
            self._on_first_chunk()
        item = self._chunks.get()
        if isinstance(item, BaseException):
            raise item
        self._chunks_read += 1
        return item

    def abort(self) -> None:
        """The reader gave up: unblock and stop the writer."""
        self._aborted.set()


class CopyOut(Protocol):
    def __call__(self, sink: CopyPipe) -> None: ...


class CopyIn(Protocol):
    def __call__(self, source: CopyPipe) -> int: ...


class StreamError(Exception):
    """The source side of the stream failed; ``__cause__`` is its error."""


def pump(copy_out: CopyOut, copy_in: CopyIn, pipe: CopyPipe | None = None) -> int:
    """Run *copy_out* (writing into a pipe) in a thread and *copy_in* (reading
    from it) here.  Returns what *copy_in* returns (rows loaded).  An error on
    either side stops both and is raised here; a source-side error comes as
    StreamError."""
    pipe = pipe or CopyPipe()
    source_error: list[BaseException] = []

    def run_source() -> None:
        try:
            copy_out(pipe)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            source_error.append(exc)
            pipe.close_writer(StreamError(f"reading the batch from the source failed: {exc}"))
        else:
            pipe.close_writer()

    thread = threading.Thread(target=run_source, name="qsplit-copy-out", daemon=True)
    thread.start()
    try:
        rows = copy_in(pipe)
    except BaseException:
        pipe.abort()
        thread.join()
        if source_error and not isinstance(source_error[0], _Aborted):
            raise StreamError(f"reading the batch from the source failed: {source_error[0]}") from source_error[0]
        raise
    thread.join()
    if source_error:
        raise StreamError(f"reading the batch from the source failed: {source_error[0]}") from source_error[0]
    return rows
