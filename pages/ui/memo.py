"""A bounded, thread-safe LRU map shared by the cache wrappers and the upload registry."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class Memo:
    """A bounded, thread-safe LRU map (the caches Streamlit offers cannot be peeked into)."""

    def __init__(self, max_entries: int) -> None:
        self._data: OrderedDict[Hashable, object] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> object | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
