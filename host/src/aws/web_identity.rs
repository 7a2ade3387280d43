//! STS AssumeRoleWithWebIdentity with a token read the way the sandbox
//! allows: a file the connection names through the tenant's file root, or
//! the host's own AWS_WEB_IDENTITY_TOKEN_FILE (ambient). aws-config's own
//! provider reads a raw path, so pghook asks STS itself; the credentials
//! are kept and renewed by the [`super::cache::CredentialCache`], and the
//! token is read again at each renewal, as token files are rotated.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_sts::types::PolicyDescriptorType;
use aws_types::SdkConfig;
use tokio::io::AsyncReadExt;

use super::guard::{aws_error, sdk_error};
use crate::bindings::aws::WebIdentity;
use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::wit;
use crate::files::{FileRoot, READ_LIMIT};

/// Where the token comes from.
pub(crate) enum TokenFile {
    /// A path under the tenant's file root, as the connection names it.
    InRoot(FileRoot, String),
    /// The host's own token file (AWS_WEB_IDENTITY_TOKEN_FILE), ambient.
    OnHost(PathBuf),
}

impl TokenFile {
    async fn read(&self) -> Result<String, WitError> {
        let bytes = match self {
            TokenFile::InRoot(root, path) => root.read(path).await?,
            TokenFile::OnHost(path) => {
                let shown = path.display();
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| wit(ErrorKind::Io, format!("the web identity token file {shown}: {e}")))?;
                let mut bytes = Vec::new();
                file.take(READ_LIMIT)
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| wit(ErrorKind::Io, format!("the web identity token file {shown}: {e}")))?;
                bytes
            }
        };
        let token = String::from_utf8(bytes)
            .map_err(|_| wit(ErrorKind::Aws, "the web identity token file is not UTF-8 text"))?;
        // A token is one line; a trailing newline is not part of it.
        Ok(token.trim_end().to_string())
    }
}

/// botocore's session name when none is given: `botocore-session-<unix time>`.
fn default_session_name() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("botocore-session-{}", now.as_secs())
}

/// Assume `web.role_arn` with the token from `token`, asking the STS of
/// `sts` (which holds no credentials: the call is not signed).
pub(crate) async fn assume(sts: &SdkConfig, web: &WebIdentity, token: &TokenFile) -> Result<Credentials, WitError> {
    let what = format!("STS AssumeRoleWithWebIdentity for {}", web.role_arn);
    let token = token.read().await?;
    let policy_arns: Vec<PolicyDescriptorType> =
        web.policy_arns.iter().map(|arn| PolicyDescriptorType::builder().arn(arn).build()).collect();
    let out = aws_sdk_sts::Client::new(sts)
        .assume_role_with_web_identity()
        .role_arn(&web.role_arn)
        .role_session_name(web.session_name.clone().unwrap_or_else(default_session_name))
        .web_identity_token(token)
        .set_provider_id(web.provider_id.clone())
        .set_policy(web.policy.clone())
        .set_policy_arns(Some(policy_arns).filter(|arns| !arns.is_empty()))
        .set_duration_seconds(web.duration_seconds.map(|s| s.min(i32::MAX as u32) as i32))
        .send()
        .await
        .map_err(|e| sdk_error(&what, e))?;
    let credentials = out.credentials.ok_or_else(|| aws_error(&what, "the answer has no credentials"))?;
    let expiry = SystemTime::try_from(credentials.expiration)
        .map_err(|_| aws_error(&what, "the credentials' expiration is out of range"))?;
    Ok(Credentials::new(
        credentials.access_key_id,
        credentials.secret_access_key,
        Some(credentials.session_token),
        Some(expiry),
        "AssumeRoleWithWebIdentity",
    ))
}
