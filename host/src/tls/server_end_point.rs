//! RFC 5929 `tls-server-end-point` channel binding data: the server
//! certificate hashed with the hash of its own signature algorithm, MD5 and
//! SHA-1 raised to SHA-256, as PostgreSQL's server and libpq compute it. The
//! algorithm is read off the certificate's DER with a small walk, enough for
//! `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }`.

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// The hash `tls-server-end-point` uses for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndPointHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl EndPointHash {
    /// `der` hashed with this hash.
    fn digest(self, der: &[u8]) -> Vec<u8> {
        match self {
            EndPointHash::Sha224 => Sha224::digest(der).to_vec(),
            EndPointHash::Sha256 => Sha256::digest(der).to_vec(),
            EndPointHash::Sha384 => Sha384::digest(der).to_vec(),
            EndPointHash::Sha512 => Sha512::digest(der).to_vec(),
        }
    }
}

/// The channel binding data of the server certificate `der`, or why there is
/// none: a signature algorithm without a hash of its own (Ed25519, Ed448),
/// one pghook does not know, or a certificate it cannot read. PostgreSQL's
/// server fails such a binding too ("could not find digest for NID UNDEF").
pub(crate) fn server_end_point(der: &[u8]) -> Result<Vec<u8>, String> {
    Ok(end_point_hash(der)?.digest(der))
}

/// The hash for the certificate `der`, from its signatureAlgorithm.
pub(crate) fn end_point_hash(der: &[u8]) -> Result<EndPointHash, String> {
    let unreadable = || "the server certificate is not valid DER".to_string();
    let (certificate, _) = element(der, SEQUENCE).ok_or_else(unreadable)?;
    let (_tbs, rest) = element(certificate, SEQUENCE).ok_or_else(unreadable)?;
    let (algorithm, _) = element(rest, SEQUENCE).ok_or_else(unreadable)?;
    let (oid, parameters) = element(algorithm, OID).ok_or_else(unreadable)?;
    let known = |oid: &[u8]| SIGNATURES.iter().find(|(known, _, _)| *known == oid);
    match known(oid) {
        Some((_, _, Some(hash))) => Ok(*hash),
        Some((RSASSA_PSS, _, None)) => pss_hash(parameters).ok_or_else(unreadable),
        Some((_, name, None)) => {
            Err(format!("its signature algorithm {name} names no hash for tls-server-end-point channel binding"))
        }
        None => Err(format!("its signature algorithm (OID {}) is not one pghook can bind to", dotted(oid))),
    }
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
/// `[0]`, constructed: RSASSA-PSS-params' hashAlgorithm.
const PSS_HASH_ALGORITHM: u8 = 0xa0;
/// id-RSASSA-PSS, 1.2.840.113549.1.1.10: the hash is in its parameters.
const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

/// Signature algorithm OIDs (DER content), their names, and the hash
/// tls-server-end-point uses; `None`: none of their own.
const SIGNATURES: &[(&[u8], &str, Option<EndPointHash>)] = {
    use EndPointHash::{Sha224, Sha256, Sha384, Sha512};
    &[
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04], "md5WithRSAEncryption", Some(Sha256)),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05], "sha1WithRSAEncryption", Some(Sha256)),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e], "sha224WithRSAEncryption", Some(Sha224)),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], "sha256WithRSAEncryption", Some(Sha256)),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], "sha384WithRSAEncryption", Some(Sha384)),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], "sha512WithRSAEncryption", Some(Sha512)),
        (RSASSA_PSS, "RSASSA-PSS", None),
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01], "ecdsa-with-SHA1", Some(Sha256)),
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01], "ecdsa-with-SHA224", Some(Sha224)),
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], "ecdsa-with-SHA256", Some(Sha256)),
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], "ecdsa-with-SHA384", Some(Sha384)),
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04], "ecdsa-with-SHA512", Some(Sha512)),
        (&[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03], "dsa-with-sha1", Some(Sha256)),
        (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x01], "dsa-with-sha224", Some(Sha224)),
        (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02], "dsa-with-sha256", Some(Sha256)),
        (&[0x2b, 0x65, 0x70], "Ed25519", None),
        (&[0x2b, 0x65, 0x71], "Ed448", None),
    ]
};

/// Hash algorithm OIDs (DER content) and the hash tls-server-end-point uses.
const HASHES: &[(&[u8], EndPointHash)] = &[
    // SHA-1 is raised to SHA-256.
    (&[0x2b, 0x0e, 0x03, 0x02, 0x1a], EndPointHash::Sha256),
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04], EndPointHash::Sha224),
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01], EndPointHash::Sha256),
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02], EndPointHash::Sha384),
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03], EndPointHash::Sha512),
];

/// The hash of an RSASSA-PSS signature, from its parameters (`parameters`:
/// what follows the OID in the AlgorithmIdentifier): hashAlgorithm, whose
/// default is SHA-1 (raised to SHA-256).
fn pss_hash(parameters: &[u8]) -> Option<EndPointHash> {
    let (params, _) = element(parameters, SEQUENCE)?;
    let Some((explicit, _)) = element(params, PSS_HASH_ALGORITHM) else {
        return Some(EndPointHash::Sha256);
    };
    let (algorithm, _) = element(explicit, SEQUENCE)?;
    let (oid, _) = element(algorithm, OID)?;
    HASHES.iter().find(|(known, _)| *known == oid).map(|(_, hash)| *hash)
}

/// The content of the DER element at the start of `input` if its tag is
/// `tag`, and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = match first {
        0x00..=0x7f => (usize::from(first), rest),
        // Long form: 1 to 4 length bytes.
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let bytes = rest.get(..count)?;
            (bytes.iter().fold(0usize, |n, b| n << 8 | usize::from(*b)), &rest[count..])
        }
        _ => return None,
    };
    (found == tag && rest.len() >= length).then(|| rest.split_at(length))
}

/// An OID's DER content in dotted form, for messages.
fn dotted(oid: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value = 0u64;
    for byte in oid {
        value = value << 7 | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.extend([first, value - first * 40]);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate with only what the walk reads: an empty tbsCertificate,
    /// the algorithm identifier `algorithm` (a DER SEQUENCE's content) and
    /// an empty signature.
    fn certificate(algorithm: &[u8]) -> Vec<u8> {
        let mut body = vec![SEQUENCE, 0];
        body.extend(der(SEQUENCE, algorithm));
        body.extend([0x03, 0x01, 0x00]);
        der(SEQUENCE, &body)
    }

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n @ 0..0x80 => out.push(n as u8),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(content);
        out
    }

    fn algorithm(oid: &[u8], parameters: &[u8]) -> Vec<u8> {
        let mut content = der(OID, oid);
        content.extend(parameters);
        content
    }

    #[test]
    fn each_signature_algorithm_has_its_hash() {
        for (oid, name, hash) in SIGNATURES.iter().filter(|(_, _, hash)| hash.is_some()) {
            // RSA algorithms carry a NULL parameter, ECDSA none.
            let got = end_point_hash(&certificate(&algorithm(oid, &[0x05, 0x00])));
            assert_eq!(got.as_ref().ok(), hash.as_ref(), "{name}");
            assert_eq!(end_point_hash(&certificate(&algorithm(oid, &[]))).ok(), *hash, "{name}");
        }
        let sha384 = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        let cert = certificate(&algorithm(sha384, &[]));
        assert_eq!(server_end_point(&cert).unwrap(), Sha384::digest(&cert).to_vec());
    }

    #[test]
    fn rsa_pss_takes_the_hash_of_its_parameters() {
        let sha512 = der(SEQUENCE, &der(OID, &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03]));
        let params = der(SEQUENCE, &der(PSS_HASH_ALGORITHM, &sha512));
        assert_eq!(end_point_hash(&certificate(&algorithm(RSASSA_PSS, &params))), Ok(EndPointHash::Sha512));
        // All defaults: SHA-1, raised to SHA-256.
        let defaults = der(SEQUENCE, &[]);
        assert_eq!(end_point_hash(&certificate(&algorithm(RSASSA_PSS, &defaults))), Ok(EndPointHash::Sha256));
    }

    #[test]
    fn no_hash_of_its_own_or_unknown_is_refused() {
        let e = end_point_hash(&certificate(&algorithm(&[0x2b, 0x65, 0x70], &[]))).unwrap_err();
        assert_eq!(e, "its signature algorithm Ed25519 names no hash for tls-server-end-point channel binding");
        // sha3-256WithRSAEncryption, 2.16.840.1.101.3.4.3.14.
        let sha3 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0e];
        let e = end_point_hash(&certificate(&algorithm(&sha3, &[]))).unwrap_err();
        assert_eq!(e, "its signature algorithm (OID 2.16.840.1.101.3.4.3.14) is not one pghook can bind to");
        for broken in [&[][..], &[0x30, 0x05, 0x30], &[0x31, 0x00], &[0x30, 0x85, 0, 0, 0, 0, 1]] {
            assert_eq!(end_point_hash(broken), Err("the server certificate is not valid DER".into()));
        }
    }
}
