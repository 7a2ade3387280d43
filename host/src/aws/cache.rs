//! AWS credentials kept between a tenant's calls, so an assumed role or the
//! default chain is asked once per session, not once per call, and renewed
//! before it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_types::region::Region;
use sha2::{Digest, Sha256};

use crate::bindings::aws::ClientConfig;
use crate::bindings::types::Error as WitError;

/// Credentials are renewed once they have less than this left, so no call
/// signs with credentials about to lapse (botocore renews 15 minutes ahead
/// at the latest, the SDK's identity cache at 10 seconds).
pub(crate) const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// How long credentials without an expiry (keys in the environment or a
/// profile) are kept before they are read again: the SDK identity cache's
/// default.
pub(crate) const KEEP_WITHOUT_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// The most credential sources one cache keeps; the least recently used
/// goes first.
pub const CAPACITY: usize = 64;

/// What a call's AWS settings resolved to.
#[derive(Clone)]
pub(crate) struct Resolved {
    /// The credentials to sign with.
    pub(crate) credentials: Credentials,
    /// The region to call.
    pub(crate) region: Region,
}

/// A tenant's resolved AWS credentials, keyed by the guest's whole
/// [`ClientConfig`] as far as it decides the credentials (their source and
/// region, and the STS endpoint). Keys are digests: no secret is kept in a
/// key. One per tenant (a [`crate::Tenant`] keeps one), never shared between
/// tenants: a token file is read through the tenant's own file root.
pub struct CredentialCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<[u8; 32], (Arc<Slot>, u64)>,
    /// Bumped at each use: the entry with the smallest stamp is the least recently used.
    clock: u64,
}

/// One source's credentials; the lock is held while they are fetched, so
/// calls that need them at once wait for one fetch.
#[derive(Default)]
struct Slot(tokio::sync::Mutex<Option<Kept>>);

struct Kept {
    resolved: Resolved,
    renew_at: SystemTime,
}

impl Default for CredentialCache {
    fn default() -> CredentialCache {
        CredentialCache::new()
    }
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").field("sources", &self.len()).finish()
    }
}

impl CredentialCache {
    /// An empty cache.
    pub fn new() -> CredentialCache {
        CredentialCache { entries: Mutex::new(Entries::default()) }
    }

    /// How many credential sources it holds.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot for `key`, made (and the least recently used dropped, when
    /// full) if there is none.
    fn slot(&self, key: [u8; 32]) -> Arc<Slot> {
        let mut entries = self.lock();
        entries.clock += 1;
        let stamp = entries.clock;
        if let Some((slot, used)) = entries.by_key.get_mut(&key) {
            *used = stamp;
            return slot.clone();
        }
        if entries.by_key.len() >= CAPACITY {
            let oldest = entries.by_key.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                entries.by_key.remove(&oldest);
            }
        }
        let slot = Arc::new(Slot::default());
        entries.by_key.insert(key, (slot.clone(), stamp));
        slot
    }

    /// The credentials for `client`: kept ones while they have more than
    /// [`RENEW_BEFORE_EXPIRY`] left, else what `fetch` gives (only then
    /// awaited), kept.
    pub(crate) async fn get_or_fetch(
        &self,
        client: &ClientConfig,
        fetch: impl Future<Output = Result<Resolved, WitError>>,
    ) -> Result<Resolved, WitError> {
        self.get_or_fetch_at(key(client), SystemTime::now, fetch).await
    }

    async fn get_or_fetch_at(
        &self,
        key: [u8; 32],
        now: impl Fn() -> SystemTime,
        fetch: impl Future<Output = Result<Resolved, WitError>>,
    ) -> Result<Resolved, WitError> {
        let slot = self.slot(key);
        let mut kept = slot.0.lock().await;
        if let Some(k) = kept.as_ref().filter(|k| now() < k.renew_at) {
            return Ok(k.resolved.clone());
        }
        *kept = None;
        let resolved = fetch.await?;
        let fetched_at = now();
        let renew_at = match resolved.credentials.expiry() {
            Some(expiry) => expiry.checked_sub(RENEW_BEFORE_EXPIRY).unwrap_or(fetched_at),
            None => fetched_at + KEEP_WITHOUT_EXPIRY,
        };
        if fetched_at < renew_at {
            *kept = Some(Kept { resolved: resolved.clone(), renew_at });
        }
        Ok(resolved)
    }
}

/// The digest of what decides `client`'s credentials. The generated types'
/// Debug form lists every field; it goes only into the hash.
fn key(client: &ClientConfig) -> [u8; 32] {
    let decides = format!("{:?}", (&client.credentials, &client.region, &client.endpoints.sts));
    Sha256::digest(decides.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn resolved(id: &str, expiry: Option<SystemTime>) -> Resolved {
        Resolved { credentials: Credentials::new(id, "secret", None, expiry, "test"), region: Region::new("us-east-1") }
    }

    #[tokio::test]
    async fn kept_until_shortly_before_expiry() {
        let cache = CredentialCache::new();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let expiry = start + Duration::from_secs(3600);
        let fetches = AtomicUsize::new(0);
        let fetch = async || {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            Ok(resolved(&format!("AKID{n}"), Some(expiry)))
        };
        let at = |offset: u64| move || start + Duration::from_secs(offset);
        let id = |r: Result<Resolved, WitError>| r.ok().unwrap().credentials.access_key_id().to_string();
        assert_eq!(id(cache.get_or_fetch_at([1; 32], at(0), fetch()).await), "AKID0");
        assert_eq!(id(cache.get_or_fetch_at([1; 32], at(3000), fetch()).await), "AKID0");
        // Less than five minutes left: renewed.
        assert_eq!(id(cache.get_or_fetch_at([1; 32], at(3301), fetch()).await), "AKID1");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // Another source has its own entry.
        assert_eq!(id(cache.get_or_fetch_at([2; 32], at(3301), fetch()).await), "AKID2");
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn without_expiry_kept_a_while_and_failures_not_at_all() {
        let cache = CredentialCache::new();
        let start = SystemTime::UNIX_EPOCH;
        let fetches = AtomicUsize::new(0);
        let fetch = async || {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(resolved("AKID", None))
        };
        let at = |offset: u64| move || start + Duration::from_secs(offset);
        cache.get_or_fetch_at([1; 32], at(0), fetch()).await.ok().unwrap();
        cache.get_or_fetch_at([1; 32], at(899), fetch()).await.ok().unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        cache.get_or_fetch_at([1; 32], at(900), fetch()).await.ok().unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // Credentials already within the margin are used once, never kept.
        let short = async || Ok(resolved("SHORT", Some(start + Duration::from_secs(60))));
        cache.get_or_fetch_at([3; 32], at(0), short()).await.ok().unwrap();
        let failing = async || Err(crate::error::wit(crate::bindings::types::ErrorKind::Aws, "down"));
        assert!(cache.get_or_fetch_at([3; 32], at(1), failing()).await.is_err());
    }

    #[tokio::test]
    async fn bounded_least_recently_used_first() {
        let cache = CredentialCache::new();
        let fetch = async || Ok(resolved("AKID", None));
        for i in 0..CAPACITY as u8 {
            cache.get_or_fetch_at([i; 32], SystemTime::now, fetch()).await.ok().unwrap();
        }
        // Use the first again, then add one more: the second goes.
        cache.get_or_fetch_at([0; 32], SystemTime::now, fetch()).await.ok().unwrap();
        cache.get_or_fetch_at([255; 32], SystemTime::now, fetch()).await.ok().unwrap();
        assert_eq!(cache.len(), CAPACITY);
        let entries = cache.lock();
        assert!(entries.by_key.contains_key(&[0; 32]) && !entries.by_key.contains_key(&[1; 32]));
    }
}
