//! `apport-hook collect REPORT`: the hook phase after an upload.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use apport_hooks::agent::collect::{
    CollectError, Collector, Delivery, HookList, HookOffer, PendingResult, open_uploaded_report,
    read_uploaded_oops, spool_result,
};
use apport_hooks::agent::config::{self, Environment, Paths, Settings};
use apport_hooks::agent::http::{ClientSettings, build_client};
use apport_hooks::agent::ids::OopsId;
use apport_hooks::agent::job::run_bundle_streaming;
use apport_hooks::agent::progress::ProgressDisplay;
use apport_hooks::agent::result_file::ResultFile;
use apport_hooks::agent::spool::{EntryKey, Spool};
use apport_hooks::agent::token::{Freshness, now_secs, token_usable};
use apport_hooks::bundle::{DEFAULT_KEY_DIRS, DEFAULT_REVOKED_KEYS, KeyRing};

/// Fetch the hooks the server offers for an uploaded report, run them
/// through apportd and send the new keys back.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Needs REPORT.uploaded (written by `apport-hook upload`). Exit status: 0 \
                  every hook's result was delivered, spooled for later or there was nothing \
                  to do; 1 hooks are turned off in the settings; 3 a runtime error (no \
                  .uploaded file, the hook list could not be fetched, the settings could \
                  not be read)."
)]
pub struct Args {
    /// The report (`/var/crash/*.crash`).
    pub report: PathBuf,
    /// The server's base URL (as for `upload`).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Trust the signing keys in DIR instead of the installed ones (repeatable).
    #[arg(long = "keys", value_name = "DIR")]
    pub keys: Vec<PathBuf>,
    /// Spool directory for results the server cannot take now (default: the settings').
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Exit status when hooks are turned off.
const EXIT_OFF: u8 = 1;

/// Runs `apport-hook collect`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::default();
    let env = Environment::from_process();
    let mut settings = Settings::load(&paths, &env)?;
    if let Some(url) = &args.server {
        settings = settings.with_server_url(url)?;
    }
    if let Some(opt_out) = &settings.opt_out {
        let message = format!("hook phase skipped: {opt_out}");
        if args.json {
            println!(
                "{}",
                serde_json::json!({"ok": false, "status": "off", "message": message})
            );
        } else {
            eprintln!("{message}");
        }
        return Ok(ExitCode::from(EXIT_OFF));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let display = ProgressDisplay::for_command(args.json);
    let value = runtime.block_on(collect(&args, &settings, &paths, &env, display))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_text(&value);
    }
    Ok(ExitCode::SUCCESS)
}

/// The hook phase for the report at `report`; the JSON summary. Shared with
/// `upload` (which runs it after a successful upload) and `watch`. The run
/// is added to the last runs in the state directory (when it is writable).
/// `display` decides whether result uploads draw a progress bar (`watch`
/// passes [`ProgressDisplay::Quiet`]).
pub async fn collect(
    args: &Args,
    settings: &Settings,
    paths: &Paths,
    env: &Environment,
    display: ProgressDisplay,
) -> anyhow::Result<serde_json::Value> {
    let result = collect_phase(args, settings, paths, env, display).await;
    crate::last_runs::record(&settings.state_dir, &args.report, &result);
    result
}

async fn collect_phase(
    args: &Args,
    settings: &Settings,
    paths: &Paths,
    env: &Environment,
    display: ProgressDisplay,
) -> anyhow::Result<serde_json::Value> {
    let (system_id, _) = config::system_id(paths, env)?;
    let client = build_client(&ClientSettings::from(settings))?;
    let collector = Collector::new(client, &settings.server_url, system_id)
        .with_token_margin(settings.timeout)
        .with_progress(display);
    let spool_dir = args
        .spool
        .clone()
        .unwrap_or_else(|| settings.spool_dir.clone());
    let spool = match Spool::open(&spool_dir, settings.spool_max_bytes) {
        Ok(spool) => Some(spool),
        Err(e) => {
            tracing::debug!("no spool: {e}");
            eprintln!("apport-hook: warning: {e}; results the server cannot take now are lost");
            None
        }
    };
    let mut drained = Vec::new();
    // The shared spool holds results for the configured server: a one-off
    // `--server` must not send them elsewhere (or drop them as spooled
    // for another server).
    let one_off_server = args.server.is_some() && args.spool.is_none();
    if let Some(spool) = spool.as_ref().filter(|_| !one_off_server) {
        let sent = match collector.drain(spool).await {
            Err(busy @ CollectError::SpoolBusy(_)) => {
                tracing::info!("{busy}");
                Vec::new()
            }
            other => other?,
        };
        for (key, delivery) in sent {
            drained.push(serde_json::json!({
                "entry": key.to_string(), "delivery": delivery.as_str(), "detail": detail(&delivery),
            }));
        }
    }
    let oops = read_uploaded_oops(&args.report)?;
    let (list, freshness) = collector.fresh_hook_list(&oops).await?;
    let mut hooks = Vec::new();
    if freshness == Freshness::Expired {
        // Running the hooks would only produce results nobody may send.
        for offer in &list.hooks {
            hooks.push(serde_json::json!({
                "id": offer.id, "version": offer.version, "outcome": "token-expired",
                "message": format!(
                    "the server's token expired at {} (now {}), also in a second list: \
                     the hook was not run; check this machine's clock",
                    list.expires, now_secs()
                ),
            }));
        }
    } else if !list.hooks.is_empty() {
        let dirs: Vec<PathBuf> = if args.keys.is_empty() {
            DEFAULT_KEY_DIRS.iter().map(PathBuf::from).collect()
        } else {
            args.keys.clone()
        };
        let revoked = Path::new(DEFAULT_REVOKED_KEYS);
        let keys = KeyRing::load(&dirs, Some(revoked)).context("loading the trusted keys")?;
        let connection = zbus::Connection::system()
            .await
            .context("connecting to the system bus")?;
        let mut tokens = Tokens {
            list: list.clone(),
            refetched: freshness == Freshness::Refetched,
        };
        for offer in &list.hooks {
            let value = one_hook(
                &collector,
                &keys,
                &connection,
                &args.report,
                &oops,
                &mut tokens,
                offer,
                spool.as_ref(),
            )
            .await;
            hooks.push(value);
        }
    }
    Ok(serde_json::json!({
        "ok": true,
        "report": args.report.display().to_string(),
        "oops_id": oops.as_str(),
        "spool_retried": drained,
        "token": {"expires": list.expires, "freshness": freshness.as_str()},
        "hooks": hooks,
    }))
}

/// The token the results are sent with: the list's, or the one list fetched
/// again when it (nearly) expired while the hooks ran.
struct Tokens {
    list: HookList,
    refetched: bool,
}

/// What to do with a result whose token would expire before it arrives.
enum TokenFor {
    /// Send with this token and URL.
    Send(PendingResult),
    /// Keep it in the spool (its token renewed there before any send).
    Spool(PendingResult, String),
    /// The server no longer offers the hook for this OOPS.
    Drop(String),
}

async fn token_for(
    collector: &Collector,
    oops: &OopsId,
    tokens: &mut Tokens,
    offer: &HookOffer,
    mut pending: PendingResult,
) -> TokenFor {
    if token_usable(pending.expires, now_secs(), collector.token_margin()) {
        return TokenFor::Send(pending);
    }
    if !tokens.refetched {
        tokens.refetched = true;
        tracing::warn!(
            "hook {} v{}: the token expires at {} (now {}), before the result could be sent: \
             fetching the hook list once more",
            offer.id,
            offer.version,
            pending.expires,
            now_secs()
        );
        match collector.hook_list(oops).await {
            Ok(list) => tokens.list = list,
            Err(e) if e.is_final() => {
                return TokenFor::Drop(format!("the token expired, and {e}"));
            }
            Err(e) => {
                return TokenFor::Spool(
                    pending,
                    format!("the token expired and a new hook list could not be fetched: {e}"),
                );
            }
        }
    }
    match tokens.list.renewed_for(offer.id, offer.version) {
        Some(renewed) if token_usable(renewed.expires, now_secs(), collector.token_margin()) => {
            pending.token = renewed.token;
            pending.url = renewed.url;
            pending.expires = renewed.expires;
            TokenFor::Send(pending)
        }
        Some(_) => TokenFor::Spool(
            pending,
            "the token expired and the new list's token expires too soon; check this \
             machine's clock"
                .to_owned(),
        ),
        None => TokenFor::Drop(format!(
            "the token expired and the server no longer offers hook {} v{} for this OOPS",
            offer.id, offer.version
        )),
    }
}

/// Puts a result into the spool without sending it (its token is not
/// usable now; the spool renews it before the next attempt), compressed
/// from its descriptor straight into the entry. `spooled` gets the
/// compressed bytes that wait in the spool.
fn spool_unsent(
    pending: &PendingResult,
    result: &ResultFile,
    key: &EntryKey,
    spool: Option<&Spool>,
    why: String,
    spooled: &AtomicU64,
) -> Delivery {
    let stored = match spool {
        None => Err("no spool".to_owned()),
        Some(spool) => spool_result(spool, key, pending, || result.reader()),
    };
    match stored {
        Ok(bytes) => {
            spooled.store(bytes, Ordering::Relaxed);
            tracing::warn!("result of hook {} spooled, not sent: {why}", key.hook_id());
            Delivery::Spooled(why)
        }
        Err(e) => {
            tracing::warn!(
                "result of hook {} lost: {why}, and cannot spool it: {e}",
                key.hook_id()
            );
            Delivery::Dropped(format!("{why}; cannot spool it: {e}"))
        }
    }
}

fn detail(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Delivered(status) => format!("{status}"),
        Delivery::Spooled(m) | Delivery::Dropped(m) => m.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn one_hook(
    collector: &Collector,
    keys: &KeyRing,
    connection: &zbus::Connection,
    report: &Path,
    oops: &OopsId,
    tokens: &mut Tokens,
    offer: &HookOffer,
    spool: Option<&Spool>,
) -> serde_json::Value {
    let mut value = serde_json::Map::new();
    value.insert("id".into(), offer.id.into());
    value.insert("version".into(), offer.version.into());
    let fail =
        |mut value: serde_json::Map<String, serde_json::Value>, outcome: &str, message: String| {
            tracing::warn!("hook {}: {outcome}: {message}", offer.id);
            value.insert("outcome".into(), outcome.into());
            value.insert("message".into(), message.into());
            serde_json::Value::Object(value)
        };
    let bundle = match collector.bundle(offer, keys, now_secs()).await {
        Ok(bundle) => bundle,
        Err(e) => return fail(value, "refused", e),
    };
    let file = match open_uploaded_report(report, nix::unistd::geteuid().as_raw()) {
        Ok(file) => file,
        Err(e) => return fail(value, "error", format!("opening {}: {e}", report.display())),
    };
    let job = match run_bundle_streaming(connection, &bundle, &file).await {
        Ok(job) => job,
        Err(e) => return fail(value, "not-run", e.to_string()),
    };
    let key_sizes: Vec<serde_json::Value> = job
        .result
        .keys()
        .iter()
        .map(|k| serde_json::json!({"key": k.name, "bytes": k.bytes}))
        .collect();
    value.insert("outcome".into(), job.outcome.clone().into());
    value.insert("keys".into(), key_sizes.clone().into());
    value.insert(
        "steps".into(),
        job.steps
            .iter()
            .map(|s| serde_json::json!({"key": s.key, "outcome": s.outcome, "detail": s.detail}))
            .collect::<Vec<_>>()
            .into(),
    );
    if job.result.is_empty() {
        value.insert("delivery".into(), "nothing-to-send".into());
        return serde_json::Value::Object(value);
    }
    // What is sent, never the values.
    tracing::info!(
        "hook {} v{}: sending {} bytes of new keys (zstd on the way), keys {:?}",
        offer.id,
        offer.version,
        job.result.len(),
        key_sizes
    );
    let key = match EntryKey::new(oops.as_str(), &offer.id.to_string(), offer.version) {
        Ok(key) => key,
        Err(e) => return fail(value, "error", e.to_string()),
    };
    let pending = PendingResult {
        url: offer.results.clone(),
        token: tokens.list.token.clone(),
        expires: tokens.list.expires,
    };
    let sent = Arc::new(AtomicU64::new(0));
    let delivery = match token_for(collector, oops, tokens, offer, pending).await {
        TokenFor::Send(pending) => {
            collector
                .deliver(&pending, &job.result, &key, spool, sent.clone())
                .await
        }
        TokenFor::Drop(why) => {
            tracing::warn!("result of hook {} dropped: {why}", offer.id);
            Delivery::Dropped(why)
        }
        TokenFor::Spool(pending, why) => {
            spool_unsent(&pending, &job.result, &key, spool, why, &sent)
        }
    };
    value.insert("sent_bytes".into(), sent.load(Ordering::Relaxed).into());
    value.insert("delivery".into(), delivery.as_str().into());
    value.insert("delivery_detail".into(), detail(&delivery).into());
    serde_json::Value::Object(value)
}

fn print_text(value: &serde_json::Value) {
    println!(
        "OOPS {}",
        value
            .get("oops_id")
            .unwrap_or(&serde_json::Value::Null)
            .as_str()
            .unwrap_or("")
    );
    if let Some(retried) = value
        .get("spool_retried")
        .unwrap_or(&serde_json::Value::Null)
        .as_array()
    {
        for r in retried {
            println!(
                "spooled {}: {}",
                r.get("entry").unwrap_or(&serde_json::Value::Null),
                r.get("delivery").unwrap_or(&serde_json::Value::Null)
            );
        }
    }
    match value
        .get("hooks")
        .unwrap_or(&serde_json::Value::Null)
        .as_array()
    {
        Some(hooks) if !hooks.is_empty() => {
            for h in hooks {
                println!(
                    "hook {} v{}: {} {}",
                    h.get("id").unwrap_or(&serde_json::Value::Null),
                    h.get("version").unwrap_or(&serde_json::Value::Null),
                    h.get("outcome")
                        .unwrap_or(&serde_json::Value::Null)
                        .as_str()
                        .unwrap_or(""),
                    h.get("delivery")
                        .unwrap_or(&serde_json::Value::Null)
                        .as_str()
                        .unwrap_or("")
                );
                if let Some(m) = h
                    .get("message")
                    .unwrap_or(&serde_json::Value::Null)
                    .as_str()
                {
                    println!("  {m}");
                }
                for k in h
                    .get("keys")
                    .unwrap_or(&serde_json::Value::Null)
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "  {} ({} bytes)",
                        k.get("key")
                            .unwrap_or(&serde_json::Value::Null)
                            .as_str()
                            .unwrap_or(""),
                        k.get("bytes").unwrap_or(&serde_json::Value::Null)
                    );
                }
            }
        }
        _ => println!("no hooks for this crash"),
    }
}
