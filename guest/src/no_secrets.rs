//! No password reaches an error or `explain`: every malformed or odd way of
//! writing one, through parsing, the libpq arguments and the AWS client.

#[cfg(test)]
mod tests {
    use crate::aws_conn::client_config;
    use crate::connection::Connection;
    use crate::libpq::{ConnArgs, HookOverrides};

    /// The fragment every case hides in its password.
    const SECRET: &str = "Pa55word";

    /// What a user would see of `stored`: the error, or the explain output.
    fn shown(stored: &str) -> Result<String, String> {
        let conn = Connection::parse("c", stored).map_err(|e| e.message)?;
        // Debug output can reach logs too.
        let debug = format!("{conn:?}");
        assert!(!debug.contains(SECRET), "{stored}: {debug}");
        let args = ConnArgs::build(&conn, &HookOverrides::default()).map_err(|e| e.message)?;
        Ok(args.explain())
    }

    /// URIs whose unencoded password Python's urlsplit would cut apart.
    const AMBIGUOUS_URIS: &[&str] = &[
        "postgres://user:Pa55word#x@host:5432/db",
        "postgres://user:x#Pa55word@host:5432/db",
        "postgres://user:Pa55word?w@host/db",
        "postgres://user:p?Pa55word@host/db",
        "postgres://user:12?Pa55word@host/db",
        "postgres://user:1?sslmode=Pa55word@host/db",
        "postgres://user:1?application_name=Pa55word@host/db",
        "postgres://user:Pa55word/b@host/db",
        "postgres://user:a/Pa55word@host/db",
        "postgres://user:123/Pa55word@host/db",
        "postgres://u:x@y?Pa55word@host/db",
        "postgres://u:x@y/Pa55word@host/db",
        "postgres://u:x@y#Pa55word@host/db",
        "postgres://u:x@y:z/Pa55word@host:bad/db",
        "postgres://dom/user:Pa55word@host/db",
        "postgres://https://user:Pa55word/x@host/db",
        "aws://AKID:Pa55word/x+y@/?region_name=eu-west-1",
    ];

    #[test]
    fn ambiguous_uris_are_refused_without_the_password() {
        for stored in AMBIGUOUS_URIS {
            let e = shown(stored).expect_err(stored);
            assert!(e.contains("ambiguous"), "{stored}: {e}");
            assert!(!e.contains(SECRET), "{stored}: {e}");
        }
    }

    #[test]
    fn other_bad_uris_fail_without_the_password() {
        for stored in [
            "postgres://user:Pa55word",
            "postgres://user:Pa55word@https://host/db",
            "postgres://u:Pa55word@a://b://c",
            "postgres://u:Pa55word@host/db?__extra__=%22Pa55word%22",
            "postgres://u:Pa55word@host/db?__extra__=%7B%22password%22%3A+%22Pa55word%22",
            "postgres://u:Pa55word@h:99999/db",
            "user:Pa55word@host/db",
        ] {
            let e = shown(stored).expect_err(stored);
            assert!(!e.contains(SECRET), "{stored}: {e}");
        }
    }

    #[test]
    fn explain_masks_a_password_wherever_it_was_given() {
        for stored in [
            // An `@` in the password: the host follows the last one.
            "postgres://u:x@y:Pa55word@host/db",
            "postgres://u:Pa55word@y:z@host/db",
            "postgres://u:Pa55%23word%3F%2F@host/db",
            "postgres://u@host/db?password=Pa55word",
            "postgres://u:p@host/db?__extra__=%7B%22password%22%3A+%22Pa55word%22%7D",
            r#"{"conn_type": "postgres", "host": "h", "extra": {"password": "Pa55word"}}"#,
            r#"{"conn_type": "postgres", "host": "h", "password": "Pa55word", "extra": "{\"password\": 55}"}"#,
        ] {
            let explain = shown(stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
            assert!(!explain.contains(SECRET) && explain.contains(r#""password":"***""#), "{stored}: {explain}");
        }
        let explain = shown(r#"{"host": "h", "extra": {"password": 55512345}}"#).unwrap();
        assert!(!explain.contains("55512345"), "{explain}");
    }

    #[test]
    fn refused_secret_keywords_are_not_quoted() {
        for key in ["sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"] {
            let e = shown(&format!("postgres://u@host/db?{key}={SECRET}")).unwrap_err();
            assert!(e.contains(key) && !e.contains(SECRET), "{e}");
        }
    }

    #[test]
    fn json_password_of_any_type_is_not_quoted() {
        for password in ["55512345", "[\"Pa55word\"]", "{\"p\": \"Pa55word\"}", "true", "5.5512345e3"] {
            let stored = format!(r#"{{"conn_type": "postgres", "host": "h", "password": {password}}}"#);
            let e = shown(&stored).unwrap_err();
            assert_eq!(e.split(", not ").next(), Some("connection `c`: password: must be a string or null"), "{e}");
            assert!(!e.contains(SECRET) && !e.contains("5551234"), "{e}");
        }
        for extra in ["55512345", "[\"Pa55word\"]", "true", "\"[\\\"Pa55word\\\"]\"", "\"{Pa55word\""] {
            let stored = format!(r#"{{"conn_type": "postgres", "host": "h", "extra": {extra}}}"#);
            let e = shown(&stored).unwrap_err();
            assert!(!e.contains(SECRET) && !e.contains("5551234"), "{e}");
        }
    }

    #[test]
    fn aws_secrets_are_never_quoted() {
        // A secret key holds `/` and `+` more often than not.
        for stored in [
            "aws://AKID:Pa55word/x+y@/?region_name=eu-west-1",
            "aws://AKID:Pa55word?x@/",
            r#"{"conn_type": "aws", "login": "AKID", "password": 55512345}"#,
        ] {
            let e = Connection::parse("aws_default", stored).unwrap_err().message;
            assert!(!e.contains(SECRET) && !e.contains("5551234"), "{stored}: {e}");
        }
        // Half a key pair, with a session token: the error names neither secret.
        for stored in [
            "aws://:Pa55word@/?aws_session_token=Pa55wordToken",
            "aws://AKID@/?aws_session_token=Pa55wordToken",
            r#"{"conn_type": "aws", "extra": {"aws_secret_access_key": "Pa55word", "aws_session_token": "Pa55word"}}"#,
        ] {
            let aws = Connection::parse("aws_default", stored).unwrap();
            assert!(!format!("{aws:?}").contains(SECRET));
            let e = client_config(Some(&aws)).unwrap_err().message;
            assert!(e.contains("go together") && !e.contains(SECRET), "{stored}: {e}");
        }
        // Secrets of the wrong type, or where pghook refuses a setting: named, never quoted.
        for extra in [
            r#"{"aws_access_key_id": "AKID", "aws_secret_access_key": ["Pa55word"]}"#,
            r#"{"role_arn": "r", "assume_role_kwargs": {"ExternalId": ["Pa55word"]}}"#,
            r#"{"role_arn": "r", "assume_role_kwargs": {"SerialNumber": "Pa55word", "TokenCode": "Pa55word"}}"#,
            r#"{"session_kwargs": {"aws_secret_access_key": {"x": "Pa55word"}}}"#,
            r#"{"verify": "Pa55word.pem"}"#,
            r#"{"config_kwargs": {"proxies": {"https": "http://u:Pa55word@proxy"}}}"#,
        ] {
            let stored = format!(r#"{{"conn_type": "aws", "extra": {extra}}}"#);
            let aws = Connection::parse("aws_default", &stored).unwrap();
            let e = client_config(Some(&aws)).unwrap_err().message;
            assert!(!e.contains(SECRET), "{extra}: {e}");
        }
    }
}
