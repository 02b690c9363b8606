//! apport-hook: lint, verify, test and run server-side hooks.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("apport-hook is not built yet")
}
