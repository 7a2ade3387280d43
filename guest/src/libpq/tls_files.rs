//! The certificate files libpq reads for TLS, and libpq's rules for each:
//! which are needed, which default to `~/.postgresql`, and what a missing
//! one means.

use super::{LibpqFiles, SslMode, verification};
use crate::bindings::files::ConfigFile;
use crate::bindings::postgres::{ClientCert, PemFile, Roots, Verify};
use crate::error::{Result, config};

/// The TLS files a connection names, read on connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// sslmode.
    pub mode: SslMode,
    /// sslrootcert (`system`: the platform's roots).
    pub root_cert: Option<String>,
    /// sslcrl.
    pub crl: Option<String>,
    /// sslcrldir.
    pub crl_dir: Option<String>,
    /// sslcert.
    pub cert: Option<String>,
    /// sslkey.
    pub key: Option<String>,
    /// sslcertmode=disable: no client certificate, whatever is named.
    pub cert_disabled: bool,
    /// sslcertmode=require: a client certificate or no session.
    pub cert_required: bool,
    /// `~/.postgresql`, where the defaults are, if the home is known.
    pub home: Option<String>,
}

/// What [`TlsFiles::read`] found: the check, the certificate to log in
/// with and the revocation lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadTls {
    /// What to check of the server's certificate.
    pub verify: Verify,
    /// The client certificate, if there is one.
    pub client_cert: Option<ClientCert>,
    /// The revocation lists, when the chain is checked.
    pub crls: Vec<PemFile>,
}

/// libpq's advice when a mode that checks the chain has no roots.
const ROOTS_ADVICE: &str = "provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification";

impl TlsFiles {
    /// A default file in `~/.postgresql`.
    fn default_file(&self, name: &str) -> Option<String> {
        self.home.as_ref().map(|dir| format!("{dir}/{name}"))
    }

    /// Read the files, as libpq does when it sets up TLS:
    /// - roots from sslrootcert, else `root.crt`; a mode that checks the
    ///   chain fails without them, `require` checks the chain with them;
    /// - CRLs (sslcrl, else `root.crl`, and sslcrldir) only with roots, a
    ///   missing one skipped;
    /// - a client certificate (sslcert, else `postgresql.crt`) if present,
    ///   then its key (sslkey, else `postgresql.key`), which must exist and
    ///   must not be open to others.
    ///
    /// A named file that cannot be read is an error; a default one counts
    /// as missing.
    pub fn read(&self, files: &dyn LibpqFiles) -> Result<ReadTls> {
        let roots = self.roots(files)?;
        let crls = match roots {
            Some(_) => self.crls(files)?,
            None => Vec::new(),
        };
        Ok(ReadTls { verify: verification(self.mode, roots), client_cert: self.client_cert(files)?, crls })
    }

    fn roots(&self, files: &dyn LibpqFiles) -> Result<Option<Roots>> {
        let (path, found) = match self.root_cert.as_deref() {
            Some("system") => return Ok(Some(Roots::System)),
            Some(path) => (Some(path.to_string()), read(files, path, true)?),
            None => match self.default_file("root.crt") {
                Some(path) => (Some(path.clone()), read(files, &path, false)?),
                None => (None, None),
            },
        };
        match (found, path) {
            (Some(file), _) => Ok(Some(Roots::File(file))),
            (None, _) if !self.mode.verifies() => Ok(None),
            (None, Some(path)) => {
                Err(config(format!("root certificate file \"{path}\" does not exist: {ROOTS_ADVICE}")))
            }
            (None, None) => Err(config(format!(
                "could not get home directory to locate root certificate file: {ROOTS_ADVICE} (sslmode \"{}\")",
                if self.mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
            ))),
        }
    }

    fn crls(&self, files: &dyn LibpqFiles) -> Result<Vec<PemFile>> {
        let mut crls = Vec::new();
        let file = match (&self.crl, &self.crl_dir) {
            (Some(path), _) => read(files, path, true)?,
            // libpq's default only when neither is given.
            (None, None) => self.default_file("root.crl").map(|path| read(files, &path, false)).transpose()?.flatten(),
            (None, Some(_)) => None,
        };
        crls.extend(file);
        if let Some(dir) = &self.crl_dir {
            for (name, ConfigFile { contents, .. }) in files.read_dir(dir)?.unwrap_or_default() {
                crls.push(PemFile { path: format!("{}/{name}", dir.trim_end_matches('/')), contents });
            }
            // libpq has OpenSSL check every certificate once a CRL directory
            // is given, found or not: with no list at all, nothing passes.
            if crls.is_empty() {
                return Err(config(format!(
                    "sslcrldir \"{dir}\" holds no certificate revocation list (<hash>.r<n>), and every certificate of the server's chain needs one"
                )));
            }
        }
        Ok(crls)
    }

    fn client_cert(&self, files: &dyn LibpqFiles) -> Result<Option<ClientCert>> {
        let cert = match (&self.cert, self.cert_disabled) {
            (_, true) => None,
            (Some(path), false) => read(files, path, true)?,
            (None, false) => self.default_file("postgresql.crt").map(|p| read(files, &p, false)).transpose()?.flatten(),
        };
        let Some(cert) = cert else {
            if self.cert_required {
                return Err(config(
                    "sslcertmode \"require\" needs a client certificate: sslcert (or ~/.postgresql/postgresql.crt) does not exist",
                ));
            }
            return Ok(None);
        };
        let key_path = self.key.clone().or_else(|| self.default_file("postgresql.key"));
        let missing_key = || {
            config(format!(
                "certificate present, but not private key file \"{}\"",
                key_path.as_deref().unwrap_or("~/.postgresql/postgresql.key")
            ))
        };
        let Some(path) = &key_path else { return Err(missing_key()) };
        let key_named = self.key.is_some();
        let found = if key_named { files.read_named(path)? } else { files.read_default(path)? };
        let Some(file) = found else { return Err(missing_key()) };
        // libpq's rule for a key owned by root, the looser of its two: the
        // owner is not known here.
        if file.mode.is_some_and(|mode| mode & 0o037 != 0) {
            return Err(config(format!(
                "private key file \"{path}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root"
            )));
        }
        Ok(Some(ClientCert { cert, key: PemFile { path: path.clone(), contents: file.contents } }))
    }
}

/// Read `path` whole. A file that is there must be readable, named or a
/// default (a default that cannot be read must not turn a check off); one
/// out of the tenant's reach is an error if the connection `named` it, and
/// missing if it is libpq's default.
fn read(files: &dyn LibpqFiles, path: &str, named: bool) -> Result<Option<PemFile>> {
    let found = if named { files.read_named(path)? } else { files.read_default(path)? };
    Ok(found.map(|file| PemFile { path: path.to_string(), contents: file.contents }))
}
