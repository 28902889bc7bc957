//! What an RPC failure means. Nodes answer the same condition in different
//! words; the relay acts on the class, never on the text, so one provider's
//! phrasing cannot pause everything (OpenZeppelin Relayer's users report
//! exactly that).

use std::fmt;

use alloy::transports::http::reqwest;
use alloy::transports::{RpcError, TransportError, TransportErrorKind};

/// The node could not be asked: worth retrying, on another endpoint first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    Timeout,
    ConnectionRefused,
    /// HTTP 429, or a JSON-RPC "limit exceeded" (-32005).
    RateLimited,
    /// A 5xx, or an answer that is not JSON-RPC.
    BadAnswer,
}

/// The node answered and said no.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The account has already used this nonce.
    NonceTooLow,
    /// A nonce below this one is missing.
    NonceTooHigh,
    /// The node already has this very transaction.
    AlreadyKnown,
    /// Another transaction holds this nonce and pays more.
    ReplacementUnderpriced,
    InsufficientFunds,
    /// The call reverts (estimation or `eth_call`).
    Reverted,
    Other,
}

impl Outage {
    pub const ALL: [Outage; 4] = [Outage::Timeout, Outage::ConnectionRefused, Outage::RateLimited, Outage::BadAnswer];
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::NonceTooLow,
        Refusal::NonceTooHigh,
        Refusal::AlreadyKnown,
        Refusal::ReplacementUnderpriced,
        Refusal::InsufficientFunds,
        Refusal::Reverted,
        Refusal::Other,
    ];
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outage::Timeout => "timed out",
            Outage::ConnectionRefused => "connection refused",
            Outage::RateLimited => "rate limited",
            Outage::BadAnswer => "bad answer",
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NonceTooLow => "nonce too low",
            Refusal::NonceTooHigh => "nonce too high",
            Refusal::AlreadyKnown => "already known",
            Refusal::ReplacementUnderpriced => "replacement underpriced",
            Refusal::InsufficientFunds => "insufficient funds",
            Refusal::Reverted => "execution reverted",
            Refusal::Other => "refused",
        })
    }
}

/// JSON-RPC's "limit exceeded" (EIP-1474), used by providers for rate limits.
const LIMIT_EXCEEDED: i64 = -32005;

/// Classifies a JSON-RPC error by its code and message.
pub fn classify_refusal(code: i64, message: &str) -> Result<Refusal, Outage> {
    let m = message.to_ascii_lowercase();
    let has = |needle: &str| m.contains(needle);
    if code == LIMIT_EXCEEDED || has("rate limit") || has("too many requests") {
        return Err(Outage::RateLimited);
    }
    Ok(if has("nonce too low") || has("nonce has already been used") || has("oldnonce") {
        Refusal::NonceTooLow
    } else if has("nonce too high") || has("nonce gap") {
        Refusal::NonceTooHigh
    } else if has("already known") || has("already imported") || has("known transaction") {
        Refusal::AlreadyKnown
    } else if has("replacement") && has("underpriced") {
        Refusal::ReplacementUnderpriced
    } else if has("insufficient funds") {
        Refusal::InsufficientFunds
    } else if has("revert") {
        Refusal::Reverted
    } else {
        Refusal::Other
    })
}

/// Classifies a transport-level failure.
pub fn classify_transport(error: &TransportError) -> Outage {
    match error {
        RpcError::Transport(TransportErrorKind::HttpError(http)) if http.status == 429 => Outage::RateLimited,
        RpcError::Transport(TransportErrorKind::HttpErrorWithRetryAfter { error, .. }) if error.status == 429 => {
            Outage::RateLimited
        }
        RpcError::Transport(TransportErrorKind::Custom(inner)) => match inner.downcast_ref::<reqwest::Error>() {
            Some(e) if e.is_timeout() => Outage::Timeout,
            Some(e) if e.is_connect() => Outage::ConnectionRefused,
            _ => Outage::BadAnswer,
        },
        _ => Outage::BadAnswer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_providers_wording_lands_in_its_class() {
        let cases = [
            (-32000, "nonce too low: next nonce 5, tx nonce 3", Ok(Refusal::NonceTooLow)),
            (-32003, "Nonce too low", Ok(Refusal::NonceTooLow)),
            (-32000, "OldNonce", Ok(Refusal::NonceTooLow)),
            (-32000, "nonce too high", Ok(Refusal::NonceTooHigh)),
            (-32000, "already known", Ok(Refusal::AlreadyKnown)),
            (-32010, "Transaction with the same hash was already imported.", Ok(Refusal::AlreadyKnown)),
            (-32000, "replacement transaction underpriced", Ok(Refusal::ReplacementUnderpriced)),
            (-32000, "insufficient funds for gas * price + value", Ok(Refusal::InsufficientFunds)),
            (3, "execution reverted: Ownable: caller is not the owner", Ok(Refusal::Reverted)),
            (-32000, "intrinsic gas too low", Ok(Refusal::Other)),
            (-32000, "transaction underpriced", Ok(Refusal::Other)),
            (-32005, "limit exceeded", Err(Outage::RateLimited)),
            (-32000, "Too Many Requests", Err(Outage::RateLimited)),
        ];
        for (code, message, expected) in cases {
            assert_eq!(classify_refusal(code, message), expected, "{code} {message}");
        }
    }

    #[test]
    fn transport_failures_are_outages() {
        let http = |status| {
            RpcError::Transport(TransportErrorKind::HttpError(alloy::transports::HttpError {
                status,
                body: String::new(),
            }))
        };
        assert_eq!(classify_transport(&http(429)), Outage::RateLimited);
        assert_eq!(classify_transport(&http(502)), Outage::BadAnswer);
        assert_eq!(classify_transport(&TransportErrorKind::custom_str("boom")), Outage::BadAnswer);
    }
}
