//! Progress of long COPY operations, reported by the data plane.

/// Receives progress of a bulk operation. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// A transfer begins; `total` is its size in bytes when known.
    fn start(&self, _phase: &str, _total: Option<u64>) {}
    /// `bytes` more were moved.
    fn advance(&self, _bytes: u64) {}
    /// The transfer is complete.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
