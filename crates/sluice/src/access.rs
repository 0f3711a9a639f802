//! `token` and `audit`: who may use `sluice serve` (named API tokens with a role, kept as
//! digests in the metadata store) and what was changed through it.

use clap::Args;
use sluice_core::template::iso;
use sluice_store::Role;

use crate::output::print_table;
use crate::workspace::Workspace;
use crate::{Global, exit, usage};

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its digest is stored.
    Create {
        /// A name for the audit log (unique, even after revoking).
        name: String,
        /// viewer (read), operator (trigger, clear, backfill, pause, replay) or admin.
        #[arg(long)]
        role: String,
    },
    /// List tokens (names, roles, dates; never the secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token and end its browser sessions.
    Revoke { name: String },
}

#[derive(Args)]
pub struct AuditArgs {
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[arg(long)]
    json: bool,
}

pub fn token(global: &Global, command: TokenCommand) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let store = ws.store()?;
    match command {
        TokenCommand::Create { name, role } => {
            let role: Role = role.parse().or_else(|e: String| usage(e))?;
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
            if !valid {
                return usage(format!(
                    "`{name}` is not a token name\n  hint: letters, digits, `-`, `_`, `.` and `@`, e.g. `ci-deploy`"
                ));
            }
            let secret = match store.create_token(&name, role, &[]) {
                Ok(secret) => secret,
                Err(sluice_store::StoreError::Conflict(message)) => return usage(message),
                Err(e) => return Err(e.into()),
            };
            eprintln!("token `{name}` ({role}); it is shown this once:");
            println!("{secret}");
            Ok(exit::OK)
        }
        TokenCommand::List { json } => {
            let tokens = store.tokens()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
                return Ok(exit::OK);
            }
            if tokens.is_empty() {
                println!("no tokens (`sluice token create NAME --role viewer|operator|admin`)");
                return Ok(exit::OK);
            }
            let mut rows = vec![vec![
                "NAME".into(),
                "ROLE".into(),
                "CREATED".into(),
                "REVOKED".into(),
            ]];
            for t in tokens {
                rows.push(vec![
                    t.name,
                    t.role.to_string(),
                    iso(t.created_at),
                    t.revoked_at.map(iso).unwrap_or_default(),
                ]);
            }
            print_table(&rows);
            Ok(exit::OK)
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke_token(&name)? {
                return usage(format!(
                    "no token `{name}` in force\n  hint: `sluice token list` shows them"
                ));
            }
            println!("revoked `{name}`");
            Ok(exit::OK)
        }
    }
}

pub fn audit(global: &Global, args: AuditArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let entries = ws.store()?.audit(args.limit.max(1), None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(exit::OK);
    }
    if entries.is_empty() {
        println!("nothing has been changed through `sluice serve` yet");
        return Ok(exit::OK);
    }
    let mut rows = vec![vec![
        "AT".into(),
        "WHO".into(),
        "FROM".into(),
        "WHAT".into(),
        "STATUS".into(),
        "PARAMETERS".into(),
    ]];
    for e in entries {
        rows.push(vec![
            iso(e.at),
            e.principal,
            e.address,
            e.action,
            e.status.to_string(),
            e.parameters.to_string(),
        ]);
    }
    print_table(&rows);
    Ok(exit::OK)
}
