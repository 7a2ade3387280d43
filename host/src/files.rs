//! Files under a hook's root directory: path confinement, the `files`
//! import, and the readers and atomic writers the COPY data plane uses.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::wit;

/// A directory that confines every path a guest names.
#[derive(Debug, Clone)]
pub struct FileRoot {
    root: PathBuf,
}

fn io_error(path: &Path, e: std::io::Error) -> WitError {
    wit(ErrorKind::Io, format!("{}: {e}", path.display()))
}

impl FileRoot {
    /// Confine paths to `root`, which must be an existing directory.
    pub fn new(root: &Path) -> Result<FileRoot, WitError> {
        let root =
            root.canonicalize().map_err(|e| wit(ErrorKind::Denied, format!("file root {}: {e}", root.display())))?;
        Ok(FileRoot { root })
    }

    /// Resolve `path` (relative to the root, or absolute inside it). `..` is
    /// refused outright; symbolic links are followed and must stay inside.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, WitError> {
        let denied = |why: &str| wit(ErrorKind::Denied, format!("{path}: {why} (file root {})", self.root.display()));
        if path.is_empty() {
            return Err(denied("an empty file name"));
        }
        let given = Path::new(path);
        if given.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(denied("`..` is not allowed"));
        }
        let joined = if given.is_absolute() { given.to_path_buf() } else { self.root.join(given) };
        // Canonicalize the deepest part that exists, so links cannot lead out.
        let mut existing = joined.clone();
        let mut tail = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    tail.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => return Err(denied("no such directory")),
            }
        }
        let mut resolved = existing.canonicalize().map_err(|e| io_error(&existing, e))?;
        for name in tail.into_iter().rev() {
            resolved.push(name);
        }
        if !resolved.starts_with(&self.root) {
            return Err(denied("outside the file root"));
        }
        Ok(resolved)
    }

    /// Whether `path` is an existing regular file.
    pub fn exists(&self, path: &str) -> Result<bool, WitError> {
        Ok(self.resolve(path)?.is_file())
    }

    /// Create `path` empty unless it exists.
    pub fn create_empty(&self, path: &str) -> Result<(), WitError> {
        let resolved = self.resolve(path)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&resolved)
            .map(drop)
            .map_err(|e| io_error(&resolved, e))
    }

    /// Open `path` for reading, with its size.
    pub async fn open_read(&self, path: &str) -> Result<(tokio::fs::File, u64), WitError> {
        let resolved = self.resolve(path)?;
        let file = tokio::fs::File::open(&resolved).await.map_err(|e| io_error(&resolved, e))?;
        let size = file.metadata().await.map_err(|e| io_error(&resolved, e))?.len();
        Ok((file, size))
    }

    /// Read a whole small file (TLS material).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, WitError> {
        let resolved = self.resolve(path)?;
        std::fs::read(&resolved).map_err(|e| io_error(&resolved, e))
    }

    /// Start writing `path` atomically: the data goes to a hidden temporary
    /// file beside it, which replaces `path` only on [`AtomicFile::commit`].
    pub fn create_atomic(&self, path: &str) -> Result<AtomicFile, WitError> {
        let target = self.resolve(path)?;
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let temp = tempfile::Builder::new()
            .prefix(".pghook-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| io_error(&dir, e))?;
        Ok(AtomicFile { temp, target })
    }
}

/// A file that appears whole at its final name, or not at all: dropping it
/// without [`AtomicFile::commit`] removes the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    /// A second handle on the temporary file, for async writing.
    pub fn writer(&self) -> Result<tokio::fs::File, WitError> {
        let file = self.temp.as_file().try_clone().map_err(|e| io_error(&self.target, e))?;
        Ok(tokio::fs::File::from_std(file))
    }

    /// Flush to disk and move into place.
    pub fn commit(mut self) -> Result<(), WitError> {
        self.temp.flush().map_err(|e| io_error(&self.target, e))?;
        self.temp.as_file().sync_all().map_err(|e| io_error(&self.target, e))?;
        let target = self.target.clone();
        self.temp.persist(&target).map_err(|e| io_error(&target, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = FileRoot::new(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(root.resolve("sub/new.tsv").unwrap().ends_with("sub/new.tsv"));
        let inside = dir.path().join("a.tsv");
        assert!(root.resolve(inside.to_str().unwrap()).is_ok());
        for bad in ["../x", "/etc/passwd", "sub/../../x", ""] {
            assert_eq!(root.resolve(bad).unwrap_err().kind, ErrorKind::Denied, "{bad}");
        }
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        assert_eq!(root.resolve("link/passwd").unwrap_err().kind, ErrorKind::Denied);
    }

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = FileRoot::new(dir.path()).unwrap();
        let file = root.create_atomic("out.tsv").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let file = root.create_atomic("out.tsv").unwrap();
        std::io::Write::write_all(&mut file.writer().unwrap().try_into_std().unwrap(), b"x\n").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("out.tsv")).unwrap(), b"x\n");
    }
}
