//! The one way out for AWS requests: an HTTP client that sends a request only
//! to a host the tenant's policy allows. Every AWS client and credential
//! provider pghook builds uses it, so service calls, STS, and container and
//! instance metadata are all judged by the host they are really sent to,
//! after the SDK resolved the endpoint (every partition, `amazonaws.com.cn`
//! too, and every endpoint a connection names).

use std::sync::{Arc, OnceLock};

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::wit;
use crate::policy::{Destination, Policy};

/// The SDK's own default HTTPS client (hyper 1, rustls with aws-lc, proxies
/// from the environment), built once: its connection pools serve every call.
fn sdk_https_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Builder::new().build_with_connector_fn(|settings, components| {
                let mut connector = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            })
        })
        .clone()
}

/// An HTTP client that refuses any request to a host the policy does not
/// allow, before a socket opens.
#[derive(Debug, Clone)]
pub(crate) struct GuardedHttpClient {
    policy: Arc<Policy>,
    inner: SharedHttpClient,
}

impl GuardedHttpClient {
    /// The SDK's HTTPS client, confined to `policy`'s hosts.
    pub(crate) fn new(policy: Arc<Policy>) -> GuardedHttpClient {
        GuardedHttpClient { policy, inner: sdk_https_client() }
    }
}

impl HttpClient for GuardedHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let inner = self.inner.http_connector(settings, components);
        SharedHttpConnector::new(GuardedConnector { policy: self.policy.clone(), inner })
    }
}

#[derive(Debug)]
struct GuardedConnector {
    policy: Arc<Policy>,
    inner: SharedHttpConnector,
}

impl HttpConnector for GuardedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        match check(&self.policy, request.uri()) {
            Ok(()) => self.inner.call(request),
            // A user error: the SDK does not retry it.
            Err(denied) => HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(denied)))),
        }
    }
}

/// Whether a request to `uri` may leave, judged by its host as the HTTP
/// client will parse it.
fn check(policy: &Policy, uri: &str) -> Result<(), HostDenied> {
    let parsed: http::Uri = uri.parse().map_err(|e| HostDenied(format!("AWS endpoint {uri:?}: {e}")))?;
    let host = parsed
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| HostDenied(format!("AWS endpoint {uri:?} has no host")))?;
    policy.check(Destination::parse(host)).map(drop).map_err(|refusal| HostDenied(format!("AWS endpoint {refusal}")))
}

/// The refusal [`GuardedHttpClient`] hands back through the SDK.
#[derive(Debug)]
pub(crate) struct HostDenied(String);

impl std::fmt::Display for HostDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostDenied {}

/// An AWS error: `what` failed because of `e`.
pub(crate) fn aws_error(what: &str, e: impl std::fmt::Display) -> WitError {
    wit(ErrorKind::Aws, format!("{what}: {e}"))
}

/// A failed SDK call or credential provider: `Denied` if the guard stopped
/// it anywhere down the chain of causes, else an AWS error with the SDK's
/// whole explanation.
pub(crate) fn sdk_error(what: &str, e: impl std::error::Error + 'static) -> WitError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(denied) = s.downcast_ref::<HostDenied>() {
            return wit(ErrorKind::Denied, format!("{what}: {denied}"));
        }
        source = s.source();
    }
    aws_error(what, DisplayErrorContext(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_judged_as_the_client_parses_them() {
        let policy = Policy::new("/").allow_host("*.amazonaws.com").allow_host("127.0.0.1");
        assert!(check(&policy, "https://sts.us-east-1.amazonaws.com/").is_ok());
        assert!(check(&policy, "http://127.0.0.1:5000/creds").is_ok());
        for (uri, why) in [
            ("https://sts.cn-north-1.amazonaws.com.cn/", "host sts.cn-north-1.amazonaws.com.cn is not allowed"),
            ("http://169.254.169.254/latest/api/token", "host 169.254.169.254 is not allowed"),
            ("http://169.254.170.2/v2/credentials", "host 169.254.170.2 is not allowed"),
            ("/no/host", "has no host"),
        ] {
            let denied = check(&policy, uri).unwrap_err().to_string();
            assert!(denied.contains(why), "{uri}: {denied}");
        }
    }

    #[test]
    fn a_denial_anywhere_in_the_chain_is_denied() {
        let denied = ConnectorError::user(Box::new(HostDenied("AWS endpoint host x is not allowed".into())));
        let wrapped = aws_credential_types::provider::error::CredentialsError::provider_error(denied);
        let e = sdk_error("STS AssumeRole", wrapped);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Denied, "STS AssumeRole: AWS endpoint host x is not allowed")
        );
    }
}
