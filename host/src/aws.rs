//! AWS calls for IAM logins: the `aws` import. RDS tokens are signed offline;
//! Redshift and Redshift Serverless are asked over HTTPS (or the endpoint the
//! AWS connection names), subject to the tenant's host policy: the host each
//! request is about to be sent to, after the SDK resolved its endpoint, is
//! checked just before it leaves.

use std::sync::Arc;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sdk_rds::config::{BehaviorVersion, Region};
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::SdkConfig;
use aws_types::sdk_config::SharedCredentialsProvider;

use crate::bindings::aws::{ClientConfig, DbCredentials, Host, Scheme, ServiceEndpoint};
use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::ctx::PghookCtxView;
use crate::error::wit;
use crate::policy::{Destination, Policy};

fn aws_error(what: &str, e: impl std::fmt::Display) -> WitError {
    wit(ErrorKind::Aws, format!("{what}: {e}"))
}

/// A failed SDK call: `Denied` if [`HostGuard`] stopped it, else an AWS error.
fn sdk_error(what: &str, e: impl std::error::Error + 'static) -> WitError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(denied) = s.downcast_ref::<HostDenied>() {
            return wit(ErrorKind::Denied, format!("{what}: {denied}"));
        }
        source = s.source();
    }
    aws_error(what, DisplayErrorContext(e))
}

/// An SDK interceptor that lets a request leave only for a host the tenant's
/// policy allows. It reads the URI the HTTP client will connect to, so every
/// partition (`amazonaws.com.cn`, ...) and every endpoint the guest names is judged by
/// where it really leads.
#[derive(Debug)]
struct HostGuard(Arc<Policy>);

/// The refusal [`HostGuard`] hands back through the SDK.
#[derive(Debug)]
struct HostDenied(String);

impl std::fmt::Display for HostDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostDenied {}

impl Intercept for HostGuard {
    fn name(&self) -> &'static str {
        "pghook host policy"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uri = context.request().uri();
        // The same parse the HTTP client does before it connects.
        let parsed: http::Uri = uri.parse().map_err(|e| HostDenied(format!("AWS endpoint {uri:?}: {e}")))?;
        let host = parsed
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| HostDenied(format!("AWS endpoint {uri:?} has no host")))?;
        match self.0.check(Destination::parse(host)) {
            Ok(_) => Ok(()),
            Err(refusal) => Err(HostDenied(format!("AWS endpoint {refusal}")).into()),
        }
    }
}

/// Credentials, region and endpoint for one call.
struct Resolved {
    credentials: AwsCredentials,
    region: Region,
    endpoint_url: Option<String>,
}

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

fn ambient(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl PghookCtxView<'_> {
    fn resolve_aws(&self, client: &ClientConfig) -> Result<Resolved, WitError> {
        let ambient_allowed = self.policy.ambient_aws;
        let credentials = match &client.credentials {
            Some(c) => AwsCredentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                c.session_token.clone(),
                None,
                "airflow-connection",
            ),
            None if ambient_allowed => match (ambient("AWS_ACCESS_KEY_ID"), ambient("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => {
                    AwsCredentials::new(id, secret, ambient("AWS_SESSION_TOKEN"), None, "environment")
                }
                _ => {
                    return Err(wit(
                        ErrorKind::Aws,
                        "no AWS credentials: the AWS connection has none and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set",
                    ));
                }
            },
            None => {
                return Err(wit(
                    ErrorKind::Aws,
                    "no AWS credentials: give the AWS connection a login (key id) and password (secret key)",
                ));
            }
        };
        let region = client
            .region
            .clone()
            .or_else(|| {
                ambient_allowed.then(|| ambient("AWS_REGION").or_else(|| ambient("AWS_DEFAULT_REGION"))).flatten()
            })
            .ok_or_else(|| wit(ErrorKind::Aws, "no AWS region: set region_name in the AWS connection's extra"))?;
        Ok(Resolved {
            credentials,
            region: Region::new(region),
            endpoint_url: client.endpoint.as_ref().map(endpoint_url),
        })
    }
}

impl Host for PghookCtxView<'_> {
    async fn rds_auth_token(
        &mut self,
        client: ClientConfig,
        host: String,
        port: u16,
        user: String,
    ) -> Result<String, WitError> {
        // Signing is offline: no endpoint is reached, so no host check.
        let resolved = self.resolve_aws(&client)?;
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
        let resolved = self.resolve_aws(&client)?;
        let mut config = aws_sdk_redshift::Config::builder()
            .behavior_version(aws_sdk_redshift::config::BehaviorVersion::latest())
            .credentials_provider(resolved.credentials)
            .region(resolved.region)
            .interceptor(HostGuard(self.policy.clone()));
        if let Some(url) = resolved.endpoint_url {
            config = config.endpoint_url(url);
        }
        let out = aws_sdk_redshift::Client::from_conf(config.build())
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
        let resolved = self.resolve_aws(&client)?;
        let mut config = aws_sdk_redshiftserverless::Config::builder()
            .behavior_version(aws_sdk_redshiftserverless::config::BehaviorVersion::latest())
            .credentials_provider(resolved.credentials)
            .region(resolved.region)
            .interceptor(HostGuard(self.policy.clone()));
        if let Some(url) = resolved.endpoint_url {
            config = config.endpoint_url(url);
        }
        let out = aws_sdk_redshiftserverless::Client::from_conf(config.build())
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
