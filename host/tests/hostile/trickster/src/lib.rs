//! A selector that misbehaves on demand: the `mode` config key makes it
//! misbehave on every call (so the load-time smoke call catches it), the
//! `mode` hint of a request only on that call (so it is accepted, then
//! misbehaves at run time). Without either it chooses the first candidate.

use std::hint::black_box;

use switchyard_sdk::selector::{Candidate, Selection, Selector};
use switchyard_sdk::{Config, Request, log};

pub struct Trickster;

impl Selector for Trickster {
    fn select(config: &Config, request: &Request, candidates: &[Candidate], _: u64) -> Selection {
        let mode = request.hints.get("mode").or(config.get("mode")).unwrap_or("");
        match mode {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "bogus" => Selection::Chosen("no-such-relayer".into()),
            "log-flood" => {
                for i in 0..1_000 {
                    log::info(&format!("flood {i} {}", "x".repeat(4096)));
                }
                Selection::chosen(&candidates[0])
            }
            _ => candidates.first().map_or(Selection::refused("no candidate"), Selection::chosen),
        }
    }
}

switchyard_sdk::export_selector!(Trickster);
