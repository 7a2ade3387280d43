//! Carrying out the guest's [`CredentialSource`] with aws-config: keys as
//! given, a profile or the default chain from the host's AWS environment
//! (only where the tenant's policy allows it), STS AssumeRole on top of
//! either, or AssumeRoleWithWebIdentity. Every request goes through the
//! tenant's [`GuardedHttpClient`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_types::SdkConfig;
use aws_types::os_shim_internal::Env;
use aws_types::region::Region;

use super::cache::Resolved;
use super::endpoint_url;
use super::guard::{GuardedHttpClient, sdk_error};
use super::web_identity::{self, TokenFile};
use crate::bindings::aws::{
    AssumeRole, BaseCredentials, ClientConfig, CredentialSource, Credentials as Keys, WebIdentity,
};
use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::wit;
use crate::files::LazyRoot;
use crate::policy::Policy;

/// The key variables boto3 does not read when a profile is named.
const KEY_VARIABLES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// What of the host's AWS environment a call needs.
struct AmbientNeeds<'a> {
    /// Whether the credentials come from it (else at most the region does).
    credentials: bool,
    /// The profile named, if any.
    profile: Option<&'a str>,
    /// The error when the policy does not allow it; `None`: not needed.
    refusal: Option<(ErrorKind, &'static str)>,
}

fn ambient_needs(client: &ClientConfig) -> AmbientNeeds<'_> {
    const PROFILE: &str = "profile_name reads the host's AWS config files, which this tenant may not use";
    let needs = |profile, refusal| AmbientNeeds { credentials: true, profile, refusal: Some(refusal) };
    match &client.credentials {
        CredentialSource::Profile(p)
        | CredentialSource::AssumeRole(AssumeRole { base: BaseCredentials::Profile(p), .. }) => {
            needs(Some(p.as_str()), (ErrorKind::Denied, PROFILE))
        }
        CredentialSource::Ambient => needs(
            None,
            (
                ErrorKind::Aws,
                "no AWS credentials: the AWS connection gives no keys, profile or role, and this tenant may \
                 not use the host's AWS environment",
            ),
        ),
        CredentialSource::AssumeRole(AssumeRole { base: BaseCredentials::Ambient, .. }) => needs(
            None,
            (
                ErrorKind::Denied,
                "role_arn without keys or a profile_name signs AssumeRole with the host's AWS credentials, \
                 which this tenant may not use",
            ),
        ),
        // Only the variable naming the token file (and the region) are read.
        CredentialSource::WebIdentity(web) if web.token_file.is_none() => AmbientNeeds {
            credentials: false,
            profile: None,
            refusal: Some((
                ErrorKind::Denied,
                "assume_role_with_web_identity without assume_role_with_web_identity_token_file reads the \
                 host's AWS_WEB_IDENTITY_TOKEN_FILE, which this tenant may not use",
            )),
        },
        CredentialSource::StaticKeys(_)
        | CredentialSource::AssumeRole(AssumeRole { base: BaseCredentials::StaticKeys(_), .. })
        | CredentialSource::WebIdentity(_) => AmbientNeeds {
            credentials: false,
            profile: None,
            refusal: client
                .region
                .is_none()
                .then_some((ErrorKind::Aws, "no AWS region: set region_name in the AWS connection's extra")),
        },
    }
}

/// The host's AWS environment, loaded by aws-config: its region and its
/// credential chain (a named profile, else the default chain).
struct Ambient {
    sdk: SdkConfig,
    env: HashMap<String, String>,
}

impl Ambient {
    async fn load(
        policy: &Policy,
        http: &GuardedHttpClient,
        region: Option<&Region>,
        needs: &AmbientNeeds<'_>,
    ) -> Ambient {
        let mut env: HashMap<String, String> = match &policy.aws_environment {
            Some(vars) => (**vars).clone(),
            None => {
                std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
            }
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone());
        if let Some(profile) = needs.profile {
            for name in KEY_VARIABLES {
                env.remove(name);
            }
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region {
            loader = loader.region(region.clone());
        }
        if !needs.credentials {
            loader = loader.no_credentials();
        }
        let sdk = loader.env(Env::from(env.clone())).load().await;
        Ambient { sdk, env }
    }

    /// Credentials from the profile or the default chain.
    fn provider(&self) -> Result<SharedCredentialsProvider, WitError> {
        self.sdk
            .credentials_provider()
            .ok_or_else(|| wit(ErrorKind::Aws, "no AWS credentials in the host's AWS environment"))
    }
}

fn static_credentials(keys: &Keys) -> Credentials {
    Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "airflow-connection",
    )
}

/// The configuration of the STS calls that assume roles.
fn sts_config(http: &GuardedHttpClient, region: &Region, client: &ClientConfig) -> SdkConfig {
    let mut sts = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.clone())
        .http_client(http.clone())
        .time_source(SharedTimeSource::new(SystemTimeSource::new()));
    if let Some(endpoint) = &client.endpoints.sts {
        sts = sts.endpoint_url(endpoint_url(endpoint));
    }
    sts.build()
}

async fn provide(what: &str, provider: &impl ProvideCredentials) -> Result<Credentials, WitError> {
    provider.provide_credentials().await.map_err(|e| sdk_error(what, e))
}

/// STS AssumeRole as the connection's `assume_role_kwargs` say, signed
/// with `base`.
async fn assume_role(
    sts: &SdkConfig,
    role: &AssumeRole,
    base: SharedCredentialsProvider,
) -> Result<Credentials, WitError> {
    let mut builder = AssumeRoleProvider::builder(&role.role_arn).configure(sts).session_name(&role.session_name);
    if !role.tags.is_empty() {
        builder = builder.tags(role.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some(id) = &role.external_id {
        builder = builder.external_id(id);
    }
    if let Some(seconds) = role.duration_seconds {
        builder = builder.session_length(std::time::Duration::from_secs(seconds.into()));
    }
    if let Some(policy) = &role.policy {
        builder = builder.policy(policy);
    }
    if !role.policy_arns.is_empty() {
        builder = builder.policy_arns(role.policy_arns.clone());
    }
    let provider = builder.build_from_provider(base).await;
    provide(&format!("STS AssumeRole for {}", role.role_arn), &provider).await
}

/// Where `web`'s token is: the file it names, in the tenant's root, else the
/// file the host's AWS_WEB_IDENTITY_TOKEN_FILE names (when `ambient` is
/// loaded, i.e. allowed), as Airflow's `_get_file_token_loader`.
async fn token_file(web: &WebIdentity, files: &LazyRoot, ambient: Option<&Ambient>) -> Result<TokenFile, WitError> {
    if let Some(path) = &web.token_file {
        return Ok(TokenFile::InRoot(files.get().await?, path.clone()));
    }
    match ambient.and_then(|a| a.env.get("AWS_WEB_IDENTITY_TOKEN_FILE")).filter(|p| !p.is_empty()) {
        Some(path) => Ok(TokenFile::OnHost(PathBuf::from(path))),
        None => Err(wit(
            ErrorKind::Config,
            "assume_role_with_web_identity: set assume_role_with_web_identity_token_file (the host's \
             AWS_WEB_IDENTITY_TOKEN_FILE is not set either)",
        )),
    }
}

/// Resolve `client`'s credentials and region under `policy`, reading a
/// token file through `files`.
pub(crate) async fn resolve(
    policy: &Arc<Policy>,
    files: &LazyRoot,
    client: &ClientConfig,
) -> Result<Resolved, WitError> {
    let needs = ambient_needs(client);
    let region = client.region.clone().map(Region::new);
    let http = GuardedHttpClient::new(policy.clone());
    let ambient = match needs.refusal {
        None => None,
        Some((kind, why)) if !policy.ambient_aws => return Err(wit(kind, why)),
        Some(_) => Some(Ambient::load(policy, &http, region.as_ref(), &needs).await),
    };
    let region = match region.or_else(|| ambient.as_ref().and_then(|a| a.sdk.region().cloned())) {
        Some(region) => region,
        None => {
            return Err(wit(
                ErrorKind::Aws,
                "no AWS region: set region_name in the AWS connection's extra (the host's AWS environment has none)",
            ));
        }
    };
    let ambient_provider =
        || ambient.as_ref().ok_or_else(|| wit(ErrorKind::Aws, "no AWS environment loaded")).and_then(Ambient::provider);
    let credentials = match &client.credentials {
        CredentialSource::StaticKeys(keys) => static_credentials(keys),
        CredentialSource::Profile(name) => {
            provide(&format!("AWS credentials of profile {name}"), &ambient_provider()?).await?
        }
        CredentialSource::Ambient => {
            provide("AWS credentials from the host's default chain", &ambient_provider()?).await?
        }
        CredentialSource::AssumeRole(role) => {
            let base = match &role.base {
                BaseCredentials::StaticKeys(keys) => SharedCredentialsProvider::new(static_credentials(keys)),
                BaseCredentials::Profile(_) | BaseCredentials::Ambient => ambient_provider()?,
            };
            assume_role(&sts_config(&http, &region, client), role, base).await?
        }
        CredentialSource::WebIdentity(web) => {
            let token = token_file(web, files, ambient.as_ref()).await?;
            web_identity::assume(&sts_config(&http, &region, client), web, &token).await?
        }
    };
    Ok(Resolved { credentials, region })
}
