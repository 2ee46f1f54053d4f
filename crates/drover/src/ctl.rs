//! `drover ctl`: the admin API from the command line (docs/admin.md, "drover ctl").
//!
//! Where it sits: a client of the admin listener (`drover-admin`), usually of another `drover`
//! process; it shares nothing with the running balancer but the API. Each command makes one call
//! ([`client::Client::call`]): `list` and `show` read `GET /api/v1/farms[/{farm}]`, `pick` reads
//! `GET /api/v1/farms/{farm}/pick`, `enable`/`disable`/`drain`/`undrain` POST the member action and
//! `weight` and `route` PATCH `{"weight": N}` / `{"route": "id"}`, `add` POSTs a new member and
//! `remove` DELETEs one, `reload` POSTs `/api/v1/reload`. The answer is printed as a table ([`render`]) or, with
//! `--json`, as the API's JSON exactly as it came.
//!
//! Options: `--admin` (`DROVER_ADMIN`, default `http://127.0.0.1:9090`), `--token` / `--token-file`
//! (`DROVER_TOKEN`) or `--user name:password` (`DROVER_USER`), `--json`, `--timeout` (default 5s).
//! Explicit flags win over the environment.
//!
//! Exit status: 0 on success; 1 on any failure, with one line on stderr saying why: a 401 with the
//! API's reason and which flag to give, another API error with its `error` field, a connection
//! failure or timeout with the address. `pick` exits 1 too when no member is ready (after printing
//! why). No message quotes a token or password.

mod client;
mod cluster;
mod peers;
mod render;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use hyper::{Method, StatusCode};

use client::{Answer, Client, Credentials, Target, segment};

/// The default `--admin`: the admin listener's default address.
const DEFAULT_ADMIN: &str = "http://127.0.0.1:9090";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: CtlCommand,
}

/// `drover cluster`: the cluster routes of the admin API.
#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: cluster::ClusterCommand,
}

/// Where the admin API is and how to talk to it (every command's options).
#[derive(clap::Args)]
struct Conn {
    /// The admin API: `http://host:port[/prefix]` or `host[:port]` (port 9090 if none)
    /// [env: DROVER_ADMIN] [default: http://127.0.0.1:9090]
    #[arg(long, global = true, value_name = "URL")]
    admin: Option<String>,
    /// Bearer token ([admin] token) [env: DROVER_TOKEN]. Prefer --token-file or the environment:
    /// a command line is visible to every user of the machine.
    #[arg(long, global = true, value_name = "TOKEN", conflicts_with_all = ["token_file", "user"])]
    token: Option<String>,
    /// A file holding the bearer token (surrounding whitespace ignored).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "user")]
    token_file: Option<PathBuf>,
    /// Basic auth against [admin] users_file [env: DROVER_USER].
    #[arg(long, global = true, value_name = "NAME:PASSWORD")]
    user: Option<String>,
    /// Print the API's JSON answer as it is, instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// How long a call may take, connect included ("5s", "500ms").
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    timeout: Duration,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Every farm's members in one table: state, weight, in-flight, requests, failures, latency.
    List,
    /// One farm: its counters, its members with their last change, its sticky-session outcomes.
    Show {
        /// The farm's name, as in the config (`[farm.NAME]`).
        farm: String,
    },
    /// Turn the operator's on flag on: the member may be picked again.
    Enable(MemberArgs),
    /// Turn it off: never picked, sticky clients included.
    Disable(MemberArgs),
    /// Drain: no new sessions; sticky clients and requests in flight are still served.
    Drain(MemberArgs),
    /// Stop draining.
    Undrain(MemberArgs),
    /// Set a member's weight.
    Weight {
        #[command(flatten)]
        target: MemberArgs,
        /// The new weight, 1 to 1000 (the API checks it).
        weight: u32,
    },
    /// Set (or with "" take away) a member's sticky route id.
    Route {
        #[command(flatten)]
        target: MemberArgs,
        /// The new route id: letters, digits, '-' and '_'; "" for none.
        route: String,
    },
    /// Add a member to a farm at run time (until the next reload or restart: the config file is
    /// what a reload reads).
    Add {
        /// The farm's name, as in the config (`[farm.NAME]`).
        farm: String,
        /// The new member's name.
        member: String,
        /// Its address, `ip:port`.
        address: std::net::SocketAddr,
        /// Its weight, 1 to 1000.
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// Its sticky route id.
        #[arg(long)]
        route: Option<String>,
        /// Add it disabled (turned off), to enable later.
        #[arg(long)]
        disabled: bool,
    },
    /// Remove a member at run time; its requests in flight finish.
    Remove(MemberArgs),
    /// Reload the config file: validated first; if invalid, the old config stays and the errors
    /// are printed.
    Reload,
    /// The member a request would get now, the candidates with their scores, and why the others
    /// are left out (a real pick: a round-robin cursor moves).
    Pick {
        /// The farm's name, as in the config (`[farm.NAME]`).
        farm: String,
    },
}

/// Which member a write is about.
#[derive(clap::Args)]
struct MemberArgs {
    /// The farm's name, as in the config (`[farm.NAME]`).
    farm: String,
    /// The member's name, as `drover ctl list` shows it.
    member: String,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = drover_config::units::parse_duration(text).map_err(|e| e.0)?;
    if d.is_zero() {
        return Err("the timeout must be above zero".to_owned());
    }
    Ok(d)
}

/// Runs one `drover ctl` command; prints its own errors.
pub fn run(args: Args) -> ExitCode {
    let Args { conn, command } = args;
    report(execute(&conn, |client, json| {
        Box::pin(run_command(client, command, json))
    }))
}

/// Runs one `drover cluster` command; prints its own errors.
pub fn run_cluster(args: ClusterArgs) -> ExitCode {
    let ClusterArgs { conn, command } = args;
    report(execute(&conn, |client, json| {
        Box::pin(cluster::command(client, command, json))
    }))
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("drover ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

type Pending<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<ExitCode>> + 'a>>;

fn execute(
    args: &Conn,
    command: impl for<'a> FnOnce(&'a Client, bool) -> Pending<'a>,
) -> anyhow::Result<ExitCode> {
    let admin = args
        .admin
        .clone()
        .or_else(|| env("DROVER_ADMIN"))
        .unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
    let target = Target::parse(&admin).map_err(|e| anyhow!(e))?;
    let client = Client::new(target, &credentials(args)?, args.timeout)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    rt.block_on(command(&client, args.json))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Flags first, then `DROVER_TOKEN`, then `DROVER_USER`; none is fine for open reads.
fn credentials(args: &Conn) -> anyhow::Result<Credentials> {
    if let Some(token) = &args.token {
        return Ok(Credentials::Token(token.trim().to_owned()));
    }
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("the token file {} is empty", path.display());
        }
        return Ok(Credentials::Token(token.to_owned()));
    }
    if let Some(user) = &args.user {
        return Ok(Credentials::User(user.clone()));
    }
    if let Some(token) = env("DROVER_TOKEN") {
        return Ok(Credentials::Token(token.trim().to_owned()));
    }
    Ok(env("DROVER_USER").map_or(Credentials::None, Credentials::User))
}

async fn run_command(client: &Client, command: CtlCommand, json: bool) -> anyhow::Result<ExitCode> {
    let action = |target: &MemberArgs, action: &str| {
        format!(
            "/api/v1/farms/{}/members/{}/{action}",
            segment(&target.farm),
            segment(&target.member)
        )
    };
    match command {
        CtlCommand::List => {
            let answer = ok(client.call(Method::GET, "/api/v1/farms", None).await?)?;
            print(json, &answer, |b| Ok(render::list(&parse(b)?)))
        }
        CtlCommand::Show { farm } => {
            let path = format!("/api/v1/farms/{}", segment(&farm));
            let answer = ok(client.call(Method::GET, &path, None).await?)?;
            print(json, &answer, |b| Ok(render::show(&parse(b)?)))
        }
        CtlCommand::Enable(t) => write(client, &t, action(&t, "enable"), None, json).await,
        CtlCommand::Disable(t) => write(client, &t, action(&t, "disable"), None, json).await,
        CtlCommand::Drain(t) => write(client, &t, action(&t, "drain"), None, json).await,
        CtlCommand::Undrain(t) => write(client, &t, action(&t, "undrain"), None, json).await,
        CtlCommand::Weight { target, weight } => {
            let path = format!(
                "/api/v1/farms/{}/members/{}",
                segment(&target.farm),
                segment(&target.member)
            );
            let patch = serde_json::json!({ "weight": weight }).to_string();
            write(client, &target, path, Some(patch), json).await
        }
        CtlCommand::Route { target, route } => {
            let path = format!(
                "/api/v1/farms/{}/members/{}",
                segment(&target.farm),
                segment(&target.member)
            );
            let patch = serde_json::json!({ "route": route }).to_string();
            write(client, &target, path, Some(patch), json).await
        }
        CtlCommand::Add {
            farm,
            member,
            address,
            weight,
            route,
            disabled,
        } => {
            let path = format!("/api/v1/farms/{}/members", segment(&farm));
            let body = serde_json::json!({
                "name": member, "address": address.to_string(), "weight": weight,
                "route": route, "enabled": !disabled,
            })
            .to_string();
            let answer = ok(client.call(Method::POST, &path, Some(body)).await?)?;
            print(json, &answer, |b| Ok(render::member(&farm, &parse(b)?)))
        }
        CtlCommand::Remove(t) => {
            let path = format!(
                "/api/v1/farms/{}/members/{}",
                segment(&t.farm),
                segment(&t.member)
            );
            ok(client.call(Method::DELETE, &path, None).await?)?;
            if !json {
                println!("removed {} from farm {}", t.member, t.farm);
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Reload => {
            let answer = ok(client.call(Method::POST, "/api/v1/reload", None).await?)?;
            print(json, &answer, |b| Ok(render::reloaded(&parse(b)?)))
        }
        CtlCommand::Pick { farm } => {
            let path = format!("/api/v1/farms/{}/pick", segment(&farm));
            let answer = client.call(Method::GET, &path, None).await?;
            // The API's 503 carries the explanation of why no member is ready: show it, then
            // fail. (A 503 from something else in between is an error like any other.)
            let nobody_ready = answer.status == StatusCode::SERVICE_UNAVAILABLE
                && serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .is_ok_and(|v| v.get("chosen").is_some());
            if !nobody_ready {
                ok_ref(&answer)?;
            }
            print(json, &answer, |b| Ok(render::pick(&parse(b)?)))?;
            if nobody_ready {
                eprintln!("drover ctl: no member of farm {farm} is ready");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A member write: `POST` the action, or `PATCH` with `patch`; prints the member's new state (or
/// the API's JSON).
async fn write(
    client: &Client,
    target: &MemberArgs,
    path: String,
    patch: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let method = if patch.is_some() {
        Method::PATCH
    } else {
        Method::POST
    };
    let answer = ok(client.call(method, &path, patch).await?)?;
    print(json, &answer, |b| {
        Ok(render::member(&target.farm, &parse(b)?))
    })
}

/// `answer` if it is a success, else the error to print.
pub(crate) fn ok(answer: Answer) -> anyhow::Result<Answer> {
    ok_ref(&answer)?;
    Ok(answer)
}

fn ok_ref(answer: &Answer) -> anyhow::Result<()> {
    if answer.status.is_success() {
        return Ok(());
    }
    Err(api_error(answer.status, &answer.body))
}

/// The message for an API error: a 401 with the reason the API gave and which flags to give;
/// anything else with its `{"error": ...}` (or the text the answer had) and the status.
fn api_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if status == StatusCode::UNAUTHORIZED {
        let reason = text
            .strip_prefix("401 Unauthorized:")
            .map_or(text, str::trim);
        let reason = shorten(if reason.is_empty() {
            "no reason given"
        } else {
            reason
        });
        return anyhow!("401 Unauthorized: {reason} (give --token or --token-file)");
    }
    let reason = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| shorten(text));
    if reason.is_empty() {
        anyhow!("the admin API answered {status}")
    } else {
        anyhow!("{reason} ({status})")
    }
}

/// The first line of `text`, at most 200 characters (an answer from something that is not the
/// admin API can be a whole page).
fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

pub(crate) fn parse<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> anyhow::Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| anyhow!("the answer is not the admin API's JSON ({e}); is --admin right?"))
}

/// Prints the answer: as it came with `--json`, else as `render` lays it out.
pub(crate) fn print(
    json: bool,
    answer: &Answer,
    render: impl FnOnce(&[u8]) -> anyhow::Result<String>,
) -> anyhow::Result<ExitCode> {
    let out = if json {
        let mut raw = answer.body.to_vec();
        if !raw.ends_with(b"\n") {
            raw.push(b'\n');
        }
        raw
    } else {
        render(&answer.body)?.into_bytes()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&out).and_then(|()| stdout.flush()) {
        // A reader that stopped early (`| head`) is not a failure of the command.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow!("cannot write the output: {e}")),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        let e = api_error(StatusCode::UNAUTHORIZED, b"401 Unauthorized: wrong token\n");
        assert_eq!(
            e.to_string(),
            "401 Unauthorized: wrong token (give --token or --token-file)"
        );
        let e = api_error(
            StatusCode::NOT_FOUND,
            br#"{"error": "farm \"app\" has no member \"x\""}"#,
        );
        assert_eq!(
            e.to_string(),
            "farm \"app\" has no member \"x\" (404 Not Found)"
        );
        let e = api_error(StatusCode::NOT_FOUND, b"unknown farm \"nope\"\n");
        assert_eq!(e.to_string(), "unknown farm \"nope\" (404 Not Found)");
        let e = api_error(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(e.to_string(), "the admin API answered 502 Bad Gateway");
        assert_eq!(shorten(&"x".repeat(300)).len(), 203);
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
