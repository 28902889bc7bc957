//! What goes over the wire, in OpenZeppelin Relayer v1's encodings: the
//! envelope, snake_case keys, fees as decimal strings, `value` as 0x hex,
//! every key present (null when unknown).

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

use super::ApiError;
use crate::pipeline::MetaTransaction;
use crate::plugins::{Speed, TxRequest};
use crate::store::{Attempt, DecisionRecord, Event, EventKind, Purpose, Transaction, TxStatus};

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: Option<T>,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Envelope { success: true, data: Some(data), error: None, pagination: None }
    }
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, ToSchema)]
pub struct Pagination {
    pub current_page: u32,
    pub per_page: u32,
    pub total_items: u64,
}

/// A whole amount of wei as clients send it: a JSON number (exponent form
/// included, as JavaScript writes `1e+21`), a decimal string or a `0x` hex
/// string. Anything that is not a whole number that fits 256 bits is an
/// error, never a rounded value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount(pub U256);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        let text = raw.get();
        let parsed = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(string) => parse_amount_string(string),
            None => parse_json_number(text),
        };
        parsed.map(Amount).map_err(D::Error::custom)
    }
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        let number = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .description(Some("wei, a JSON number (exponent form allowed if the value is whole)"));
        let string = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^\\s*(0[xX][0-9a-fA-F]{1,64}|[0-9]+(\\.[0-9]+)?([eE]\\+?[0-9]+)?)\\s*$"))
            .description(Some("wei, a decimal or 0x hex string"));
        OneOfBuilder::new().item(number).item(string).description(Some("A whole amount of wei below 2^256")).into()
    }
}

impl ToSchema for Amount {}

fn parse_amount_string(s: &str) -> Result<U256, String> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return U256::from_str_radix(hex, 16).map_err(|_| format!("`{s}` is not a 256-bit hex amount"));
    }
    parse_json_number(s)
}

/// An exact parse of a JSON number that must be a non-negative integer.
fn parse_json_number(text: &str) -> Result<U256, String> {
    let bad = || format!("`{text}` is not a whole, non-negative amount of wei");
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().map_err(|_| bad())?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut digits = format!("{whole}{fraction}");
    let mut exponent = exponent - fraction.len() as i64;
    while exponent < 0 {
        if !digits.ends_with('0') {
            return Err(bad());
        }
        digits.pop();
        exponent += 1;
    }
    if exponent > 78 {
        // Not even 1 × 10^exponent fits: refuse before building the digits.
        return Err(format!("`{text}` overflows 256 bits"));
    }
    let digits = if digits.is_empty() { "0".to_string() } else { digits };
    let base = U256::from_str_radix(&digits, 10).map_err(|_| format!("`{text}` overflows 256 bits"))?;
    U256::from(10)
        .checked_pow(U256::from(exponent))
        .and_then(|scale| base.checked_mul(scale))
        .ok_or_else(|| format!("`{text}` overflows 256 bits"))
}

/// OpenZeppelin Relayer's speed names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum OzSpeed {
    SafeLow,
    Average,
    Fast,
    Fastest,
}

impl From<OzSpeed> for Speed {
    fn from(speed: OzSpeed) -> Self {
        match speed {
            OzSpeed::SafeLow => Speed::SafeLow,
            OzSpeed::Average => Speed::Average,
            OzSpeed::Fast => Speed::Fast,
            OzSpeed::Fastest => Speed::Fastest,
        }
    }
}

impl From<Speed> for OzSpeed {
    fn from(speed: Speed) -> Self {
        match speed {
            Speed::SafeLow => OzSpeed::SafeLow,
            Speed::Average => OzSpeed::Average,
            Speed::Fast => OzSpeed::Fast,
            Speed::Fastest => OzSpeed::Fastest,
        }
    }
}

/// `EvmTransactionRequest`, plus the pool endpoint's `hints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionBody {
    pub to: Option<String>,
    pub value: Amount,
    pub data: Option<String>,
    pub gas_limit: Option<u64>,
    pub gas_price: Option<Amount>,
    pub max_fee_per_gas: Option<Amount>,
    pub max_priority_fee_per_gas: Option<Amount>,
    pub speed: Option<OzSpeed>,
    pub valid_until: Option<String>,
    /// Labels the selector plugin sees (pool endpoint only).
    #[serde(default)]
    pub hints: BTreeMap<String, String>,
}

/// The largest gas limit the store keeps (a signed 64-bit column); no
/// chain's block holds more.
const MAX_GAS_LIMIT: u64 = i64::MAX as u64;

/// A validated body: what the pipeline takes.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedBody {
    pub to: Option<Address>,
    pub value: U256,
    pub data: Vec<u8>,
    pub gas_limit: Option<u64>,
    pub speed: Speed,
    pub valid_until: Option<i64>,
    pub hints: Vec<(String, String)>,
}

impl TransactionBody {
    pub fn parse(self) -> Result<ParsedBody, ApiError> {
        if self.gas_price.is_some() || self.max_fee_per_gas.is_some() || self.max_priority_fee_per_gas.is_some() {
            return Err(ApiError::unprocessable(
                "fixed fees (gas_price, max_fee_per_gas, max_priority_fee_per_gas) are not accepted: \
                 the fee plugin prices every transaction; send `speed` instead",
            ));
        }
        let to = match self.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(to) => Some(address("to", to)?),
        };
        let data = hex_bytes("data", self.data.as_deref())?;
        if to.is_none() && data.is_empty() {
            return Err(ApiError::unprocessable("`to` is required unless `data` deploys a contract"));
        }
        if self.gas_limit.is_some_and(|g| g == 0 || g > MAX_GAS_LIMIT) {
            return Err(ApiError::unprocessable(format!("`gas_limit` must be 1 to {MAX_GAS_LIMIT}")));
        }
        let valid_until = match self.valid_until.as_deref() {
            None => None,
            Some(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|_| ApiError::unprocessable(format!("`valid_until`: `{s}` is not an RFC 3339 time")))?
                    .timestamp_millis(),
            ),
        };
        check_hints(&self.hints)?;
        Ok(ParsedBody {
            to,
            value: self.value.0,
            data,
            gas_limit: self.gas_limit,
            speed: self.speed.map(Speed::from).unwrap_or_default(),
            valid_until,
            hints: self.hints.into_iter().collect(),
        })
    }
}

fn address(field: &str, text: &str) -> Result<Address, ApiError> {
    let text = text.trim();
    text.parse().map_err(|_| ApiError::unprocessable(format!("`{field}`: `{text}` is not an address")))
}

/// `0x`-prefixed (or bare) hex; absent or `0x` is empty.
fn hex_bytes(field: &str, text: Option<&str>) -> Result<Vec<u8>, ApiError> {
    match text.map(str::trim).filter(|d| !d.is_empty() && *d != "0x") {
        None => Ok(Vec::new()),
        Some(d) => hex::decode(d.strip_prefix("0x").unwrap_or(d))
            .map_err(|_| ApiError::unprocessable(format!("`{field}`: not hex ({} characters)", d.len()))),
    }
}

fn check_hints(hints: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if hints.len() > 32 || hints.iter().any(|(k, v)| k.len() > 64 || v.len() > 256) {
        return Err(ApiError::unprocessable("`hints`: at most 32, keys up to 64 and values up to 256 bytes"));
    }
    Ok(())
}

/// A gasless meta-transaction: an ERC-2771 `ForwardRequest` the user signed
/// (EIP-712) for an `ERC2771Forwarder`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetaTransactionBody {
    pub forwarder: String,
    pub request: ForwardRequestBody,
    pub speed: Option<OzSpeed>,
    #[serde(default)]
    pub hints: BTreeMap<String, String>,
}

/// The forwarder's `ForwardRequest`, with the user's signature over it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequestBody {
    pub from: String,
    pub to: String,
    pub value: Amount,
    pub gas: u64,
    /// The forwarder's nonce for `from`.
    pub nonce: Amount,
    /// Unix seconds.
    pub deadline: u64,
    pub data: Option<String>,
    pub signature: String,
}

impl MetaTransactionBody {
    pub fn parse(self, api_key_id: &str) -> Result<MetaTransaction, ApiError> {
        let request = self.request;
        if request.gas == 0 {
            return Err(ApiError::unprocessable("`request.gas` must be above 0"));
        }
        check_hints(&self.hints)?;
        let signature = hex_bytes("request.signature", Some(&request.signature))?;
        if signature.len() != 65 {
            return Err(ApiError::unprocessable(format!(
                "`request.signature`: {} bytes, not the 65 of r, s and v",
                signature.len()
            )));
        }
        Ok(MetaTransaction {
            forwarder: address("forwarder", &self.forwarder)?,
            from: address("request.from", &request.from)?,
            to: address("request.to", &request.to)?,
            value: request.value.0,
            gas: request.gas,
            nonce: request.nonce.0,
            deadline: request.deadline,
            data: hex_bytes("request.data", request.data.as_deref())?,
            signature,
            base: TxRequest {
                id: crate::store::new_transaction_id(),
                speed: self.speed.map(Speed::from).unwrap_or_default(),
                api_key_id: api_key_id.to_string(),
                hints: self.hints.into_iter().collect(),
                ..TxRequest::default()
            },
        })
    }
}

/// RFC 3339 in UTC with milliseconds, as OpenZeppelin Relayer writes times.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `EvmTransactionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OzTransaction {
    pub id: String,
    pub hash: Option<String>,
    pub status: TxStatus,
    pub status_reason: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub confirmed_at: Option<String>,
    pub gas_price: Option<String>,
    pub gas_limit: Option<u64>,
    pub nonce: Option<u64>,
    pub value: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub relayer_id: Option<String>,
    pub data: Option<String>,
    pub max_fee_per_gas: Option<String>,
    pub max_priority_fee_per_gas: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub signature: Option<()>,
    pub speed: OzSpeed,
}

impl OzTransaction {
    pub fn new(tx: &Transaction, from: Option<Address>) -> Self {
        let request = &tx.request;
        let gas_limit = tx.attempts.last().map(|a| a.gas_limit).or(request.gas_limit);
        OzTransaction {
            id: tx.id().to_string(),
            hash: tx.hash.clone(),
            status: tx.status,
            status_reason: tx.status_reason.clone(),
            created_at: time(tx.created_at),
            sent_at: tx.sent_at.map(time),
            confirmed_at: tx.confirmed_at.map(time),
            gas_price: None,
            gas_limit,
            nonce: tx.nonce,
            value: format!("{:#x}", request.value),
            from: from.map(|a| a.to_string()),
            to: request.to.map(|a| a.to_string()),
            relayer_id: tx.relayer_id.clone(),
            data: Some(format!("0x{}", hex::encode(&request.data))),
            max_fee_per_gas: tx.max_fee.map(|f| f.to_string()),
            max_priority_fee_per_gas: tx.priority_fee.map(|f| f.to_string()),
            signature: None,
            speed: request.speed.into(),
        }
    }
}

/// The pool endpoint's view: the OpenZeppelin fields plus the decision
/// trail and every send attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolTransaction {
    #[serde(flatten)]
    pub transaction: OzTransaction,
    /// The id of the API key that submitted it (`master` for the master key).
    pub api_key_id: String,
    pub hints: BTreeMap<String, String>,
    pub valid_until: Option<String>,
    /// The block it was mined in, while mined or once final.
    pub block_number: Option<u64>,
    pub block_hash: Option<String>,
    pub decisions: Vec<DecisionView>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    pub kind: String,
    pub plugin: Option<String>,
    pub version_hash: Option<String>,
    pub outcome: String,
    pub fallback_reason: Option<String>,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: u32,
    /// `send`, or a no-op for `cancel` or `expire`.
    pub purpose: Purpose,
    pub hash: String,
    pub nonce: u64,
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: String,
    pub gas_limit: u64,
    pub sent_at: String,
}

impl PoolTransaction {
    pub fn new(tx: &Transaction, from: Option<Address>) -> Self {
        PoolTransaction {
            transaction: OzTransaction::new(tx, from),
            api_key_id: tx.request.api_key_id.clone(),
            hints: tx.request.hints.iter().cloned().collect(),
            valid_until: tx.valid_until.map(time),
            block_number: tx.mined_in.as_ref().map(|b| b.number),
            block_hash: tx.mined_in.as_ref().map(|b| b.hash.clone()),
            decisions: tx.decisions.iter().map(DecisionView::from).collect(),
            attempts: tx.attempts.iter().map(AttemptView::from).collect(),
        }
    }
}

impl From<&DecisionRecord> for DecisionView {
    fn from(d: &DecisionRecord) -> Self {
        DecisionView {
            kind: d.kind.clone(),
            plugin: d.plugin.clone(),
            version_hash: d.version_hash.clone(),
            outcome: d.outcome.clone(),
            fallback_reason: d.fallback_reason.clone(),
            at: time(d.at),
        }
    }
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            purpose: a.purpose,
            hash: a.hash.clone(),
            nonce: a.nonce,
            max_fee_per_gas: a.max_fee.to_string(),
            max_priority_fee_per_gas: a.priority_fee.to_string(),
            gas_limit: a.gas_limit,
            sent_at: time(a.sent_at),
        }
    }
}

/// One event, the `data:` of an SSE message (its `id:` is `id`, its
/// `event:` is `type`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    id: u64,
    #[serde(rename = "type")]
    kind: EventKind,
    at: String,
    transaction_id: Option<String>,
    relayer_id: Option<String>,
    /// For `transaction.status`: the status it changed to.
    status: Option<TxStatus>,
    /// The status reason, or what happened to the relayer or plugin.
    detail: Option<String>,
}

impl From<Event> for EventView {
    fn from(event: Event) -> Self {
        EventView {
            id: event.id,
            kind: event.kind,
            at: time(event.created_at),
            transaction_id: event.transaction_id,
            relayer_id: event.relayer_id,
            status: event.status,
            detail: event.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(json: &str) -> Result<U256, String> {
        serde_json::from_str::<Amount>(json).map(|a| a.0).map_err(|e| e.to_string())
    }

    #[test]
    fn amounts_are_exact_in_every_form_clients_send() {
        assert_eq!(amount("1").unwrap(), U256::from(1));
        assert_eq!(amount("1e+21").unwrap(), U256::from(10).pow(U256::from(21)));
        assert_eq!(amount("1.5e3").unwrap(), U256::from(1500));
        assert_eq!(
            amount("\"123456789012345678901234567890\"").unwrap(),
            "123456789012345678901234567890".parse::<U256>().unwrap()
        );
        assert_eq!(amount("\"0xff\"").unwrap(), U256::from(255));
        assert_eq!(amount("0").unwrap(), U256::ZERO);
        for bad in ["-1", "1.5", "\"ten\"", "true", "null", "1e-3", "\"0xzz\""] {
            assert!(amount(bad).is_err(), "{bad} must be refused");
        }
        assert!(amount("1e78").unwrap_err().contains("overflows"));
        assert!(amount("\"1157920892373161954235709850086879078532699846656405640394575840079131296399360\"").is_err());
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
