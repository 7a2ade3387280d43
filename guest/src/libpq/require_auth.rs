//! libpq's require_auth (PostgreSQL 16): which authentication requests the
//! server may make, read with libpq's rules and its error messages. The
//! host enforces the result ([`AuthRequirement`]) during login.

use crate::bindings::postgres::{AuthMethods, AuthRequirement};
use crate::error::{Result, config};

/// The methods by libpq's names (`none` is not a method: see [`read`]).
const METHODS: &[(&str, AuthMethods)] = &[
    ("password", AuthMethods::PASSWORD),
    ("md5", AuthMethods::MD5),
    ("gss", AuthMethods::GSS),
    ("sspi", AuthMethods::SSPI),
    ("scram-sha-256", AuthMethods::SCRAM_SHA_256),
];

/// Every method.
fn all() -> AuthMethods {
    METHODS.iter().fold(AuthMethods::empty(), |all, (_, method)| all | *method)
}

/// Read require_auth `text`: a comma-separated list of methods the server
/// may ask for, or, every element after a `!`, of methods it may not;
/// `none` lets it skip authentication (trust), `!none` forbids that.
/// Empty: no requirement.
pub fn read(text: &str) -> Result<Option<AuthRequirement>> {
    if text.is_empty() {
        return Ok(None);
    }
    // A plain list starts from nothing allowed, a negated one from everything.
    let negated = text.starts_with('!');
    let (mut allowed, mut unasked) = if negated { (all(), true) } else { (AuthMethods::empty(), false) };
    // Elements are not trimmed, as in libpq.
    for part in text.split(',') {
        let method = match part.strip_prefix('!') {
            Some(method) if negated => method,
            Some(_) => {
                return Err(config(format!(
                    "negative require_auth method \"{part}\" cannot be mixed with non-negative methods"
                )));
            }
            None if negated => {
                return Err(config(format!("require_auth method \"{part}\" cannot be mixed with negative methods")));
            }
            None => part,
        };
        let duplicate = || config(format!("require_auth method \"{part}\" is specified more than once"));
        if method == "none" {
            if unasked != negated {
                return Err(duplicate());
            }
            unasked = !negated;
            continue;
        }
        let (_, bits) = METHODS
            .iter()
            .find(|(name, _)| *name == method)
            .ok_or_else(|| config(format!("invalid require_auth value: \"{method}\"")))?;
        // Allowed when negated, not yet allowed when named: else a duplicate.
        if (allowed & *bits == *bits) != negated {
            return Err(duplicate());
        }
        allowed = allowed ^ *bits;
    }
    Ok(Some(AuthRequirement { allowed, unasked, text: text.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(text: &str) -> (AuthMethods, bool) {
        let requirement = read(text).unwrap().unwrap();
        assert_eq!(requirement.text, text);
        (requirement.allowed, requirement.unasked)
    }

    #[test]
    fn a_list_allows_what_it_names() {
        assert_eq!(read("").unwrap(), None);
        assert_eq!(allowed("scram-sha-256"), (AuthMethods::SCRAM_SHA_256, false));
        assert_eq!(allowed("password,md5"), (AuthMethods::PASSWORD | AuthMethods::MD5, false));
        assert_eq!(allowed("none"), (AuthMethods::empty(), true));
        assert_eq!(allowed("scram-sha-256,none"), (AuthMethods::SCRAM_SHA_256, true));
        assert_eq!(allowed("gss,sspi"), (AuthMethods::GSS | AuthMethods::SSPI, false));
    }

    #[test]
    fn a_negated_list_allows_all_but_what_it_names() {
        let but_password = AuthMethods::MD5 | AuthMethods::GSS | AuthMethods::SSPI | AuthMethods::SCRAM_SHA_256;
        assert_eq!(allowed("!password"), (but_password, true));
        assert_eq!(allowed("!password,!md5"), (but_password ^ AuthMethods::MD5, true));
        // !none: the server must ask for something.
        assert_eq!(allowed("!none"), (all(), false));
        assert_eq!(allowed("!none,!password"), (but_password, false));
    }

    #[test]
    fn libpq_errors() {
        let cases = [
            ("password,!md5", "negative require_auth method \"!md5\" cannot be mixed with non-negative methods"),
            ("!password,md5", "require_auth method \"md5\" cannot be mixed with negative methods"),
            ("password,md5,password", "require_auth method \"password\" is specified more than once"),
            ("!password,!md5,!password", "require_auth method \"!password\" is specified more than once"),
            ("none,md5,none", "require_auth method \"none\" is specified more than once"),
            ("!none,!md5,!none", "require_auth method \"!none\" is specified more than once"),
            ("scram-sha-256,scram-sha-256", "require_auth method \"scram-sha-256\" is specified more than once"),
            ("none,abcdefg", "invalid require_auth value: \"abcdefg\""),
            ("!abcdefg", "invalid require_auth value: \"abcdefg\""),
            // Not trimmed, and no empty element, as in libpq.
            ("password, md5", "invalid require_auth value: \" md5\""),
            ("password,", "invalid require_auth value: \"\""),
            ("SCRAM-SHA-256", "invalid require_auth value: \"SCRAM-SHA-256\""),
        ];
        for (text, message) in cases {
            assert_eq!(read(text).unwrap_err().message, message, "{text}");
        }
    }
}
