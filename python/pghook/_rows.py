"""Rows as the connection's ``cursor`` extra shapes them, as psycopg2's
cursor factories do."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Iterable, List, Mapping, Sequence, Tuple


class DictRow(list):
    """psycopg2's DictCursor row: addressable by index and by column name."""

    def __init__(self, values: Sequence[Any], index: Mapping[str, int]):
        super().__init__(values)
        self._index = index

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            key = self._index[key]
        return super().__getitem__(key)

    def keys(self) -> Iterable[str]:
        return self._index.keys()

    def values(self) -> List[Any]:
        return list(self)

    def items(self) -> List[Tuple[str, Any]]:
        return [(k, self[i]) for k, i in self._index.items()]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except (KeyError, IndexError):
            return default


def _shaped(shape: str, names: List[str], rows: List[tuple]) -> List[Any]:
    """Rows as the connection's ``cursor`` extra asks: tuples, DictRow,
    dicts (RealDictCursor) or namedtuples (fields renamed as
    ``namedtuple(rename=True)`` does)."""
    if shape == "dict":
        index = OrderedDict((name, i) for i, name in enumerate(names))
        return [DictRow(row, index) for row in rows]
    if shape == "real_dict":
        return [dict(zip(names, row)) for row in rows]
    if shape == "named_tuple":
        record = namedtuple("Record", names, rename=True)  # type: ignore[misc]
        return [record(*row) for row in rows]
    return rows
