//! apportd: the privileged com.ubuntu.apport D-Bus service.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("apportd is not built yet: see issue 'apportd' in the tracker")
}
