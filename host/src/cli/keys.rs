//! `switchyard relayer keys`: encrypted keystores (Ethereum v3 JSON,
//! scrypt) for the relayers' keys. Passwords and raw keys are read from an
//! environment variable or a file, never from the command line, where
//! `ps` and shell history would keep them.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new key and write it encrypted to DIR/NAME.json. Prints its
    /// address and the `[[relayers]]` entry that uses it.
    New {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        password: Password,
    },
    /// Encrypt an existing hex private key to DIR/NAME.json.
    Import {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        password: Password,
        /// The environment variable holding the hex private key.
        #[arg(long, conflicts_with = "key_file", required_unless_present = "key_file")]
        key_env: Option<String>,
        /// A file holding the hex private key.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// List the keystores in DIR; with a password, their addresses too.
    List {
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        #[command(flatten)]
        password: OptionalPassword,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    /// The keystore folder.
    #[arg(long, default_value = "keys")]
    dir: PathBuf,
    /// The keystore's name (the relayer id is a good one): DIR/NAME.json.
    #[arg(long)]
    name: String,
}

#[derive(Debug, Args)]
pub struct Password {
    /// The environment variable holding the keystore password.
    #[arg(long, conflicts_with = "password_file", required_unless_present = "password_file")]
    password_env: Option<String>,
    /// A file holding the keystore password (one trailing newline ignored).
    #[arg(long)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OptionalPassword {
    #[arg(long, conflicts_with = "password_file")]
    password_env: Option<String>,
    #[arg(long)]
    password_file: Option<PathBuf>,
}

fn secret(env: Option<&str>, file: Option<&Path>, what: &str) -> anyhow::Result<Option<String>> {
    match (env, file) {
        (Some(var), _) => {
            let value = std::env::var(var).with_context(|| format!("{what}: environment variable {var} is not set"))?;
            Ok(Some(value))
        }
        (None, Some(file)) => Ok(Some(crate::config::read_secret(file).map_err(anyhow::Error::msg)?)),
        (None, None) => Ok(None),
    }
}

impl Password {
    fn read(&self) -> anyhow::Result<String> {
        let password = secret(self.password_env.as_deref(), self.password_file.as_deref(), "password")?;
        let password = password.context("give --password-env or --password-file")?;
        if password.len() < 8 {
            bail!("the keystore password must be at least 8 characters");
        }
        Ok(password)
    }

    fn config_entry(&self) -> String {
        match (&self.password_env, &self.password_file) {
            (Some(var), _) => format!("password_env = \"{var}\""),
            (None, Some(file)) => format!("password_file = \"{}\"", file.display()),
            (None, None) => String::new(),
        }
    }
}

#[allow(clippy::print_stdout)]
pub(super) fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::New { target, password } => {
            let secret = PrivateKeySigner::random().to_bytes();
            write(&target, &password, secret.as_slice())
        }
        KeysCommand::Import { target, password, key_env, key_file } => {
            let hex = secret(key_env.as_deref(), key_file.as_deref(), "private key")?
                .context("give --key-env or --key-file")?;
            let signer: PrivateKeySigner =
                hex.trim().parse().map_err(|_| anyhow::anyhow!("that is not a hex private key (32 bytes)"))?;
            write(&target, &password, signer.to_bytes().as_slice())
        }
        KeysCommand::List { dir, password } => {
            let password = secret(password.password_env.as_deref(), password.password_file.as_deref(), "password")?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for file in files {
                let address = match &password {
                    Some(password) => match PrivateKeySigner::decrypt_keystore(&file, password) {
                        Ok(signer) => signer.address().to_string(),
                        Err(error) => format!("(cannot decrypt: {error})"),
                    },
                    None => "(give a password to show the address)".into(),
                };
                println!("{}  {address}", file.display());
            }
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)]
fn write(target: &Target, password: &Password, secret: &[u8]) -> anyhow::Result<()> {
    let password_text = password.read()?;
    let valid = !target.name.is_empty()
        && target.name.len() <= 64
        && target.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        bail!("`{}` is not a keystore name: 1-64 of [A-Za-z0-9_-]", target.name);
    }
    let file_name = format!("{}.json", target.name);
    let file = target.dir.join(&file_name);
    if file.exists() {
        bail!("{} exists; keystores are never overwritten", file.display());
    }
    // A new folder is the owner's alone, so the keystore is never readable
    // by others, not even before it is restricted.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&target.dir)
        .with_context(|| format!("creating {}", target.dir.display()))?;
    eprintln!("encrypting (scrypt: this takes a few seconds)…");
    let (signer, _) = PrivateKeySigner::encrypt_keystore(
        &target.dir,
        &mut rand::thread_rng(),
        secret,
        &password_text,
        Some(file_name.as_str()),
    )
    .with_context(|| format!("writing {}", file.display()))?;
    restrict(&file)?;
    println!("keystore: {}", file.display());
    println!("address:  {}", signer.address());
    println!();
    println!("[[relayers]]");
    println!("id = \"{}\"", target.name);
    println!("key = {{ keystore = \"{}\", {} }}", file.display(), password.config_entry());
    Ok(())
}

/// Only the owner may read a keystore.
fn restrict(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", file.display()))
}
