//! A selector that sleeps inside a host call, where no epoch tick can
//! interrupt it: it imports wasi:clocks/monotonic-clock.

use switchyard_sdk::selector::{Candidate, Selection, Selector};
use switchyard_sdk::{Config, Request};

pub struct Sleeper;

impl Selector for Sleeper {
    fn select(_: &Config, _: &Request, candidates: &[Candidate], _: u64) -> Selection {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        Selection::chosen(&candidates[0])
    }
}

switchyard_sdk::export_selector!(Sleeper);
