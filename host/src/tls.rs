//! TLS for PostgreSQL sessions, with rustls: the certificate check the
//! guest decided (none, the chain, or the chain and the server's name), with
//! the certificates, CRLs, versions and client certificate it read. Which sslmode means
//! what is the guest's business; whether to encrypt is carried out by
//! [`crate::postgres`].
//!
//! An own connector rather than tokio-postgres-rustls (0.13, the one for
//! rustls 0.23): that crate takes a `ClientConfig`, so the decided
//! verifier and SNI (`enable_sni`; none for an IP address; the host name
//! with hostaddr) would carry over, but its channel binding does not. It
//! hashes an Ed25519 certificate with SHA-512, which PostgreSQL's server
//! cannot check, so the default channel_binding=prefer fails such a login
//! (`tls::an_ed25519_certificate_logs_in_unbound_where_tokio_postgres_rustls_fails`);
//! it binds nothing for ecdsa-with-SHA512, SHA-224 or RSA-PSS signatures,
//! so channel_binding=require fails there. It also refuses an empty host
//! name (a Unix socket in a host list under sslmode=prefer).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::auth_watch::AuthWatch;
use crate::bindings::postgres::{
    AuthRequirement, ChannelBinding as Binding, ClientCert, PemFile, Roots, TlsConfig, TlsVersion, Verify,
};
use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::wit;

mod server_end_point;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> WitError {
    wit(ErrorKind::Tls, format!("{what}: {e}"))
}

/// tokio-postgres' TLS hook for `tls`.
pub(crate) fn connector(tls: &TlsConfig) -> Result<MakeRustls, WitError> {
    Ok(MakeRustls {
        config: client_config(tls)?,
        binding_required: tls.channel_binding == Binding::Require,
        watched: None,
    })
}

/// Build the rustls client configuration for `tls`, from the certificates
/// the guest read (or the platform's roots, if it asked for them).
fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, WitError> {
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| {
                let rank = |v: TlsVersion| v as u8;
                tls.min_version.is_none_or(|min| rank(*v) >= rank(min))
                    && tls.max_version.is_none_or(|max| rank(*v) <= rank(max))
            })
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        return Err(tls_error("TLS versions", "the minimum is above the maximum"));
    }
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| tls_error("TLS versions", e))?;
    let (roots, name_checked) = match &tls.verify {
        Verify::None => (None, false),
        Verify::Chain(roots) => (Some(roots), false),
        Verify::ChainAndName(roots) => (Some(roots), true),
    };
    let webpki = match roots {
        None => None,
        Some(roots) => {
            let store = Arc::new(root_store(roots)?);
            let crls = revocation_lists(&tls.crls)?;
            let verifier = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                .with_crls(crls)
                .build()
                .map_err(|e| tls_error("root certificate", e))?;
            Some(verifier)
        }
    };
    let verifier = Arc::new(DecidedVerifier { webpki, name_checked, provider });
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let mut config = match &tls.client_cert {
        Some(ClientCert { cert, key }) => {
            let chain = CertificateDer::pem_slice_iter(&cert.contents)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error(&format!("client certificate {}", cert.path), pem_problem(&e)))?;
            if chain.is_empty() {
                return Err(tls_error(&format!("client certificate {}", cert.path), "holds no certificate"));
            }
            let private = PrivateKeyDer::from_pem_slice(&key.contents)
                .map_err(|e| tls_error(&format!("client key {}", key.path), pem_problem(&e)))?;
            builder.with_client_auth_cert(chain, private).map_err(|e| tls_error("client certificate and key", e))?
        }
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = tls.sni;
    Ok(Arc::new(config))
}

/// What is wrong with a PEM file, never quoting it: a PEM parse error
/// carries the bytes it stumbled on, which may be a secret (a key given as
/// a certificate).
fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as Pem;
    match e {
        Pem::MissingSectionEnd { .. } => "not valid PEM: a section has no end marker",
        Pem::IllegalSectionStart { .. } => "not valid PEM: a malformed section start",
        Pem::Base64Decode(_) => "not valid PEM: bad base64",
        Pem::NoItemsFound => "holds no PEM item",
        _ => "not valid PEM",
    }
}

/// The trusted roots: a PEM file's certificates, or the platform's.
fn root_store(roots: &Roots) -> Result<RootCertStore, WitError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(PemFile { path, contents }) => {
            let what = format!("root certificate {path}");
            for cert in CertificateDer::pem_slice_iter(contents) {
                store.add(cert.map_err(|e| tls_error(&what, pem_problem(&e)))?).map_err(|e| tls_error(&what, e))?;
            }
            if store.is_empty() {
                return Err(tls_error(&what, "holds no certificate"));
            }
        }
        Roots::System => {
            // Read once per process: the platform's store does not change under a running host.
            static SYSTEM: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
            let certs = SYSTEM.get_or_init(|| rustls_native_certs::load_native_certs().certs);
            store.add_parsable_certificates(certs.iter().cloned());
            if store.is_empty() {
                return Err(tls_error("sslrootcert=system", "the platform has no trusted root certificates"));
            }
        }
    }
    Ok(store)
}

/// The revocation lists of `files`, each PEM (one or more lists) or DER.
fn revocation_lists(files: &[PemFile]) -> Result<Vec<CertificateRevocationListDer<'static>>, WitError> {
    let mut crls = Vec::new();
    for PemFile { path, contents } in files {
        let what = format!("certificate revocation list {path}");
        let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(contents)
            .collect::<Result<_, _>>()
            .map_err(|e| tls_error(&what, pem_problem(&e)))?;
        match pem.is_empty() {
            true if contents.first() == Some(&0x30) => crls.push(CertificateRevocationListDer::from(contents.clone())),
            true => return Err(tls_error(&what, "holds no revocation list (PEM or DER)")),
            false => crls.extend(pem),
        }
    }
    Ok(crls)
}

/// Checks the server's certificate as the guest decided. Handshake
/// signatures are always checked, whatever was decided.
#[derive(Debug)]
struct DecidedVerifier {
    /// The chain check against the root certificates; `None`: no check.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// Whether the certificate must also name the server.
    name_checked: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DecidedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            // The chain alone: it must hold, the name may differ.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name_checked => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// How a connector that watches the login negotiates encryption. It is
/// handed the bare socket (tokio-postgres is told `sslnegotiation=direct`)
/// and sends PostgreSQL's SSLRequest itself, as tokio-postgres would for
/// the attempt's sslmode: so a plain session passes through it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Negotiate {
    /// No SSLRequest: plain (sslmode disable).
    Plain,
    /// TLS if the server agrees, else plain (prefer).
    TlsIfOffered,
    /// TLS, or fail (require).
    Tls,
}

impl Negotiate {
    /// As tokio-postgres negotiates for `mode`.
    pub(crate) fn like(mode: SslMode) -> Negotiate {
        match mode {
            SslMode::Disable => Negotiate::Plain,
            SslMode::Prefer => Negotiate::TlsIfOffered,
            _ => Negotiate::Tls,
        }
    }
}

/// tokio-postgres' TLS hook, backed by a rustls configuration.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    /// channel_binding=require: a handshake whose certificate cannot be
    /// bound to fails at once, naming why.
    binding_required: bool,
    /// require_auth: the connector negotiates itself and watches the login.
    watched: Option<(Negotiate, AuthRequirement)>,
}

impl MakeRustls {
    /// The same, for cancel requests, which log in to nothing: any
    /// certificate the session accepted will do.
    pub(crate) fn for_cancel(&self) -> MakeRustls {
        MakeRustls { binding_required: false, ..self.clone() }
    }

    /// The same, negotiating itself as tokio-postgres would for `mode` and
    /// watching the login under `requirement` ([`AuthWatch`]).
    pub(crate) fn watching(&self, mode: SslMode, requirement: &AuthRequirement) -> MakeRustls {
        MakeRustls { watched: Some((Negotiate::like(mode), requirement.clone())), ..self.clone() }
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // A Unix socket has no name; should TLS be asked for over one, the
        // server refuses it before any name is used.
        let domain = if domain.is_empty() { "localhost" } else { domain };
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{domain}: {e}")))?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
            binding_required: self.binding_required,
            watched: self.watched.clone(),
        })
    }
}

/// One TLS handshake to come.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    binding_required: bool,
    watched: Option<(Negotiate, AuthRequirement)>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, mut stream: S) -> Self::Future {
        Box::pin(async move {
            let encrypt = match &self.watched {
                // tokio-postgres has negotiated TLS already.
                None => true,
                Some((Negotiate::Plain, _)) => false,
                Some((negotiate, _)) => match ssl_request(&mut stream).await? {
                    true => true,
                    false if *negotiate == Negotiate::TlsIfOffered => false,
                    false => return Err(io::Error::other("server does not support TLS")),
                },
            };
            let watch = self.watched.map(|(_, requirement)| AuthWatch::new(requirement));
            if !encrypt {
                return Ok(RustlsStream { inner: Inner::Plain(stream), watch });
            }
            let tls = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            let stream = RustlsStream { inner: Inner::Tls(Box::new(tls)), watch };
            if self.binding_required
                && let Err(why) = stream.server_end_point()
            {
                return Err(io::Error::other(format!(
                    "channel_binding=require, but the server certificate cannot be bound to: {why}"
                )));
            }
            Ok(stream)
        })
    }
}

/// PostgreSQL's SSLRequest: whether the server agrees to TLS.
async fn ssl_request<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<bool> {
    let mut request = bytes::BytesMut::new();
    postgres_protocol::message::frontend::ssl_request(&mut request);
    stream.write_all(&request).await?;
    stream.flush().await?;
    let mut answer = [0u8];
    stream.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => Ok(true),
        b'N' => Ok(false),
        other => Err(io::Error::other(format!("the server answered the SSL request with {:?}", other as char))),
    }
}

/// A session stream: encrypted, or plain when the connector negotiated
/// itself and the server declined TLS. While the login is watched, what the
/// server sends is checked before tokio-postgres reads it.
pub struct RustlsStream<S> {
    inner: Inner<S>,
    watch: Option<AuthWatch>,
}

enum Inner<S> {
    Tls(Box<tokio_rustls::client::TlsStream<S>>),
    Plain(S),
}

impl<S> RustlsStream<S> {
    /// tls-server-end-point channel binding data for the server's
    /// certificate, or why there is none.
    fn server_end_point(&self) -> Result<Vec<u8>, String> {
        let Inner::Tls(tls) = &self.inner else {
            return Err("the session is not encrypted".into());
        };
        match tls.get_ref().1.peer_certificates().and_then(|certs| certs.first()) {
            Some(cert) => server_end_point::server_end_point(cert.as_ref()),
            None => Err("the server sent no certificate".into()),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // Without binding data tokio-postgres logs in without binding, and
        // fails channel_binding=require (refused at the handshake already).
        self.server_end_point().map_or_else(|_| ChannelBinding::none(), ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = match &mut this.inner {
            Inner::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
            Inner::Plain(plain) => Pin::new(plain).poll_read(cx, buf),
        };
        if let (Poll::Ready(Ok(())), Some(watch)) = (&read, &mut this.watch) {
            if let Err(refusal) = watch.inspect(&buf.filled()[before..]) {
                // What completed the refused request never reaches tokio-postgres.
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::PermissionDenied, refusal)));
            }
            if watch.done() {
                this.watch = None;
            }
        }
        read
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.inner {
            Inner::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
            Inner::Plain(plain) => Pin::new(plain).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
            Inner::Plain(plain) => Pin::new(plain).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
            Inner::Plain(plain) => Pin::new(plain).poll_shutdown(cx),
        }
    }
}
