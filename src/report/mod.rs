//! The apport report format (`/var/crash/*.crash`): parsing, writing, new keys.
