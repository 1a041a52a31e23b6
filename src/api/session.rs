//! Browser sessions: what a signed-in browser's cookie stands for, and the GUI password.
//!
//! It owns the in-memory session table (random 256-bit tokens, a week's sliding expiry, a
//! bounded count), the brake on sign-ins by password, and hashing and checking the password
//! (Argon2id PHC strings, as `[gui] password_hash` stores them). Sessions end with the daemon:
//! nothing is written to disk.
//!
//! The brake: at most [`MAX_FAILURES`] password tries within [`FAILURE_WINDOW`] are checked,
//! and at most [`MAX_CHECKS`] at once. A try counts as failed from *before* its check starts
//! until it is known to have succeeded, so tries made at the same moment cannot all pass the
//! brake while the count is still low; beyond either limit a try is refused at once, unchecked,
//! with how long to wait. Only password sign-ins meet the brake: the API key (in its header or
//! signing in) cannot be guessed, so a flood of wrong passwords never locks out the key, the
//! control socket or a signed-in browser.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use sha2::{Digest as _, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// The cookie that carries a session's token.
pub const COOKIE: &str = "peerfold_session";
/// How long a session lasts without being used; every use extends it.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many sessions at once; a new one pushes out the one closest to expiring, so a
/// script signing in in a loop cannot grow the table.
const MAX_SESSIONS: usize = 64;
/// Password tries that may fail within [`FAILURE_WINDOW`]; further tries are refused unchecked
/// until the oldest failure is that old.
const MAX_FAILURES: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Password checks that may run at once. Each takes about 19 MiB and a blocking thread for tens
/// of milliseconds (Argon2id's defaults): fifty at once took fifty threads and up to 680 MB;
/// two keep a second browser from waiting on the first.
const MAX_CHECKS: usize = 2;
/// What a try refused because [`MAX_CHECKS`] are running is told to wait: about one check.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The open sessions, keyed by the SHA-256 of their token: a lookup's timing says nothing about
/// the tokens themselves, and the table holds nothing a memory dump could replay.
pub(crate) struct Sessions {
    open: Mutex<HashMap<[u8; 32], Instant>>,
    /// When each counted password try began, oldest first: those under way and those that
    /// failed, within [`FAILURE_WINDOW`]; never more than [`MAX_FAILURES`].
    failures: Mutex<VecDeque<Instant>>,
    /// One permit per running password check.
    checks: Arc<Semaphore>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
            failures: Mutex::default(),
            checks: Arc::new(Semaphore::new(MAX_CHECKS)),
        }
    }
}

/// A password try that passed the brake: it counts as failed until [`Sessions::succeeded`] is
/// told the time it began, and holds one of the [`MAX_CHECKS`] permits while its check runs.
pub(crate) struct Attempt {
    permit: OwnedSemaphorePermit,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Opens a session and returns its token (256 random bits, base32).
    pub fn open(&self, now: Instant) -> String {
        let bytes: [u8; 32] = rand::random();
        let token = data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, expiry| *expiry > now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open.iter().min_by_key(|(_, expiry)| **expiry).map(|(k, _)| *k)
        {
            open.remove(&oldest);
        }
        open.insert(digest(&token), now + LIFETIME);
        token
    }

    /// Whether `token` is an open session; using it extends it by [`LIFETIME`].
    pub fn check(&self, token: &str, now: Instant) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get_mut(&digest(token)) {
            Some(expiry) if *expiry > now => {
                *expiry = now + LIFETIME;
                true
            }
            Some(_) => {
                open.remove(&digest(token));
                false
            }
            None => false,
        }
    }

    /// Ends the session of `token`, if there is one.
    pub fn close(&self, token: &str) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&digest(token));
    }

    /// Lets a password try through the brake, counting it as failed already; refused, with how
    /// long to wait, while [`MAX_FAILURES`] recent tries failed or [`MAX_CHECKS`] checks run.
    pub fn attempt(&self, now: Instant) -> Result<Attempt, ApiError> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        while failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= FAILURE_WINDOW) {
            failures.pop_front();
        }
        if failures.len() >= MAX_FAILURES {
            let oldest = failures.front().copied().unwrap_or(now);
            let retry_after = FAILURE_WINDOW.saturating_sub(now.saturating_duration_since(oldest));
            return Err(ApiError::TooManyAttempts { retry_after });
        }
        // Taken under the lock, so a try refused as busy leaves no count behind.
        let permit = Arc::clone(&self.checks)
            .try_acquire_owned()
            .map_err(|_| ApiError::SignInBusy { retry_after: BUSY_RETRY })?;
        failures.push_back(now);
        Ok(Attempt { permit })
    }

    /// The try that began at `began` was right: it no longer counts as failed.
    pub fn succeeded(&self, began: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = failures.iter().rposition(|t| *t == began) {
            failures.remove(i);
        }
    }
}

impl Attempt {
    /// Checks `password` against the PHC string `hash` on a blocking thread (Argon2 takes tens
    /// of milliseconds of CPU on purpose: not on the runtime's threads). The check holds its
    /// permit to the end, even when the request that asked is gone.
    pub async fn verify(self, hash: String, password: String) -> bool {
        let permit = self.permit;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(&hash, &password)
        })
        .await
        .unwrap_or(false)
    }
}

/// The `Set-Cookie` value that gives a browser the session `token`. `secure` when the GUI is
/// served over HTTPS, so the cookie never travels in clear.
pub fn cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that makes a browser forget its session cookie.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The session token among a request's `Cookie` headers.
pub fn token_in<'a>(cookie_headers: impl Iterator<Item = &'a str>) -> Option<String> {
    cookie_headers
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// `password` as an Argon2id PHC string with a random salt, for `[gui] password_hash`.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(ApiError::Hash)
}

/// Whether `password` matches the PHC string `hash`; a hash that does not parse matches
/// nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_slide_expire_close_and_stay_bounded() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let a = sessions.open(t0);
        assert_eq!(a.len(), 52, "256 bits of base32");
        assert!(sessions.check(&a, t0 + LIFETIME / 2));
        assert!(sessions.check(&a, t0 + LIFETIME), "using it extended it");
        assert!(!sessions.check(&a, t0 + LIFETIME * 3), "unused for a lifetime, it expired");
        let b = sessions.open(t0);
        sessions.close(&b);
        assert!(!sessions.check(&b, t0));
        assert!(!sessions.check("made-up", t0));
        let first = sessions.open(t0);
        for _ in 0..MAX_SESSIONS {
            sessions.open(t0 + Duration::from_secs(1));
        }
        assert!(!sessions.check(&first, t0), "the oldest went first");
        assert!(sessions.open.lock().unwrap().len() <= MAX_SESSIONS);
    }

    #[test]
    fn password_tries_count_before_their_check_and_the_brake_releases_after_a_minute() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        // Tries under way count: MAX_CHECKS begun at once fill the checks, not the brake.
        let running: Vec<_> = (0..MAX_CHECKS).map(|_| sessions.attempt(t0).unwrap()).collect();
        assert!(
            matches!(sessions.attempt(t0), Err(ApiError::SignInBusy { retry_after }) if retry_after == BUSY_RETRY)
        );
        assert_eq!(sessions.failures.lock().unwrap().len(), MAX_CHECKS, "a busy refusal is not counted");
        // One of them was right: it stops counting; the other failed and goes on counting.
        let mut running = running;
        let right = running.pop().unwrap();
        sessions.succeeded(t0);
        drop((right, running));
        assert_eq!(sessions.failures.lock().unwrap().len(), MAX_CHECKS - 1);
        for i in 0..MAX_FAILURES - (MAX_CHECKS - 1) {
            // Dropped unchecked: a try that never came back counts as failed.
            drop(sessions.attempt(t0 + Duration::from_secs(i as u64)).unwrap());
        }
        // The brake is on: even the right password waits, for as long as the oldest failure
        // takes to be a minute old.
        let t10 = t0 + Duration::from_secs(10);
        match sessions.attempt(t10) {
            Err(ApiError::TooManyAttempts { retry_after }) => {
                assert_eq!(retry_after, FAILURE_WINDOW - Duration::from_secs(10));
            }
            other => panic!("not braked: {:?}", other.map(|_| ())),
        }
        assert!(sessions.failures.lock().unwrap().len() <= MAX_FAILURES, "the count stays bounded");
        // Once that time is up, a try is checked again.
        let again = t0 + FAILURE_WINDOW;
        assert!(sessions.attempt(again).is_ok());
    }

    #[tokio::test]
    async fn a_check_holds_its_permit_until_it_ends() {
        let sessions = Sessions::default();
        let hash = hash_password("pw").unwrap();
        let t0 = Instant::now();
        assert!(sessions.attempt(t0).unwrap().verify(hash.clone(), "pw".into()).await);
        assert_eq!(sessions.checks.available_permits(), MAX_CHECKS, "the permit is back");
        assert!(!sessions.attempt(t0).unwrap().verify(hash, "nope".into()).await);
        assert_eq!(sessions.checks.available_permits(), MAX_CHECKS);
    }

    #[test]
    fn passwords_hash_to_phc_strings_that_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn the_session_token_is_found_among_other_cookies() {
        let headers = ["a=1; peerfold_session=tok; b=2"];
        assert_eq!(token_in(headers.into_iter()).as_deref(), Some("tok"));
        assert_eq!(token_in(["peerfold_session="].into_iter()), None);
        assert_eq!(token_in(std::iter::empty()), None);
        assert!(cookie("t", false).contains("HttpOnly; SameSite=Strict; Path=/"));
        assert!(cookie("t", true).ends_with("; Secure"));
    }
}
