//! Activating a hook: lint, bound the limits by the server's, sign the
//! bundle, store it active; the audit log keeps the hook's text.

use std::sync::Arc;

use apport_hooks::bundle::{BundlePayload, SecretKey, sign_bundle};
use apport_hooks::hook::{Diagnostic, LintConfig, Target, parse_hook_bytes};
use sha2::{Digest, Sha256};

use crate::config::Limits;
use crate::storage::{self, HookRecord, NewHook, Storage, StorageError, TargetKey, UnixTime};

/// Seconds per day.
const DAY: i64 = 86_400;

/// Why a hook was not activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The hook file has problems; one line per problem, pointing at the TOML.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Lint(Vec<Diagnostic>),
    /// A limit is over the server's bound.
    #[error("{0}")]
    Bounds(String),
    /// Signing failed.
    #[error("cannot sign the bundle: {0}")]
    Sign(String),
    /// Another activation of the same name took this version first.
    #[error(
        "another activation of {name} took version {version} at the same time; nothing was \
         stored for this one: run it again (it gets the next version)"
    )]
    Raced {
        /// The hook's name.
        name: String,
        /// The version both chose.
        version: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct ActivateRequest<'a> {
    /// The hook file's bytes.
    pub text: &'a [u8],
    /// Its name, for diagnostics.
    pub file_name: &'a str,
    /// Overrides the file's `reports`.
    pub reports: Option<u32>,
    /// Overrides the file's `days`.
    pub days: Option<u32>,
    /// Who activates it (audit log).
    pub actor: &'a str,
    /// Now.
    pub now: UnixTime,
}

/// The storage form of a hook target.
pub fn target_key(target: &Target) -> TargetKey {
    let (kind, value) = match target {
        Target::CrashSignature(v) => ("crash_signature", v),
        Target::Sas(v) => ("sas", v),
        Target::DuplicateSignature(v) => ("duplicate_signature", v),
        Target::Package(v) => ("package", v),
        Target::SourcePackage(v) => ("source_package", v),
    };
    TargetKey {
        kind: kind.to_owned(),
        value: value.clone(),
    }
}

/// Lints, signs and activates a hook.
pub async fn activate(
    storage: &Arc<dyn Storage>,
    limits: &Limits,
    secret: &SecretKey,
    request: ActivateRequest<'_>,
) -> Result<HookRecord, ActivateError> {
    let lint = LintConfig {
        max_reports: limits.max_hook_reports,
        max_days: limits.max_hook_days,
        ..LintConfig::default()
    };
    let mut hook =
        parse_hook_bytes(request.text, request.file_name, &lint).map_err(ActivateError::Lint)?;
    if let Some(reports) = request.reports {
        hook.limits.reports = reports;
    }
    if let Some(days) = request.days {
        hook.limits.days = days;
    }
    if hook.limits.reports == 0 || hook.limits.reports > limits.max_hook_reports {
        return Err(ActivateError::Bounds(format!(
            "reports must be 1 to {} on this server, got {}",
            limits.max_hook_reports, hook.limits.reports
        )));
    }
    if hook.limits.days == 0 || hook.limits.days > limits.max_hook_days {
        return Err(ActivateError::Bounds(format!(
            "days must be 1 to {} on this server, got {}",
            limits.max_hook_days, hook.limits.days
        )));
    }
    let not_after = i64::from(hook.limits.days)
        .checked_mul(DAY)
        .and_then(|d| request.now.checked_add(d))
        .ok_or_else(|| ActivateError::Bounds("days overflow the clock".into()))?;
    let version = storage::next_version(&storage.hooks().await?, &hook.name);
    let bundle_version = u32::try_from(version)
        .map_err(|_| ActivateError::Bounds(format!("version {version} is too large")))?;
    let target = target_key(&hook.target);
    let (name, reports, days) = (hook.name.clone(), hook.limits.reports, hook.limits.days);
    let payload = BundlePayload::new(
        format!("{name}-{version}"),
        bundle_version,
        hook,
        request.now,
        not_after,
    );
    let bundle = sign_bundle(&payload, secret).map_err(|e| ActivateError::Sign(e.to_string()))?;
    let sha256 = hex::encode(Sha256::digest(&bundle));
    let inserted = storage
        .insert_hook(NewHook {
            name: name.clone(),
            version,
            target,
            max_reports: reports,
            max_days: days,
            not_after,
            disk_cap: i64::try_from(limits.hook_disk_cap_bytes).unwrap_or(i64::MAX),
            source: String::from_utf8_lossy(request.text).into_owned(),
            bundle,
            sha256,
            actor: request.actor.to_owned(),
            created: request.now,
        })
        .await;
    match inserted {
        Ok(record) => Ok(record),
        // The version was read before the insert's transaction: a second
        // `hook activate` of the name at the same time chose it too, and
        // the unique (name, version) refused this one. Say so, not the
        // database's words.
        Err(e) => match storage.hooks().await {
            Ok(hooks) if hooks.iter().any(|h| h.name == name && h.version == version) => {
                Err(ActivateError::Raced { name, version })
            }
            _ => Err(e.into()),
        },
    }
}
