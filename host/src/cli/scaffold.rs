//! `switchyard plugin new`: a plugin crate from a template that builds to a
//! component and passes its own tests as it is, so an author starts from
//! working code.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::plugins::PluginKind;

const MANIFEST: &str = include_str!("../../templates/plugin/Cargo.toml.in");
const CARGO_CONFIG: &str = include_str!("../../templates/plugin/cargo-config.toml");
const GITIGNORE: &str = include_str!("../../templates/plugin/gitignore");
const SELECTOR: &str = include_str!("../../templates/plugin/selector.rs");
const POLICY: &str = include_str!("../../templates/plugin/policy.rs");
const FEE: &str = include_str!("../../templates/plugin/fee.rs");

/// Writes the crate `name` of `kind` into `dir/name`, depending on the SDK
/// at `sdk`. Returns the crate's folder.
pub(super) fn new_plugin(name: &str, kind: PluginKind, dir: &Path, sdk: &Path) -> anyhow::Result<PathBuf> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("`{name}` is not a plugin name: 1-64 of [a-z0-9_-], starting with a letter");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists; plugin new never overwrites", root.display());
    }
    let sdk = std::path::absolute(sdk).with_context(|| format!("resolving {}", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("no plugin SDK at {} (pass --sdk PATH to sdk-guest/)", sdk.display());
    }
    let crate_name = name.replace('_', "-");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{kind}}", kind.interface())
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    let source = match kind {
        PluginKind::Selector => SELECTOR,
        PluginKind::Policy => POLICY,
        PluginKind::Fee => FEE,
    };
    for (path, text) in [
        ("Cargo.toml", fill(MANIFEST)),
        (".cargo/config.toml", CARGO_CONFIG.to_string()),
        (".gitignore", GITIGNORE.to_string()),
        ("src/lib.rs", fill(source)),
    ] {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("a file in a folder"))?;
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(root)
}
