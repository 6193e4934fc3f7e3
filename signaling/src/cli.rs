//! The command line of the `giaoban` binary. Commands other than `serve` work
//! on the data folder and database directly (also while a server runs) and
//! print only their result on stdout (an id, a URL), so scripts can use them.

use std::path::PathBuf;

use cabinet::{MeetingStatus, NewInvitation, Role};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::server::{self, ServerError};

/// giaoban: online meetings for provincial government (video + eCabinet).
#[derive(Debug, Parser)]
#[command(name = "giaoban", version, about)]
pub struct Cli {
    /// TOML config file (every key is optional; see deploy/giaoban.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP, WebSocket, media) until SIGTERM or Ctrl-C.
    Serve,
    /// Create, list or end meetings.
    #[command(subcommand)]
    Meeting(MeetingCmd),
    /// Invite someone to a meeting (prints the invitation URL), or revoke/list invitations.
    Invite(InviteCmd),
    /// Manage secretariat accounts (the first admin is created here).
    #[command(subcommand)]
    User(UserCmd),
    /// Check the audit log: prints `ok`, or the first bad entry and what is
    /// wrong with it (exit codes in `audit verify --help`).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Verify the signatures of a PDF offline and print the report, with
    /// the revocation check against the CRLs of the trust folder. Exit
    /// codes: 0 every signature valid and trusted (at least one) and no
    /// certificate revoked by a current CRL, 1 an invalid signature (a
    /// revoked certificate included), 2 no signature, 3 untrusted, 4
    /// unreadable or not a PDF, 5 the trust store or one of its CRLs cannot
    /// be loaded, 6 content appended after the last signature, 7 valid but
    /// revocation not checked (no current CRL of an issuer).
    Verify {
        #[arg(value_name = "FILE.pdf")]
        file: PathBuf,
        /// Trust anchors: a folder of CA certificates and CRLs (.crl), or
        /// one PEM file (default: documents.trust_dir of the config, if set).
        #[arg(long, value_name = "DIR_OR_PEM")]
        trust: Option<PathBuf>,
    },
    /// Print the certificate of the minutes' seal (PEM, its CA chain after
    /// it): what PDF readers and `giaoban verify --trust` must trust to
    /// accept sealed minutes. Without `[minutes] seal_cert`, the server's
    /// self-signed seal in the data folder (made now if there is none yet).
    SealCert,
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Recompute every row's keyed hash and check the chain, its head and
    /// the signed checkpoint in the data folder. Prints `ok`, or the first
    /// bad entry (`<problem> at seq N (id ID): ...`). Exit codes: 0 intact,
    /// 1 could not check (database, key file), 2 edited, 3 missing, 4
    /// truncated, 5 recomputed, 6 key_mismatch, 7 checkpoint_mismatch,
    /// 8 checkpoint_missing.
    Verify {
        /// Print the result as one JSON object instead
        /// (`{"ok":true}` or `{"ok":false,"seq":..,"id":..,"problem":..,"detail":..}`).
        #[arg(long)]
        json: bool,
    },
}

/// The exit code of `giaoban audit verify` for a problem.
pub fn audit_exit_code(problem: cabinet::AuditProblem) -> i32 {
    use cabinet::AuditProblem as P;
    match problem {
        P::Edited => 2,
        P::Missing => 3,
        P::Truncated => 4,
        P::Recomputed => 5,
        P::KeyMismatch => 6,
        P::CheckpointMismatch => 7,
        P::CheckpointMissing => 8,
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create an account; prints its id. The password is read from the
    /// environment variable GIAOBAN_NEW_PASSWORD, else from the first line of
    /// stdin (never from the command line).
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// admin, secretary or operator.
        #[arg(long)]
        role: String,
    },
    /// List accounts: id, username, role, active, display name (tab separated).
    List,
    /// Disable an account (by id or username): it cannot log in, and its
    /// tokens stop at once, also while a server runs. Prints its id.
    Disable {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Enable a disabled account again (its old tokens stay revoked).
    Enable {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Set a new password for an account (read like `user add`'s: from
    /// GIAOBAN_NEW_PASSWORD, else stdin's first line); every token of the
    /// account stops.
    #[command(alias = "passwd")]
    ResetPassword {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// End every session (staff token) of an account.
    RevokeSessions {
        #[arg(value_name = "USER")]
        user: String,
    },
}

/// The environment variable `giaoban user add` reads the password from.
pub const NEW_PASSWORD_ENV: &str = "GIAOBAN_NEW_PASSWORD";

#[derive(Debug, Subcommand)]
pub enum MeetingCmd {
    /// Create a meeting; prints its id. It is a draft until it is
    /// scheduled and started (participants other than the chair and the
    /// secretary wait until then), unless --start.
    Create {
        #[arg(long)]
        title: String,
        /// Start it at once (in progress: everyone invited enters).
        #[arg(long)]
        start: bool,
    },
    /// Start a meeting (draft or scheduled: in progress); the participants
    /// waiting for it enter (within about 5 s when a server runs).
    Start {
        #[arg(value_name = "MEETING_ID")]
        meeting_id: String,
    },
    /// List meetings: id, status, title (tab separated).
    List,
    /// Mark a meeting as ended (nobody can join it any more).
    End {
        #[arg(value_name = "MEETING_ID")]
        meeting_id: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct InviteCmd {
    #[command(subcommand)]
    pub action: Option<InviteAction>,
    /// The meeting id.
    #[arg(long, required = true)]
    pub meeting: Option<String>,
    /// Display name of the person or bridge point.
    #[arg(long, required = true)]
    pub name: Option<String>,
    /// chair, member, secretary, bridge, delegate or observer.
    #[arg(long, required = true)]
    pub role: Option<String>,
    /// Lifetime in hours (default: until the meeting's planned end plus
    /// auth.invite_grace_hours; auth.invite_ttl_hours for a meeting without
    /// a planned time).
    #[arg(long)]
    pub ttl_hours: Option<u32>,
    /// Base URL of the link (default: server.public_url, else the HTTP
    /// address; with every interface bound, the first LAN address).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Lifetime in seconds, may be negative (tests only).
    #[arg(long, hide = true, allow_negative_numbers = true)]
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum InviteAction {
    /// Revoke an invitation; its link stops working.
    Revoke {
        #[arg(value_name = "INVITATION_ID")]
        invitation_id: String,
    },
    /// List a meeting's invitations: id, role, name, expires_at, state.
    List {
        #[arg(long)]
        meeting: String,
    },
}

/// What a CLI command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Store(#[from] cabinet::Error),
    #[error("cannot sign the token")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("{0}")]
    Usage(String),
    #[error("cannot read the password from stdin: {0}")]
    Stdin(std::io::Error),
    /// `verify` ran: its report is printed, the process exits with this code.
    #[error("verification finished with exit code {0}")]
    Exit(i32),
}

impl Cli {
    /// Whether this command runs the server (for choosing the log level).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve)
    }
}

/// Runs a command other than `serve` with a loaded config, printing its
/// result on stdout. `serve` is run by the caller (it needs the shutdown
/// future); here it is an error.
pub async fn run_command(command: Command, config: &Config) -> Result<(), CliError> {
    match command {
        Command::Serve => Err(CliError::Usage("serve is run by the binary's main".into())),
        Command::Meeting(cmd) => {
            let (store, _keys) = server::open(config).await?;
            let r = meeting(&store, cmd).await;
            store.close().await;
            r
        }
        Command::Invite(cmd) => {
            let (store, keys) = server::open(config).await?;
            let r = invite(&store, &keys, config, cmd).await;
            store.close().await;
            r
        }
        Command::User(cmd) => {
            let (store, _keys) = server::open(config).await?;
            let r = user(&store, cmd).await;
            store.close().await;
            r
        }
        Command::Audit(AuditCmd::Verify { json }) => {
            let (store, _keys) = server::open(config).await?;
            let r = store.verify_audit_chain().await;
            store.close().await;
            match r? {
                None if json => {
                    println!("{}", serde_json::json!({"ok": true}));
                    Ok(())
                }
                None => {
                    println!("ok");
                    Ok(())
                }
                Some(b) => {
                    if json {
                        let mut v = serde_json::json!(b);
                        v["ok"] = false.into();
                        println!("{v}");
                    } else {
                        println!("{b}");
                    }
                    Err(CliError::Exit(audit_exit_code(b.problem)))
                }
            }
        }
        Command::SealCert => {
            server::ensure_data_dir(config)?;
            let source = crate::seal::SealSource::new(config);
            let seal = tokio::task::spawn_blocking(move || source.load_blocking())
                .await
                .map_err(|e| CliError::Usage(format!("loading the seal failed: {e}")))?
                .map_err(CliError::Usage)?;
            eprintln!(
                "seal: {} ({}), SHA-256 {}",
                seal.subject(),
                seal.key_algorithm(),
                seal.certificate_sha256()
            );
            print!("{}", seal.certificate_pem());
            Ok(())
        }
        Command::Verify { file, trust } => {
            let trust = trust.or_else(|| config.documents.trust_dir.clone());
            let (text, code) = tokio::task::spawn_blocking(move || {
                cabinet::signature::verify_file_cli(&file, trust.as_deref())
            })
            .await
            .map_err(|e| CliError::Usage(format!("verification failed: {e}")))?;
            print!("{text}");
            if code == 0 {
                Ok(())
            } else {
                Err(CliError::Exit(code))
            }
        }
    }
}

/// The password of a new account: `GIAOBAN_NEW_PASSWORD`, else stdin's
/// first line.
fn read_new_password() -> Result<String, CliError> {
    if let Ok(p) = std::env::var(NEW_PASSWORD_ENV) {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(CliError::Stdin)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn user(store: &cabinet::Store, cmd: UserCmd) -> Result<(), CliError> {
    match cmd {
        UserCmd::Add {
            username,
            display_name,
            role,
        } => {
            let role: cabinet::StaffRole = role.parse()?;
            let password = read_new_password()?;
            let u = store
                .create_user(
                    "cli",
                    cabinet::NewUser {
                        username,
                        display_name,
                        role,
                        password,
                    },
                )
                .await?;
            tracing::info!(user = %u.username, role = %u.role, "account created");
            println!("{}", u.id);
        }
        UserCmd::List => {
            for u in store.list_users().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.id, u.username, u.role, u.active, u.display_name
                );
            }
        }
        UserCmd::Disable { user } => {
            let u = find_user(store, &user).await?;
            store.set_user_active("cli", &u.id, false).await?;
            println!("{}", u.id);
        }
        UserCmd::Enable { user } => {
            let u = find_user(store, &user).await?;
            store.set_user_active("cli", &u.id, true).await?;
            println!("{}", u.id);
        }
        UserCmd::ResetPassword { user } => {
            let u = find_user(store, &user).await?;
            let password = read_new_password()?;
            store.reset_password("cli", &u.id, &password).await?;
            println!("{}", u.id);
        }
        UserCmd::RevokeSessions { user } => {
            let u = find_user(store, &user).await?;
            store.revoke_user_sessions("cli", &u.id).await?;
            println!("{}", u.id);
        }
    }
    Ok(())
}

/// An account by id or username.
async fn find_user(store: &cabinet::Store, user: &str) -> Result<cabinet::User, CliError> {
    store
        .find_user(user)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no account {user:?}")))
}

/// Draft → scheduled → in progress (already in progress: nothing).
async fn start_meeting(store: &cabinet::Store, meeting_id: &str) -> Result<(), CliError> {
    let m = store
        .get_meeting(meeting_id)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no meeting {meeting_id:?}")))?;
    if m.status == MeetingStatus::Draft {
        store
            .set_meeting_status(meeting_id, MeetingStatus::Scheduled)
            .await?;
    }
    store
        .set_meeting_status(meeting_id, MeetingStatus::InProgress)
        .await?;
    Ok(())
}

async fn meeting(store: &cabinet::Store, cmd: MeetingCmd) -> Result<(), CliError> {
    match cmd {
        MeetingCmd::Create { title, start } => {
            let m = store.create_meeting(&title).await?;
            if start {
                start_meeting(store, &m.id).await?;
            }
            println!("{}", m.id);
        }
        MeetingCmd::Start { meeting_id } => {
            start_meeting(store, &meeting_id).await?;
            println!("{meeting_id}");
        }
        MeetingCmd::List => {
            for m in store.list_meetings().await? {
                println!("{}\t{}\t{}", m.id, m.status, m.title);
            }
        }
        MeetingCmd::End { meeting_id } => {
            store
                .set_meeting_status(&meeting_id, MeetingStatus::Ended)
                .await?;
            println!("{meeting_id}");
        }
    }
    Ok(())
}

async fn invite(
    store: &cabinet::Store,
    keys: &crate::auth::Keys,
    config: &Config,
    cmd: InviteCmd,
) -> Result<(), CliError> {
    match cmd.action {
        Some(InviteAction::Revoke { invitation_id }) => {
            let inv = store.revoke_invitation(&invitation_id).await?;
            println!("{}", inv.id);
            return Ok(());
        }
        Some(InviteAction::List { meeting }) => {
            if store.get_meeting(&meeting).await?.is_none() {
                return Err(cabinet::Error::MeetingNotFound(meeting).into());
            }
            let now = cabinet::now_unix();
            for i in store.list_invitations(&meeting).await? {
                let state = if i.is_revoked() {
                    "revoked"
                } else if i.expires_at <= now {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    i.id, i.role, i.name, i.expires_at, state
                );
            }
            return Ok(());
        }
        None => {}
    }
    let missing = |what: &str| CliError::Usage(format!("--{what} is required"));
    let meeting_id = cmd.meeting.ok_or_else(|| missing("meeting"))?;
    let name = cmd.name.ok_or_else(|| missing("name"))?;
    let role: Role = cmd.role.ok_or_else(|| missing("role"))?.parse()?;
    let ttl_seconds = match (cmd.ttl_seconds, cmd.ttl_hours) {
        (Some(s), _) => s,
        (None, Some(0)) => return Err(CliError::Usage("--ttl-hours must be at least 1".into())),
        (None, Some(h)) => i64::from(h) * 3600,
        (None, None) => {
            let meeting = store
                .get_meeting(&meeting_id)
                .await?
                .ok_or_else(|| cabinet::Error::MeetingNotFound(meeting_id.clone()))?;
            let now = cabinet::now_unix();
            crate::links::default_expiry(
                &meeting,
                now,
                config.auth.invite_ttl_hours,
                config.auth.invite_grace_hours,
            ) - now
        }
    };
    let base = match cmd.base_url {
        Some(u) => {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(CliError::Usage(
                    "--base-url must start with http:// or https://".into(),
                ));
            }
            u.trim_end_matches('/').to_owned()
        }
        None => config.public_base_url(),
    };
    let inv = store
        .create_invitation(NewInvitation {
            meeting_id,
            name,
            role,
            ttl_seconds,
            participant_id: None,
            bridge_point_id: None,
            email: String::new(),
        })
        .await?;
    let token = keys.sign(&crate::auth::claims_for(&inv))?;
    tracing::info!(invitation = %inv.id, meeting = %inv.meeting_id, role = %inv.role, "invitation created");
    match crate::links::link_warning(&base) {
        Some("local_only") => eprintln!(
            "warning: this link names this machine ({base}); other machines cannot open it. \
             Set server.public_url or --base-url."
        ),
        Some(_) => eprintln!(
            "warning: this link is plain http:// to another machine; browsers there refuse \
             the camera and microphone. Serve HTTPS and set server.public_url."
        ),
        None => {}
    }
    println!("{base}/join#{token}");
    Ok(())
}

/// Resolves when SIGTERM or SIGINT (Ctrl-C) arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_user_add_and_verify() {
        let c = Cli::try_parse_from([
            "giaoban",
            "user",
            "add",
            "--username",
            "admin",
            "--display-name",
            "Quản trị",
            "--role",
            "admin",
        ])
        .expect("parses");
        assert!(matches!(c.command, Command::User(UserCmd::Add { .. })));
        assert!(
            Cli::try_parse_from([
                "giaoban",
                "user",
                "add",
                "--username",
                "a",
                "--display-name",
                "b",
                "--role",
                "admin",
                "--password",
                "x"
            ])
            .is_err(),
            "no password flag"
        );
        let c =
            Cli::try_parse_from(["giaoban", "verify", "a.pdf", "--trust", "ca/"]).expect("parses");
        assert!(matches!(c.command, Command::Verify { trust: Some(_), .. }));
    }

    #[test]
    fn parses_invite_and_revoke() {
        let c = Cli::try_parse_from([
            "giaoban",
            "invite",
            "--meeting",
            "m",
            "--name",
            "n",
            "--role",
            "chair",
        ])
        .expect("parses");
        assert!(matches!(
            c.command,
            Command::Invite(InviteCmd { action: None, .. })
        ));
        let c = Cli::try_parse_from(["giaoban", "invite", "revoke", "abc"]).expect("parses");
        assert!(matches!(
            c.command,
            Command::Invite(InviteCmd {
                action: Some(InviteAction::Revoke { .. }),
                ..
            })
        ));
        assert!(Cli::try_parse_from(["giaoban", "invite", "--meeting", "m"]).is_err());
        let c = Cli::try_parse_from([
            "giaoban",
            "--config",
            "x.toml",
            "invite",
            "--meeting",
            "m",
            "--name",
            "n",
            "--role",
            "chair",
            "--ttl-seconds",
            "-10",
        ])
        .expect("parses");
        assert!(matches!(
            c.command,
            Command::Invite(InviteCmd {
                ttl_seconds: Some(-10),
                ..
            })
        ));
    }
}
