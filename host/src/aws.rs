//! AWS calls for IAM logins: the `aws` import. RDS tokens are signed offline;
//! Redshift and Redshift Serverless are asked over HTTPS (or the endpoint the
//! AWS connection names), subject to the tenant's host policy.

use aws_credential_types::Credentials as AwsCredentials;
use aws_sdk_rds::config::{BehaviorVersion, Region};
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::SdkConfig;
use aws_types::sdk_config::SharedCredentialsProvider;

use crate::bindings::aws::{ClientConfig, DbCredentials, Host};
use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::wit;
use crate::runtime::State;

fn aws_error(what: &str, e: impl std::fmt::Display) -> WitError {
    wit(ErrorKind::Aws, format!("{what}: {e}"))
}

/// Credentials, region and endpoint for one call, after the policy's say.
struct Resolved {
    credentials: AwsCredentials,
    region: Region,
    endpoint_url: Option<String>,
}

fn ambient(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl State {
    fn resolve_aws(&self, client: &ClientConfig, service: &str) -> Result<Resolved, WitError> {
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
        let endpoint_url = client.endpoint_url.clone();
        if !service.is_empty() {
            let host = match &endpoint_url {
                Some(url) => url_host(url).ok_or_else(|| aws_error("endpoint_url", format!("{url:?} has no host")))?,
                None => format!("{service}.{region}.amazonaws.com"),
            };
            if !self.policy.host_allowed(&host) {
                return Err(wit(ErrorKind::Denied, format!("host {host} is not allowed by this tenant's policy")));
            }
        }
        Ok(Resolved { credentials, region: Region::new(region), endpoint_url })
    }
}

/// The host part of an `http(s)://host[:port]/...` URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']').map(|(h, _)| h.trim_start_matches('['))?
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

impl Host for State {
    async fn rds_auth_token(
        &mut self,
        client: ClientConfig,
        host: String,
        port: u16,
        user: String,
    ) -> Result<String, WitError> {
        // Signing is offline: no endpoint is reached, so no host check.
        let resolved = self.resolve_aws(&client, "")?;
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
        let resolved = self.resolve_aws(&client, "redshift")?;
        let mut config = aws_sdk_redshift::Config::builder()
            .behavior_version(aws_sdk_redshift::config::BehaviorVersion::latest())
            .credentials_provider(resolved.credentials)
            .region(resolved.region);
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
            .map_err(|e| {
                aws_error(&format!("Redshift GetClusterCredentials for {cluster_identifier}"), DisplayErrorContext(e))
            })?;
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
        let resolved = self.resolve_aws(&client, "redshift-serverless")?;
        let mut config = aws_sdk_redshiftserverless::Config::builder()
            .behavior_version(aws_sdk_redshiftserverless::config::BehaviorVersion::latest())
            .credentials_provider(resolved.credentials)
            .region(resolved.region);
        if let Some(url) = resolved.endpoint_url {
            config = config.endpoint_url(url);
        }
        let out = aws_sdk_redshiftserverless::Client::from_conf(config.build())
            .get_credentials()
            .workgroup_name(&workgroup_name)
            .set_db_name(db_name)
            .send()
            .await
            .map_err(|e| {
                aws_error(&format!("Redshift Serverless GetCredentials for {workgroup_name}"), DisplayErrorContext(e))
            })?;
        match (out.db_user, out.db_password) {
            (Some(user), Some(password)) => Ok(DbCredentials { user, password }),
            _ => Err(aws_error("Redshift Serverless GetCredentials", "the answer lacks dbUser or dbPassword")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://127.0.0.1:5000").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            url_host("https://redshift.eu-west-1.amazonaws.com/").as_deref(),
            Some("redshift.eu-west-1.amazonaws.com")
        );
        assert_eq!(url_host("http://[::1]:80/x").as_deref(), Some("::1"));
        assert_eq!(url_host("http://"), None);
    }
}
