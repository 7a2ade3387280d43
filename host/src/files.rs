//! Files under a hook's root directory: the `files` import, and the readers
//! and atomic writers the COPY data plane and TLS use.
//!
//! Every file is reached through one directory handle on the root (cap-std),
//! whose path resolution cannot leave it: a symbolic link out of the root, or
//! a directory swapped for one between a check and a use, is refused by the
//! kernel at the open itself (`openat2` with `RESOLVE_BENEATH`). Only regular
//! files are used; they are opened without blocking (a FIFO never hangs a
//! call) and checked on the opened handle. All blocking file work runs on
//! tokio's blocking pool, inside the call that asked for it.

use std::ffi::OsString;
use std::future::Future;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use cap_std::fs::{Dir, FileType, FileTypeExt, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};

use crate::bindings::files::{ConfigFile, ConfigRead};
use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::{Error, wit};

/// The largest file [`FileRoot::read`] reads: TLS material is a few KiB.
pub const READ_LIMIT: u64 = 1 << 20;

/// The most files [`FileRoot::read_config_dir`] reads from one directory.
pub const DIR_READ_LIMIT: usize = 256;

/// The most bytes [`FileRoot::read_config_dir`] reads from one directory.
pub const DIR_TOTAL_LIMIT: u64 = 16 << 20;

/// The permission bits a replaced file passes on to its replacement: no
/// set-user-id, set-group-id or sticky bit on data a server sent.
const KEPT_MODE_BITS: u32 = 0o777;

/// Flags for every open: never wait on a FIFO or device, never acquire a
/// controlling terminal.
const OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY;

/// A directory that confines every path a guest names. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FileRoot {
    inner: Arc<Root>,
}

#[derive(Debug)]
struct Root {
    /// The handle every path is resolved from.
    dir: Dir,
    /// The root canonicalized and as configured: an absolute guest path must
    /// start with one of them (compared lexically, component by component).
    prefixes: [PathBuf; 2],
}

/// A path as the guest gave it (for messages) and relative to the root.
struct Named {
    given: String,
    relative: PathBuf,
}

fn io_error(path: &str, e: std::io::Error) -> WitError {
    // cap-std reports a resolution that would leave the root as a permission
    // error without an OS error code.
    if e.kind() == std::io::ErrorKind::PermissionDenied && e.raw_os_error().is_none() {
        return wit(ErrorKind::Denied, format!("{path}: leads outside the file root (through a symbolic link)"));
    }
    wit(ErrorKind::Io, format!("{path}: {e}"))
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

fn describe(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// `Ok` for a regular file, a clear refusal naming what else it is.
fn regular(path: &str, meta: &Metadata) -> Result<(), WitError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(wit(ErrorKind::Denied, format!("{path}: is {}, not a regular file", describe(meta.file_type()))))
}

/// Run blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, WitError> + Send + 'static,
) -> Result<T, WitError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| wit(ErrorKind::Io, format!("a file operation did not finish: {e}")))?
}

impl FileRoot {
    /// Confine paths to `root`, which must be an existing directory.
    pub async fn new(root: &Path) -> Result<FileRoot, WitError> {
        let root = root.to_path_buf();
        blocking(move || {
            let refused = |e: std::io::Error| wit(ErrorKind::Denied, format!("file root {}: {e}", root.display()));
            let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority()).map_err(refused)?;
            let canonical = root.canonicalize().map_err(refused)?;
            let root = Root { dir, prefixes: [canonical, root] };
            Ok(FileRoot { inner: Arc::new(root) })
        })
        .await
    }

    /// Parse `path` (relative to the root, or absolute inside it) into a
    /// path relative to the root. `..` is refused outright; symbolic links
    /// are left to the directory handle, which refuses those that leave.
    fn name(&self, path: &str) -> Result<Named, WitError> {
        let denied = |why: String| wit(ErrorKind::Denied, format!("{path}: {why}"));
        if path.is_empty() {
            return Err(denied("an empty file name".into()));
        }
        let given = Path::new(path);
        if given.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(denied("`..` is not allowed".into()));
        }
        let inside = if given.is_absolute() {
            let stripped = self.inner.prefixes.iter().find_map(|prefix| given.strip_prefix(prefix).ok());
            stripped.ok_or_else(|| {
                denied(format!("outside the file root (file root {})", self.inner.prefixes[0].display()))
            })?
        } else {
            given
        };
        let relative: PathBuf = inside.components().filter(|c| matches!(c, Component::Normal(_))).collect();
        if relative.as_os_str().is_empty() {
            return Err(denied("names the file root itself, not a file".into()));
        }
        Ok(Named { given: path.to_string(), relative })
    }

    /// Whether `path` is an existing regular file.
    pub async fn exists(&self, path: &str) -> Result<bool, WitError> {
        let named = self.name(path)?;
        let root = self.inner.clone();
        blocking(move || match root.dir.metadata(&named.relative) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(io_error(&named.given, e)),
        })
        .await
    }

    /// Create `path` empty unless it exists; an existing file is never
    /// truncated, and anything but a regular file is refused.
    pub async fn create_empty(&self, path: &str) -> Result<(), WitError> {
        let named = self.name(path)?;
        let root = self.inner.clone();
        blocking(move || {
            let Named { given, relative } = &named;
            match root.dir.metadata(relative) {
                Ok(meta) => return regular(given, &meta),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(given, e)),
            }
            // Not truncating: a file that appeared meanwhile is kept whole.
            let mut options = OpenOptions::new();
            options.write(true).create(true).custom_flags(OPEN_FLAGS);
            let file = root.dir.open_with(relative, &options).map_err(|e| io_error(given, e))?;
            regular(given, &file.metadata().map_err(|e| io_error(given, e))?)
        })
        .await
    }

    /// Open `path` for reading, with its size.
    pub async fn open_read(&self, path: &str) -> Result<(tokio::fs::File, u64), WitError> {
        let named = self.name(path)?;
        let root = self.inner.clone();
        let (file, size) = blocking(move || root.open_regular(&named)).await?;
        Ok((tokio::fs::File::from_std(file), size))
    }

    /// Read a whole small file (a token, TLS material), at most
    /// [`READ_LIMIT`] bytes.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, WitError> {
        let named = self.name(path)?;
        let root = self.inner.clone();
        blocking(move || root.read_small(&named).map(|file| file.contents)).await
    }

    /// Read a whole small file with its permission bits, as
    /// [`FileRoot::read`]; `None` if there is none at `path`.
    pub async fn read_config(&self, path: &str) -> Result<Option<ConfigFile>, WitError> {
        let named = self.name(path)?;
        let root = self.inner.clone();
        blocking(move || match root.read_small(&named) {
            Err(e) if e.kind == ErrorKind::Io && missing(&root, &named) => Ok(None),
            other => other.map(Some),
        })
        .await
    }

    /// Read the CRL files directly in the directory `path` (named as
    /// OpenSSL looks them up: `<hash>.r<n>`), in name order, each as
    /// [`FileRoot::read_config`] does: at most [`DIR_READ_LIMIT`] of them
    /// and [`DIR_TOTAL_LIMIT`] bytes. `None` if there is no such directory.
    pub async fn read_config_dir(&self, path: &str) -> Result<Option<Vec<(String, ConfigFile)>>, WitError> {
        let named = self.name(path)?;
        let root = self.inner.clone();
        blocking(move || {
            let Named { given, relative } = &named;
            let dir = match root.dir.open_dir(relative) {
                Ok(dir) => dir,
                Err(e) if is_missing(&e) => return Ok(None),
                Err(e) => return Err(io_error(given, e)),
            };
            let mut names = Vec::new();
            for entry in dir.entries().map_err(|e| io_error(given, e))? {
                let name = entry.map_err(|e| io_error(given, e))?.file_name();
                if name.to_str().is_some_and(is_hashed_crl_name) {
                    names.push(name.to_string_lossy().into_owned());
                }
            }
            if names.len() > DIR_READ_LIMIT {
                return Err(wit(ErrorKind::Limit, format!("{given}: holds more than {DIR_READ_LIMIT} CRL files")));
            }
            names.sort();
            let sub = Root { dir, prefixes: root.prefixes.clone() };
            let (mut files, mut total) = (Vec::new(), 0);
            for name in names {
                let named =
                    Named { given: format!("{}/{name}", given.trim_end_matches('/')), relative: name.clone().into() };
                // Links are followed as far as they stay inside; what is not a regular file is passed over.
                match sub.dir.metadata(&named.relative) {
                    Ok(meta) if meta.is_file() => {}
                    Ok(_) => continue,
                    Err(e) => return Err(io_error(&named.given, e)),
                }
                let file = sub.read_small(&named)?;
                total += file.contents.len();
                if total as u64 > DIR_TOTAL_LIMIT {
                    return Err(wit(
                        ErrorKind::Limit,
                        format!("{given}: its CRLs are larger than {} MiB", DIR_TOTAL_LIMIT >> 20),
                    ));
                }
                files.push((name, file));
            }
            Ok(Some(files))
        })
        .await
    }

    /// Start writing `path` atomically: the data goes to a hidden temporary
    /// file beside it, which replaces `path` only on [`AtomicFile::commit`].
    /// A replaced file's permission bits carry over; a new file gets
    /// `0666 & ~umask`, as `open(path, "w")` in Airflow or psql's `\o` would.
    pub async fn create_atomic(&self, path: &str) -> Result<AtomicFile, WitError> {
        let named = self.name(path)?;
        let root = self.inner.clone();
        blocking(move || {
            let Named { given, relative } = named;
            let target_name = relative.file_name().map(OsString::from).unwrap_or_default();
            let parent = match relative.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => root.dir.open_dir(parent),
                _ => root.dir.try_clone(),
            };
            let dir = parent.map_err(|e| io_error(&given, e))?;
            let mode = match dir.metadata(&target_name) {
                Ok(meta) => {
                    regular(&given, &meta)?;
                    Some(meta.mode() & KEPT_MODE_BITS)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error(&given, e)),
            };
            let (temp_name, file) = create_temp(&dir, &given)?;
            let atomic = AtomicFile { dir, temp_name, target_name, file, path: given, committed: false };
            if let Some(mode) = mode {
                // Set now, so the data is never readable more widely than the file it replaces.
                use std::os::unix::fs::PermissionsExt;
                let permissions = std::fs::Permissions::from_mode(mode);
                atomic.file.set_permissions(permissions).map_err(|e| io_error(&atomic.path, e))?;
            }
            Ok(atomic)
        })
        .await
    }
}

/// Whether `named` is missing (rather than unreadable), asked after a
/// failed read to tell the two apart.
fn missing(root: &Root, named: &Named) -> bool {
    matches!(root.dir.metadata(&named.relative), Err(e) if is_missing(&e))
}

impl Root {
    /// Read a whole regular file, at most [`READ_LIMIT`] bytes, with its
    /// permission bits (taken from the opened handle).
    fn read_small(&self, named: &Named) -> Result<ConfigFile, WitError> {
        let too_big = || {
            let limit = READ_LIMIT >> 20;
            wit(ErrorKind::Limit, format!("{}: is larger than the {limit} MiB allowed for this file", named.given))
        };
        let (file, size) = self.open_regular(named)?;
        if size > READ_LIMIT {
            return Err(too_big());
        }
        let mode = std::os::unix::fs::MetadataExt::mode(&file.metadata().map_err(|e| io_error(&named.given, e))?);
        let mut contents = Vec::with_capacity(size as usize);
        // The file may grow after the size check; read one byte past the limit to tell.
        file.take(READ_LIMIT + 1).read_to_end(&mut contents).map_err(|e| io_error(&named.given, e))?;
        if contents.len() as u64 > READ_LIMIT {
            return Err(too_big());
        }
        Ok(ConfigFile { contents, mode: Some(mode & 0o7777) })
    }

    /// Open a regular file for reading, with its size; anything else is
    /// refused before it is opened, and again on the opened handle (it may
    /// have been swapped in between).
    fn open_regular(&self, named: &Named) -> Result<(std::fs::File, u64), WitError> {
        let Named { given, relative } = named;
        regular(given, &self.dir.metadata(relative).map_err(|e| io_error(given, e))?)?;
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(OPEN_FLAGS);
        let file = self.dir.open_with(relative, &options).map_err(|e| io_error(given, e))?;
        let meta = file.metadata().map_err(|e| io_error(given, e))?;
        regular(given, &meta)?;
        Ok((file.into_std(), meta.len()))
    }
}

/// A fresh temporary name in `dir`, created exclusively.
fn create_temp(dir: &Dir, path: &str) -> Result<(String, std::fs::File), WitError> {
    use std::hash::{BuildHasher, Hasher};
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).custom_flags(OPEN_FLAGS);
    let mut last = None;
    for _ in 0..16 {
        // RandomState is seeded randomly per process and differs per call.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let name = format!(".pghook-{:016x}.partial", hasher.finish());
        match dir.open_with(&name, &options) {
            Ok(file) => return Ok((name, file.into_std())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_error(path, e)),
        }
    }
    Err(io_error(path, last.unwrap_or_else(|| std::io::Error::other("no free temporary name"))))
}

/// A file that appears whole at its final name, or not at all: dropping it
/// without [`AtomicFile::commit`] removes the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    /// The directory holding both names, opened once through the root.
    dir: Dir,
    temp_name: String,
    target_name: OsString,
    file: std::fs::File,
    /// The path as the guest gave it, for messages.
    path: String,
    committed: bool,
}

impl AtomicFile {
    /// A second handle on the temporary file, for async writing.
    pub fn writer(&self) -> Result<tokio::fs::File, WitError> {
        let file = self.file.try_clone().map_err(|e| io_error(&self.path, e))?;
        Ok(tokio::fs::File::from_std(file))
    }

    /// Start writing `len` bytes from `offset` to disk in the background
    /// (Linux's `sync_file_range`), so that [`AtomicFile::commit`]'s sync
    /// finds little left: a dump's last step then takes milliseconds where
    /// it took a tenth of a second per hundred megabytes. Only a hint: a
    /// failure changes nothing, and elsewhere it does nothing.
    pub fn start_writeback(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        if let Ok(file) = self.file.try_clone() {
            tokio::task::spawn_blocking(move || {
                use std::os::fd::AsRawFd;
                let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
                // SAFETY: a syscall on a descriptor `file` keeps open; it
                // reads no memory of ours.
                unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
            });
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    /// Flush to disk and move into place.
    pub async fn commit(self) -> Result<(), WitError> {
        blocking(move || {
            let mut this = self;
            this.file.sync_all().map_err(|e| io_error(&this.path, e))?;
            this.dir.rename(&this.temp_name, &this.dir, &this.target_name).map_err(|e| io_error(&this.path, e))?;
            this.committed = true;
            // Make the rename itself durable, through a descriptor that can
            // be synced (the root's own is a path handle); some file systems
            // cannot sync a directory, and the data is in place either way.
            if let Err(e) = this.dir.open(".").and_then(|dir| dir.sync_all()) {
                log::debug!(target: "pghook", "syncing the directory of {}: {e}", this.path);
            }
            Ok(())
        })
        .await
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Drop cannot wait for the blocking pool (and may run while the
            // runtime shuts down); one unlink in an open directory is quick.
            let _ = self.dir.remove_file(&self.temp_name);
        }
    }
}

/// What opening a file root gives, in time.
pub type OpenedRoot<'a> = Pin<Box<dyn Future<Output = Result<FileRoot, Error>> + Send + 'a>>;

/// Where a tenant's files live: an embedder's hook, asked the first time a
/// call touches a file (a call that touches none never asks), e.g. for a
/// directory made on demand. Without one, a call opens its policy's
/// `file_root`.
pub trait FileRootSource: Send + Sync {
    /// Open the root this call's files are confined to.
    fn open(&self) -> OpenedRoot<'_>;
}

/// One call's file root, opened on first use: most calls touch no file and
/// so pay nothing for it.
pub(crate) struct LazyRoot {
    opened: tokio::sync::OnceCell<FileRoot>,
    source: Option<Arc<dyn FileRootSource>>,
    path: PathBuf,
}

impl LazyRoot {
    /// `policy`'s root: from its [`FileRootSource`] if it has one, else its
    /// `file_root` directory.
    pub(crate) fn for_policy(policy: &crate::policy::Policy) -> LazyRoot {
        let (source, path) = (policy.file_root_source.clone(), policy.file_root.clone());
        LazyRoot { opened: tokio::sync::OnceCell::new(), source, path }
    }

    /// A root already opened.
    pub(crate) fn opened(root: FileRoot) -> LazyRoot {
        LazyRoot { opened: tokio::sync::OnceCell::new_with(Some(root)), source: None, path: PathBuf::new() }
    }

    /// The root, opening it the first time.
    pub(crate) async fn get(&self) -> Result<FileRoot, WitError> {
        let root = self
            .opened
            .get_or_try_init(|| async {
                match &self.source {
                    Some(source) => source.open().await.map_err(|e| {
                        wit(ErrorKind::Denied, format!("opening this tenant's file root: {}", e.message()))
                    }),
                    None => FileRoot::new(&self.path).await,
                }
            })
            .await?;
        Ok(root.clone())
    }
}

/// Where a file of libpq's is read from.
enum Place {
    /// Through this root.
    Root(FileRoot),
    /// A place the policy opens, which does not exist: nor does the file.
    Missing,
    /// Outside the root and every place the policy opens.
    OutOfReach,
}

/// Where `path`, a file of libpq's, is read from: the file root if it holds
/// it; else the place of `policy`'s config paths that does (a file named
/// exactly, or a directory holding it), opened as a root of its own.
async fn config_place(path: &str, files: &LazyRoot, policy: &crate::policy::Policy) -> Result<Place, WitError> {
    let root = files.get().await?;
    let given = Path::new(path);
    match root.name(path) {
        Ok(_) => return Ok(Place::Root(root)),
        // A relative path, `..` or an empty one: the root's own refusal.
        Err(e) if !given.is_absolute() || given.components().any(|c| c == Component::ParentDir) => return Err(e),
        Err(_) => {}
    }
    let Some(dir) = policy.config_paths.iter().find_map(|allowed| {
        if given == allowed { allowed.parent() } else { given.starts_with(allowed).then_some(allowed.as_path()) }
    }) else {
        return Ok(Place::OutOfReach);
    };
    match FileRoot::new(dir).await {
        Ok(root) => Ok(Place::Root(root)),
        Err(_) if !dir.is_dir() => Ok(Place::Missing),
        Err(e) => Err(e),
    }
}

/// The names OpenSSL looks CRLs up by in a directory: the issuer's hash,
/// `.r` and a number.
fn is_hashed_crl_name(name: &str) -> bool {
    let Some((hash, number)) = name.split_once(".r") else { return false };
    hash.len() == 8
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

impl crate::bindings::files::Host for crate::ctx::PghookCtxView<'_> {
    async fn exists(&mut self, path: String) -> Result<bool, WitError> {
        self.files.get().await?.exists(&path).await
    }

    async fn create_empty(&mut self, path: String) -> Result<(), WitError> {
        self.files.get().await?.create_empty(&path).await
    }

    async fn read_config(&mut self, path: String) -> Result<ConfigRead, WitError> {
        Ok(match config_place(&path, &self.files, &self.policy).await? {
            Place::Root(root) => match root.read_config(&path).await? {
                Some(file) => ConfigRead::Found(file),
                None => ConfigRead::Missing,
            },
            Place::Missing => ConfigRead::Missing,
            Place::OutOfReach => ConfigRead::OutOfReach,
        })
    }

    async fn read_config_dir(&mut self, path: String) -> Result<Option<Vec<(String, ConfigFile)>>, WitError> {
        match config_place(&path, &self.files, &self.policy).await? {
            Place::Root(root) => root.read_config_dir(&path).await,
            Place::Missing => Ok(None),
            Place::OutOfReach => Err(wit(
                ErrorKind::Denied,
                format!("{path}: outside the file root and the places opened for libpq's files"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    async fn root_in(dir: &Path) -> FileRoot {
        FileRoot::new(dir).await.unwrap()
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success());
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn confines_paths() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside\n").unwrap();
        let root = root_in(dir.path()).await;
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/in.tsv"), "1\n").unwrap();
        assert_eq!(root.read("sub/in.tsv").await.unwrap(), b"1\n");
        assert_eq!(root.read("./sub/./in.tsv").await.unwrap(), b"1\n");
        let absolute = dir.path().join("sub/in.tsv");
        assert_eq!(root.read(absolute.to_str().unwrap()).await.unwrap(), b"1\n");
        let secret = outside.path().join("secret");
        for bad in ["../x", "/etc/passwd", secret.to_str().unwrap(), "sub/../../x", "sub/../in.tsv", "", ".", "/"] {
            let e = root.exists(bad).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Denied, "{bad}: {e:?}");
            assert_eq!(root.read(bad).await.unwrap_err().kind, ErrorKind::Denied, "{bad}");
        }
        let e = root.exists(secret.to_str().unwrap()).await.unwrap_err();
        assert!(e.message.contains("outside the file root"), "{e:?}");
        // Links out are refused, whether absolute or relative; links that stay inside are followed.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        // Both temporary directories share a parent.
        let sibling = format!("../{}", outside.path().file_name().unwrap().to_str().unwrap());
        std::os::unix::fs::symlink(sibling, dir.path().join("rel")).unwrap();
        std::os::unix::fs::symlink("sub/in.tsv", dir.path().join("in-link")).unwrap();
        for bad in ["out/secret", "rel/secret"] {
            let e = root.read(bad).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Denied, "{bad}");
            assert_eq!(e.message, format!("{bad}: leads outside the file root (through a symbolic link)"));
            assert_eq!(root.open_read(bad).await.unwrap_err().kind, ErrorKind::Denied, "{bad}");
            assert_eq!(root.create_atomic(&format!("{bad}2")).await.unwrap_err().kind, ErrorKind::Denied, "{bad}");
        }
        assert_eq!(root.read("in-link").await.unwrap(), b"1\n");
        std::os::unix::fs::symlink("../sub/in.tsv", dir.path().join("sub/up")).unwrap();
        assert_eq!(root.read("sub/up").await.unwrap(), b"1\n");
        // An absolute link is refused even when it points inside: the handle
        // resolves nothing from the host's `/`.
        std::os::unix::fs::symlink(dir.path().join("sub/in.tsv"), dir.path().join("abs-link")).unwrap();
        assert_eq!(root.read("abs-link").await.unwrap_err().kind, ErrorKind::Denied);
        assert!(root.exists("in-link").await.unwrap());
        assert!(!root.exists("missing.tsv").await.unwrap());
        assert!(!root.exists("sub/in.tsv/x").await.unwrap());
        assert_eq!(names(outside.path()), ["secret"]);
    }

    #[tokio::test]
    async fn a_dangling_link_out_creates_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = root_in(dir.path()).await;
        std::os::unix::fs::symlink(outside.path().join("made.tsv"), dir.path().join("dangling")).unwrap();
        let e = root.exists("dangling").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Denied, "{e:?}");
        let e = root.create_empty("dangling").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Denied, "{e:?}");
        assert!(names(outside.path()).is_empty());
        // A dangling link that stays inside creates its target, as open() would.
        std::os::unix::fs::symlink("made.tsv", dir.path().join("inside")).unwrap();
        root.create_empty("inside").await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("made.tsv")).unwrap(), b"");
        // An existing file is kept whole.
        std::fs::write(dir.path().join("kept.tsv"), "1\n").unwrap();
        root.create_empty("kept.tsv").await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("kept.tsv")).unwrap(), b"1\n");
    }

    #[tokio::test]
    async fn only_regular_files_and_never_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_in(dir.path()).await;
        mkfifo(&dir.path().join("fifo"));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let started = Instant::now();
        for (path, what) in [("fifo", "a FIFO (named pipe)"), ("sub", "a directory")] {
            assert!(!root.exists(path).await.unwrap());
            let message = format!("{path}: is {what}, not a regular file");
            let e = root.open_read(path).await.unwrap_err();
            assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Denied, message.as_str()));
            assert_eq!(root.read(path).await.unwrap_err().message, message);
            assert_eq!(root.create_empty(path).await.unwrap_err().message, message);
            assert_eq!(root.create_atomic(path).await.unwrap_err().message, message);
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(names(dir.path()), ["fifo", "sub"]);
    }

    #[tokio::test]
    async fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_in(dir.path()).await;
        std::fs::write(dir.path().join("big.pem"), vec![b'x'; READ_LIMIT as usize + 1]).unwrap();
        let e = root.read("big.pem").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        assert_eq!(e.message, "big.pem: is larger than the 1 MiB allowed for this file");
        std::fs::write(dir.path().join("ok.pem"), vec![b'x'; READ_LIMIT as usize]).unwrap();
        assert_eq!(root.read("ok.pem").await.unwrap().len(), READ_LIMIT as usize);
    }

    #[tokio::test]
    async fn config_files_with_their_mode_and_directories_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_in(dir.path()).await;
        std::fs::write(dir.path().join("pgpass"), "*:*:*:*:pw").unwrap();
        std::fs::set_permissions(dir.path().join("pgpass"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let file = root.read_config("pgpass").await.unwrap().unwrap();
        assert_eq!((file.contents.as_slice(), file.mode), (&b"*:*:*:*:pw"[..], Some(0o640)));
        assert_eq!(root.read_config("missing").await.unwrap(), None);
        assert_eq!(root.read_config("../etc/passwd").await.unwrap_err().kind, ErrorKind::Denied);
        std::fs::create_dir(dir.path().join("crls")).unwrap();
        std::fs::create_dir(dir.path().join("crls/sub")).unwrap();
        // OpenSSL's hashed names only, links followed inside, in name order.
        for name in ["0a1b2c3d.r1", "0a1b2c3d.r0", "README", "0a1b2c3d.rx"] {
            std::fs::write(dir.path().join("crls").join(name), name).unwrap();
        }
        // As `openssl rehash` lays it out: a hashed name linking to a file beside it.
        std::fs::write(dir.path().join("crls/ca.crl"), "*:*:*:*:pw").unwrap();
        std::os::unix::fs::symlink("ca.crl", dir.path().join("crls/ffffffff.r0")).unwrap();
        let files = root.read_config_dir("crls").await.unwrap().unwrap();
        let names: Vec<_> = files.iter().map(|(name, file)| (name.as_str(), file.contents.clone())).collect();
        let expected = [
            ("0a1b2c3d.r0", b"0a1b2c3d.r0".to_vec()),
            ("0a1b2c3d.r1", b"0a1b2c3d.r1".to_vec()),
            ("ffffffff.r0", b"*:*:*:*:pw".to_vec()),
        ];
        assert_eq!(names, expected);
        assert_eq!(root.read_config_dir("no-such-dir").await.unwrap(), None);
    }

    #[tokio::test]
    async fn config_directories_open_only_what_the_policy_names() {
        let (root_dir, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(home.path().join(".pgpass"), "x").unwrap();
        let path = home.path().join(".pgpass").to_str().unwrap().to_string();
        let read = |policy: crate::policy::Policy, path: String| async move {
            let files = LazyRoot::for_policy(&policy);
            let read: Result<ConfigRead, WitError> = match config_place(&path, &files, &policy).await? {
                Place::Root(root) => Ok(match root.read_config(&path).await? {
                    Some(file) => ConfigRead::Found(file),
                    None => ConfigRead::Missing,
                }),
                Place::Missing => Ok(ConfigRead::Missing),
                Place::OutOfReach => Ok(ConfigRead::OutOfReach),
            };
            read
        };
        let found = |contents: &[u8]| ConfigRead::Found(ConfigFile { contents: contents.to_vec(), mode: Some(0o644) });
        std::fs::set_permissions(home.path().join(".pgpass"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let policy = crate::policy::Policy::new(root_dir.path());
        assert_eq!(read(policy.clone(), path.clone()).await, Ok(ConfigRead::OutOfReach));
        // A file named exactly, or a directory holding it.
        let exact = policy.clone().allow_config_path(&path);
        assert_eq!(read(exact.clone(), path.clone()).await, Ok(found(b"x")));
        let sibling = home.path().join("other").to_str().unwrap().to_string();
        assert_eq!(read(exact, sibling).await, Ok(ConfigRead::OutOfReach));
        assert_eq!(read(policy.clone().allow_config_path(home.path()), path.clone()).await, Ok(found(b"x")));
        // A directory opened that does not exist holds nothing.
        let gone = home.path().join("gone");
        let inside = gone.join("pgpass").to_str().unwrap().to_string();
        assert_eq!(read(policy.allow_config_path(&gone), inside).await, Ok(ConfigRead::Missing));
    }

    #[tokio::test]
    async fn atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_in(dir.path()).await;
        let file = root.create_atomic("out.tsv").await.unwrap();
        assert_eq!(names(dir.path()).len(), 1);
        assert!(names(dir.path())[0].starts_with(".pghook-"));
        drop(file);
        assert!(names(dir.path()).is_empty());
        let file = root.create_atomic("out.tsv").await.unwrap();
        std::io::Write::write_all(&mut file.writer().unwrap().try_into_std().unwrap(), b"x\n").unwrap();
        file.commit().await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("out.tsv")).unwrap(), b"x\n");
        assert_eq!(names(dir.path()), ["out.tsv"]);
    }

    #[tokio::test]
    async fn replacing_keeps_the_permission_bits() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_in(dir.path()).await;
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let target = dir.path().join("sub/out.tsv");
        std::fs::write(&target, "old\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o4640)).unwrap();
        let file = root.create_atomic("sub/out.tsv").await.unwrap();
        std::io::Write::write_all(&mut file.writer().unwrap().try_into_std().unwrap(), b"new\n").unwrap();
        file.commit().await.unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new\n");
        // The set-user-id bit is not carried over onto server data.
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o640);
        // A new file gets 0666 less the umask, like any file a program creates.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap().trim();
        let umask = u32::from_str_radix(umask, 8).unwrap();
        let file = root.create_atomic("new.tsv").await.unwrap();
        file.commit().await.unwrap();
        let mode = std::fs::metadata(dir.path().join("new.tsv")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask);
    }
}
