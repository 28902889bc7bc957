//! The store contract, written once against `dyn Store`: every backend's
//! test file runs each of these on a fresh database.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::sync::Arc;

use alloy_primitives::{Address, U256};
use switchyard::plugins::{Speed, TxRequest};
use switchyard::store::{
    Attempt, Census, Checkpoint, DecisionRecord, MinedIn, NewTransaction, Purpose, Store, StoreError, Transaction,
    TxStatus, now_ms,
};

pub fn new_tx(id: &str) -> NewTransaction {
    NewTransaction {
        request: TxRequest {
            id: id.to_string(),
            chain_id: 31337,
            to: Some(Address::repeat_byte(0x11)),
            value: U256::from(10u64).pow(U256::from(30u64)),
            data: vec![0xde, 0xad, 0xbe, 0xef],
            gas_limit: Some(21_000),
            speed: Speed::Fast,
            api_key_id: "key-1".into(),
            hints: vec![("region".into(), "eu".into())],
        },
        relayer_id: None,
        valid_until: None,
        decisions: vec![decision("policy", "allow")],
        created_at: now_ms(),
        idempotency: None,
    }
}

pub fn decision(kind: &str, outcome: &str) -> DecisionRecord {
    DecisionRecord {
        kind: kind.into(),
        plugin: Some(format!("{kind}_plugin")),
        version_hash: Some("ab".repeat(32)),
        outcome: outcome.into(),
        fallback_reason: None,
        at: now_ms(),
    }
}

pub async fn round_trips_every_field(store: Arc<dyn Store>) {
    let tx = new_tx("t1");
    store.insert(&tx).await.unwrap();
    let got = store.get("t1").await.unwrap().expect("inserted");
    assert_eq!(got, tx.clone().into_pending(), "what a submission answers is what the store holds");
    assert_eq!(got.status, TxStatus::Pending);
    assert_eq!(got.request, tx.request, "every request field round-trips");
    assert_eq!(got.decisions, tx.decisions);
    assert_eq!((got.nonce, got.relayer_id.clone(), got.hash.clone()), (None, None, None));
    assert!(store.get("missing").await.unwrap().is_none());

    let mut deploy = new_tx("t2");
    (deploy.request.to, deploy.request.gas_limit, deploy.request.data) = (None, None, vec![]);
    store.insert(&deploy).await.unwrap();
    assert_eq!(store.get("t2").await.unwrap().unwrap().request, deploy.request);
}

pub async fn refuses_a_duplicate_id_and_keeps_the_first(store: Arc<dyn Store>) {
    store.insert(&new_tx("dup")).await.unwrap();
    let mut second = new_tx("dup");
    second.request.api_key_id = "other".into();
    assert!(matches!(store.insert(&second).await, Err(StoreError::Duplicate(id)) if id == "dup"));
    assert_eq!(store.get("dup").await.unwrap().unwrap().request.api_key_id, "key-1");
}

pub async fn assigns_contiguous_nonces_once_each(store: Arc<dyn Store>) {
    for i in 0..5 {
        store.insert(&new_tx(&format!("n{i}"))).await.unwrap();
    }
    store.sync_lane("r1", 7).await.unwrap();
    let mut nonces = Vec::new();
    for i in 0..5 {
        let a = store.assign_nonce(&format!("n{i}"), "r1", &decision("selector", "chosen r1")).await.unwrap();
        assert!(a.fresh);
        assert_eq!(Some(a.transaction), store.working(&format!("n{i}")).await.unwrap(), "returns what it stored");
        nonces.push(a.nonce);
    }
    assert_eq!(nonces, vec![7, 8, 9, 10, 11]);

    // A redelivery keeps the nonce and relayer it was given.
    let again = store.assign_nonce("n2", "r2", &decision("selector", "chosen r2")).await.unwrap();
    assert_eq!((again.nonce, again.fresh), (9, false));
    assert_eq!(Some(again.transaction), store.working("n2").await.unwrap());
    let tx = store.get("n2").await.unwrap().unwrap();
    assert_eq!((tx.relayer_id.as_deref(), tx.nonce), (Some("r1"), Some(9)));
    assert_eq!(tx.decisions.len(), 2, "the redelivery's decision is not recorded twice");
    assert_eq!(store.by_nonce("r1", 9).await.unwrap().unwrap().id(), "n2");
    assert!(store.by_nonce("r2", 9).await.unwrap().is_none());
    assert!(matches!(store.assign_nonce("nope", "r1", &decision("selector", "x")).await, Err(StoreError::NotFound(_))));
}

pub async fn concurrent_assignments_never_share_a_nonce(store: Arc<dyn Store>) {
    let n = 64;
    for i in 0..n {
        store.insert(&new_tx(&format!("c{i}"))).await.unwrap();
    }
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.assign_nonce(&format!("c{i}"), "lane", &decision("selector", "chosen lane")).await.unwrap().nonce
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        assert!(seen.insert(task.await.unwrap()), "a nonce was assigned twice");
    }
    assert_eq!(seen, (0..n as u64).collect::<HashSet<_>>());
}

/// Writes racing each other (on SQLite they share database transactions):
/// each one applies, misses its guard or fails on its own.
pub async fn concurrent_writes_apply_or_miss_each_on_their_own(store: Arc<dyn Store>) {
    let n = 48;
    for i in 0..n {
        let id = format!("w{i}");
        store.insert(&new_tx(&id)).await.unwrap();
        if i % 3 == 0 {
            let nonce = store.assign_nonce(&id, "lane", &decision("selector", "chosen lane")).await.unwrap().nonce;
            let sent = attempt(1, nonce, Purpose::Send);
            store.record_attempt(&id, &sent, &decision("fee", "priced"), TxStatus::Sent).await.unwrap();
        }
    }
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                // Every fourth writes about a transaction that does not exist.
                let (gone, id) = (format!("gone{i}"), format!("w{i}"));
                match i % 4 {
                    0 => (None, Some(store.add_decision(&gone, &decision("send", "noted")).await)),
                    _ => (Some(store.submitted(&id, &decision("send", "accepted")).await.unwrap()), None),
                }
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (submitted, missing) = task.await.unwrap();
        let tx = store.get(&format!("w{i}")).await.unwrap().unwrap();
        if let Some(missing) = missing {
            assert!(matches!(missing, Err(StoreError::NotFound(_))), "w{i}: {missing:?}");
            let expected = if i % 3 == 0 { TxStatus::Sent } else { TxStatus::Pending };
            assert_eq!(tx.status, expected, "w{i} is untouched");
            continue;
        }
        let sent = i % 3 == 0;
        assert_eq!(submitted, Some(sent), "w{i}: only a sent transaction is submitted");
        assert_eq!(tx.status, if sent { TxStatus::Submitted } else { TxStatus::Pending }, "w{i}");
        let accepted = tx.decisions.iter().filter(|d| d.outcome == "accepted").count();
        assert_eq!(accepted, usize::from(sent), "w{i}: a missed write leaves no trail");
    }
    assert!(store.get("gone0").await.unwrap().is_none());
}

/// Two host replicas on one database (two stores, each with its own pool),
/// assigning from the same relayers' lanes at once while each replica keeps
/// re-syncing the lanes from a chain that has mined nothing yet.
pub async fn replicas_never_share_a_nonce(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let (per_lane, lanes) = (60, ["lane-a", "lane-b"]);
    for i in 0..per_lane * lanes.len() {
        a.insert(&new_tx(&format!("r{i}"))).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..per_lane * lanes.len() {
        let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
        let lane = lanes[i % lanes.len()];
        tasks.push(tokio::spawn(async move {
            if i % 10 == 0 {
                replica.sync_lane(lane, 0).await.unwrap();
            }
            let assigned = replica.assign_nonce(&format!("r{i}"), lane, &decision("selector", lane)).await.unwrap();
            (lane, assigned.nonce)
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        let (lane, nonce) = task.await.unwrap();
        assert!(seen.insert((lane, nonce)), "{lane} gave nonce {nonce} twice");
    }
    for lane in lanes {
        let nonces: HashSet<u64> = seen.iter().filter(|(l, _)| *l == lane).map(|(_, n)| *n).collect();
        assert_eq!(nonces, (0..per_lane as u64).collect::<HashSet<_>>(), "{lane}'s nonces are contiguous");
        assert_eq!(b.sync_lane(lane, 0).await.unwrap(), per_lane as u64, "a resync keeps what was assigned");
    }
}

pub async fn sync_lane_never_reissues_an_assigned_nonce(store: Arc<dyn Store>) {
    for i in 0..3 {
        store.insert(&new_tx(&format!("s{i}"))).await.unwrap();
        store.assign_nonce(&format!("s{i}"), "r", &decision("selector", "r")).await.unwrap();
    }
    // The chain has seen only nonce 0; 1 and 2 are assigned and unfinished.
    assert_eq!(store.sync_lane("r", 1).await.unwrap(), 3);
    // Once they are final, the chain's pending nonce rules.
    for i in 0..3 {
        store.set_status(&format!("s{i}"), TxStatus::Confirmed, None).await.unwrap();
    }
    assert_eq!(store.sync_lane("r", 3).await.unwrap(), 3);
    assert_eq!(store.sync_lane("fresh", 42).await.unwrap(), 42);
}

pub async fn records_attempts_and_the_decision_trail(store: Arc<dyn Store>) {
    store.insert(&new_tx("a")).await.unwrap();
    let nonce = store.assign_nonce("a", "r", &decision("selector", "chosen r")).await.unwrap().nonce;
    let first = Attempt {
        attempt: 1,
        purpose: Purpose::Send,
        hash: format!("0x{}", "1".repeat(64)),
        nonce,
        max_fee: U256::from(3_000_000_000u64),
        priority_fee: U256::from(1_000_000_000u64),
        gas_limit: 21_000,
        sent_at: now_ms(),
        to: Some(Address::repeat_byte(0x11)),
        value: U256::from(7),
        data: vec![0xde, 0xad],
    };
    store.record_attempt("a", &first, &decision("fee", "max_fee=3 gwei"), TxStatus::Submitted).await.unwrap();
    let second = Attempt { attempt: 2, hash: format!("0x{}", "2".repeat(64)), ..first.clone() };
    store.record_attempt("a", &second, &decision("fee", "bumped"), TxStatus::Submitted).await.unwrap();

    // A duplicate delivery racing for the same attempt is refused, and the
    // first one recorded stands.
    let rival = Attempt { hash: format!("0x{}", "9".repeat(64)), ..second.clone() };
    let refused = store.record_attempt("a", &rival, &decision("fee", "rival"), TxStatus::Submitted).await;
    assert!(matches!(refused, Err(StoreError::AttemptTaken { attempt: 2, .. })), "{refused:?}");

    let tx = store.get("a").await.unwrap().unwrap();
    assert_eq!(tx.status, TxStatus::Submitted);
    assert_eq!(tx.attempts, vec![first.clone(), second.clone()]);
    assert_eq!(tx.hash, Some(second.hash.clone()));
    assert_eq!(tx.max_fee, Some(first.max_fee));
    assert_eq!(tx.sent_at, Some(first.sent_at), "sent_at is the first send");
    let kinds: Vec<&str> = tx.decisions.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["policy", "selector", "fee", "fee"]);

    // Each transaction of a batch gets its own attempts.
    store.insert(&new_tx("b")).await.unwrap();
    let b_nonce = store.assign_nonce("b", "r", &decision("selector", "chosen r")).await.unwrap().nonce;
    let b_first = Attempt { hash: format!("0x{}", "3".repeat(64)), nonce: b_nonce, ..first.clone() };
    store.record_attempt("b", &b_first, &decision("fee", "quote"), TxStatus::Submitted).await.unwrap();
    let mut watched = store.in_flight(10).await.unwrap();
    watched.sort_by(|x, y| x.id().cmp(y.id()));
    assert_eq!(
        watched.iter().map(|t| t.attempts.clone()).collect::<Vec<_>>(),
        [vec![first.clone(), second.clone()], vec![b_first]]
    );
    assert!(watched.iter().all(|t| t.decisions.is_empty()), "the watcher reads no trail");
    let full = store.get("a").await.unwrap().unwrap();
    let working = store.working("a").await.unwrap().unwrap();
    assert!(!full.decisions.is_empty() && working.decisions.is_empty(), "a working copy has no trail");
    assert_eq!(Transaction { decisions: vec![], ..full }, working, "and the rest as get reads it");
    assert!(store.working("missing").await.unwrap().is_none());
    store.set_status("b", TxStatus::Confirmed, None).await.unwrap();
    store.set_status("a", TxStatus::Confirmed, None).await.unwrap();
    let tx = store.get("a").await.unwrap().unwrap();
    assert!(tx.confirmed_at.is_some());
    assert!(store.in_flight(10).await.unwrap().is_empty());
    store.set_status("a", TxStatus::Failed, Some("reverted")).await.unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().status_reason.as_deref(), Some("reverted"));
    store
        .transition("b", TxStatus::Failed, Some("refused"), &decision("send", "refused: intrinsic gas"))
        .await
        .unwrap();
    let b = store.get("b").await.unwrap().unwrap();
    assert_eq!((b.status, b.status_reason.as_deref()), (TxStatus::Failed, Some("refused")));
    assert_eq!(b.decisions.last().unwrap().outcome, "refused: intrinsic gas", "the status and its why together");
    let missing = store.transition("zz", TxStatus::Failed, None, &decision("send", "x")).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");

    // Only a sent transaction becomes submitted: a late send does not undo
    // a later status.
    store.insert(&new_tx("late")).await.unwrap();
    let nonce = store.assign_nonce("late", "r", &decision("selector", "chosen r")).await.unwrap().nonce;
    let sent = Attempt { hash: format!("0x{}", "4".repeat(64)), nonce, ..first.clone() };
    store.record_attempt("late", &sent, &decision("fee", "quote"), TxStatus::Sent).await.unwrap();
    assert!(store.submitted("late", &decision("send", "accepted")).await.unwrap());
    store.set_status("late", TxStatus::Submitted, Some("canceling")).await.unwrap();
    assert!(!store.submitted("late", &decision("send", "accepted again")).await.unwrap());
    let late = store.get("late").await.unwrap().unwrap();
    assert_eq!((late.status, late.status_reason.as_deref()), (TxStatus::Submitted, Some("canceling")));
    assert_eq!(late.decisions.last().unwrap().outcome, "accepted");
    assert!(matches!(store.set_status("zz", TxStatus::Failed, None).await, Err(StoreError::NotFound(_))));
}

pub async fn lists_a_relayers_transactions_newest_first(store: Arc<dyn Store>) {
    let base = now_ms();
    for i in 0..5 {
        let tx = NewTransaction { relayer_id: Some("r".into()), created_at: base + i, ..new_tx(&format!("l{i}")) };
        store.insert(&tx).await.unwrap();
    }
    store.insert(&NewTransaction { relayer_id: Some("other".into()), ..new_tx("o") }).await.unwrap();
    let first = store.list("r", 1, 2).await.unwrap();
    assert_eq!(first.total, 5);
    let ids: Vec<&str> = first.items.iter().map(|t| t.id()).collect();
    assert_eq!(ids, ["l4", "l3"]);
    let last = store.list("r", 3, 2).await.unwrap();
    assert_eq!(last.items.iter().map(|t| t.id()).collect::<Vec<_>>(), ["l0"]);
    assert!(store.list("r", 4, 2).await.unwrap().items.is_empty());
    assert_eq!(store.list("nobody", 1, 10).await.unwrap().total, 0);
    assert_eq!(store.unfinished("r").await.unwrap().len(), 5);
}

pub async fn counts_pending_per_relayer(store: Arc<dyn Store>) {
    for i in 0..3 {
        store.insert(&new_tx(&format!("p{i}"))).await.unwrap();
        store.assign_nonce(&format!("p{i}"), "r", &decision("selector", "r")).await.unwrap();
        store.set_status(&format!("p{i}"), TxStatus::Submitted, None).await.unwrap();
    }
    store.set_status("p0", TxStatus::Confirmed, None).await.unwrap();
    // Given a nonce and not yet sent: in flight. Sent to it by the client
    // and not yet given a nonce: not.
    store.insert(&new_tx("given")).await.unwrap();
    store.assign_nonce("given", "r", &decision("selector", "r")).await.unwrap();
    store.insert(&NewTransaction { relayer_id: Some("r".into()), ..new_tx("chosen") }).await.unwrap();
    let counts = store.relayer_counts("r").await.unwrap();
    assert_eq!(counts.pending, 3);
    assert!(counts.last_confirmed_at.is_some());
    assert_eq!(store.relayer_counts("idle").await.unwrap().pending, 0);
}

pub async fn counts_transactions_by_status_with_the_oldest_unfinished(store: Arc<dyn Store>) {
    assert_eq!(store.census().await.unwrap(), Census::default());
    let base = now_ms();
    for (i, status) in
        [TxStatus::Confirmed, TxStatus::Submitted, TxStatus::Pending, TxStatus::Pending].iter().enumerate()
    {
        let id = format!("n{i}");
        store.insert(&NewTransaction { created_at: base + i as i64, ..new_tx(&id) }).await.unwrap();
        store.set_status(&id, *status, None).await.unwrap();
    }
    let mut census = store.census().await.unwrap();
    census.by_status.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(census.by_status, [(TxStatus::Confirmed, 1), (TxStatus::Pending, 2), (TxStatus::Submitted, 1)],);
    // n0 is older but final.
    assert_eq!(census.oldest_unfinished_at, Some(base + 1));
}

pub async fn cancels_and_replaces_only_before_a_nonce(store: Arc<dyn Store>) {
    store.insert(&new_tx("c1")).await.unwrap();
    assert!(store.cancel_pending("c1", "canceled by the client", &decision("api", "cancel")).await.unwrap());
    let canceled = store.get("c1").await.unwrap().unwrap();
    assert_eq!(
        (canceled.status, canceled.status_reason.as_deref()),
        (TxStatus::Canceled, Some("canceled by the client"))
    );
    assert_eq!(canceled.decisions.last().unwrap().outcome, "cancel");
    assert!(!store.cancel_pending("c1", "again", &decision("api", "cancel")).await.unwrap(), "already canceled");
    let err = store.assign_nonce("c1", "relayer-1", &decision("selector", "chosen")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotPending { status: TxStatus::Canceled, .. }), "{err}");

    store.insert(&new_tx("r1")).await.unwrap();
    let mut replacement = new_tx("r1").request;
    (replacement.value, replacement.data, replacement.gas_limit) = (U256::from(5), vec![1, 2], None);
    assert!(store.replace_pending(&replacement, Some(42), &decision("policy", "allow")).await.unwrap());
    let replaced = store.get("r1").await.unwrap().unwrap();
    assert_eq!((replaced.request, replaced.valid_until), (replacement.clone(), Some(42)));
    assert_eq!(replaced.decisions.len(), 2);

    store.assign_nonce("r1", "relayer-1", &decision("selector", "chosen")).await.unwrap();
    assert!(!store.replace_pending(&replacement, None, &decision("policy", "allow")).await.unwrap(), "has a nonce");
    assert!(!store.cancel_pending("r1", "late", &decision("api", "cancel")).await.unwrap(), "has a nonce");
    assert_eq!(store.get("r1").await.unwrap().unwrap().status, TxStatus::Pending);
}

pub async fn a_replacement_at_the_nonce_and_settling_on_the_attempt_mined(store: Arc<dyn Store>) {
    store.insert(&new_tx("r")).await.unwrap();
    let nonce = store.assign_nonce("r", "relayer-1", &decision("selector", "chosen")).await.unwrap().nonce;
    let original = store.get("r").await.unwrap().unwrap().request;
    let first = Attempt {
        attempt: 1,
        purpose: Purpose::Send,
        hash: format!("0x{}", "a".repeat(64)),
        nonce,
        max_fee: U256::from(100),
        priority_fee: U256::from(10),
        gas_limit: 21_000,
        sent_at: now_ms(),
        to: original.to,
        value: original.value,
        data: original.data.clone(),
    };
    store.record_attempt("r", &first, &decision("fee", "first"), TxStatus::Submitted).await.unwrap();

    let mut replacement = original.clone();
    (replacement.to, replacement.value, replacement.data) = (Some(Address::repeat_byte(0x22)), U256::from(9), vec![]);
    let second = Attempt {
        attempt: 2,
        hash: format!("0x{}", "b".repeat(64)),
        max_fee: U256::from(110),
        priority_fee: U256::from(11),
        to: replacement.to,
        value: replacement.value,
        data: vec![],
        ..first.clone()
    };
    let decisions = [decision("policy", "allow"), decision("fee", "bumped")];
    assert!(store.replace_sent(&replacement, &second, &decisions).await.unwrap());
    let replaced = store.get("r").await.unwrap().unwrap();
    assert_eq!((replaced.request.to, replaced.request.value), (replacement.to, replacement.value));
    assert_eq!((replaced.hash.as_deref(), replaced.max_fee), (Some(second.hash.as_str()), Some(U256::from(110))));
    assert_eq!(replaced.attempts, vec![first.clone(), second.clone()]);
    assert_eq!(replaced.decisions.len(), 5, "insert, selector, fee, then the replacement's two");

    // The first attempt is the one mined: the transaction shows it again.
    let block = MinedIn { number: 7, hash: format!("0x{}", "c".repeat(64)) };
    store
        .settle("r", TxStatus::Confirmed, None, &first, Some(&block), &decision("watcher", "confirmed"))
        .await
        .unwrap();
    let settled = store.get("r").await.unwrap().unwrap();
    assert_eq!(settled.status, TxStatus::Confirmed);
    assert_eq!(settled.decisions.last().unwrap().outcome, "confirmed", "settled with its decision");
    assert!(settled.confirmed_at.is_some());
    assert_eq!(
        (settled.request.to, settled.request.value, settled.request.data),
        (original.to, original.value, original.data)
    );
    assert_eq!((settled.hash.as_deref(), settled.max_fee), (Some(first.hash.as_str()), Some(U256::from(100))));
    assert_eq!(settled.mined_in.as_ref(), Some(&block));
    assert!(!store.replace_sent(&replacement, &second, &decisions).await.unwrap(), "confirmed: too late");
    assert!(matches!(
        store.settle("missing", TxStatus::Mined, None, &first, None, &decision("watcher", "mined")).await,
        Err(StoreError::NotFound(_))
    ));
    // An attempt not stored as given (a nonce released since takes its
    // attempts with it) settles nothing.
    let stale = Attempt { hash: format!("0x{}", "e".repeat(64)), ..first.clone() };
    let refused = store.settle("r", TxStatus::Failed, None, &stale, Some(&block), &decision("watcher", "stale")).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))), "{refused:?}");
    let kept = store.get("r").await.unwrap().unwrap();
    assert_eq!((kept.status, kept.decisions.len()), (TxStatus::Confirmed, settled.decisions.len()));
}

fn attempt(number: u32, nonce: u64, purpose: Purpose) -> Attempt {
    Attempt {
        attempt: number,
        purpose,
        hash: format!("0x{:064x}", u64::from(number) * 1000 + nonce),
        nonce,
        max_fee: U256::from(100 * u64::from(number)),
        priority_fee: U256::from(10 * u64::from(number)),
        gas_limit: 21_000,
        sent_at: now_ms(),
        to: Some(Address::repeat_byte(0x33)),
        value: U256::ZERO,
        data: vec![],
    }
}

pub async fn bumps_and_no_ops_keep_the_content_and_settle_by_purpose(store: Arc<dyn Store>) {
    store.insert(&new_tx("k")).await.unwrap();
    let nonce = store.assign_nonce("k", "relayer-1", &decision("selector", "chosen")).await.unwrap().nonce;
    let original = store.get("k").await.unwrap().unwrap().request;
    let first = Attempt {
        to: original.to,
        value: original.value,
        data: original.data.clone(),
        ..attempt(1, nonce, Purpose::Send)
    };
    store.record_attempt("k", &first, &decision("fee", "first"), TxStatus::Submitted).await.unwrap();

    let cancel = attempt(2, nonce, Purpose::Cancel);
    assert!(store.bump("k", &cancel, &[decision("cancel", "no-op")], Some("canceling")).await.unwrap());
    let tx = store.get("k").await.unwrap().unwrap();
    assert_eq!((tx.status, tx.status_reason.as_deref()), (TxStatus::Submitted, Some("canceling")));
    assert_eq!((tx.hash.as_deref(), tx.request.clone()), (Some(cancel.hash.as_str()), original.clone()));
    assert_eq!(tx.attempts, vec![first.clone(), cancel.clone()]);
    let rival = store.bump("k", &cancel, &[], None).await;
    assert!(matches!(rival, Err(StoreError::AttemptTaken { attempt: 2, .. })), "{rival:?}");
    let elsewhere = Attempt { nonce: nonce + 1, ..attempt(3, nonce + 1, Purpose::Send) };
    assert!(!store.bump("k", &elsewhere, &[], None).await.unwrap(), "not at its nonce");

    // The no-op is mined: canceled, the client's content kept, then back
    // to submitted after a reorg.
    let block = MinedIn { number: 9, hash: format!("0x{}", "d".repeat(64)) };
    store
        .settle("k", TxStatus::Canceled, Some("canceled"), &cancel, Some(&block), &decision("watcher", "mined"))
        .await
        .unwrap();
    let tx = store.get("k").await.unwrap().unwrap();
    assert_eq!((tx.status, tx.request.clone(), tx.mined_in.clone()), (TxStatus::Canceled, original, Some(block)));
    store.settle("k", TxStatus::Submitted, Some("reorg"), &cancel, None, &decision("watcher", "reorg")).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().mined_in, None);
    assert!(store.bump("k", &attempt(3, nonce, Purpose::Send), &[], None).await.unwrap(), "submitted again");
}

pub async fn a_released_nonce_is_queued_again_and_a_gap_is_filled_once(store: Arc<dyn Store>) {
    for id in ["g0", "g1", "g2"] {
        store.insert(&new_tx(id)).await.unwrap();
        store.assign_nonce(id, "relayer-1", &decision("selector", "chosen")).await.unwrap();
    }
    let g1 = attempt(1, 1, Purpose::Send);
    store.record_attempt("g1", &g1, &decision("fee", "first"), TxStatus::Submitted).await.unwrap();
    let lane = store.lane("relayer-1", 0, 10).await.unwrap();
    assert_eq!(lane.next, 3);
    let held: Vec<(u64, &str, TxStatus)> = lane.holders.iter().map(|h| (h.nonce, h.id.as_str(), h.status)).collect();
    assert_eq!(held, [(0, "g0", TxStatus::Pending), (1, "g1", TxStatus::Submitted), (2, "g2", TxStatus::Pending)]);
    assert_eq!(lane.holders[1].last_sent_at, Some(g1.sent_at));
    assert_eq!(store.lane("relayer-1", 2, 10).await.unwrap().holders.len(), 1);

    // g0 holds its nonce with no attempt: queued again, once per call.
    assert!(store.requeue("g0", &decision("queue", "queued again")).await.unwrap());
    assert!(!store.requeue("g1", &decision("queue", "queued again")).await.unwrap(), "g1 has an attempt");
    assert_eq!(store.get("g0").await.unwrap().unwrap().decisions.last().unwrap().outcome, "queued again");

    // g1's nonce was used by someone else: released, attempts dropped,
    // pending with no nonce, and queued again.
    assert!(store.release_nonce("g1", &decision("nonce", "released")).await.unwrap());
    let g1 = store.get("g1").await.unwrap().unwrap();
    assert_eq!((g1.status, g1.nonce, g1.hash.clone(), g1.attempts.len()), (TxStatus::Pending, None, None, 0));
    assert!(!store.release_nonce("g1", &decision("nonce", "again")).await.unwrap(), "holds no nonce");

    // Nonce 1 is now a gap: a filler takes it once.
    let filler = |id: &str| NewTransaction { relayer_id: Some("relayer-1".into()), ..new_tx(id) };
    let fill = attempt(1, 1, Purpose::Send);
    assert!(store.fill_gap(&filler("f1"), &fill, &[decision("fee", "noop")]).await.unwrap());
    let f1 = store.get("f1").await.unwrap().unwrap();
    assert_eq!((f1.status, f1.nonce, f1.relayer_id.as_deref()), (TxStatus::Sent, Some(1), Some("relayer-1")));
    assert_eq!(f1.attempts, vec![fill.clone()]);
    let again = Attempt { hash: format!("0x{}", "e".repeat(64)), ..fill.clone() };
    assert!(!store.fill_gap(&filler("f2"), &again, &[]).await.unwrap(), "nonce 1 is held now");
    assert!(store.get("f2").await.unwrap().is_none(), "a refused filler leaves nothing behind");
    // Not below the lane's next nonce: not a gap.
    assert!(!store.fill_gap(&filler("f3"), &attempt(1, 3, Purpose::Send), &[]).await.unwrap());

    // A finished transaction whose nonce was never used gives it up.
    store.set_status("g2", TxStatus::Failed, Some("refused")).await.unwrap();
    assert!(store.fill_gap(&filler("f4"), &attempt(1, 2, Purpose::Send), &[]).await.unwrap());
    let g2 = store.get("g2").await.unwrap().unwrap();
    assert_eq!((g2.status, g2.nonce), (TxStatus::Failed, None));
    assert!(g2.decisions.last().unwrap().outcome.contains("f4"), "{:?}", g2.decisions);
}

pub async fn keeps_the_watchers_checkpoint_per_chain(store: Arc<dyn Store>) {
    assert_eq!(store.checkpoint(31337).await.unwrap(), None);
    let at = |number: u64, c: char| Checkpoint {
        block: MinedIn { number, hash: format!("0x{}", c.to_string().repeat(64)) },
    };
    store.save_checkpoint(31337, &at(10, 'a')).await.unwrap();
    store.save_checkpoint(1, &at(99, 'b')).await.unwrap();
    store.save_checkpoint(31337, &at(12, 'c')).await.unwrap();
    assert_eq!(store.checkpoint(31337).await.unwrap(), Some(at(12, 'c')));
    // Back, after a reorg.
    store.save_checkpoint(31337, &at(8, 'd')).await.unwrap();
    assert_eq!(store.checkpoint(31337).await.unwrap(), Some(at(8, 'd')));
    assert_eq!(store.checkpoint(1).await.unwrap(), Some(at(99, 'b')));
}

pub async fn keeps_api_keys_with_their_digest_and_revokes_once(store: Arc<dyn Store>) {
    use switchyard::store::{ApiKey, Scope};
    let key = |id: &str, at: i64, relayers: Option<Vec<String>>| ApiKey {
        id: id.into(),
        name: format!("name of {id} — ünïcode"),
        scopes: vec![Scope::Submit, Scope::Read],
        relayers,
        rate_limit: None,
        created_at: at,
        revoked_at: None,
    };
    let limited = ApiKey {
        rate_limit: Some(switchyard::access::Rate { per_second: 2.5, burst: 7 }),
        ..key("k2", 2, Some(vec!["relayer-1".into(), "relayer-2".into()]))
    };
    store.insert_api_key(&limited, &"b".repeat(64)).await.unwrap();
    store.insert_api_key(&key("k1", 1, None), &"a".repeat(64)).await.unwrap();
    assert!(store.insert_api_key(&key("k1", 3, None), &"c".repeat(64)).await.is_err(), "ids are unique");
    assert_eq!(store.api_key("k2").await.unwrap(), Some((limited.clone(), "b".repeat(64))));
    assert_eq!(store.api_key("nope").await.unwrap(), None);
    let ids: Vec<_> = store.api_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["k1", "k2"], "oldest first");

    let revoked = store.revoke_api_key("k2", 50).await.unwrap().unwrap();
    assert_eq!(revoked, ApiKey { revoked_at: Some(50), ..limited });
    let again = store.revoke_api_key("k2", 60).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(50), "the first revocation stays");
    assert_eq!(store.revoke_api_key("nope", 60).await.unwrap(), None);
    assert_eq!(store.api_key("k1").await.unwrap().unwrap().0.revoked_at, None);
}

pub async fn keeps_an_idempotency_key_with_its_transaction_once(store: Arc<dyn Store>) {
    use switchyard::store::{Idempotency, IdempotentOrigin};
    let with_key = |id: &str, key: &str, fingerprint: &str| NewTransaction {
        idempotency: Some(Idempotency { key: key.into(), fingerprint: fingerprint.into() }),
        ..new_tx(id)
    };
    store.insert(&with_key("i1", "order-1", "f1")).await.unwrap();
    let origin = store.idempotent_origin("key-1", "order-1").await.unwrap();
    assert_eq!(origin, Some(IdempotentOrigin { fingerprint: "f1".into(), transaction_id: "i1".into() }));
    assert_eq!(store.idempotent_origin("key-2", "order-1").await.unwrap(), None, "per API key");

    // A second use of the key stores nothing: neither row nor queue entry.
    let taken = store.insert(&with_key("i2", "order-1", "f2")).await.unwrap_err();
    assert!(matches!(taken, StoreError::IdempotencyKeyTaken(ref k) if k == "order-1"), "{taken:?}");
    assert_eq!(store.get("i2").await.unwrap(), None);
    let other_key = NewTransaction {
        request: TxRequest { api_key_id: "key-2".into(), ..new_tx("i3").request },
        ..with_key("i3", "order-1", "f1")
    };
    store.insert(&other_key).await.unwrap();

    // Racing inserts with one key: exactly one lands.
    let racers = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.insert(&with_key(&format!("r{i}"), "race", "f")).await })
    });
    let landed = futures::future::join_all(racers).await.into_iter().filter(|r| r.as_ref().unwrap().is_ok()).count();
    assert_eq!(landed, 1);
}

pub async fn stores_a_group_in_one_transaction_all_or_none(store: Arc<dyn Store>) {
    use switchyard::store::{EventKind, Idempotency};
    let keyed = |id: &str, key: &str| NewTransaction {
        idempotency: Some(Idempotency { key: key.into(), fingerprint: "f".into() }),
        ..new_tx(id)
    };
    let start = store.last_event_id().await.unwrap();
    // More rows than one statement binds: the group spans several.
    let group: Vec<NewTransaction> = (0..150)
        .map(|i| match i % 3 {
            0 => keyed(&format!("g{i}"), &format!("k{i}")),
            1 => NewTransaction { relayer_id: Some("relayer-1".into()), ..new_tx(&format!("g{i}")) },
            _ => {
                let mut tx = new_tx(&format!("g{i}"));
                tx.decisions.push(decision("policy", "second"));
                tx
            }
        })
        .collect();
    store.insert_many(&group).await.unwrap();
    for tx in &group {
        assert_eq!(store.get(&tx.request.id).await.unwrap(), Some(tx.clone().into_pending()));
    }
    let origin = store.idempotent_origin("key-1", "k3").await.unwrap().map(|o| o.transaction_id);
    assert_eq!(origin.as_deref(), Some("g3"));
    let events = store.events_after(start, 1000).await.unwrap();
    let logged: Vec<_> =
        events.iter().map(|e| (e.kind, e.transaction_id.clone(), e.relayer_id.clone(), e.status)).collect();
    let pending = |tx: &NewTransaction| {
        (EventKind::TransactionStatus, Some(tx.request.id.clone()), tx.relayer_id.clone(), Some(TxStatus::Pending))
    };
    assert_eq!(logged, group.iter().map(pending).collect::<Vec<_>>(), "one pending event each, in order");

    // One reused key or id spoils its whole group: nothing of it is stored.
    let reused_key = store.insert_many(&[new_tx("s1"), keyed("s2", "k0")]).await.unwrap_err();
    assert!(matches!(reused_key, StoreError::IdempotencyKeyTaken(_)), "{reused_key:?}");
    let reused_id = store.insert_many(&[new_tx("s3"), new_tx("g1")]).await.unwrap_err();
    assert!(matches!(reused_id, StoreError::Duplicate(_)), "{reused_id:?}");
    for id in ["s1", "s2", "s3"] {
        assert_eq!(store.get(id).await.unwrap(), None, "{id} was stored");
    }
    assert_eq!(store.idempotent_origin("key-1", "k0").await.unwrap().unwrap().transaction_id, "g0");
    assert_eq!(store.last_event_id().await.unwrap(), events.last().unwrap().id, "a spoiled group logs nothing");
    store.insert_many(&[]).await.unwrap();
}

pub async fn logs_each_status_change_and_appended_event_in_order(store: Arc<dyn Store>) {
    use switchyard::store::EventKind;
    let start = store.last_event_id().await.unwrap();
    store.insert(&new_tx("e1")).await.unwrap();
    assert!(store.cancel_pending("e1", "changed my mind", &decision("cancel", "ok")).await.unwrap());
    store.append_event(EventKind::RelayerDisabled, Some("relayer-1"), "balance 0").await.unwrap();
    // A change refused (already canceled) logs nothing.
    assert!(!store.cancel_pending("e1", "again", &decision("cancel", "ok")).await.unwrap());

    let events = store.events_after(start, 100).await.unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.transaction_id.as_deref(), e.relayer_id.as_deref(), e.status, e.detail.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (EventKind::TransactionStatus, Some("e1"), None, Some(TxStatus::Pending), None),
            (EventKind::TransactionStatus, Some("e1"), None, Some(TxStatus::Canceled), Some("changed my mind")),
            (EventKind::RelayerDisabled, None, Some("relayer-1"), None, Some("balance 0")),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "{events:?}");
    assert_eq!(store.last_event_id().await.unwrap(), events[2].id);
    assert_eq!(store.events_after(events[0].id, 1).await.unwrap(), [events[1].clone()]);
}

pub async fn leases_webhooks_to_one_owner_and_keeps_their_progress(store: Arc<dyn Store>) {
    use switchyard::store::{EventKind, Progress, Webhook};
    let hook = Webhook {
        id: "w1".into(),
        url: "http://127.0.0.1:9/h".into(),
        secret: "s".repeat(20),
        kinds: vec![EventKind::TransactionStatus, EventKind::PluginRejected],
        delivered_through: 5,
        failures: 0,
        retry_at: 0,
        last_error: None,
        created_at: 1,
    };
    store.insert_webhook(&hook).await.unwrap();
    assert_eq!(store.webhooks().await.unwrap(), std::slice::from_ref(&hook));
    assert!(store.lease_webhook("w1", "a", 100, 200).await.unwrap());
    assert!(!store.lease_webhook("w1", "b", 150, 250).await.unwrap(), "a holds it");
    assert!(store.lease_webhook("w1", "a", 150, 250).await.unwrap(), "renewed by its owner");
    // Only the owner's progress counts.
    store.record_progress("w1", "b", &Progress::Through(9)).await.unwrap();
    assert_eq!(store.webhooks().await.unwrap()[0].delivered_through, 5);
    let failed = Progress::Failed { failures: 2, retry_at: 900, error: "HTTP 500".into() };
    store.record_progress("w1", "a", &failed).await.unwrap();
    let now = &store.webhooks().await.unwrap()[0];
    assert_eq!(
        (now.delivered_through, now.failures, now.retry_at, now.last_error.as_deref()),
        (5, 2, 900, Some("HTTP 500"))
    );
    let gave_up = Progress::GaveUp { event_id: 6, attempts: 3, error: "HTTP 500".into() };
    store.record_progress("w1", "a", &gave_up).await.unwrap();
    let now = &store.webhooks().await.unwrap()[0];
    assert_eq!((now.delivered_through, now.failures, now.last_error.as_deref()), (6, 0, None));
    let dead = store.dead_letters("w1").await.unwrap();
    assert_eq!((dead.len(), dead[0].event_id, dead[0].attempts), (1, 6, 3));
    // Expired, another owner takes it.
    assert!(store.lease_webhook("w1", "b", 300, 400).await.unwrap());
    assert!(store.delete_webhook("w1").await.unwrap());
    assert!(!store.delete_webhook("w1").await.unwrap());
    assert_eq!(store.dead_letters("w1").await.unwrap(), []);
}

pub async fn prunes_old_keys_and_the_events_every_subscription_has_handled(store: Arc<dyn Store>) {
    use switchyard::store::{Idempotency, PruneBefore, Pruned, Webhook, now_ms};
    let now = now_ms();
    let with_key = |id: &str, key: &str, created_at: i64| NewTransaction {
        idempotency: Some(Idempotency { key: key.into(), fingerprint: "f".into() }),
        created_at,
        ..new_tx(id)
    };
    store.insert(&with_key("old", "order-old", now - 7_200_000)).await.unwrap();
    store.insert(&with_key("new", "order-new", now)).await.unwrap();
    // More events than one DELETE takes, so pruning goes chunk by chunk.
    let bulk: Vec<_> = (0..5_001).map(|i| new_tx(&format!("bulk-{i}"))).collect();
    store.insert_many(&bulk).await.unwrap();
    let events = store.events_after(0, 10_000).await.unwrap();
    assert_eq!(events.len(), 5_003);

    let handled = events[4_999].id;
    let hook = Webhook {
        id: "w1".into(),
        url: "http://127.0.0.1:9/h".into(),
        secret: "s".repeat(20),
        kinds: Vec::new(),
        delivered_through: handled,
        failures: 0,
        retry_at: 0,
        last_error: None,
        created_at: now,
    };
    store.insert_webhook(&hook).await.unwrap();
    assert_eq!(store.prune(PruneBefore::default()).await.unwrap(), Pruned::default(), "None keeps everything");

    let before = PruneBefore { idempotency_keys: Some(now - 3_600_000), events: Some(now_ms() + 60_000) };
    assert_eq!(store.prune(before).await.unwrap(), Pruned { idempotency_keys: 1, events: 5_000 });
    assert_eq!(store.idempotent_origin("key-1", "order-old").await.unwrap(), None);
    assert!(store.idempotent_origin("key-1", "order-new").await.unwrap().is_some(), "younger than the cutoff");
    let left = store.events_after(0, 10_000).await.unwrap();
    assert_eq!(left, events[5_000..], "the subscription has yet to handle these");
    // Forgotten: the key stores a new transaction, and the transaction itself stays.
    store.insert(&with_key("old-again", "order-old", now)).await.unwrap();
    assert!(store.get("old").await.unwrap().is_some());

    assert!(store.delete_webhook("w1").await.unwrap());
    let pruned = store.prune(PruneBefore { idempotency_keys: None, events: Some(now_ms() + 60_000) }).await.unwrap();
    assert_eq!(pruned, Pruned { idempotency_keys: 0, events: 4 }, "three left, and old-again's");
    assert_eq!(store.events_after(0, 10).await.unwrap(), []);
}

/// Runs every case, each on a database from `fresh` (`None`: the backend
/// is unreachable and the test skips).
#[macro_export]
macro_rules! store_suite {
    ($fresh:expr) => {
        $crate::store_suite!(@cases $fresh;
            round_trips_every_field,
            refuses_a_duplicate_id_and_keeps_the_first,
            assigns_contiguous_nonces_once_each,
            concurrent_assignments_never_share_a_nonce,
            concurrent_writes_apply_or_miss_each_on_their_own,
            sync_lane_never_reissues_an_assigned_nonce,
            records_attempts_and_the_decision_trail,
            lists_a_relayers_transactions_newest_first,
            counts_pending_per_relayer,
            counts_transactions_by_status_with_the_oldest_unfinished,
            cancels_and_replaces_only_before_a_nonce,
            a_replacement_at_the_nonce_and_settling_on_the_attempt_mined,
            bumps_and_no_ops_keep_the_content_and_settle_by_purpose,
            a_released_nonce_is_queued_again_and_a_gap_is_filled_once,
            keeps_the_watchers_checkpoint_per_chain,
            keeps_api_keys_with_their_digest_and_revokes_once,
            keeps_an_idempotency_key_with_its_transaction_once,
            stores_a_group_in_one_transaction_all_or_none,
            logs_each_status_change_and_appended_event_in_order,
            leases_webhooks_to_one_owner_and_keeps_their_progress,
            prunes_old_keys_and_the_events_every_subscription_has_handled,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $fresh.await else { return };
                support::store_suite::$case(store).await;
            }
        )*
    };
}
