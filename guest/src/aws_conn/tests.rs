use super::*;

fn aws(extra: serde_json::Value) -> Connection {
    let stored = serde_json::json!({"conn_type": "aws", "extra": extra}).to_string();
    Connection::parse("aws_x", &stored).unwrap()
}

fn with_keys(extra: serde_json::Value) -> Connection {
    let stored = serde_json::json!({"conn_type": "aws", "login": "AKID", "password": "secret", "extra": extra});
    Connection::parse("aws_x", &stored.to_string()).unwrap()
}

fn config_of(conn: &Connection) -> ClientConfig {
    client_config(Some(conn)).unwrap()
}

fn error_of(conn: &Connection) -> String {
    client_config(Some(conn)).unwrap_err().message
}

fn keys(id: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials { access_key_id: id.into(), secret_access_key: secret.into(), session_token: token.map(Into::into) }
}

fn endpoint(scheme: Scheme, host: &str, port: Option<u16>) -> ServiceEndpoint {
    ServiceEndpoint { scheme, host: host.into(), port }
}

#[test]
fn uri_connection_with_keys_region_and_endpoint() {
    let a = Connection::parse(
        "aws_default",
        "aws://AKID:se%2Fcret@/?region_name=eu-west-1&endpoint_url=http%3A%2F%2F127.0.0.1%3A5000",
    )
    .unwrap();
    let cfg = config_of(&a);
    assert_eq!(cfg.credentials, CredentialSource::StaticKeys(keys("AKID", "se/cret", None)));
    assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
    let moto = Some(endpoint(Scheme::Http, "127.0.0.1", Some(5000)));
    assert_eq!(cfg.endpoints, ServiceEndpoints { sts: None, redshift: moto.clone(), redshift_serverless: moto });
}

#[test]
fn no_connection_is_the_default_chain() {
    let cfg = client_config(None).unwrap();
    assert_eq!(cfg.credentials, CredentialSource::Ambient);
    assert_eq!(cfg.region, None);
    // A connection with neither keys, profile nor role: the same.
    assert_eq!(config_of(&aws(serde_json::json!({"region_name": "us-east-1"}))).credentials, CredentialSource::Ambient);
}

#[test]
fn keys_in_airflows_order() {
    // Login and password first, then the extras, then session_kwargs.
    let both = with_keys(serde_json::json!({"aws_access_key_id": "X", "aws_secret_access_key": "Y"}));
    assert_eq!(config_of(&both).credentials, CredentialSource::StaticKeys(keys("AKID", "secret", None)));
    let extras =
        aws(serde_json::json!({"aws_access_key_id": "X", "aws_secret_access_key": "Y", "aws_session_token": "T"}));
    assert_eq!(config_of(&extras).credentials, CredentialSource::StaticKeys(keys("X", "Y", Some("T"))));
    let session = aws(serde_json::json!({"session_kwargs": {
        "aws_access_key_id": "S", "aws_secret_access_key": "K", "aws_session_token": "ST"
    }}));
    assert_eq!(config_of(&session).credentials, CredentialSource::StaticKeys(keys("S", "K", Some("ST"))));
    // The extra's token wins over session_kwargs'.
    let token = with_keys(serde_json::json!({"aws_session_token": "T", "session_kwargs": {"aws_session_token": "ST"}}));
    assert_eq!(config_of(&token).credentials, CredentialSource::StaticKeys(keys("AKID", "secret", Some("T"))));
    // Half a pair, or a token alone, is an error naming what is missing.
    for half in [
        Connection::parse("aws_x", "aws://AKID@/").unwrap(),
        aws(serde_json::json!({"aws_secret_access_key": "Y"})),
        aws(serde_json::json!({"session_kwargs": {"aws_access_key_id": "S"}})),
    ] {
        assert!(error_of(&half).contains("go together"), "{}", error_of(&half));
    }
    let alone = aws(serde_json::json!({"aws_session_token": "T"}));
    assert_eq!(
        error_of(&alone),
        "aws connection `aws_x`: aws_session_token: needs the access key id (login) and secret key (password)"
    );
    let typed = aws(serde_json::json!({"aws_access_key_id": 5, "aws_secret_access_key": "Y"}));
    assert_eq!(error_of(&typed), "aws connection `aws_x`: aws_access_key_id: must be a string, not a number");
}

#[test]
fn profile_name() {
    let profile = aws(serde_json::json!({"profile_name": "analytics", "region_name": "eu-west-1"}));
    assert_eq!(config_of(&profile).credentials, CredentialSource::Profile("analytics".into()));
    // Keys win over a profile, as boto3's Session(keys, profile_name=...).
    let both = with_keys(serde_json::json!({"profile_name": "analytics"}));
    assert!(matches!(config_of(&both).credentials, CredentialSource::StaticKeys(_)));
    // An empty one is unset, as Airflow's `if profile_name`.
    assert_eq!(config_of(&aws(serde_json::json!({"profile_name": ""}))).credentials, CredentialSource::Ambient);
}

#[test]
fn assume_role_with_its_kwargs() {
    let conn = with_keys(serde_json::json!({
        "role_arn": "arn:aws:iam::123456789012:role/etl",
        "assume_role_kwargs": {
            "ExternalId": "ext-1",
            "RoleSessionName": "nightly",
            "DurationSeconds": 1800,
            "Policy": "{\"Version\": \"2012-10-17\"}",
            "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
            "Tags": [{"Key": "team", "Value": "data"}]
        }
    }));
    assert_eq!(
        config_of(&conn).credentials,
        CredentialSource::AssumeRole(AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/etl".into(),
            session_name: "nightly".into(),
            external_id: Some("ext-1".into()),
            duration_seconds: Some(1800),
            policy: Some("{\"Version\": \"2012-10-17\"}".into()),
            policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            tags: vec![("team".into(), "data".into())],
            base: BaseCredentials::StaticKeys(keys("AKID", "secret", None)),
        })
    );
}

#[test]
fn assume_role_defaults_and_bases() {
    // assume_role is the default method; the session is named after the
    // connection as Airflow names it; the base is a profile, else the chain.
    let role = |extra: serde_json::Value| match config_of(&aws(extra)).credentials {
        CredentialSource::AssumeRole(role) => role,
        other => panic!("{other:?}"),
    };
    let plain = role(serde_json::json!({"role_arn": "arn:r"}));
    assert_eq!(plain.session_name, "airflow_aws_x");
    assert_eq!((plain.external_id, plain.duration_seconds, plain.base), (None, None, BaseCredentials::Ambient));
    let profiled =
        role(serde_json::json!({"role_arn": "arn:r", "profile_name": "p", "assume_role_method": "assume_role"}));
    assert_eq!(profiled.base, BaseCredentials::Profile("p".into()));
    // An empty role_arn is no role, as Airflow's `if role_arn`.
    assert_eq!(config_of(&aws(serde_json::json!({"role_arn": ""}))).credentials, CredentialSource::Ambient);
}

#[test]
fn session_names_are_slugified_as_airflow_does() {
    for (conn_id, expected) in [
        ("aws_default", "airflow_aws_default"),
        ("My.Conn-1", "airflow_my.conn-1"),
        ("a b//c", "airflow_a-b-c"),
        ("x--y", "airflow_x-y"),
        ("id 1,000", "airflow_id-1000"),
        ("trailing!", "airflow_trailing"),
        ("é", "airflow_"),
    ] {
        assert_eq!(session_name_for(conn_id), expected, "{conn_id}");
    }
}

#[test]
fn assume_role_kwargs_are_checked() {
    let error = |kwargs: serde_json::Value| {
        error_of(&aws(serde_json::json!({"role_arn": "arn:r", "assume_role_kwargs": kwargs})))
    };
    assert!(error(serde_json::json!({"SerialNumber": "x", "TokenCode": "1"})).starts_with(
        "aws connection `aws_x`: assume_role_kwargs.SerialNumber: not supported by pghook for this assume_role_method"
    ));
    assert!(error(serde_json::json!({"TransitiveTagKeys": []})).contains("assume_role_kwargs.TransitiveTagKeys"));
    assert!(error(serde_json::json!({"Bogus": 1})).contains("assume_role_kwargs.Bogus"));
    assert_eq!(
        error(serde_json::json!({"DurationSeconds": "3600"})),
        "aws connection `aws_x`: assume_role_kwargs.DurationSeconds: must be a whole number of seconds"
    );
    assert!(error(serde_json::json!({"DurationSeconds": -1})).contains("whole number"));
    assert!(error(serde_json::json!({"PolicyArns": ["arn:p"]})).contains("PolicyArns: must be a list of objects"));
    assert!(error(serde_json::json!({"Tags": [{"Key": "k"}]})).contains("Tags: must be a list of objects"));
    // The ExternalId may be a secret: a wrong type is named, never quoted.
    let e = error(serde_json::json!({"ExternalId": 12345678}));
    assert_eq!(e, "aws connection `aws_x`: assume_role_kwargs.ExternalId: must be a string, not a number");
    // A URI gives extras as strings: nested settings need __extra__.
    let uri = Connection::parse("aws_x", "aws://?role_arn=arn%3Ar&assume_role_kwargs=%7B%7D").unwrap();
    assert!(error_of(&uri).starts_with(
        "aws connection `aws_x`: assume_role_kwargs: must be a JSON object, not a string (in a URI, give the extras as JSON in __extra__)"
    ));
}

#[test]
fn web_identity() {
    let conn = aws(serde_json::json!({
        "role_arn": "arn:aws:iam::123456789012:role/web",
        "assume_role_method": "assume_role_with_web_identity",
        "assume_role_with_web_identity_federation": "file",
        "assume_role_with_web_identity_token_file": "tokens/web.jwt",
        "assume_role_kwargs": {"RoleSessionName": "s", "DurationSeconds": 900, "ProviderId": "www.amazon.com"}
    }));
    assert_eq!(
        config_of(&conn).credentials,
        CredentialSource::WebIdentity(WebIdentity {
            role_arn: "arn:aws:iam::123456789012:role/web".into(),
            token_file: Some("tokens/web.jwt".into()),
            session_name: Some("s".into()),
            duration_seconds: Some(900),
            policy: None,
            policy_arns: Vec::new(),
            provider_id: Some("www.amazon.com".into()),
        })
    );
    // Without a token file: the host's AWS_WEB_IDENTITY_TOKEN_FILE.
    let ambient = aws(serde_json::json!({
        "role_arn": "arn:r", "assume_role_method": "assume_role_with_web_identity",
        "assume_role_with_web_identity_federation": "file"
    }));
    let CredentialSource::WebIdentity(web) = config_of(&ambient).credentials else { panic!() };
    assert_eq!((web.token_file, web.session_name), (None, None));
}

#[test]
fn web_identity_needs_the_file_federation() {
    let with = |federation: serde_json::Value, kwargs: serde_json::Value| {
        error_of(&aws(serde_json::json!({
            "role_arn": "arn:r", "assume_role_method": "assume_role_with_web_identity",
            "assume_role_with_web_identity_federation": federation, "assume_role_kwargs": kwargs
        })))
    };
    assert_eq!(
        with(serde_json::Value::Null, serde_json::json!({})),
        "aws connection `aws_x`: assume_role_with_web_identity_federation: must be `file` (the token is read from a file), as Airflow requires"
    );
    assert!(with(serde_json::json!("google"), serde_json::json!({})).contains("`google` is not supported by pghook"));
    // ExternalId and Tags belong to AssumeRole, not AssumeRoleWithWebIdentity.
    assert!(
        with(serde_json::json!("file"), serde_json::json!({"ExternalId": "x"}))
            .contains("assume_role_kwargs.ExternalId")
    );
}

#[test]
fn unsupported_methods_and_settings_are_refused_by_name() {
    let e = error_of(&aws(serde_json::json!({"role_arn": "arn:r", "assume_role_method": "assume_role_with_saml"})));
    assert!(
        e.starts_with("aws connection `aws_x`: assume_role_method: `assume_role_with_saml` is not supported by pghook"),
        "{e}"
    );
    let e = error_of(&aws(serde_json::json!({"role_arn": "arn:r", "assume_role_method": "nope"})));
    assert!(e.contains("must be `assume_role` (the default) or `assume_role_with_web_identity`"), "{e}");
    // Without a role_arn the method is never read, as in Airflow.
    assert!(client_config(Some(&aws(serde_json::json!({"assume_role_method": "nope"})))).is_ok());
    for verify in [serde_json::json!(false), serde_json::json!("ca.pem"), serde_json::json!("false")] {
        let e = error_of(&aws(serde_json::json!({"verify": verify})));
        assert!(e.starts_with("aws connection `aws_x`: verify: pghook always checks"), "{e}");
    }
    for verify in [serde_json::json!(true), serde_json::json!("true"), serde_json::Value::Null] {
        assert!(client_config(Some(&aws(serde_json::json!({"verify": verify})))).is_ok());
    }
    let tuned = aws(serde_json::json!({"config_kwargs": {"retries": {"max_attempts": 3}, "connect_timeout": 5}}));
    assert!(client_config(Some(&tuned)).is_ok());
    let proxied = aws(serde_json::json!({"config_kwargs": {"proxies": {"https": "http://proxy:3128"}}}));
    assert!(
        error_of(&proxied)
            .starts_with("aws connection `aws_x`: config_kwargs: `proxies` (botocore Config) is not supported")
    );
}

#[test]
fn service_config_endpoints() {
    let conn = with_keys(serde_json::json!({
        "endpoint_url": "http://127.0.0.1:5000",
        "service_config": {
            "sts": {"endpoint_url": "http://127.0.0.1:5001"},
            "redshift": {"endpoint_url": "https://redshift.internal", "other": "ignored"},
            "s3": {"endpoint_url": "http://not-used"}
        }
    }));
    assert_eq!(
        config_of(&conn).endpoints,
        ServiceEndpoints {
            sts: Some(endpoint(Scheme::Http, "127.0.0.1", Some(5001))),
            redshift: Some(endpoint(Scheme::Https, "redshift.internal", None)),
            redshift_serverless: Some(endpoint(Scheme::Http, "127.0.0.1", Some(5000))),
        }
    );
    // STS takes only its own entry, never endpoint_url (Airflow's sts_connection_assume).
    let global = with_keys(serde_json::json!({"endpoint_url": "http://127.0.0.1:5000"}));
    assert_eq!(config_of(&global).endpoints.sts, None);
    let bad = with_keys(serde_json::json!({"service_config": {"redshift-serverless": {"endpoint_url": "ftp://h"}}}));
    assert_eq!(
        error_of(&bad),
        "aws connection `aws_x`: service_config.redshift-serverless.endpoint_url: must start with http:// or https://"
    );
    let bad = with_keys(serde_json::json!({"service_config": {"sts": "http://h"}}));
    assert_eq!(error_of(&bad), "aws connection `aws_x`: service_config.sts: must be a JSON object, not a string");
    let bad = with_keys(serde_json::json!({"service_config": []}));
    assert!(error_of(&bad).starts_with("aws connection `aws_x`: service_config: must be a JSON object, not an array"));
}

#[test]
fn endpoint_urls_are_parsed() {
    let ok = |scheme, host: &str, port| Ok(endpoint(scheme, host, port));
    let cases = [
        ("http://127.0.0.1:5000", ok(Scheme::Http, "127.0.0.1", Some(5000))),
        ("https://Redshift.Example.com/", ok(Scheme::Https, "redshift.example.com", None)),
        ("HTTP://[::1]:4566", ok(Scheme::Http, "::1", Some(4566))),
        ("https://localhost.localstack.cloud", ok(Scheme::Https, "localhost.localstack.cloud", None)),
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
