//! require_auth, carried out: watches what the server sends during login
//! and refuses an authentication request the guest's
//! [`AuthRequirement`] does not allow before tokio-postgres sees it, so no
//! password is ever sent to it. Messages are libpq's.

use crate::bindings::postgres::{AuthMethods, AuthRequirement};

/// The server's authentication requests (the code of an `R` message).
mod code {
    pub const OK: u32 = 0;
    pub const CLEARTEXT_PASSWORD: u32 = 3;
    pub const MD5_PASSWORD: u32 = 5;
    pub const GSS: u32 = 7;
    pub const GSS_CONTINUE: u32 = 8;
    pub const SSPI: u32 = 9;
    pub const SASL: u32 = 10;
    pub const SASL_CONTINUE: u32 = 11;
    pub const SASL_FINAL: u32 = 12;
}

/// Reads the server's messages until it has let the client in.
pub(crate) struct AuthWatch {
    requirement: AuthRequirement,
    /// The current message's type and length, as far as read.
    header: [u8; 5],
    header_read: usize,
    /// What is left of the current message's body.
    body_left: usize,
    /// The first bytes of an `R` message's body: its code.
    code: Vec<u8>,
    /// The client has answered a whole exchange: a password, or SASL to its end.
    finished: bool,
    /// The server let the client in: nothing more to watch.
    done: bool,
}

impl AuthWatch {
    /// Watch a login under `requirement`.
    pub(crate) fn new(requirement: AuthRequirement) -> AuthWatch {
        AuthWatch {
            requirement,
            header: [0; 5],
            header_read: 0,
            body_left: 0,
            code: Vec::with_capacity(4),
            finished: false,
            done: false,
        }
    }

    /// Whether the login is over (the server sent AuthenticationOk).
    pub(crate) fn done(&self) -> bool {
        self.done
    }

    /// Read the next bytes from the server; an error (libpq's message) for
    /// a request that is not allowed. Check them before handing them on:
    /// the bytes that complete a refused request must never reach
    /// tokio-postgres.
    pub(crate) fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() && !self.done {
            if self.header_read < self.header.len() {
                let take = (self.header.len() - self.header_read).min(bytes.len());
                self.header[self.header_read..self.header_read + take].copy_from_slice(&bytes[..take]);
                (self.header_read, bytes) = (self.header_read + take, &bytes[take..]);
                if self.header_read == self.header.len() {
                    let length = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]);
                    // A length under 4 is tokio-postgres' to refuse.
                    self.body_left = (length as usize).saturating_sub(4);
                    self.code.clear();
                    if self.body_left == 0 {
                        self.message_read()?;
                    }
                }
                continue;
            }
            let take = self.body_left.min(bytes.len());
            if self.header[0] == b'R' && self.code.len() < 4 {
                let wanted = (4 - self.code.len()).min(take);
                self.code.extend_from_slice(&bytes[..wanted]);
            }
            (self.body_left, bytes) = (self.body_left - take, &bytes[take..]);
            if self.body_left == 0 {
                self.message_read()?;
            }
        }
        Ok(())
    }

    /// A whole message has been read: check it if it is a request.
    fn message_read(&mut self) -> Result<(), String> {
        self.header_read = 0;
        let Ok(code) = <[u8; 4]>::try_from(self.code.as_slice()) else {
            // Not an authentication message, or one tokio-postgres refuses.
            return Ok(());
        };
        if self.header[0] != b'R' {
            return Ok(());
        }
        let code = u32::from_be_bytes(code);
        let allowed = self.requirement.allowed;
        let refusal = match code {
            code::OK => {
                self.done = true;
                (!self.requirement.unasked && !self.finished).then_some("server did not complete authentication")
            }
            code::CLEARTEXT_PASSWORD | code::MD5_PASSWORD => {
                self.finished = true;
                let method = if code == code::MD5_PASSWORD { AuthMethods::MD5 } else { AuthMethods::PASSWORD };
                let reason = match code {
                    code::MD5_PASSWORD => "server requested a hashed password",
                    _ => "server requested a cleartext password",
                };
                (!allowed.contains(method)).then_some(reason)
            }
            code::GSS | code::GSS_CONTINUE | code::SSPI => {
                let method = match code {
                    code::GSS => AuthMethods::GSS,
                    code::SSPI => AuthMethods::SSPI,
                    _ => AuthMethods::GSS | AuthMethods::SSPI,
                };
                let reason = match code {
                    code::SSPI => "server requested SSPI authentication",
                    _ => "server requested GSSAPI authentication",
                };
                (!allowed.intersects(method)).then_some(reason)
            }
            code::SASL | code::SASL_CONTINUE | code::SASL_FINAL => {
                self.finished |= code == code::SASL_FINAL;
                (!allowed.contains(AuthMethods::SCRAM_SHA_256)).then_some("server requested SASL authentication")
            }
            _ => Some("server requested an unknown authentication type"),
        };
        match refusal {
            Some(reason) => {
                Err(format!("authentication method requirement \"{}\" failed: {reason}", self.requirement.text))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `R` message with `code` and `rest` after it.
    fn request(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut message = vec![b'R'];
        message.extend(((8 + rest.len()) as u32).to_be_bytes());
        message.extend(code.to_be_bytes());
        message.extend(rest);
        message
    }

    fn watch(allowed: AuthMethods, unasked: bool) -> AuthWatch {
        AuthWatch::new(AuthRequirement { allowed, unasked, text: "r".into() })
    }

    /// Feed `bytes` one byte at a time: the refusal comes with the byte
    /// that completes the request, never earlier or later.
    fn feed_bytewise(watch: &mut AuthWatch, bytes: &[u8]) -> Result<usize, String> {
        for (i, byte) in bytes.iter().enumerate() {
            watch.inspect(std::slice::from_ref(byte)).map_err(|e| format!("{i}: {e}"))?;
        }
        Ok(bytes.len())
    }

    #[test]
    fn a_refused_request_fails_on_its_last_byte() {
        let cleartext = request(code::CLEARTEXT_PASSWORD, &[]);
        let e = feed_bytewise(&mut watch(AuthMethods::SCRAM_SHA_256, false), &cleartext).unwrap_err();
        assert_eq!(
            e,
            format!(
                "{}: authentication method requirement \"r\" failed: server requested a cleartext password",
                cleartext.len() - 1
            )
        );
        let md5 = request(code::MD5_PASSWORD, b"salt");
        let e = watch(AuthMethods::PASSWORD, false).inspect(&md5).unwrap_err();
        assert!(e.ends_with("server requested a hashed password"), "{e}");
        let sasl = request(code::SASL, b"SCRAM-SHA-256\0\0");
        let e = feed_bytewise(&mut watch(AuthMethods::MD5, false), &sasl).unwrap_err();
        assert!(e.starts_with(&format!("{}: ", sasl.len() - 1)) && e.ends_with("server requested SASL authentication"));
        let e = watch(AuthMethods::all(), false).inspect(&request(2, &[])).unwrap_err();
        assert!(e.ends_with("server requested an unknown authentication type"), "{e}");
    }

    #[test]
    fn an_allowed_exchange_passes_and_ends_the_watch() {
        let mut scram = watch(AuthMethods::SCRAM_SHA_256, false);
        let mut login = request(code::SASL, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        login.extend(request(code::SASL_CONTINUE, b"r=nonce,s=salt,i=4096"));
        login.extend(request(code::SASL_FINAL, b"v=signature"));
        login.extend(request(code::OK, &[]));
        assert_eq!(feed_bytewise(&mut scram, &login), Ok(login.len()));
        assert!(scram.done());
        // Whatever follows is not read.
        assert_eq!(scram.inspect(&request(code::CLEARTEXT_PASSWORD, &[])), Ok(()));
        // A password login in one chunk, with a notice before it.
        let mut password = watch(AuthMethods::PASSWORD | AuthMethods::MD5, false);
        let mut login = vec![b'N', 0, 0, 0, 6, b'x', 0];
        login.extend(request(code::MD5_PASSWORD, b"salt"));
        login.extend(request(code::OK, &[]));
        assert_eq!(password.inspect(&login), Ok(()));
        assert!(password.done());
    }

    #[test]
    fn letting_in_unasked_needs_none() {
        let trust = request(code::OK, &[]);
        let e = watch(AuthMethods::all(), false).inspect(&trust).unwrap_err();
        assert!(e.ends_with("server did not complete authentication"), "{e}");
        assert_eq!(watch(AuthMethods::empty(), true).inspect(&trust), Ok(()));
        // A SCRAM exchange the server cut short before its final message.
        let mut cut = request(code::SASL, b"SCRAM-SHA-256\0\0");
        cut.extend(request(code::OK, &[]));
        let e = watch(AuthMethods::SCRAM_SHA_256, false).inspect(&cut).unwrap_err();
        assert!(e.ends_with("server did not complete authentication"), "{e}");
        // An error instead of a login is tokio-postgres' to report.
        let error = [b'E', 0, 0, 0, 5, 0];
        assert_eq!(watch(AuthMethods::empty(), false).inspect(&error), Ok(()));
    }
}
