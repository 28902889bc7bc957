use std::fmt;
use std::str::FromStr;

use crate::U256;
use crate::bindings::types as wit;

/// A 20-byte EVM address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = String;

    /// Accepts 40 hex digits, with or without `0x`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|e| format!("`{s}` is not a 20-byte hex address: {e}"))?;
        Ok(Address(bytes))
    }
}

impl From<wit::Address> for Address {
    fn from(a: wit::Address) -> Self {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&a.hi.to_be_bytes());
        bytes[8..16].copy_from_slice(&a.mid.to_be_bytes());
        bytes[16..].copy_from_slice(&a.lo.to_be_bytes());
        Address(bytes)
    }
}

impl From<Address> for wit::Address {
    fn from(a: Address) -> Self {
        let b = a.0;
        wit::Address {
            hi: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            mid: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            lo: u32::from_be_bytes(b[16..].try_into().expect("4 bytes")),
        }
    }
}

pub(crate) fn u256_from_wit(v: wit::U256) -> U256 {
    U256::from_limbs([v.w0, v.w1, v.w2, v.w3])
}

pub(crate) fn u256_to_wit(v: U256) -> wit::U256 {
    let [w0, w1, w2, w3] = v.into_limbs();
    wit::U256 { w0, w1, w2, w3 }
}

/// Key/value pairs: relayer labels or the caller's hints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(pub Vec<(String, String)>);

impl Labels {
    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Labels(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// The fee tier the caller asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Speed {
    SafeLow,
    #[default]
    Average,
    Fast,
    Fastest,
}

impl From<wit::Speed> for Speed {
    fn from(s: wit::Speed) -> Self {
        match s {
            wit::Speed::SafeLow => Speed::SafeLow,
            wit::Speed::Average => Speed::Average,
            wit::Speed::Fast => Speed::Fast,
            wit::Speed::Fastest => Speed::Fastest,
        }
    }
}

impl From<Speed> for wit::Speed {
    fn from(s: Speed) -> Self {
        match s {
            Speed::SafeLow => wit::Speed::SafeLow,
            Speed::Average => wit::Speed::Average,
            Speed::Fast => wit::Speed::Fast,
            Speed::Fastest => wit::Speed::Fastest,
        }
    }
}

/// A relay request as the caller submitted it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub chain_id: u64,
    /// `None` deploys a contract.
    pub to: Option<Address>,
    pub value: U256,
    pub data: Vec<u8>,
    pub gas_limit: Option<u64>,
    pub speed: Speed,
    /// The id of the API key that submitted the request.
    pub api_key_id: String,
    pub hints: Labels,
}

impl Request {
    /// The 4-byte function selector at the start of the calldata, if there is
    /// one.
    pub fn function_selector(&self) -> Option<[u8; 4]> {
        self.data.get(..4).map(|s| s.try_into().expect("4 bytes"))
    }
}

impl From<wit::TxRequest> for Request {
    fn from(r: wit::TxRequest) -> Self {
        Request {
            id: r.id,
            chain_id: r.chain_id,
            to: r.to.map(Address::from),
            value: u256_from_wit(r.value),
            data: r.data,
            gas_limit: r.gas_limit,
            speed: r.speed.into(),
            api_key_id: r.api_key_id,
            hints: Labels(r.hints),
        }
    }
}

impl From<Request> for wit::TxRequest {
    fn from(r: Request) -> Self {
        wit::TxRequest {
            id: r.id,
            chain_id: r.chain_id,
            to: r.to.map(Into::into),
            value: u256_to_wit(r.value),
            data: r.data,
            gas_limit: r.gas_limit,
            speed: r.speed.into(),
            api_key_id: r.api_key_id,
            hints: r.hints.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_round_trips_through_the_wit_record() {
        let a: Address = "0x00112233445566778899AABBCCDDEEFF01234567".parse().unwrap();
        let back = Address::from(wit::Address::from(a));
        assert_eq!(back, a);
        assert_eq!(back.to_string(), "0x00112233445566778899aabbccddeeff01234567");
    }

    #[test]
    fn address_rejects_wrong_length() {
        assert!("0x1234".parse::<Address>().is_err());
    }

    #[test]
    fn u256_limbs_are_little_endian() {
        let v = U256::from(1u64) << 192;
        let w = u256_to_wit(v);
        assert_eq!((w.w0, w.w1, w.w2, w.w3), (0, 0, 0, 1));
        assert_eq!(u256_from_wit(w), v);
    }
}
