//! AWS calls for IAM logins: the `aws` import. RDS tokens are signed offline;
//! Redshift and Redshift Serverless are asked over HTTPS (or the endpoint the
//! AWS connection names). Credentials come from where the guest decided
//! ([`credentials`]), are kept between a tenant's calls ([`cache`]), and every
//! request — a service's, STS's, the container or instance metadata's — goes
//! through one HTTP client that lets it leave only for a host the tenant's
//! policy allows ([`guard`]).

pub mod cache;
mod credentials;
mod guard;
mod web_identity;

use std::sync::Arc;

use aws_sdk_rds::config::BehaviorVersion;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_types::SdkConfig;
use aws_types::sdk_config::SharedCredentialsProvider;

pub use self::cache::CredentialCache;
use self::cache::Resolved;
use self::guard::{GuardedHttpClient, aws_error, sdk_error};
use crate::bindings::aws::{ClientConfig, CredentialSource, DbCredentials, Host, Scheme, ServiceEndpoint};
use crate::bindings::types::Error as WitError;
use crate::ctx::{PghookCtx, PghookCtxView};
use crate::files::LazyRoot;
use crate::policy::Policy;

/// The URL the SDK takes for `endpoint`.
fn endpoint_url(endpoint: &ServiceEndpoint) -> String {
    let scheme = match endpoint.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let host = &endpoint.host;
    let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    match endpoint.port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// The credentials and region for `client` under `policy`: keys given with
/// a region as they are, anything else through the tenant's `cache`.
async fn resolve(
    policy: &Arc<Policy>,
    files: &LazyRoot,
    cache: &CredentialCache,
    client: &ClientConfig,
) -> Result<Resolved, WitError> {
    if let (CredentialSource::StaticKeys(_), Some(_)) = (&client.credentials, &client.region) {
        return credentials::resolve(policy, files, client).await;
    }
    cache.get_or_fetch(client, credentials::resolve(policy, files, client)).await
}

impl PghookCtxView<'_> {
    /// [`resolve`] under this store's policy, file root and cache.
    async fn resolve_aws(&mut self, client: &ClientConfig) -> Result<Resolved, WitError> {
        let ctx: &PghookCtx = self.ctx;
        resolve(&ctx.policy, &ctx.files, &ctx.aws_credentials, client).await
    }
}

/// A `$service` client for one call: its credentials and region, its endpoint, and the guarded HTTP client.
macro_rules! service_client {
    ($service:ident, $policy:expr, $resolved:expr, $endpoint:expr) => {{
        let mut config = $service::Config::builder()
            .behavior_version($service::config::BehaviorVersion::latest())
            .credentials_provider($resolved.credentials)
            .region($resolved.region)
            .http_client(GuardedHttpClient::new($policy));
        if let Some(endpoint) = $endpoint {
            config = config.endpoint_url(endpoint_url(endpoint));
        }
        $service::Client::from_conf(config.build())
    }};
}

impl Host for PghookCtxView<'_> {
    async fn rds_auth_token(
        &mut self,
        client: ClientConfig,
        host: String,
        port: u16,
        user: String,
    ) -> Result<String, WitError> {
        // Signing is offline: only the credentials may reach an endpoint.
        let resolved = self.resolve_aws(&client).await?;
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(resolved.credentials))
            .region(resolved.region)
            .time_source(SharedTimeSource::new(SystemTimeSource::new()))
            .build();
        let config = aws_sdk_rds::auth_token::Config::builder()
            .hostname(host)
            .port(port.into())
            .username(user)
            .build()
            .map_err(|e| aws_error("RDS auth token", e))?;
        let token = aws_sdk_rds::auth_token::AuthTokenGenerator::new(config)
            .auth_token(&sdk)
            .await
            .map_err(|e| aws_error("RDS auth token", e))?;
        Ok(token.as_str().to_string())
    }

    async fn redshift_cluster_credentials(
        &mut self,
        client: ClientConfig,
        cluster_identifier: String,
        db_user: String,
        db_name: Option<String>,
        auto_create: bool,
    ) -> Result<DbCredentials, WitError> {
        let resolved = self.resolve_aws(&client).await?;
        let redshift = service_client!(aws_sdk_redshift, self.policy.clone(), resolved, &client.endpoints.redshift);
        let out = redshift
            .get_cluster_credentials()
            .cluster_identifier(&cluster_identifier)
            .db_user(db_user)
            .set_db_name(db_name)
            .auto_create(auto_create)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("Redshift GetClusterCredentials for {cluster_identifier}"), e))?;
        match (out.db_user, out.db_password) {
            (Some(user), Some(password)) => Ok(DbCredentials { user, password }),
            _ => Err(aws_error("Redshift GetClusterCredentials", "the answer lacks DbUser or DbPassword")),
        }
    }

    async fn redshift_serverless_credentials(
        &mut self,
        client: ClientConfig,
        workgroup_name: String,
        db_name: Option<String>,
    ) -> Result<DbCredentials, WitError> {
        let resolved = self.resolve_aws(&client).await?;
        let endpoint = &client.endpoints.redshift_serverless;
        let serverless = service_client!(aws_sdk_redshiftserverless, self.policy.clone(), resolved, endpoint);
        let out = serverless
            .get_credentials()
            .workgroup_name(&workgroup_name)
            .set_db_name(db_name)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("Redshift Serverless GetCredentials for {workgroup_name}"), e))?;
        match (out.db_user, out.db_password) {
            (Some(user), Some(password)) => Ok(DbCredentials { user, password }),
            _ => Err(aws_error("Redshift Serverless GetCredentials", "the answer lacks dbUser or dbPassword")),
        }
    }
}
