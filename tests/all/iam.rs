//! IAM logins: RDS tokens signed offline, Redshift against moto's server,
//! Redshift Serverless against a local stand-in of its API; where the AWS
//! credentials come from in [`credentials`].

mod credentials;

use pghook::{ErrorKind, HookArgs, MapConnections, Policy, Value};
use pghook_tests::{Cluster, Moto, runtime, serverless_stand_in, tenant};

fn aws_conn(endpoint: &str) -> String {
    format!(
        "aws://AKIDEXAMPLE:wJalrXUtnFEMI%2FK7MDENG@/?region_name=us-east-1&endpoint_url={}",
        endpoint.replace(':', "%3A").replace('/', "%2F")
    )
}

/// moto, with a Redshift cluster `id` made in it (each test its own).
async fn moto_with_cluster(id: &str) -> &'static Moto {
    let moto = Moto::get();
    let sdk_conf = aws_sdk_redshift::Config::builder()
        .behavior_version(aws_sdk_redshift::config::BehaviorVersion::latest())
        .region(aws_sdk_redshift::config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new("AKIDEXAMPLE", "x", None, None, "test"))
        .endpoint_url(moto.endpoint())
        .build();
    aws_sdk_redshift::Client::from_conf(sdk_conf)
        .create_cluster()
        .cluster_identifier(id)
        .node_type("dc2.large")
        .master_username("admin")
        .master_user_password("Password1")
        .send()
        .await
        .unwrap();
    moto
}

#[tokio::test]
async fn rds_token_is_signed_offline() {
    let root = tempfile::tempdir().unwrap();
    let rds = "postgres://alice@db.abc.us-east-1.rds.amazonaws.com/app?iam=true&aws_conn_id=aws_test";
    let t = tenant(root.path(), &[("rds", rds), ("aws_test", "aws://AKIDEXAMPLE:secret@/?region_name=us-east-1")]);
    let token = t.hook(HookArgs::conn_id("rds")).get_iam_token().await.unwrap();
    assert_eq!((token.user.as_str(), token.port), ("alice", 5432));
    let p = &token.password;
    assert!(p.starts_with("db.abc.us-east-1.rds.amazonaws.com:5432/?"), "{p}");
    for part in [
        "Action=connect",
        "DBUser=alice",
        "X-Amz-Credential=AKIDEXAMPLE%2F",
        "%2Fus-east-1%2Frds-db%2Faws4_request",
        "X-Amz-Expires=900",
        "X-Amz-Signature=",
    ] {
        assert!(p.contains(part), "{part} missing from {p}");
    }
    // explain swaps the login in, as get_conn does, and hides the token.
    let explained = t.hook(HookArgs::conn_id("rds")).explain().await.unwrap();
    assert_eq!(
        explained,
        serde_json::json!({"host": "db.abc.us-east-1.rds.amazonaws.com", "user": "alice", "password": "***", "dbname": "app", "port": 5432})
    );
    // aws_default is the default AWS connection; without it and without the
    // host's environment there are no credentials.
    let t = tenant(root.path(), &[("rds", "postgres://alice@db.example/app?iam=true")]);
    let e = t.hook(HookArgs::conn_id("rds")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Aws);
    assert!(e.message().contains("no AWS credentials"), "{e}");
    let t = tenant(
        root.path(),
        &[("rds", "postgres://alice@db.example/app?iam=true"), ("aws_default", "aws://AKID:secret@")],
    );
    let e = t.hook(HookArgs::conn_id("rds")).get_iam_token().await.unwrap_err();
    assert!(e.message().contains("region"), "{e}");
}

#[tokio::test]
async fn redshift_cluster_credentials_from_moto() {
    let moto = moto_with_cluster("my-cluster").await;
    let root = tempfile::tempdir().unwrap();
    let redshift = "postgres://alice@my-cluster.abc123.us-east-1.redshift.amazonaws.com/dev?iam=true&redshift=true&aws_conn_id=moto";
    let other = "postgres://alice@other.abc123.us-east-1.redshift.amazonaws.com:5440/dev?iam=true&redshift=true&aws_conn_id=moto";
    let t = tenant(root.path(), &[("rs", redshift), ("other", other), ("moto", &aws_conn(&moto.endpoint()))]);
    let token = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    assert_eq!((token.user.as_str(), token.port), ("IAM:alice", 5439));
    assert!(!token.password.is_empty());
    let explained = t.hook(HookArgs::conn_id("rs")).explain().await.unwrap();
    assert_eq!(explained["user"], "IAM:alice");
    assert_eq!(explained["port"], 5439);
    assert_eq!(explained["password"], "***");
    // An unknown cluster is moto's error, naming the cluster.
    let e = t.hook(HookArgs::conn_id("other")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Aws);
    assert!(e.message().contains("other"), "{e}");
}

#[tokio::test]
async fn redshift_serverless_login_reaches_the_database() {
    let pg = Cluster::plain();
    // The stand-in hands out a real role of the test cluster.
    let api = serverless_stand_in("alice", "alice pw");
    let root = tempfile::tempdir().unwrap();
    let conn = format!(
        "postgres://someone@127.0.0.1:{}/postgres?iam=true&redshift-serverless=true&workgroup-name=wg1&aws_conn_id=sls",
        pg.port
    );
    let t = tenant(root.path(), &[("sls", &aws_conn(&api.endpoint())), ("c", &conn)]);
    let r = t.hook(HookArgs::conn_id("c")).get_first("select current_user", None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Text("alice".into()));
    let requests = api.received();
    assert_eq!(requests[0].header("x-amz-target"), Some("RedshiftServerless.GetCredentials"));
    assert_eq!(requests[0].json(), serde_json::json!({"workgroupName": "wg1", "dbName": "postgres"}));
}

#[tokio::test]
async fn aws_endpoints_obey_the_host_policy() {
    let root = tempfile::tempdir().unwrap();
    let conn = "postgres://u@wg.x.us-east-1.redshift-serverless.amazonaws.com/dev?iam=true&redshift-serverless=true";
    let t = tenant(root.path(), &[("c", conn), ("aws_default", &aws_conn("http://metadata.example:80"))]);
    let e = t.hook(HookArgs::conn_id("c")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.message().contains("metadata.example"), "{e}");
}

/// A tenant that may reach only `pattern`, with an AWS connection `aws` and
/// Redshift (`rs`) and Redshift Serverless (`sls`) connections using it.
fn aws_tenant(pattern: &str, aws: &str) -> pghook::Tenant {
    let rs = "postgres://alice@my-cluster.abc.cn-north-1.redshift.amazonaws.com.cn/dev?iam=true&redshift=true&aws_conn_id=aws";
    let sls = "postgres://u@wg.x.cn-north-1.redshift-serverless.amazonaws.com.cn/dev?iam=true&redshift-serverless=true&aws_conn_id=aws";
    let connections = MapConnections::new().with("aws", aws).with("rs", rs).with("sls", sls);
    let root = std::env::temp_dir();
    runtime().tenant(Policy::new(root).allow_host(pattern).with_connections(connections))
}

#[tokio::test]
async fn aws_calls_are_checked_where_the_sdk_really_sends_them() {
    // The China partition is not under amazonaws.com: the SDK's own endpoint
    // is judged, and refused before any request leaves.
    let china = aws_tenant("*.amazonaws.com", "aws://AKIDEXAMPLE:secret@/?region_name=cn-north-1");
    for (conn, host) in
        [("rs", "redshift.cn-north-1.amazonaws.com.cn"), ("sls", "redshift-serverless.cn-north-1.amazonaws.com.cn")]
    {
        let e = china.hook(HookArgs::conn_id(conn)).get_iam_token().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        assert!(e.message().contains(&format!("host {host} is not allowed")), "{e}");
    }
    // An endpoint_url the policy does not allow gets no traffic at all.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let t = aws_tenant("127.0.0.1", &aws_conn(&endpoint));
    for conn in ["rs", "sls"] {
        let e = t.hook(HookArgs::conn_id(conn)).get_iam_token().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        assert!(e.message().contains("host localhost is not allowed"), "{e}");
    }
    assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "a request reached the endpoint");
    // The same endpoint by an allowed address is reached (and answers nothing useful).
    let allowed = aws_tenant("127.0.0.1", &aws_conn(&endpoint.replace("localhost", "127.0.0.1")));
    drop(listener);
    let e = allowed.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Aws, "{e}");
}
