//! A component that is no Switchyard plugin: it exports no plugin interface.

#[unsafe(no_mangle)]
pub extern "C" fn answer() -> u32 {
    42
}
