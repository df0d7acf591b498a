# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""S3 multipart uploads read from a file, never from memory: each part is a window of the file that
botocore reads, and reads again on a retry, as it sends it; so memory stays flat whatever the part
size and the number of parts in flight. One sender serves two uploads: a finished file (``put``),
and a file still being written (a backup's db file, whose upload overlaps the dump:
:class:`GrowingUpload`), which also serves the members of a directory-format dump, each sealed
while pg_dump writes the others: their uploads share one :class:`UploadPool`."""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, List, Optional

MIB = 1 << 20
PART_SIZE = 8 * MIB  # S3 parts: at least 5 MiB
PARTS_IN_FLIGHT = 2  # parts uploaded at once (windows of the file: no part is held in memory)
MAX_PARTS = 10000
ABORT_WAIT = 10.0  # seconds an abort waits for a part on its way (a storage that stopped answering)


def composite_sha256(part_digests: List[bytes]) -> str:
    """The checksum S3 reports for a multipart upload with SHA256 parts: sha256 of the parts'
    sha256 digests, base64, then ``-`` and the number of parts. Pure."""
    whole = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(whole).decode()}-{len(part_digests)}"


def part_size_for(size: int, minimum: int = PART_SIZE) -> int:
    """A part size that keeps a file of known size within S3's 10,000 parts, in whole MiB. Pure."""
    needed = -(-size // MAX_PARTS)
    return max(minimum, -(-needed // MIB) * MIB)


def growing_part_size(number: int, minimum: int = PART_SIZE) -> int:
    """The size of part ``number`` (from 1) of a file whose final size is unknown while it is sent:
    ``minimum`` for the first thousand parts, doubled every thousand after, so that 10,000 parts hold
    over 8 TiB at 8 MiB and no part passes S3's 5 GiB. Pure."""
    return minimum << min((number - 1) // 1000, 9)


class FileWindow:
    """``length`` bytes of an open file from ``start``, as the file object botocore sends: read,
    seek and tell (a retry seeks back), and len. No fileno, so nothing takes the whole file's size."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._start, self._length, self._position = fd, start, length, 0

    def __len__(self) -> int:
        return self._length

    def read(self, amount: Optional[int] = -1) -> bytes:
        left = self._length - self._position
        wanted = left if amount is None or amount < 0 else min(amount, left)
        data = os.pread(self._fd, wanted, self._start + self._position) if wanted else b""
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = max(0, min(self._length, base + offset))
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        pass  # the file is the sender's


class PartSender:
    """The parts of one multipart upload, sent in order from windows of ``fd``, ``in_flight`` at a
    time. The windows are read once here, in order, for each part's sha256 (sent with the part: the
    server checks it) and the whole file's, then again by botocore as it sends them."""

    def __init__(
        self,
        upload_part: Callable[[int, FileWindow, str], Dict[str, Any]],
        fd: int,
        in_flight: int = PARTS_IN_FLIGHT,
        slots: Optional[threading.Semaphore] = None,
    ) -> None:
        self._upload_part = upload_part
        self._slots = slots  # parts in flight shared with other uploads (UploadPool), on top of this one's ``in_flight``
        self._fd = fd
        self._in_flight = in_flight
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="pgdrill-upload")
        self._waiting: Deque[Future] = collections.deque()
        self.parts: List[Dict[str, Any]] = []
        self.digests: List[bytes] = []
        self.whole = hashlib.sha256()
        self.sent = 0

    def send(self, length: int) -> None:
        """Send the next ``length`` bytes of the file as the next part (waits while ``in_flight``
        parts are on their way)."""
        part = hashlib.sha256()
        offset = self.sent
        while offset < self.sent + length:
            chunk = os.pread(self._fd, min(MIB, self.sent + length - offset), offset)
            if not chunk:
                raise OSError(f"the file ended at byte {offset}, before the {length} bytes of part {len(self.digests) + 1}")
            part.update(chunk)
            self.whole.update(chunk)
            offset += len(chunk)
        self.digests.append(part.digest())
        if len(self._waiting) >= self._in_flight:
            self.parts.append(self._waiting.popleft().result())
        checksum = base64.b64encode(part.digest()).decode()
        slots = self._slots
        if slots is not None:
            slots.acquire()  # a slot shared with the other uploads, given back when the part is done (or cancelled)
        future = self._pool.submit(self._upload_part, len(self.digests), FileWindow(self._fd, self.sent, length), checksum)
        if slots is not None:
            future.add_done_callback(lambda _: slots.release())
        self._waiting.append(future)
        self.sent += length

    def finish(self) -> List[Dict[str, Any]]:
        """Wait for every part; their list, for CompleteMultipartUpload."""
        while self._waiting:
            self.parts.append(self._waiting.popleft().result())
        self._pool.shutdown()
        return self.parts

    def cancel(self, timeout: float = ABORT_WAIT) -> bool:
        """Drop the parts not yet started and wait up to ``timeout`` seconds for those on their way;
        True when none is left running (the upload may be aborted then)."""
        waiting = list(self._waiting)
        for future in waiting:
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        concurrent.futures.wait(waiting, timeout=timeout)
        return self.idle

    @property
    def idle(self) -> bool:
        return all(future.done() for future in self._waiting)


class UploadPool:
    """What many uploads share (a directory dump's members, each sealed while pg_dump writes the
    others): ``in_flight`` workers, each running one upload, and ``in_flight`` parts in flight across
    all of them (one upload alone may use them all)."""

    def __init__(self, in_flight: int = PARTS_IN_FLIGHT) -> None:
        self.workers = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="pgdrill-member-upload")
        self.slots = threading.BoundedSemaphore(in_flight)

    def shutdown(self) -> None:
        """The uploads waiting for a worker never begin."""
        self.workers.shutdown(wait=False, cancel_futures=True)


class GrowingUpload:
    """The multipart upload of a file while it is written: parts go up as the writer fills them
    (:meth:`grew`), from a background thread; :meth:`ended` gives the final size and sha256 (the
    last part goes up then); :meth:`wait` returns the parts once all are sent, after checking that
    the bytes sent are the file's (size and sha256). The writer never waits for the upload, and a
    failed upload never fails the writer: :meth:`wait` raises its error for the caller to judge.

    ``begin`` starts the upload (its id), ``upload_part`` sends a part; both are the backend's.
    With a ``pool`` (a sealed member of a directory dump, ended at once), the upload runs as one of
    the pool's tasks, its parts in flight bounded with those of the pool's other uploads; the file
    is opened when its turn comes (``path`` relative to ``dir_fd``, which follows its directory's
    rename), so the members waiting for a worker hold no file open."""

    def __init__(
        self,
        path: str,
        begin: Callable[[], str],
        upload_part: Callable[[str, int, FileWindow, str], Dict[str, Any]],
        pool: Optional[UploadPool] = None,
        dir_fd: Optional[int] = None,
    ) -> None:
        self._path, self._dir_fd = path, dir_fd
        self._fd = -1 if pool else self._open()  # a file being written is renamed by its writer: opened now
        self._fd_lock = threading.Lock()
        self._begin = begin
        self._upload_part = upload_part
        self._slots = pool.slots if pool else None
        self._changed = threading.Condition()
        self._written = 0
        self._final: Optional[int] = None
        self._sha256: Optional[str] = None
        self._stopped = False
        self.upload_id: Optional[str] = None
        self.sender: Optional[PartSender] = None
        self.error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._task: Optional[Future] = None
        if pool is not None:
            self._task = pool.workers.submit(self._run)
        else:
            self._thread = threading.Thread(target=self._run, name="pgdrill-growing-upload", daemon=True)
            self._thread.start()

    def _open(self) -> int:
        return os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0), dir_fd=self._dir_fd)

    @property
    def final(self) -> "tuple[int, str]":
        """The file's size and sha256, as :meth:`ended` gave them."""
        if self._final is None or self._sha256 is None:
            raise RuntimeError("the upload beside the dump was asked for the file's size before ended() gave it")
        return self._final, self._sha256

    def grew(self, size: int) -> None:
        """The file now holds ``size`` bytes."""
        with self._changed:
            self._written = size
            self._changed.notify()

    def ended(self, size: int, sha256: str) -> None:
        """The file is closed at ``size`` bytes, whose sha256 the writer computed."""
        with self._changed:
            self._written, self._final, self._sha256 = size, size, sha256
            self._changed.notify()

    def _next_part(self, sent: int, number: int) -> Optional[int]:
        """The length of the next part once it is written whole (the last: once the file ended);
        None when nothing is left to send, or the upload was stopped."""
        size = growing_part_size(number)
        with self._changed:
            while not self._stopped:
                if self._final is not None and sent >= self._final:
                    return None
                if self._written - sent >= size or self._final is not None:
                    return min(size, self._written - sent)
                self._changed.wait()
        return None

    def _run(self) -> None:
        try:
            if self._stopped:
                return
            if self._fd < 0:
                self._fd = self._open()
            self.upload_id = upload_id = self._begin()
            sender = self.sender = PartSender(
                lambda number, window, checksum: self._upload_part(upload_id, number, window, checksum), self._fd, slots=self._slots
            )
            while True:
                length = self._next_part(sender.sent, len(sender.digests) + 1)
                if length is None:
                    break
                sender.send(length)
            if not self._stopped:
                sender.finish()
                self._close_fd()  # every part sent: nothing reads the file any more
        except BaseException as exc:  # noqa: BLE001 - raised by wait()
            self.error = exc

    def _alive(self) -> bool:
        return self._thread.is_alive() if self._thread is not None else not (self._task is None or self._task.done())

    def _join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        elif self._task is not None:
            concurrent.futures.wait([self._task], timeout=timeout)

    def wait(self) -> "tuple[List[Dict[str, Any]], List[bytes]]":
        """Once :meth:`ended`: wait for every part; (the parts, their sha256 digests). Raises the
        upload's failure, or ValueError when the bytes sent are not the file the writer wrote."""
        while self._alive():
            self._join(1.0)  # in steps: a signal (SIGTERM, max_runtime) still gets through
        if self.error is not None:
            raise self.error
        if self.sender is None or self._final is None:
            raise RuntimeError("the upload beside the dump was waited for before it began or before ended() gave the file's size")
        if self.sender.sent != self._final or self.sender.whole.hexdigest() != self._sha256:
            raise ValueError(
                f"the {self.sender.sent} bytes sent hash to {self.sender.whole.hexdigest()}; the file has {self._final} bytes of sha256 {self._sha256}"
            )
        return self.sender.parts, self.sender.digests

    def stop(self) -> bool:
        """Stop sending; True when no part is still on its way (the upload may be aborted now). A part
        stuck on a storage that stopped answering is waited for ``ABORT_WAIT`` seconds at most."""
        with self._changed:
            self._stopped = True
            self._changed.notify()
        if self._task is not None:
            self._task.cancel()  # still waiting for a worker: it never begins
        self._join(ABORT_WAIT)
        if self.sender is not None:
            return self.sender.cancel(ABORT_WAIT) and not self._alive()
        return not self._alive()

    def _close_fd(self) -> None:
        with self._fd_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def close(self) -> None:
        """Close the file, unless a part stuck on its way may still read it."""
        if not self._alive() and (self.sender is None or self.sender.idle):
            self._close_fd()
