//! Airflow AWS connections, read as the amazon provider's
//! `AwsConnectionWrapper` and `BaseSessionFactory` read them, into the host's
//! orders: where credentials come from, which region, which endpoints.
//!
//! The precedence is Airflow's:
//! 1. `role_arn` set: the role is assumed, by `assume_role_method`
//!    (`assume_role`, the default, signed with the credentials of 2.; or
//!    `assume_role_with_web_identity`, with a token file);
//! 2. else keys: the login and password, else the `aws_access_key_id` and
//!    `aws_secret_access_key` extras, else those of `session_kwargs`;
//! 3. else `profile_name`: a profile of the host's AWS files;
//! 4. else, and without a connection at all, the host's default chain.
//!
//! What Airflow supports and pghook cannot is refused, naming it.

use serde_json::{Map, Value};

use crate::bindings::aws::{
    AssumeRole, BaseCredentials, ClientConfig, CredentialSource, Credentials, Scheme, ServiceEndpoint,
    ServiceEndpoints, WebIdentity,
};
use crate::connection::{Connection, json_type, truthy};
use crate::error::{Result, config};
use crate::uri::urlsplit;

/// The AWS services pghook calls, by their boto3 names in `service_config`.
const STS: &str = "sts";
const REDSHIFT: &str = "redshift";
const REDSHIFT_SERVERLESS: &str = "redshift-serverless";

/// `config_kwargs` (botocore's `Config`) keys that only tune retries,
/// timeouts and the user agent: accepted and left to the SDK's defaults.
/// Any other key changes where or how requests go, and is refused.
const IGNORED_CONFIG_KWARGS: &[&str] =
    &["retries", "connect_timeout", "read_timeout", "max_pool_connections", "tcp_keepalive", "user_agent_extra"];

/// The AWS connection's orders for the host. `None` (the connection is not
/// defined) is the host's default chain, as boto3's without a connection.
pub fn client_config(aws: Option<&Connection>) -> Result<ClientConfig> {
    let Some(aws) = aws else {
        return Ok(ClientConfig {
            credentials: CredentialSource::Ambient,
            region: None,
            endpoints: ServiceEndpoints { sts: None, redshift: None, redshift_serverless: None },
        });
    };
    let extras = Extras { conn: aws };
    extras.refuse_unsupported()?;
    Ok(ClientConfig {
        credentials: extras.credential_source()?,
        region: extras.string("region_name")?,
        endpoints: extras.endpoints()?,
    })
}

/// One AWS connection's extras, with errors that name the connection and
/// the extra and never quote a value.
struct Extras<'a> {
    conn: &'a Connection,
}

impl Extras<'_> {
    fn fail(&self, field: &str, why: impl std::fmt::Display) -> crate::bindings::types::Error {
        config(format!("aws connection `{}`: {field}: {why}", self.conn.conn_id))
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.conn.extra.get(key).filter(|v| !v.is_null())
    }

    /// A string extra; empty counts as unset, as Airflow's `if value:`.
    fn string(&self, key: &str) -> Result<Option<String>> {
        string_in(self.get(key)).map_err(|why| self.fail(key, why))
    }

    /// An object extra (`assume_role_kwargs`, `service_config`...).
    fn object(&self, key: &str) -> Result<Option<&Map<String, Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(self.fail(
                key,
                format!(
                    "must be a JSON object, not {} (in a URI, give the extras as JSON in __extra__)",
                    json_type(other)
                ),
            )),
        }
    }

    /// Settings Airflow honours that pghook cannot.
    fn refuse_unsupported(&self) -> Result<()> {
        match self.get("verify") {
            None => {}
            Some(v) if v.is_boolean() && truthy(v) => {}
            Some(Value::String(s)) if matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on") => {}
            Some(_) => {
                return Err(self.fail(
                    "verify",
                    "pghook always checks AWS endpoints' certificates against the system's roots; \
                     turning that off or a CA bundle is not supported",
                ));
            }
        }
        let kwargs = self.object("config_kwargs")?.into_iter().flat_map(|kwargs| kwargs.keys());
        if let Some(key) = kwargs.into_iter().find(|k| !IGNORED_CONFIG_KWARGS.contains(&k.as_str())) {
            return Err(self.fail(
                "config_kwargs",
                format!(
                    "`{key}` (botocore Config) is not supported by pghook; only {} are accepted, and ignored",
                    IGNORED_CONFIG_KWARGS.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Airflow's `_get_credentials`: login and password, then the extras,
    /// then `session_kwargs`; each pair only whole.
    fn static_keys(&self) -> Result<Option<Credentials>> {
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let session_kwargs = self.object("session_kwargs")?;
        let in_session = |key: &str| -> Result<Option<String>> {
            string_in(session_kwargs.and_then(|m| m.get(key)).filter(|v| !v.is_null()))
                .map_err(|why| self.fail(&format!("session_kwargs.{key}"), why))
        };
        let pairs = [
            (non_empty(&self.conn.login), non_empty(&self.conn.password)),
            (self.string("aws_access_key_id")?, self.string("aws_secret_access_key")?),
            (in_session("aws_access_key_id")?, in_session("aws_secret_access_key")?),
        ];
        let session_token = match self.string("aws_session_token")? {
            Some(token) => Some(token),
            None => in_session("aws_session_token")?,
        };
        let whole = pairs.iter().find_map(|pair| match pair {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
            _ => None,
        });
        match whole {
            Some((access_key_id, secret_access_key)) => {
                Ok(Some(Credentials { access_key_id, secret_access_key, session_token }))
            }
            None if pairs.iter().any(|(id, secret)| id.is_some() || secret.is_some()) => Err(self.fail(
                "credentials",
                "the access key id (login) and secret key (password) go together: one is missing",
            )),
            None if session_token.is_some() => {
                Err(self.fail("aws_session_token", "needs the access key id (login) and secret key (password)"))
            }
            None => Ok(None),
        }
    }

    /// The credentials without a role: keys, else a profile, else the
    /// host's default chain.
    fn base_credentials(&self) -> Result<BaseCredentials> {
        if let Some(keys) = self.static_keys()? {
            return Ok(BaseCredentials::StaticKeys(keys));
        }
        Ok(match self.string("profile_name")? {
            Some(profile) => BaseCredentials::Profile(profile),
            None => BaseCredentials::Ambient,
        })
    }

    fn credential_source(&self) -> Result<CredentialSource> {
        let Some(role_arn) = self.string("role_arn")? else {
            return Ok(match self.base_credentials()? {
                BaseCredentials::StaticKeys(keys) => CredentialSource::StaticKeys(keys),
                BaseCredentials::Profile(profile) => CredentialSource::Profile(profile),
                BaseCredentials::Ambient => CredentialSource::Ambient,
            });
        };
        let kwargs = self.object("assume_role_kwargs")?;
        let kwargs = Kwargs { extras: self, map: kwargs };
        match self.string("assume_role_method")?.as_deref().unwrap_or("assume_role") {
            "assume_role" => {
                kwargs.only(&["RoleSessionName", "ExternalId", "DurationSeconds", "Policy", "PolicyArns", "Tags"])?;
                let session_name = match kwargs.string("RoleSessionName")? {
                    Some(name) => name,
                    None => session_name_for(&self.conn.conn_id),
                };
                Ok(CredentialSource::AssumeRole(AssumeRole {
                    role_arn,
                    session_name,
                    external_id: kwargs.string("ExternalId")?,
                    duration_seconds: kwargs.duration()?,
                    policy: kwargs.string("Policy")?,
                    policy_arns: kwargs.policy_arns()?,
                    tags: kwargs.tags()?,
                    base: self.base_credentials()?,
                }))
            }
            "assume_role_with_web_identity" => {
                match self.string("assume_role_with_web_identity_federation")?.as_deref() {
                    Some("file") => {}
                    Some("google") => {
                        return Err(self.fail(
                            "assume_role_with_web_identity_federation",
                            "`google` is not supported by pghook: use `file` with a token file",
                        ));
                    }
                    _ => {
                        return Err(self.fail(
                            "assume_role_with_web_identity_federation",
                            "must be `file` (the token is read from a file), as Airflow requires",
                        ));
                    }
                }
                kwargs.only(&["RoleSessionName", "DurationSeconds", "Policy", "PolicyArns", "ProviderId"])?;
                Ok(CredentialSource::WebIdentity(WebIdentity {
                    role_arn,
                    token_file: self.string("assume_role_with_web_identity_token_file")?,
                    session_name: kwargs.string("RoleSessionName")?,
                    duration_seconds: kwargs.duration()?,
                    policy: kwargs.string("Policy")?,
                    policy_arns: kwargs.policy_arns()?,
                    provider_id: kwargs.string("ProviderId")?,
                }))
            }
            "assume_role_with_saml" => Err(self.fail(
                "assume_role_method",
                "`assume_role_with_saml` is not supported by pghook (it needs a SAML identity provider \
                 over Kerberos); use `assume_role` or `assume_role_with_web_identity`",
            )),
            _ => Err(self.fail(
                "assume_role_method",
                "must be `assume_role` (the default) or `assume_role_with_web_identity` \
                 (Airflow's `assume_role_with_saml` is not supported by pghook)",
            )),
        }
    }

    /// Airflow's `get_service_endpoint_url`: the service's own
    /// `service_config.<service>.endpoint_url`, else `endpoint_url`; STS,
    /// used here only to assume roles, never takes `endpoint_url`.
    fn endpoints(&self) -> Result<ServiceEndpoints> {
        let services = self.object("service_config")?;
        let global = self.string("endpoint_url")?;
        let endpoint = |service: &str, fallback: Option<&String>| -> Result<Option<ServiceEndpoint>> {
            let own = match services.and_then(|s| s.get(service)) {
                None | Some(Value::Null) => None,
                Some(Value::Object(config)) => string_in(config.get("endpoint_url").filter(|v| !v.is_null()))
                    .map_err(|why| self.fail(&format!("service_config.{service}.endpoint_url"), why))?
                    .map(|url| (format!("service_config.{service}.endpoint_url"), url)),
                Some(other) => {
                    return Err(self.fail(
                        &format!("service_config.{service}"),
                        format!("must be a JSON object, not {}", json_type(other)),
                    ));
                }
            };
            let chosen = own.or_else(|| fallback.map(|url| ("endpoint_url".to_string(), url.clone())));
            chosen.map(|(field, url)| service_endpoint(&url).map_err(|why| self.fail(&field, why))).transpose()
        };
        Ok(ServiceEndpoints {
            sts: endpoint(STS, None)?,
            redshift: endpoint(REDSHIFT, global.as_ref())?,
            redshift_serverless: endpoint(REDSHIFT_SERVERLESS, global.as_ref())?,
        })
    }
}

/// A string value; empty counts as unset. Errors name the JSON type only.
fn string_in(value: Option<&Value>) -> std::result::Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
        Some(other) => Err(format!("must be a string, not {}", json_type(other))),
    }
}

/// `assume_role_kwargs`: the STS call's own parameters, as boto3 takes them.
struct Kwargs<'a> {
    extras: &'a Extras<'a>,
    map: Option<&'a Map<String, Value>>,
}

impl Kwargs<'_> {
    fn fail(&self, key: &str, why: impl std::fmt::Display) -> crate::bindings::types::Error {
        self.extras.fail(&format!("assume_role_kwargs.{key}"), why)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }

    /// Refuse parameters outside `supported`, as boto3 refuses unknown ones.
    fn only(&self, supported: &[&str]) -> Result<()> {
        let Some(map) = self.map else { return Ok(()) };
        match map.keys().find(|k| !supported.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(self.fail(
                key,
                format!("not supported by pghook for this assume_role_method (supported: {})", supported.join(", ")),
            )),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        string_in(self.get(key)).map_err(|why| self.fail(key, why))
    }

    fn duration(&self) -> Result<Option<u32>> {
        match self.get("DurationSeconds") {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= u32::MAX.into()) => {
                Ok(n.as_u64().map(|n| n as u32))
            }
            Some(_) => Err(self.fail("DurationSeconds", "must be a whole number of seconds")),
        }
    }

    /// `PolicyArns`: `[{"arn": "..."}]`.
    fn policy_arns(&self) -> Result<Vec<String>> {
        let bad = || self.fail("PolicyArns", "must be a list of objects with an `arn` string");
        match self.get("PolicyArns") {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.get("arn").and_then(Value::as_str).map(str::to_string).ok_or_else(bad))
                .collect(),
            Some(_) => Err(bad()),
        }
    }

    /// `Tags`: `[{"Key": "...", "Value": "..."}]`.
    fn tags(&self) -> Result<Vec<(String, String)>> {
        let bad = || self.fail("Tags", "must be a list of objects with `Key` and `Value` strings");
        match self.get("Tags") {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    match (item.get("Key").and_then(Value::as_str), item.get("Value").and_then(Value::as_str)) {
                        (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
                        _ => Err(bad()),
                    }
                })
                .collect(),
            Some(_) => Err(bad()),
        }
    }
}

/// Airflow's default RoleSessionName, `Airflow_<conn_id>` through
/// python-slugify with STS's allowed characters: lower-cased, a comma
/// between digits dropped, each run of other characters one `-`, no `-` at
/// either end. (slugify first spells non-ASCII letters in ASCII; here they
/// count as other characters: Airflow's conn ids are ASCII.)
pub fn session_name_for(conn_id: &str) -> String {
    let text: Vec<char> = format!("Airflow_{conn_id}").to_lowercase().chars().collect();
    let mut slug = String::new();
    for (i, &c) in text.iter().enumerate() {
        let between_digits = |c: char| {
            c == ',' && i > 0 && text[i - 1].is_ascii_digit() && text.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        };
        if between_digits(c) {
            continue;
        }
        let allowed = c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
        if !allowed || c == '-' {
            if !slug.ends_with('-') {
                slug.push('-');
            }
        } else {
            slug.push(c);
        }
    }
    slug.trim_matches('-').to_string()
}

/// Parse an endpoint_url, `http[s]://host[:port][/]`, into its parts. The
/// error names what is wrong without quoting the URL.
pub fn service_endpoint(url: &str) -> std::result::Result<ServiceEndpoint, String> {
    let split = urlsplit(url);
    let scheme = match split.scheme.as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err("must start with http:// or https://".into()),
    };
    if split.netloc.contains('@') {
        return Err("must not hold a user name or password".into());
    }
    if !matches!(split.path.as_str(), "" | "/") || !split.query.is_empty() || url.contains('#') {
        return Err("pghook takes scheme://host[:port] only, without a path, query or fragment".into());
    }
    let host = split.hostname().ok_or("has no host")?;
    let bracketed = split.netloc.starts_with('[');
    let valid = if bracketed {
        split.netloc.contains(']') && host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !valid {
        return Err("the host is not a host name, an IPv4 address or a bracketed IPv6 address".into());
    }
    let port = split.port().map_err(|e| e.to_string())?;
    Ok(ServiceEndpoint { scheme, host, port })
}

#[cfg(test)]
mod tests;
