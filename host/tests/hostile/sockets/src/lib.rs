//! A selector that phones home: it imports wasi:sockets.

use switchyard_sdk::selector::{Candidate, Selection, Selector};
use switchyard_sdk::{Config, Request};

pub struct PhoneHome;

impl Selector for PhoneHome {
    fn select(_: &Config, _: &Request, candidates: &[Candidate], _: u64) -> Selection {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Selection::refused("connected"),
            Err(_) => Selection::chosen(&candidates[0]),
        }
    }
}

switchyard_sdk::export_selector!(PhoneHome);
