"""``PostgresHook.get_df``: a query's result as a pandas or polars DataFrame,
built from the Arrow columns the Rust core makes (``_pghook.get_arrow``),
handed over through the Arrow PyCapsule interface: no Python object per
value, no loop over rows.

The keyword arguments are those Airflow passes on to ``pandas.read_sql`` or
``polars.read_database``, applied here to the Arrow result.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from ._pghook import Core, Error, get_arrow

Parameters = Optional[Union[Sequence[Any], Mapping[str, Any]]]

# pandas.read_sql's keywords (`columns` only matters for a table name, as there).
_READ_SQL = {"index_col", "coerce_float", "parse_dates", "columns", "chunksize", "dtype_backend", "dtype"}
# polars.read_database's keywords (`infer_schema_length` is moot: the server types every column).
_READ_DATABASE = {"iter_batches", "batch_size", "schema_overrides", "infer_schema_length"}


class MissingDependencyError(Error, ImportError):
    """``get_df`` needs a library that is not installed; the message says
    what to ``pip install`` (Airflow raises AirflowOptionalProviderFeatureException).
    A pghook.Error of kind ``dependency``, and an ImportError."""

    kind = "dependency"
    sqlstate = None


def _require(module: str, install: str, why: str = "") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{module} library not installed{why}, run: pip install {install}", name=module
        ) from e


def _check_keywords(function: str, kwargs: Mapping[str, Any], known: Iterable[str]) -> None:
    # The hook itself passes these, as Airflow's does: a second value is an error there too.
    for taken in ("params", "execute_options", "con", "connection"):
        if taken in kwargs:
            raise TypeError(f"{function}() got multiple values for keyword argument '{taken}'")
    for name in kwargs:
        if name not in known:
            raise TypeError(f"{function}() got an unexpected keyword argument '{name}'")


def _statement(sql: Union[str, List[str]]) -> str:
    """Airflow's PostgresHook joins a list of statements for get_df."""
    return sql if isinstance(sql, str) else "; ".join(sql)


def get_df(
    core: Core, sql: Union[str, List[str]], parameters: Parameters, df_type: str, kwargs: Dict[str, Any]
) -> Any:
    """``PostgresHook.get_df``: a pandas or polars DataFrame, as ``df_type`` says."""
    if df_type == "pandas":
        return _pandas(core, sql, parameters, kwargs)
    if df_type == "polars":
        return _polars(core, sql, parameters, kwargs)
    raise ValueError(f"Unsupported df_type: {df_type}")


def _pandas(core: Core, sql: Union[str, List[str]], parameters: Parameters, kwargs: Dict[str, Any]) -> Any:
    pd = _require("pandas", "pandas pyarrow")
    pa = _require("pyarrow", "pyarrow", " (pghook builds pandas DataFrames from Arrow)")
    _check_keywords("read_sql", kwargs, _READ_SQL)
    mapper = _types_mapper(pd, pa, kwargs.get("dtype_backend"))
    table = pa.table(get_arrow(core, _statement(sql), parameters, bool(kwargs.get("coerce_float", True))))

    def frame(part: Any) -> Any:
        df = part.to_pandas(types_mapper=mapper)
        # In read_sql's order: dtype, then parse_dates, then index_col.
        if kwargs.get("dtype") is not None:
            df = df.astype(kwargs["dtype"])
        if kwargs.get("parse_dates"):
            from pandas.io.sql import _parse_date_columns  # read_sql's own

            df = _parse_date_columns(df, kwargs["parse_dates"])
        if kwargs.get("index_col") is not None:
            df = df.set_index(kwargs["index_col"])
        return df

    chunksize = kwargs.get("chunksize")
    if chunksize:
        return _chunks(pa, table, int(chunksize), frame)
    return frame(table)


def _chunks(pa: Any, table: Any, chunksize: int, frame: Any) -> Iterator[Any]:
    """read_sql's iterator of DataFrames of at most ``chunksize`` rows (one empty one for no rows)."""
    batches = table.to_batches(max_chunksize=chunksize)
    if not batches:
        yield frame(table)
    for batch in batches:
        yield frame(pa.Table.from_batches([batch], schema=table.schema))


def _types_mapper(pd: Any, pa: Any, dtype_backend: Optional[str]) -> Any:
    """read_sql's ``dtype_backend``: pandas' nullable dtypes, or Arrow-backed ones."""
    if dtype_backend is None or dtype_backend == "numpy":
        return None
    if dtype_backend == "pyarrow":
        return pd.ArrowDtype
    if dtype_backend == "numpy_nullable":
        return {
            pa.int64(): pd.Int64Dtype(),
            pa.float64(): pd.Float64Dtype(),
            pa.bool_(): pd.BooleanDtype(),
            pa.string(): pd.StringDtype(),
            pa.large_string(): pd.StringDtype(),
        }.get
    raise ValueError(f"dtype_backend {dtype_backend} is invalid, only 'numpy_nullable' and 'pyarrow' are allowed.")


def _polars(core: Core, sql: Union[str, List[str]], parameters: Parameters, kwargs: Dict[str, Any]) -> Any:
    pl = _require("polars", "polars")
    _check_keywords("read_database", kwargs, _READ_DATABASE)
    batch_size = kwargs.get("batch_size")
    if kwargs.get("iter_batches") and not batch_size:
        raise ValueError("Cannot set `iter_batches` without also setting a non-zero `batch_size`")
    result = get_arrow(core, _statement(sql), parameters, False)
    df = pl.DataFrame(result, schema_overrides=kwargs.get("schema_overrides"))
    if kwargs.get("iter_batches"):
        return df.iter_slices(int(batch_size))
    return df
