//! The sandbox each plugin call runs in: a fresh `Store` per decision, so
//! nothing leaks between requests.
//!
//! Capabilities are denied by default. What a plugin gets:
//! - `switchyard:plugin/log`: granted, at most [`MAX_LOGS_PER_CALL`] messages
//!   of [`MAX_LOG_BYTES`] per call, into `tracing` with the plugin's name;
//! - `wasi:random`, `wasi:clocks`: granted (std seeds its `HashMap` from
//!   them);
//! - `wasi:filesystem`: linked because some std builds import it at start-up,
//!   but with no preopened directory, so no path resolves;
//! - `wasi:cli`: no arguments, no environment, stdin closed, stdout
//!   discarded, stderr captured (at most [`STDERR_CAPTURE`] bytes) to explain
//!   a trap;
//! - `wasi:sockets`, `wasi:http` and anything else: refused when the plugin
//!   is loaded (`loader::check_imports`); TCP, UDP and name lookup are also
//!   disabled in the context, in case a future linker links them.
//!
//! CPU time is bounded by epoch interruption: on every tick during a call the
//! host adds up the CPU time the threads running the call have spent on it
//! (so a call preempted by other work is not charged for it) and interrupts
//! the plugin past its deadline, or past ten times the deadline in wall time,
//! so an overloaded host still answers in bounded time. Short of that, the
//! call yields to the async runtime at every tick, so a slow plugin never
//! holds a runtime thread for more than a tick. A plugin cannot block inside
//! a host call where ticks cannot reach it: the one import that could
//! (`wasi:clocks/monotonic-clock`, whose pollables sleep) is refused at load.
//! Memory is bounded by [`MemoryLimiter`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::error::PluginError;
use super::truncate;

pub(crate) const MAX_LOGS_PER_CALL: u32 = 64;
pub(crate) const MAX_LOG_BYTES: usize = 2048;
const STDERR_CAPTURE: usize = 4096;
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The engine's epoch advances once per tick; deadlines are counted in ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Per-plugin resource limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_millis(10), memory_bytes: 16 << 20 }
    }
}

/// A call that has waited this many times its CPU deadline in wall time is
/// interrupted whatever CPU it got.
const WALL_CEILING_FACTOR: u32 = 10;

/// CPU time the calling thread has consumed.
#[allow(unsafe_code)]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec, and CLOCK_THREAD_CPUTIME_ID
    // exists on every Linux this host supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The CPU time one call has used. The call runs in slices, one thread per
/// slice, from its start or a resume to the next tick.
///
/// Reading a thread's CPU time is a system call, so it is read at ticks
/// rather than for every call (most calls end before a tick). The CPU time a
/// slice spent before its first reading is taken to be the wall time since
/// the slice began, up to one tick: a slice cannot run longer than that
/// before a tick reaches it, and counting the wall time of a preempted slice
/// would charge it for other work.
struct CallClock {
    wall: Instant,
    /// CPU time of the slices that ended in a yield.
    spent: Duration,
    /// When the current slice began, in nanoseconds after `wall`: set by the
    /// yield future as the call resumes.
    slice_began: Arc<AtomicU64>,
    slice_cpu_at_start: Option<Duration>,
}

impl CallClock {
    fn start() -> Self {
        let slice_began = Arc::new(AtomicU64::new(0));
        CallClock { wall: Instant::now(), spent: Duration::ZERO, slice_began, slice_cpu_at_start: None }
    }

    /// CPU time the call has used, as best known at a tick.
    fn cpu_used(&mut self) -> Duration {
        let now = thread_cpu_time();
        let began = Duration::from_nanos(self.slice_began.load(Ordering::Relaxed));
        let elapsed = self.wall.elapsed().saturating_sub(began).min(EPOCH_TICK);
        let start = *self.slice_cpu_at_start.get_or_insert_with(|| now.saturating_sub(elapsed));
        self.spent + now.saturating_sub(start)
    }

    /// Gives the thread back to the runtime; the call resumes, perhaps on
    /// another thread, when the returned future is done.
    fn yielding(&mut self, used: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.spent = used;
        self.slice_cpu_at_start = None;
        let (wall, slice_began) = (self.wall, self.slice_began.clone());
        Box::pin(async move {
            tokio::task::yield_now().await;
            let resumed = u64::try_from(wall.elapsed().as_nanos()).unwrap_or(u64::MAX);
            slice_began.store(resumed, Ordering::Relaxed);
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Refuses memory growth past the plugin's cap, and remembers that it did so
/// the trap can be reported as what it is.
pub(crate) struct MemoryLimiter {
    cap: usize,
    exceeded: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = Some(desired);
            wasmtime::bail!("memory cap of {} bytes exceeded", self.cap);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

pub(crate) struct PluginState {
    /// Built at the plugin's first WASI call: most calls make none.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limiter: MemoryLimiter,
    stderr: Option<MemoryOutputPipe>,
    plugin: Arc<str>,
    logs_left: u32,
    clock: CallClock,
    /// The last error-level message: the SDK's panic hook reports panics
    /// through the log import.
    last_error: Option<String>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stderr = &mut self.stderr;
        let ctx = self.wasi.get_or_insert_with(|| plugin_wasi(stderr));
        WasiCtxView { ctx, table: &mut self.table }
    }
}

impl PluginState {
    pub(crate) fn log(&mut self, level: LogLevel, message: &str) {
        if self.logs_left == 0 {
            return;
        }
        self.logs_left -= 1;
        let message = truncate(message, MAX_LOG_BYTES);
        let plugin = &*self.plugin;
        match level {
            LogLevel::Trace => tracing::trace!(target: "switchyard::plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "switchyard::plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "switchyard::plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "switchyard::plugin", plugin, "{message}"),
            LogLevel::Error => {
                tracing::error!(target: "switchyard::plugin", plugin, "{message}");
                self.last_error = Some(message.to_string());
            }
        }
    }

    /// What the plugin said last before it trapped: its panic message, if
    /// it reported one through the log or wrote one to stderr.
    fn last_words(&self) -> Option<String> {
        let stderr;
        let text = match (&self.last_error, &self.stderr) {
            (Some(message), _) => message.as_str(),
            (None, Some(pipe)) => {
                stderr = pipe.contents();
                std::str::from_utf8(&stderr).unwrap_or("(stderr is not UTF-8)")
            }
            (None, None) => return None,
        };
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        (!one_line.is_empty()).then(|| truncate(&one_line, 512).to_string())
    }
}

/// The WASI context of a plugin call; its stderr is captured into `stderr`.
fn plugin_wasi(stderr: &mut Option<MemoryOutputPipe>) -> WasiCtx {
    let pipe = stderr.insert(MemoryOutputPipe::new(STDERR_CAPTURE)).clone();
    WasiCtx::builder().stderr(pipe).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build()
}

/// A store for one plugin call, with its limits armed.
pub(crate) fn new_store(engine: &Engine, plugin: &Arc<str>, limits: &Limits) -> Store<PluginState> {
    store_with(engine, None, plugin, limits)
}

/// A store around a given WASI context (`None`: the plugin sandbox's, built
/// on first use). The epoch deadline only bites on an engine with epoch
/// interruption enabled.
pub(crate) fn store_with(
    engine: &Engine,
    wasi: Option<WasiCtx>,
    plugin: &Arc<str>,
    limits: &Limits,
) -> Store<PluginState> {
    let state = PluginState {
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryLimiter { cap: limits.memory_bytes, exceeded: None },
        stderr: None,
        plugin: plugin.clone(),
        logs_left: MAX_LOGS_PER_CALL,
        clock: CallClock::start(),
        last_error: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    let (cpu_limit, wall_limit) = (limits.timeout, limits.timeout.saturating_mul(WALL_CEILING_FACTOR));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        let clock = &mut ctx.data_mut().clock;
        let used = clock.cpu_used();
        if used >= cpu_limit || clock.wall.elapsed() >= wall_limit {
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::YieldCustom(1, clock.yielding(used)))
    });
    store
}

/// Turns what wasmtime returned into the reason the decision fell back.
pub(crate) fn classify(error: &wasmtime::Error, store: &Store<PluginState>, limits: &Limits) -> PluginError {
    let state = store.data();
    if let Some(requested) = state.limiter.exceeded {
        return PluginError::MemoryLimit { cap: limits.memory_bytes, requested };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout { timeout_ms: limits.timeout.as_millis() as u64 },
        Some(trap) => PluginError::Trap(match state.last_words() {
            Some(words) => format!("{trap} ({words})"),
            None => trap.to_string(),
        }),
        // Not a trap: the answer could not be lifted (bad string, bad
        // discriminant, out-of-bounds pointer) or a host call failed.
        None => PluginError::MalformedAnswer(format!("{error:#}")),
    }
}
