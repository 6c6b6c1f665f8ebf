"""Big buffers recycled within one process.

A billed run writes about 1.1 GB of fresh arrays on the 20M-call sample (the
call records, their order, the ledger). Fresh memory is not free: the kernel
clears every page on first touch (on this machine 0.1-0.5 s a run, varying
with how long ago the pages were given back), and numpy hands big arrays
back to the system as soon as they die. A run bills its calls in stretches
(ratecore.run), and a process may bill several runs: here each stretch and
run writes into the pages the one before it used, once nothing holds them.

A buffer is lent as a numpy array whose memory is a slice of a kept block.
The block is lent again only after that array and everything made from it
(views, Arrow buffers and arrays over it) are gone: numpy roots every view
in a memoryview of the block, and a finalizer on that memoryview marks the
block free. Nothing depends on reference counts.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

#: Smaller arrays come from malloc's heap, which already reuses its memory.
MIN_BYTES = 8 << 20
#: A new block is this much bigger than asked for (1/HEADROOM more).
HEADROOM = 4
#: Lent arrays start on a cache line (malloc's big blocks start 16 bytes
#: into a page, which split every other 32-byte call record over two lines).
ALIGN = 64


class Recycler:
    """Lends big uninitialised arrays (like ``np.empty``) from kept blocks."""

    def __init__(self, min_bytes: int = MIN_BYTES):
        self.min_bytes = min_bytes
        self._blocks: dict[int, np.ndarray] = {}
        self._lent: set[int] = set()
        self._next = 0
        self._lock = threading.Lock()

    def empty(self, shape, dtype) -> np.ndarray:
        """An uninitialised array, from a free kept block when one is big
        enough (and not more than twice too big)."""
        dtype = np.dtype(dtype)
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        count = int(np.prod(shape, dtype=np.int64))
        size = count * dtype.itemsize
        if size < self.min_bytes:
            return np.empty(shape, dtype)
        with self._lock:
            free = [k for k in self._blocks if k not in self._lent]
            fits = [k for k in free if size + ALIGN <= len(self._blocks[k]) <= 2 * size + ALIGN]
            if fits:
                key = min(fits, key=lambda k: len(self._blocks[k]))
            else:
                # free blocks too small for this are given back, not hoarded
                for k in free:
                    if len(self._blocks[k]) < size:
                        del self._blocks[k]
                key = self._next
                self._next += 1
                # room to grow: the next stretch or run is rarely the same
                # size, and pages never touched cost no memory
                self._blocks[key] = np.empty(size + size // HEADROOM + ALIGN, np.uint8)
            self._lent.add(key)
            block = self._blocks[key]
            at = _to_line(block)
            arr = np.frombuffer(memoryview(block)[at:at + size], dtype, count)
            weakref.finalize(arr.base, self._lent.discard, key)
        return arr.reshape(shape)

    def kept_bytes(self) -> int:
        """Bytes held in blocks, lent or free."""
        return sum(len(b) for b in self._blocks.values())

    def release(self) -> None:
        """Give the free blocks back (lent ones stay until their arrays die)."""
        with self._lock:
            for k in [k for k in self._blocks if k not in self._lent]:
                del self._blocks[k]


#: The process's recycler: billing takes its call records, their order, its
#: ledger buffers and the rated columns it gathers from it.
RECYCLER = Recycler()


def _to_line(block: np.ndarray) -> int:
    """Bytes from the start of `block` to its first cache line."""
    return -block.ctypes.data % ALIGN


def zeros_on_line(n: int, dtype) -> np.ndarray:
    """``np.zeros(n, dtype)`` starting on a cache line (not recycled: for
    small tables read at random, such as a rate book's nodes and rows)."""
    dtype = np.dtype(dtype)
    block = np.zeros(n * dtype.itemsize + ALIGN, np.uint8)
    at = _to_line(block)
    return block[at:at + n * dtype.itemsize].view(dtype)


def empty(shape, dtype) -> np.ndarray:
    """``np.empty`` from the process's :data:`RECYCLER`."""
    return RECYCLER.empty(shape, dtype)


def release() -> None:
    """Give back the memory the process's recycler keeps free."""
    RECYCLER.release()
