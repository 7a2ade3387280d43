//! Real servers for pghook's end-to-end tests: throwaway PostgreSQL clusters
//! started from the installed binaries (plain, scram-sha-256, TLS with a
//! test CA and client certificates, and a primary with a streaming hot
//! standby), moto's server for Redshift and STS, and small HTTP stand-ins
//! ([`stand_in`]): the Redshift Serverless API and the container
//! credentials endpoint, which moto lacks, and a recording proxy in front
//! of moto.
//!
//! Airflow's own PostgresHook runs beside them ([`airflow`]) so a test can
//! compare its results with pghook's value by value ([`py_value`]).
//!
//! Every server is stopped by a watchdog when the test process exits, so
//! nothing outlives a test run.

pub mod airflow;
pub mod py_value;
pub mod stand_in;

pub use airflow::airflow_hook;
pub use py_value::Py;
pub use stand_in::{Response, StandIn};

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser of every test cluster, and its password.
pub const SUPERUSER: &str = "postgres";
/// The superuser's password (scram-sha-256 over TCP).
pub const PASSWORD: &str = "s3cret pw/:@";
/// The password of the roles `pwuser` and `md5user`, which a plain
/// cluster's server asks for in cleartext and as an MD5 hash; `trusted`
/// logs in over TCP without one.
pub const ROLE_PASSWORD: &str = "r0le pw";

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Where the PostgreSQL server binaries are: `PGHOOK_PG_BINDIR`, else the
/// newest /usr/lib/postgresql/N/bin, else the PATH.
pub fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PGHOOK_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_default()
}

/// Run a PostgreSQL server binary, as the `postgres` user when we are root
/// (initdb refuses root).
fn pg_command(binary: &str) -> Command {
    let path = pg_bindir().join(binary);
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn give_to_postgres(path: &Path) {
    if is_root() {
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(path), "chown");
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run `script` in the background. It is never waited for: it must outlive
/// this process to clean up after it.
#[allow(clippy::zombie_processes)]
fn detach(script: &str) {
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting a background watchdog");
}

/// Run `cleanup` (a shell snippet) once this test process has exited.
fn on_exit(cleanup: &str) {
    detach(&format!("while kill -0 {} 2>/dev/null; do sleep 0.3; done; {cleanup}", std::process::id()));
}

/// Certificates for a TLS cluster, all PEM files in one directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The directory holding them.
    pub dir: PathBuf,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here: verification against it must fail.
    pub other_ca: PathBuf,
    /// A client certificate for the role `certuser`.
    pub client_cert: PathBuf,
    /// The private key of `client_cert`.
    pub client_key: PathBuf,
    /// A CRL of the CA revoking the server's certificate.
    pub revoked_crl: PathBuf,
    /// A CRL of the CA revoking nothing.
    pub empty_crl: PathBuf,
}

/// How a TLS cluster's certificates are signed: the CA's key, and so the
/// server certificate's signatureAlgorithm (whose hash channel binding uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// ECDSA P-256 with SHA-256 (the shared TLS cluster's).
    EcdsaP256Sha256,
    /// ECDSA P-384 with SHA-384.
    EcdsaP384Sha384,
    /// Ed25519, which has no hash of its own.
    Ed25519,
}

impl Signature {
    fn algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Signature::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Signature::EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Signature::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

fn make_tls_files(dir: &Path, signature: Signature) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, KeyIdMethod, KeyPair,
        KeyUsagePurpose, RevokedCertParams, SerialNumber, date_time_ymd,
    };
    std::fs::create_dir_all(dir).unwrap();
    let generate = || KeyPair::generate_for(signature.algorithm()).unwrap();
    let ca = |name: &str| {
        let key = generate();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("pghook test CA");
    let (other_cert, _) = ca("pghook other CA");
    // The server's certificate names only "localhost": 127.0.0.1 is a mismatch.
    let server_key = generate();
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, "localhost");
    server.serial_number = Some(SerialNumber::from(4242));
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    let crl = |revoked: Vec<u64>| {
        let revoked_certs = revoked
            .into_iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&ca_cert, &ca_key).unwrap().pem().unwrap()
    };
    let client_key = generate();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(DnType::CommonName, "certuser");
    let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let files = TlsFiles {
        dir: dir.to_path_buf(),
        ca: write("ca.crt", ca_cert.pem()),
        other_ca: write("other-ca.crt", other_cert.pem()),
        client_cert: write("client.crt", client_cert.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        revoked_crl: write("revoked.crl", crl(vec![4242])),
        empty_crl: write("empty.crl", crl(vec![])),
    };
    write("server.crt", server_cert.pem());
    let key = write("server.key", openssl_pem(&server_key, signature));
    give_to_postgres(dir);
    use std::os::unix::fs::PermissionsExt;
    // libpq (and pghook) refuse a private key others may read.
    for key in [&key, &files.client_key] {
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    files
}

/// A private key's PEM as the server's OpenSSL 3.0 reads it: ring writes
/// Ed25519 keys as PKCS#8 v2 (with the public key), which it refuses; v1
/// holds the seed alone.
fn openssl_pem(key: &rcgen::KeyPair, signature: Signature) -> String {
    if signature != Signature::Ed25519 {
        return key.serialize_pem();
    }
    let v2 = key.serialize_der();
    let mut v1 = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    // The seed, after the version, algorithm and the octet strings' headers.
    v1.extend_from_slice(&v2[16..48]);
    rcgen::KeyPair::try_from(v1.as_slice()).unwrap().serialize_pem()
}

/// A fresh directory for a cluster, readable by the `postgres` user.
fn cluster_base() -> PathBuf {
    let base = tempfile::Builder::new().prefix("pghook-pg-").tempdir().unwrap().keep();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    base
}

static PLAIN: OnceLock<Cluster> = OnceLock::new();
static TLS: OnceLock<Cluster> = OnceLock::new();

/// A throwaway PostgreSQL cluster on loopback.
#[derive(Debug)]
pub struct Cluster {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The Unix socket directory (local connections are trusted).
    pub socket_dir: PathBuf,
    /// The certificates of a TLS cluster.
    pub tls: Option<TlsFiles>,
    stop_line: String,
}

impl Cluster {
    /// A cluster of its own (not the shared one), stopped by [`Cluster::stop`]
    /// or when the process exits.
    pub fn start_plain() -> Cluster {
        Cluster::start(None)
    }

    /// A TLS cluster of its own, as [`Cluster::tls`] but with certificates
    /// signed with `signature`; stopped by [`Cluster::stop`] or when the
    /// process exits.
    pub fn start_tls(signature: Signature) -> Cluster {
        Cluster::start(Some(signature))
    }

    /// Stop the server now and remove its files.
    pub fn stop(&self) {
        let _ = Command::new("sh").args(["-c", &self.stop_line]).output();
    }

    fn start(tls_signature: Option<Signature>) -> Cluster {
        let base = cluster_base();
        let data = base.join("data");
        let pwfile = base.join("pwfile");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        give_to_postgres(&base);
        run(
            pg_command("initdb")
                .args(["-D"])
                .arg(&data)
                .args([
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        );
        let tls = tls_signature.map(|signature| make_tls_files(&base.join("tls"), signature));
        if tls.is_none() {
            // Over TCP: scram-sha-256, but for three roles that log in by
            // each of the other methods a server may ask for. Local
            // connections may replicate (a standby's base backup).
            let hba = "local all all trust\n\
                       local replication all trust\n\
                       host all trusted 127.0.0.1/32 trust\n\
                       host all pwuser 127.0.0.1/32 password\n\
                       host all md5user 127.0.0.1/32 md5\n\
                       host all all 127.0.0.1/32 scram-sha-256\n\
                       host all all ::1/128 scram-sha-256\n";
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
            give_to_postgres(&data);
        }
        if let Some(tls) = &tls {
            // Encryption is mandatory over TCP; certuser logs in by certificate.
            let hba = "local all all trust\n\
                       hostssl all certuser 127.0.0.1/32 cert\n\
                       hostssl all certuser ::1/128 cert\n\
                       hostssl all all 127.0.0.1/32 scram-sha-256\n\
                       hostssl all all ::1/128 scram-sha-256\n";
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
            let conf = format!(
                "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\nssl_ca_file = '{0}/ca.crt'\n",
                tls.dir.display()
            );
            let mut file = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
            file.write_all(conf.as_bytes()).unwrap();
            give_to_postgres(&data);
        }
        let cluster = Cluster::launch(&base, tls);
        cluster.psql("CREATE ROLE certuser LOGIN; CREATE ROLE alice LOGIN PASSWORD 'alice pw'");
        // md5 asks for an MD5 hash only of a password stored as one.
        cluster.psql(&format!(
            "CREATE ROLE trusted LOGIN; CREATE ROLE pwuser LOGIN PASSWORD '{ROLE_PASSWORD}'; \
             SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD '{ROLE_PASSWORD}'"
        ));
        cluster
    }

    /// Start the server of the data directory `base`/data, listening on a
    /// free port of 127.0.0.1 and in `base`/sock; it is stopped and `base`
    /// removed when the process exits.
    fn launch(base: &Path, tls: Option<TlsFiles>) -> Cluster {
        let data = base.join("data");
        let socket_dir = base.join("sock");
        std::fs::create_dir_all(&socket_dir).unwrap();
        give_to_postgres(&socket_dir);
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            socket_dir.display()
        );
        run(
            pg_command("pg_ctl")
                .args(["-D"])
                .arg(&data)
                .arg("-l")
                .arg(base.join("log"))
                .args(["-w", "-o", &options, "start"]),
            "pg_ctl start",
        );
        let stop = pg_command("pg_ctl");
        let stop_line = format!(
            "{} -D {} stop -m immediate; rm -rf {}",
            std::iter::once(stop.get_program())
                .chain(stop.get_args())
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            data.display(),
            base.display()
        );
        on_exit(&stop_line);
        Cluster { port, socket_dir, tls, stop_line }
    }

    /// The shared plain cluster: scram-sha-256 over TCP, no TLS.
    pub fn plain() -> &'static Cluster {
        PLAIN.get_or_init(|| Cluster::start(None))
    }

    /// The shared TLS cluster: TLS required over TCP, certificate login for
    /// `certuser`, scram-sha-256 for everyone else.
    pub fn tls() -> &'static Cluster {
        TLS.get_or_init(|| Cluster::start(Some(Signature::EcdsaP256Sha256)))
    }

    fn plain_if_started() -> Option<&'static Cluster> {
        PLAIN.get()
    }

    fn tls_if_started() -> Option<&'static Cluster> {
        TLS.get()
    }

    /// Run SQL as the superuser over the Unix socket; returns psql's
    /// unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(pg_bindir().join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", "postgres", "-c", sql])
            .output()
            .expect("running psql");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An Airflow URI for the superuser on 127.0.0.1 with `extras` as query.
    pub fn uri(&self, extras: &str) -> String {
        self.uri_db("postgres", extras)
    }

    /// [`Cluster::uri`] for database `db`.
    pub fn uri_db(&self, db: &str, extras: &str) -> String {
        let query = if extras.is_empty() { String::new() } else { format!("?{extras}") };
        format!("postgres://{SUPERUSER}:s3cret%20pw%2F%3A%40@127.0.0.1:{}/{db}{query}", self.port)
    }

    /// A fresh database, for tests that must not see each other's tables.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(&format!("DROP DATABASE IF EXISTS {name}"));
        self.psql(&format!("CREATE DATABASE {name}"));
        name.to_string()
    }
}

/// A primary and its streaming hot standby, each a plain cluster of its own
/// (scram-sha-256 over TCP, trust over the socket): for multi-host
/// connections and libpq's target_session_attrs.
#[derive(Debug)]
pub struct Replicated {
    /// The primary: not in recovery, sessions read-write.
    pub primary: Cluster,
    /// A hot standby streaming from the primary: in recovery, sessions read-only.
    pub standby: Cluster,
}

static REPLICATED: OnceLock<Replicated> = OnceLock::new();

impl Replicated {
    /// The shared pair, started once per test process, both answering.
    pub fn get() -> &'static Replicated {
        REPLICATED.get_or_init(|| {
            let primary = Cluster::start(None);
            let base = cluster_base();
            give_to_postgres(&base);
            // The primary's pg_hba.conf lets local connections replicate; -R makes
            // the copy a standby of the primary.
            run(
                pg_command("pg_basebackup")
                    .arg("-D")
                    .arg(base.join("data"))
                    .arg("-h")
                    .arg(&primary.socket_dir)
                    .args(["-p", &primary.port.to_string(), "-U", SUPERUSER])
                    .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]),
                "pg_basebackup",
            );
            let standby = Cluster::launch(&base, None);
            let deadline = Instant::now() + Duration::from_secs(30);
            while standby.psql("SELECT pg_is_in_recovery()") != "t" {
                assert!(Instant::now() < deadline, "the standby on port {} is not in recovery", standby.port);
                std::thread::sleep(Duration::from_millis(100));
            }
            Replicated { primary, standby }
        })
    }
}

/// moto's server on loopback, from the virtualenv scripts/setup made.
#[derive(Debug)]
pub struct Moto {
    /// The port on 127.0.0.1.
    pub port: u16,
}

impl Moto {
    /// The shared moto server.
    pub fn get() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(|| {
            let binary = std::env::var("PGHOOK_MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
            });
            assert!(
                binary.exists(),
                "moto_server not found at {}: run scripts/setup (or set PGHOOK_MOTO_SERVER)",
                binary.display()
            );
            let port = free_port();
            let script = format!(
                "{} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.3; done; kill $m",
                binary.display(),
                std::process::id()
            );
            detach(&script);
            wait_for_port(port, "moto");
            Moto { port }
        })
    }

    /// moto's endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A minimal Redshift Serverless API (moto has none): answers
/// GetCredentials with a fixed login, anything else with a
/// ValidationException; every request is recorded.
pub fn serverless_stand_in(db_user: &str, db_password: &str) -> StandIn {
    let (user, password) = (db_user.to_string(), db_password.to_string());
    StandIn::start(move |request| {
        const JSON: &str = "application/x-amz-json-1.1";
        match request.header("x-amz-target").unwrap_or_default() {
            "RedshiftServerless.GetCredentials" => {
                Response::json(JSON, serde_json::json!({"dbUser": user, "dbPassword": password, "expiration": 1.9e9}))
            }
            target => Response {
                status: "400 Bad Request".into(),
                ..Response::json(
                    JSON,
                    serde_json::json!({"__type": "ValidationException", "message": format!("unknown target {target}")}),
                )
            },
        }
    })
}

/// The `pghook` binary next to the running program (target/<profile>/pghook),
/// for the bench and round-trip programs. Cargo does not build a dependency's
/// binaries, so build it with them: `cargo build -p pghook -p pghook-tests`
/// (scripts/bench and scripts/demo do). The tests use `CARGO_BIN_EXE_pghook`.
pub fn sibling_pghook_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("finding the running program");
    let binary = exe.with_file_name("pghook");
    assert!(
        binary.exists(),
        "{} not found: build it with `cargo build -p pghook -p pghook-tests` (add --release for a release build)",
        binary.display()
    );
    binary
}

/// The guest runtime, compiled once per test process.
pub fn runtime() -> &'static pghook::Runtime {
    static RUNTIME: OnceLock<pghook::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| pghook::Runtime::new().expect("compiling the guest"))
}

/// A tenant rooted at `root` that may reach loopback, with `connections`.
pub fn tenant(root: &Path, connections: &[(&str, &str)]) -> pghook::Tenant {
    let mut source = pghook::MapConnections::new();
    for (id, stored) in connections {
        source = source.with(*id, *stored);
    }
    let mut policy = pghook::Policy::new(root).allow_host("127.0.0.1").allow_host("localhost").with_connections(source);
    let replicated = REPLICATED.get().into_iter().flat_map(|pair| [&pair.primary, &pair.standby]);
    for cluster in [Cluster::plain_if_started(), Cluster::tls_if_started()].into_iter().flatten().chain(replicated) {
        policy = policy.allow_socket_dir(&cluster.socket_dir);
    }
    runtime().tenant(policy)
}
