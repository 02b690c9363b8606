//! daisy: the crash intake server with server-side hooks.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("daisy is not built yet")
}
