//! IAM decisions, as Airflow's `PostgresHook.get_iam_token` makes them: which
//! AWS service to ask, with what, and which port the login is for.

use crate::bindings::aws::{ClientConfig, Credentials, Scheme, ServiceEndpoint};
use crate::connection::Connection;
use crate::error::{Result, config};
use crate::uri::urlsplit;

/// The AWS connection id used when the `aws_conn_id` extra is absent.
pub const DEFAULT_AWS_CONN_ID: &str = "aws_default";

/// The AWS call that yields a temporary login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IamRequest {
    /// An RDS auth token, signed offline.
    #[allow(missing_docs)] // The token's host, port and database user.
    Rds { host: String, port: u16, user: String },
    /// Redshift GetClusterCredentials.
    #[allow(missing_docs)] // GetClusterCredentials' arguments, and the port to log in on.
    Redshift { cluster_identifier: String, db_user: String, db_name: Option<String>, port: u16 },
    /// Redshift Serverless GetCredentials.
    #[allow(missing_docs)] // GetCredentials' arguments, and the port to log in on.
    RedshiftServerless { workgroup_name: String, db_name: Option<String>, port: u16 },
}

impl IamRequest {
    /// Decide what to ask for. `database` is the hook's own argument, which
    /// wins over the connection's schema.
    pub fn for_connection(conn: &Connection, database: Option<&str>) -> Result<IamRequest> {
        let fail = |why: &str| config(format!("connection `{}`: {why}", conn.conn_id));
        let db_name = database
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .or_else(|| conn.schema.clone().filter(|s| !s.is_empty()));
        let host = conn.host.clone().unwrap_or_default();
        // The cluster or workgroup defaults to the host's first label.
        let first_label = || host.split('.').next().unwrap_or_default().to_string();
        let login = || {
            conn.login
                .clone()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| fail("login: IAM authentication needs the database user as the login"))
        };
        if conn.extra_flag("redshift") {
            let cluster_identifier = conn.extra_str("cluster-identifier").unwrap_or_else(first_label);
            if cluster_identifier.is_empty() {
                return Err(fail(
                    "cluster-identifier: set the extra or a host such as my-cluster.xxx.region.redshift.amazonaws.com",
                ));
            }
            Ok(IamRequest::Redshift { cluster_identifier, db_user: login()?, db_name, port: conn.port.unwrap_or(5439) })
        } else if conn.extra_flag("redshift-serverless") {
            let workgroup_name = conn.extra_str("workgroup-name").unwrap_or_else(first_label);
            if workgroup_name.is_empty() {
                return Err(fail("workgroup-name: set the extra or a host whose first label is the workgroup"));
            }
            Ok(IamRequest::RedshiftServerless { workgroup_name, db_name, port: conn.port.unwrap_or(5439) })
        } else {
            if host.is_empty() {
                return Err(fail("host: an RDS IAM token is signed for a host name"));
            }
            Ok(IamRequest::Rds { host, port: conn.port.unwrap_or(5432), user: login()? })
        }
    }
}

/// The AWS connection id a Postgres connection names.
pub fn aws_conn_id(conn: &Connection) -> String {
    conn.extra_str("aws_conn_id").unwrap_or_else(|| DEFAULT_AWS_CONN_ID.to_string())
}

/// Read an Airflow AWS connection: login is the access key id, password the
/// secret key; extras give region_name, endpoint_url and aws_session_token.
/// With no connection the host's own AWS environment is used, as boto3's
/// default chain would be.
pub fn client_config(aws: Option<&Connection>) -> Result<ClientConfig> {
    let Some(aws) = aws else {
        return Ok(ClientConfig { credentials: None, region: None, endpoint: None });
    };
    let key_id = aws.extra_str("aws_access_key_id").or_else(|| aws.login.clone()).filter(|s| !s.is_empty());
    let secret = aws.extra_str("aws_secret_access_key").or_else(|| aws.password.clone()).filter(|s| !s.is_empty());
    let credentials = match (key_id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: aws.extra_str("aws_session_token").filter(|s| !s.is_empty()),
        }),
        (None, None) => None,
        _ => {
            return Err(config(format!(
                "aws connection `{}`: the access key id (login) and secret key (password) go together",
                aws.conn_id
            )));
        }
    };
    Ok(ClientConfig {
        credentials,
        region: aws.extra_str("region_name").filter(|s| !s.is_empty()),
        endpoint: aws
            .extra_str("endpoint_url")
            .filter(|s| !s.is_empty())
            .map(|url| service_endpoint(&url))
            .transpose()
            .map_err(|why| config(format!("aws connection `{}`: endpoint_url: {why}", aws.conn_id)))?,
    })
}

/// Parse an endpoint_url, `http[s]://host[:port][/]`, into its parts. The
/// error names what is wrong without quoting the URL.
fn service_endpoint(url: &str) -> std::result::Result<ServiceEndpoint, String> {
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
mod tests {
    use super::*;

    #[test]
    fn redshift_defaults_follow_airflow() {
        let c = Connection::parse(
            "r",
            "postgres://alice@my-cluster.abc.us-east-1.redshift.amazonaws.com/dev?iam=true&redshift=true",
        )
        .unwrap();
        assert_eq!(
            IamRequest::for_connection(&c, None).unwrap(),
            IamRequest::Redshift {
                cluster_identifier: "my-cluster".into(),
                db_user: "alice".into(),
                db_name: Some("dev".into()),
                port: 5439
            }
        );
        let c = Connection::parse("r", "postgres://alice@h.x:5440/dev?redshift=true&cluster-identifier=other").unwrap();
        let IamRequest::Redshift { cluster_identifier, port, db_name, .. } =
            IamRequest::for_connection(&c, Some("hookdb")).unwrap()
        else {
            panic!()
        };
        assert_eq!((cluster_identifier.as_str(), port, db_name.as_deref()), ("other", 5440, Some("hookdb")));
    }

    #[test]
    fn serverless_and_rds() {
        let c = Connection::parse(
            "s",
            "postgres://u@wg.123.us-east-1.redshift-serverless.amazonaws.com/dev?redshift-serverless=true",
        )
        .unwrap();
        assert!(matches!(
            IamRequest::for_connection(&c, None).unwrap(),
            IamRequest::RedshiftServerless { ref workgroup_name, port: 5439, .. } if workgroup_name == "wg"
        ));
        let c = Connection::parse("d", "postgres://u@db.rds.amazonaws.com/app?iam=true").unwrap();
        assert_eq!(
            IamRequest::for_connection(&c, None).unwrap(),
            IamRequest::Rds { host: "db.rds.amazonaws.com".into(), port: 5432, user: "u".into() }
        );
        let c = Connection::parse("d", "postgres://db.rds.amazonaws.com/app?iam=true").unwrap();
        assert!(IamRequest::for_connection(&c, None).unwrap_err().message.contains("login"));
    }

    #[test]
    fn aws_connection() {
        let a = Connection::parse(
            "aws_default",
            "aws://AKID:se%2Fcret@/?region_name=eu-west-1&endpoint_url=http%3A%2F%2F127.0.0.1%3A5000",
        )
        .unwrap();
        let cfg = client_config(Some(&a)).unwrap();
        assert_eq!(cfg.credentials.as_ref().unwrap().secret_access_key, "se/cret");
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            cfg.endpoint,
            Some(ServiceEndpoint { scheme: Scheme::Http, host: "127.0.0.1".into(), port: Some(5000) })
        );
        let half = Connection::parse("a", "aws://AKID@/").unwrap();
        assert!(client_config(Some(&half)).is_err());
        assert!(client_config(None).unwrap().credentials.is_none());
    }

    #[test]
    fn endpoint_urls_are_parsed() {
        let endpoint = |scheme, host: &str, port| Ok(ServiceEndpoint { scheme, host: host.into(), port });
        let cases = [
            ("http://127.0.0.1:5000", endpoint(Scheme::Http, "127.0.0.1", Some(5000))),
            ("https://Redshift.Example.com/", endpoint(Scheme::Https, "redshift.example.com", None)),
            ("HTTP://[::1]:4566", endpoint(Scheme::Http, "::1", Some(4566))),
            ("https://localhost.localstack.cloud", endpoint(Scheme::Https, "localhost.localstack.cloud", None)),
            ("ftp://h", Err("must start with http:// or https://")),
            ("127.0.0.1:5000", Err("must start with http:// or https://")),
            ("http://", Err("has no host")),
            ("http://user:pw@h", Err("must not hold a user name or password")),
            ("http://h/path", Err("pghook takes scheme://host[:port] only")),
            ("http://h?x=1", Err("pghook takes scheme://host[:port] only")),
            ("http://h#x", Err("pghook takes scheme://host[:port] only")),
            ("http://h:port", Err("Port could not be cast to integer value")),
            ("http://h:70000", Err("Port out of range 0-65535")),
            ("http://[::1:5000", Err("the host is not")),
            ("http://[nope]", Err("the host is not")),
            ("http://h%2Fx", Err("the host is not")),
        ];
        for (url, expected) in cases {
            match (service_endpoint(url), expected) {
                (Err(got), Err(wanted)) => assert!(got.starts_with(wanted), "{url}: {got}"),
                (got, expected) => assert_eq!(got, expected.map_err(String::from), "{url}"),
            }
        }
        let bad = Connection::parse("aws_x", "aws://AKID:s@/?endpoint_url=http%3A%2F%2Fh%2Fpath").unwrap();
        let e = client_config(Some(&bad)).unwrap_err();
        assert!(e.message.starts_with("aws connection `aws_x`: endpoint_url: pghook takes"), "{}", e.message);
    }
}
