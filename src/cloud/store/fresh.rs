//! Fresh values the store and the handlers stamp on records: the current time (unix milliseconds and
//! RFC 3339) and random account or endpoint keys.
//!
//! Pure apart from the clock and the random source; it never reads or writes the store.
use rand::Rng;

/// Current time in unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Current time as RFC 3339 (UTC).
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random base64 key of 64 bytes, like a storage account key.
pub(crate) fn random_key() -> String {
    use base64::Engine;
    let bytes: [u8; 64] = std::array::from_fn(|_| rand::rng().random());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
