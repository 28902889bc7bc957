//! A selector that tries to read the host file named by its `path` config
//! and return its content in a refusal reason. It panics when it cannot.

use switchyard_sdk::selector::{Candidate, Selection, Selector};
use switchyard_sdk::{Config, Request};

pub struct Snoop;

impl Selector for Snoop {
    fn select(config: &Config, _: &Request, _: &[Candidate], _: u64) -> Selection {
        let path = config.get("path").unwrap_or("/etc/hostname");
        match std::fs::read_to_string(path) {
            Ok(secret) => Selection::refused(format!("leaked: {secret}")),
            Err(e) => panic!("cannot read {path}: {e}"),
        }
    }
}

switchyard_sdk::export_selector!(Snoop);
