//! Where AWS credentials come from, as Airflow's AWS connection says: a role
//! assumed with STS AssumeRole or AssumeRoleWithWebIdentity (moto), a
//! profile of the host's AWS files, the default chain (with a stand-in of
//! the container credentials endpoint); the sandbox around each; and
//! credentials kept between calls. A recording proxy in front of moto shows
//! which credentials signed each request.

use std::path::Path;

use pghook::{ErrorKind, HookArgs, MapConnections, Policy, Tenant};
use pghook_tests::{Response, StandIn, runtime};
use serde_json::json;

use super::moto_with_cluster;

const ROLE: &str = "arn:aws:iam::123456789012:role/etl";

/// A Postgres connection that logs in to Redshift `cluster` with IAM,
/// through AWS connection `aws`.
fn redshift(cluster: &str) -> String {
    format!(
        "postgres://alice@{cluster}.abc.us-east-1.redshift.amazonaws.com/dev?iam=true&redshift=true&aws_conn_id=aws"
    )
}

/// An AWS connection in Airflow's JSON form.
fn aws_json(keys: Option<(&str, &str)>, extra: serde_json::Value) -> String {
    let (login, password) = keys.unzip();
    json!({"conn_type": "aws", "login": login, "password": password, "extra": extra}).to_string()
}

/// Both AWS services pghook calls here, STS and Redshift, sent to `proxy`.
fn through(proxy: &StandIn) -> serde_json::Value {
    json!({"sts": {"endpoint_url": proxy.endpoint()}, "redshift": {"endpoint_url": proxy.endpoint()}})
}

/// A tenant rooted at `root` that may reach 127.0.0.1 only, with the
/// connections `rs` (Redshift `cluster`) and `aws`, its policy finished by
/// `policy`.
fn tenant_with(root: &Path, cluster: &str, aws: &str, policy: impl FnOnce(Policy) -> Policy) -> Tenant {
    let connections = MapConnections::new().with("rs", redshift(cluster)).with("aws", aws);
    runtime().tenant(policy(Policy::new(root).allow_host("127.0.0.1").with_connections(connections)))
}

/// The AccessKeyId STS handed out in `answer`.
fn issued_key_id(answer: &str) -> String {
    let start = answer.find("<AccessKeyId>").expect("an AccessKeyId in the STS answer") + "<AccessKeyId>".len();
    answer[start..answer[start..].find('<').unwrap() + start].to_string()
}

/// Every GetClusterCredentials `proxy` saw, by the key id that signed it.
fn redshift_signers(proxy: &StandIn) -> Vec<Option<String>> {
    proxy.actions("GetClusterCredentials").iter().map(|r| r.signing_key_id()).collect()
}

#[tokio::test]
async fn assume_role_with_external_id_signs_redshift_and_is_asked_once() {
    let moto = moto_with_cluster("assumed").await;
    let proxy = StandIn::proxy(moto.port);
    let root = tempfile::tempdir().unwrap();
    let aws = aws_json(
        Some(("AKIDBASE", "base-secret")),
        json!({
            "region_name": "us-east-1",
            "role_arn": ROLE,
            "assume_role_kwargs": {"ExternalId": "ext-42", "RoleSessionName": "nightly-etl", "DurationSeconds": 3600},
            "service_config": through(&proxy),
        }),
    );
    let t = tenant_with(root.path(), "assumed", &aws, |p| p);
    for _ in 0..2 {
        let token = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
        assert_eq!(token.user, "IAM:alice");
    }
    // One AssumeRole for both calls, as the role's keys said, signed with the base keys.
    let assumed = proxy.actions("AssumeRole");
    assert_eq!(assumed.len(), 1, "the assumed role's credentials are kept between calls");
    let call = &assumed[0];
    assert_eq!(call.form("RoleArn").as_deref(), Some(ROLE));
    assert_eq!(call.form("ExternalId").as_deref(), Some("ext-42"));
    assert_eq!(call.form("RoleSessionName").as_deref(), Some("nightly-etl"));
    assert_eq!(call.form("DurationSeconds").as_deref(), Some("3600"));
    assert_eq!(call.signing_key_id().as_deref(), Some("AKIDBASE"));
    // Both Redshift calls are signed with what STS handed out, with its session token.
    let assumed_key = issued_key_id(&call.answer);
    assert_ne!(assumed_key, "AKIDBASE");
    assert_eq!(redshift_signers(&proxy), vec![Some(assumed_key.clone()), Some(assumed_key)]);
    assert!(proxy.actions("GetClusterCredentials").iter().all(|r| r.header("x-amz-security-token").is_some()));

    // Without a RoleSessionName the session is named as Airflow names it.
    let proxy = StandIn::proxy(moto.port);
    let aws = aws_json(
        Some(("AKIDBASE", "base-secret")),
        json!({"region_name": "us-east-1", "role_arn": ROLE, "service_config": through(&proxy)}),
    );
    let t = tenant_with(root.path(), "assumed", &aws, |p| p);
    t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    assert_eq!(proxy.actions("AssumeRole")[0].form("RoleSessionName").as_deref(), Some("airflow_aws"));
}

#[tokio::test]
async fn web_identity_reads_its_token_through_the_file_root() {
    let moto = moto_with_cluster("web").await;
    let proxy = StandIn::proxy(moto.port);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("tokens")).unwrap();
    std::fs::write(root.path().join("tokens/web.jwt"), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n").unwrap();
    let web = |token_file: &str| {
        aws_json(
            None,
            json!({
                "region_name": "us-east-1",
                "role_arn": ROLE,
                "assume_role_method": "assume_role_with_web_identity",
                "assume_role_with_web_identity_federation": "file",
                "assume_role_with_web_identity_token_file": token_file,
                "assume_role_kwargs": {"RoleSessionName": "web-session"},
                "service_config": through(&proxy),
            }),
        )
    };
    let t = tenant_with(root.path(), "web", &web("tokens/web.jwt"), |p| p);
    let token = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    assert_eq!(token.user, "IAM:alice");
    let calls = proxy.actions("AssumeRoleWithWebIdentity");
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.form("WebIdentityToken").as_deref(), Some("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
    assert_eq!(call.form("RoleArn").as_deref(), Some(ROLE));
    assert_eq!(call.form("RoleSessionName").as_deref(), Some("web-session"));
    assert_eq!(call.signing_key_id(), None, "AssumeRoleWithWebIdentity is not signed");
    assert_eq!(redshift_signers(&proxy), vec![Some(issued_key_id(&call.answer))]);

    // A token file outside the root is never read.
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "host.token").unwrap();
    for path in ["../web.jwt", outside.path().to_str().unwrap()] {
        let t = tenant_with(root.path(), "web", &web(path), |p| p);
        let e = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{path}: {e}");
    }
    assert_eq!(proxy.actions("AssumeRoleWithWebIdentity").len(), 1);

    // Without a file of its own, the one the host's AWS_WEB_IDENTITY_TOKEN_FILE
    // names, where the policy allows the host's AWS environment.
    let mut extra: serde_json::Value = serde_json::from_str(&web("x")).unwrap();
    extra["extra"].as_object_mut().unwrap().remove("assume_role_with_web_identity_token_file");
    let environment = [("AWS_WEB_IDENTITY_TOKEN_FILE", outside.path().to_str().unwrap())];
    let t = tenant_with(root.path(), "web", &extra.to_string(), |p| {
        p.with_ambient_aws(true).with_aws_environment(environment)
    });
    t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    let calls = proxy.actions("AssumeRoleWithWebIdentity");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].form("WebIdentityToken").as_deref(), Some("host.token"));
}

#[tokio::test]
async fn a_profile_from_the_hosts_aws_files() {
    let moto = moto_with_cluster("profiled").await;
    let proxy = StandIn::proxy(moto.port);
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (config, credentials) = (home.path().join("config"), home.path().join("credentials"));
    std::fs::write(
        &config,
        format!(
            "[profile analytics]\nregion = us-east-1\n\n\
             [profile chained]\nrole_arn = {ROLE}\nsource_profile = analytics\nregion = us-east-1\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &credentials,
        "[analytics]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    // The host's AWS environment, handed to the policy rather than set in
    // this process: keys in variables too, which a named profile ignores.
    let environment = [
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
    ];
    let ambient = |p: Policy| p.with_ambient_aws(true).with_aws_environment(environment);
    // No region_name: the profile's.
    let profile = aws_json(None, json!({"profile_name": "analytics", "endpoint_url": proxy.endpoint()}));
    let t = tenant_with(root.path(), "profiled", &profile, ambient);
    t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    assert_eq!(redshift_signers(&proxy), vec![Some("AKIDPROFILE".to_string())]);
    let authorization = proxy.actions("GetClusterCredentials")[0].header("authorization").unwrap().to_string();
    assert!(authorization.contains("/us-east-1/redshift/aws4_request"), "{authorization}");

    // Without a profile, the default chain takes the keys in the variables.
    let chain = aws_json(None, json!({"region_name": "us-east-1", "endpoint_url": proxy.endpoint()}));
    let t = tenant_with(root.path(), "profiled", &chain, ambient);
    t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    assert_eq!(redshift_signers(&proxy)[1].as_deref(), Some("AKIDENV"));

    // A profile that assumes a role asks the SDK's STS endpoint: not an allowed host.
    let chained = aws_json(None, json!({"profile_name": "chained", "endpoint_url": proxy.endpoint()}));
    let t = tenant_with(root.path(), "profiled", &chained, ambient);
    let e = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.message().contains("host sts.us-east-1.amazonaws.com is not allowed"), "{e}");

    // Where the policy does not allow the host's AWS environment, a profile is refused.
    let t = tenant_with(root.path(), "profiled", &profile, |p| p.with_aws_environment(environment));
    let e = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.message().contains("profile_name reads the host's AWS config files"), "{e}");
    assert_eq!(proxy.actions("GetClusterCredentials").len(), 2);
}

#[tokio::test]
async fn the_default_chain_reads_container_credentials_once() {
    let moto = moto_with_cluster("contained").await;
    let proxy = StandIn::proxy(moto.port);
    let container = StandIn::start(|_| {
        Response::json(
            "application/json",
            json!({
                "Code": "Success",
                "AccessKeyId": "ASIACONTAINER",
                "SecretAccessKey": "container-secret",
                "Token": "container-token",
                "Expiration": "2100-01-01T00:00:00Z",
            }),
        )
    });
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let full_uri = format!("{}/v2/credentials", container.endpoint());
    let environment = [
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.as_str()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth"),
    ];
    // The AWS connection gives only an endpoint: credentials and region come from the host.
    let aws = aws_json(None, json!({"endpoint_url": proxy.endpoint()}));
    let t = tenant_with(root.path(), "contained", &aws, |p| p.with_ambient_aws(true).with_aws_environment(environment));
    for _ in 0..2 {
        t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    }
    let asked = container.received();
    assert_eq!(asked.len(), 1, "the container's credentials are kept between calls");
    assert_eq!((asked[0].path.as_str(), asked[0].header("authorization")), ("/v2/credentials", Some("container-auth")));
    let signer = Some("ASIACONTAINER".to_string());
    assert_eq!(redshift_signers(&proxy), vec![signer.clone(), signer]);

    // The container endpoint ECS gives tasks is not an allowed host: refused before it is asked.
    let environment = [
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials"),
    ];
    let t = tenant_with(root.path(), "contained", &aws, |p| p.with_ambient_aws(true).with_aws_environment(environment));
    let e = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.message().contains("host 169.254.170.2 is not allowed"), "{e}");

    // Nothing else configured: the chain ends at instance metadata, not an
    // allowed host either; the chain reports that among its attempts.
    let environment = [("HOME", home.path().to_str().unwrap()), ("AWS_REGION", "us-east-1")];
    let t = tenant_with(root.path(), "contained", &aws, |p| p.with_ambient_aws(true).with_aws_environment(environment));
    let e = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Aws, "{e}");
    assert!(e.message().starts_with("AWS credentials from the host's default chain: "), "{e}");
    assert!(e.message().contains("host 169.254.169.254 is not allowed"), "{e}");
}

#[tokio::test]
async fn the_hosts_aws_environment_needs_the_policy() {
    let root = tempfile::tempdir().unwrap();
    let web = json!({
        "region_name": "us-east-1", "role_arn": ROLE, "assume_role_method": "assume_role_with_web_identity",
        "assume_role_with_web_identity_federation": "file",
    });
    let cases = [
        (None, json!({"region_name": "us-east-1"}), ErrorKind::Aws, "no AWS credentials"),
        (None, json!({"region_name": "us-east-1", "profile_name": "p"}), ErrorKind::Denied, "profile_name reads"),
        (None, json!({"region_name": "us-east-1", "role_arn": ROLE}), ErrorKind::Denied, "role_arn without keys"),
        (None, web, ErrorKind::Denied, "AWS_WEB_IDENTITY_TOKEN_FILE"),
        (Some(("AKID", "secret")), json!({}), ErrorKind::Aws, "no AWS region"),
    ];
    for (keys, extra, kind, message) in cases {
        // A policy's AWS environment is no way around it.
        let environment =
            [("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_REGION", "us-east-1")];
        let t =
            tenant_with(root.path(), "none", &aws_json(keys, extra.clone()), |p| p.with_aws_environment(environment));
        let e = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
        assert_eq!(e.kind(), kind, "{extra}: {e}");
        assert!(e.message().contains(message), "{extra}: {e}");
        assert!(e.message().contains("may not use") || kind == ErrorKind::Aws, "{extra}: {e}");
    }
}

#[tokio::test]
async fn sts_obeys_the_host_policy() {
    // The tenant may reach 127.0.0.1, not `localhost`: no request reaches it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let unlisted = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("web.jwt"), "token").unwrap();
    let sts = json!({"sts": {"endpoint_url": unlisted}});
    let keys = Some(("AKID", "secret"));
    let cases = [
        (keys, json!({"region_name": "us-east-1", "role_arn": ROLE, "service_config": sts.clone()}), "host localhost"),
        (
            None,
            json!({
                "region_name": "us-east-1", "role_arn": ROLE, "service_config": sts,
                "assume_role_method": "assume_role_with_web_identity",
                "assume_role_with_web_identity_federation": "file", "assume_role_with_web_identity_token_file": "web.jwt",
            }),
            "host localhost",
        ),
        // STS never takes endpoint_url (as in Airflow): the SDK's endpoint, not allowed either.
        (
            keys,
            json!({"region_name": "us-east-1", "role_arn": ROLE, "endpoint_url": "http://127.0.0.1:1"}),
            "host sts.us-east-1.amazonaws.com",
        ),
    ];
    for (keys, extra, host) in cases {
        let t = tenant_with(root.path(), "none", &aws_json(keys, extra.clone()), |p| p);
        let e = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{extra}: {e}");
        assert!(e.message().starts_with("STS AssumeRole"), "{extra}: {e}");
        assert!(e.message().contains(&format!("{host} is not allowed")), "{extra}: {e}");
    }
    assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "a request reached STS");
}

#[tokio::test]
async fn service_config_overrides_endpoint_url() {
    let moto = moto_with_cluster("configured").await;
    let root = tempfile::tempdir().unwrap();
    // endpoint_url leads nowhere; Redshift's own entry leads to moto.
    let aws = aws_json(
        Some(("AKID", "secret")),
        json!({
            "region_name": "us-east-1",
            "endpoint_url": "http://127.0.0.1:1",
            "service_config": {"redshift": {"endpoint_url": moto.endpoint()}},
        }),
    );
    let t = tenant_with(root.path(), "configured", &aws, |p| p);
    let token = t.hook(HookArgs::conn_id("rs")).get_iam_token().await.unwrap();
    assert_eq!(token.user, "IAM:alice");
}
