//! The hook list's bearer token expires (`expires`, server time, Unix
//! seconds; daisy's default lifetime is a week). A result sent with an
//! expired token is refused for good (`401`) and lost, so the agent never
//! sends one: a list whose token will not outlive a request
//! ([`Collector::token_margin`]) is fetched once more, and a spooled result
//! whose token expired gets a fresh one from a new list before it is sent.

use std::time::Duration;

use super::collect::{CollectError, Collector, Delivery, HookList, HookOffer, PendingResult};
use super::ids::OopsId;
use super::spool::EntryKey;

/// Whether a token that expires at `expires` is still valid `margin` after
/// `now` (both Unix seconds).
pub fn token_usable(expires: i64, now: i64, margin: Duration) -> bool {
    let margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
    now.checked_add(margin)
        .is_some_and(|deadline| expires > deadline)
}

/// The current time in Unix seconds (0 before the epoch).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How the list's token was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The first list's token is valid long enough.
    Fresh,
    /// The first had (nearly) expired; a second list was fetched and its
    /// token is valid.
    Refetched,
    /// Both lists' tokens had (nearly) expired: nothing may be sent with it.
    Expired,
}

impl Freshness {
    /// Short name for output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Refetched => "refetched",
            Self::Expired => "expired",
        }
    }
}

/// A token for one hook's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    /// The new bearer token.
    pub token: String,
    /// The results URL from the new list.
    pub url: String,
    /// When the new token expires.
    pub expires: i64,
}

impl HookList {
    /// The token and results URL for hook `id` at `version`, if this list
    /// offers it.
    pub fn renewed_for(&self, id: i64, version: u32) -> Option<Renewed> {
        self.hooks
            .iter()
            .find(|h: &&HookOffer| h.id == id && h.version == version)
            .map(|h| Renewed {
                token: self.token.clone(),
                url: h.results.clone(),
                expires: self.expires,
            })
    }
}

impl Collector {
    /// Fetches the hook list for `oops`; when its token would expire within
    /// [`Collector::token_margin`], fetches it once more.
    ///
    /// # Errors
    /// [`CollectError`] from either fetch.
    pub async fn fresh_hook_list(
        &self,
        oops: &OopsId,
    ) -> Result<(HookList, Freshness), CollectError> {
        let list = self.hook_list(oops).await?;
        if list.hooks.is_empty() || token_usable(list.expires, now_secs(), self.token_margin()) {
            return Ok((list, Freshness::Fresh));
        }
        tracing::warn!(
            "the hook list token for OOPS {oops} expires at {} (now {}): fetching the list once more",
            list.expires,
            now_secs()
        );
        let again = self.hook_list(oops).await?;
        if again.hooks.is_empty() || token_usable(again.expires, now_secs(), self.token_margin()) {
            return Ok((again, Freshness::Refetched));
        }
        tracing::warn!(
            "the hook list token for OOPS {oops} has expired again (expires {}, now {}): \
             not using it; check this machine's clock",
            again.expires,
            now_secs()
        );
        Ok((again, Freshness::Expired))
    }

    /// A new token for hook `id` at `version` of `oops`, from a new list.
    ///
    /// # Errors
    /// [`CollectError`] when the list cannot be fetched.
    pub async fn renew_token(
        &self,
        oops: &OopsId,
        id: i64,
        version: u32,
    ) -> Result<Renewal, CollectError> {
        let list = self.hook_list(oops).await?;
        Ok(match list.renewed_for(id, version) {
            None => Renewal::NotOffered,
            Some(r) if token_usable(r.expires, now_secs(), self.token_margin()) => {
                Renewal::Renewed(r)
            }
            Some(_) => Renewal::TooShort,
        })
    }
}

/// What asking the server again for a spooled result's token gave.
#[derive(Debug)]
pub enum Renewal {
    /// A token that can be used.
    Renewed(Renewed),
    /// The server no longer offers the hook for the OOPS (it has the
    /// result, or the hook ended): the result is dropped.
    NotOffered,
    /// Offered, but the new token expires within the request margin too
    /// (a clock set wrong): the result waits.
    TooShort,
}

impl Collector {
    /// Sends a spooled result, `body` streamed from its entry; a token that
    /// expired while it waited is never sent: a new list gives a new one
    /// (the hook must still be offered, else the result is dropped), and
    /// when the list cannot be fetched the entry stays for the next attempt.
    pub(crate) async fn post_spooled(
        &self,
        key: &EntryKey,
        mut pending: PendingResult,
        body: reqwest::Body,
    ) -> Delivery {
        if !token_usable(pending.expires, now_secs(), self.token_margin()) {
            let Ok(hook_id) = key.hook_id().parse::<i64>() else {
                return Delivery::Dropped(format!("bad hook id in {key}"));
            };
            tracing::info!(
                "spooled result {key}: its token expired at {}, fetching a new hook list",
                pending.expires
            );
            match self
                .renew_token(key.oops(), hook_id, key.hook_version())
                .await
            {
                Ok(Renewal::Renewed(renewed)) => {
                    pending.token = renewed.token;
                    pending.url = renewed.url;
                    pending.expires = renewed.expires;
                }
                Ok(Renewal::TooShort) => {
                    // This machine's clock, most likely: the entry waits
                    // with back-off instead of being lost.
                    return Delivery::Spooled(
                        "the new token expires too soon to be used: check this machine's clock"
                            .into(),
                    );
                }
                Ok(Renewal::NotOffered) => {
                    return Delivery::Dropped(format!(
                        "its token expired and the server no longer offers hook {hook_id} v{} \
                         for this OOPS",
                        key.hook_version()
                    ));
                }
                Err(e) if e.is_final() => {
                    return Delivery::Dropped(format!("its token expired, and {e}"));
                }
                Err(e) => {
                    return Delivery::Spooled(format!(
                        "its token expired and a new one could not be fetched: {e}"
                    ));
                }
            }
        }
        // Sent only where the configured server takes results for this
        // entry: an entry spooled for another server (`collect --server`,
        // a changed `server_url` or scheme) must not carry its token and
        // result there, over whatever scheme it was written with.
        let expected = format!("/hooks/{}/results/{}", key.hook_id(), key.oops());
        if !super::collect::on_server(&pending.url, self.base_url(), &expected) {
            return Delivery::Dropped(format!(
                "it was spooled for {}, not for the configured server {}",
                pending.url,
                self.base_url()
            ));
        }
        self.post(&pending, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_must_outlive_the_margin() {
        let minute = Duration::from_secs(60);
        assert!(token_usable(1_000, 900, minute));
        assert!(
            !token_usable(1_000, 940, minute),
            "expires during the request"
        );
        assert!(!token_usable(1_000, 2_000, minute), "already expired");
        assert!(!token_usable(i64::MAX, i64::MAX, minute), "no overflow");
        assert!(!token_usable(i64::MAX, 0, Duration::from_secs(u64::MAX)));
    }
}
