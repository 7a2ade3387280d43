//! IAM decisions, as Airflow's `PostgresHook.get_iam_token` makes them: which
//! AWS service to ask, with what, and which port the login is for.

use crate::connection::Connection;
use crate::error::{Result, config};

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
}
