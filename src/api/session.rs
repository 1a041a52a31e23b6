//! Browser sessions: what a signed-in browser's cookie stands for, and the GUI password.
//!
//! It owns the in-memory session table (random 256-bit tokens, a week's sliding expiry, a
//! bounded count), the brake on failed sign-ins, and hashing and checking the password
//! (Argon2id PHC strings, as `[gui] password_hash` stores them). Sessions end with the daemon:
//! nothing is written to disk.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use sha2::{Digest as _, Sha256};

use super::ApiError;

/// The cookie that carries a session's token.
pub const COOKIE: &str = "peerfold_session";
/// How long a session lasts without being used; every use extends it.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many sessions at once; a new one pushes out the one closest to expiring, so a
/// script signing in in a loop cannot grow the table.
const MAX_SESSIONS: usize = 64;
/// Failed sign-ins allowed within [`FAILURE_WINDOW`] before further tries are refused unseen.
const MAX_FAILURES: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The open sessions, keyed by the SHA-256 of their token: a lookup's timing says nothing about
/// the tokens themselves, and the table holds nothing a memory dump could replay.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<VecDeque<Instant>>,
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

    /// Refuses a sign-in while too many recent ones failed, so a password cannot be guessed
    /// at the speed of the network.
    pub fn throttle(&self, now: Instant) -> Result<(), ApiError> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        while failures.front().is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW) {
            failures.pop_front();
        }
        if failures.len() >= MAX_FAILURES {
            return Err(ApiError::TooManyAttempts);
        }
        Ok(())
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.push_back(now);
        if failures.len() > MAX_FAILURES {
            failures.pop_front();
        }
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
    fn failed_sign_ins_are_throttled_for_a_while() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            sessions.throttle(t0).unwrap();
            sessions.failed(t0);
        }
        assert!(matches!(sessions.throttle(t0), Err(ApiError::TooManyAttempts)));
        sessions.throttle(t0 + FAILURE_WINDOW + Duration::from_secs(1)).unwrap();
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
