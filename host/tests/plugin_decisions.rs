//! Each example plugin, built from plugins/ and loaded by the real runtime,
//! gives the expected decisions; without a plugin, the documented defaults
//! decide.

mod support;

use alloy_primitives::{Address, U256};
use support::*;
use switchyard::plugins::{
    AttemptFees, Candidate, Changes, DecidedBy, FeeDecision, FeeMarket, PluginError, PluginKind, ReloadOutcome,
    Selection, Speed, TxRequest, Usage, Verdict, fixtures,
};

fn selector_host(name: &str, config: &[(&str, &str)]) -> TestHost {
    let file = format!("{name}.wasm");
    let host = test_host(&[(&file, example(name))], vec![(PluginKind::Selector, slot(&file, config))]);
    assert!(matches!(host.loaded[0], ReloadOutcome::Loaded { .. }), "{name} did not load: {:?}", host.loaded[0]);
    host
}

fn chosen(t: &TestHost, candidates: &[Candidate]) -> String {
    let decision = decide(t.host.select(&request(), candidates));
    assert!(decision.plugin().is_some(), "the plugin did not decide: {:?}", decision.decided_by);
    match decision.outcome {
        Selection::Chosen(id) => id,
        Selection::Refused(reason) => panic!("refused: {reason}"),
    }
}

#[test]
fn decisions_name_the_plugin_and_its_sha256() {
    let t = selector_host("selector_round_robin", &[]);
    let decision = decide(t.host.select(&request(), &candidates(3)));
    let DecidedBy::Plugin(id) = &decision.decided_by else { panic!("fell back: {:?}", decision.decided_by) };
    assert_eq!(id.name, "selector_round_robin");
    assert_eq!(id.version_hash, sha256(&example("selector_round_robin")));
    assert_eq!(id.wit_version, "0.1.0");
}

#[test]
fn round_robin_rotates_over_healthy_relayers() {
    let t = selector_host("selector_round_robin", &[]);
    let mut relayers = candidates(4);
    relayers[2].healthy = false;
    let picks: Vec<String> = (0..6).map(|_| chosen(&t, &relayers)).collect();
    assert_eq!(picks, ["r00", "r01", "r03", "r00", "r01", "r03"]);
}

#[test]
fn least_pending_prefers_idle_relayers() {
    let t = selector_host("selector_least_pending", &[]);
    // pending counts of candidates(6): 0, 2, 4, 1, 3, 0
    let relayers = candidates(6);
    let picks: Vec<String> = (0..4).map(|_| chosen(&t, &relayers)).collect();
    assert_eq!(picks, ["r00", "r05", "r00", "r05"], "ties rotate");
    let busy: Vec<Candidate> =
        relayers.into_iter().map(|c| Candidate { pending_count: c.pending_count + 5, ..c }).collect();
    let mut busy = busy;
    busy[3].pending_count = 1;
    assert_eq!(chosen(&t, &busy), "r03");
}

#[test]
fn weighted_follows_configured_weights() {
    let t = selector_host("selector_weighted", &[("weights", "r00=3, r01=1, r02=0")]);
    let relayers = candidates(3);
    let mut counts = [0usize; 3];
    for _ in 0..400 {
        let id = chosen(&t, &relayers);
        counts[id[1..].parse::<usize>().unwrap()] += 1;
    }
    assert_eq!(counts, [300, 100, 0]);
}

#[test]
fn health_aware_skips_relayers_over_thresholds() {
    let t = selector_host("selector_health_aware", &[("max_pending", "2"), ("min_success_rate_bps", "9100")]);
    // candidates(5): pending 0,2,4,1,3; success 9000,9050,9100,9150,9200
    let relayers = candidates(5);
    let picks: Vec<String> = (0..4).map(|_| chosen(&t, &relayers)).collect();
    assert_eq!(picks, ["r03", "r03", "r03", "r03"], "only r03 is under both thresholds");
    let all_busy: Vec<Candidate> = relayers.into_iter().map(|c| Candidate { pending_count: 9, ..c }).collect();
    let picks: Vec<String> = (0..2).map(|_| chosen(&t, &all_busy)).collect();
    assert_ne!(picks[0], picks[1], "falls back to rotating over the healthy ones");
}

#[test]
fn bad_plugin_config_is_refused_at_load_with_the_plugins_message() {
    let file = "weighted.wasm";
    let t = test_host(
        &[(file, example("selector_weighted"))],
        vec![(PluginKind::Selector, slot(file, &[("weights", "r00=heavy")]))],
    );
    let ReloadOutcome::Rejected { reason, .. } = &t.loaded[0] else { panic!("{:?}", t.loaded[0]) };
    assert!(reason.contains("rejected its configuration") && reason.contains("`weights`"), "{reason}");
    assert!(t.host.active(PluginKind::Selector).is_none());
}

fn policy_host() -> TestHost {
    let file = "policy.wasm";
    let config = [
        ("contracts", "0x0000000000000000000000000000000000000001"),
        ("functions", "0xa9059cbb"),
        ("max_value", "1 ether"),
        ("daily_limit", "10"),
        ("max_gas_limit", "100000"),
    ];
    let t = test_host(&[(file, example("policy_allowlist"))], vec![(PluginKind::Policy, slot(file, &config))]);
    assert!(matches!(t.loaded[1], ReloadOutcome::Loaded { .. }), "{:?}", t.loaded[1]);
    t
}

#[test]
fn policy_allows_denies_and_amends() {
    let t = policy_host();
    let verdict = |request: &TxRequest, today: u64| {
        let d = decide(t.host.evaluate(request, Usage { requests_today: today }));
        assert!(d.plugin().is_some(), "{:?}", d.decided_by);
        d.outcome
    };
    let transfer_call = TxRequest { data: [&[0xa9, 0x05, 0x9c, 0xbb][..], &[0u8; 64]].concat(), ..request() };
    assert_eq!(verdict(&transfer_call, 0), Verdict::Allow);

    let elsewhere = TxRequest { to: Some(Address::with_last_byte(2)), ..request() };
    let Verdict::Deny(reason) = verdict(&elsewhere, 0) else { panic!("allowed another contract") };
    assert!(reason.contains("not on the allowlist"), "{reason}");

    let approve = TxRequest { data: vec![0x09, 0x5e, 0xa7, 0xb3], ..request() };
    assert_eq!(verdict(&approve, 0), Verdict::Deny("function 0x095ea7b3 is not on the allowlist".into()));

    let rich = TxRequest { value: U256::from(2) * U256::from(10u64).pow(U256::from(18)), ..request() };
    assert!(matches!(verdict(&rich, 0), Verdict::Deny(r) if r.contains("above the cap")));

    assert_eq!(verdict(&request(), 10), Verdict::Deny("this API key has used its 10 requests for today".into()));

    let heavy = TxRequest { gas_limit: Some(1_000_000), ..request() };
    assert_eq!(verdict(&heavy, 0), Verdict::AllowWithChanges(Changes { gas_limit: Some(100_000), speed: None }));
}

fn fee_host(config: &[(&str, &str)]) -> TestHost {
    let file = "fee.wasm";
    let t = test_host(&[(file, example("fee_eip1559"))], vec![(PluginKind::Fee, slot(file, config))]);
    assert!(matches!(t.loaded[2], ReloadOutcome::Loaded { .. }), "{:?}", t.loaded[2]);
    t
}

fn gwei(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000_000u64)
}

#[test]
fn fee_tiers_cap_and_bump() {
    let t = fee_host(&[]);
    // fixtures::market(): base 10 gwei; p10 1, p25 2, p50 3, p75 5, p95 8 gwei; cap 500.
    for (speed, tip) in [(Speed::SafeLow, 1), (Speed::Average, 3), (Speed::Fast, 5), (Speed::Fastest, 8)] {
        let d = decide(t.host.price(&TxRequest { speed, ..request() }, &fixtures::market()));
        let FeeDecision::Quote(q) = d.outcome else { panic!("{speed:?}: {:?}", d.outcome) };
        assert_eq!((q.max_fee, q.priority_fee), (gwei(20 + tip), gwei(tip)), "{speed:?}");
        assert!(d.plugin().is_some());
    }

    let replacing =
        FeeMarket { previous: Some(AttemptFees { max_fee: gwei(100), priority_fee: gwei(10) }), ..fixtures::market() };
    let FeeDecision::Quote(q) = decide(t.host.price(&request(), &replacing)).outcome else {
        panic!("no replacement quote")
    };
    assert!(q.max_fee >= gwei(110) && q.priority_fee >= gwei(11), "{q:?}");

    let stuck =
        FeeMarket { previous: Some(AttemptFees { max_fee: gwei(490), priority_fee: gwei(10) }), ..fixtures::market() };
    let d = decide(t.host.price(&request(), &stuck));
    assert!(d.plugin().is_some(), "cannot-bump is the plugin's own answer, not a fallback");
    assert!(
        matches!(d.outcome, FeeDecision::CannotBump(ref r) if r.contains("cap is 500000000000 wei")),
        "{:?}",
        d.outcome
    );
}

#[test]
fn without_plugins_the_documented_defaults_decide() {
    let t = test_host(&[], vec![]);
    let select = decide(t.host.select(&request(), &candidates(3)));
    assert_eq!(select.outcome, Selection::Chosen("r00".into()));
    assert_eq!(
        select.decided_by,
        DecidedBy::Fallback { plugin: None, reason: PluginError::NotLoaded(PluginKind::Selector) }
    );
    let verdict = decide(t.host.evaluate(&request(), Usage::default()));
    assert!(matches!(verdict.outcome, Verdict::Deny(_)), "policy defaults to deny");
    let fee = decide(t.host.price(&request(), &fixtures::market()));
    let FeeDecision::Quote(q) = fee.outcome else { panic!("{:?}", fee.outcome) };
    assert_eq!((q.max_fee, q.priority_fee), (gwei(25), gwei(5)), "fast tier: 2x base fee + p75 tip");
}
