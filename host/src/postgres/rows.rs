//! A result's rows as the server sent them: each cell's bytes, in the text
//! or the binary format, packed into chunks and decoded into values only
//! when read. A value per cell (often with a `String` of its own) cost
//! more than receiving the rows, and a caller that makes objects of its
//! own (the Python package) reads the cells directly instead.

use postgres_types::Type;

use crate::bindings::types::Value;
use crate::error::{Error, ErrorKind};
use crate::values::{decode, decode_text};

/// Rows per chunk: a chunk is one allocation, freed whole once its rows
/// are taken ([`Rows::into_chunks`]).
const CHUNK_ROWS: usize = 1 << 14;

/// The mark of a null cell in [`Chunk::ends`].
const NULL: u64 = 1 << 63;

/// What a row costs beyond its cells, so that rows of no columns still
/// count against the result limit: a caller makes an object of each.
const ROW_COST: usize = 24;

/// Which format a result's cells came in: the text format for statements
/// with a column the binary decoder does not know (see `values`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The server's text output, as psycopg2 reads every column.
    Text,
    /// PostgreSQL's binary format.
    Binary,
}

/// One cell as the server sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawCell<'a> {
    /// SQL NULL.
    Null,
    /// The server's text output (checked to be UTF-8 as it arrived).
    Text(&'a str),
    /// The binary format.
    Binary(&'a [u8]),
}

/// Up to [`CHUNK_ROWS`] rows: their cells' bytes end to end, and where
/// each cell ends (with [`NULL`] set for a null).
#[derive(Debug, Clone, PartialEq, Default)]
struct Chunk {
    bytes: Vec<u8>,
    ends: Vec<u64>,
}

/// The rows of one result, each with one cell per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    format: Format,
    /// Each column's name and type, to decode and to name it in errors.
    columns: Vec<(String, Type)>,
    chunks: Vec<Chunk>,
    len: usize,
}

impl Rows {
    /// No rows yet, of `columns` (name and type), in `format`.
    pub(crate) fn new(format: Format, columns: Vec<(String, Type)>) -> Rows {
        Rows { format, columns, chunks: Vec::new(), len: 0 }
    }

    /// Append a row of `cells`, one per column (text cells already checked
    /// to be UTF-8); returns the bytes it takes in memory. On a cell's error
    /// the row is left out and the error returned.
    pub(crate) fn push<'a, E>(
        &mut self,
        cells: impl IntoIterator<Item = Result<Option<&'a [u8]>, E>>,
    ) -> Result<usize, E> {
        if self.len.is_multiple_of(CHUNK_ROWS) {
            // A full chunk is shrunk to what it holds: a Vec grows by doubling.
            self.shrink_to_fit();
            self.chunks.push(Chunk::default());
        }
        let chunk = self.chunks.last_mut().expect("a chunk, pushed just now when full");
        let (bytes_before, cells_before) = (chunk.bytes.len(), chunk.ends.len());
        for cell in cells {
            match cell {
                Ok(Some(bytes)) => {
                    chunk.bytes.extend_from_slice(bytes);
                    chunk.ends.push(chunk.bytes.len() as u64);
                }
                Ok(None) => chunk.ends.push(chunk.bytes.len() as u64 | NULL),
                Err(e) => {
                    chunk.bytes.truncate(bytes_before);
                    chunk.ends.truncate(cells_before);
                    if self.len.is_multiple_of(CHUNK_ROWS) {
                        self.chunks.pop();
                    }
                    return Err(e);
                }
            }
        }
        self.len += 1;
        Ok(chunk.bytes.len() - bytes_before + self.columns.len() * std::mem::size_of::<u64>() + ROW_COST)
    }

    /// Give back what the last chunk holds beyond its rows.
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Some(last) = self.chunks.last_mut() {
            last.bytes.shrink_to_fit();
            last.ends.shrink_to_fit();
        }
    }

    /// Whether the cells are text or binary.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Column `column`'s type, as the server describes it.
    ///
    /// # Panics
    /// If there is no such column.
    pub fn column_type(&self, column: usize) -> &Type {
        &self.columns[column].1
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row `index`, if there is one.
    pub fn row(&self, index: usize) -> Option<RowRef<'_>> {
        (index < self.len).then(|| RowRef {
            rows: self,
            chunk: &self.chunks[index / CHUNK_ROWS],
            at: index % CHUNK_ROWS,
        })
    }

    /// Every row, in order.
    pub fn iter(&self) -> impl Iterator<Item = RowRef<'_>> {
        (0..self.len).map(|i| self.row(i).expect("an index below len"))
    }

    /// Every row decoded into values (see [`RowRef::value`]).
    pub fn to_values(&self) -> Result<Vec<Vec<Value>>, Error> {
        self.iter().map(|row| row.values()).collect()
    }

    /// Keep the first `len` rows.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let chunks = len.div_ceil(CHUNK_ROWS);
        self.chunks.truncate(chunks);
        let width = self.columns.len();
        if let Some(last) = self.chunks.last_mut() {
            last.ends.truncate((len - (chunks - 1) * CHUNK_ROWS) * width);
            last.bytes.truncate(last.ends.last().map_or(0, |end| (end & !NULL) as usize));
        }
        self.shrink_to_fit();
        self.chunks.shrink_to_fit();
        self.len = len;
    }

    /// The rows in runs of up to 16,384, each freed once dropped: a caller
    /// making objects of a large result holds its rows once, not twice.
    pub fn into_chunks(self) -> impl Iterator<Item = Rows> {
        let Rows { format, columns, chunks, len } = self;
        chunks.into_iter().enumerate().map(move |(i, chunk)| Rows {
            format,
            columns: columns.clone(),
            chunks: vec![chunk],
            len: (len - i * CHUNK_ROWS).min(CHUNK_ROWS),
        })
    }
}

/// Why a cell of column `name` cannot be read: for text, what the decoder
/// says (a setting to change, say); for binary, that the server sent what
/// is no value of the type.
pub(crate) fn cell_error(format: Format, name: &str, ty: &Type, e: &dyn std::error::Error) -> String {
    match format {
        Format::Text => format!("column \"{name}\" ({}): {e}", ty.name()),
        Format::Binary => format!("column \"{name}\": invalid value from the server: {e}"),
    }
}

/// One row of [`Rows`].
#[derive(Clone, Copy)]
pub struct RowRef<'a> {
    rows: &'a Rows,
    chunk: &'a Chunk,
    at: usize,
}

impl<'a> RowRef<'a> {
    /// How many cells the row has: one per column.
    pub fn len(&self) -> usize {
        self.rows.columns.len()
    }

    /// Whether the result has no columns.
    pub fn is_empty(&self) -> bool {
        self.rows.columns.is_empty()
    }

    /// Cell `column` as the server sent it.
    ///
    /// # Panics
    /// If `column` is not below [`RowRef::len`].
    pub fn cell(&self, column: usize) -> RawCell<'a> {
        assert!(column < self.len(), "column {column} of a row of {}", self.len());
        let index = self.at * self.len() + column;
        let end = self.chunk.ends[index];
        if end & NULL != 0 {
            return RawCell::Null;
        }
        let start = match index {
            0 => 0,
            _ => (self.chunk.ends[index - 1] & !NULL) as usize,
        };
        let bytes = &self.chunk.bytes[start..end as usize];
        match self.rows.format {
            // SAFETY: text cells are pushed only once checked to be UTF-8
            // (by tokio-postgres's `SimpleQueryRow::try_get`).
            Format::Text => RawCell::Text(unsafe { std::str::from_utf8_unchecked(bytes) }),
            Format::Binary => RawCell::Binary(bytes),
        }
    }

    /// Cell `column` decoded: an error names the column when the server's
    /// bytes are not a value of its type.
    ///
    /// # Panics
    /// If `column` is not below [`RowRef::len`].
    pub fn value(&self, column: usize) -> Result<Value, Error> {
        let (name, ty) = &self.rows.columns[column];
        let decoded = match self.cell(column) {
            RawCell::Null => return Ok(Value::Null),
            RawCell::Text(text) => decode_text(ty, text),
            RawCell::Binary(bytes) => decode(ty, bytes),
        };
        decoded.map_err(|e| Error::new(ErrorKind::Database, cell_error(self.rows.format, name, ty, &*e)))
    }

    /// Every cell decoded, as [`RowRef::value`].
    pub fn values(&self) -> Result<Vec<Value>, Error> {
        (0..self.len()).map(|column| self.value(column)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(n: usize) -> Rows {
        let mut rows = Rows::new(Format::Text, vec![("n".into(), Type::INT4), ("t".into(), Type::TEXT)]);
        for i in 0..n {
            let text = i.to_string();
            let second = (i % 3 != 0).then_some(text.as_bytes());
            rows.push::<()>([Ok(Some(text.as_bytes())), Ok(second)]).unwrap();
        }
        rows
    }

    #[test]
    fn cells_come_back_as_pushed_across_chunks() {
        let rows = ints(CHUNK_ROWS * 2 + 5);
        assert_eq!(rows.len(), CHUNK_ROWS * 2 + 5);
        for i in [0, 1, 3, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS * 2 + 4] {
            let row = rows.row(i).unwrap();
            assert_eq!(row.values().unwrap()[0], Value::Int(i as i64));
            let expected = if i % 3 == 0 { RawCell::Null } else { RawCell::Text(&*i.to_string().leak()) };
            assert_eq!(row.cell(1), expected);
        }
        assert!(rows.row(CHUNK_ROWS * 2 + 5).is_none());
    }

    #[test]
    fn truncate_keeps_the_first_rows_only() {
        for keep in [0, 1, 7, CHUNK_ROWS, CHUNK_ROWS + 1] {
            let mut rows = ints(CHUNK_ROWS + 9);
            rows.truncate(keep);
            assert_eq!(rows.len(), keep);
            assert_eq!(rows.to_values().unwrap().len(), keep);
            if keep > 0 {
                assert_eq!(rows.row(keep - 1).unwrap().value(0).unwrap(), Value::Int(keep as i64 - 1));
            }
        }
    }

    #[test]
    fn chunks_split_the_rows_in_order() {
        let parts: Vec<Rows> = ints(CHUNK_ROWS + 3).into_chunks().collect();
        assert_eq!(parts.iter().map(Rows::len).collect::<Vec<_>>(), [CHUNK_ROWS, 3]);
        assert_eq!(parts[1].row(2).unwrap().value(0).unwrap(), Value::Int(CHUNK_ROWS as i64 + 2));
    }

    #[test]
    fn a_failed_push_leaves_no_row() {
        let mut rows = ints(CHUNK_ROWS);
        assert_eq!(rows.push([Ok(Some(&b"1"[..])), Err("bad")]), Err("bad"));
        assert_eq!(rows.len(), CHUNK_ROWS);
        assert_eq!(rows.chunks.len(), 1);
        rows.push::<()>([Ok(Some(&b"7"[..])), Ok(None)]).unwrap();
        assert_eq!(rows.row(CHUNK_ROWS).unwrap().values().unwrap(), [Value::Int(7), Value::Null]);
    }

    #[test]
    fn a_bad_cell_is_an_error_naming_its_column() {
        let mut rows = Rows::new(Format::Binary, vec![("amount".into(), Type::INT4)]);
        rows.push::<()>([Ok(Some(&[1u8, 2][..]))]).unwrap();
        let e = rows.row(0).unwrap().value(0).unwrap_err();
        assert!(e.message().contains("column \"amount\": invalid value from the server"), "{e}");
    }
}
