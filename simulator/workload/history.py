"""Operation histories: the record of what clients asked and what they were told.

One JSON object a line, Jepsen's shape::

    {"index": 0, "time": 1200000, "type": "invoke", "process": 3, "f": "write", "value": ["k1", 4]}
    {"index": 1, "time": 3400000, "type": "ok",     "process": 3, "f": "write", "value": ["k1", 4]}

``time`` is true simulated time in integer ns. Each completion (``ok``, ``fail``: definitely did
not happen, ``info``: may or may not have happened) follows its invoke, and a process has at most
one operation outstanding; a process whose operation ended ``info`` is never used again.
"""

from __future__ import annotations

import json
import marshal
import weakref
from array import array
from itertools import chain, compress, repeat
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import orjson

TYPES = ("invoke", "ok", "fail", "info")
TYPE_CODE = {t: i for i, t in enumerate(TYPES)}
KEYS = ("index", "time", "type", "process", "f", "value")
ROWS_PER_CHUNK = 65_536  # events built as dicts at a time when a History is read in chunks
BUFFERED_EVENTS = 4_096  # events a History holds in its buffer before they go into the columns
# A History also keeps its events as dicts up to this many (about 150 MiB of them): a design's
# checkers and figures then iterate it as fast as the plain list they were written for. Past it
# the dicts are dropped and the columns alone hold the history (a long run in bounded memory).
DICTS_UP_TO = 500_000


class History:
    """A history held in columns: what a list of Jepsen-shaped dicts held, in a few dozen bytes an
    event instead of several hundred (a simulated hour of Raft at 1,000 ops/s is 7.2M events).

    Columns: ``time`` (int64), ``type`` (a byte: TYPES), ``process`` (int64), ``f`` (an index into
    the interned function names), ``value`` (the Python object, as given). ``index`` is the
    position. Operations are paired as they are appended, as :func:`pairs` pairs a list: an invoke
    opens its process, the next completion on that process closes it (a stray completion pairs
    with nothing). Paired columns: ``inv_at`` (the invoke's position, in invoke order) and
    ``done_at`` (the completion's position, -1 while it has none).

    It reads as the list of dicts it replaces: ``len``, iteration, ``h[i]`` and ``h[a:b]`` give
    dicts with the keys in KEYS order, and it compares equal to a list of the same dicts. Up to
    ``dicts_up_to`` events (DICTS_UP_TO) it keeps those dicts too, and hands them out; a longer
    history drops them and builds each dict on demand, a chunk of ROWS_PER_CHUNK at a time, so a
    pass over it never holds more than one chunk of dicts (changing one then changes nothing).
    The metrics and the linearizability checker read the columns in either case.
    """

    __slots__ = ("_time", "_type", "_process", "_f", "_value", "_f_names", "_f_code", "_inv_at", "_done_at", "_open",
                 "_dicts", "dicts_up_to", "buffered", "__weakref__")

    def __init__(self, events: Iterable[dict] = (), dicts_up_to: int | None = None):
        self.dicts_up_to = DICTS_UP_TO if dicts_up_to is None else dicts_up_to
        self._dicts: list[dict] | None = [] if self.dicts_up_to > 0 else None
        self._time = array("q")
        self._type = bytearray()
        self._process = array("q")
        self._f = array("I")
        self._value: list = []
        self._f_names: list = []
        self._f_code: dict = {}
        self._inv_at = array("q")
        self._done_at = array("q")
        self._open: dict = {}  # process -> its open operation's slot in inv_at
        self.buffered: list[tuple] = []  # events added, not yet in the columns: (time, type code, process, f, value)
        for ev in events:
            self._append(ev)
        self.flush()

    def add(self, time: int, type_code: int, process: int, f: Any, value: Any) -> None:
        """Append one event (``type_code`` indexes TYPES): the workload's path, one call an event. The
        event waits in ``buffered`` (the workload appends its tuples there itself) and reaches the
        columns in bulk, when anything reads the history or the buffer is long."""
        buf = self.buffered
        buf.append((time, type_code, process, f, value))
        if len(buf) >= BUFFERED_EVENTS:
            self.flush()

    def expect(self, events: int) -> None:
        """Told it will hold about ``events`` events, more than ``dicts_up_to``, the history drops its
        dicts now, rather than build them as it grows and drop them on the way (the cache preset's
        2M events built half a million for nothing). Reads give the same either way."""
        if self._dicts is not None and events > self.dicts_up_to:
            self._dicts = None

    def flush(self) -> None:
        """Move the buffered events into the columns (and the dicts), pairing them. Every reader calls
        it first; the workload calls it now and then, so the buffer stays short."""
        buf = self.buffered
        if not buf:
            return
        idx0 = len(self._type)
        times, types, procs, fs, values = zip(*buf)
        buf.clear()  # in place: the workload holds its append
        n = len(times)
        dicts = self._dicts
        if dicts is not None:
            keep = max(0, min(n, self.dicts_up_to - idx0))
            t = TYPES
            dicts.extend([{"index": i, "time": tm, "type": t[ty], "process": p, "f": f, "value": v}
                          for i, tm, ty, p, f, v in zip(range(idx0, idx0 + keep), times, types, procs, fs, values)])
            if keep < n:
                self._dicts = None  # long enough: from here on the columns alone hold it
        self._time.extend(times)
        self._type.extend(types)
        self._process.extend(procs)
        codes = list(map(self._f_code.get, fs))
        if None in codes:
            for i, (f, code) in enumerate(zip(fs, codes)):
                if code is None:
                    code = self._f_code.get(f)
                    if code is None:
                        code = self._f_code[f] = len(self._f_names)
                        self._f_names.append(f)
                    codes[i] = code
        self._f.extend(codes)
        self._value.extend(values)
        self._pair(idx0, types, procs)

    def _pair(self, idx0: int, types: tuple, procs: tuple) -> None:
        """Pair the events from ``idx0`` on (``types``, ``procs``: their type codes and processes), as
        :func:`pairs` does one by one: an invoke opens its process (an invoke still open there is
        left unpaired), a completion closes the process's open invoke if it has one. By numpy over
        the events sorted by process: within a process a completion pairs with the event just
        before it if that is an invoke; the first event of a process's run pairs with what was open
        before. The loop left is one step per process, not per event."""
        opened, inv_at, done_at = self._open, self._inv_at, self._done_at
        n = len(types)
        # the columns already hold them: copied out of their buffers (no view may outlive this)
        ty = np.frombuffer(self._type, dtype=np.uint8, offset=idx0).copy()
        pr = np.frombuffer(self._process, dtype=np.int64, offset=idx0 * 8).copy()
        is_inv = ty == 0
        base = len(inv_at)
        inv_pos = np.flatnonzero(is_inv)
        slot = np.full(n, -1, dtype=np.int64)  # an invoke's slot in inv_at, by position in the chunk
        slot[inv_pos] = np.arange(base, base + inv_pos.size)
        inv_at.extend((inv_pos + idx0).tolist())
        done_at.extend([-1] * inv_pos.size)
        order = np.argsort(pr, kind="stable")
        sp, s_inv, s_slot = pr[order], is_inv[order], slot[order]
        first = np.ones(n, dtype=bool)
        first[1:] = sp[1:] != sp[:-1]
        # a completion right after an invoke of its process, within the chunk
        inside = np.zeros(n, dtype=bool)
        inside[1:] = ~s_inv[1:] & s_inv[:-1] & ~first[1:]
        at = np.flatnonzero(inside)
        if at.size:
            view = np.frombuffer(done_at, dtype=np.int64)  # writes through to the array
            view[s_slot[at - 1]] = order[at] + idx0
            del view  # an array with a buffer exported cannot grow
        # each process's first event (a completion closes what was open before) and its last (what
        # stays open after)
        starts = np.flatnonzero(first)
        lasts = np.append(starts[1:] - 1, n - 1)
        pop = opened.pop
        for p, f_inv, f_at, l_inv, l_slot in zip(sp[starts].tolist(), s_inv[starts].tolist(),
                                                  (order[starts] + idx0).tolist(), s_inv[lasts].tolist(),
                                                  s_slot[lasts].tolist()):
            if not f_inv:
                was = pop(p, None)
                if was is not None:
                    done_at[was] = f_at
            if l_inv:
                opened[p] = l_slot
            else:
                pop(p, None)

    # The columns, whole: each read moves the buffered events in first (see _column below the class).
    time = type = process = f = value = f_names = inv_at = done_at = dicts = None  # replaced below

    def positions(self, type_name: str | None = None, fs: Iterable[Any] | None = None) -> list[int]:
        """The positions of the events of type ``type_name`` (one of TYPES; None: any) whose function
        is one of ``fs`` (None: any), ascending: found by numpy over the type and f columns, so a
        million-event history is searched in milliseconds rather than a Python loop's second."""
        self.flush()
        mask = None
        if type_name is not None:
            # copies (a view would pin the columns: a bytearray or array with an exported buffer
            # cannot grow, and the history may still be appended to)
            mask = np.frombuffer(bytes(self._type), dtype=np.uint8) == TYPE_CODE[type_name]
        if fs is not None:
            codes = [self._f_code[f] for f in fs if f in self._f_code]
            if not codes:
                return []
            fcol = np.array(self._f, dtype=np.uint32)
            fm = np.isin(fcol, codes) if len(codes) > 1 else fcol == codes[0]
            mask = fm if mask is None else mask & fm
        if mask is None:
            return list(range(len(self._type)))
        return np.flatnonzero(mask).tolist()

    def values(self, type_name: str, f: Any):
        """The values of the events of type ``type_name`` (one of TYPES) whose function is ``f``, in order,
        read from the columns: no dicts built, however long the history."""
        return map(self._value.__getitem__, self.positions(type_name, (f,)))

    def only(self, fs: Iterable[Any]) -> list[dict]:
        """The events whose function is one of ``fs``, as dicts (their ``index`` their position in the
        whole history), in order: what a checker of one kind of operation needs, without building
        a dict for each of the others. Paired by process, they pair as in the whole history when
        each completion carries its invoke's f, as the workload records them (a process has one
        operation outstanding at a time, so its invoke's completion is its next event in the
        subset too)."""
        self.flush()
        t, fn, tm, ty, pr, val = TYPES, self._f_names, self._time, self._type, self._process, self._value
        return [{"index": i, "time": tm[i], "type": t[ty[i]], "process": pr[i], "f": fn[self._f[i]],
                 "value": val[i]} for i in self.positions(None, fs)]

    def append(self, event: dict) -> None:
        """Append a Jepsen-shaped dict; its ``index`` must be its position, its time and process ints."""
        self._append(event)
        self.flush()  # a time or process that is no int fails here, not at some later read

    def _append(self, event: dict) -> None:
        if list(event) != list(KEYS) or event["index"] != len(self) or event["type"] not in TYPE_CODE:
            raise ValueError(f"a History event has the keys {KEYS} in order, index = its position and a type "
                             f"in {TYPES}: got {event!r}")
        self.add(event["time"], TYPE_CODE[event["type"]], event["process"], event["f"], event["value"])

    def __len__(self) -> int:
        return len(self._type) + len(self.buffered)

    def rows(self, lo: int, hi: int) -> list[dict]:
        """Events ``lo`` to ``hi`` (clipped) as fresh dicts."""
        self.flush()
        n = len(self._type)
        lo, hi = max(0, min(lo, n)), max(0, min(hi, n))
        if self._dicts is not None:
            return self._dicts[lo:hi]
        t, fn = TYPES, self._f_names
        return [{"index": i, "time": tm, "type": t[ty], "process": p, "f": fn[fc], "value": v}
                for i, tm, ty, p, fc, v in zip(range(lo, hi), self._time[lo:hi], self._type[lo:hi],
                                               self._process[lo:hi], self._f[lo:hi], self._value[lo:hi])]

    def chunks(self, size: int = ROWS_PER_CHUNK):
        """The events as lists of at most ``size`` dicts, in order."""
        self.flush()
        for lo in range(0, len(self._type), size):
            yield self.rows(lo, lo + size)

    def __iter__(self):
        self.flush()
        if self._dicts is not None:
            return iter(self._dicts)
        return (ev for chunk in self.chunks() for ev in chunk)

    def __getitem__(self, i):
        self.flush()
        if self._dicts is not None:
            return self._dicts[i]
        if isinstance(i, slice):
            lo, hi, step = i.indices(len(self._type))
            rows = self.rows(lo, hi) if step == 1 else [self[j] for j in range(lo, hi, step)]
            return rows
        n = len(self._type)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("history index out of range")
        return self.rows(i, i + 1)[0]

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, History):
            return len(self) == len(other) and all(a == b for a, b in zip(self.chunks(), other.chunks()))
        if isinstance(other, list):
            return len(self) == len(other) and list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the list it replaces

    def __repr__(self) -> str:
        return f"<History of {len(self)} events>"

    def to_list(self) -> list[dict]:
        self.flush()
        return self.rows(0, len(self._type))

    def digest_into(self, h: Any) -> Any:
        """Update hash ``h`` with exactly the bytes ``marshal.dumps(self.to_list(), 2)`` gives (or, when
        marshal cannot encode some value, the per-event fallback of the kernel's digest), one chunk
        at a time; returns the updated hash. Format 2 has no back-references, so a list's encoding
        is its header followed by its items', and chunks concatenate. The dicts are not built: each
        chunk's bytes are laid out from the columns (:func:`_marshal_events`), which a million-event
        history hashes in about a fifth of the time that building and marshalling its dicts took."""
        self.flush()
        if self._dicts is not None and len(self._dicts) <= ROWS_PER_CHUNK:
            try:
                h.update(marshal.dumps(self._dicts, 2))
                return h
            except ValueError:
                pass
        n = len(self._type)
        trial = h.copy()
        trial.update(b"[" + n.to_bytes(4, "little", signed=True))
        try:
            f_codes = [marshal.dumps(f, 2) for f in self._f_names]
            for lo in range(0, n, ROWS_PER_CHUNK):
                hi = min(n, lo + ROWS_PER_CHUNK)
                trial.update(_marshal_events(lo, np.frombuffer(self._time, dtype=np.int64, count=hi - lo,
                                                               offset=lo * 8),
                                             np.frombuffer(self._type, dtype=np.uint8, count=hi - lo, offset=lo),
                                             np.frombuffer(self._process, dtype=np.int64, count=hi - lo,
                                                           offset=lo * 8),
                                             np.frombuffer(self._f, dtype=np.uint32, count=hi - lo, offset=lo * 4),
                                             self._value[lo:hi], f_codes))
            return trial
        except ValueError:
            pass
        for chunk in self.chunks():
            for ev in chunk:
                try:
                    h.update(marshal.dumps(ev, 2))
                except ValueError:
                    h.update(repr(ev).encode())
        return h


# marshal format 2, as CPython writes it (Python/marshal.c, w_object): a dict is "{", its keys and
# values in order, then "0"; a str "u" + its UTF-8 length (4 bytes, little-endian) + the bytes; an
# int in 32 bits "i" + 4 bytes, any other "l" + its count of 15-bit digits (negative for a negative
# int) + the digits of its magnitude, 2 bytes each, least significant first.
_KEY_CODES = [marshal.dumps(k, 2) for k in KEYS]
_TYPE_CODES = [marshal.dumps(t, 2) for t in TYPES]


def _int_width(x: np.ndarray) -> int:
    """The widest marshal encoding among int64s ``x``: 5 bytes if all fit in 32 bits, else 5 + 2 a
    15-bit digit of the largest magnitude (15 at most)."""
    if not x.size:
        return 5
    lo, hi = int(x.min()), int(x.max())
    if lo == np.iinfo(np.int64).min:  # no magnitude in int64: the caller falls back
        raise ValueError("int64 minimum")
    if lo >= -(1 << 31) and hi < (1 << 31):
        return 5
    return 5 + 2 * -(-max(-lo, hi).bit_length() // 15)


def _marshal_ints(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write the marshal encodings of int64s ``x`` into the rows of ``out`` (``_int_width(x)`` bytes
    wide, left aligned) and return their lengths."""
    n = x.size
    width = out.shape[1]
    small = (x >= -(1 << 31)) & (x < (1 << 31))
    out[:, 0] = np.where(small, ord("i"), ord("l"))
    out[:, 1:5] = x.astype("<i4").view(np.uint8).reshape(n, 4)
    length = np.full(n, 5, dtype=np.int64)
    big = np.flatnonzero(~small)
    if big.size:
        mag = np.abs(x[big]).astype(np.uint64)
        digits = np.stack([(mag >> np.uint64(15 * k)) & np.uint64(0x7FFF) for k in range(5)], axis=1).astype("<u2")
        count = np.ones(big.size, dtype=np.int64)
        for k in range(1, 5):
            count += (mag >> np.uint64(15 * k)) != 0
        rows = np.empty((big.size, width), dtype=np.uint8)
        rows[:, 0] = ord("l")
        rows[:, 1:5] = np.where(x[big] < 0, -count, count).astype("<i4").view(np.uint8).reshape(-1, 4)
        rows[:, 5:] = digits.view(np.uint8).reshape(-1, 10)[:, :width - 5]
        out[big] = rows
        length[big] = 5 + 2 * count
    return length


def _code_table(codes: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The encodings ``codes`` as padded rows, and their lengths."""
    width = max(map(len, codes), default=1)
    table = np.zeros((max(1, len(codes)), width), dtype=np.uint8)
    for i, c in enumerate(codes):
        table[i, :len(c)] = np.frombuffer(c, dtype=np.uint8)
    return table, np.array([len(c) for c in codes] or [0], dtype=np.int64)


_CELLS_AT_ONCE = 1 << 24  # bytes of padded rows laid out at a time (a huge value splits its chunk)


def _marshal_events(index0: int, times, types, procs, fs, values: list, f_codes: list[bytes]) -> bytes:
    """``marshal.dumps(events, 2)[5:]`` for the events whose columns are given (the first at
    position ``index0``), without building them: each event is a row of a byte matrix (its keys,
    the type's and function's names from tables, its ints encoded by arithmetic, its value's
    encoding from marshal, one C-level call each, then "0"), padded, and one mask over the matrix
    takes the bytes that count, in order. Raises ValueError where marshal would."""
    if not values:
        return b""
    return _lay_out(index0, times, types, procs, fs, list(map(marshal.dumps, values, repeat(2))), f_codes)


def _lay_out(index0: int, times, types, procs, fs, value_codes: list[bytes], f_codes: list[bytes]) -> bytes:
    """:func:`_marshal_events` with the values already marshalled (``value_codes``), a chunk with a
    huge value split in halves until its byte matrix fits ``_CELLS_AT_ONCE``."""
    n = len(value_codes)
    value_len = np.fromiter(map(len, value_codes), dtype=np.int64, count=n)
    widest = int(value_len.max())
    if n > 1 and n * (widest + 160) > _CELLS_AT_ONCE:
        half = n // 2
        return (_lay_out(index0, times[:half], types[:half], procs[:half], fs[:half], value_codes[:half], f_codes)
                + _lay_out(index0 + half, times[half:], types[half:], procs[half:], fs[half:], value_codes[half:],
                           f_codes))
    k_index, k_time, k_type, k_process, k_f, k_value = _KEY_CODES
    type_table, type_lens = _code_table(_TYPE_CODES)
    f_table, f_lens = _code_table(f_codes)
    types = np.asarray(types, dtype=np.int64)
    fs = np.asarray(fs, dtype=np.int64)
    # the row's pieces: constant bytes, or (width, filler) where filler(columns) writes and returns lengths
    index = np.arange(index0, index0 + n, dtype=np.int64)
    times = np.asarray(times, dtype=np.int64)
    procs = np.asarray(procs, dtype=np.int64)
    pieces = [b"{" + k_index,
              (_int_width(index), lambda cols: _marshal_ints(index, cols)), k_time,
              (_int_width(times), lambda cols: _marshal_ints(times, cols)), k_type,
              (type_table.shape[1], lambda cols: _fill(cols, type_table[types], type_lens[types])), k_process,
              (_int_width(procs), lambda cols: _marshal_ints(procs, cols)), k_f,
              (f_table.shape[1], lambda cols: _fill(cols, f_table[fs], f_lens[fs])), k_value,
              (widest, lambda cols: _fill_values(cols, value_codes, value_len)), b"0"]
    width = sum(len(p) if isinstance(p, bytes) else p[0] for p in pieces)
    rows = np.zeros((n, width), dtype=np.uint8)
    mask = np.ones((n, width), dtype=bool)
    at = 0
    for p in pieces:
        if isinstance(p, bytes):
            rows[:, at:at + len(p)] = np.frombuffer(p, dtype=np.uint8)
            at += len(p)
        else:
            w, filler = p
            lengths = filler(rows[:, at:at + w])
            mask[:, at:at + w] = np.arange(w) < lengths[:, None]
            at += w
    return rows[mask].tobytes()


def _fill(cols: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    cols[:] = rows
    return lengths


def _fill_values(cols: np.ndarray, codes: list[bytes], lengths: np.ndarray) -> np.ndarray:
    # row-major order: the joined encodings land in their rows, left aligned
    cols[np.arange(cols.shape[1]) < lengths[:, None]] = np.frombuffer(b"".join(codes), dtype=np.uint8)
    return lengths


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):  # numpy scalars from generate(rng) or handlers
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _line_slow(op: Any) -> bytes:
    """One line exactly as dsim has always written it (the reference the fast path must match)."""
    return json.dumps(_jsonable(op), separators=(",", ":")).encode()


# orjson writes what json.dumps writes for dicts, lists, tuples, ints, bools, None and ASCII strings
# (same compact separators, key order and escapes), and numpy integers and booleans as their .item().
# It differs on floats (1e-05 is "0.00001"; NaN and Infinity are null, which the output alone cannot
# tell from None), non-ASCII and DEL (json escapes them), numpy float32, non-string dict
# keys and ints past 64 bits (orjson refuses those two). A chunk holding any of these goes through
# json, line by line; a chunk of plain values is one orjson call.
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_LEAVES = frozenset({int, str, bool, type(None), np.bool_, np.int8, np.int16, np.int32, np.int64,
                     np.uint8, np.uint16, np.uint32, np.uint64})
_SEQUENCES = frozenset({list, tuple})
_DICT = frozenset({dict})
_PLAIN = _LEAVES | _SEQUENCES | _DICT
_CHUNK = 65_536


def _plain(values: list) -> bool:
    """True if ``values`` hold, at any depth, only dicts, lists, tuples, ints, bools, strings and None
    (what orjson and json write alike, strings' characters apart).

    One level at a time, with C-level iteration (map, chain, compress) rather than a Python call
    per value; a level's children are only gathered when it has containers."""
    level: Any = values
    types = set(map(type, level))
    while True:
        if types <= _LEAVES:
            return True
        if not types <= _PLAIN:
            return False
        if types == _DICT:
            # The children's types first, without building them: a history's dicts usually hold
            # only ints, strings and None, and then there is no next level to build.
            children_types = set(map(type, chain.from_iterable(map(dict.values, level))))
            if children_types <= _LEAVES or not children_types <= _PLAIN:
                types = children_types
                continue
            level = list(chain.from_iterable(map(dict.values, level)))
            types = children_types
            continue
        if types <= _SEQUENCES:
            level = list(chain.from_iterable(level))
        else:
            kinds = list(map(type, level))
            level = list(chain(chain.from_iterable(compress(level, map(_SEQUENCES.__contains__, kinds))),
                               chain.from_iterable(map(dict.values, compress(level, map(_DICT.__contains__, kinds))))))
        types = set(map(type, level))


_VOUCHED: list = [None]  # a weak reference to the last Workload (simulator.workload.clients)


def vouch(owner: Any) -> None:
    """Let the writer trust ``owner.history`` while ``owner.values_plain`` is true: the owner (the
    Workload) checked each entry as it was appended (dicts of its own making with an int time, str
    fields and immutable values made of None, ints, bools, strings and tuples), so the writer need
    not scan the values again. A weak reference: a finished run's workload is not kept alive."""
    _VOUCHED[0] = weakref.ref(owner)


def _vouched(ops: list) -> bool:
    ref = _VOUCHED[0]
    owner = ref() if ref is not None else None
    return owner is not None and owner.history is ops and owner.values_plain is True


def _ascii_text(out: bytes) -> bool:
    """No byte json would have escaped (non-ASCII, DEL)."""
    return out.isascii() and b"\x7f" not in out


def _one_by_one(ops: list) -> bytes:
    out = []
    for op in ops:
        line = None
        if _plain([op]):
            try:
                line = orjson.dumps(op, option=_OPTS)
            except TypeError:  # orjson.JSONEncodeError: a non-string key, a huge int
                line = None
        if line is None or not _ascii_text(line):
            line = _line_slow(op)
        out.append(line)
    out.append(b"")
    return b"\n".join(out)


def _chunk_lines(ops: list, vouched: bool = False) -> bytes:
    """``ops`` as JSON lines (each ending in a newline), byte for byte what _line_slow gives.

    The common case is one orjson call for the whole chunk, split into lines at the ``},{`` between
    top-level dicts; that split is only trusted when it made exactly ``len(ops) - 1`` lines (a
    ``},{`` inside a string or a nested value would make more). ``vouched``: the values are known
    plain (see vouch), so the scan of them is skipped."""
    if not ops:
        return b""
    if vouched or (_plain(ops) and set(map(type, ops)) == _DICT):
        try:
            body = orjson.dumps(ops, option=_OPTS)
        except TypeError:
            body = None
        if body is not None and _ascii_text(body):
            lines = body[1:-1].replace(b"},{", b"}\n{")
            # orjson writes no raw newline (JSON escapes them in strings), so each newline is a split
            if lines.count(b"\n") == len(ops) - 1:
                return lines + b"\n"
    return _one_by_one(ops)


def write_jsonl(path: str | Path, ops: Iterable[dict]) -> None:
    """One JSON object a line, compact (``{"index":0,"time":...}``), non-ASCII escaped as json does.

    A :class:`History` is written a chunk of dicts at a time (same bytes, bounded memory)."""
    if isinstance(ops, History):
        vouched = _vouched(ops)
        with open(path, "wb") as fh:
            for chunk in ops.chunks(_CHUNK):
                fh.write(_chunk_lines(chunk, vouched))
        return
    if not isinstance(ops, list):
        ops = list(ops)
    vouched = _vouched(ops)
    with open(path, "wb") as fh:
        for start in range(0, len(ops), _CHUNK):
            fh.write(_chunk_lines(ops[start:start + _CHUNK], vouched))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


_PAIRS_CACHE: list = [None, -1, None]  # (history list, its length, its pairs): one entry


class Pairs:
    """The pairs of a :class:`History`, read from its paired columns: a sequence of
    [invoke, completion] lists built on demand (so a pass holds one pair at a time)."""

    __slots__ = ("history", "n")

    def __init__(self, history: History):
        self.history = history
        self.n = len(history.inv_at)

    def __len__(self) -> int:
        return self.n

    def _pair(self, slot: int) -> list:
        h = self.history
        j = h.done_at[slot]
        return [h.rows(h.inv_at[slot], h.inv_at[slot] + 1)[0], h.rows(j, j + 1)[0] if j >= 0 else None]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._pair(s) for s in range(*i.indices(self.n))]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("pairs index out of range")
        return self._pair(i)

    def __iter__(self):
        h, n = self.history, self.n
        for lo in range(0, n, ROWS_PER_CHUNK):
            hi = min(n, lo + ROWS_PER_CHUNK)
            inv_at, done_at = h.inv_at[lo:hi], h.done_at[lo:hi]
            # the events from the first invoke on, as dicts, with room for the completions of the
            # last invokes; a completion further on (a long operation) is built alone
            first = inv_at[0]
            # up to the last completion of the chunk (at most ROWS_PER_CHUNK past its last invoke):
            # a fixed ROWS_PER_CHUNK of room built half as many dicts again as the pairs need
            end = min(max(inv_at[-1], max(done_at)) + 1, inv_at[-1] + ROWS_PER_CHUNK)
            rows = h.rows(first, end)
            for a, b in zip(inv_at, done_at):
                if b < 0:
                    yield [rows[a - first], None]
                elif b < end:
                    yield [rows[a - first], rows[b - first]]
                else:
                    yield [rows[a - first], h.rows(b, b + 1)[0]]

    def __eq__(self, other: Any) -> bool:
        return list(self) == list(other) if isinstance(other, (list, Pairs)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


def pairs(history: list[dict]) -> list[list]:
    """[invoke, completion] for every operation, in invoke order; completion None if it never ended.

    Metrics, checkers and figures all ask for the pairs of one finished history, so the last answer
    is kept (keyed by the list object and its length: a history is only ever appended to). A
    :class:`History` pairs as it is appended: its pairs are a lazy :class:`Pairs` sequence."""
    if isinstance(history, History):
        if history.dicts is None:
            return Pairs(history)  # type: ignore[return-value]
        history = history.dicts
    cached, n, result = _PAIRS_CACHE
    if cached is history and n == len(history):
        return result
    open_by_process: dict[int, list] = {}
    out: list[list] = []
    append, close = out.append, open_by_process.pop
    for op in history:
        if op["type"] == "invoke":
            pair = [op, None]
            open_by_process[op["process"]] = pair
            append(pair)
        else:
            pair = close(op["process"], None)
            if pair is not None:
                pair[1] = op
    _PAIRS_CACHE[:] = [history, len(history), out]
    return out


def _edn(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_edn(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_edn(k)} {_edn(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def to_edn(history: list[dict]) -> str:
    """The history in Jepsen's EDN shape (one map a line), for Knossos or Elle to cross-check."""
    lines = []
    for op in history:
        lines.append("{:index %d, :time %d, :type :%s, :process %d, :f :%s, :value %s}" % (
            op["index"], op["time"], op["type"], op["process"], op["f"], _edn(op.get("value"))))
    return "\n".join(lines) + "\n"


def _column(name: str) -> property:
    """History.<name>: the column ``_<name>``, once the buffered events are in it."""
    private = "_" + name

    def read(self):
        self.flush()
        return getattr(self, private)

    return property(read, doc=f"the {name} column (buffered events moved in first)")


for _name in ("time", "type", "process", "f", "value", "f_names", "inv_at", "done_at", "dicts"):
    setattr(History, _name, _column(_name))
del _name
