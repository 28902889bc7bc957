//! Compiled components cached on disk by content hash, so a restart does not
//! recompile. An entry is `<sha256 of the component>-<engine fingerprint>`:
//! a new wasmtime version or engine setting misses instead of loading an
//! incompatible artifact. Each artifact has a sidecar with its own sha256,
//! checked before deserializing, so a torn or tampered file is recompiled,
//! never loaded.

#![allow(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a compiled artifact from disk.
    Hit,
    /// Compiled now (and stored, when a cache directory is set).
    Compiled,
}

#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ArtifactCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        // SipHash with fixed keys: stable across runs of the same build.
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ArtifactCache { dir, fingerprint: format!("{:016x}", hasher.finish()) }
    }

    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Compiled));
        };
        let artifact = dir.join(format!("{digest}-{}.cwasm", self.fingerprint));
        if let Some(component) = Self::load(engine, &artifact) {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = Self::store(dir, &artifact, &component) {
            tracing::warn!(path = %artifact.display(), error = %e, "could not cache a compiled plugin; it will be compiled again next start");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn load(engine: &Engine, artifact: &Path) -> Option<Component> {
        let bytes = std::fs::read(artifact).ok()?;
        let expected = std::fs::read_to_string(sidecar(artifact)).ok()?;
        if sha256_hex(&bytes) != expected.trim() {
            tracing::warn!(path = %artifact.display(), "cached plugin artifact does not match its checksum; recompiling");
            return None;
        }
        // SAFETY: the bytes are exactly what `Component::serialize` wrote for
        // an engine with this fingerprint (checked by the sidecar digest), and
        // the cache directory belongs to this host.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %artifact.display(), error = %e, "cached plugin artifact is unusable; recompiling");
                None
            }
        }
    }

    fn store(dir: &Path, artifact: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes = component.serialize()?;
        // Write-then-rename, artifact before sidecar: a crash leaves either no
        // entry or a complete one.
        write_atomically(artifact, &bytes)?;
        write_atomically(&sidecar(artifact), sha256_hex(&bytes).as_bytes())?;
        Ok(())
    }
}

fn sidecar(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.sha256")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
